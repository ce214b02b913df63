//! The operator CLI's connection target and credentials.

mod common;

use clawgate_config::{
    ClientFlags, ClientTarget, ConfigError, LoadedConfig, Secret, TargetSource,
    resolve_client_target,
};
use common::{env, parse};

fn resolve(
    flags: &ClientFlags,
    config: Option<&str>,
    pairs: &[(&str, &str)],
) -> Result<ClientTarget, ConfigError> {
    let loaded: Option<LoadedConfig> = config.map(|t| parse(t, pairs).unwrap());
    resolve_client_target(flags, loaded.as_ref(), &env(pairs))
}

fn ok(flags: &ClientFlags, config: Option<&str>, pairs: &[(&str, &str)]) -> ClientTarget {
    resolve(flags, config, pairs).unwrap()
}

fn err(flags: &ClientFlags, config: Option<&str>, pairs: &[(&str, &str)]) -> String {
    match resolve(flags, config, pairs) {
        Ok(t) => panic!("expected an error, got {t:?}"),
        Err(e) => e.to_string(),
    }
}

fn expose(s: &Option<Secret>) -> Option<&str> {
    s.as_ref().map(Secret::expose)
}

const FP: &str = "aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899";

/// A config with every credential set, so each test can check which one is picked.
const FULL: &str = "{gateway: {port: 19100,
    auth: {token: 'local-tok', password: 'local-pw', mode: 'token'},
    remote: {url: 'wss://remote.example:443', token: 'remote-tok', password: 'remote-pw',
             tlsFingerprint: 'sha256:AABBCCDDEEFF00112233445566778899AABBCCDDEEFF00112233445566778899'}}}";

fn remote_mode(cfg: &str) -> String {
    cfg.replacen("{gateway: {", "{gateway: {mode: 'remote', ", 1)
}

const ENV_CREDS: &[(&str, &str)] = &[
    ("OPENCLAW_GATEWAY_TOKEN", "env-tok"),
    ("OPENCLAW_GATEWAY_PASSWORD", "env-pw"),
];

#[test]
fn url_flag_requires_explicit_credentials() {
    let flags = ClientFlags {
        url: Some("wss://other.example".into()),
        ..Default::default()
    };
    // Neither env nor config credentials count.
    assert_eq!(
        err(&flags, Some(FULL), ENV_CREDS),
        "gateway url override requires explicit credentials\nFix: pass --token or --password with --url.\nFor the default local or SSH-tunneled Gateway, remove --url to use the configured target."
    );
}

#[test]
fn url_flag_uses_only_flag_credentials() {
    let flags = ClientFlags {
        url: Some("https://other.example".into()),
        token: Some(Secret::new("flag-tok")),
        ..Default::default()
    };
    let t = ok(&flags, Some(&remote_mode(FULL)), ENV_CREDS);
    assert_eq!(t.url, "wss://other.example");
    assert_eq!(t.source, TargetSource::Flag);
    assert_eq!(expose(&t.token), Some("flag-tok"));
    assert_eq!(expose(&t.password), None);
    // The saved pin belongs to the configured remote, not to this URL.
    assert_eq!(t.tls_fingerprint, None);
}

#[test]
fn env_url_uses_only_env_or_flag_credentials() {
    let mut pairs = vec![("OPENCLAW_GATEWAY_URL", "ws://10.0.0.9:18789")];
    pairs.extend_from_slice(ENV_CREDS);
    let t = ok(&ClientFlags::default(), Some(&remote_mode(FULL)), &pairs);
    assert_eq!(t.url, "ws://10.0.0.9:18789");
    assert_eq!(t.source, TargetSource::Env("OPENCLAW_GATEWAY_URL".into()));
    assert_eq!(expose(&t.token), Some("env-tok"));
    assert_eq!(expose(&t.password), Some("env-pw"));

    // No env credentials: config credentials are still not used.
    let t = ok(
        &ClientFlags::default(),
        Some(FULL),
        &[("OPENCLAW_GATEWAY_URL", "ws://10.0.0.9:18789")],
    );
    assert_eq!(t.token, None);
    assert_eq!(t.password, None);

    // CLAWGATE_* wins over OPENCLAW_*.
    let t = ok(
        &ClientFlags::default(),
        None,
        &[
            ("CLAWGATE_GATEWAY_URL", "ws://127.0.0.1:1"),
            ("OPENCLAW_GATEWAY_URL", "ws://127.0.0.1:2"),
            ("CLAWGATE_GATEWAY_TOKEN", "cg"),
            ("OPENCLAW_GATEWAY_TOKEN", "oc"),
        ],
    );
    assert_eq!(t.url, "ws://127.0.0.1:1");
    assert_eq!(expose(&t.token), Some("cg"));
}

