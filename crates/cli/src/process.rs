//! What the long-running commands (`gateway run`, `node run`) share: logging set-up and
//! stopping on SIGTERM/SIGINT.

use tokio_util::sync::CancellationToken;

/// Logs to stderr, filtered by `CLAWGATE_LOG` (default `info`), coloured only on a terminal
/// that takes escape codes (not `TERM=dumb`) and without `NO_COLOR`.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAWGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(crate::term::stderr_is_live() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT, saying so with `message`.
pub async fn cancel_on_signal(shutdown: CancellationToken, message: &'static str) {
    signalled(message).await;
    shutdown.cancel();
}

/// Resolves on the first SIGTERM or SIGINT, saying so with `message` (never, when the
/// signals cannot be watched).
pub async fn signalled(message: &'static str) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("{message}");
}
