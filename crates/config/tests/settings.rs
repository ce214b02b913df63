//! Gateway run settings: precedence flag > env > config > default, auth rules.

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clawgate_config::{
    AuthMode, BindMode, ConfigError, GatewayMode, GatewayRunInputs, GatewaySettings, LoadedConfig,
    RateLimitSettings, Secret, SecretSource, TailscaleMode, TlsSettings, resolve_gateway_settings,
};
use common::{env, parse};

const HOME: (&str, &str) = ("HOME", "/home/u");

fn resolve(
    inputs: &GatewayRunInputs,
    config: Option<&str>,
    pairs: &[(&str, &str)],
) -> Result<GatewaySettings, ConfigError> {
    let loaded: Option<LoadedConfig> = config.map(|text| parse(text, pairs).unwrap());
    resolve_gateway_settings(inputs, loaded.as_ref(), &env(pairs))
}

fn ok(inputs: &GatewayRunInputs, config: Option<&str>, pairs: &[(&str, &str)]) -> GatewaySettings {
    resolve(inputs, config, pairs).unwrap()
}

fn err(inputs: &GatewayRunInputs, config: Option<&str>, pairs: &[(&str, &str)]) -> String {
    match resolve(inputs, config, pairs) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e.to_string(),
    }
}

fn no_flags() -> GatewayRunInputs {
    GatewayRunInputs::default()
}

#[test]
fn zero_config_defaults() {
    let s = ok(&no_flags(), None, &[HOME]);
    assert_eq!(s.port, 18789);
    assert_eq!(s.bind, BindMode::Loopback);
    assert_eq!(s.custom_bind_host, None);
    assert_eq!(s.auth.mode, AuthMode::Token);
    assert_eq!(s.auth.token, None);
    assert_eq!(s.auth.password, None);
    assert_eq!(s.source_of_token, Some(SecretSource::Generated));
    assert_eq!(s.source_of_password, None);
    assert_eq!(
        s.auth.rate_limit,
        RateLimitSettings {
            max_attempts: 10,
            window_ms: 60_000,
            lockout_ms: 300_000,
            exempt_loopback: true
        }
    );
    assert_eq!(s.state_dir, PathBuf::from("/home/u/.openclaw"));
    assert_eq!(
        s.config_path,
        PathBuf::from("/home/u/.openclaw/openclaw.json")
    );
    assert_eq!(s.gateway_mode, None);
    assert!(s.auto_approve_local);
    assert!(s.trusted_proxies.is_empty());
    assert_eq!(s.tls, None);
    assert_eq!(s.tailscale_mode, TailscaleMode::Off);
    assert!(s.hints.is_empty());
}

#[test]
fn config_values_are_used() {
    let s = ok(
        &no_flags(),
        Some(
            "{gateway: {port: 20000, mode: 'local', bind: 'custom', customBindHost: '192.168.1.10',
               auth: {rateLimit: {maxAttempts: 3, lockoutMs: 0}},
               trustedProxies: ['10.0.0.1'], nodes: {pairing: {autoApproveLocal: false},
               commands: {allow: ['a'], deny: ['b']}}, tailscale: {mode: 'serve'}}}",
        ),
        &[HOME],
    );
    assert_eq!(s.port, 20000);
    assert_eq!(s.gateway_mode, Some(GatewayMode::Local));
    assert_eq!(s.bind, BindMode::Custom);
    assert_eq!(s.custom_bind_host, Some(Ipv4Addr::new(192, 168, 1, 10)));
    assert_eq!(s.auth.rate_limit.max_attempts, 3);
    assert_eq!(s.auth.rate_limit.window_ms, 60_000);
    assert_eq!(s.auth.rate_limit.lockout_ms, 0);
    assert!(s.auth.rate_limit.exempt_loopback);
    assert_eq!(s.trusted_proxies, vec!["10.0.0.1"]);
    assert!(!s.auto_approve_local);
    assert_eq!(s.node_commands_allow, vec!["a"]);
    assert_eq!(s.node_commands_deny, vec!["b"]);
    assert_eq!(s.tailscale_mode, TailscaleMode::Serve);
    assert_eq!(s.config_path, PathBuf::from(common::PATH));
}

