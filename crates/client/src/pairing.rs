//! What an operator needs to decide about pairing, from the gateway's `device.pair.list` and
//! `node.pair.list` answers: what kind of request a device's is (new pairing, role or scope
//! upgrade, re-approval), the scopes approving it or managing a token needs, which request
//! or paired device or node a name means.

use crate::RpcError;
use crate::failure::Failure;
use crate::fields::{field, strings};
use clawgate_protocol::{nodes, scopes};
use serde_json::Value;

/// The first 12 characters of a long id, with `…`.
pub fn short_id(id: &str) -> String {
    match id.get(..12) {
        Some(p) if id.len() > 12 => format!("{p}…"),
        _ => id.to_owned(),
    }
}

/// A device's name as listings show it: its operator label, display name or client id,
/// else its short id.
pub fn device_name(d: &Value) -> String {
    for key in ["operatorLabel", "displayName", "clientId"] {
        let v = field(d, key);
        if !v.is_empty() {
            return v.to_owned();
        }
    }
    short_id(field(d, "deviceId"))
}

pub fn roles_of(d: &Value) -> Vec<String> {
    let mut roles = strings(&d["roles"]);
    let role = field(d, "role");
    if !role.is_empty() && !roles.iter().any(|r| r == role) {
        roles.push(role.to_owned());
    }
    roles
}

/// new pairing / role upgrade / scope upgrade / re-approval, like the OpenClaw CLI.
pub fn request_kind(req: &Value, paired: &[Value]) -> &'static str {
    let Some(d) = paired.iter().find(|d| {
        field(d, "deviceId") == field(req, "deviceId") && !field(req, "deviceId").is_empty()
    }) else {
        return "new pairing";
    };
    let approved_roles = roles_of(d);
    if !roles_of(req).iter().all(|r| approved_roles.contains(r)) {
        return "role upgrade";
    }
    let approved = strings(&d["scopes"]);
    if !strings(&req["scopes"])
        .iter()
        .all(|sc| approved.contains(sc))
    {
        return "scope upgrade";
    }
    "re-approval"
}

pub fn pending_of(list: &Value) -> Vec<Value> {
    list["pending"].as_array().cloned().unwrap_or_default()
}

pub fn paired_of(list: &Value) -> Vec<Value> {
    list["paired"].as_array().cloned().unwrap_or_default()
}

/// The scopes an approving connection needs: those of managing an operator token with the
/// requested scopes ([`token_scopes`]), or operator.admin for another role (the gateway only
/// lets a caller grant what it holds itself).
pub fn approve_scopes(req: &Value) -> Vec<String> {
    match roles_of(req).iter().any(|r| r != "operator") {
        true => vec![scopes::ADMIN.to_owned()],
        false => token_scopes("operator", &strings(&req["scopes"])),
    }
}

