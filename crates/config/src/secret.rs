//! [`Secret`]: a string that never prints itself.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The marker OpenClaw's `config.get` shows in place of secret values.
///
/// Clients (the Control UI, scripts) know it: a value equal to it means "unchanged, hidden".
/// It is also what users paste by mistake after copying `config get` output, which is why
/// [`resolve_gateway_settings`](crate::resolve_gateway_settings) rejects it as a token.
pub const REDACTED: &str = "__OPENCLAW_REDACTED__";

/// A credential (gateway token, password): the text is reachable only through
/// [`Secret::expose`].
///
/// `Debug` and `Display` print `***`, and `Serialize` writes [`REDACTED`], so a secret
/// that ends up in a log line, an error message or a serialized settings dump is never
/// leaked by accident. Comparison ([`Secret::ct_eq`], `==`) takes the same time whatever
/// the contents and length of either side.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret text. Call this only where the value is really needed (the auth check,
    /// the connect frame), never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a candidate sent by a client.
    ///
    /// Both sides are hashed with SHA-256 first and the digests compared with `subtle`, so
    /// neither the position of the first differing byte nor the secret's length leaks
    /// through timing (a plain constant-time slice compare returns early on a length
    /// mismatch).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        let ours = Sha256::digest(self.0.as_bytes());
        let theirs = Sha256::digest(other);
        ours.as_slice().ct_eq(theirs.as_slice()).into()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other.0.as_bytes())
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    /// Lets the CLI use `Secret` directly as a flag value type.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl Serialize for Secret {
    /// Writes the redaction marker, never the value: serializing a secret is almost always
    /// a settings dump or a `config.get` reply.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(***)");
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            "\"__OPENCLAW_REDACTED__\""
        );
        assert_eq!(s.expose(), "hunter2-hunter2");
    }

    #[test]
    fn compares_in_constant_time_including_length() {
        let s = Secret::new("abc");
        assert!(s.ct_eq(b"abc"));
        assert!(!s.ct_eq(b"abd"));
        assert!(!s.ct_eq(b"abcd"));
        assert!(!s.ct_eq(b""));
        assert_eq!(s, Secret::from("abc"));
        assert_ne!(s, Secret::from("ab"));
    }

    #[test]
    fn deserializes_from_a_string() {
        let s: Secret = serde_json::from_str("\"tok\"").unwrap();
        assert_eq!(s.expose(), "tok");
        assert!(serde_json::from_str::<Secret>("12").is_err());
    }
}
