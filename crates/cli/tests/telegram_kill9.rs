//! `kill -9` of the gateway at each step of a Telegram turn — right after the update is
//! received, while the model answers, while the reply is being sent, right after it was sent —
//! then a restart: no update is handled twice, no reply is sent twice, and nothing is lost
//! without the chat being told. Polling resumes from the stored offset.

use clawgate_testkit::{
    ClawgateBin, ClawgateGateway, Failure, FakeBotApi, IsolatedHome, ModelMock, Reply, WireFormat,
    free_port, json,
};
use std::time::Duration;

const TOKEN: &str = "telegram-kill9-token";
const BOT_TOKEN: &str = "777001:kill-nine";
const USER: i64 = 5150;
const WAIT: Duration = Duration::from_secs(30);
/// What the user is told when the gateway restarted in the middle of their turn.
const INTERRUPTED: &str = "interrupted";
const CUT_OFF: &str = "The gateway restarted while sending this reply";
/// The answer to `/new`, which needs no model.
const BARRIER_REPLY: &str = "New session started.";

fn clawgate() -> ClawgateBin {
    ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"))
}

struct Scenario {
    bot: FakeBotApi,
    mock: ModelMock,
    argv: Vec<String>,
}

impl Scenario {
    async fn new() -> Scenario {
        let bot = FakeBotApi::start(BOT_TOKEN).await;
        let mock = ModelMock::start(WireFormat::OpenAi).await;
        let port = free_port().to_string();
        let argv = ["gateway", "run", "--port", &port, "--token", TOKEN]
            .map(str::to_owned)
            .to_vec();
        Scenario { bot, mock, argv }
    }

    async fn start(&self, home: IsolatedHome) -> ClawgateGateway {
        clawgate()
            .spawn_gateway_in(home, self.argv.clone(), [("CLAWGATE_LOG", "warn")])
            .await
            .unwrap()
    }

    async fn first_start(&self) -> ClawgateGateway {
        let home = IsolatedHome::new();
        let mut config = self.mock.primary_config();
        config["channels"] = json!({"telegram": {
            "botToken": BOT_TOKEN, "apiRoot": self.bot.api_root(),
            "dmPolicy": "allowlist", "allowFrom": [USER.to_string()],
        }});
        home.write_config(&config);
        self.start(home).await
    }

    /// `kill -9`, then the same gateway again on the same state.
    async fn kill_and_restart(&self, gw: ClawgateGateway) -> ClawgateGateway {
        let (mut process, home) = gw.into_parts();
        process.signal("KILL");
        process.wait_timeout(WAIT).await.expect("killed");
        self.start(home).await
    }

    /// The texts sent to the user.
    fn sent(&self) -> Vec<String> {
        self.bot
            .sent_messages()
            .into_iter()
            .filter(|(chat, _)| *chat == USER.to_string())
            .map(|(_, text)| text)
            .collect()
    }

