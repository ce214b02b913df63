//! The operator commands run as a user would (the built binary, a private HOME, no inherited
//! gateway variables) against a small fake gateway: exit codes, messages and output shapes.

mod cli_run;

use clawgate_testkit::fake_gateway::{self, FakeConfig, FakeGateway, Reply};
use cli_run::{Run, clawgate};
use serde_json::json;
use std::sync::Arc;

const TOKEN: &str = "sekret-token";

fn home() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn gateway(config: FakeConfig) -> FakeGateway {
    FakeGateway::start_in_thread(FakeConfig {
        token: Some(TOKEN.into()),
        ..config
    })
}

/// `--url <gw> --token TOKEN` plus `extra`.
fn with_target<'a>(gw_url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = extra.to_vec();
    v.extend(["--url", gw_url, "--token", TOKEN]);
    v
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---- exit 0 ---------------------------------------------------------------------------------

#[test]
fn gateway_call_prints_the_payload_and_asks_least_privilege() {
    let gw = gateway(FakeConfig::default());
    let h = home();
    let url = gw.url();
    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "call", "health", "--json"]),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["channelOrder"], json!(["telegram"]));
    // Pretty JSON with 2-space indent, like the real CLI.
    assert!(r.stdout.starts_with("{\n  \""), "{r:?}");

    // Without --json the output is still JSON.
    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "call", "system-presence"]),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.json().is_array());

    let connects = gw.connects();
    assert_eq!(connects.len(), 2);
    let c = &connects[0];
    assert_eq!(c["client"]["id"], "cli");
    assert_eq!(c["client"]["mode"], "cli");
    assert_eq!(c["role"], "operator");
    assert_eq!(c["scopes"], json!(["operator.read"]));
    assert_eq!(c["auth"], json!({"token": TOKEN}));
    assert_eq!(
        (c["minProtocol"].clone(), c["maxProtocol"].clone()),
        (json!(4), json!(4))
    );
    assert!(c.get("device").is_none());

    // Write, pairing and admin methods ask for their own scope.
    for (method, scope) in [
        ("node.invoke", "operator.write"),
        ("device.pair.list", "operator.pairing"),
        ("config.patch", "operator.admin"),
    ] {
        let _ = clawgate(
            h.path(),
            &with_target(&url, &["gateway", "call", method]),
            &[],
        );
        assert_eq!(
            gw.connects().last().unwrap()["scopes"],
            json!([scope]),
            "{method}"
        );
    }
}

#[test]
fn gateway_call_expect_url_refuses_a_changed_destination_before_connecting() {
    let gw = gateway(FakeConfig::default());
    let h = home();
    let url = gw.url();
    let port = gw.addr().port().to_string();
    let env = [
        ("CLAWGATE_GATEWAY_PORT", port.as_str()),
        ("CLAWGATE_GATEWAY_TOKEN", TOKEN),
    ];
    // The caller selected the default gateway; the environment now names another one.
    let r = clawgate(
        h.path(),
        &[
            "gateway",
            "call",
            "health",
            "--expect-url",
            "ws://127.0.0.1:18789",
        ],
        &env,
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(
            "error: Gateway destination changed. Refresh the selected Gateway before retrying."
        ),
        "{r:?}"
    );
    assert!(
        r.stderr.contains(&format!("the target now is {url}")),
        "{r:?}"
    );
    let v = r.json();
    assert_eq!(v["error"]["type"], "destination_changed");
    assert_eq!(v["error"]["expectedUrl"], "ws://127.0.0.1:18789");
    assert_eq!(v["error"]["gateway"]["url"], url.as_str());
    assert!(gw.connects().is_empty(), "nothing may be sent");

    // The same URL: the call goes through with the configured credentials.
    let r = clawgate(
        h.path(),
        &["gateway", "call", "health", "--expect-url", &url],
        &env,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["ok"], true);
    assert_eq!(gw.connects().len(), 1);
    assert_eq!(gw.connects()[0]["auth"]["token"], TOKEN);
}

