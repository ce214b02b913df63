//! `doctor`'s live check: connect to a gateway within a time budget, ask `health`, and tell
//! reachability, TLS, auth, pairing and scope problems apart, each verdict with its fix. The
//! check keeps to its budget whichever step goes unanswered, and says which.

use crate::{Client, ClientError, ConnectOptions, TlsOptions, client_info};
use serde::Serialize;
use std::time::{Duration, Instant};

/// The live check's verdict on one aspect (`reachability`, `tls`, `auth`, `pairing`,
/// `scopes`, `health`).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    /// `None`: not checked.
    pub ok: Option<bool>,
    pub detail: String,
    pub fix: Option<String>,
}

/// The gateway to check and the credentials to send.
#[derive(Debug, Clone)]
pub struct LiveTarget {
    pub url: String,
    /// The TLS certificate pin (`wss://`).
    pub pin: Option<String>,
    pub token: Option<String>,
    pub password: Option<String>,
}

/// Connects to `target` asking `operator.read` and asks `health`, all within `budget`.
pub async fn live_check(target: &LiveTarget, budget: Duration) -> Vec<Check> {
    let LiveTarget {
        url,
        pin,
        token,
        password,
    } = target;
    let mut checks = Vec::new();
    let deadline = tokio::time::Instant::now() + budget;
    let mut opts = ConnectOptions::new(url.clone(), client_info("cli", "cli"));
    opts.token = token.clone();
    opts.password = password.clone();
    opts.scopes = vec!["operator.read".into()];
    opts.timeout = budget;
    opts.tls = TlsOptions {
        fingerprint: pin.clone(),
    };
    let started = Instant::now();
    let result = Client::connect(opts).await;
    let ms = started.elapsed().as_millis();
    let is_tls = url.starts_with("wss://");
    match result {
        Ok((client, hello)) => {
            checks.push(Check {
                check: "reachability",
                ok: Some(true),
                detail: format!("connected in {ms} ms"),
                fix: None,
            });
            if is_tls {
                checks.push(Check {
                    check: "tls",
                    ok: Some(true),
                    detail: match &pin {
                        Some(p) => format!("certificate matches the pin sha256:{p}"),
                        None => "certificate verified".into(),
                    },
                    fix: None,
                });
            }
            checks.push(Check {
                check: "auth",
                ok: Some(true),
                detail: format!(
                    "accepted (method {}, role {})",
                    hello.auth_method().unwrap_or("?"),
                    hello.role().unwrap_or("?")
                ),
                fix: None,
            });
            let scopes = hello.scopes();
            let health = tokio::time::timeout_at(deadline, client.request("health", None)).await;
            let scope_check = match health {
                Err(_) => Check {
                    check: "health",
                    ok: Some(false),
                    detail: format!(
                        "connected, but the gateway did not answer `health` within {} ms",
                        budget.as_millis()
                    ),
                    fix: Some("the gateway takes connections but does not answer requests: see its log, then restart it (`clawgate gateway restart`, or stop and start `clawgate gateway run`); on a slow link allow more time with --timeout".into()),
                },
                Ok(Ok(_)) => Check {
                    check: "scopes",
                    ok: Some(true),
                    detail: format!("granted {scopes:?}; health answered"),
                    fix: None,
                },
                Ok(Err(e)) => match e.wire().and_then(|w| w.missing_scope()) {
                    Some(missing) => Check {
                        check: "scopes",
                        ok: Some(false),
                        detail: format!("connected without {missing} (granted {scopes:?})"),
                        fix: Some("device-less connections from other hosts get no scopes: run `clawgate gateway status` once so this device is paired (approve it on the gateway host with `clawgate devices approve <id>`)".into()),
                    },
                    None => Check {
                        check: "scopes",
                        ok: Some(false),
                        detail: format!("health failed: {e}"),
                        fix: Some("see the gateway's log".into()),
                    },
                },
            };
            let scopes_ok = scope_check.ok == Some(true);
            checks.push(scope_check);
            if scopes_ok
                && let Ok(Ok(status)) =
                    tokio::time::timeout_at(deadline, client.request("channels.status", None)).await
            {
                checks.extend(channel_checks(&status, crate::now_ms()));
            }
            client.close().await;
        }
        Err(e) => checks.extend(classify_failure(
            &e,
            url,
            is_tls,
            token.is_some() || password.is_some(),
        )),
    }
    checks
}