// ---------------------------------------------------------------------------------------
// Precedence

#[test]
fn port_precedence() {
    let cfg = Some("{gateway: {port: 20000}}");
    let all_env = [
        HOME,
        ("CLAWGATE_GATEWAY_PORT", "20001"),
        ("OPENCLAW_GATEWAY_PORT", "20002"),
    ];
    let flag = GatewayRunInputs {
        port: Some(20003),
        ..no_flags()
    };
    assert_eq!(ok(&flag, cfg, &all_env).port, 20003);
    assert_eq!(ok(&no_flags(), cfg, &all_env).port, 20001);
    assert_eq!(
        ok(
            &no_flags(),
            cfg,
            &[HOME, ("OPENCLAW_GATEWAY_PORT", "20002")]
        )
        .port,
        20002
    );
    assert_eq!(ok(&no_flags(), cfg, &[HOME]).port, 20000);
    assert_eq!(ok(&no_flags(), None, &[HOME]).port, 18789);
    // OpenClaw's env forms host:N and [v6]:N.
    assert_eq!(
        ok(
            &no_flags(),
            None,
            &[("OPENCLAW_GATEWAY_PORT", "127.0.0.1:19001")]
        )
        .port,
        19001
    );
    // An empty CLAWGATE_* variable counts as unset and falls back to OPENCLAW_*.
    assert_eq!(
        ok(
            &no_flags(),
            None,
            &[
                ("CLAWGATE_GATEWAY_PORT", ""),
                ("OPENCLAW_GATEWAY_PORT", "19002")
            ]
        )
        .port,
        19002
    );
}

#[test]
fn bad_env_port_names_the_variable() {
    assert_eq!(
        err(&no_flags(), None, &[("CLAWGATE_GATEWAY_PORT", "abc")]),
        "CLAWGATE_GATEWAY_PORT must be a port number between 1 and 65535, optionally as host:port (got \"abc\"); fix or unset CLAWGATE_GATEWAY_PORT"
    );
    match resolve(&no_flags(), None, &[("OPENCLAW_GATEWAY_PORT", "70000")]) {
        Err(ConfigError::Env { var, message }) => {
            assert_eq!(var, "OPENCLAW_GATEWAY_PORT");
            assert_eq!(
                message,
                "OPENCLAW_GATEWAY_PORT must be a port number between 1 and 65535, optionally as host:port (got \"70000\"); fix or unset OPENCLAW_GATEWAY_PORT"
            );
        }
        other => panic!("{other:?}"),
    }
    // A flag makes the env var irrelevant.
    let flag = GatewayRunInputs {
        port: Some(1234),
        ..no_flags()
    };
    assert_eq!(
        ok(&flag, None, &[("CLAWGATE_GATEWAY_PORT", "abc")]).port,
        1234
    );
}

#[test]
fn zero_port_flag_means_any_free_port() {
    let flag = GatewayRunInputs {
        port: Some(0),
        ..no_flags()
    };
    assert_eq!(ok(&flag, None, &[HOME]).port, 0);
}

#[test]
fn bind_precedence() {
    let cfg = Some("{gateway: {bind: 'lan'}}");
    let flag = GatewayRunInputs {
        bind: Some(BindMode::Tailnet),
        ..no_flags()
    };
    assert_eq!(ok(&flag, cfg, &[]).bind, BindMode::Tailnet);
    assert_eq!(ok(&no_flags(), cfg, &[]).bind, BindMode::Lan);
    assert_eq!(ok(&no_flags(), None, &[]).bind, BindMode::Loopback);
}

