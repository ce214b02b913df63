//! `channels.telegram.accounts`: several bots on one gateway, each polling with its own token
//! and answering in its own chats, each account's settings merged over the top level, and
//! each shown in `channels.status`.

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