#[test]
fn bad_env_url_names_the_variable() {
    assert_eq!(
        err(
            &ClientFlags::default(),
            None,
            &[("CLAWGATE_GATEWAY_URL", "gateway.example:18789")]
        ),
        "CLAWGATE_GATEWAY_URL must be a ws:// or wss:// URL such as wss://gateway.example.ts.net or ws://127.0.0.1:18789 (got \"gateway.example:18789\")"
    );
}

#[test]
fn remote_mode_uses_remote_url_and_credentials() {
    let cfg = remote_mode(FULL);
    let t = ok(&ClientFlags::default(), Some(&cfg), ENV_CREDS);
    assert_eq!(t.url, "wss://remote.example:443");
    assert_eq!(t.source, TargetSource::RemoteConfig);
    assert_eq!(expose(&t.token), Some("remote-tok"));
    assert_eq!(expose(&t.password), Some("remote-pw"));
    assert_eq!(t.tls_fingerprint.as_deref(), Some(FP));

    // Flags override.
    let flags = ClientFlags {
        token: Some(Secret::new("flag-tok")),
        password: Some(Secret::new("flag-pw")),
        ..Default::default()
    };
    let t = ok(&flags, Some(&cfg), ENV_CREDS);
    assert_eq!(expose(&t.token), Some("flag-tok"));
    assert_eq!(expose(&t.password), Some("flag-pw"));
}

#[test]
fn remote_mode_falls_back_to_env_but_never_to_local_auth() {
    let cfg = "{gateway: {mode: 'remote', auth: {token: 'local-tok', password: 'local-pw'},
                remote: {url: 'wss://remote.example'}}}";
    let t = ok(&ClientFlags::default(), Some(cfg), ENV_CREDS);
    assert_eq!(expose(&t.token), Some("env-tok"));
    assert_eq!(expose(&t.password), Some("env-pw"));
    let t = ok(&ClientFlags::default(), Some(cfg), &[]);
    assert_eq!(t.token, None);
    assert_eq!(t.password, None);
}

#[test]
fn remote_mode_without_url_falls_back_to_local_with_a_warning() {
    let t = ok(
        &ClientFlags::default(),
        Some("{gateway: {mode: 'remote', auth: {token: 'local-tok'}}}"),
        &[],
    );
    assert_eq!(t.url, "ws://127.0.0.1:18789");
    assert_eq!(t.source, TargetSource::Local);
    assert_eq!(expose(&t.token), Some("local-tok"));
    assert_eq!(
        t.warnings,
        vec![
            "gateway.mode=remote but gateway.remote.url is missing; connecting to the local gateway. Set gateway.remote.url (e.g. wss://gateway.example.ts.net) to use the remote one."
        ]
    );
}

