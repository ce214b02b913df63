//! The Telegram channel against the fake Bot API: polling with offsets and resume, the inbound
//! spool, DM access and pairing, replies (HTML, chunks, plain-text fallback), retries, and the
//! errors for a refused token and a second poller — none of which may show the token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clawgate_config::{DmPolicy, Secret, TelegramConfig};
use clawgate_store::{SpooledUpdate, Store, TelegramWrite};
use clawgate_telegram::{
    BotApi, ChannelOptions, HandlerFuture, HandlerReply, InboundHandler, InboundMessage,
    SendOptions, TelegramChannel, TelegramError, approve, markdown_to_html, telegram_len,
};
use clawgate_testkit::{Failure, FakeBotApi, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "4242:AAE-very-secret-token-part";
const SECRET_PART: &str = "very-secret-token-part";
const WAIT: Duration = Duration::from_secs(10);

/// Records what it is handed and answers with a reply built from it.
struct Recorder {
    seen: Mutex<Vec<InboundMessage>>,
    /// The approvals answered: `(id, decision)`.
    resolved: Mutex<Vec<(String, String)>>,
    arrived: Notify,
    reply: Box<dyn Fn(&InboundMessage) -> HandlerReply + Send + Sync>,
}

impl Recorder {
    fn new(reply: impl Fn(&InboundMessage) -> HandlerReply + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Recorder {
            seen: Mutex::new(Vec::new()),
            resolved: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            reply: Box::new(reply),
        })
    }

    fn echo() -> Arc<Self> {
        Recorder::new(|m| HandlerReply::Text(format!("echo: {}", m.text)))
    }

    fn seen(&self) -> Vec<InboundMessage> {
        self.seen.lock().unwrap().clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<InboundMessage> {
        let deadline = Instant::now() + WAIT;
        loop {
            let arrived = self.arrived.notified();
            let seen = self.seen();
            if seen.len() >= count {
                return seen;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("handed {} of {count} messages: {seen:?}", seen.len());
            }
        }
    }
}

impl InboundHandler for Recorder {
    fn handle(&self, message: InboundMessage) -> HandlerFuture<'_> {
        Box::pin(async move {
            let reply = (self.reply)(&message);
            self.seen.lock().unwrap().push(message);
            self.arrived.notify_waiters();
            reply
        })
    }

    fn resolve_approval(&self, id: &str, decision: &str) -> Result<(), String> {
        self.resolved
            .lock()
            .unwrap()
            .push((id.to_owned(), decision.to_owned()));
        match id {
            "known" => Ok(()),
            _ => Err(format!("no approval {id}")),
        }
    }
}

fn config(api: &FakeBotApi, policy: DmPolicy, allow_from: &[&str]) -> TelegramConfig {
    TelegramConfig {
        token: Some(Secret::new(TOKEN)),
        api_root: api.api_root(),
        dm_policy: policy,
        allow_from: allow_from.iter().map(|s| s.to_string()).collect(),
        ..TelegramConfig::default()
    }
}

struct Running {
    channel: TelegramChannel,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), TelegramError>>,
}

impl Running {
    async fn stop(self) -> Result<(), TelegramError> {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the channel stops")
            .unwrap()
    }
}

fn start(
    cfg: &TelegramConfig,
    dir: &std::path::Path,
    store: &Arc<Store>,
    handler: Arc<Recorder>,
) -> Running {
    let channel = TelegramChannel::new(
        cfg,
        ChannelOptions::new(dir.to_owned()),
        store.clone(),
        handler,
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let (channel, shutdown) = (channel.clone(), shutdown.clone());
        async move { channel.run(shutdown).await }
    });
    Running {
        channel,
        shutdown,
        task,
    }
}