#[test]
fn gateway_call_sends_params_and_waits_for_the_final_answer() {
    let gw = gateway(FakeConfig {
        handler: Arc::new(|call| match call.method.as_str() {
            "agent" => Reply::AcceptedThen(json!({"status": "ok", "echo": call.params})),
            "echo" => Reply::Ok(json!({"params": call.params})),
            _ => fake_gateway::default_handler(call),
        }),
        ..FakeConfig::default()
    });
    let h = home();
    let url = gw.url();
    let r = clawgate(
        h.path(),
        &with_target(
            &url,
            &["gateway", "call", "echo", "--params", r#"{"a":[1,2]}"#],
        ),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json(), json!({"params": {"a": [1, 2]}}));
    // Default params are {}.
    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "call", "echo"]),
        &[],
    );
    assert_eq!(r.json(), json!({"params": {}}));

    let r = clawgate(
        h.path(),
        &with_target(
            &url,
            &[
                "gateway",
                "call",
                "agent",
                "--expect-final",
                "--params",
                r#"{"message":"hi"}"#,
            ],
        ),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json(), json!({"status": "ok", "echo": {"message": "hi"}}));
    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "call", "agent"]),
        &[],
    );
    assert_eq!(r.json()["status"], "accepted", "{r:?}");
}

#[test]
fn health_prints_a_summary_or_the_payload() {
    let gw = gateway(FakeConfig::default());
    let h = home();
    let url = gw.url();
    let r = clawgate(h.path(), &with_target(&url, &["health"]), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.starts_with("Gateway: OK · ws://127.0.0.1:"),
        "{r:?}"
    );
    assert!(r.stdout.contains("version fake-1.0"), "{r:?}");
    assert!(r.stdout.contains("Gateway probe duration: 3ms"), "{r:?}");
    assert!(r.stdout.contains("Channels: telegram: running"), "{r:?}");
    assert!(r.stdout.contains("Agents: main (default)"), "{r:?}");

    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "health", "--json"]),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["ok"], true);
    // `health` is sent without params, like the real `openclaw health`.
    assert!(gw.connects().iter().all(|c| c["client"]["mode"] == "cli"));
}

#[test]
fn gateway_status_reports_the_hello() {
    let gw = gateway(FakeConfig {
        grant_scopes: Some(vec![]),
        ..FakeConfig::default()
    });
    let h = home();
    let url = gw.url();
    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "status", "--json"]),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["reachable"], true);
    assert_eq!(v["url"], url.as_str());
    assert_eq!(v["urlSource"], "--url");
    assert_eq!(v["server"]["version"], "fake-1.0");
    assert!(v["server"]["connId"].is_string());
    assert_eq!(v["protocol"], 4);
    assert_eq!(
        v["auth"],
        json!({"method": "token", "role": "operator", "scopes": []})
    );
    assert_eq!(v["capability"], "connected_no_operator_scope");
    let c = &gw.connects()[0];
    assert_eq!(c["client"]["mode"], "probe");
    assert_eq!(
        (c["minProtocol"].clone(), c["maxProtocol"].clone()),
        (json!(3), json!(4))
    );

    let r = clawgate(h.path(), &with_target(&url, &["gateway", "status"]), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    for needle in [
        "Reachable: yes",
        "Gateway version: fake-1.0",
        "Auth: token · role operator · scopes (none)",
        "Capability: connected-no-operator-scope",
    ] {
        assert!(r.stdout.contains(needle), "{needle}\n{r:?}");
    }
}

