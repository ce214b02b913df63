//! Loading OpenClaw config files: syntax, `${VAR}`, SecretRefs, type errors, key report,
//! redaction.

mod common;

use std::path::{Path, PathBuf};

use clawgate_config::{
    AuthMode, BindMode, ConfigError, ConfigLocation, GatewayMode, PathOrigin, RemoteTransport,
    SshVerifyConfig, TailscaleMode, config_hash, load_config, load_file, locate_config, redacted,
};
use common::{PATH, env, parse, parse_err};
use serde_json::json;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openclaw-full.json5")
}

const FIXTURE_ENV: &[(&str, &str)] = &[
    ("HOME", "/home/u"),
    ("GW_TOKEN", "gw-token-0123456789abcdef0123456789abcdef"),
    ("OPENAI_BASE", "https://api.openai.com"),
    ("DISCORD_BOT_TOKEN", "discord-bot-token-value"),
];

#[test]
fn full_openclaw_config_loads() {
    let cfg = load_file(&fixture(), &env(FIXTURE_ENV)).unwrap();
    let gw = &cfg.gateway;
    assert_eq!(gw.port, Some(18790));
    assert_eq!(gw.mode, Some(GatewayMode::Local));
    assert_eq!(gw.bind, Some(BindMode::Lan));
    assert_eq!(gw.auth.mode, Some(AuthMode::Token));
    assert_eq!(
        gw.auth.token.as_ref().unwrap().expose(),
        "gw-token-0123456789abcdef0123456789abcdef"
    );
    let rate_limit = gw.auth.rate_limit.clone().unwrap();
    assert_eq!(rate_limit.max_attempts, Some(5));
    assert_eq!(rate_limit.window_ms, Some(30_000));
    assert_eq!(rate_limit.lockout_ms, Some(600_000));
    assert_eq!(rate_limit.exempt_loopback, Some(false));
    assert_eq!(gw.trusted_proxies, vec!["10.0.0.0/8", "127.0.0.1"]);
    assert_eq!(gw.tailscale_mode, Some(TailscaleMode::Off));
    assert_eq!(
        gw.remote.url.as_deref(),
        Some("wss://gateway.example.ts.net")
    );
    assert_eq!(
        gw.remote.token.as_ref().unwrap().expose(),
        "remote-cli-token"
    );
    assert_eq!(gw.remote.transport, Some(RemoteTransport::Direct));
    assert_eq!(gw.remote.ssh_target.as_deref(), Some("me@gateway-host"));
    assert_eq!(
        gw.remote.tls_fingerprint.as_deref(),
        Some("aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899")
    );
    assert_eq!(gw.auto_approve_local, Some(false));
    assert_eq!(gw.node_auto_approve_cidrs, vec!["192.168.1.0/24"]);
    assert_eq!(gw.node_commands_allow, vec!["canvas.snapshot"]);
    assert_eq!(gw.node_commands_deny, vec!["system.run"]);
    assert_eq!(gw.tls.enabled, Some(false));
    assert_eq!(gw.tls.auto_generate, Some(true));

    assert_eq!(
        cfg.ignored,
        vec![
            "env",
            "secrets",
            "auth",
            "models.mode",
            "agents.defaults.workspace",
            "agents.defaults.heartbeat",
            "agents.defaults.sandbox",
            "agents.list",
            "tools",
            "messages",
            "commands",
            "session",
            "channels.discord",
            "channels.whatsapp",
            "hooks",
            "skills",
            "plugins.entries.voice-call",
            "plugins.entries.memory-lancedb",
            "logging",
            "gateway.controlUi.environment",
            "gateway.nodes.browser",
            "gateway.reload",
            "gateway.http",
            "gateway.cliAgents",
        ]
    );
    assert_eq!(cfg.unknown, vec!["gateway.tailscale.resetOnExit"]);
    let tg = cfg.telegram.as_ref().expect("channels.telegram is typed");
    assert_eq!(
        tg.token.as_ref().map(|t| t.expose()),
        Some("123456:ABC-telegram-bot-token")
    );
    assert_eq!(tg.allow_from, vec!["12345678"]);

    let models = &cfg.models;
    assert_eq!(
        models.primary.as_ref().map(ToString::to_string).as_deref(),
        Some("anthropic/claude-opus-4-5")
    );
    assert_eq!(
        models
            .fallbacks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["openai/gpt-5.1"]
    );
    let openai = models.provider("openai").unwrap();
    assert_eq!(
        openai.base_url.as_deref(),
        Some("https://api.openai.com/v1")
    );
    assert_eq!(openai.api_key, None, "OPENAI_API_KEY is not set");
    assert_eq!(openai.models[0].name.as_deref(), Some("GPT-5.1"));
    assert_eq!(openai.models[0].context_window, Some(400_000));
    let llama = models.provider("local-llama").unwrap();
    assert_eq!(
        llama.api,
        Some(clawgate_config::ModelApi::OpenAiCompletions)
    );
    assert_eq!(
        models
            .unresolved
            .iter()
            .map(|u| (u.key.as_str(), u.var.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("models.providers.openai.apiKey", "OPENAI_API_KEY"),
            ("models.providers.local-llama.apiKey", "LLAMA_KEY"),
        ]
    );
    assert_eq!(
        cfg.warnings,
        vec![
            "Missing env var \"OPENAI_API_KEY\" referenced at config path: models.providers.openai.apiKey (left unset: model requests that need this key fail until the variable is set)",
            "Missing env var \"OPENAI_API_KEY\" referenced at config path: plugins.entries.memory-lancedb.config.embedding.apiKey (left as written; clawgate does not use this key)",
        ]
    );

    // raw is substituted, authored is not.
    assert_eq!(
        cfg.raw["models"]["providers"]["openai"]["baseUrl"],
        "https://api.openai.com/v1"
    );
    assert_eq!(
        cfg.raw["models"]["providers"]["openai"]["apiKey"],
        "${OPENAI_API_KEY}"
    );
    assert_eq!(cfg.raw["tools"]["web"]["search"]["apiKey"], "");
    assert_eq!(cfg.authored["gateway"]["auth"]["token"], "${GW_TOKEN}");
    assert_eq!(cfg.raw["agents"]["list"][1]["identity"]["emoji"], "🛠️");
}

#[test]
fn diagnostics_are_ready_to_log() {
    let cfg = load_file(&fixture(), &env(FIXTURE_ENV)).unwrap();
    let p = fixture().display().to_string();
    let lines = cfg.diagnostics();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[0],
        format!(
            "{p}: ignoring keys clawgate does not implement: env, secrets, auth, models.mode, agents.defaults.workspace, agents.defaults.heartbeat, agents.defaults.sandbox, agents.list, tools, messages, commands, session, channels.discord, channels.whatsapp, hooks, skills, plugins.entries.voice-call, plugins.entries.memory-lancedb, logging, gateway.controlUi.environment, gateway.nodes.browser, gateway.reload, gateway.http, gateway.cliAgents"
        )
    );
    assert_eq!(
        lines[1],
        format!(
            "{p}: unknown key gateway.tailscale.resetOnExit (retired: Tailscale routes now follow the gateway's lifetime; remove it)"
        )
    );
    assert!(lines[2].starts_with(&format!("{p}: Missing env var \"OPENAI_API_KEY\"")));
}

