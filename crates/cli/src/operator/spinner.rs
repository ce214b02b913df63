//! A one-line progress indicator on stderr, only on a terminal.

use std::io::Write;
use std::time::Instant;

const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

pub struct Spinner {
    enabled: bool,
    started: Instant,
    drawn: bool,
}

impl Spinner {
    /// `enabled: false` makes every call a no-op.
    pub fn new(enabled: bool) -> Self {
        Spinner {
            enabled,
            started: Instant::now(),
            drawn: false,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Redraws the line with the next frame and `message`.
    pub fn tick(&mut self, message: &str) {
        if !self.enabled {
            return;
        }
        let frame = FRAMES[(self.started.elapsed().as_millis() / 100) as usize % FRAMES.len()];
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{frame} {message}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Removes the line.
    pub fn clear(&mut self) {
        if self.enabled && self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.clear();
    }
}
