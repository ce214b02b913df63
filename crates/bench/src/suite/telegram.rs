//! Item 11: the seed flow through Telegram. Each gateway gets the same config: the mock model
//! (answering at once), `channels.telegram` pointed at a fake Bot API on loopback (its long
//! poll returns as soon as an update exists), and the real `openclaw node run` as the node.
//! Measured from the moment an update is queued at the fake until the gateway's `sendMessage`
//! with the reply reaches it: a turn with one `exec` on the node, a plain reply, the pairing
//! code an unknown sender gets, and DMs from many chats at once. The turns of one chat are a
//! second apart at least (a DM a second after the last reply, as a person types): Telegram
//! allows a bot about one message a second per chat, and this measures the turn, not that
//! limit.

use super::{
    AGENT_COMMAND, AGENT_NODE_NAME, AGENT_SETUP_TIMEOUT, AGENT_TURN_TIMEOUT, AGENT_WARMUP_TIMEOUT,
    GatewayRun, Launcher, NodeRef, Plan, agent_config, approve_node, exec_ran_on_node,
    fakes_runtime, ms, settled_rss,
};
use crate::gateway::{Home, NodeHost};
use crate::report::Cell;
use crate::stats::Latencies;
use anyhow::{Context as _, bail};
use clawgate_testkit::{FakeBotApi, ModelMock, Reply, WireFormat};
use std::path::Path;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::time::Instant;

pub(super) const S11: &str = "11. Telegram: DM → reply through the fake Bot API (mock model answering at once, the real node host)";
pub(super) const TELEGRAM_ROWS: &[&str] = &[
    "tg_node_turn",
    "tg_node_turn_p95",
    "tg_plain_turn",
    "tg_pairing_reply",
    "tg_many_chats_rate",
    "tg_turns_done",
    "tg_rss",
];

const BOT_TOKEN: &str = "700100:bench-bot-token";
/// The sender of the timed turns (allowed by `allowFrom`).
const USER: i64 = 5001;
/// The senders of the many-chats burst start here.
const CHAT_BASE: i64 = 6001;
/// Unknown senders, each asking for a pairing code (OpenClaw keeps at most 3 pending).
const STRANGERS: [i64; 3] = [9001, 9002, 9003];
/// The least time between a reply and the next DM of the same chat.
const PACE: Duration = Duration::from_secs(1);
/// The gateway's first `getUpdates` after its start (OpenClaw loads its channel lazily).
const CHANNEL_START_TIMEOUT: Duration = Duration::from_secs(180);

/// Item 11 into `out`.
pub fn telegram_section(
    l: &Launcher,
    node_host: Option<&Path>,
    plan: &Plan,
    rt: &Runtime,
    out: &mut GatewayRun,
) {
    let kind = l.kind;
    match telegram_turns(l, node_host, plan, rt, out) {
        Ok(()) => {}
        Err(e) => {
            say!(kind, "telegram failed: {e:#}");
            out.fail(TELEGRAM_ROWS, &e);
        }
    }
}

