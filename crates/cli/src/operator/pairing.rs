//! This machine's device identity as the operator CLI shows it: what a gateway that wants
//! the device approved first is told (the exact approve command), the wait for the approval
//! on a terminal (a spinner), and the device tokens the `devices` commands change here. When
//! to sign and wait is `clawgate_client::session`'s policy.

use super::target::Target;
use crate::output::{duration, now_ms};
use crate::term::Progress;
use clawgate_client::device_auth::{identity_path, tokens_path};
use clawgate_client::session::SessionEvent;
use clawgate_client::{DeviceIdentity, DeviceTokenStore, PairingRequired, StoredDeviceToken};
use serde_json::{Value, json};
use tokio::time::Instant;

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

/// What a person sees of connecting: warnings on stderr, and the wait for an approval (the
/// instructions, then a spinner on a terminal or one line elsewhere).
pub struct Watcher<'a> {
    target: &'a Target,
    /// `--json`: no instructions, no spinner.
    quiet: bool,
    wait: Option<Wait>,
}

/// An approval being waited for.
struct Wait {
    progress: Progress,
    what: String,
    started: Instant,
}

impl<'a> Watcher<'a> {
    pub fn new(target: &'a Target, quiet: bool) -> Self {
        Watcher {
            target,
            quiet,
            wait: None,
        }
    }

    pub fn on(&mut self, event: SessionEvent<'_>) {
        match event {
            SessionEvent::StoreWarning(warning) => eprintln!("warning: {warning}"),
            SessionEvent::RetryingWithDeviceToken { refused } => eprintln!(
                "warning: the gateway refused the {refused} sent; retrying with this device's stored device token"
            ),
            SessionEvent::WaitStarted {
                pairing,
                device_id,
                timeout,
            } => {
                if !self.quiet {
                    for line in instructions(pairing, device_id, self.target) {
                        eprintln!("{line}");
                    }
                }
                let progress = Progress::new(self.quiet);
                let id = pairing.request_id.as_deref().unwrap_or("?");
                let what = format!("Waiting for approval of request {id} ({})", asking(pairing));
                if !self.quiet && !progress.is_shown() {
                    eprintln!("{what}; giving up after {}s", timeout.as_secs());
                }
                self.wait = Some(Wait {
                    progress,
                    what,
                    started: Instant::now(),
                });
            }
            // The spinner (which shows the time waited) says how much longer the wait may last.
            SessionEvent::Waiting { left } => {
                if let Some(w) = &self.wait {
                    w.progress.set(format!(
                        "{} · up to {} more (Ctrl-C to stop)",
                        w.what,
                        duration(left.as_millis() as u64)
                    ));
                }
            }
            SessionEvent::WaitEnded { approved } => {
                if let Some(w) = self.wait.take() {
                    w.progress.clear();
                    if !self.quiet {
                        let outcome = if approved {
                            "Approved: connected as a paired device"
                        } else {
                            "Stopped waiting"
                        };
                        eprintln!(
                            "{outcome} (after {})",
                            duration(w.started.elapsed().as_millis() as u64)
                        );
                    }
                }
            }
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

/// Drops this gateway's stored token of `device_id` for `role` (after it was revoked there).
pub fn forget_token(t: &Target, device_id: &str, role: &str) {
    let _ = DeviceTokenStore::new(tokens_path(&t.state_dir)).remove(&t.url, device_id, role);
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