#[test]
fn gateway_probe_reports_capability_and_each_call() {
    let h = home();
    // A probe without scopes (what the real gateway does to probes): reachable, exit 0,
    // every read call limited.
    let gw = gateway(FakeConfig {
        grant_scopes: Some(vec![]),
        ..FakeConfig::default()
    });
    let url = gw.url();
    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "probe", "--json"]),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(
        (
            v["ok"].clone(),
            v["reachable"].clone(),
            v["degraded"].clone()
        ),
        (json!(true), json!(true), json!(true))
    );
    assert_eq!(v["capability"], "connected_no_operator_scope");
    assert_eq!(v["version"], "fake-1.0");
    // `health` is answered to every connected client, as the real gateway does.
    assert_eq!(v["calls"]["health"]["ok"], true);
    assert_eq!(v["calls"]["health"]["result"]["ok"], true);
    for m in ["status", "system-presence", "config.get"] {
        assert_eq!(v["calls"][m]["ok"], false, "{m}");
        assert_eq!(
            v["calls"][m]["error"]["details"]["missingScope"], "operator.read",
            "{m}"
        );
    }
    assert_eq!(v["warnings"][0]["code"], "probe_scope_limited");

    // A read-capable probe gets every answer.
    let gw = gateway(FakeConfig {
        grant_scopes: Some(vec!["operator.read".into()]),
        ..FakeConfig::default()
    });
    let url = gw.url();
    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "probe", "--json"]),
        &[],
    );
    let v = r.json();
    assert_eq!(v["capability"], "read_only");
    assert_eq!(v["degraded"], false);
    assert_eq!(v["calls"]["health"]["result"]["ok"], true);
    assert_eq!(v["calls"]["config.get"]["result"], json!({}));
    assert!(v["calls"]["system-presence"]["result"].is_array());
    assert_eq!(
        v["discovery"],
        json!({"timeoutMs": 1200, "count": 0, "beacons": []})
    );
    let r = clawgate(h.path(), &with_target(&url, &["gateway", "probe"]), &[]);
    assert!(r.stdout.contains("Capability: read-only"), "{r:?}");
    assert!(r.stdout.contains("config.get       ok"), "{r:?}");
    assert!(
        r.stdout.contains(
            "Discovery (this machine):\n  Found 0 gateways via Bonjour (local.)\n  Tip: if the gateway is remote"
        ),
        "{r:?}"
    );

    for (scopes, cap) in [
        (vec!["operator.write"], "write_capable"),
        (vec!["operator.admin"], "admin_capable"),
    ] {
        let gw = gateway(FakeConfig {
            grant_scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
            ..FakeConfig::default()
        });
        let url = gw.url();
        let r = clawgate(
            h.path(),
            &with_target(&url, &["gateway", "probe", "--json"]),
            &[],
        );
        assert_eq!(r.json()["capability"], cap);
    }
}

/// A read-capable fake gateway whose own presence entry carries `instance`.
fn gateway_with_instance(instance: &'static str) -> FakeGateway {
    gateway(FakeConfig {
        grant_scopes: Some(vec!["operator.read".into()]),
        handler: Arc::new(move |call| match call.method.as_str() {
            "system-presence" => Reply::Ok(json!([{"host": "fake", "ip": "127.0.0.1",
                "mode": "gateway", "reason": "self", "instanceId": instance}])),
            _ => fake_gateway::default_handler(call),
        }),
        ..FakeConfig::default()
    })
}

