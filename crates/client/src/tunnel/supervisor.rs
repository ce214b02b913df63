//! Keeping a tunnel up: start ssh, wait for the forward, restart it with jittered backoff
//! whenever it exits, until told to stop.

use super::{SshProcess, TunnelError, TunnelSpec, find_ssh};
use crate::Backoff;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// What the supervisor is doing, for status files and progress lines.
#[derive(Debug, Clone)]
pub enum SupervisorEvent {
    /// Starting ssh (attempt 1 is the first connection).
    Connecting { attempt: u32, ssh_pid: u32 },
    /// The forward accepts connections.
    Up { ssh_pid: u32 },
    /// ssh exited (or never came up); the next attempt starts after `retry_in`.
    Down {
        error: TunnelError,
        retry_in: Duration,
        attempt: u32,
    },
    /// The SSH host could not connect to the gateway's port (nothing listens there?).
    RemoteRefused { count: u64 },
}

/// Restarts wait 0.5 s, doubling to 30 s (with jitter).
const RESTART_INITIAL: Duration = Duration::from_millis(500);
const RESTART_MAX: Duration = Duration::from_secs(30);

/// How long a tunnel must stay up before the backoff starts again from its base.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Runs the tunnel until `stop` completes. The first connection's failure is returned at
/// once (a person is waiting for `tunnel up`); after a first success every exit is
/// retried with backoff, the last error reported through `on_event`.
pub async fn supervise(
    spec: &TunnelSpec,
    local_port: u16,
    ready_timeout: Duration,
    mut on_event: impl FnMut(SupervisorEvent),
    stop: impl Future<Output = ()>,
) -> Result<(), TunnelError> {
    let ssh = find_ssh()?;
    tokio::pin!(stop);
    let mut backoff = Backoff::new(RESTART_INITIAL, RESTART_MAX);
    let mut attempt = 0u32;
    let mut ever_up = false;
    loop {
        attempt += 1;
        let mut process = SshProcess::spawn(&ssh, spec, local_port)?;
        on_event(SupervisorEvent::Connecting {
            attempt,
            ssh_pid: process.pid(),
        });
        let ready = tokio::select! {
            r = process.wait_ready(spec, ready_timeout) => r,
            () = &mut stop => {
                process.stop().await;
                return Ok(());
            }
        };
        let error = match ready {
            Err(e) => e,
            Ok(()) => {
                ever_up = true;
                on_event(SupervisorEvent::Up {
                    ssh_pid: process.pid(),
                });
                let up_since = Instant::now();
                let mut refusals = 0;
                let mut tick = tokio::time::interval(Duration::from_millis(500));
                let error = loop {
                    tokio::select! {
                        e = process.wait_exit(spec) => break e,
                        () = &mut stop => {
                            process.stop().await;
                            return Ok(());
                        }
                        _ = tick.tick() => {
                            let now = process.remote_refusals();
                            if now > refusals {
                                refusals = now;
                                on_event(SupervisorEvent::RemoteRefused { count: now });
                            }
                        }
                    }
                };
                if up_since.elapsed() >= STABLE_AFTER {
                    backoff.reset();
                }
                error
            }
        };
        if !ever_up {
            process.stop().await;
            return Err(error);
        }
        let retry_in = backoff.next_delay();
        on_event(SupervisorEvent::Down {
            error,
            retry_in,
            attempt,
        });
        tokio::select! {
            () = tokio::time::sleep(retry_in) => {}
            () = &mut stop => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let first = b.next_delay();
        assert!(
            first >= Duration::from_millis(400) && first <= Duration::from_millis(600),
            "{first:?}"
        );
        let second = b.next_delay();
        assert!(second >= Duration::from_millis(800), "{second:?}");
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(600));
    }
}
