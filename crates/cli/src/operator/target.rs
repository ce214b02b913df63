//! Where an operator command connects, from its connection flags
//! ([`clawgate_client::target`]): the tunnel opened with a spinner through this binary's
//! supervisor, warnings on stderr, and the failures with their exit codes.

use super::conn::ConnArgs;
use crate::output::Failure;
use clawgate_client::failure::{plaintext_failure, tunnel_failure};
use clawgate_client::target::TargetInputs;
use clawgate_client::tunnel::{DEFAULT_READY_TIMEOUT, TunnelError, TunnelSpec, TunnelState};
use clawgate_config as config;
use std::time::Duration;

pub use clawgate_client::target::{CredentialOrigin, Target, TargetError, Which};

/// The certificate fingerprint of this machine's gateway when its config enables TLS.
pub fn local_tls_fingerprint(config_path: Option<&std::path::Path>) -> Option<String> {
    clawgate_gateway::tls::local_fingerprint(config_path, &config::process_env)
}

/// Resolves the target; configuration problems are usage errors (exit 2).
pub fn resolve(args: &ConnArgs) -> Result<Target, Failure> {
    resolve_with_env(args, &config::process_env, Which::Configured)
}

/// [`resolve`] with another environment (`gateway probe --port` stands for
/// `CLAWGATE_GATEWAY_PORT`), of the configured gateway or this machine's.
pub fn resolve_with_env(
    args: &ConnArgs,
    env: &dyn Fn(&str) -> Option<String>,
    which: Which,
) -> Result<Target, Failure> {
    let inputs = TargetInputs {
        config: args.config.clone(),
        url: args.url.clone(),
        token: args.token.clone(),
        password: args.password.clone(),
        tls_fingerprint: args.tls_fingerprint.clone(),
    };
    clawgate_client::target::resolve(
        &inputs,
        env,
        which,
        &mut |w| eprintln!("warning: {w}"),
        &local_tls_fingerprint,
        &mut |ssh, state_dir| open_tunnel(ssh, state_dir, args),
    )
    .map_err(|e| match e {
        TargetError::Config(message) => Failure::config(message),
        TargetError::Plaintext {
            url,
            host,
            reason,
            source,
            config_path,
            break_glass,
        } => plaintext_failure(
            &url,
            &host,
            &reason,
            &source,
            config_path.as_deref(),
            break_glass,
        ),
        TargetError::Tunnel(e) => {
            let mut f = tunnel_failure(&e);
            f.message = format!(
                "cannot open the SSH tunnel to the gateway (gateway.remote.transport \"ssh\"): {}",
                f.message
            );
            f
        }
    })
}

/// Opens (or reuses) the SSH tunnel of `gateway.remote.transport: "ssh"`, with a spinner on
/// a terminal while it comes up.
fn open_tunnel(
    ssh: &config::SshTunnelTarget,
    state_dir: &std::path::Path,
    args: &ConnArgs,
) -> Result<TunnelState, TunnelError> {
    let spec = TunnelSpec::of_remote_transport(ssh);
    let progress = crate::term::Progress::new(args.json);
    let budget = Duration::from_millis(args.timeout.max(1)).max(DEFAULT_READY_TIMEOUT);
    let result = clawgate_client::tunnel::ensure_supervised(
        &spec,
        Some(ssh.local_port),
        state_dir,
        &progress,
        budget,
    );
    progress.clear();
    result.map(|e| e.state)
}
