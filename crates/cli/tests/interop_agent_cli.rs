//! clawgate's `agent`, `chat` and `sessions list` against the real OpenClaw gateway with a
//! mock model provider. Run through ./scripts/test (it installs OpenClaw and runs the tests
//! in a loopback-only network namespace).

use clawgate_testkit::{GatewayOptions, ModelMock, OpenClaw, RealGateway, Reply, WireFormat, json};

mod agent_support;

use agent_support::*;

/// One real gateway (it takes 10–30 s to start) for the commands, addressed with --url/--token.
#[tokio::test]
async fn agent_against_the_real_gateway() {
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    mock.set_default(Reply::text_chunks(["Hello from ", "the mock ", "model."]));
    let oc = OpenClaw::from_env();
    let config = json!({
        "models": {"providers": {"mock": {
            "baseUrl": mock.base_url(),
            "apiKey": "k",
            "api": "openai-completions",
            "timeoutSeconds": 300,
            "models": [{"id": "mock-1", "name": "Mock 1", "input": ["text"],
                "contextWindow": 32000, "maxTokens": 1024}],
        }}},
        "agents": {"defaults": {"model": {"primary": "mock/mock-1"}}},
    });
    let token = "agent-cli-interop-token-0123456789";
    let gw = RealGateway::start_with(
        &oc,
        token,
        GatewayOptions {
            config: Some(config),
            ..GatewayOptions::default()
        },
    )
    .await;
    let url = gw.url();

    let out = at(&url, token, &["agent", "--message", "hi from clawgate"])
        .run()
        .await;
    out.assert_success();
    assert_eq!(out.stdout, "Hello from the mock model.\n", "{out}");
    // What the model got: the message, in the main session (OpenClaw adds its runtime line).
    let users = sent(&mock, "user");
    assert!(
        users.iter().any(|u| u.contains("hi from clawgate")),
        "{users:#?}"
    );
    let body = mock
        .requests()
        .last()
        .expect("a model request")
        .body
        .to_string();
    assert!(body.contains("session=agent:main:main"), "{body}");

    let out = at(
        &url,
        token,
        &["agent", "-m", "again", "--session-id", "x", "--json"],
    )
    .run()
    .await;
    let payload = ok_json(&out);
    assert_eq!(payload["status"], "ok", "{out}");
    assert_eq!(payload["summary"], "completed", "{out}");
    assert_eq!(
        payload["result"]["payloads"][0]["text"], "Hello from the mock model.",
        "{out}"
    );
    assert_eq!(
        payload["result"]["meta"]["agentMeta"]["sessionId"], "x",
        "{out}"
    );

    let out = at(&url, token, &["sessions", "list"]).run().await;
    out.assert_success();
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("agent:main:main ")),
        "{out}"
    );

    let out = at(&url, token, &["chat"]).stdin("one more\n").run().await;
    out.assert_success();
    assert_eq!(out.stdout, "Hello from the mock model.\n", "{out}");
}
