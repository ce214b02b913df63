//! Connecting as the operator CLI shows it: warnings, what a gateway that wants this device
//! approved first is told (the exact approve command, [`clawgate_client::failure::instructions`])
//! and the wait for the approval on a terminal (a spinner). When to sign and wait is
//! `clawgate_client::session`'s policy.

use super::target::Target;
use crate::output::duration;
use crate::term::Progress;
use clawgate_client::failure::{asking, instructions};
use clawgate_client::session::SessionEvent;
use tokio::time::Instant;

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