#[test]
fn custom_bind_needs_an_ipv4_host() {
    let flag = GatewayRunInputs {
        bind: Some(BindMode::Custom),
        ..no_flags()
    };
    assert_eq!(
        err(&flag, None, &[]),
        "gateway.bind=custom requires gateway.customBindHost (an IPv4 address of this machine, e.g. \"192.168.1.10\")"
    );
    assert_eq!(
        err(
            &flag,
            Some("{gateway: {customBindHost: 'myhost.lan'}}"),
            &[]
        ),
        "gateway.bind=custom requires a valid IPv4 customBindHost (got myhost.lan)"
    );
    // A stale customBindHost is fine when bind is not custom.
    let s = ok(
        &no_flags(),
        Some("{gateway: {bind: 'lan', customBindHost: 'nonsense'}}"),
        &[],
    );
    assert_eq!(s.custom_bind_host, None);
}

#[test]
fn token_precedence_and_source() {
    let cfg = Some("{gateway: {auth: {token: 'from-config'}}}");
    let all_env = [
        ("CLAWGATE_GATEWAY_TOKEN", "from-clawgate-env"),
        ("OPENCLAW_GATEWAY_TOKEN", "from-openclaw-env"),
    ];
    let flag = GatewayRunInputs {
        token: Some(Secret::new("from-flag")),
        ..no_flags()
    };
    let s = ok(&flag, cfg, &all_env);
    assert_eq!(s.auth.token.unwrap().expose(), "from-flag");
    assert_eq!(s.source_of_token, Some(SecretSource::Flag));

    let s = ok(&no_flags(), cfg, &all_env);
    assert_eq!(s.auth.token.unwrap().expose(), "from-clawgate-env");
    assert_eq!(
        s.source_of_token,
        Some(SecretSource::Env("CLAWGATE_GATEWAY_TOKEN".into()))
    );

    let s = ok(&no_flags(), cfg, &all_env[1..]);
    assert_eq!(s.auth.token.unwrap().expose(), "from-openclaw-env");
    assert_eq!(
        s.source_of_token,
        Some(SecretSource::Env("OPENCLAW_GATEWAY_TOKEN".into()))
    );

    let s = ok(&no_flags(), cfg, &[]);
    assert_eq!(s.auth.token.unwrap().expose(), "from-config");
    assert_eq!(
        s.source_of_token,
        Some(SecretSource::Config("gateway.auth.token".into()))
    );
    assert_eq!(s.auth.mode, AuthMode::Token);
}

#[test]
fn password_precedence_and_mode_inference() {
    let cfg = Some("{gateway: {auth: {password: 'pw-config'}}}");
    let s = ok(&no_flags(), cfg, &[]);
    assert_eq!(s.auth.mode, AuthMode::Password);
    assert_eq!(s.auth.password.unwrap().expose(), "pw-config");
    assert_eq!(
        s.source_of_password,
        Some(SecretSource::Config("gateway.auth.password".into()))
    );
    assert_eq!(s.source_of_token, None);

    let s = ok(&no_flags(), cfg, &[("OPENCLAW_GATEWAY_PASSWORD", "pw-oc")]);
    assert_eq!(s.auth.password.unwrap().expose(), "pw-oc");
    let s = ok(
        &no_flags(),
        cfg,
        &[
            ("CLAWGATE_GATEWAY_PASSWORD", "pw-cg"),
            ("OPENCLAW_GATEWAY_PASSWORD", "pw-oc"),
        ],
    );
    assert_eq!(s.auth.password.unwrap().expose(), "pw-cg");
    let flag = GatewayRunInputs {
        password: Some(Secret::new("pw-flag")),
        ..no_flags()
    };
    let s = ok(&flag, cfg, &[("CLAWGATE_GATEWAY_PASSWORD", "pw-cg")]);
    assert_eq!(s.auth.password.unwrap().expose(), "pw-flag");
    assert_eq!(s.source_of_password, Some(SecretSource::Flag));
}

#[test]
fn auth_mode_precedence() {
    let cfg = Some("{gateway: {auth: {mode: 'none', password: 'pw'}}}");
    // Config mode beats inference from the password.
    assert_eq!(ok(&no_flags(), cfg, &[]).auth.mode, AuthMode::None);
    // The flag beats config.
    let flag = GatewayRunInputs {
        auth_mode: Some(AuthMode::Password),
        ..no_flags()
    };
    assert_eq!(ok(&flag, cfg, &[]).auth.mode, AuthMode::Password);
}

