//! The Telegram channel's transports and accounts: several bots on one gateway
//! (`channels.telegram.accounts`), each polling with its own token and answering in its own
//! chats, each account's settings merged over the top level and shown in `channels.status`;
//! and webhook mode, Telegram posting to the gateway's own port.

use clawgate_testkit::{
    ClawgateBin, FakeBotApi, ModelMock, RawWs, Reply, WireFormat, connect_params, json,
};
use std::time::Duration;

const TOKEN: &str = "telegram-accounts-token";

#[tokio::test]
async fn two_accounts_answer_each_in_their_own_bot() {
    let main_bot = FakeBotApi::start("710001:main-bot").await;
    let work_bot = FakeBotApi::start("710002:work-bot").await;
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    mock.set_default(Reply::text("Answered."));
    let mut config = mock.primary_config();
    config["channels"] = json!({"telegram": {
        "botToken": "710001:main-bot",
        "apiRoot": main_bot.api_root(),
        "dmPolicy": "allowlist",
        "allowFrom": ["11"],
        "accounts": {
            "work": {"botToken": "710002:work-bot", "apiRoot": work_bot.api_root(), "allowFrom": ["22"]},
        },
    }});
    let gw = ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
        .start_token_gateway(&config, TOKEN)
        .await;

    // 22 is allowed on the work bot only (its allowFrom overrides the top level's).
    main_bot.inject_dm(22, "not for this bot");
    main_bot.inject_dm(11, "hello main");
    work_bot.inject_dm(22, "hello work");
    let main_sent = main_bot
        .wait_for_calls("sendMessage", 1, Duration::from_secs(30))
        .await;
    let work_sent = work_bot
        .wait_for_calls("sendMessage", 1, Duration::from_secs(30))
        .await;
    assert_eq!(main_sent[0].chat_id().as_deref(), Some("11"));
    assert_eq!(work_sent[0].chat_id().as_deref(), Some("22"));
    assert_eq!(work_sent[0].text(), Some("Answered."));

    let (mut ws, _) = RawWs::handshake(gw.url(), connect_params(Some(TOKEN), &["operator.read"]))
        .await
        .unwrap();
    let status = ws
        .request("channels.status", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    let accounts: Vec<&str> = status["payload"]["channelAccounts"]["telegram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["accountId"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, ["default", "work"], "{status:#}");
    assert_eq!(main_sent.len(), 1, "22's DM to the main bot was dropped");
}

#[tokio::test]
async fn an_account_without_a_token_is_refused_at_start_naming_its_key() {
    let out = ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
        .cli()
        .config(json!({"channels": {"telegram": {"accounts": {"work": {}}}}}))
        .args(["gateway", "run", "--port", "0", "--token", TOKEN])
        .timeout(Duration::from_secs(30))
        .run()
        .await;
    assert_ne!(out.status.code(), Some(0), "{out}");
    assert!(
        out.stderr
            .contains("channels.telegram.accounts.work is enabled but has no bot token: set channels.telegram.accounts.work.botToken"),
        "{out}"
    );
}

/// One HTTP/1.1 POST over a fresh connection: the status code and the body.
async fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        stream.read_to_string(&mut response),
    )
    .await
    .unwrap()
    .unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn webhook_mode_takes_telegrams_posts_on_the_gateways_port() {
    const SECRET: &str = "webhook-secret-0123";
    let bot = FakeBotApi::start("730001:hook-bot").await;
    let mock = ModelMock::start(WireFormat::OpenAi).await;
    mock.set_default(Reply::text("Hooked."));
    let mut config = mock.primary_config();
    config["channels"] = json!({"telegram": {
        "botToken": "730001:hook-bot",
        "apiRoot": bot.api_root(),
        "dmPolicy": "allowlist",
        "allowFrom": ["9"],
        "webhookUrl": "https://gateway.example.com/tg-hook",
        "webhookSecret": SECRET,
        "webhookPath": "/tg-hook",
    }});
    let gw = ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
        .start_token_gateway(&config, TOKEN)
        .await;
    let set = bot
        .wait_for_calls("setWebhook", 1, Duration::from_secs(30))
        .await;
    assert_eq!(set[0].params["url"], "https://gateway.example.com/tg-hook");
    assert_eq!(set[0].params["secret_token"], SECRET);
    let addr = format!("127.0.0.1:{}", gw.port());
    let update = json!({"update_id": 77, "message": {
        "message_id": 5, "date": 1, "text": "hello by webhook",
        "chat": {"id": 9, "type": "private"}, "from": {"id": 9, "is_bot": false, "first_name": "N"},
    }})
    .to_string();
    let (status, body) = post(
        &addr,
        "/tg-hook",
        &[("X-Telegram-Bot-Api-Secret-Token", "guess")],
        &update,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("webhookSecret"), "{body}");
    let (status, _) = post(&addr, "/tg-hook", &[], "{}").await;
    assert_eq!(status, 401);
    let (status, body) = post(
        &addr,
        "/tg-hook",
        &[("X-Telegram-Bot-Api-Secret-Token", SECRET)],
        "not json",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Through a reverse proxy (forwarding headers): the secret is what counts.
    let (status, body) = post(
        &addr,
        "/tg-hook",
        &[
            ("X-Telegram-Bot-Api-Secret-Token", SECRET),
            ("X-Forwarded-For", "149.154.167.220"),
        ],
        &update,
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "{}"));
    let sent = bot
        .wait_for_calls("sendMessage", 1, Duration::from_secs(30))
        .await;
    assert_eq!(sent[0].text(), Some("Hooked."));
    assert_eq!(sent[0].chat_id().as_deref(), Some("9"));
    assert!(
        bot.calls_to("getUpdates").is_empty(),
        "no polling in webhook mode"
    );
    // Other paths are not the webhook (the browser UI takes no posts).
    let (status, _) = post(
        &addr,
        "/other",
        &[("X-Telegram-Bot-Api-Secret-Token", SECRET)],
        &update,
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(bot.calls_to("sendMessage").len(), 1, "handled once");
}
