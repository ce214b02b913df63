//! `clawgate devices …`: device pairing requests, paired devices and their tokens
//! (`device.pair.list|approve|reject|remove|rename`, `device.token.rotate|revoke`).

use super::conn::{ConnArgs, EXIT_CODES_HELP};
use super::rpc;
use super::session::Session;
use super::table::{Table, clean, list_text, s, short, strs};
use crate::output::{Failure, FailureKind, Report, ago, block_on, print_json, print_out};
use clap::{Args, Subcommand};
use clawgate_client::RpcError;
use clawgate_client::failure;
use clawgate_client::failure::is_unknown;
use clawgate_client::pairing::{
    approval_denied, approve_scopes, device_name, find_pending, held_token_scopes, paired_of,
    pending_of, request_kind, resolve_device, roles_of, token_scopes,
};
use clawgate_protocol::scopes;
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum DevicesCommand {
    /// List pending pairing requests and paired devices
    List(ListArgs),
    /// Approve a pending pairing request (shows what it grants)
    Approve(ApproveArgs),
    /// Reject a pending pairing request
    Reject(RequestArgs),
    /// Remove a paired device (it must pair again to connect)
    Remove(DeviceArgs),
    /// Set the name operators see for a paired device
    Rename(RenameArgs),
    /// Issue a new token for a paired device's role (the old one stops working)
    Rotate(RotateArgs),
    /// Revoke a paired device's token for a role
    Revoke(RevokeArgs),
}

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct ListArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct ApproveArgs {
    /// The request id (from `clawgate devices list` or the connecting client's message)
    #[arg(required_unless_present = "latest", conflicts_with = "latest")]
    pub request_id: Option<String>,
    /// Approve the newest pending request
    #[arg(long)]
    pub latest: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct RequestArgs {
    /// The request id (from `clawgate devices list`)
    pub request_id: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct DeviceArgs {
    /// Device id, a unique prefix of it, or the device's name
    pub device: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct RenameArgs {
    /// Device id, a unique prefix of it, or the device's current name
    pub device: String,
    /// The new name (1 to 64 characters)
    pub name: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct RotateArgs {
    /// Device id, a unique prefix of it, or the device's name
    pub device: String,
    /// The token's role
    #[arg(long, default_value = "operator")]
    pub role: String,
    /// Scopes for the new token (repeatable; default: what the device holds now)
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct RevokeArgs {
    /// Device id, a unique prefix of it, or the device's name
    pub device: String,
    /// The token's role
    #[arg(long, default_value = "operator")]
    pub role: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub fn run(cmd: DevicesCommand) -> ExitCode {
    block_on(async move {
        let (json_out, result) = match cmd {
            DevicesCommand::List(a) => (a.conn.json, list(a).await),
            DevicesCommand::Approve(a) => (a.conn.json, approve(a).await),
            DevicesCommand::Reject(a) => (a.conn.json, reject(a).await),
            DevicesCommand::Remove(a) => (a.conn.json, remove(a).await),
            DevicesCommand::Rename(a) => (a.conn.json, rename(a).await),
            DevicesCommand::Rotate(a) => (a.conn.json, rotate(a).await),
            DevicesCommand::Revoke(a) => (a.conn.json, revoke(a).await),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => f.report(json_out),
        }
    })
}

// ---- shared ---------------------------------------------------------------------------------

/// The gateway shows a paired device without operator.admin only its own entries.
fn filtered_note(session: &Session) -> Option<String> {
    (session.device_id.is_some() && !scopes::satisfies(&session.hello.scopes(), scopes::ADMIN))
        .then(|| {
            "note: this connection is a paired device without operator.admin, so the gateway lists only this device's own entries".to_owned()
        })
}

/// This CLI's own device: the one the connection signed with, else this machine's identity
/// if there is one.
fn this_device(session: &Session) -> Option<String> {
    session
        .device_id
        .clone()
        .or_else(|| session.target.local_device_id())
}

/// Connects asking operator.pairing, lists devices and pairing requests, and runs `work` on
/// the list and the connection.
async fn with_list<T>(
    conn: &ConnArgs,
    work: impl AsyncFnOnce(&Session, Value) -> Result<T, Failure>,
) -> Result<T, Failure> {
    rpc::connect(conn, &[scopes::PAIRING])
        .await?
        .run(async |session| {
            let list = session.request("device.pair.list", json!({})).await?;
            work(session, list).await
        })
        .await
}

/// `no paired device <id>` when the gateway does not know it.
fn unknown_device(id: &str) -> impl FnOnce(&RpcError) -> Option<Failure> {
    move |e| {
        is_unknown(e, "deviceId").then(|| {
            Failure::not_found(
                format!("no paired device {id}"),
                vec!["run `clawgate devices list`".into()],
            )
        })
    }
}

// ---- list -----------------------------------------------------------------------------------

async fn list(a: ListArgs) -> Result<(), Failure> {
    let (list, me, note) = with_list(&a.conn, async |session, list| {
        Ok((list, this_device(session), filtered_note(session)))
    })
    .await?;
    if a.conn.json {
        print_json(&list);
        return Ok(());
    }
    let mut out = render_list(&list, me.as_deref());
    if let Some(note) = note {
        out.push_str(&note);
        out.push('\n');
    }
    print_out(&out);
    Ok(())
}

fn render_list(list: &Value, me: Option<&str>) -> String {
    let pending = pending_of(list);
    let paired = paired_of(list);
    let mut out = String::new();
    if !pending.is_empty() {
        let mut t = Table::new(&[
            "Request", "Device", "Client", "Role", "Scopes", "Kind", "Age",
        ]);
        for r in &pending {
            let mut kind = request_kind(r, &paired).to_owned();
            if r["isRepair"] == true {
                kind.push_str(", repair");
            }
            let mut device = device_name(r);
            if device != short(s(r, "deviceId")) {
                device = format!("{device} ({})", short(s(r, "deviceId")));
            }
            if me == Some(s(r, "deviceId")) {
                device.push_str(" [this CLI]");
            }
            t.row(vec![
                s(r, "requestId").to_owned(),
                device,
                format!(
                    "{}/{} · {}",
                    s(r, "clientId"),
                    s(r, "clientMode"),
                    s(r, "platform")
                ),
                list_text(&roles_of(r)),
                list_text(&strs(&r["scopes"])),
                kind,
                ago(r["ts"].as_i64()),
            ]);
        }
        out.push_str(&format!("Pending requests ({})\n", pending.len()));
        out.push_str(&t.render());
        out.push_str("Approve with `clawgate devices approve <request>` (it shows what it grants); reject with `clawgate devices reject <request>`.\n");
    }
    if !paired.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        let mut t = Table::new(&[
            "Device",
            "Name",
            "Client",
            "Roles",
            "Scopes",
            "Tokens",
            "Last seen",
        ]);
        for d in &paired {
            let mut name = device_name(d);
            if me == Some(s(d, "deviceId")) {
                name.push_str(" [this CLI]");
            }
            let tokens: Vec<String> = d["tokens"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|t| {
                            if t.get("revokedAtMs").is_some_and(|v| !v.is_null()) {
                                format!("{} (revoked)", s(t, "role"))
                            } else {
                                s(t, "role").to_owned()
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let seen = if d["connected"] == true {
                "connected".to_owned()
            } else {
                ago(d["lastSeenAtMs"].as_i64())
            };
            t.row(vec![
                short(s(d, "deviceId")),
                name,
                format!(
                    "{}/{} · {}",
                    s(d, "clientId"),
                    s(d, "clientMode"),
                    s(d, "platform")
                ),
                list_text(&roles_of(d)),
                list_text(&strs(&d["scopes"])),
                list_text(&tokens),
                seen,
            ]);
        }
        out.push_str(&format!("Paired devices ({})\n", paired.len()));
        out.push_str(&t.render());
        out.push_str("Commands accept a device id, a unique prefix of it, or its name.\n");
    }
    if out.is_empty() {
        out.push_str("No pending pairing requests and no paired devices.\n");
    }
    out
}

// ---- approve --------------------------------------------------------------------------------

fn describe_request(r: &Value, paired: &[Value]) -> String {
    let mut out = format!("Approving request {}:\n", clean(s(r, "requestId")));
    let device_id = s(r, "deviceId");
    let name = s(r, "displayName");
    let device = if name.is_empty() {
        device_id.to_owned()
    } else {
        format!("{name} ({device_id})")
    };
    let family = s(r, "deviceFamily");
    let platform = if family.is_empty() {
        s(r, "platform").to_owned()
    } else {
        format!("{} ({family})", s(r, "platform"))
    };
    for (label, value) in [
        ("Device", device),
        (
            "Client",
            format!("{} (mode {})", s(r, "clientId"), s(r, "clientMode")),
        ),
        ("Platform", platform),
        ("Role", list_text(&roles_of(r))),
        ("Scopes", list_text(&strs(&r["scopes"]))),
        ("Kind", request_kind(r, paired).to_owned()),
    ] {
        out.push_str(&format!("  {label:<9} {}\n", clean(&value)));
    }
    if let Some(d) = paired.iter().find(|d| s(d, "deviceId") == device_id) {
        out.push_str(&format!(
            "  {:<9} {}\n",
            "Holds",
            clean(&format!(
                "roles {}; scopes {}",
                list_text(&roles_of(d)),
                list_text(&strs(&d["scopes"]))
            ))
        ));
    }
    out
}

/// The request `approve` names (or the newest), else why there is none.
fn pending_request(
    session: &Session,
    list: &Value,
    request_id: Option<&str>,
) -> Result<Value, Failure> {
    if let Some(request) = find_pending(list, request_id) {
        return Ok(request);
    }
    let ids: Vec<String> = pending_of(list)
        .iter()
        .map(|r| s(r, "requestId").to_owned())
        .collect();
    let mut fixes = vec![if ids.is_empty() {
        "there are no pending device requests; the device creates one when it connects".to_owned()
    } else {
        format!("pending requests: {}", ids.join(", "))
    }];
    fixes.push("run `clawgate devices list` to see them".into());
    fixes.extend(filtered_note(session));
    Err(Failure::not_found(
        match request_id {
            Some(id) => format!("no pending request {}", id.trim()),
            None => "no pending device pairing requests".to_owned(),
        },
        fixes,
    ))
}

/// What went wrong with `device.pair.approve`, in the words of what to do about it.
fn approve_failure(session: &Session, e: &RpcError, request_id: &str) -> Failure {
    if is_unknown(e, "requestId") {
        return Failure::not_found(
            format!("no pending request {request_id} (approved, rejected or expired meanwhile?)"),
            vec!["run `clawgate devices list`".into()],
        );
    }
    let granted = list_text(&session.hello.scopes());
    let fix = match e.wire() {
        Some(w) if approval_denied(e) => Some((
            w,
            format!(
                "this connection (scopes: {granted}) may not approve request {request_id}: approving another role than operator, or another device's request from a paired device, needs operator.admin"
            ),
        )),
        Some(w) if w.message.starts_with("missing scope: ") => Some((
            w,
            format!(
                "the approving connection must itself hold every scope it grants (granted here: {granted}); use a credential or device that holds them"
            ),
        )),
        _ => None,
    };
    match fix {
        Some((w, fix)) => Failure {
            kind: FailureKind::Scope,
            json: failure::request_error_json(w),
            message: format!("device.pair.approve: {}", w.message),
            fixes: vec![fix],
        },
        None => session.rpc_failure("device.pair.approve", e),
    }
}

async fn approve(a: ApproveArgs) -> Result<(), Failure> {
    let (session, (list, request)) = rpc::connect(&a.conn, &[scopes::PAIRING])
        .await?
        .try_run(async |session| {
            let list = session.request("device.pair.list", json!({})).await?;
            let request = pending_request(session, &list, a.request_id.as_deref())?;
            Ok((list, request))
        })
        .await?;
    let request_id = s(&request, "requestId").to_owned();
    if !a.conn.json {
        print_out(&describe_request(&request, &paired_of(&list)));
    }
    let mut session = session.widen(&a.conn, &approve_scopes(&request)).await?;
    let params = json!({"requestId": request_id});
    let mut result = session
        .try_request("device.pair.approve", params.clone())
        .await;
    // A paired device approving another device's request needs admin (the gateway says
    // "device pairing approval denied"): ask once more with admin, as the OpenClaw CLI does.
    if let Err(Ok(e)) = &result
        && approval_denied(e)
    {
        let admin = [scopes::ADMIN.to_owned()];
        if !scopes::satisfies(&session.hello.scopes(), scopes::ADMIN) {
            session = session.widen(&a.conn, &admin).await?;
            result = session.try_request("device.pair.approve", params).await;
        }
    }
    let v = session
        .run(async |session| match result {
            Ok(v) => Ok(v),
            Err(Err(f)) => Err(f),
            Err(Ok(e)) => Err(approve_failure(session, &e, &request_id)),
        })
        .await?;
    if a.conn.json {
        print_json(&v);
    } else {
        let d = &v["device"];
        print_out(&format!(
            "Approved device {} as {} with scopes {} (request {request_id}).",
            clean(s(d, "deviceId")),
            clean(&list_text(&roles_of(d))),
            clean(&list_text(&strs(&d["scopes"])))
        ));
    }
    Ok(())
}

// ---- reject ---------------------------------------------------------------------------------

async fn reject(a: RequestArgs) -> Result<(), Failure> {
    let id = a.request_id.trim().to_owned();
    let unknown = |e: &RpcError| {
        is_unknown(e, "requestId").then(|| {
            Failure::not_found(
                format!("no pending request {id}"),
                vec!["run `clawgate devices list`".into()],
            )
        })
    };
    let result = rpc::connect(&a.conn, &[scopes::PAIRING])
        .await?
        .run(async |session| {
            let params = json!({"requestId": id});
            session
                .request_or("device.pair.reject", params, unknown)
                .await
        })
        .await?;
    if a.conn.json {
        print_json(&result);
    } else {
        print_out(&format!(
            "Rejected request {id} (device {}).",
            clean(s(&result, "deviceId"))
        ));
    }
    Ok(())
}

// ---- remove / rename ------------------------------------------------------------------------

async fn remove(a: DeviceArgs) -> Result<(), Failure> {
    let (id, v, me) = with_list(&a.conn, async |session, list| {
        let id = resolve_device(&list, &a.device)?;
        let params = json!({"deviceId": id});
        let v = session
            .request_or("device.pair.remove", params, unknown_device(&id))
            .await?;
        let me = this_device(session).filter(|me| *me == id);
        // This CLI's own device: its stored tokens for this gateway are of no use any more.
        let dropped = me.map(|_| session.target.forget_device(&id));
        Ok((id, v, dropped))
    })
    .await?;
    if a.conn.json {
        print_json(&v);
    } else {
        print_out(&format!("Removed device {id}."));
        if let Some(dropped) = me {
            print_out(&format!(
                "That was this CLI's own device: it must be approved again to connect by device{}.",
                if dropped > 0 {
                    " (its stored tokens for this gateway were dropped)"
                } else {
                    ""
                }
            ));
        }
    }
    Ok(())
}

async fn rename(a: RenameArgs) -> Result<(), Failure> {
    let name = a.name.trim().to_owned();
    let len = name.chars().count();
    if len == 0 || len > 64 {
        return Err(Failure::usage(
            format!("the name must be 1 to 64 characters (got {len})"),
            vec![],
        ));
    }
    let result = with_list(&a.conn, async |session, list| {
        let id = resolve_device(&list, &a.device)?;
        let params = json!({"deviceId": id, "label": name});
        session
            .request_or("device.pair.rename", params, unknown_device(&id))
            .await
    })
    .await?;
    if a.conn.json {
        print_json(&result);
    } else {
        print_out(&format!(
            "Renamed device {} → {}.",
            clean(s(&result, "deviceId")),
            clean(s(&result, "label"))
        ));
    }
    Ok(())
}

// ---- rotate / revoke ------------------------------------------------------------------------

/// Lists, resolves the device and reconnects with the scopes managing its `role` token needs.
async fn token_session(
    conn: &ConnArgs,
    query: &str,
    role: &str,
    wanted: Option<&[String]>,
) -> Result<(Session, String), Failure> {
    let (session, (id, needed)) = rpc::connect(conn, &[scopes::PAIRING])
        .await?
        .try_run(async |session| {
            let list = session.request("device.pair.list", json!({})).await?;
            let id = resolve_device(&list, query)?;
            let held = held_token_scopes(&list, &id, role, wanted);
            Ok((id, token_scopes(role, &held)))
        })
        .await?;
    Ok((session.widen(conn, &needed).await?, id))
}

/// A refused token change, with what may be wrong.
fn token_denied(session: &Session, method: &str, e: &RpcError, id: &str, role: &str) -> Failure {
    let mut f = session.rpc_failure(method, e);
    if e.wire().is_some_and(|w| w.message.ends_with(" denied")) {
        f.fixes.push(format!(
            "is {} paired with role {role}? see `clawgate devices list`; managing a role other than operator needs operator.admin, and an operator token may only carry scopes the caller holds",
            short(id)
        ));
    }
    f
}

async fn rotate(a: RotateArgs) -> Result<(), Failure> {
    for sc in &a.scopes {
        if !sc.starts_with("operator.") && a.role == "operator" {
            return Err(Failure::usage(
                format!("{sc:?} is not an operator scope"),
                vec![format!("operator scopes: {}", scopes::ALL.join(", "))],
            ));
        }
    }
    let wanted = (!a.scopes.is_empty()).then_some(a.scopes.as_slice());
    let (session, id) = token_session(&a.conn, &a.device, &a.role, wanted).await?;
    let mut params = json!({"deviceId": id, "role": a.role});
    if !a.scopes.is_empty() {
        params["scopes"] = json!(a.scopes);
    }
    let method = "device.token.rotate";
    let (result, own) = session
        .run(async |session| {
            let denied = |e: &RpcError| Some(token_denied(session, method, e, &id, &a.role));
            let result = session.request_or(method, params, denied).await?;
            let own = this_device(session).as_deref() == Some(id.as_str());
            if own && let Some(token) = result.get("token").and_then(Value::as_str) {
                let scopes = strs(&result["scopes"]);
                if let Err(e) = session.target.store_rotated(&id, &a.role, token, scopes) {
                    eprintln!("warning: could not save the rotated token in {e}");
                }
            }
            Ok::<_, Failure>((result, own))
        })
        .await?;
    if a.conn.json {
        print_json(&result);
    } else {
        let delivery = match s(&result, "tokenDelivery") {
            "in-band" if own => "the new token was handed back and saved for this CLI".to_owned(),
            "in-band" => "the new token was handed back (use --json to see it)".to_owned(),
            _ => "the device gets its new token at its next connect with the shared token, or by pairing again".to_owned(),
        };
        print_out(&format!(
            "Rotated the {} token of device {}: scopes {}; {delivery}. The old token no longer works.",
            clean(s(&result, "role")),
            clean(s(&result, "deviceId")),
            clean(&list_text(&strs(&result["scopes"])))
        ));
    }
    Ok(())
}

async fn revoke(a: RevokeArgs) -> Result<(), Failure> {
    let (session, id) = token_session(&a.conn, &a.device, &a.role, None).await?;
    let method = "device.token.revoke";
    let result = session
        .run(async |session| {
            let denied = |e: &RpcError| Some(token_denied(session, method, e, &id, &a.role));
            let params = json!({"deviceId": id, "role": a.role});
            let result = session.request_or(method, params, denied).await?;
            if this_device(session).as_deref() == Some(id.as_str()) {
                session.target.forget_token(&id, &a.role);
            }
            Ok::<_, Failure>(result)
        })
        .await?;
    if a.conn.json {
        print_json(&result);
    } else {
        print_out(&format!(
            "Revoked the {} token of device {}.",
            clean(s(&result, "role")),
            clean(s(&result, "deviceId"))
        ));
    }
    Ok(())
}