#[test]
fn gateway_probe_multiple_gateways_are_told_apart_by_their_presence() {
    let h = home();
    let a = gateway_with_instance("one");
    let port = a.addr().port().to_string();
    let has_warning = |r: &Run| {
        r.json()["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["code"] == "multiple_gateways")
    };
    // --url and this machine's gateway are two URLs of one gateway: no warning.
    let by_name = format!("ws://localhost:{port}");
    let args = with_target(&by_name, &["gateway", "probe", "--json"]);
    let r = clawgate(h.path(), &args, &[("CLAWGATE_GATEWAY_PORT", &port)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["targets"].as_array().unwrap().len(), 2, "{r:?}");
    assert!(!has_warning(&r), "{r:?}");

    // Another gateway on this machine's port: two identities.
    let b = gateway_with_instance("two");
    let other = b.addr().port().to_string();
    let r = clawgate(h.path(), &args, &[("CLAWGATE_GATEWAY_PORT", &other)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(has_warning(&r), "{r:?}");
}

#[test]
fn status_and_status_deep() {
    let gw = gateway(FakeConfig::default());
    let h = home();
    let url = gw.url();
    let r = clawgate(h.path(), &with_target(&url, &["status", "--json"]), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["gateway"]["server"]["version"], "fake-1.0");
    assert_eq!(v["status"]["runtimeVersion"], "fake-1.0");
    assert!(v.get("deep").is_none());

    let r = clawgate(
        h.path(),
        &with_target(&url, &["status", "--deep", "--json"]),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert!(v["deep"]["presence"].is_array());
    assert_eq!(v["deep"]["health"]["ok"], true);
    assert!(v["deep"]["channels"].is_object());
    assert!(v["deep"]["lastHeartbeat"].is_null());
    assert!(v["deep"].as_object().unwrap().contains_key("lastHeartbeat"));
    assert_eq!(v["errors"], json!({}));

    let r = clawgate(h.path(), &with_target(&url, &["status", "--deep"]), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    for needle in [
        "Reachable: yes",
        "Runtime version: fake-1.0",
        "Presence: 1 entries",
        "Health: healthy",
        "Last heartbeat: none",
    ] {
        assert!(r.stdout.contains(needle), "{needle}\n{r:?}");
    }
}

// ---- exit 1 ---------------------------------------------------------------------------------

#[test]
fn an_error_answer_exits_1_with_the_real_clis_error_object() {
    let gw = gateway(FakeConfig::default());
    let h = home();
    let url = gw.url();
    // Unknown methods need admin; granted (scopes are echoed), then "unknown method".
    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "call", "no.such.method"]),
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.json(),
        json!({"ok": false, "error": {"type": "gateway_request_error", "code": "INVALID_REQUEST",
            "message": "unknown method: no.such.method", "retryable": false}})
    );
    assert!(r.stderr.contains("unknown method: no.such.method"), "{r:?}");
}

// ---- exit 2 ---------------------------------------------------------------------------------

#[test]
fn usage_and_config_errors_exit_2() {
    let h = home();
    let r = clawgate(
        h.path(),
        &[
            "gateway",
            "call",
            "health",
            "--url",
            "ws://127.0.0.1:1",
            "--token",
            "t",
            "--params",
            "{nope",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--params must be valid JSON"), "{r:?}");

    // --url never borrows credentials from config or env.
    let r = clawgate(
        h.path(),
        &["health", "--url", "ws://127.0.0.1:1"],
        &[("CLAWGATE_GATEWAY_TOKEN", "t")],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--token"), "{r:?}");

    let r = clawgate(
        h.path(),
        &["health", "--url", "127.0.0.1:1", "--token", "t"],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");

    let cfg = h.path().join("bad.json");
    std::fs::write(&cfg, "{ gateway: ").unwrap();
    let r = clawgate(
        h.path(),
        &["health", "--config", cfg.to_str().unwrap()],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("bad.json"), "{r:?}");

    let r = clawgate(h.path(), &["gateway", "call"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
}

// ---- exit 3 ---------------------------------------------------------------------------------

#[test]
fn unreachable_exits_3_and_names_the_fix() {
    let h = home();
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}");
    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "call", "health"]),
        &[],
    );
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains(&format!("gateway unreachable at {url}")),
        "{r:?}"
    );
    assert!(r.stderr.contains("clawgate gateway run"), "{r:?}");
    let v = r.json();
    assert_eq!(v["error"]["type"], "gateway_transport_error");
    assert_eq!(v["error"]["kind"], "unreachable");
    assert_eq!(v["error"]["gateway"]["url"], url.as_str());

    for cmd in [
        &["health"][..],
        &["status", "--deep"],
        &["gateway", "probe"],
        &["gateway", "status"],
    ] {
        let r = clawgate(h.path(), &with_target(&url, cmd), &[]);
        assert_eq!(r.code, 3, "{cmd:?} {r:?}");
        assert!(r.stderr.contains("is the gateway running"), "{cmd:?} {r:?}");
        assert!(r.stdout.is_empty(), "{cmd:?} {r:?}");
    }
    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "status", "--json"]),
        &[],
    );
    assert_eq!(r.code, 3, "{r:?}");
    let v = r.json();
    assert_eq!(
        (v["ok"].clone(), v["reachable"].clone()),
        (json!(false), json!(false))
    );

    // The probe also browsed Bonjour (nothing to find in a loopback-only host) and, with no
    // gateway anywhere, says where to look next (OpenClaw's `no_gateway_reachable`).
    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "probe", "--json"]),
        &[],
    );
    assert_eq!(r.code, 3, "{r:?}");
    let v = r.json();
    assert_eq!(
        v["discovery"],
        json!({"timeoutMs": 1200, "count": 0, "beacons": []})
    );
    let warning = &v["warnings"][0];
    assert_eq!(warning["code"], "no_gateway_reachable", "{v:#}");
    assert_eq!(warning["targetIds"], json!(["explicit", "localLoopback"]));
    let r = clawgate(h.path(), &with_target(&url, &["gateway", "probe"]), &[]);
    assert!(
        r.stderr.contains("warning: No gateway answered any probe and Bonjour discovery returned no local gateways. Run `clawgate gateway status --require-rpc`"),
        "{r:?}"
    );

    // The local default target: zero-config, nothing running.
    let r = clawgate(
        h.path(),
        &["health"],
        &[("CLAWGATE_GATEWAY_PORT", &port.to_string())],
    );
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("start it with `clawgate gateway run`"),
        "{r:?}"
    );
    assert!(r.stderr.contains("gateway.remote.url"), "{r:?}");
}

