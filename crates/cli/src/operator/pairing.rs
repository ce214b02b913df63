//! This machine's device identity as the operator CLI uses it: when to sign, the device
//! tokens gateways issue, and what happens when a gateway says the device must be approved
//! first (print the exact approve command; on a terminal, wait for the approval with a
//! spinner).

use super::target::Target;
use crate::output::{EXIT_REJECTED, Failure, duration, now_ms};
use clawgate_client::device_auth::{identity_path, tokens_path};
use clawgate_client::{
    DeviceIdentity, DeviceTokenStore, HelloOk, PairingRequired, StoredDeviceToken, WireError,
    remember_device_token,
};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

/// How often a waiting command asks the gateway again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1500);

/// This machine's identity and token store.
pub struct Signer {
    pub identity: DeviceIdentity,
    pub store: DeviceTokenStore,
}

impl Signer {
    /// Loads (or creates, once) the identity under `<state dir>/clawgate/`.
    pub fn load(t: &Target) -> Result<Signer, Failure> {
        let path = identity_path(&t.state_dir);
        let identity = DeviceIdentity::load_or_generate(&path).map_err(|e| {
            let message = format!("cannot use the device identity {}: {e}", path.display());
            Failure {
                fixes: vec![format!(
                    "the file must be readable and writable by you (it is created with mode 0600); move a damaged one aside to create a new identity (the gateway then sees a new device to approve), or pass --device-auth never to connect with the shared token only"
                )],
                ..Failure::config(message)
            }
        })?;
        Ok(Signer {
            identity,
            store: DeviceTokenStore::new(tokens_path(&t.state_dir)),
        })
    }

    pub fn id(&self) -> &str {
        self.identity.id()
    }

    /// The stored token for this gateway and role; a store that cannot be read is reported
    /// and treated as empty.
    pub fn stored(&self, url: &str, role: &str) -> Option<StoredDeviceToken> {
        match self.store.get(url, self.id(), role) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("warning: ignoring stored device tokens: {e}");
                None
            }
        }
    }

    /// Keeps the device token a hello carried.
    pub fn remember(&self, url: &str, role: &str, hello: &HelloOk) {
        if let Err(e) = remember_device_token(&self.store, url, self.id(), role, hello) {
            eprintln!(
                "warning: could not save the device token in {}: {e}",
                self.store.path().display()
            );
        }
    }

    /// Drops the stored token for this gateway and role. Returns whether one existed.
    pub fn forget(&self, url: &str, role: &str) -> bool {
        match self.store.remove(url, self.id(), role) {
            Ok(removed) => removed,
            Err(e) => {
                eprintln!(
                    "warning: could not update {}: {e}",
                    self.store.path().display()
                );
                false
            }
        }
    }
}

/// `clawgate devices approve <id>`.
pub fn approve_command(request_id: &str) -> String {
    format!("clawgate devices approve {request_id}")
}

