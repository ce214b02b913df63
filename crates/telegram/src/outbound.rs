//! Sending: the per-token throttle (one message a second per chat after a short burst, about 30
//! a second in all) and the typing indicator that is refreshed while a run goes on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::api::BotApi;
use crate::error::TelegramError;

/// The spacing of messages to one chat, once its burst is spent.
pub const PER_CHAT_INTERVAL: Duration = Duration::from_secs(1);
/// Messages one chat may get at once before [`PER_CHAT_INTERVAL`] applies: Telegram allows
/// short bursts over one a second, so a reply to a quick question, or the first chunks of a
/// long reply, need not wait (a 429 is still honoured should it come).
pub const PER_CHAT_BURST: u32 = 3;
/// The spacing of messages of one token (about 30 a second).
pub const GLOBAL_INTERVAL: Duration = Duration::from_millis(34);
/// How often `typing` is sent again while a run goes on (Telegram shows it for 5 s).
pub const TYPING_INTERVAL: Duration = Duration::from_secs(6);

/// Chats remembered by the throttle at most; older entries (whose slot has passed) go first.
const MAX_CHATS: usize = 4096;

/// Hands out send slots: [`Throttle::wait`] returns when a message to `chat` may go.
#[derive(Debug)]
pub struct Throttle {
    state: Mutex<ThrottleState>,
}

#[derive(Debug)]
struct ThrottleState {
    global_next: Instant,
    chats: HashMap<String, Instant>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            state: Mutex::new(ThrottleState {
                global_next: Instant::now(),
                chats: HashMap::new(),
            }),
        }
    }
}

impl Throttle {
    /// Waits for the next slot of `chat` (and of the token).
    pub async fn wait(&self, chat: &str) {
        let at = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if s.chats.len() >= MAX_CHATS {
                s.chats.retain(|_, next| *next > now);
            }
            // A generic cell rate: each chat's theoretical next slot moves one interval per
            // message; a message may go up to a burst's worth of intervals ahead of it.
            let chat_next = s.chats.get(chat).copied().unwrap_or(now);
            let ahead = PER_CHAT_INTERVAL * (PER_CHAT_BURST - 1);
            let earliest = chat_next.checked_sub(ahead).unwrap_or(now);
            let at = earliest.max(s.global_next).max(now);
            s.global_next = at + GLOBAL_INTERVAL;
            s.chats
                .insert(chat.to_owned(), chat_next.max(at) + PER_CHAT_INTERVAL);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// Sends `typing` to a chat every [`TYPING_INTERVAL`] until dropped (or [`Typing::stop`]).
/// A 401 stops it: the token is gone, nothing more will work.
#[derive(Debug)]
pub struct Typing {
    task: JoinHandle<()>,
}

impl Typing {
    pub fn start(api: BotApi, chat_id: String) -> Typing {
        let task = tokio::spawn(async move {
            loop {
                match api.send_chat_action(&chat_id, "typing").await {
                    Err(TelegramError::Unauthorized { .. }) => return,
                    Err(e) => tracing::debug!(chat_id, error = %e, "typing action failed"),
                    Ok(()) => {}
                }
                tokio::time::sleep(TYPING_INTERVAL).await;
            }
        });
        Typing { task }
    }

    /// Stops the refresh (as dropping does).
    pub fn stop(self) {}
}

impl Drop for Typing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_per_chat_then_one_per_second_and_spaced_overall() {
        let t = Throttle::default();
        let start = Instant::now();
        t.wait("a").await;
        t.wait("b").await;
        let b = Instant::now() - start;
        assert!(b >= GLOBAL_INTERVAL && b < PER_CHAT_INTERVAL, "{b:?}");
        // "a" has its burst: two more go without waiting a second.
        t.wait("a").await;
        t.wait("a").await;
        assert!(Instant::now() - start < PER_CHAT_INTERVAL);
        // Then one a second.
        t.wait("a").await;
        let fourth = Instant::now() - start;
        assert!(fourth >= PER_CHAT_INTERVAL, "{fourth:?}");
        t.wait("a").await;
        assert!(Instant::now() - start >= fourth + PER_CHAT_INTERVAL);
    }
}