/// A `telegram` verdict per Telegram account of a `channels.status` answer: polling or not,
/// when the last poll completed, and what waits in the spool and the outbox.
pub fn channel_checks(status: &serde_json::Value, now_ms: i64) -> Vec<Check> {
    let accounts = status["channelAccounts"]["telegram"]
        .as_array()
        .cloned()
        .or_else(|| {
            let one = &status["channels"]["telegram"];
            (!one.is_null()).then(|| vec![one.clone()])
        })
        .unwrap_or_default();
    accounts
        .iter()
        .map(|a| {
            let name = match (a["bot"]["username"].as_str(), a["accountId"].as_str()) {
                (Some(bot), Some(id)) => format!("@{bot} ({id})"),
                (Some(bot), None) => format!("@{bot}"),
                (None, Some(id)) => format!("account {id}"),
                (None, None) => "the bot".to_owned(),
            };
            let count = |k: &str| a[k].as_u64().unwrap_or(0);
            let mut detail = match a["lastPollAt"].as_i64() {
                Some(at) if a["running"] == true => format!(
                    "{name} polling, last poll {} s ago",
                    ((now_ms - at) / 1000).max(0)
                ),
                _ if a["running"] == true => format!("{name} starting, no poll completed yet"),
                _ => format!("{name} not polling"),
            };
            detail.push_str(&format!(
                "; {} update(s) not handled yet, {} reply part(s) awaiting the next start, {} cut off by a restart",
                count("spoolPending"),
                count("outboxUnconfirmed"),
                count("outboxUncertain")
            ));
            let error = a["lastError"].as_str();
            let ok = a["running"] == true && a["stalled"] != true && error.is_none();
            Check {
                check: "telegram",
                ok: Some(ok),
                detail,
                fix: (!ok).then(|| match error {
                    Some(e) => e.to_owned(),
                    None if a["stalled"] == true => "no poll has completed for over two minutes: check that this machine reaches the Bot API (channels.telegram.apiRoot / proxy), then restart the gateway".to_owned(),
                    None => "the channel stopped: see the gateway's log, then restart it".to_owned(),
                }),
            }
        })
        .collect()
}