/// Finds a paired device by id, unique id prefix or name.
pub fn resolve_device(list: &Value, query: &str) -> Result<String, Failure> {
    let q = query.trim();
    let paired = paired_of(list);
    if paired.iter().any(|d| field(d, "deviceId") == q) {
        return Ok(q.to_owned());
    }
    let lower = q.to_ascii_lowercase();
    let by_prefix: Vec<&Value> = paired
        .iter()
        .filter(|d| q.len() >= 4 && field(d, "deviceId").starts_with(&lower))
        .collect();
    let by_name: Vec<&Value> = paired
        .iter()
        .filter(|d| {
            ["operatorLabel", "displayName"]
                .iter()
                .any(|k| !field(d, k).is_empty() && field(d, k).eq_ignore_ascii_case(q))
        })
        .collect();
    let matches = if by_prefix.is_empty() {
        by_name
    } else {
        by_prefix
    };
    match matches.as_slice() {
        [one] => Ok(field(one, "deviceId").to_owned()),
        [] if q.len() == 64 && q.chars().all(|c| c.is_ascii_hexdigit()) => Ok(lower),
        [] => Err(Failure::not_found(
            format!("no paired device matches {q:?}"),
            vec!["run `clawgate devices list` to see paired devices and their ids".into()],
        )),
        many => Err(Failure::usage(
            format!("{q:?} matches {} paired devices", many.len()),
            vec![format!(
                "use more of the device id: {}",
                many.iter()
                    .map(|d| format!("{} ({})", field(d, "deviceId"), device_name(d)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )],
        )),
    }
}

/// Whether the gateway refused a paired device approving another device's request.
pub fn approval_denied(e: &RpcError) -> bool {
    e.wire()
        .is_some_and(|w| w.message == "device pairing approval denied")
}

/// Scopes for managing a device's token: operator.admin for a non-operator role; otherwise
/// operator.pairing plus the token's scopes (the caller must hold what it hands out).
pub fn token_scopes(role: &str, token_scopes: &[String]) -> Vec<String> {
    if role != "operator" {
        return vec![scopes::ADMIN.to_owned()];
    }
    let mut out = vec![scopes::PAIRING.to_owned()];
    for sc in token_scopes {
        if sc == scopes::ADMIN || !scopes::ALL.contains(&sc.as_str()) {
            return vec![scopes::ADMIN.to_owned()];
        }
        if !out.contains(sc) {
            out.push(sc.clone());
        }
    }
    out
}

pub fn node_name(n: &Value) -> String {
    let name = field(n, "displayName");
    if name.is_empty() {
        short_id(field(n, "nodeId"))
    } else {
        name.to_owned()
    }
}

pub fn nodes_of(v: &Value, key: &str) -> Vec<Value> {
    v[key].as_array().cloned().unwrap_or_default()
}

/// Finds a node among `candidates` by id, unique id prefix or display name; an unknown
/// query is passed on as is (the gateway then says whether it knows it).
pub fn resolve_node(candidates: &[Value], query: &str) -> Result<String, Failure> {
    let q = query.trim();
    if q.is_empty() {
        return Err(Failure::usage("the node must not be empty".into(), vec![]));
    }
    if candidates.iter().any(|n| field(n, "nodeId") == q) {
        return Ok(q.to_owned());
    }
    let by_prefix: Vec<&Value> = candidates
        .iter()
        .filter(|n| q.len() >= 4 && field(n, "nodeId").starts_with(q))
        .collect();
    let by_name: Vec<&Value> = candidates
        .iter()
        .filter(|n| {
            !field(n, "displayName").is_empty() && field(n, "displayName").eq_ignore_ascii_case(q)
        })
        .collect();
    let matches = if by_prefix.is_empty() {
        by_name
    } else {
        by_prefix
    };
    let mut ids: Vec<&str> = matches.iter().map(|n| field(n, "nodeId")).collect();
    ids.dedup();
    match ids.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Ok(q.to_owned()),
        many => Err(Failure::usage(
            format!("{q:?} matches {} nodes", many.len()),
            vec![format!("use more of the node id: {}", many.join(", "))],
        )),
    }
}

/// Scopes `node.pair.approve` needs: the request's `requiredApproveScopes` (pairing plus
/// write or admin), else derived from its commands with the gateway's own table.
pub fn node_approve_scopes(req: &Value) -> Vec<String> {
    let allowed = [scopes::PAIRING, scopes::WRITE, scopes::ADMIN];
    let mut out = vec![scopes::PAIRING.to_owned()];
    for sc in strings(&req["requiredApproveScopes"]) {
        if allowed.contains(&sc.as_str()) && !out.contains(&sc) {
            out.push(sc);
        }
    }
    if out.len() > 1 {
        return out;
    }
    nodes::required_approve_scopes(&strings(&req["commands"]))
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// The pending request `request_id` names, or the newest one without an id.
pub fn find_pending(list: &Value, request_id: Option<&str>) -> Option<Value> {
    let pending = pending_of(list);
    match request_id {
        Some(id) => pending
            .into_iter()
            .find(|r| field(r, "requestId") == id.trim()),
        None => pending
            .into_iter()
            .max_by_key(|r| r["ts"].as_i64().unwrap_or(0)),
    }
}

/// The scopes a new `role` token of the paired device `id` carries: `wanted` if given, else
/// those of its current token for the role, else the device's.
pub fn held_token_scopes(
    list: &Value,
    id: &str,
    role: &str,
    wanted: Option<&[String]>,
) -> Vec<String> {
    let device = paired_of(list)
        .into_iter()
        .find(|d| field(d, "deviceId") == id);
    match (wanted, &device) {
        (Some(w), _) => w.to_vec(),
        (None, Some(d)) => d["tokens"]
            .as_array()
            .and_then(|a| a.iter().find(|t| field(t, "role") == role))
            .map(|t| strings(&t["scopes"]))
            .unwrap_or_else(|| strings(&d["scopes"])),
        (None, None) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn approve_scopes_follow_the_request() {
        let r = json!({"role": "operator", "roles": ["operator"], "scopes": ["operator.read", "operator.write"]});
        assert_eq!(
            approve_scopes(&r),
            ["operator.pairing", "operator.read", "operator.write"]
        );
        let node = json!({"role": "node", "roles": ["node"], "scopes": []});
        assert_eq!(approve_scopes(&node), ["operator.admin"]);
        let admin = json!({"role": "operator", "scopes": ["operator.admin"]});
        assert_eq!(approve_scopes(&admin), ["operator.admin"]);
    }

    #[test]
    fn kinds_of_requests() {
        let paired =
            vec![json!({"deviceId": "d1", "roles": ["operator"], "scopes": ["operator.read"]})];
        let new = json!({"deviceId": "d2", "role": "operator", "scopes": []});
        assert_eq!(request_kind(&new, &paired), "new pairing");
        let up = json!({"deviceId": "d1", "role": "operator", "scopes": ["operator.write"]});
        assert_eq!(request_kind(&up, &paired), "scope upgrade");
        let role = json!({"deviceId": "d1", "role": "node", "scopes": []});
        assert_eq!(request_kind(&role, &paired), "role upgrade");
        let same = json!({"deviceId": "d1", "role": "operator", "scopes": ["operator.read"]});
        assert_eq!(request_kind(&same, &paired), "re-approval");
    }

    #[test]
    fn devices_resolve_by_id_prefix_or_name() {
        let list = json!({"paired": [
            {"deviceId": "abcdef0123", "displayName": "laptop"},
            {"deviceId": "abcd999999", "operatorLabel": "Build Box"},
        ]});
        assert_eq!(resolve_device(&list, "abcdef0123").unwrap(), "abcdef0123");
        assert_eq!(resolve_device(&list, "abcde").unwrap(), "abcdef0123");
        assert_eq!(resolve_device(&list, "build box").unwrap(), "abcd999999");
        assert_eq!(
            resolve_device(&list, "abcd").unwrap_err().kind,
            crate::failure::FailureKind::Usage
        );
        assert_eq!(
            resolve_device(&list, "zzzz").unwrap_err().kind,
            crate::failure::FailureKind::Rpc
        );
    }

    #[test]
    fn approve_scopes_come_from_the_request() {
        let r = json!({"requiredApproveScopes": ["operator.pairing", "operator.admin"], "commands": []});
        assert_eq!(
            node_approve_scopes(&r),
            ["operator.pairing", "operator.admin"]
        );
        let r = json!({"commands": ["canvas.navigate"]});
        assert_eq!(
            node_approve_scopes(&r),
            ["operator.pairing", "operator.write"]
        );
        let r = json!({"commands": ["system.run"]});
        assert_eq!(
            node_approve_scopes(&r),
            ["operator.pairing", "operator.admin"]
        );
        assert_eq!(node_approve_scopes(&json!({})), ["operator.pairing"]);
        let odd = json!({"requiredApproveScopes": ["operator.talk"], "commands": []});
        assert_eq!(node_approve_scopes(&odd), ["operator.pairing"]);
    }

    #[test]
    fn nodes_resolve_by_id_prefix_or_name() {
        let nodes = vec![
            json!({"nodeId": "7de88f0468a6", "displayName": "exp-node"}),
            json!({"nodeId": "7de8aaaa", "displayName": "other"}),
        ];
        assert_eq!(resolve_node(&nodes, "7de88").unwrap(), "7de88f0468a6");
        assert_eq!(resolve_node(&nodes, "EXP-NODE").unwrap(), "7de88f0468a6");
        assert_eq!(resolve_node(&nodes, "unknown").unwrap(), "unknown");
        assert!(resolve_node(&nodes, "7de8").is_err());
    }
}
