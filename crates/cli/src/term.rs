//! The terminal on stderr: whether it shows live output, and a spinner saying what a
//! command waits for.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Whether stderr can show a live spinner: a terminal that takes cursor control (`TERM` set
/// and not `dumb`, indicatif's rule). Anywhere else waits are told in plain lines.
pub fn stderr_is_live() -> bool {
    !indicatif::ProgressDrawTarget::stderr().is_hidden()
}

/// Whether to wait for an approval: `--wait` / `--no-wait`, else only on a terminal and
/// without `--json`.
pub fn should_wait(wait: bool, no_wait: bool, json_out: bool) -> bool {
    if no_wait {
        return false;
    }
    wait || (!json_out && std::io::stderr().is_terminal())
}

/// A spinner on stderr with what is being waited for and for how long; nothing at all
/// with `--json` or off a terminal.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// `quiet`: `--json` was given. The spinner also needs a live stderr
    /// ([`stderr_is_live`]); it is drawn from the first message on.
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && stderr_is_live()).then(|| {
            let bar = ProgressBar::hidden();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        });
        Progress { bar }
    }

    /// Whether a spinner is drawn (not with `--json`, not off a live terminal).
    pub fn is_shown(&self) -> bool {
        self.bar.is_some()
    }

    fn show(bar: &ProgressBar) {
        if bar.is_hidden() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(100));
        }
    }

    pub fn set(&self, message: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.into());
            Self::show(bar);
        }
    }

    /// Starts the elapsed time again (a new wait).
    pub fn restart(&self, message: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.reset_elapsed();
            bar.set_message(message.into());
            Self::show(bar);
        }
    }

    /// Prints a line above the spinner (or plainly on stderr without one).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(line),
            _ => eprintln!("{line}"),
        }
    }

    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// What a managed tunnel waits for, on the spinner.
impl clawgate_client::tunnel::WaitDisplay for Progress {
    fn begin(&self, message: String) {
        self.restart(message);
    }

    fn update(&self, message: String) {
        self.set(message);
    }
}
