//! `channels.*`: the channels' state and their DM pairing requests (OpenClaw's Control UI calls
//! these). Pairing works on the store, with or without a running channel.

use super::chat::required;
use super::table::{Call, Reply};
use clawgate_protocol::errors;
use clawgate_store::PairingCodeRecord;
use serde_json::{Value, json};

const TELEGRAM: &str = "telegram";
const ACCOUNT: &str = clawgate_telegram::DEFAULT_ACCOUNT;

/// The Telegram accounts whose pairing requests the methods see: the running bots', or the
/// default account's without a running channel (approvals work on the store alone).
fn accounts(gw: &crate::Gateway) -> Vec<String> {
    let running: Vec<String> = gw.telegram.iter().map(|c| c.account().to_owned()).collect();
    if running.is_empty() {
        vec![ACCOUNT.to_owned()]
    } else {
        running
    }
}

/// The account a call is about: its `accountId`, else the one with a pending request for
/// `code`, else the default.
async fn account_for(c: &Call<'_>, code: &str) -> Result<String, errors::ErrorShape> {
    if let Some(id) = c.params.get("accountId").and_then(Value::as_str) {
        return Ok(id.to_owned());
    }
    for account in accounts(c.gw) {
        let pending = clawgate_telegram::pending(&c.gw.store, &account, crate::now_ms())
            .await
            .map_err(|e| errors::unavailable(e.to_string()))?;
        if pending
            .iter()
            .any(|p| p.code.eq_ignore_ascii_case(code.trim()))
        {
            return Ok(account);
        }
    }
    Ok(ACCOUNT.to_owned())
}

/// OpenClaw writes its pairing times as ISO 8601.
fn iso(ms: i64) -> String {
    clawgate_base::iso8601_ms(ms)
}

fn request_json(r: &PairingCodeRecord) -> Value {
    let mut v = json!({
        "requestId": r.code,
        "code": r.code,
        "channel": TELEGRAM,
        "channelLabel": "Telegram",
        "accountId": r.account,
        "senderId": r.sender_id,
        "senderLabel": "Telegram user id",
        "createdAt": iso(r.created_at_ms),
        "lastSeenAt": iso(r.created_at_ms),
        "expiresAt": iso(r.expires_at_ms),
        "notifySupported": true,
    });
    if let Some(label) = &r.sender_label {
        v["metadata"] = json!({"name": label});
    }
    v
}

/// Only Telegram pairs DMs here; another channel is refused by name.
fn check_channel(c: &Call<'_>) -> Result<(), errors::ErrorShape> {
    match c.params.get("channel").and_then(Value::as_str) {
        None | Some(TELEGRAM) => Ok(()),
        Some(other) => Err(errors::invalid_params(
            c.method,
            &format!(
                "channel account does not use DM pairing: {other} (this gateway pairs telegram)"
            ),
        )),
    }
}

/// `channels.pairing.list {channel?}`.
pub(crate) async fn pairing_list(c: &Call<'_>) -> Reply {
    check_channel(c)?;
    let mut pending = Vec::new();
    for account in accounts(c.gw) {
        pending.extend(
            clawgate_telegram::pending(&c.gw.store, &account, crate::now_ms())
                .await
                .map_err(|e| errors::unavailable(e.to_string()))?,
        );
    }
    let accounts: Vec<Value> = c
        .gw
        .telegram
        .iter()
        .map(|channel| json!({"channel": TELEGRAM, "channelLabel": "Telegram", "accountId": channel.account(), "notifySupported": true}))
        .collect();
    Ok(json!({
        "accounts": accounts,
        "requests": pending.iter().map(request_json).collect::<Vec<_>>(),
        "commandOwnerConfigured": false,
        "limits": {"pendingPerAccount": clawgate_telegram::MAX_PENDING, "ttlMs": clawgate_telegram::CODE_TTL.as_millis() as u64},
    }))
}