#[test]
fn a_silent_server_times_out_with_exit_3() {
    // Accepts TCP but never completes the WebSocket upgrade.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let h = home();
    let started = std::time::Instant::now();
    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "call", "health", "--timeout", "300"]),
        &[],
    );
    assert_eq!(r.code, 3, "{r:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(r.json()["error"]["kind"], "timeout");
    assert!(r.stderr.contains("--timeout"), "{r:?}");
    drop(listener);
}

#[test]
fn a_starting_gateway_is_retried_within_the_budget() {
    let gw = gateway(FakeConfig {
        starting_connects: 2,
        ..FakeConfig::default()
    });
    let h = home();
    let url = gw.url();
    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "call", "health"]),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(gw.connects().len(), 3);
    // Never ready within the budget: unreachable, with the reason.
    let gw = gateway(FakeConfig {
        starting_connects: 1000,
        ..FakeConfig::default()
    });
    let url = gw.url();
    let r = clawgate(
        h.path(),
        &with_target(&url, &["health", "--timeout", "400"]),
        &[],
    );
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("gateway starting"), "{r:?}");
}

// ---- exit 4 ---------------------------------------------------------------------------------

#[test]
fn wrong_or_missing_token_exits_4_and_names_where_tokens_come_from() {
    let gw = gateway(FakeConfig::default());
    let h = home();
    let url = gw.url();
    let r = clawgate(
        h.path(),
        &[
            "gateway", "call", "health", "--url", &url, "--token", "wrong",
        ],
        &[],
    );
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("unauthorized: gateway token mismatch"),
        "{r:?}"
    );
    assert!(r.stderr.contains("--token"), "{r:?}");
    assert!(r.stderr.contains("gateway.remote.token"), "{r:?}");
    assert!(r.stderr.contains("CLAWGATE_GATEWAY_TOKEN"), "{r:?}");
    assert!(r.stderr.contains(".openclaw/gateway.token"), "{r:?}");
    let v = r.json();
    assert_eq!(v["error"]["type"], "gateway_request_error");
    assert_eq!(v["error"]["code"], "INVALID_REQUEST");
    assert_eq!(v["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    assert_eq!(v["error"]["closeCode"], 1008);

    for cmd in [
        &["health"][..],
        &["status"],
        &["gateway", "probe"],
        &["gateway", "status"],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--url", &url, "--token", "wrong"]);
        let r = clawgate(h.path(), &args, &[]);
        assert_eq!(r.code, 4, "{cmd:?} {r:?}");
        assert!(r.stderr.contains("unauthorized"), "{cmd:?} {r:?}");
    }
    let r = clawgate(
        h.path(),
        &[
            "gateway", "probe", "--json", "--url", &url, "--token", "wrong",
        ],
        &[],
    );
    let v = r.json();
    assert_eq!(
        (v["ok"].clone(), v["reachable"].clone()),
        (json!(false), json!(true)),
        "{r:?}"
    );

    // Local target, no credentials anywhere: the missing token is named.
    let port = gw.addr().port().to_string();
    let r = clawgate(h.path(), &["health"], &[("CLAWGATE_GATEWAY_PORT", &port)]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("gateway token missing"), "{r:?}");
    assert!(r.stderr.contains("no token or password was sent"), "{r:?}");
}

#[test]
fn pairing_and_protocol_refusals_exit_4_with_their_own_fix() {
    let h = home();
    let gw = gateway(FakeConfig {
        reject_connect: Some((
            json!({"code":"NOT_PAIRED","message":"pairing required: device is not approved yet",
                "details":{"code":"PAIRING_REQUIRED","reason":"not-paired","requestId":"req-123"}}),
            1008,
        )),
        ..FakeConfig::default()
    });
    let url = gw.url();
    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "call", "health"]),
        &[],
    );
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("pairing required"), "{r:?}");
    assert!(
        r.stderr.contains("clawgate devices approve req-123"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("openclaw devices approve req-123"),
        "{r:?}"
    );

    let gw = gateway(FakeConfig {
        reject_connect: Some((
            json!({"code":"INVALID_REQUEST","message":"protocol mismatch",
                "details":{"code":"PROTOCOL_MISMATCH","clientMinProtocol":4,"clientMaxProtocol":4,"expectedProtocol":5,"minimumProbeProtocol":3}}),
            1002,
        )),
        ..FakeConfig::default()
    });
    let url = gw.url();
    let r = clawgate(h.path(), &with_target(&url, &["health"]), &[]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("protocol 4"), "{r:?}");
    assert!(r.stderr.contains("expects 5"), "{r:?}");
}