#[test]
fn redaction_hides_every_secret_of_the_full_config() {
    let cfg = load_file(&fixture(), &env(FIXTURE_ENV)).unwrap();
    let r = redacted(&cfg.raw);
    const R: &str = "__OPENCLAW_REDACTED__";
    assert_eq!(r["gateway"]["auth"]["token"], R);
    assert_eq!(r["gateway"]["remote"]["token"], R);
    assert_eq!(r["channels"]["telegram"]["botToken"], R);
    assert_eq!(r["channels"]["discord"]["token"], R);
    assert_eq!(r["hooks"]["token"], R);
    assert_eq!(r["env"]["vars"]["GROQ_API_KEY"], R);
    assert_eq!(r["models"]["providers"]["local-llama"]["apiKey"], R);
    // Non-secrets keep their values.
    assert_eq!(r["gateway"]["port"], 18790);
    assert_eq!(
        r["gateway"]["remote"]["url"],
        "wss://gateway.example.ts.net"
    );
    assert_eq!(
        r["models"]["providers"]["openai"]["models"][0]["maxTokens"],
        128000
    );
    assert_eq!(r["secrets"]["providers"]["default"]["source"], "env");
    let text = serde_json::to_string(&r).unwrap();
    for secret in [
        "gw-token-0123456789abcdef",
        "remote-cli-token",
        "ABC-telegram-bot-token",
        "discord-bot-token-value",
        "hooks-shared-secret",
        "gsk-inline",
        "LLAMA_KEY",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn redaction_rules() {
    let raw = json!({
        "a": {"Password": "p", "api_key": 123, "enabled": true, "nested": {"clientSecret": "s"}},
        "keys": {"privateKey": "-----BEGIN", "passphrase": "pp"},
        "apiKeys": ["k1", "k2"],
        "ref": {"source": "exec", "provider": "vault", "id": "gw"},
        "notRef": {"source": "x", "id": "y", "extra": 1},
        "secrets": {"providers": {"vault": {"source": "exec", "command": "vault"}}},
        "maxTokens": 4096,
        "tokenFile": "/run/secrets/token",
        "token": null,
    });
    assert_eq!(
        redacted(&raw),
        json!({
            "a": {"Password": "__OPENCLAW_REDACTED__", "api_key": "__OPENCLAW_REDACTED__", "enabled": true, "nested": {"clientSecret": "__OPENCLAW_REDACTED__"}},
            "keys": {"privateKey": "__OPENCLAW_REDACTED__", "passphrase": "__OPENCLAW_REDACTED__"},
            "apiKeys": ["__OPENCLAW_REDACTED__", "__OPENCLAW_REDACTED__"],
            "ref": "__OPENCLAW_REDACTED__",
            "notRef": {"source": "x", "id": "y", "extra": 1},
            "secrets": {"providers": {"vault": {"source": "exec", "command": "vault"}}},
            "maxTokens": 4096,
            "tokenFile": "/run/secrets/token",
            "token": null,
        })
    );
}

#[test]
fn config_hash_is_stable_across_formatting() {
    let a = parse("{gateway: {port: 1, bind: 'lan'}}", &[]).unwrap();
    let b = parse(
        "// c\n{\n  \"gateway\": {\"bind\": \"lan\", \"port\": 1,},\n}",
        &[],
    )
    .unwrap();
    let c = parse("{gateway: {port: 2, bind: 'lan'}}", &[]).unwrap();
    assert_eq!(config_hash(&a.raw), config_hash(&b.raw));
    assert_ne!(config_hash(&a.raw), config_hash(&c.raw));
}

// ---------------------------------------------------------------------------------------
// Syntax errors

#[test]
fn syntax_error_names_file_line_column_and_expectation() {
    assert_eq!(
        parse_err("{\n  gateway: {\n    port: ,\n  },\n}\n", &[]),
        format!("invalid JSON5 in {PATH} at line 3 column 11: expected value")
    );
    assert_eq!(
        parse_err(
            "{\n  gateway: {\n    port: 1\n    bind: 'lan'\n  }\n}\n",
            &[]
        ),
        format!("invalid JSON5 in {PATH} at line 4 column 5: expected comma")
    );
    assert_eq!(
        parse_err("{ gateway: { token: \"abc\n\" } }", &[]),
        format!("invalid JSON5 in {PATH} at line 1 column 25: line terminator in string")
    );
}

#[test]
fn syntax_error_fields_are_one_based() {
    match parse("{\n  port: \n}", &[]) {
        Err(ConfigError::Syntax {
            path,
            line,
            column,
            message,
        }) => {
            assert_eq!(path, PathBuf::from(PATH));
            assert_eq!((line, column), (Some(3), Some(1)));
            assert_eq!(message, "expected value");
        }
        other => panic!("{other:?}"),
    }
}

/// A file nested 100 000 levels deep (an input tried by hand while writing the config_load
/// fuzz target) overflowed the stack and aborted the process instead of getting an error.
#[test]
fn deep_nesting_is_a_syntax_error_not_a_stack_overflow() {
    let deep = format!("{{agents: {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(
        parse_err(&deep, &[]),
        format!(
            "invalid JSON5 in {PATH} at line 1 column 137: objects and arrays nested more than 128 levels deep; a config needs far fewer, so this value is probably generated by mistake: remove or flatten it"
        )
    );
    // 128 levels (the root object and 127 arrays) are fine.
    let limit = format!("{{a: {}{}}}", "[".repeat(127), "]".repeat(127));
    parse(&limit, &[]).unwrap();
    let over = format!("{{\n a: {}{}}}", "[".repeat(128), "]".repeat(128));
    match parse(&over, &[]) {
        Err(ConfigError::Syntax { line, column, .. }) => {
            assert_eq!((line, column), (Some(2), Some(132)));
        }
        other => panic!("{other:?}"),
    }
    // Brackets in strings and comments are not nesting.
    let quoted = format!(
        "{{a: '{0}', b: \"{0}\", // {0}\n /* {0} */ c: 'it\\'s {0}'}}",
        "[".repeat(200)
    );
    parse(&quoted, &[]).unwrap();
}

#[test]
fn empty_file_is_an_empty_config() {
    let cfg = parse("  \n", &[]).unwrap();
    assert_eq!(cfg.raw, json!({}));
    assert!(cfg.ignored.is_empty() && cfg.unknown.is_empty());
}

#[test]
fn root_must_be_an_object() {
    assert_eq!(
        parse_err("[1, 2]", &[]),
        format!(
            "{PATH}: the config must be an object like {{ gateway: {{ port: 18789 }} }} (got an array)"
        )
    );
    assert_eq!(
        parse_err("{gateway: 'lan'}", &[]),
        format!("{PATH}: gateway must be an object (got \"lan\")")
    );
}

// ---------------------------------------------------------------------------------------
// Type errors in known keys

#[test]
fn type_errors_name_the_key_the_value_and_the_fix() {
    let cases: &[(&str, &str)] = &[
        (
            "{gateway: {port: 'abc'}}",
            "gateway.port must be an integer between 1 and 65535 (got \"abc\")",
        ),
        (
            "{gateway: {port: 70000}}",
            "gateway.port must be an integer between 1 and 65535 (got 70000)",
        ),
        (
            "{gateway: {port: 0}}",
            "gateway.port must be an integer between 1 and 65535 (got 0)",
        ),
        (
            "{gateway: {port: 18789.5}}",
            "gateway.port must be an integer between 1 and 65535 (got 18789.5)",
        ),
        (
            "{gateway: {bind: '0.0.0.0'}}",
            "gateway.bind must be one of loopback, lan, tailnet, custom, auto (got \"0.0.0.0\"); to listen on all interfaces use \"lan\"",
        ),
        (
            "{gateway: {bind: 'localhost'}}",
            "gateway.bind must be one of loopback, lan, tailnet, custom, auto (got \"localhost\"); to listen on this machine only use \"loopback\"",
        ),
        (
            "{gateway: {bind: true}}",
            "gateway.bind must be one of loopback, lan, tailnet, custom, auto (got true)",
        ),
        (
            "{gateway: {mode: 'server'}}",
            "gateway.mode must be one of local, remote (got \"server\")",
        ),
        (
            "{gateway: {auth: {mode: 'basic'}}}",
            "gateway.auth.mode must be one of none, token, password, trusted-proxy (got \"basic\")",
        ),
        (
            "{gateway: {auth: {token: 12345}}}",
            "gateway.auth.token must be a string or a SecretRef object {\"source\": \"env\", \"provider\": \"default\", \"id\": \"ENV_VAR_NAME\"} (got a number)",
        ),
        (
            "{gateway: {auth: {password: {value: 'x'}}}}",
            "gateway.auth.password must be a string or a SecretRef object {\"source\": \"env\", \"provider\": \"default\", \"id\": \"ENV_VAR_NAME\"} (got an object)",
        ),
        (
            "{gateway: {auth: 'token'}}",
            "gateway.auth must be an object (got \"token\")",
        ),
        (
            "{gateway: {auth: {rateLimit: {maxAttempts: 0}}}}",
            "gateway.auth.rateLimit.maxAttempts must be an integer between 1 and 4294967295 (got 0)",
        ),
        (
            "{gateway: {auth: {rateLimit: {windowMs: 0}}}}",
            "gateway.auth.rateLimit.windowMs must be an integer of at least 1 (got 0)",
        ),
        (
            "{gateway: {auth: {rateLimit: {lockoutMs: '5m'}}}}",
            "gateway.auth.rateLimit.lockoutMs must be an integer of at least 0 (got \"5m\")",
        ),
        (
            "{gateway: {auth: {rateLimit: {exemptLoopback: 'yes'}}}}",
            "gateway.auth.rateLimit.exemptLoopback must be true or false (got \"yes\")",
        ),
        (
            "{gateway: {remote: {transport: 'tcp'}}}",
            "gateway.remote.transport must be one of ssh, direct (got \"tcp\")",
        ),
        (
            "{gateway: {remote: {remotePort: -1}}}",
            "gateway.remote.remotePort must be an integer between 1 and 65535 (got -1)",
        ),
        (
            "{gateway: {remote: {tlsFingerprint: 'abc'}}}",
            "gateway.remote.tlsFingerprint must be a SHA-256 fingerprint: 64 hex digits, optionally colon-separated and prefixed with \"sha256:\" (got \"abc\")",
        ),
        (
            "{gateway: {trustedProxies: '10.0.0.1'}}",
            "gateway.trustedProxies must be an array of strings (got \"10.0.0.1\")",
        ),
        (
            "{gateway: {trustedProxies: ['10.0.0.1', 'proxy.lan']}}",
            "gateway.trustedProxies[1] must be an IP address or CIDR such as \"10.0.0.1\" or \"10.0.0.0/8\" (got \"proxy.lan\")",
        ),
        (
            "{gateway: {nodes: {commands: {deny: ['a', 7]}}}}",
            "gateway.nodes.commands.deny[1] must be a string (got 7)",
        ),
        (
            "{gateway: {nodes: {pairing: {autoApproveLocal: 1}}}}",
            "gateway.nodes.pairing.autoApproveLocal must be true or false (got 1)",
        ),
        (
            "{gateway: {nodes: {pairing: {autoApproveCidrs: ['100.64.0.0/10', 'tailnet']}}}}",
            "gateway.nodes.pairing.autoApproveCidrs[1] must be an IP address or CIDR such as \"10.0.0.1\" or \"10.0.0.0/8\" (got \"tailnet\")",
        ),
        (
            "{gateway: {nodes: {pairing: {sshVerify: 'yes'}}}}",
            "gateway.nodes.pairing.sshVerify must be true, false or an object {user, identity, timeoutMs, cidrs} (got \"yes\")",
        ),
        (
            "{gateway: {nodes: {pairing: {sshVerify: {port: 2222}}}}}",
            "gateway.nodes.pairing.sshVerify has an unknown key \"port\"; the keys are user, identity, timeoutMs, cidrs",
        ),
        (
            "{gateway: {nodes: {pairing: {sshVerify: {timeoutMs: 0}}}}}",
            "gateway.nodes.pairing.sshVerify.timeoutMs must be an integer of at least 1 (got 0)",
        ),
        (
            "{gateway: {nodes: {pairing: {sshVerify: {user: 7}}}}}",
            "gateway.nodes.pairing.sshVerify.user must be a string (got 7)",
        ),
        (
            "{gateway: {nodes: {pairing: {sshVerify: {cidrs: ['lan']}}}}}",
            "gateway.nodes.pairing.sshVerify.cidrs[0] must be an IP address or CIDR such as \"10.0.0.1\" or \"10.0.0.0/8\" (got \"lan\")",
        ),
        (
            "{gateway: {tls: {enabled: 'true'}}}",
            "gateway.tls.enabled must be true or false (got \"true\")",
        ),
        (
            "{gateway: {tailscale: {mode: 'on'}}}",
            "gateway.tailscale.mode must be one of off, serve, funnel (got \"on\")",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_err(text, &[]), format!("{PATH}: {want}"), "{text}");
    }
}

/// `gateway.nodes.pairing.sshVerify`: absent and `true` are on with defaults, `false` off, the
/// object form on with its fields (blank strings are unset).
#[test]
fn ssh_verify_forms() {
    let on = SshVerifyConfig::default();
    assert!(on.enabled);
    for (text, want) in [
        ("{}", on.clone()),
        (
            "{gateway: {nodes: {pairing: {sshVerify: true}}}}",
            on.clone(),
        ),
        (
            "{gateway: {nodes: {pairing: {sshVerify: false}}}}",
            SshVerifyConfig {
                enabled: false,
                ..on.clone()
            },
        ),
        (
            "{gateway: {nodes: {pairing: {sshVerify: {user: ' ops ', identity: '  ', timeoutMs: 500, cidrs: ['10.0.0.0/8']}}}}}",
            SshVerifyConfig {
                enabled: true,
                user: Some("ops".into()),
                identity: None,
                timeout_ms: Some(500),
                cidrs: vec!["10.0.0.0/8".into()],
            },
        ),
    ] {
        let cfg = parse(text, &[]).unwrap();
        assert_eq!(cfg.gateway.node_ssh_verify, want, "{text}");
    }
}

#[test]
fn invalid_error_carries_the_dotted_key() {
    match parse("{gateway: {auth: {rateLimit: {windowMs: 'x'}}}}", &[]) {
        Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "gateway.auth.rateLimit.windowMs"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn secret_type_errors_never_print_the_value() {
    let msg = parse_err("{gateway: {remote: {password: 987654321}}}", &[]);
    assert!(!msg.contains("987654321"), "{msg}");
}

#[test]
fn ignored_and_unknown_keys_are_never_fatal() {
    let cfg = parse(
        "{gateway: {controlUi: {root: 5, bogus: true}, prot: 'x', bnid: 1}, agents: 'whatever', channels: {}}",
        &[],
    )
    .unwrap();
    assert_eq!(
        cfg.ignored,
        vec!["gateway.controlUi.root", "agents", "channels"]
    );
    assert_eq!(
        cfg.unknown,
        vec!["gateway.controlUi.bogus", "gateway.prot", "gateway.bnid"]
    );
    assert_eq!(
        cfg.diagnostics()[1..],
        [
            format!("{PATH}: unknown key gateway.controlUi.bogus (typo?)"),
            format!("{PATH}: unknown key gateway.prot (did you mean gateway.port?)"),
            format!("{PATH}: unknown key gateway.bnid (did you mean gateway.bind?)"),
        ]
    );
}

#[test]
fn legacy_gateway_token_gets_a_specific_hint() {
    let cfg = parse("{gateway: {token: 'abc'}}", &[]).unwrap();
    assert_eq!(cfg.unknown, vec!["gateway.token"]);
    assert_eq!(
        cfg.diagnostics(),
        vec![format!(
            "{PATH}: unknown key gateway.token (use gateway.auth.token (this key does not enable gateway auth))"
        )]
    );
    assert_eq!(cfg.gateway.auth.token, None);
}

#[test]
fn bookkeeping_keys_are_not_reported() {
    let cfg = parse(
        "{meta: {lastTouchedVersion: '1'}, wizard: {}, $schema: 'x'}",
        &[],
    )
    .unwrap();
    assert!(cfg.ignored.is_empty());
}

#[test]
fn include_inside_gateway_is_an_error_and_at_top_level_a_warning() {
    assert_eq!(
        parse_err("{gateway: {auth: {$include: './auth.json5'}}}", &[]),
        format!(
            "{PATH}: gateway.auth.$include: $include is not supported by clawgate yet; copy the included gateway settings into {PATH} instead"
        )
    );
    let cfg = parse("{$include: ['./agents.json5']}", &[]).unwrap();
    assert_eq!(cfg.ignored, vec!["$include"]);
    assert_eq!(
        cfg.warnings,
        vec![
            "$include is not supported by clawgate yet: settings in included files (including any gateway settings) are not applied"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// ${VAR} substitution and SecretRefs

#[test]
fn env_substitution_in_gateway_keys() {
    let cfg = parse(
        r#"{gateway: {
            auth: {token: "${TOK}"},
            remote: {url: "${BASE}/gw", password: "pre-${TOK}-post"},
            customBindHost: "$${NOT_A_VAR}",
            port: "${PORT}",
            tls: {enabled: "${TLS_ON}", certPath: "~/certs/${NAME}.pem"},
        }}"#,
        &[
            ("TOK", "t0k"),
            ("BASE", "wss://h.example"),
            ("PORT", "19001"),
            ("TLS_ON", "true"),
            ("NAME", "gw"),
            ("HOME", "/home/u"),
        ],
    )
    .unwrap();
    let gw = &cfg.gateway;
    assert_eq!(gw.auth.token.as_ref().unwrap().expose(), "t0k");
    assert_eq!(gw.remote.url.as_deref(), Some("wss://h.example/gw"));
    assert_eq!(
        gw.remote.password.as_ref().unwrap().expose(),
        "pre-t0k-post"
    );
    assert_eq!(gw.custom_bind_host.as_deref(), Some("${NOT_A_VAR}"));
    assert_eq!(gw.port, Some(19001));
    assert_eq!(gw.tls.enabled, Some(true));
    assert_eq!(
        gw.tls.cert_path.as_deref(),
        Some(Path::new("/home/u/certs/gw.pem"))
    );
}

#[test]
fn numbers_as_literal_strings_are_still_rejected() {
    assert_eq!(
        parse_err("{gateway: {port: '18789'}}", &[]),
        format!("{PATH}: gateway.port must be an integer between 1 and 65535 (got \"18789\")")
    );
    assert_eq!(
        parse_err("{gateway: {port: '${PORT}'}}", &[("PORT", "abc")]),
        format!("{PATH}: gateway.port must be an integer between 1 and 65535 (got \"abc\")")
    );
}

#[test]
fn missing_env_var_in_a_used_key_is_an_error() {
    let want = format!(
        "{PATH}: Missing env var \"GW_TOKEN\" referenced at config path: gateway.auth.token (set GW_TOKEN in the environment, or write $${{GW_TOKEN}} for a literal ${{GW_TOKEN}})"
    );
    assert_eq!(
        parse_err("{gateway: {auth: {token: '${GW_TOKEN}'}}}", &[]),
        want
    );
    // Empty counts as missing, like OpenClaw.
    assert_eq!(
        parse_err(
            "{gateway: {auth: {token: '${GW_TOKEN}'}}}",
            &[("GW_TOKEN", "")]
        ),
        want
    );
    assert_eq!(
        parse_err("{gateway: {port: '${PORT}'}}", &[]),
        format!(
            "{PATH}: Missing env var \"PORT\" referenced at config path: gateway.port (set PORT in the environment, or write $${{PORT}} for a literal ${{PORT}})"
        )
    );
    assert_eq!(
        parse_err("{gateway: {trustedProxies: ['${PROXY_IP}']}}", &[]),
        format!(
            "{PATH}: Missing env var \"PROXY_IP\" referenced at config path: gateway.trustedProxies[0] (set PROXY_IP in the environment, or write $${{PROXY_IP}} for a literal ${{PROXY_IP}})"
        )
    );
    match parse("{gateway: {remote: {url: 'wss://${HOST}'}}}", &[]) {
        Err(ConfigError::MissingEnvVar { var, key, .. }) => {
            assert_eq!((var.as_str(), key.as_str()), ("HOST", "gateway.remote.url"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_env_var_in_an_ignored_key_is_a_warning() {
    let cfg = parse(
        "{gateway: {controlUi: {github: {token: '${GH_TOKEN}'}}}, agents: {x: 'a${NOPE}b'}}",
        &[],
    )
    .unwrap();
    assert_eq!(cfg.raw["agents"]["x"], "a${NOPE}b");
    assert_eq!(
        cfg.warnings,
        vec![
            "Missing env var \"GH_TOKEN\" referenced at config path: gateway.controlUi.github.token (left as written; clawgate does not use this key)",
            "Missing env var \"NOPE\" referenced at config path: agents.x (left as written; clawgate does not use this key)",
        ]
    );
}

#[test]
fn secret_ref_env_resolves() {
    let text =
        r#"{gateway: {auth: {password: {source: "env", provider: "default", id: "GW_PASS"}}}}"#;
    let cfg = parse(text, &[("GW_PASS", "s3cret")]).unwrap();
    assert_eq!(
        cfg.gateway.auth.password.as_ref().unwrap().expose(),
        "s3cret"
    );
    // The document keeps the reference, not the value.
    assert_eq!(cfg.raw["gateway"]["auth"]["password"]["id"], "GW_PASS");
    assert_eq!(
        parse_err(text, &[]),
        format!(
            "{PATH}: gateway.auth.password is a SecretRef to environment variable GW_PASS, which is not set (or empty); set GW_PASS in the gateway's environment"
        )
    );
}

#[test]
fn secret_ref_other_sources_are_not_supported_yet() {
    assert_eq!(
        parse_err(
            r#"{gateway: {auth: {token: {source: "file", provider: "filemain", id: "/gateway/token"}}}}"#,
            &[]
        ),
        format!(
            "{PATH}: gateway.auth.token is a SecretRef with source \"file\", which clawgate does not support yet; use {{\"source\": \"env\", \"provider\": \"default\", \"id\": \"ENV_VAR_NAME\"}} or a \"${{ENV_VAR_NAME}}\" string instead"
        )
    );
}

// ---------------------------------------------------------------------------------------
// Finding the file

#[test]
fn missing_default_file_means_zero_config() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_str().unwrap();
    let e = env(&[("HOME", home)]);
    let loc = locate_config(None, None, &e);
    assert_eq!(loc.origin, PathOrigin::Default);
    assert!(load_config(&loc, &e).unwrap().is_none());
}

#[test]
fn missing_explicit_file_is_an_error_naming_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let e = env(&[("OPENCLAW_CONFIG_PATH", missing.to_str().unwrap())]);
    let loc = locate_config(None, None, &e);
    assert_eq!(
        load_config(&loc, &e).unwrap_err().to_string(),
        format!(
            "config file {} does not exist (it was named by OPENCLAW_CONFIG_PATH); create it or correct OPENCLAW_CONFIG_PATH",
            missing.display()
        )
    );
    let loc = ConfigLocation {
        path: missing.clone(),
        origin: PathOrigin::Flag,
    };
    assert_eq!(
        load_config(&loc, &e).unwrap_err().to_string(),
        format!(
            "config file {} does not exist (it was named by --config); create it or correct --config",
            missing.display()
        )
    );
}

#[test]
fn existing_file_is_loaded_from_the_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openclaw.json"), "{gateway: {port: 19999}}").unwrap();
    let e = env(&[("CLAWGATE_STATE_DIR", dir.path().to_str().unwrap())]);
    let loaded = load_config(&locate_config(None, None, &e), &e)
        .unwrap()
        .unwrap();
    assert_eq!(loaded.gateway.port, Some(19999));
    assert_eq!(loaded.path, dir.path().join("openclaw.json"));
}

#[test]
fn unreadable_file_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let loc = ConfigLocation {
        path: dir.path().to_owned(), // a directory
        origin: PathOrigin::Default,
    };
    let msg = load_config(&loc, &env(&[])).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!(
            "cannot read config file {}: ",
            dir.path().display()
        )),
        "{msg}"
    );
}

#[test]
fn debug_of_a_loaded_config_is_redacted() {
    let cfg = load_file(&fixture(), &env(FIXTURE_ENV)).unwrap();
    let dbg = format!("{cfg:?}");
    for secret in [
        "gw-token-0123456789abcdef",
        "remote-cli-token",
        "ABC-telegram-bot-token",
        "hooks-shared-secret",
    ] {
        assert!(!dbg.contains(secret), "{secret} leaked");
    }
    assert!(dbg.contains("__OPENCLAW_REDACTED__"));
}