    /// Waits until the gateway polls with an offset past `update_id`: the update and the
    /// offset after it are on disk (they are written together before the next poll).
    async fn wait_polled_past(&self, update_id: i64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let past = self
                .bot
                .calls_to("getUpdates")
                .iter()
                .any(|c| c.params.get("offset").and_then(|o| o.as_i64()) > Some(update_id));
            if past {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never polled past {update_id}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Everything sent to the user about the messages before it: a `/new` (answered without
    /// the model) goes after them in the same chat, and a chat's updates are handled in order,
    /// so once its answer is out nothing more can come for the earlier ones.
    async fn settled(&self) -> Vec<String> {
        self.bot.inject_dm(USER, "/new");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let sent = self.sent();
            if let Some(at) = sent.iter().position(|t| t == BARRIER_REPLY) {
                assert_eq!(at, sent.len() - 1, "nothing after the barrier: {sent:?}");
                return sent[..at].to_vec();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the barrier was never answered: {sent:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Killed as soon as the update is received (spooled, offset moved): after the restart the
/// message is answered once — by its reply or by the note that the turn was interrupted.
#[tokio::test]
async fn killed_right_after_receiving_the_update() {
    let s = Scenario::new().await;
    s.mock.set_default(Reply::text("Here is your answer."));
    let gw = s.first_start().await;
    let update = s.bot.inject_dm(USER, "question one");
    s.wait_polled_past(update).await;
    let _gw = s.kill_and_restart(gw).await;
    let sent = s.settled().await;
    assert_eq!(sent.len(), 1, "answered once: {sent:?}");
    assert!(
        sent[0] == "Here is your answer." || sent[0].contains(INTERRUPTED),
        "{sent:?}"
    );
    assert!(
        s.mock.requests().len() <= 1,
        "the model was not asked twice"
    );
    // The restarted gateway polls from the stored offset: nothing is fetched twice.
    let polls = s.bot.calls_to("getUpdates");
    let first_offsets: Vec<Option<i64>> = polls
        .iter()
        .map(|c| c.params.get("offset").and_then(|o| o.as_i64()))
        .collect();
    assert!(
        first_offsets.iter().filter(|o| o.is_none()).count() <= 1,
        "only the very first poll has no offset: {first_offsets:?}"
    );
}

/// Killed while the model answers: after the restart the user is told the turn was
/// interrupted (once), and the model is not asked again.
#[tokio::test]
async fn killed_mid_run() {
    let s = Scenario::new().await;
    s.mock.push(Reply::text_chunks(["thinking"]).then_stall());
    let gw = s.first_start().await;
    s.bot.inject_dm(USER, "a long question");
    s.mock.wait_for_requests(1, WAIT).await;
    let _gw = s.kill_and_restart(gw).await;
    let sent = s.settled().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains(INTERRUPTED), "{sent:?}");
    assert_eq!(s.mock.requests().len(), 1, "nothing ran again");
}

/// Killed while Telegram holds the reply's `sendMessage`: it may have arrived, so it is not
/// sent again; the user is told the reply may be incomplete.
#[tokio::test]
async fn killed_while_the_reply_is_being_sent() {
    let s = Scenario::new().await;
    s.mock.set_default(Reply::text("The full answer."));
    let gw = s.first_start().await;
    s.bot.fail_next("sendMessage", Failure::Stall);
    s.bot.inject_dm(USER, "question");
    s.bot.wait_for_calls("sendMessage", 1, WAIT).await;
    let _gw = s.kill_and_restart(gw).await;
    let sent = s.settled().await;
    // The held send never got an answer; after the restart only the note went out.
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains(CUT_OFF), "{sent:?}");
    let attempts: Vec<String> = s
        .bot
        .calls_to("sendMessage")
        .iter()
        .filter_map(|c| c.text().map(str::to_owned))
        .filter(|t| t == "The full answer.")
        .collect();
    assert_eq!(attempts.len(), 1, "the reply was tried once, never again");
    assert_eq!(s.mock.requests().len(), 1);
}

/// Killed right after Telegram confirmed the reply: it is never sent a second time.
#[tokio::test]
async fn killed_right_after_the_reply_was_sent() {
    let s = Scenario::new().await;
    s.mock.set_default(Reply::text("Sent once."));
    let gw = s.first_start().await;
    s.bot.inject_dm(USER, "question");
    s.bot.wait_for_calls("sendMessage", 1, WAIT).await;
    let _gw = s.kill_and_restart(gw).await;
    // Either the sent mark was on disk (nothing more) or it was not (the note follows).
    s.bot.inject_dm(USER, "and another");
    s.bot.wait_for_calls("sendMessage", 2, WAIT).await;
    let sent = s.settled().await;
    assert_eq!(
        sent.iter().filter(|t| *t == "Sent once.").count(),
        2,
        "the first reply once, the second question's reply once: {sent:?}"
    );
    match sent.len() {
        2 => {}
        3 => assert!(sent[1].contains(CUT_OFF), "{sent:?}"),
        _ => panic!("{sent:?}"),
    }
    assert_eq!(s.mock.requests().len(), 2, "each question ran once");
}