// ---- exit 5 ---------------------------------------------------------------------------------

#[test]
fn missing_scope_exits_5_and_names_the_scope() {
    let gw = gateway(FakeConfig {
        grant_scopes: Some(vec!["operator.read".into()]),
        ..FakeConfig::default()
    });
    let h = home();
    let url = gw.url();
    let r = clawgate(
        h.path(),
        &with_target(&url, &["gateway", "call", "config.patch", "--params", "{}"]),
        &[],
    );
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("missing scope: operator.admin"), "{r:?}");
    assert!(r.stderr.contains("not granted operator.admin"), "{r:?}");
    assert!(r.stderr.contains("granted: operator.read"), "{r:?}");
    let v = r.json();
    assert_eq!(v["error"]["code"], "FORBIDDEN");
    assert_eq!(v["error"]["details"]["missingScope"], "operator.admin");

    // No scopes at all (a device-less remote connection on a real gateway): the hint says why.
    let gw = gateway(FakeConfig {
        grant_scopes: Some(vec![]),
        ..FakeConfig::default()
    });
    let url = gw.url();
    for cmd in [&["status"][..], &["gateway", "call", "status"]] {
        let r = clawgate(h.path(), &with_target(&url, cmd), &[]);
        assert_eq!(r.code, 5, "{cmd:?} {r:?}");
        assert!(
            r.stderr.contains("missing scope: operator.read"),
            "{cmd:?} {r:?}"
        );
        assert!(r.stderr.contains("loopback"), "{cmd:?} {r:?}");
    }
    // `health` needs no scope: the real gateway answers it to every connected client.
    for cmd in [&["health"][..], &["gateway", "call", "health"]] {
        let r = clawgate(h.path(), &with_target(&url, cmd), &[]);
        assert_eq!(r.code, 0, "{cmd:?} {r:?}");
    }
}

