//! `sessions.*`: the agent's sessions.

use super::chat::{agent_error, required};
use super::table::{Call, Reply};
use serde_json::{Value, json};

/// `sessions.list`.
pub(crate) fn list(c: &Call<'_>) -> Reply {
    let rows: Vec<Value> = c.gw.agent.sessions().iter().map(|r| r.to_json()).collect();
    Ok(json!({
        "ts": crate::now_ms(),
        "count": rows.len(),
        "totalCount": rows.len(),
        "hasMore": false,
        "sessions": rows,
    }))
}

/// `sessions.reset {key}`: the key starts a new, empty session; the old transcript is kept.
pub(crate) async fn reset(c: &Call<'_>) -> Reply {
    let key = required(c, "key")?;
    let row =
        c.gw.agent
            .reset(key)
            .await
            .map_err(|e| agent_error(c.method, e))?;
    Ok(json!({"ok": true, "key": key, "entry": row.to_json()}))
}

/// `sessions.subscribe`: this connection gets `sessions.changed` from now on.
pub(crate) fn subscribe(c: &Call<'_>) -> Reply {
    c.conn
        .sessions_subscribed
        .store(true, std::sync::atomic::Ordering::Release);
    Ok(json!({"subscribed": true}))
}

/// `sessions.unsubscribe`.
pub(crate) fn unsubscribe(c: &Call<'_>) -> Reply {
    c.conn
        .sessions_subscribed
        .store(false, std::sync::atomic::Ordering::Release);
    Ok(json!({"subscribed": false}))
}