#[test]
fn token_and_password_without_explicit_mode_is_an_error() {
    let both = Some("{gateway: {auth: {token: 'tok', password: 'pw'}}}");
    assert_eq!(
        err(&no_flags(), both, &[]),
        "Gateway auth has both a token (from gateway.auth.token) and a password (from gateway.auth.password), but no auth mode is set. Set gateway.auth.mode to token or password (or pass --auth token|password)."
    );
    assert_eq!(
        err(
            &no_flags(),
            Some("{gateway: {auth: {password: 'pw'}}}"),
            &[("OPENCLAW_GATEWAY_TOKEN", "tok")]
        ),
        "Gateway auth has both a token (from OPENCLAW_GATEWAY_TOKEN) and a password (from gateway.auth.password), but no auth mode is set. Set gateway.auth.mode to token or password (or pass --auth token|password)."
    );
    let both_flags = GatewayRunInputs {
        token: Some(Secret::new("t")),
        password: Some(Secret::new("p")),
        ..no_flags()
    };
    assert_eq!(
        err(&both_flags, None, &[]),
        "Gateway auth has both a token (from --token) and a password (from --password), but no auth mode is set. Set gateway.auth.mode to token or password (or pass --auth token|password)."
    );
    // Explicit modes settle it.
    let s = ok(
        &no_flags(),
        Some("{gateway: {auth: {mode: 'password', token: 'tok', password: 'pw'}}}"),
        &[],
    );
    assert_eq!(s.auth.mode, AuthMode::Password);
    let flag = GatewayRunInputs {
        auth_mode: Some(AuthMode::Token),
        ..no_flags()
    };
    assert_eq!(ok(&flag, both, &[]).auth.mode, AuthMode::Token);
}

#[test]
fn remote_token_never_enables_local_auth() {
    let cfg = Some(
        "{gateway: {remote: {url: 'wss://x.example', token: 'remote-tok', password: 'remote-pw'}}}",
    );
    let s = ok(&no_flags(), cfg, &[]);
    assert_eq!(s.auth.mode, AuthMode::Token);
    assert_eq!(s.auth.token, None);
    assert_eq!(s.auth.password, None);
    assert_eq!(s.source_of_token, Some(SecretSource::Generated));
    assert_eq!(
        s.hints,
        vec![
            "\"gateway.remote.token\" is for remote CLI calls; it does not enable local gateway auth."
        ]
    );
    // And remote.password does not satisfy password mode.
    assert_eq!(
        err(
            &no_flags(),
            Some("{gateway: {auth: {mode: 'password'}, remote: {password: 'remote-pw'}}}"),
            &[]
        ),
        "Gateway auth is set to password, but no password is configured.\nSet gateway.auth.password (or CLAWGATE_GATEWAY_PASSWORD / OPENCLAW_GATEWAY_PASSWORD), or pass --password.\n\"gateway.remote.password\" is for remote CLI calls; it does not enable local gateway auth."
    );
}

#[test]
fn password_mode_without_password() {
    let flag = GatewayRunInputs {
        auth_mode: Some(AuthMode::Password),
        ..no_flags()
    };
    assert_eq!(
        err(&flag, None, &[]),
        "Gateway auth is set to password, but no password is configured.\nSet gateway.auth.password (or CLAWGATE_GATEWAY_PASSWORD / OPENCLAW_GATEWAY_PASSWORD), or pass --password."
    );
    // A token does not help.
    assert!(
        err(&flag, None, &[("CLAWGATE_GATEWAY_TOKEN", "tok")])
            .starts_with("Gateway auth is set to password, but no password is configured.")
    );
}