/// The OpenClaw CLI's spelling, for gateways run by OpenClaw.
pub fn openclaw_approve_command(request_id: &str) -> String {
    format!("openclaw devices approve {request_id}")
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn scopes_text(scopes: &[String]) -> String {
    if scopes.is_empty() {
        "no scopes".into()
    } else {
        scopes.join(", ")
    }
}

/// What the device asks for, in words.
fn asking(p: &PairingRequired) -> String {
    format!(
        "role {}, {}",
        p.requested_role.as_deref().unwrap_or("operator"),
        scopes_text(&p.requested_scopes)
    )
}

/// The lines explaining a pairing request and how to approve it.
pub fn instructions(p: &PairingRequired, device_id: &str, t: &Target) -> Vec<String> {
    let id = p.request_id.as_deref().unwrap_or("<requestId>");
    let device = p.device_id.as_deref().unwrap_or(device_id);
    let mut lines = Vec::new();
    match p.reason.as_deref() {
        Some("scope-upgrade") => lines.push(format!(
            "The gateway at {} knows this device ({}), but approved only {}; this command needs {}.",
            t.url,
            short(device),
            scopes_text(&p.approved_scopes),
            scopes_text(&p.requested_scopes)
        )),
        Some("role-upgrade") => lines.push(format!(
            "The gateway at {} knows this device ({}), but not for role {}.",
            t.url,
            short(device),
            p.requested_role.as_deref().unwrap_or("operator")
        )),
        _ => lines.push(format!(
            "This device ({}) is not approved by the gateway at {} yet ({}).",
            short(device),
            t.url,
            asking(p)
        )),
    }
    lines.push(format!(
        "Approve request {id} on the gateway host (or from any session allowed to pair devices):"
    ));
    lines.push(format!("    {}", approve_command(id)));
    lines.push(format!(
        "    {}    (gateways run by OpenClaw)",
        openclaw_approve_command(id)
    ));
    lines
}

/// The JSON `pairing` object of a pairing failure.
pub fn pairing_json(p: &PairingRequired, device_id: &str) -> Value {
    let id = p.request_id.as_deref().unwrap_or("");
    json!({
        "requestId": p.request_id,
        "reason": p.reason,
        "deviceId": p.device_id.as_deref().unwrap_or(device_id),
        "requestedRole": p.requested_role,
        "requestedScopes": p.requested_scopes,
        "approvedScopes": p.approved_scopes,
        "approveCommand": approve_command(id),
        "openclawApproveCommand": openclaw_approve_command(id),
    })
}

/// A connect that ended at "approve this device first".
pub fn pairing_failure(
    error: &WireError,
    p: &PairingRequired,
    device_id: &str,
    t: &Target,
    why: &str,
) -> Failure {
    let mut json = super::failure::request_error_json(error);
    json["gateway"] = json!({"url": t.url, "urlSource": t.source_label()});
    json["pairing"] = pairing_json(p, device_id);
    let mut fixes = instructions(p, device_id, t);
    fixes.push("then run this command again (add --wait to wait for the approval instead)".into());
    Failure {
        exit: EXIT_REJECTED,
        message: format!("{why}: {}", error.message),
        fixes,
        json,
    }
}

/// An approval being waited for.
pub struct Waiter {
    pub request_id: Option<String>,
    pub until: Instant,
    pub started: Instant,
    progress: crate::term::Progress,
    what: String,
}

impl Waiter {
    /// Starts waiting (prints the instructions, then shows progress on a terminal or a
    /// single line elsewhere).
    pub fn start(
        p: &PairingRequired,
        device_id: &str,
        t: &Target,
        timeout: Duration,
        quiet: bool,
    ) -> Waiter {
        if !quiet {
            for line in instructions(p, device_id, t) {
                eprintln!("{line}");
            }
        }
        let progress = crate::term::Progress::new(quiet);
        let id = p.request_id.as_deref().unwrap_or("?");
        let what = format!("Waiting for approval of request {id} ({})", asking(p));
        if !quiet && !progress.is_shown() {
            eprintln!("{what}; giving up after {}s", timeout.as_secs());
        }
        let now = Instant::now();
        Waiter {
            request_id: p.request_id.clone(),
            until: now + timeout,
            started: now,
            progress,
            what,
        }
    }

    pub fn expired(&self) -> bool {
        Instant::now() >= self.until
    }

    /// Sleeps until the next poll, the spinner (which shows the time waited) saying how much
    /// longer the wait may last.
    pub async fn pause(&mut self) {
        let left = self.until.saturating_duration_since(Instant::now());
        self.progress.set(format!(
            "{} · up to {} more (Ctrl-C to stop)",
            self.what,
            duration(left.as_millis() as u64)
        ));
        tokio::time::sleep(left.min(POLL_INTERVAL)).await;
    }

    /// Clears the progress line and says how it ended.
    pub fn finish(&mut self, outcome: &str, quiet: bool) {
        self.progress.clear();
        if !quiet {
            eprintln!(
                "{outcome} (after {})",
                duration(self.started.elapsed().as_millis() as u64)
            );
        }
    }
}

/// This machine's device id if an identity exists already (never creates one).
pub fn local_device_id(t: &Target) -> Option<String> {
    let path = identity_path(&t.state_dir);
    path.exists()
        .then(|| DeviceIdentity::load(&path).ok())
        .flatten()
        .map(|i| i.id().to_owned())
}

/// Drops every stored token of `device_id` at this gateway (after it was removed there).
pub fn forget_device(t: &Target, device_id: &str) -> usize {
    DeviceTokenStore::new(tokens_path(&t.state_dir))
        .remove_device(&t.url, device_id)
        .unwrap_or(0)
}

/// Stores a token handed back in-band (a device rotating its own token).
pub fn store_rotated(t: &Target, device_id: &str, role: &str, token: &str, scopes: Vec<String>) {
    let store = DeviceTokenStore::new(tokens_path(&t.state_dir));
    let saved = store.put(StoredDeviceToken {
        gateway: t.url.clone(),
        device_id: device_id.to_owned(),
        role: role.to_owned(),
        token: token.to_owned(),
        scopes,
        issued_at_ms: None,
        saved_at_ms: now_ms(),
    });
    if let Err(e) = saved {
        eprintln!(
            "warning: could not save the rotated token in {}: {e}",
            store.path().display()
        );
    }
}