// ---- target resolution ----------------------------------------------------------------------

#[test]
fn zero_config_local_use_reads_the_generated_token_file() {
    let gw = gateway(FakeConfig::default());
    let h = home();
    let state = h.path().join(".openclaw");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("gateway.token"), format!("{TOKEN}\n")).unwrap();
    let port = gw.addr().port().to_string();
    let r = clawgate(
        h.path(),
        &["gateway", "call", "health"],
        &[("CLAWGATE_GATEWAY_PORT", &port)],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(gw.connects()[0]["auth"], json!({"token": TOKEN}));

    // A token from the environment wins over the file.
    let r = clawgate(
        h.path(),
        &["health", "--json"],
        &[
            ("OPENCLAW_GATEWAY_PORT", &port),
            ("OPENCLAW_GATEWAY_TOKEN", "from-env"),
        ],
    );
    assert_eq!(r.code, 4, "{r:?}");
    assert_eq!(
        gw.connects().last().unwrap()["auth"],
        json!({"token": "from-env"})
    );

    // A stale token file: the hint says where the token came from.
    std::fs::write(state.join("gateway.token"), "stale\n").unwrap();
    let r = clawgate(h.path(), &["health"], &[("CLAWGATE_GATEWAY_PORT", &port)]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("was read from"), "{r:?}");

    // gateway.port from the config file, token from gateway.auth.token.
    let cfg = h.path().join("local.json5");
    std::fs::write(
        &cfg,
        format!("{{ gateway: {{ port: {port}, auth: {{ token: '{TOKEN}' }} }} }}"),
    )
    .unwrap();
    let r = clawgate(
        h.path(),
        &["gateway", "call", "health"],
        &[("CLAWGATE_CONFIG_PATH", cfg.to_str().unwrap())],
    );
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn remote_mode_config_drives_every_command() {
    let gw = gateway(FakeConfig::default());
    let h = home();
    let cfg = h.path().join("remote.json");
    std::fs::write(
        &cfg,
        json!({"gateway": {"mode": "remote", "remote": {"url": gw.url(), "token": TOKEN}}})
            .to_string(),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    for args in [
        &["gateway", "call", "health", "--config", cfg][..],
        &["health", "--config", cfg],
        &["status", "--deep", "--config", cfg],
        &["gateway", "probe", "--config", cfg],
        &["gateway", "status", "--config", cfg],
    ] {
        let r = clawgate(h.path(), args, &[]);
        assert_eq!(r.code, 0, "{args:?} {r:?}");
    }
    let r = clawgate(
        h.path(),
        &["gateway", "status", "--json"],
        &[("OPENCLAW_CONFIG_PATH", cfg)],
    );
    assert_eq!(r.json()["urlSource"], "config gateway.remote.url");
    assert!(gw.connects().iter().all(|c| c["auth"]["token"] == TOKEN));

    // Wrong remote token: the hint names gateway.remote.token.
    std::fs::write(
        cfg,
        json!({"gateway": {"mode": "remote", "remote": {"url": gw.url(), "token": "nope"}}})
            .to_string(),
    )
    .unwrap();
    let r = clawgate(h.path(), &["health", "--config", cfg], &[]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("gateway.remote.token"), "{r:?}");
}
