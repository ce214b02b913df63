//! Where an operator command connects and with which credentials: flags, env and config via
//! `clawgate_config::resolve_client_target`, plus the zero-config local case (the token the
//! local gateway generated in `<state dir>/gateway.token`).

use super::{ConnArgs, EXIT_USAGE, Failure};
use clawgate_config::{self as config, ClientFlags, Secret, TargetSource};
use serde_json::json;
use std::path::PathBuf;

/// File in the state dir where a local clawgate gateway keeps the token it generated.
pub const TOKEN_FILE: &str = "gateway.token";

/// Where a credential came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialOrigin {
    /// Flags, env or config (whatever `resolve_client_target` picked).
    Resolved,
    /// The local gateway's generated token file.
    TokenFile(PathBuf),
    /// No credential at all.
    None,
}

/// A resolved target.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub password: Option<String>,
    pub tls_fingerprint: Option<String>,
    pub source: TargetSource,
    /// The config file that was read, if any.
    pub config_path: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub credential: CredentialOrigin,
}

impl Target {
    /// `ws://… (local gateway)`, for messages.
    pub fn describe(&self) -> String {
        match &self.config_path {
            Some(p) => format!(
                "{} (from {}; config file {})",
                self.url,
                self.source,
                p.display()
            ),
            None => format!("{} (from {})", self.url, self.source),
        }
    }

    pub fn source_label(&self) -> String {
        self.source.to_string()
    }

    pub fn token_file(&self) -> PathBuf {
        self.state_dir.join(TOKEN_FILE)
    }
}

fn usage(message: String) -> Failure {
    Failure {
        exit: EXIT_USAGE,
        json: json!({"type": "config_error", "message": message}),
        message,
        fixes: Vec::new(),
    }
}

/// Resolves the target; configuration problems are usage errors (exit 2).
pub fn resolve(args: &ConnArgs) -> Result<Target, Failure> {
    let env = config::process_env;
    let location = config::locate_config(args.config.as_deref(), None, &env);
    let loaded = config::load_config(&location, &env).map_err(|e| usage(e.to_string()))?;
    let flags = ClientFlags {
        url: args.url.clone(),
        token: args.token.clone().map(Secret::new),
        password: args.password.clone().map(Secret::new),
        tls_fingerprint: args.tls_fingerprint.clone(),
    };
    let target = config::resolve_client_target(&flags, loaded.as_ref(), &env)
        .map_err(|e| usage(e.to_string()))?;
    for w in target
        .warnings
        .iter()
        .chain(loaded.iter().flat_map(|l| &l.warnings))
    {
        eprintln!("warning: {w}");
    }
    let state_dir = config::resolve_state_dir(None, &env);
    let mut token = target.token.map(|s| s.expose().to_owned());
    let password = target.password.map(|s| s.expose().to_owned());
    let mut credential = if token.is_some() || password.is_some() {
        CredentialOrigin::Resolved
    } else {
        CredentialOrigin::None
    };
    if target.source == TargetSource::Local && credential == CredentialOrigin::None {
        let path = state_dir.join(TOKEN_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let text = text.trim();
            if !text.is_empty() {
                token = Some(text.to_owned());
                credential = CredentialOrigin::TokenFile(path);
            }
        }
    }
    Ok(Target {
        url: target.url,
        token,
        password,
        tls_fingerprint: target.tls_fingerprint,
        source: target.source,
        config_path: loaded.map(|l| l.path),
        state_dir,
        credential,
    })
}