#[test]
fn blank_or_placeholder_tokens_are_rejected() {
    let flag = GatewayRunInputs {
        token: Some(Secret::new("  ")),
        ..no_flags()
    };
    assert_eq!(
        err(&flag, None, &[]),
        "Gateway token must not be blank or the literal string undefined/null (from --token). Set a real token there (for example 48 random hex characters), or remove it so the gateway generates one."
    );
    assert_eq!(
        err(
            &no_flags(),
            None,
            &[("OPENCLAW_GATEWAY_TOKEN", "undefined")]
        ),
        "Gateway token must not be blank or the literal string undefined/null (from OPENCLAW_GATEWAY_TOKEN). Set a real token there (for example 48 random hex characters), or remove it so the gateway generates one."
    );
    assert_eq!(
        err(&no_flags(), Some("{gateway: {auth: {token: 'null'}}}"), &[]),
        "Gateway token must not be blank or the literal string undefined/null (from gateway.auth.token). Set a real token there (for example 48 random hex characters), or remove it so the gateway generates one."
    );
    assert_eq!(
        err(&no_flags(), Some("{gateway: {auth: {token: ''}}}"), &[]),
        "Gateway token must not be blank or the literal string undefined/null (from gateway.auth.token). Set a real token there (for example 48 random hex characters), or remove it so the gateway generates one."
    );
    assert_eq!(
        err(
            &no_flags(),
            Some("{gateway: {auth: {password: 'NULL'}}}"),
            &[]
        ),
        "Gateway password must not be blank or the literal string undefined/null (from gateway.auth.password). Set a real password there."
    );
    // An empty env var is "unset", not blank: the config token is used.
    let s = ok(
        &no_flags(),
        Some("{gateway: {auth: {token: 'cfg-tok'}}}"),
        &[("CLAWGATE_GATEWAY_TOKEN", "")],
    );
    assert_eq!(s.auth.token.unwrap().expose(), "cfg-tok");
    // A placeholder in a secret that the mode does not use is not checked (as OpenClaw).
    let s = ok(
        &no_flags(),
        Some("{gateway: {auth: {mode: 'password', password: 'pw', token: 'undefined'}}}"),
        &[],
    );
    assert_eq!(s.auth.mode, AuthMode::Password);
}

#[test]
fn the_redaction_marker_is_not_a_token() {
    assert_eq!(
        err(
            &no_flags(),
            None,
            &[("CLAWGATE_GATEWAY_TOKEN", "__OPENCLAW_REDACTED__")]
        ),
        "Gateway token from CLAWGATE_GATEWAY_TOKEN is the redaction marker __OPENCLAW_REDACTED__, not a real token: `config get` hides secrets. Copy the real value from the config file or the environment instead."
    );
}

#[test]
fn trusted_proxy_mode_rules() {
    let flag = GatewayRunInputs {
        auth_mode: Some(AuthMode::TrustedProxy),
        ..no_flags()
    };
    assert_eq!(
        err(&flag, None, &[]),
        "gateway auth mode=trusted-proxy requires gateway.trustedProxies to be configured with at least one proxy IP"
    );
    let cfg = Some("{gateway: {trustedProxies: ['10.0.0.2'], auth: {token: 'tok'}}}");
    assert_eq!(
        err(&flag, cfg, &[]),
        "gateway auth mode is trusted-proxy, but a shared token is also configured; remove gateway.auth.token because trusted-proxy and token auth are mutually exclusive"
    );
    let s = ok(
        &flag,
        Some("{gateway: {trustedProxies: ['10.0.0.2']}}"),
        &[],
    );
    assert_eq!(s.auth.mode, AuthMode::TrustedProxy);
    assert_eq!(s.source_of_token, None);
}

#[test]
fn none_mode_needs_nothing() {
    let s = ok(&no_flags(), Some("{gateway: {auth: {mode: 'none'}}}"), &[]);
    assert_eq!(s.auth.mode, AuthMode::None);
    assert_eq!(s.source_of_token, None);
}

