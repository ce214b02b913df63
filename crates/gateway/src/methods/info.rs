//! Read-only methods about the gateway itself: health, status, presence, config, identity.

use super::table::{Call, Reply};
use crate::{Gateway, SERVER_VERSION};
use serde_json::{Value, json};

pub(crate) fn health_payload(_gw: &Gateway) -> Value {
    json!({
        "ok": true,
        "ts": crate::now_ms(),
        "durationMs": 0,
        "plugins": {"loaded": [], "errors": [], "unavailable": []},
        "channels": {},
        "channelOrder": [],
        "channelLabels": {},
        "agents": [],
    })
}

pub(crate) fn presence_list(gw: &Gateway) -> Vec<Value> {
    gw.registry.presence_list()
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

pub(crate) fn status(gw: &Gateway) -> Value {
    json!({
        "runtimeVersion": SERVER_VERSION,
        "gateway": {
            "buildId": crate::BUILD_ID,
            "uptimeMs": gw.uptime_ms(),
            "connections": gw.registry.connection_count(),
            "authMode": gw.options.auth_mode.as_str(),
        },
        "heartbeat": {"defaultAgentId": "main", "agents": []},
        "channelSummary": [],
        "queuedSystemEvents": [],
        "sessions": {"paths": [], "count": 0, "defaults": {"model": null, "contextTokens": null}, "recent": [], "byAgent": []},
        "processMemory": {"rssBytes": rss_bytes()},
    })
}

pub(crate) fn channels_status(gw: &Gateway) -> Value {
    let mut status = json!({
        "ts": crate::now_ms(),
        "channelOrder": [],
        "channelLabels": {},
        "channelDetailLabels": {},
        "channelSystemImages": {},
        "channelMeta": [],
        "channels": {},
        "channelAccounts": {},
        "channelDefaultAccountId": {},
        "statusIssues": [],
    });
    if let Some(telegram) = super::channels::telegram_status(gw) {
        status["channelOrder"] = json!(["telegram"]);
        status["channelLabels"] = json!({"telegram": "Telegram"});
        status["channelDefaultAccountId"] = json!({"telegram": clawgate_telegram::DEFAULT_ACCOUNT});
        if telegram["stalled"] == true || !telegram["lastError"].is_null() {
            status["statusIssues"] = json!([{
                "channel": "telegram",
                "message": telegram["lastError"].as_str().unwrap_or("Telegram polling has not completed for over 2 minutes"),
            }]);
        }
        status["channels"] = json!({"telegram": telegram});
        status["channelAccounts"] = json!({"telegram": super::channels::telegram_accounts(gw)});
    }
    status
}

pub(crate) fn config_get(gw: &Gateway) -> Value {
    let o = &gw.options;
    let redacted = clawgate_config::redacted(&o.config);
    json!({
        "path": o.config_path.as_ref().map(|p| p.display().to_string()),
        "exists": o.config_path.as_ref().is_some_and(|p| p.exists()),
        "valid": true,
        "config": redacted,
        "hash": config_revision(&gw.identity.config_revision_key, &o.config),
    })
}

/// OpenClaw's config revision token: `hmac-sha256:v1:` and the base64url HMAC-SHA256, under a
/// key of the gateway's own, of `["openclaw.gateway.config-revision.raw.v1", <config hash>]`.
/// The plain hash of a config that holds secrets would let anyone with read scope test
/// guesses of them offline; the key comes from the gateway identity, so the token stays the
/// same across restarts (clawgate has no `config.set`/`config.patch` that would compare a
/// client's base hash with it).
fn config_revision(key: &[u8; 32], config: &Value) -> String {
    use hmac::{Hmac, Mac};
    const DOMAIN: &str = "openclaw.gateway.config-revision.raw.v1";
    let message = json!([DOMAIN, clawgate_config::config_hash(config)]).to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length works");
    mac.update(message.as_bytes());
    let token = clawgate_protocol::device::b64url(&mac.finalize().into_bytes());
    format!("hmac-sha256:v1:{token}")
}

pub(crate) fn identity(gw: &Gateway) -> Value {
    json!({"deviceId": gw.identity.device_id, "publicKey": gw.identity.public_key})
}

/// `models.list`: the configured models (and the built-in providers' defaults), from the
/// agent's model layer.
pub(crate) fn models_list(c: &Call<'_>) -> Reply {
    let params = serde_json::from_value(c.params.clone()).unwrap_or_default();
    Ok(c.gw.agent.llm().models_list(&params))
}