#[test]
fn local_mode_target_and_port_precedence() {
    let t = ok(&ClientFlags::default(), None, &[]);
    assert_eq!(t.url, "ws://127.0.0.1:18789");
    assert_eq!(t.source, TargetSource::Local);
    assert!(t.warnings.is_empty());
    // remote.url is ignored unless mode is remote; the bind never changes the host.
    let t = ok(
        &ClientFlags::default(),
        Some("{gateway: {bind: 'lan', port: 19100, remote: {url: 'wss://r.example'}}}"),
        &[],
    );
    assert_eq!(t.url, "ws://127.0.0.1:19100");
    let t = ok(
        &ClientFlags::default(),
        Some("{gateway: {port: 19100}}"),
        &[("OPENCLAW_GATEWAY_PORT", "19200")],
    );
    assert_eq!(t.url, "ws://127.0.0.1:19200");
    let t = ok(
        &ClientFlags::default(),
        Some("{gateway: {port: 19100}}"),
        &[
            ("CLAWGATE_GATEWAY_PORT", "19300"),
            ("OPENCLAW_GATEWAY_PORT", "19200"),
        ],
    );
    assert_eq!(t.url, "ws://127.0.0.1:19300");
    let t = ok(
        &ClientFlags::default(),
        Some("{gateway: {tls: {enabled: true}}}"),
        &[],
    );
    assert_eq!(t.url, "wss://127.0.0.1:18789");
    assert_eq!(
        err(
            &ClientFlags::default(),
            None,
            &[("OPENCLAW_GATEWAY_PORT", "x")]
        ),
        "OPENCLAW_GATEWAY_PORT must be a port number between 1 and 65535, optionally as host:port (got \"x\"); fix or unset OPENCLAW_GATEWAY_PORT"
    );
}

#[test]
fn local_mode_credentials_flag_env_config() {
    let t = ok(&ClientFlags::default(), Some(FULL), &[]);
    assert_eq!(expose(&t.token), Some("local-tok"));
    assert_eq!(expose(&t.password), Some("local-pw"));
    assert_eq!(t.tls_fingerprint, None);

    let t = ok(&ClientFlags::default(), Some(FULL), ENV_CREDS);
    assert_eq!(expose(&t.token), Some("env-tok"));
    assert_eq!(expose(&t.password), Some("env-pw"));

    let flags = ClientFlags {
        token: Some(Secret::new("flag-tok")),
        ..Default::default()
    };
    let t = ok(&flags, Some(FULL), ENV_CREDS);
    assert_eq!(expose(&t.token), Some("flag-tok"));
    assert_eq!(expose(&t.password), Some("env-pw"));
}

#[test]
fn local_mode_never_uses_remote_credentials() {
    let t = ok(
        &ClientFlags::default(),
        Some("{gateway: {remote: {token: 'remote-tok', password: 'remote-pw'}}}"),
        &[],
    );
    assert_eq!(t.token, None);
    assert_eq!(t.password, None);
}

#[test]
fn tls_fingerprint_rules() {
    let flags = ClientFlags {
        url: Some("wss://other.example".into()),
        token: Some(Secret::new("t")),
        tls_fingerprint: Some(FP.to_uppercase()),
        ..Default::default()
    };
    assert_eq!(ok(&flags, None, &[]).tls_fingerprint.as_deref(), Some(FP));
    let flags = ClientFlags {
        url: Some("ws://other.example".into()),
        ..flags
    };
    assert_eq!(
        err(&flags, None, &[]),
        "a TLS fingerprint requires a wss:// gateway url (got ws://other.example); use wss:// or remove the fingerprint"
    );
    let flags = ClientFlags {
        tls_fingerprint: Some("nope".into()),
        ..Default::default()
    };
    assert_eq!(
        err(&flags, None, &[]),
        "--tls-fingerprint must be a SHA-256 fingerprint: 64 hex digits, optionally colon-separated and prefixed with \"sha256:\" (got \"nope\")"
    );
    // A configured pin with a ws:// remote url is a config mistake worth reporting.
    let cfg = format!(
        "{{gateway: {{mode: 'remote', remote: {{url: 'ws://100.64.0.5:18789', tlsFingerprint: '{FP}'}}}}}}"
    );
    assert_eq!(
        err(&ClientFlags::default(), Some(&cfg), &[]),
        "a TLS fingerprint requires a wss:// gateway url (got ws://100.64.0.5:18789); use wss:// or remove the fingerprint"
    );
}

#[test]
fn placeholder_credentials_are_rejected() {
    let flags = ClientFlags {
        url: Some("wss://x.example".into()),
        token: Some(Secret::new("")),
        ..Default::default()
    };
    assert_eq!(
        err(&flags, None, &[]),
        "Gateway token must not be blank or the literal string undefined/null (from --token). Set a real token there (for example 48 random hex characters), or remove it so the gateway generates one."
    );
    assert_eq!(
        err(
            &ClientFlags::default(),
            None,
            &[("OPENCLAW_GATEWAY_TOKEN", "__OPENCLAW_REDACTED__")]
        ),
        "Gateway token from OPENCLAW_GATEWAY_TOKEN is the redaction marker __OPENCLAW_REDACTED__, not a real token: `config get` hides secrets. Copy the real value from the config file or the environment instead."
    );
}