/// Waits until the spool shows `update_id` handled.
async fn wait_handled(store: &Store, bot_id: i64, update_id: i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let u = store
            .telegram_update(&bot_id.to_string(), update_id)
            .await
            .unwrap();
        if u.is_some_and(|u| u.handled_at_ms.is_some()) {
            return;
        }
        assert!(Instant::now() < deadline, "update {update_id} not handled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn offsets(api: &FakeBotApi) -> Vec<Option<i64>> {
    api.calls_to("getUpdates")
        .iter()
        .map(|c| c.params.get("offset").and_then(|o| o.as_i64()))
        .collect()
}

#[tokio::test]
async fn polls_with_offsets_and_resumes_after_a_restart_without_handling_twice() {
    let api = FakeBotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let cfg = config(&api, DmPolicy::Allowlist, &["777"]);
    let handler = Recorder::echo();

    let first = api.inject_dm(777, "one");
    let run = start(&cfg, dir.path(), &store, handler.clone());
    handler.wait_for(1).await;
    let second = api.inject_dm(777, "two");
    let third = api.inject_dm(777, "three");
    handler.wait_for(3).await;
    wait_handled(&store, api.bot_id(), third).await;
    let sent = api.wait_for_calls("sendMessage", 3, WAIT).await;
    assert_eq!(
        sent.iter().map(|c| c.text().unwrap()).collect::<Vec<_>>(),
        ["echo: one", "echo: two", "echo: three"]
    );
    assert!(sent.iter().all(|c| c.chat_id().as_deref() == Some("777")));
    assert!(sent.iter().all(|c| c.params["parse_mode"] == "HTML"));
    // Start-up calls, then polls: the first without an offset, then each past the last seen.
    let methods: Vec<String> = api.calls().iter().map(|c| c.method.clone()).collect();
    assert_eq!(methods[..3], ["getMe", "deleteWebhook", "setMyCommands"]);
    assert_eq!(
        api.calls_to("deleteWebhook")[0].params,
        json!({"drop_pending_updates": false})
    );
    let seen_offsets = offsets(&api);
    assert_eq!(seen_offsets[0], None);
    assert!(seen_offsets.contains(&Some(first + 1)), "{seen_offsets:?}");
    assert!(seen_offsets.contains(&Some(third + 1)), "{seen_offsets:?}");
    assert_eq!(api.calls_to("getUpdates")[0].params["timeout"], 30);
    let health = run.channel.health();
    assert!(health.running && health.last_poll_at_ms.is_some() && health.last_error.is_none());
    assert_eq!(health.bot.as_ref().unwrap().id, 4242);
    run.stop().await.unwrap();
    assert!(!handler.seen().is_empty());

    // While it is down a DM arrives; a new channel over the same state resumes at the stored
    // offset and hands over only the new one.
    let fourth = api.inject_dm(777, "four");
    let polls_before = api.calls_to("getUpdates").len();
    let run = start(&cfg, dir.path(), &store, handler.clone());
    handler.wait_for(4).await;
    wait_handled(&store, api.bot_id(), fourth).await;
    assert_eq!(
        offsets(&api)[polls_before],
        Some(third + 1),
        "resumed offset"
    );
    let ids: Vec<i64> = handler.seen().iter().map(|m| m.update_id).collect();
    assert_eq!(ids, vec![first, second, third, fourth], "each update once");
    assert_eq!(
        handler.seen()[3].idempotency_key(),
        format!("telegram:4242:{fourth}")
    );
    run.stop().await.unwrap();
    assert_eq!(api.sent_messages().len(), 4, "no reply twice");
}

#[tokio::test]
async fn an_update_spooled_before_a_crash_is_handed_over_once_at_start() {
    let api = FakeBotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    // The previous run spooled update 500 and moved the offset past it, then died.
    let update = json!({"update_id": 500, "message": {
        "message_id": 9, "date": 1, "text": "from before",
        "chat": {"id": 777, "type": "private"}, "from": {"id": 777, "first_name": "A"}}});
    store
        .apply(vec![
            TelegramWrite::Spool(SpooledUpdate {
                bot_id: "4242".into(),
                update_id: 500,
                update,
                received_at_ms: 1,
                handled_at_ms: None,
            })
            .into(),
            TelegramWrite::Offset {
                bot_id: "4242".into(),
                next_offset: 501,
            }
            .into(),
        ])
        .await
        .unwrap();
    let handler = Recorder::echo();
    let run = start(
        &config(&api, DmPolicy::Allowlist, &["777"]),
        dir.path(),
        &store,
        handler.clone(),
    );
    let seen = handler.wait_for(1).await;
    assert_eq!(seen[0].text, "from before");
    assert_eq!(seen[0].message_id, 9);
    wait_handled(&store, 4242, 500).await;
    api.wait_for_calls("getUpdates", 1, WAIT).await;
    assert_eq!(offsets(&api)[0], Some(501));
    run.stop().await.unwrap();
    assert_eq!(handler.seen().len(), 1);
    assert_eq!(
        api.sent_messages(),
        vec![("777".into(), "echo: from before".into())]
    );
}

#[tokio::test]
async fn an_unknown_sender_gets_a_pairing_code_and_is_handed_over_after_approval() {
    let api = FakeBotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let handler = Recorder::echo();
    let run = start(
        &config(&api, DmPolicy::Pairing, &[]),
        dir.path(),
        &store,
        handler.clone(),
    );

    api.inject_dm(555, "hello?");
    let sent = api.wait_for_calls("sendMessage", 1, WAIT).await;
    let text = sent[0].text().unwrap().to_owned();
    assert_eq!(sent[0].chat_id().as_deref(), Some("555"));
    assert_eq!(sent[0].params["parse_mode"], "HTML");
    assert!(
        text.contains("Your Telegram user id: <code>555</code>"),
        "{text}"
    );
    let code = text
        .split("clawgate pairing approve telegram ")
        .nth(1)
        .and_then(|rest| rest.get(..8))
        .expect("the approve command with the code")
        .to_owned();
    assert!(
        text.contains(&format!("<pre><code>{code}</code></pre>")),
        "{text}"
    );
    assert!(
        code.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    assert!(!code.contains(['0', 'O', '1', 'I']), "{code}");

    // Asking again gets no second reply while the code is pending.
    let again = api.inject_dm(555, "hello again");
    wait_handled(&store, api.bot_id(), again).await;
    assert_eq!(api.calls_to("sendMessage").len(), 1);
    assert!(
        handler.seen().is_empty(),
        "nothing handed over before approval"
    );

    let approved = approve(&store, "default", &code, now_ms()).await.unwrap();
    assert_eq!(approved.sender_id, "555");
    api.inject_dm(555, "now?");
    let seen = handler.wait_for(1).await;
    assert_eq!(seen[0].text, "now?");
    assert_eq!(seen[0].sender_id, "555");
    assert_eq!(seen[0].sender_username.as_deref(), Some("user555"));
    let sent = api.wait_for_calls("sendMessage", 2, WAIT).await;
    assert_eq!(sent[1].text(), Some("echo: now?"));
    run.stop().await.unwrap();
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn allowlist_and_disabled_drop_strangers_without_a_reply() {
    for policy in [DmPolicy::Allowlist, DmPolicy::Disabled] {
        let api = FakeBotApi::start(TOKEN).await;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let handler = Recorder::echo();
        let run = start(
            &config(&api, policy, &["1"]),
            dir.path(),
            &store,
            handler.clone(),
        );
        let stranger = api.inject_dm(2, "let me in");
        let friend = api.inject_dm(1, "hi");
        wait_handled(&store, api.bot_id(), stranger).await;
        wait_handled(&store, api.bot_id(), friend).await;
        let seen: Vec<String> = handler.seen().iter().map(|m| m.sender_id.clone()).collect();
        match policy {
            DmPolicy::Allowlist => {
                assert_eq!(seen, vec!["1"]);
                assert_eq!(api.sent_messages(), vec![("1".into(), "echo: hi".into())]);
            }
            _ => {
                assert!(seen.is_empty(), "{seen:?}");
                assert!(api.calls_to("sendMessage").is_empty());
            }
        }
        assert!(
            store
                .telegram_pairing_requests("default")
                .await
                .unwrap()
                .is_empty()
        );
        run.stop().await.unwrap();
    }
}

#[tokio::test]
async fn long_replies_arrive_in_chunks_that_keep_code_fences_whole() {
    let api = FakeBotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let mut reply = String::new();
    for i in 0..40 {
        reply.push_str(&format!(
            "Paragraph {i}: **bold** & <tag> {}\n\n",
            "word ".repeat(60)
        ));
        if i % 10 == 5 {
            reply.push_str(&format!(
                "```sh\n{}```\n\n",
                "echo a && echo b\n".repeat(40)
            ));
        }
    }
    assert!(reply.len() > 12_000);
    let expected = reply.clone();
    let handler = Recorder::new(move |_| HandlerReply::Text(reply.clone()));
    let run = start(
        &config(&api, DmPolicy::Allowlist, &["9"]),
        dir.path(),
        &store,
        handler.clone(),
    );
    let update = api.inject_dm(9, "write a lot");
    wait_handled(&store, api.bot_id(), update).await;
    run.stop().await.unwrap();
    let sent = api.calls_to("sendMessage");
    assert!(sent.len() >= 4, "{}", sent.len());
    let chunks = clawgate_telegram::chunk_markdown(&expected, 4000);
    assert_eq!(chunks.concat(), expected, "the chunks are the whole reply");
    assert_eq!(sent.len(), chunks.len());
    for (call, chunk) in sent.iter().zip(&chunks) {
        assert!(telegram_len(chunk) <= 4000);
        assert_eq!(chunk.matches("```").count() % 2, 0, "a fence was split");
        assert_eq!(call.text(), Some(markdown_to_html(chunk).as_str()));
        assert!(telegram_len(call.text().unwrap()) <= 4096 * 2);
    }
    // After a short burst, chunks to one chat go one a second (the per-chat throttle).
    let burst = clawgate_telegram::PER_CHAT_BURST as usize;
    let since_first: Vec<Duration> = sent.iter().map(|c| c.at - sent[0].at).collect();
    for (i, t) in since_first.iter().enumerate().skip(burst) {
        let earliest = Duration::from_secs((i + 1 - burst) as u64);
        assert!(
            *t + Duration::from_millis(50) >= earliest,
            "chunk {i}: {since_first:?}"
        );
    }
    // One a second from the start would put the burst's last ≥ 2 s after the first.
    assert!(
        sent[burst - 1].at - sent[0].at < Duration::from_millis(1500),
        "the burst went at once: {since_first:?}"
    );
}

#[tokio::test]
async fn a_parse_error_resends_the_chunk_as_plain_text() {
    let api = FakeBotApi::start(TOKEN).await;
    let bot = BotApi::new(Secret::new(TOKEN), &api.api_root(), None).unwrap();
    api.fail_next("sendMessage", Failure::ParseError);
    let id = bot
        .send_message("77", "<b>broken", "**broken", SendOptions::default())
        .await
        .unwrap();
    assert!(id > 0);
    let sent = api.calls_to("sendMessage");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].status, 400);
    assert_eq!(sent[0].params["parse_mode"], "HTML");
    assert_eq!(sent[1].status, 200);
    assert!(sent[1].params.get("parse_mode").is_none());
    assert_eq!(sent[1].text(), Some("**broken"));
    assert_eq!(
        sent[1].params["chat_id"], 77,
        "a numeric chat id goes as a number"
    );

    // Another 400 is not retried.
    api.fail_next("sendMessage", Failure::BadRequest("chat not found".into()));
    let err = bot
        .send_message("78", "x", "x", SendOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("400 Bad Request: chat not found"),
        "{err}"
    );
    assert_eq!(api.calls_to("sendMessage").len(), 3);
}

// Paused time: the fake runs on the test's runtime, so the clock only jumps while nothing is
// in flight, and the wait is measured exactly.
#[tokio::test(start_paused = true)]
async fn a_429_waits_its_retry_after_and_resets_are_retried() {
    let api = FakeBotApi::start(TOKEN).await;
    let bot = BotApi::new(Secret::new(TOKEN), &api.api_root(), None).unwrap();
    api.fail_next("sendMessage", Failure::TooManyRequests { retry_after: 7 });
    bot.send_message("1", "hi", "hi", SendOptions::default())
        .await
        .unwrap();
    let sent = api.calls_to("sendMessage");
    assert_eq!(sent.len(), 2);
    let waited = sent[1].at - sent[0].at;
    assert!(
        (Duration::from_secs(7)..Duration::from_millis(7100)).contains(&waited),
        "{waited:?}"
    );

    // A dropped connection is retried with back-off; three failures are the end.
    api.fail_next("sendMessage", Failure::Drop);
    bot.send_message("1", "hi", "hi", SendOptions::default())
        .await
        .unwrap();
    for _ in 0..3 {
        api.fail_next("sendMessage", Failure::Drop);
    }
    let err = bot
        .send_message("1", "hi", "hi", SendOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, TelegramError::Transport { .. }), "{err:?}");
    assert_eq!(api.calls_to("sendMessage").len(), 2 + 2 + 3);
    assert!(!format!("{err} {err:?}").contains(SECRET_PART), "{err:?}");

    // A retry_after beyond the limit is not waited out.
    api.fail_next(
        "sendMessage",
        Failure::TooManyRequests { retry_after: 3600 },
    );
    let started = Instant::now();
    let err = bot
        .send_message("1", "hi", "hi", SendOptions::default())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(err, TelegramError::Api { status: 429, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_refused_token_stops_the_channel_with_an_error_naming_the_key() {
    let api = FakeBotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    api.fail_next("getMe", Failure::Unauthorized);
    let run = start(
        &config(&api, DmPolicy::Pairing, &[]),
        dir.path(),
        &store,
        Recorder::echo(),
    );
    let err = tokio::time::timeout(WAIT, run.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("401 Unauthorized at getMe"), "{text}");
    assert!(text.contains("channels.telegram.botToken"), "{text}");
    assert!(!format!("{text} {err:?}").contains(SECRET_PART));
    let health = run.channel.health();
    assert!(!health.running);
    assert_eq!(health.last_error.as_deref(), Some(text.as_str()));
    assert!(api.calls_to("getUpdates").is_empty());

    // A wrong token is refused by the API itself, with the same error.
    let wrong = FakeBotApi::start("4242:the-real-one").await;
    let bot = BotApi::new(Secret::new(TOKEN), &wrong.api_root(), None).unwrap();
    let err = bot.get_me().await.unwrap_err();
    assert!(matches!(err, TelegramError::Unauthorized { .. }));
    assert!(!wrong.calls()[0].authorized);
}

#[tokio::test]
async fn a_second_poller_is_refused_and_a_409_is_reported() {
    let api = FakeBotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let cfg = config(&api, DmPolicy::Pairing, &[]);
    api.fail_next("getUpdates", Failure::Conflict);
    let run = start(&cfg, dir.path(), &store, Recorder::echo());
    api.wait_for_calls("getUpdates", 1, WAIT).await;

    // In the same state dir a second channel for the token is refused by the lock.
    let second = start(&cfg, dir.path(), &store, Recorder::echo());
    let err = tokio::time::timeout(WAIT, second.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("already polling this bot token") && text.contains("pid"),
        "{text}"
    );
    assert!(!text.contains(SECRET_PART), "{text}");

    // The 409 shows in the health state until a poll succeeds, and polling goes on.
    let deadline = Instant::now() + WAIT;
    let seen = loop {
        if let Some(e) = run.channel.health().last_error {
            break e;
        }
        assert!(Instant::now() < deadline, "no error recorded");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        seen.contains("another poller is using this bot token"),
        "{seen}"
    );
    assert!(seen.contains("409 Conflict"), "{seen}");
    assert!(!seen.contains(SECRET_PART));
    api.wait_for_calls("getUpdates", 2, WAIT).await;
    run.stop().await.unwrap();
}

#[tokio::test]
async fn errors_reach_the_chat_by_error_policy() {
    use clawgate_config::ErrorPolicy;
    for (policy, expected) in [
        (ErrorPolicy::Always, 2),
        (ErrorPolicy::Once, 1),
        (ErrorPolicy::Silent, 0),
    ] {
        let api = FakeBotApi::start(TOKEN).await;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let cfg = TelegramConfig {
            error_policy: policy,
            ..config(&api, DmPolicy::Allowlist, &["3"])
        };
        let handler = Recorder::new(|_| HandlerReply::Error("⚠️ the model failed".into()));
        let run = start(&cfg, dir.path(), &store, handler.clone());
        api.inject_dm(3, "a");
        let last = api.inject_dm(3, "b");
        wait_handled(&store, api.bot_id(), last).await;
        run.stop().await.unwrap();
        assert_eq!(handler.seen().len(), 2);
        assert_eq!(api.sent_messages().len(), expected, "{policy:?}");
    }
}

/// A log sink for the test's thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// Current-thread runtime: the channel's tasks log through the test's subscriber.
#[tokio::test]
async fn no_log_line_or_error_holds_the_token() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let api = FakeBotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    api.fail_next("getMe", Failure::Drop);
    api.fail_next("getUpdates", Failure::Conflict)
        .fail_next("getUpdates", Failure::Drop);
    api.fail_next("sendMessage", Failure::ParseError);
    let handler = Recorder::echo();
    let run = start(
        &config(&api, DmPolicy::Allowlist, &["5"]),
        dir.path(),
        &store,
        handler.clone(),
    );
    let update = api.inject_dm(5, "*unbalanced");
    wait_handled(&store, api.bot_id(), update).await;
    run.stop().await.unwrap();
    assert_eq!(api.sent_messages().len(), 1);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("Telegram getUpdates failed"), "{text}");
    assert!(text.contains("plain text"), "{text}");
    assert!(
        !text.contains(SECRET_PART),
        "the token is in the log:\n{text}"
    );
}

/// The texts of the `sendMessage` calls, in order.
fn sent_texts(api: &FakeBotApi) -> Vec<String> {
    api.calls_to("sendMessage")
        .iter()
        .filter_map(|c| c.text().map(str::to_owned))
        .collect()
}

const THREE_PARTS: &str =
    "First part of the answer.\n\nSecond part of the answer.\n\nThird part of the answer.";

fn three_part_config(api: &FakeBotApi) -> TelegramConfig {
    TelegramConfig {
        text_chunk_limit: 40,
        ..config(api, DmPolicy::Allowlist, &["9"])
    }
}

#[tokio::test]
async fn a_reply_cut_off_mid_send_is_never_sent_twice_and_the_chat_is_told() {
    let api = FakeBotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let cfg = three_part_config(&api);
    let parts = clawgate_telegram::chunk_markdown(THREE_PARTS, 40);
    assert_eq!(parts.len(), 3, "{parts:?}");
    let handler = Recorder::new(|_| HandlerReply::Text(THREE_PARTS.to_owned()));
    let run = start(&cfg, dir.path(), &store, handler.clone());
    let update = api.inject_dm(9, "tell me");
    // The first part arrives; the second is cut off by a crash while Telegram has it.
    api.wait_for_calls("sendMessage", 1, WAIT).await;
    api.fail_next("sendMessage", Failure::Stall);
    api.wait_for_calls("sendMessage", 2, WAIT).await;
    run.task.abort();
    let _ = run.task.await;
    drop(run.channel);

    let run = start(&cfg, dir.path(), &store, handler.clone());
    wait_handled(&store, api.bot_id(), update).await;
    run.stop().await.unwrap();

    let html = |t: &str| markdown_to_html(t);
    assert_eq!(
        sent_texts(&api),
        vec![
            html(&parts[0]),
            html(&parts[1]),
            html(&parts[2]),
            html(clawgate_telegram::RESTART_NOTICE),
        ],
        "the cut-off part is not sent again; the rest follows; the chat is told"
    );
    assert_eq!(handler.seen().len(), 1, "the message was not run again");
    let states: Vec<&str> = store
        .telegram_outbox(&api.bot_id().to_string(), update)
        .await
        .unwrap()
        .iter()
        .map(|p| p.state.as_str())
        .collect();
    assert_eq!(states, ["sent", "uncertain", "sent", "sent"]);
}

#[tokio::test]
async fn a_reply_telegram_never_confirmed_is_not_resent_after_a_restart() {
    let api = FakeBotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let cfg = config(&api, DmPolicy::Allowlist, &["9"]);
    let handler = Recorder::echo();
    // Every try of the send loses its connection: it may or may not have arrived.
    for _ in 0..clawgate_telegram::ATTEMPTS {
        api.fail_next("sendMessage", Failure::Drop);
    }
    let run = start(&cfg, dir.path(), &store, handler.clone());
    let update = api.inject_dm(9, "hello");
    api.wait_for_calls("sendMessage", clawgate_telegram::ATTEMPTS as usize, WAIT)
        .await;
    let bot = api.bot_id().to_string();
    let deadline = Instant::now() + WAIT;
    while run.channel.health().outbox_unconfirmed == 0 {
        assert!(Instant::now() < deadline, "the failed send is counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let health = run.channel.health();
    assert_eq!(
        (health.spool_pending, health.outbox_unconfirmed),
        (1, 1),
        "{health:?}"
    );
    assert!(health.last_error.is_some(), "the failed send is reported");
    run.stop().await.unwrap();
    let spooled = store.telegram_update(&bot, update).await.unwrap().unwrap();
    assert_eq!(spooled.handled_at_ms, None, "left for the next start");
    let outbox = store.telegram_outbox(&bot, update).await.unwrap();
    assert_eq!(outbox[0].state.as_str(), "sending");

    let run = start(&cfg, dir.path(), &store, handler.clone());
    wait_handled(&store, api.bot_id(), update).await;
    // The count follows the handled mark.
    let deadline = Instant::now() + WAIT;
    while run.channel.health().spool_pending > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let health = run.channel.health();
    assert_eq!(
        (
            health.spool_pending,
            health.outbox_unconfirmed,
            health.outbox_uncertain
        ),
        (0, 0, 1),
        "{health:?}"
    );
    run.stop().await.unwrap();
    let texts = sent_texts(&api);
    let echo = markdown_to_html("echo: hello");
    assert_eq!(
        texts.iter().filter(|t| **t == echo).count(),
        clawgate_telegram::ATTEMPTS as usize,
        "no send after the restart: {texts:?}"
    );
    assert_eq!(
        texts.last().map(String::as_str),
        Some(markdown_to_html(clawgate_telegram::RESTART_NOTICE).as_str())
    );
    assert_eq!(handler.seen().len(), 1);
}

#[tokio::test]
async fn approve_commands_from_approvers_resolve_and_others_are_refused() {
    let api = FakeBotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    // 9 may DM the bot; 5 is the approver (and not on the allowlist).
    let cfg = TelegramConfig {
        exec_approvers: vec!["5".into()],
        ..config(&api, DmPolicy::Allowlist, &["9"])
    };
    let handler = Recorder::echo();
    let run = start(&cfg, dir.path(), &store, handler.clone());
    api.inject_dm(5, "/approve known always");
    api.inject_dm(5, "/approve gone deny");
    api.inject_dm(5, "/approve");
    let not_approver = api.inject_dm(9, "/approve known deny");
    wait_handled(&store, api.bot_id(), not_approver).await;
    api.wait_for_calls("sendMessage", 4, WAIT).await;
    run.stop().await.unwrap();
    let mut texts: Vec<(String, String)> = api.sent_messages();
    texts.sort();
    assert_eq!(
        texts,
        vec![
            (
                "5".to_owned(),
                markdown_to_html(clawgate_telegram::APPROVE_USAGE)
            ),
            ("5".to_owned(), "no approval gone".to_owned()),
            ("5".to_owned(), "✅ Allowed always.".to_owned()),
            (
                "9".to_owned(),
                markdown_to_html(clawgate_telegram::NOT_AN_APPROVER)
            ),
        ]
    );
    assert_eq!(
        *handler.resolved.lock().unwrap(),
        vec![
            ("known".to_owned(), "allow-always".to_owned()),
            ("gone".to_owned(), "deny".to_owned())
        ]
    );
    assert!(handler.seen().is_empty(), "no /approve reached the agent");
}

#[tokio::test]
async fn groups_answer_listed_chats_and_senders_when_the_bot_is_mentioned() {
    let api = FakeBotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let group = |require_mention: bool, allow_from: &[&str]| clawgate_config::TelegramGroupConfig {
        require_mention,
        allow_from: allow_from.iter().map(|s| s.to_string()).collect(),
    };
    let cfg = TelegramConfig {
        groups: [
            ("-100".to_owned(), group(true, &[])),
            ("-200".to_owned(), group(false, &["8"])),
        ]
        .into(),
        group_allow_from: vec!["7".into()],
        ..config(&api, DmPolicy::Allowlist, &["9"])
    };
    let handler = Recorder::echo();
    let run = start(&cfg, dir.path(), &store, handler.clone());
    api.inject_group_message(-100, 7, "no mention, ignored");
    api.inject_group_message(-100, 7, "hey @Fake_Bot what time is it");
    api.inject_group_message(-100, 9, "@fake_bot 9 is not in groupAllowFrom");
    api.inject_group_message(-200, 8, "no mention needed here");
    api.inject_group_message(-200, 7, "not in this group's allowFrom");
    let last = api.inject_group_message(-300, 7, "@fake_bot an unlisted group");
    wait_handled(&store, api.bot_id(), last).await;
    handler.wait_for(2).await;
    run.stop().await.unwrap();
    let mut seen: Vec<(String, bool, String)> = handler
        .seen()
        .into_iter()
        .map(|m| (m.chat_id, m.group, m.text))
        .collect();
    // Chats are handled in parallel.
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (
                "-100".to_owned(),
                true,
                "hey @Fake_Bot what time is it".to_owned()
            ),
            ("-200".to_owned(), true, "no mention needed here".to_owned()),
        ]
    );
    let mut replied: Vec<String> = api
        .sent_messages()
        .into_iter()
        .map(|(chat, _)| chat)
        .collect();
    replied.sort();
    assert_eq!(replied, ["-100", "-200"], "replies go to the groups");
}

#[tokio::test]
async fn a_reply_carries_what_it_replies_to() {
    let api = FakeBotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let handler = Recorder::echo();
    let run = start(
        &config(&api, DmPolicy::Allowlist, &["9"]),
        dir.path(),
        &store,
        handler.clone(),
    );
    api.inject_message(json!({
        "chat": {"id": 9, "type": "private"},
        "from": {"id": 9, "is_bot": false, "first_name": "Nine"},
        "text": "why \"that\"?",
        "reply_to_message": {"message_id": 3, "text": "Because of the weather."},
    }));
    let plain = api.inject_dm(9, "no reply context");
    wait_handled(&store, api.bot_id(), plain).await;
    run.stop().await.unwrap();
    let seen = handler.wait_for(2).await;
    assert_eq!(
        seen[0].reply_quote.as_deref(),
        Some("Because of the weather.")
    );
    assert_eq!(
        seen[0].text_with_context(),
        "[Replying to: \"Because of the weather.\"]\nwhy \"that\"?"
    );
    assert_eq!(seen[1].text_with_context(), "no reply context");
}

#[tokio::test]
async fn webhook_posts_are_checked_spooled_and_handled_once() {
    let api = FakeBotApi::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let cfg = TelegramConfig {
        webhook_url: Some("https://gateway.example.com/telegram-webhook".into()),
        webhook_secret: Some(Secret::new("hook-secret")),
        ..config(&api, DmPolicy::Allowlist, &["9"])
    };
    let handler = Recorder::echo();
    let run = start(&cfg, dir.path(), &store, handler.clone());
    assert_eq!(run.channel.webhook_path(), Some("/telegram-webhook"));
    let set = api.wait_for_calls("setWebhook", 1, WAIT).await;
    assert_eq!(
        set[0].params["url"],
        "https://gateway.example.com/telegram-webhook"
    );
    assert_eq!(set[0].params["secret_token"], "hook-secret");
    assert_eq!(set[0].params["drop_pending_updates"], false);
    let update = json!({"update_id": 500, "message": {
        "message_id": 1, "date": 1, "text": "by webhook",
        "chat": {"id": 9, "type": "private"}, "from": {"id": 9, "is_bot": false, "first_name": "N"},
    }});
    let body = update.to_string();
    assert_eq!(
        run.channel
            .accept_webhook(Some(b"wrong"), body.as_bytes())
            .await,
        Err(clawgate_telegram::WebhookRefusal::Unauthorized)
    );
    assert_eq!(
        run.channel.accept_webhook(None, body.as_bytes()).await,
        Err(clawgate_telegram::WebhookRefusal::Unauthorized)
    );
    assert!(matches!(
        run.channel
            .accept_webhook(Some(b"hook-secret"), b"{\"no\": 1}")
            .await,
        Err(clawgate_telegram::WebhookRefusal::BadRequest(_))
    ));
    run.channel
        .accept_webhook(Some(b"hook-secret"), body.as_bytes())
        .await
        .unwrap();
    wait_handled(&store, api.bot_id(), 500).await;
    // Telegram posts it again (it did not see the 200): handled once all the same.
    run.channel
        .accept_webhook(Some(b"hook-secret"), body.as_bytes())
        .await
        .unwrap();
    let sent = api.wait_for_calls("sendMessage", 1, WAIT).await;
    assert_eq!(sent[0].text(), Some("echo: by webhook"));
    assert!(!run.channel.health().stalled(i64::MAX), "no polls to watch");
    run.stop().await.unwrap();
    assert_eq!(handler.seen().len(), 1);
    assert!(
        api.calls_to("getUpdates").is_empty(),
        "no polling in webhook mode"
    );
    assert!(api.calls_to("sendMessage").len() == 1);
}