#[test]
fn state_dir_and_config_path() {
    let flag = GatewayRunInputs {
        state_dir: Some("/srv/claw".into()),
        ..no_flags()
    };
    let s = ok(&flag, None, &[HOME, ("OPENCLAW_STATE_DIR", "/env/state")]);
    assert_eq!(s.state_dir, PathBuf::from("/srv/claw"));
    assert_eq!(s.config_path, PathBuf::from("/srv/claw/openclaw.json"));

    let s = ok(
        &no_flags(),
        None,
        &[HOME, ("OPENCLAW_STATE_DIR", "/env/state")],
    );
    assert_eq!(s.state_dir, PathBuf::from("/env/state"));
    let s = ok(
        &no_flags(),
        None,
        &[
            HOME,
            ("CLAWGATE_STATE_DIR", "/cg/state"),
            ("OPENCLAW_STATE_DIR", "/env/state"),
            ("OPENCLAW_CONFIG_PATH", "/etc/oc.json"),
        ],
    );
    assert_eq!(s.state_dir, PathBuf::from("/cg/state"));
    assert_eq!(s.config_path, PathBuf::from("/etc/oc.json"));
    let flag = GatewayRunInputs {
        config_path: Some("/flag/c.json".into()),
        ..no_flags()
    };
    assert_eq!(
        ok(&flag, None, &[("CLAWGATE_CONFIG_PATH", "/x.json")]).config_path,
        PathBuf::from("/flag/c.json")
    );
}

#[test]
fn tls_defaults_live_in_the_state_dir() {
    let s = ok(
        &no_flags(),
        Some("{gateway: {tls: {enabled: true}}}"),
        &[HOME],
    );
    assert_eq!(
        s.tls,
        Some(TlsSettings {
            cert_path: "/home/u/.openclaw/gateway/tls/gateway-cert.pem".into(),
            key_path: "/home/u/.openclaw/gateway/tls/gateway-key.pem".into(),
            ca_path: None,
            auto_generate: true,
        })
    );
    let s = ok(
        &no_flags(),
        Some(
            "{gateway: {tls: {enabled: true, autoGenerate: false, certPath: '/c.pem', keyPath: '~/k.pem', caPath: '/ca.pem'}}}",
        ),
        &[HOME],
    );
    assert_eq!(
        s.tls,
        Some(TlsSettings {
            cert_path: "/c.pem".into(),
            key_path: "/home/u/k.pem".into(),
            ca_path: Some("/ca.pem".into()),
            auto_generate: false,
        })
    );
    assert_eq!(
        ok(
            &no_flags(),
            Some("{gateway: {tls: {certPath: '/c.pem'}}}"),
            &[]
        )
        .tls,
        None
    );
}

#[test]
fn settings_never_print_secrets() {
    let flag = GatewayRunInputs {
        token: Some(Secret::new("flag-token-value")),
        password: Some(Secret::new("flag-password-value")),
        auth_mode: Some(AuthMode::Token),
        ..no_flags()
    };
    let s = ok(&flag, None, &[]);
    let dbg = format!("{s:?} {flag:?}");
    assert!(!dbg.contains("flag-token-value"), "{dbg}");
    assert!(!dbg.contains("flag-password-value"), "{dbg}");
}

#[test]
fn full_fixture_settings() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openclaw-full.json5");
    let pairs = [
        HOME,
        ("GW_TOKEN", "gw-token-0123456789abcdef0123456789abcdef"),
        ("OPENAI_BASE", "https://api.openai.com"),
        ("DISCORD_BOT_TOKEN", "d"),
    ];
    let loaded = clawgate_config::load_file(&path, &env(&pairs)).unwrap();
    let s = resolve_gateway_settings(&no_flags(), Some(&loaded), &env(&pairs)).unwrap();
    assert_eq!(s.port, 18790);
    assert_eq!(s.bind, BindMode::Lan);
    assert_eq!(s.auth.mode, AuthMode::Token);
    assert_eq!(
        s.auth.token.unwrap().expose(),
        "gw-token-0123456789abcdef0123456789abcdef"
    );
    assert_eq!(
        s.source_of_token,
        Some(SecretSource::Config("gateway.auth.token".into()))
    );
    assert_eq!(s.auth.rate_limit.max_attempts, 5);
    assert!(!s.auto_approve_local);
    assert_eq!(s.config_path, path);
}
