//! Operator scopes, what each implies, and which scope each method needs.

pub const ADMIN: &str = "operator.admin";
pub const READ: &str = "operator.read";
pub const WRITE: &str = "operator.write";
pub const APPROVALS: &str = "operator.approvals";
pub const PAIRING: &str = "operator.pairing";
pub const QUESTIONS: &str = "operator.questions";
pub const TALK: &str = "operator.talk";
pub const TALK_SECRETS: &str = "operator.talk.secrets";
pub const SESSIONS_READ: &str = "operator.sessions.read";
pub const SESSIONS_WRITE: &str = "operator.sessions.write";

/// The closed set of operator scopes.
pub const ALL: [&str; 10] = [
    ADMIN,
    READ,
    WRITE,
    APPROVALS,
    PAIRING,
    QUESTIONS,
    TALK,
    TALK_SECRETS,
    SESSIONS_READ,
    SESSIONS_WRITE,
];

/// Whether a granted set of scopes satisfies `required`: admin implies everything; write implies
/// read, talk and the session scopes; read implies sessions.read.
pub fn satisfies(granted: &[String], required: &str) -> bool {
    granted.iter().any(|g| implies(g, required))
}

fn implies(granted: &str, required: &str) -> bool {
    if granted == required || granted == ADMIN {
        return true;
    }
    match granted {
        WRITE => matches!(required, READ | TALK | SESSIONS_READ | SESSIONS_WRITE),
        READ => required == SESSIONS_READ,
        _ => false,
    }
}

/// What a method needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodAccess {
    /// Operators holding this scope (or one implying it).
    Scope(&'static str),
    /// Only connections with `role:"node"`.
    NodeOnly,
}

/// Methods only a node may call; operators get "unauthorized role: operator".
pub const NODE_ONLY_METHODS: &[&str] = &[
    "node.invoke.result",
    "node.invoke.progress",
    "node.event",
    "node.pending.pull",
    "node.pending.ack",
    "node.pending.drain",
    "node.pluginTools.update",
    "node.skills.update",
    "node.runnerInventory.update",
    "node.pluginSurface.refresh",
    "skills.bins",
];

const READ_METHODS: &[&str] = &[
    "health",
    "status",
    "system-presence",
    "last-heartbeat",
    "channels.status",
    "config.get",
    "node.list",
    "node.describe",
    "logs.tail",
    "models.list",
    "gateway.identity.get",
    "chat.history",
    "sessions.list",
    "sessions.subscribe",
    "sessions.unsubscribe",
    "device.scopes.requestUpgrade",
    "device.scopes.waitUpgrade",
];

const WRITE_METHODS: &[&str] = &[
    "agent",
    "agent.wait",
    "send",
    "chat.send",
    "chat.abort",
    "wake",
    "node.invoke",
];

/// The least-privilege table of the real gateway (the scope a client asks for to call a
/// method): read, write and pairing methods are listed; anything unclassified needs admin.
/// What the gateway checks before answering is [`gate`], which lets a few of them through
/// without their scope. Clients pick their scopes from this table; the gateway's method table
/// holds which methods it implements and their access, and a test there checks it agrees
/// with this one.
pub fn method_access(method: &str) -> MethodAccess {
    if NODE_ONLY_METHODS.contains(&method) {
        MethodAccess::NodeOnly
    } else if READ_METHODS.contains(&method) {
        MethodAccess::Scope(READ)
    } else if WRITE_METHODS.contains(&method) {
        MethodAccess::Scope(WRITE)
    } else if method.starts_with("exec.approval.") {
        MethodAccess::Scope(APPROVALS)
    } else if method.starts_with("node.pair.")
        || method.starts_with("channels.pairing.")
        || method == "node.rename"
        || method.starts_with("device.pair.")
        || method.starts_with("device.token.")
    {
        MethodAccess::Scope(PAIRING)
    } else {
        MethodAccess::Scope(ADMIN)
    }
}

/// What the gateway checks before running a method: OpenClaw's `authorizeGatewayMethod`
/// answers `health` for every connected client whatever its role and scopes, and lets any
/// operator ask for a scope upgrade whatever its scopes; every other method is gated as
/// [`method_access`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Every connected client, nodes included, with or without scopes.
    Open,
    /// Operators, whatever their scopes.
    AnyOperator,
    Access(MethodAccess),
}

pub fn gate(method: &str) -> Gate {
    match method {
        "health" => Gate::Open,
        "device.scopes.requestUpgrade" | "device.scopes.waitUpgrade" => Gate::AnyOperator,
        _ => Gate::Access(method_access(method)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn implications() {
        assert!(satisfies(&s(&[ADMIN]), PAIRING));
        assert!(satisfies(&s(&[WRITE]), READ));
        assert!(satisfies(&s(&[WRITE]), SESSIONS_WRITE));
        assert!(!satisfies(&s(&[WRITE]), PAIRING));
        assert!(satisfies(&s(&[READ]), SESSIONS_READ));
        assert!(!satisfies(&s(&[READ]), WRITE));
        assert!(!satisfies(&[], READ));
    }

    #[test]
    fn table() {
        assert_eq!(method_access("health"), MethodAccess::Scope(READ));
        assert_eq!(method_access("node.invoke"), MethodAccess::Scope(WRITE));
        assert_eq!(
            method_access("device.pair.list"),
            MethodAccess::Scope(PAIRING)
        );
        assert_eq!(method_access("no.such.method"), MethodAccess::Scope(ADMIN));
        assert_eq!(method_access("node.invoke.result"), MethodAccess::NodeOnly);
        // A client still asks for read to call health or request a scope upgrade.
        assert_eq!(
            method_access("device.scopes.requestUpgrade"),
            MethodAccess::Scope(READ)
        );
    }

    #[test]
    fn the_gate_opens_health_to_everyone_and_upgrades_to_any_operator() {
        assert_eq!(gate("health"), Gate::Open);
        assert_eq!(gate("device.scopes.requestUpgrade"), Gate::AnyOperator);
        assert_eq!(gate("device.scopes.waitUpgrade"), Gate::AnyOperator);
        assert_eq!(gate("status"), Gate::Access(MethodAccess::Scope(READ)));
        assert_eq!(gate("node.event"), Gate::Access(MethodAccess::NodeOnly));
    }
}