/// The sendMessage to `chat` whose text is `text`, queued after `since`: when it arrived.
async fn reply_at(
    bot: &FakeBotApi,
    chat: i64,
    text: Option<&str>,
    since: Instant,
    within: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + within;
    let chat = chat.to_string();
    loop {
        let found = bot.calls_to("sendMessage").into_iter().find(|c| {
            c.at >= since
                && c.chat_id().as_deref() == Some(chat.as_str())
                && text.is_none_or(|t| c.text() == Some(t))
        });
        if let Some(call) = found {
            return Ok(call.at);
        }
        if Instant::now() >= deadline {
            bail!(
                "no reply {} in chat {chat} within {within:?}",
                text.map_or_else(String::new, |t| format!("{t:?}"))
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn telegram_turns(
    l: &Launcher,
    node_host: Option<&Path>,
    plan: &Plan,
    rt: &Runtime,
    out: &mut GatewayRun,
) -> anyhow::Result<()> {
    let kind = l.kind;
    let node_bin = node_host.context(
        "the Telegram turns need the real OpenClaw CLI for their node host: pass --openclaw",
    )?;
    let fakes_rt = fakes_runtime()?;
    let mock = fakes_rt.block_on(ModelMock::start(WireFormat::OpenAi));
    let bot = fakes_rt.block_on(FakeBotApi::start(BOT_TOKEN));
    let mut config = agent_config(&mock.base_url());
    let mut allowed: Vec<String> = vec![USER.to_string()];
    allowed.extend((0..plan.tg_chats as i64).map(|i| (CHAT_BASE + i).to_string()));
    config["channels"] = serde_json::json!({"telegram": {
        "enabled": true,
        "botToken": BOT_TOKEN,
        "apiRoot": bot.api_root(),
        "dmPolicy": "pairing",
        "allowFrom": allowed,
    }});
    let home = Home::with_config(kind, &config)?;
    let (mut gw, _) = l.start_timed(&home)?;
    let (pid, addr) = (gw.pid, gw.addr);
    let mut node = NodeHost::spawn(node_bin, addr, &l.token, AGENT_NODE_NAME)?;
    say!(kind, "telegram: gateway up; node host starting");
    let token = l.token.as_str();
    let total = plan.agent_warmup + plan.tg_turns;
    let mut node_turns = Vec::new();
    let mut failure = None;
    let result: anyhow::Result<()> = rt.block_on(async {
        approve_node(
            kind,
            addr,
            token,
            NodeRef::Name(AGENT_NODE_NAME),
            Some("system.run"),
            AGENT_SETUP_TIMEOUT,
        )
        .await?;
        let started = Instant::now();
        bot.wait_for_calls("getUpdates", 1, CHANNEL_START_TIMEOUT)
            .await;
        say!(
            kind,
            "telegram: polling {} after the node was approved",
            ms(started.elapsed().as_secs_f64())
        );

        // A turn with one exec on the node, one after another.
        let mut last_reply = Instant::now();
        for i in 0..total {
            tokio::time::sleep_until(last_reply + PACE).await;
            let reply = format!("It ran {i}.");
            mock.push(Reply::tool_call(
                "exec",
                serde_json::json!({"command": AGENT_COMMAND, "host": "node"}),
            ));
            mock.push(Reply::text(&reply));
            let warmup = i < plan.agent_warmup;
            let within = if warmup {
                AGENT_WARMUP_TIMEOUT
            } else {
                AGENT_TURN_TIMEOUT
            };
            let t = Instant::now();
            bot.inject_dm(USER, "Run `true` on the node.");
            let turn = reply_at(&bot, USER, Some(&reply), t, within).await;
            let checked = turn.and_then(|at| {
                last_reply = at;
                exec_ran_on_node(&mock.requests()).map(|()| (at - t).as_secs_f64())
            });
            match checked {
                Ok(secs) => {
                    say!(
                        kind,
                        "telegram turn {}/{total}{}: {}",
                        i + 1,
                        if warmup { " (warm-up)" } else { "" },
                        ms(secs)
                    );
                    if !warmup {
                        node_turns.push(secs);
                    }
                }
                Err(e) => {
                    let e = format!("turn {} of {total} failed: {e:#}", i + 1);
                    say!(kind, "telegram: {e}");
                    failure = Some(e);
                    return Ok(());
                }
            }
        }

        // Plain replies: the model answers with text alone.
        let mut plain = Vec::new();
        for i in 0..plan.tg_turns {
            let reply = format!("Plain {i}.");
            mock.push(Reply::text(&reply));
            tokio::time::sleep_until(last_reply + PACE).await;
            let t = Instant::now();
            bot.inject_dm(USER, "Say something.");
            let at = reply_at(&bot, USER, Some(&reply), t, AGENT_TURN_TIMEOUT).await?;
            last_reply = at;
            plain.push((at - t).as_secs_f64());
        }
        out.set("tg_plain_turn", plain);

        // The pairing code an unknown sender gets (no model call).
        // Paced like the turns: back to back, each reply would wait for the bot's overall
        // limit (about 30 messages a second) behind the one before.
        let mut pairing = Vec::new();
        for stranger in STRANGERS {
            tokio::time::sleep_until(last_reply + PACE).await;
            let t = Instant::now();
            bot.inject_dm(stranger, "hello?");
            let at = reply_at(&bot, stranger, None, t, AGENT_TURN_TIMEOUT).await?;
            last_reply = at;
            pairing.push((at - t).as_secs_f64());
        }
        out.set("tg_pairing_reply", pairing);

        // DMs from many chats at once, each a plain reply: replies per second.
        let chats = plan.tg_chats as i64;
        mock.set_default(Reply::text("Many."));
        let t = Instant::now();
        for i in 0..chats {
            bot.inject_dm(CHAT_BASE + i, "Say something.");
        }
        let mut last = t;
        for i in 0..chats {
            let at = reply_at(&bot, CHAT_BASE + i, Some("Many."), t, AGENT_WARMUP_TIMEOUT).await?;
            last = last.max(at);
        }
        let secs = (last - t).as_secs_f64();
        say!(kind, "telegram: {chats} chats answered in {}", ms(secs));
        out.set("tg_many_chats_rate", vec![chats as f64 / secs.max(1e-9)]);
        Ok(())
    });
    let done = node_turns.len();
    if let Some(l) = Latencies::of(&node_turns) {
        let sorted = crate::stats::sorted(&node_turns);
        let p95 = crate::stats::percentile(&sorted, 95.0).unwrap_or(l.max);
        say!(kind, "telegram: {done} timed node turns, p50 {}", ms(l.p50));
        out.set("tg_node_turn_p95", vec![p95]);
        out.set("tg_node_turn", node_turns);
    }
    let mut count = Cell::of(vec![done as f64]);
    if let Some(f) = &failure {
        count.note = Some(f.clone());
    }
    out.cells.insert("tg_turns_done".into(), count);
    if let Err(e) = result {
        if !node.is_alive() {
            say!(kind, "telegram: the node host exited:\n{}", node.log_tail());
        }
        drop(node);
        gw.stop();
        return Err(e);
    }
    // Idle again with the channel polling and the agent loaded.
    out.set("tg_rss", settled_rss(pid));
    drop(node);
    if !gw.is_alive() {
        out.notes
            .push(format!("{} exited during the Telegram turns", kind.label()));
    }
    gw.stop();
    Ok(())
}