/// The request a call names: `requestId` (what the list shows) or `code`.
fn request_code<'a>(c: &Call<'a>) -> Result<&'a str, errors::ErrorShape> {
    c.params
        .get("requestId")
        .or_else(|| c.params.get("code"))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| errors::invalid_params(c.method, "must have required property 'requestId'"))
}

/// `channels.pairing.approve {channel, requestId, notify?}`: the sender may DM the bot.
pub(crate) async fn pairing_approve(c: &Call<'_>) -> Reply {
    check_channel(c)?;
    required(c, "channel")?;
    let code = request_code(c)?;
    let account = account_for(c, code).await?;
    let approved = clawgate_telegram::approve(&c.gw.store, &account, code, crate::now_ms())
        .await
        .map_err(|e| match e {
            clawgate_telegram::PairingError::Store(e) => errors::unavailable(e.to_string()),
            other => errors::invalid_params(c.method, &other.to_string()),
        })?;
    let notification = if c.params.get("notify") == Some(&Value::Bool(true)) {
        match c.gw.telegram.iter().find(|t| t.account() == account) {
            None => "unsupported",
            Some(channel) => match channel
                .send_text(
                    &approved.chat_id,
                    "You can talk to me now: your access was approved.",
                    None,
                )
                .await
            {
                Ok(_) => "sent",
                Err(e) => {
                    tracing::warn!("DM pairing approval notification failed: {e}");
                    "failed"
                }
            },
        }
    } else {
        "not-requested"
    };
    Ok(json!({
        "requestId": approved.code,
        "senderId": approved.sender_id,
        "notification": notification,
        "commandOwnerBootstrap": "not-requested",
    }))
}

/// `channels.pairing.dismiss {channel, requestId}`.
pub(crate) async fn pairing_dismiss(c: &Call<'_>) -> Reply {
    check_channel(c)?;
    let code = request_code(c)?;
    let account = account_for(c, code).await?;
    let pending = clawgate_telegram::pending(&c.gw.store, &account, crate::now_ms())
        .await
        .map_err(|e| errors::unavailable(e.to_string()))?;
    let sender = pending
        .iter()
        .find(|p| p.code.eq_ignore_ascii_case(code.trim()))
        .map(|p| p.sender_id.clone());
    let dismissed = clawgate_telegram::dismiss(&c.gw.store, &account, code)
        .await
        .map_err(|e| errors::unavailable(e.to_string()))?;
    match (dismissed, sender) {
        (true, Some(sender)) => Ok(json!({"requestId": code, "senderId": sender})),
        _ => Err(errors::invalid_params(
            c.method,
            "pending DM access request no longer exists",
        )),
    }
}

/// The Telegram channel's part of `channels.status`: whether it polls, when it last completed a
/// poll, its last error (a stalled poll loop is reported as such, not as healthy).
pub(crate) fn telegram_status(gw: &crate::Gateway) -> Option<Value> {
    let channel = gw.telegram.first()?;
    Some(account_status(channel))
}

/// Every Telegram account's status, in `channels.status`'s `channelAccounts.telegram`.
pub(crate) fn telegram_accounts(gw: &crate::Gateway) -> Vec<Value> {
    gw.telegram
        .iter()
        .map(|channel| {
            let mut v = account_status(channel);
            v["accountId"] = json!(channel.account());
            v
        })
        .collect()
}

fn account_status(channel: &clawgate_telegram::TelegramChannel) -> Value {
    let h = channel.health();
    let now = crate::now_ms();
    json!({
        "configured": true,
        "running": h.running,
        "stalled": h.stalled(now),
        "bot": h.bot.as_ref().map(|b| json!({"id": b.id, "username": b.username})),
        "lastPollAt": h.last_poll_at_ms,
        "lastInboundAt": h.last_inbound_at_ms,
        "lastError": h.last_error,
        "handled": h.handled,
        "spoolPending": h.spool_pending,
        "outboxUnconfirmed": h.outbox_unconfirmed,
        "outboxUncertain": h.outbox_uncertain,
    })
}
