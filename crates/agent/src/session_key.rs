//! Session keys as OpenClaw writes them: `agent:<agentId>:<rest>`, where the rest is the main
//! key (`main`) or names the peer a conversation is with, depending on `session.dmScope`.

/// `session.dmScope`: which direct messages share a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DmScope {
    /// Every direct message, from any channel and peer, in the main session.
    #[default]
    Main,
    /// One session per peer, whatever the channel.
    PerPeer,
    /// One session per channel and peer.
    PerChannelPeer,
    /// One session per account, channel and peer.
    PerAccountChannelPeer,
}

impl DmScope {
    /// The config value, or `None` for one OpenClaw does not know.
    pub fn parse(value: &str) -> Option<DmScope> {
        Some(match value {
            "main" => DmScope::Main,
            "per-peer" => DmScope::PerPeer,
            "per-channel-peer" => DmScope::PerChannelPeer,
            "per-account-channel-peer" => DmScope::PerAccountChannelPeer,
            _ => return None,
        })
    }
}

/// Builds session keys for one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    agent_id: String,
    main_key: String,
}

impl SessionKey {
    pub fn new(agent_id: &str, main_key: &str) -> SessionKey {
        SessionKey {
            agent_id: agent_id.to_owned(),
            main_key: main_key.to_owned(),
        }
    }

    /// `agent:main:main` for the default agent.
    pub fn main(&self) -> String {
        format!("agent:{}:{}", self.agent_id, self.main_key)
    }

    /// The session a direct message from `peer` on `channel` (account `account`) goes to.
    pub fn direct(&self, scope: DmScope, channel: &str, account: &str, peer: &str) -> String {
        let agent = &self.agent_id;
        match scope {
            DmScope::Main => self.main(),
            DmScope::PerPeer => format!("agent:{agent}:direct:{peer}"),
            DmScope::PerChannelPeer => format!("agent:{agent}:{channel}:direct:{peer}"),
            DmScope::PerAccountChannelPeer => {
                format!("agent:{agent}:{channel}:{account}:direct:{peer}")
            }
        }
    }

    /// A group chat's session, with its forum topic when it has one.
    pub fn group(&self, channel: &str, chat: &str, topic: Option<&str>) -> String {
        let base = format!("agent:{}:{channel}:group:{chat}", self.agent_id);
        match topic {
            Some(t) => format!("{base}:topic:{t}"),
            None => base,
        }
    }

    /// The agent id a key belongs to (`agent:<id>:…`), when it is an agent key.
    pub fn agent_of(key: &str) -> Option<&str> {
        let rest = key.strip_prefix("agent:")?;
        let (agent, tail) = rest.split_once(':')?;
        (!agent.is_empty() && !tail.is_empty()).then_some(agent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_openclaw() {
        let k = SessionKey::new("main", "main");
        assert_eq!(k.main(), "agent:main:main");
        assert_eq!(
            k.direct(DmScope::Main, "telegram", "default", "42"),
            "agent:main:main"
        );
        assert_eq!(
            k.direct(DmScope::PerPeer, "telegram", "default", "42"),
            "agent:main:direct:42"
        );
        assert_eq!(
            k.direct(DmScope::PerChannelPeer, "telegram", "default", "42"),
            "agent:main:telegram:direct:42"
        );
        assert_eq!(
            k.direct(DmScope::PerAccountChannelPeer, "telegram", "work", "42"),
            "agent:main:telegram:work:direct:42"
        );
        assert_eq!(
            k.group("telegram", "-100", Some("7")),
            "agent:main:telegram:group:-100:topic:7"
        );
        assert_eq!(SessionKey::agent_of("agent:main:main"), Some("main"));
        assert_eq!(SessionKey::agent_of("agent::main"), None);
        assert_eq!(SessionKey::agent_of("cron:job"), None);
        assert_eq!(DmScope::parse("per-peer"), Some(DmScope::PerPeer));
        assert_eq!(DmScope::parse("per-user"), None);
    }
}