#[test]
fn target_never_prints_secrets() {
    let t = ok(&ClientFlags::default(), Some(FULL), &[]);
    let dbg = format!("{t:?}");
    assert!(
        !dbg.contains("local-tok") && !dbg.contains("local-pw"),
        "{dbg}"
    );
}

#[test]
fn ssh_transport_targets_the_tunnel() {
    use clawgate_config::SshHostKeyPolicy;
    // No URL: the tunnel's local end on the remote port, remote credentials.
    let cfg = "{gateway: {mode: 'remote', auth: {token: 'local-tok'},
        remote: {transport: 'ssh', sshTarget: 'me@gw-host:2222', sshIdentity: '/k/id',
                 remotePort: 19001, token: 'remote-tok'}}}";
    let t = ok(&ClientFlags::default(), Some(cfg), ENV_CREDS);
    let ssh = t.ssh.clone().expect("an ssh target");
    assert_eq!(t.url, "ws://127.0.0.1:19001");
    assert_eq!(t.source, TargetSource::RemoteConfig);
    assert_eq!(expose(&t.token), Some("remote-tok"));
    assert_eq!(ssh.target, "me@gw-host:2222");
    assert_eq!(ssh.identity.as_deref(), Some(std::path::Path::new("/k/id")));
    assert_eq!((ssh.remote_port, ssh.local_port), (19001, 19001));
    assert_eq!(ssh.host_key_policy, SshHostKeyPolicy::Strict);
    assert_eq!(ssh.server_url, None);

    // The URL names the local end (its port), remotePort the gateway's port over there.
    let cfg = "{gateway: {mode: 'remote', remote: {transport: 'ssh', sshTarget: 'gw',
        url: 'ws://127.0.0.1:28789', remotePort: 18789, sshHostKeyPolicy: 'openssh'}}}";
    let t = ok(&ClientFlags::default(), Some(cfg), &[]);
    let ssh = t.ssh.unwrap();
    assert_eq!(t.url, "ws://127.0.0.1:28789");
    assert_eq!((ssh.remote_port, ssh.local_port), (18789, 28789));
    assert_eq!(ssh.host_key_policy, SshHostKeyPolicy::Openssh);

    // A wss:// URL keeps its host for TLS through the tunnel; its port is the default.
    let cfg = "{gateway: {mode: 'remote', remote: {transport: 'ssh', sshTarget: 'gw',
        url: 'wss://gw.example.ts.net'}}}";
    let t = ok(&ClientFlags::default(), Some(cfg), &[]);
    let ssh = t.ssh.unwrap();
    assert_eq!(t.url, "wss://127.0.0.1:443");
    assert_eq!(ssh.server_url.as_deref(), Some("wss://gw.example.ts.net"));
    assert_eq!(ssh.remote_port, 443);

    // --url and env URLs bypass the tunnel.
    let flags = ClientFlags {
        url: Some("ws://127.0.0.1:5".into()),
        token: Some(Secret::new("flag-tok")),
        ..Default::default()
    };
    assert!(ok(&flags, Some(cfg), &[]).ssh.is_none());
    // Local mode ignores the transport.
    let local = "{gateway: {remote: {transport: 'ssh', sshTarget: 'gw'}}}";
    assert!(ok(&ClientFlags::default(), Some(local), &[]).ssh.is_none());

    let missing = "{gateway: {mode: 'remote', remote: {transport: 'ssh'}}}";
    assert!(
        err(&ClientFlags::default(), Some(missing), &[]).starts_with(
            "gateway.remote.transport is \"ssh\" but gateway.remote.sshTarget is not set"
        ),
    );
    let bad = "{gateway: {mode: 'remote', remote: {transport: 'ssh', sshTarget: 'gw', sshHostKeyPolicy: 'loose'}}}";
    assert!(parse(bad, &[]).is_err());
}