/// Tells reachability, TLS, auth and pairing failures apart.
fn classify_failure(e: &ClientError, url: &str, is_tls: bool, had_secret: bool) -> Vec<Check> {
    let reach_ok = |detail: &str| Check {
        check: "reachability",
        ok: Some(true),
        detail: detail.to_owned(),
        fix: None,
    };
    match e {
        ClientError::Unreachable {
            reason,
            timed_out: true,
            ..
        } => vec![Check {
            check: "reachability",
            ok: Some(false),
            detail: format!("no gateway answered at {url}: {reason}"),
            fix: Some("something takes connections on that port (or drops them) but does not answer as a gateway: check that gateway.port / --port is the gateway's and not another program's, see the gateway's log and restart it (`clawgate gateway restart`); on a slow link allow more time with --timeout".into()),
        }],
        ClientError::Unreachable { reason, .. } => {
            let tls_failure = is_tls
                && ["certificate", "tls", "handshake", "alert"]
                    .iter()
                    .any(|w| reason.to_ascii_lowercase().contains(w));
            if tls_failure {
                vec![
                    reach_ok("the port answers"),
                    Check {
                        check: "tls",
                        ok: Some(false),
                        detail: reason.clone(),
                        fix: Some("pin the gateway's certificate: `clawgate gateway tls show` on the gateway host prints the fingerprint for gateway.remote.tlsFingerprint / --tls-fingerprint".into()),
                    },
                ]
            } else {
                vec![Check {
                    check: "reachability",
                    ok: Some(false),
                    detail: format!("no gateway at {url}: {reason}"),
                    fix: Some("start it with `clawgate gateway run` (or check gateway.port / the tunnel)".into()),
                }]
            }
        }
        ClientError::TlsPinMismatch { pins, actual, .. } => vec![
            reach_ok("the port answers"),
            Check {
                check: "tls",
                ok: Some(false),
                detail: format!(
                    "certificate sha256:{actual} does not match the pin {}",
                    crate::pin_list(pins)
                ),
                fix: Some(format!("if the gateway's certificate was rotated, re-pin: set gateway.remote.tlsFingerprint to sha256:{actual} (check it on the gateway host with `clawgate gateway tls show`)")),
            },
        ],
        ClientError::Insecure { reason, .. } => vec![Check {
            check: "tls",
            ok: Some(false),
            detail: format!("plaintext ws:// refused: {reason}"),
            fix: Some("use wss:// (gateway.tls.enabled on the gateway) or an SSH tunnel (`clawgate tunnel up`)".into()),
        }],
        ClientError::Handshake {
            detail_code,
            message,
            error,
            ..
        } => {
            let code = detail_code.clone().unwrap_or_default();
            let mut v = vec![reach_ok("the gateway answered")];
            if is_tls {
                v.push(Check {
                    check: "tls",
                    ok: Some(true),
                    detail: "handshake completed".into(),
                    fix: None,
                });
            }
            if let Some(p) = error.pairing_required() {
                v.push(Check {
                    check: "auth",
                    ok: Some(true),
                    detail: "credentials accepted".into(),
                    fix: None,
                });
                v.push(Check {
                    check: "pairing",
                    ok: Some(false),
                    detail: format!("this device is not approved yet ({message})"),
                    fix: Some(format!(
                        "approve it on the gateway host: `clawgate devices approve {}`",
                        p.request_id.as_deref().unwrap_or("<request id>")
                    )),
                });
            } else if code == "DEVICE_IDENTITY_REQUIRED" && !had_secret {
                v.push(Check {
                    check: "auth",
                    ok: Some(false),
                    detail: "no token or password to send".into(),
                    fix: Some("set gateway.remote.token (remote) or gateway.auth.token, or CLAWGATE_GATEWAY_TOKEN".into()),
                });
            } else {
                v.push(Check {
                    check: "auth",
                    ok: Some(false),
                    detail: format!("{message} ({code})"),
                    fix: Some(match code.as_str() {
                        "AUTH_TOKEN_MISMATCH" | "AUTH_TOKEN_MISSING" => "use the gateway's token: gateway.remote.token must equal gateway.auth.token on the gateway host".into(),
                        "AUTH_PASSWORD_MISMATCH" | "AUTH_PASSWORD_MISSING" => "use the gateway's password (gateway.remote.password / CLAWGATE_GATEWAY_PASSWORD)".into(),
                        "AUTH_RATE_LIMITED" => "too many failed attempts: wait, then retry with the right secret".into(),
                        "PROTOCOL_MISMATCH" => "update clawgate or the gateway so both speak protocol 4".into(),
                        c if c.starts_with("AUTH_TAILSCALE") => "connect through Tailscale Serve from a device whose identity whois confirms, or use the token".into(),
                        "AUTH_IDENTITY_HEADER_REQUIRED" => "connect through the trusted proxy (gateway.auth.trustedProxy), or check its headers".into(),
                        _ => "see the message".into(),
                    }),
                });
            }
            v
        }
        ClientError::Closed(code, reason) => vec![
            reach_ok("the port answers"),
            Check {
                check: "auth",
                ok: Some(false),
                detail: format!("closed without an answer ({code} {reason})"),
                fix: Some("see the gateway's log".into()),
            },
        ],
        ClientError::InvalidUrl { reason, .. } | ClientError::Protocol(reason) => vec![Check {
            check: "reachability",
            ok: Some(false),
            detail: reason.clone(),
            fix: Some("check gateway.remote.url / gateway.port".into()),
        }],
    }
}

#[cfg(test)]
mod channel_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn telegram_accounts_become_verdicts_with_their_spool_and_outbox() {
        let status = json!({"channelAccounts": {"telegram": [
            {"accountId": "default", "running": true, "stalled": false, "bot": {"username": "my_bot"},
             "lastPollAt": 10_000, "lastError": null, "spoolPending": 1, "outboxUnconfirmed": 0, "outboxUncertain": 2},
            {"accountId": "work", "running": false, "lastError": "Telegram rejected the bot token (401 Unauthorized at getMe); check channels.telegram.botToken"},
        ]}});
        let checks = channel_checks(&status, 15_000);
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].ok, Some(true));
        assert_eq!(
            checks[0].detail,
            "@my_bot (default) polling, last poll 5 s ago; 1 update(s) not handled yet, 0 reply part(s) awaiting the next start, 2 cut off by a restart"
        );
        assert_eq!(checks[1].ok, Some(false));
        assert!(
            checks[1].detail.starts_with("account work not polling"),
            "{}",
            checks[1].detail
        );
        assert!(checks[1].fix.as_deref().unwrap().contains("401"));
        assert!(channel_checks(&json!({"channels": {}}), 0).is_empty());
    }
}
