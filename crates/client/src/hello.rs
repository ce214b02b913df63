//! The `hello-ok` payload, kept whole, with typed accessors for what clients read.

use serde_json::Value;

/// The gateway's `hello-ok`.
#[derive(Debug, Clone, PartialEq)]
pub struct HelloOk {
    raw: Value,
}

impl HelloOk {
    pub fn new(raw: Value) -> Self {
        HelloOk { raw }
    }

    /// The payload exactly as received.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    pub fn into_raw(self) -> Value {
        self.raw
    }

    fn str_at(&self, pointer: &str) -> Option<&str> {
        self.raw.pointer(pointer)?.as_str()
    }

    /// The negotiated protocol version.
    pub fn protocol(&self) -> Option<u64> {
        self.raw.get("protocol")?.as_u64()
    }

    /// `server.version`.
    pub fn server_version(&self) -> Option<&str> {
        self.str_at("/server/version")
    }

    /// `server.connId`.
    pub fn conn_id(&self) -> Option<&str> {
        self.str_at("/server/connId")
    }

    /// `server.buildId`, when sent.
    pub fn build_id(&self) -> Option<&str> {
        self.str_at("/server/buildId")
    }

    /// `auth.role`.
    pub fn role(&self) -> Option<&str> {
        self.str_at("/auth/role")
    }

    /// `auth.method` (`token`, `password`, `device-token`, `none`…), when sent.
    pub fn auth_method(&self) -> Option<&str> {
        self.str_at("/auth/method")
    }

    /// `auth.scopes`: what this connection may do (the gateway enforces exactly this).
    pub fn scopes(&self) -> Vec<String> {
        self.raw
            .pointer("/auth/scopes")
            .map(crate::fields::strings)
            .unwrap_or_default()
    }

    /// `auth.deviceToken`, issued to a paired device.
    pub fn device_token(&self) -> Option<&str> {
        self.str_at("/auth/deviceToken")
    }

    /// `auth.issuedAtMs`: when the device token was issued.
    pub fn issued_at_ms(&self) -> Option<i64> {
        self.raw.pointer("/auth/issuedAtMs")?.as_i64()
    }

    /// `policy.tickIntervalMs`.
    pub fn tick_interval_ms(&self) -> Option<u64> {
        self.raw.pointer("/policy/tickIntervalMs")?.as_u64()
    }

    /// `snapshot.uptimeMs`.
    pub fn uptime_ms(&self) -> Option<u64> {
        self.raw.pointer("/snapshot/uptimeMs")?.as_u64()
    }

    /// `features.methods`: what the gateway advertises.
    pub fn methods(&self) -> Vec<&str> {
        self.raw
            .pointer("/features/methods")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
}
