//! The method table: every method the gateway implements, who may call it and its handler.
//! `hello-ok.features.methods` (the advertised entries, in table order) and the role and scope
//! check before a handler runs both come from here, so a method cannot be advertised without
//! a handler or answered without its check.
//!
//! A new method is one entry in [`METHODS`]: append it (clients compare the advertised list
//! with the real gateway's, so keep the existing order), give it the access OpenClaw's
//! least-privilege table gives it ([`scopes::method_access`]; a test checks the two agree) and
//! a handler taking a [`Call`] — [`Handler::Sync`] for a plain function, [`Handler::Async`]
//! (built with `async_handler!`) when it awaits.

use super::{Refusal, agent, channels, chat, devices, info, nodes, sessions};
use crate::Gateway;
use crate::registry::{ConnHandle, Session};
use clawgate_protocol::errors::ErrorShape;
use clawgate_protocol::scopes::{self, Gate, MethodAccess};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// One request as a handler sees it, after the access check.
pub(crate) struct Call<'a> {
    pub gw: &'a Gateway,
    pub session: &'a Session,
    pub conn: &'a Arc<ConnHandle>,
    /// The request's id, for handlers that send their own response frames.
    pub request_id: &'a str,
    pub method: &'a str,
    /// `null` when the request had none; extra keys are tolerated like the real gateway does.
    pub params: &'a Value,
}

pub(crate) type Reply = Result<Value, ErrorShape>;
type ReplyFuture<'a> = Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

type AnsweredFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub(crate) enum Handler {
    Sync(fn(&Call<'_>) -> Reply),
    Async(for<'a> fn(&'a Call<'a>) -> ReplyFuture<'a>),
    /// Sends its response frames itself, through the connection's queue (`agent`: an
    /// `accepted` response, then the final one, both with the request's id).
    Answers(for<'a> fn(&'a Call<'a>) -> AnsweredFuture<'a>),
}

impl Handler {
    pub(crate) async fn run(&self, call: &Call<'_>) -> Result<Value, Refusal> {
        match self {
            Handler::Sync(f) => f(call).map_err(Refusal::Other),
            Handler::Async(f) => f(call).await.map_err(Refusal::Other),
            Handler::Answers(f) => {
                f(call).await;
                Err(Refusal::Answered)
            }
        }
    }
}

/// A [`Handler::Async`] from an `async fn(&Call<'_>) -> Reply`.
macro_rules! async_handler {
    ($f:path) => {
        Handler::Async(|call| Box::pin($f(call)))
    };
}

pub(crate) struct Method {
    pub name: &'static str,
    /// Who may call it, checked before the handler runs.
    pub access: Gate,
    /// Listed in `hello-ok.features.methods`; the real gateway answers a few node methods it
    /// does not list, and so does this one.
    pub advertised: bool,
    pub handler: Handler,
}

const OPEN: Gate = Gate::Open;
const NODE: Gate = Gate::Access(MethodAccess::NodeOnly);
const READ: Gate = Gate::Access(MethodAccess::Scope(scopes::READ));
const WRITE: Gate = Gate::Access(MethodAccess::Scope(scopes::WRITE));
const PAIRING: Gate = Gate::Access(MethodAccess::Scope(scopes::PAIRING));
const ADMIN: Gate = Gate::Access(MethodAccess::Scope(scopes::ADMIN));
const APPROVALS: Gate = Gate::Access(MethodAccess::Scope(scopes::APPROVALS));

const fn method(name: &'static str, access: Gate, handler: Handler) -> Method {
    Method {
        name,
        access,
        advertised: true,
        handler,
    }
}

/// Every implemented method, in the order `hello-ok` advertises them.
pub(crate) static METHODS: &[Method] = &[
    method(
        "health",
        OPEN,
        Handler::Sync(|c| Ok(info::health_payload(c.gw))),
    ),
    method("status", READ, Handler::Sync(|c| Ok(info::status(c.gw)))),
    method(
        "system-presence",
        READ,
        Handler::Sync(|c| Ok(Value::Array(info::presence_list(c.gw)))),
    ),
    method("last-heartbeat", READ, Handler::Sync(|_| Ok(Value::Null))),
    method(
        "config.get",
        READ,
        Handler::Sync(|c| Ok(info::config_get(c.gw))),
    ),
    method(
        "channels.status",
        READ,
        Handler::Sync(|c| Ok(info::channels_status(c.gw))),
    ),
    method("models.list", READ, Handler::Sync(info::models_list)),
    method(
        "gateway.identity.get",
        READ,
        Handler::Sync(|c| Ok(info::identity(c.gw))),
    ),
    method("device.pair.list", PAIRING, Handler::Sync(devices::list)),
    method(
        "device.pair.approve",
        PAIRING,
        async_handler!(devices::approve),
    ),
    method(
        "device.pair.reject",
        PAIRING,
        async_handler!(devices::reject),
    ),
    method(
        "device.pair.remove",
        PAIRING,
        async_handler!(devices::remove),
    ),
    method(
        "device.pair.rename",
        PAIRING,
        async_handler!(devices::rename),
    ),
    method(
        "device.token.rotate",
        PAIRING,
        async_handler!(devices::rotate),
    ),
    method(
        "device.token.revoke",
        PAIRING,
        async_handler!(devices::revoke),
    ),
    method("node.list", READ, Handler::Sync(nodes::list)),
    method("node.describe", READ, Handler::Sync(nodes::describe)),
    method("node.invoke", WRITE, async_handler!(nodes::invoke)),
    method(
        "node.invoke.result",
        NODE,
        Handler::Sync(nodes::invoke_result),
    ),
    method(
        "node.invoke.progress",
        NODE,
        Handler::Sync(nodes::invoke_progress),
    ),
    method("node.event", NODE, Handler::Sync(nodes::event)),
    method("node.pair.list", PAIRING, Handler::Sync(nodes::pair_list)),
    method(
        "node.pair.approve",
        PAIRING,
        async_handler!(nodes::pair_approve),
    ),
    method(
        "node.pair.reject",
        PAIRING,
        async_handler!(nodes::pair_reject),
    ),
    method(
        "node.pair.remove",
        PAIRING,
        async_handler!(nodes::pair_remove),
    ),
    method("node.rename", PAIRING, async_handler!(nodes::rename)),
    method("node.skills.update", NODE, Handler::Sync(nodes::update)),
    method(
        "node.pluginTools.update",
        NODE,
        Handler::Sync(nodes::update),
    ),
    method(
        "exec.approvals.node.get",
        ADMIN,
        async_handler!(nodes::exec_approvals_get),
    ),
    method(
        "exec.approvals.node.set",
        ADMIN,
        async_handler!(nodes::exec_approvals_set),
    ),
    Method {
        advertised: false,
        ..method(
            "node.runnerInventory.update",
            NODE,
            Handler::Sync(nodes::update),
        )
    },
    method("chat.send", WRITE, async_handler!(chat::send)),
    method("chat.history", READ, async_handler!(chat::history)),
    method("chat.abort", WRITE, async_handler!(chat::abort)),
    method("chat.inject", ADMIN, async_handler!(chat::inject)),
    method(
        "agent",
        WRITE,
        Handler::Answers(|call| Box::pin(agent::agent(call))),
    ),
    method("agent.wait", WRITE, async_handler!(agent::wait)),
    method("sessions.list", READ, Handler::Sync(sessions::list)),
    method("sessions.reset", ADMIN, async_handler!(sessions::reset)),
    method(
        "exec.approval.resolve",
        APPROVALS,
        Handler::Sync(agent::approval_resolve),
    ),
    method(
        "exec.approval.list",
        APPROVALS,
        Handler::Sync(agent::approval_list),
    ),
    method(
        "exec.approvals.get",
        ADMIN,
        async_handler!(agent::approvals_get),
    ),
    method(
        "exec.approvals.set",
        ADMIN,
        async_handler!(agent::approvals_set),
    ),
    method(
        "channels.pairing.list",
        PAIRING,
        async_handler!(channels::pairing_list),
    ),
    method(
        "channels.pairing.approve",
        PAIRING,
        async_handler!(channels::pairing_approve),
    ),
    method(
        "channels.pairing.dismiss",
        PAIRING,
        async_handler!(channels::pairing_dismiss),
    ),
    method(
        "sessions.subscribe",
        READ,
        Handler::Sync(sessions::subscribe),
    ),
    method(
        "sessions.unsubscribe",
        READ,
        Handler::Sync(sessions::unsubscribe),
    ),
];

pub(crate) fn find(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

/// `hello-ok.features.methods`.
pub(crate) fn advertised() -> Vec<&'static str> {
    METHODS
        .iter()
        .filter(|m| m.advertised)
        .map(|m| m.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_list_keeps_its_wire_order() {
        // What clawgate advertised before the table existed; clients diff it against the real
        // gateway's list, so entries are only ever appended.
        assert_eq!(
            advertised(),
            [
                "health",
                "status",
                "system-presence",
                "last-heartbeat",
                "config.get",
                "channels.status",
                "models.list",
                "gateway.identity.get",
                "device.pair.list",
                "device.pair.approve",
                "device.pair.reject",
                "device.pair.remove",
                "device.pair.rename",
                "device.token.rotate",
                "device.token.revoke",
                "node.list",
                "node.describe",
                "node.invoke",
                "node.invoke.result",
                "node.invoke.progress",
                "node.event",
                "node.pair.list",
                "node.pair.approve",
                "node.pair.reject",
                "node.pair.remove",
                "node.rename",
                "node.skills.update",
                "node.pluginTools.update",
                "exec.approvals.node.get",
                "exec.approvals.node.set",
                "chat.send",
                "chat.history",
                "chat.abort",
                "chat.inject",
                "agent",
                "agent.wait",
                "sessions.list",
                "sessions.reset",
                "exec.approval.resolve",
                "exec.approval.list",
                "exec.approvals.get",
                "exec.approvals.set",
                "channels.pairing.list",
                "channels.pairing.approve",
                "channels.pairing.dismiss",
                "sessions.subscribe",
                "sessions.unsubscribe",
            ]
        );
    }

    #[test]
    fn names_are_unique() {
        for (i, m) in METHODS.iter().enumerate() {
            assert!(
                METHODS[..i].iter().all(|earlier| earlier.name != m.name),
                "{} is listed twice",
                m.name
            );
        }
    }

    #[test]
    fn access_agrees_with_the_least_privilege_table_clients_use() {
        // Clients pick the scopes they connect with from `scopes::method_access`; a method
        // gated differently here would refuse the clients that follow it.
        for m in METHODS {
            assert_eq!(m.access, scopes::gate(m.name), "{}", m.name);
        }
    }
}
