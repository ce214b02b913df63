//! `ssh -G`: what the user's OpenSSH configuration makes of a target (its `HostName`,
//! `User`, `Port` and identity files), read before a one-shot tunnel is opened so that
//! aliases from `~/.ssh/config` work and messages name the host really dialled.

use super::{SshTarget, find_ssh};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt as _;
use tokio::process::Command;

/// More output than this is not a `ssh -G` answer.
const OUTPUT_MAX: usize = 64 * 1024;

/// The settings `ssh -G` printed (lines `user …`, `hostname …`, `port …`,
/// `identityfile …`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshConfig {
    pub user: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// In the order ssh would offer them; `none` is left out.
    pub identity_files: Vec<String>,
}

impl SshConfig {
    /// Parses `ssh -G` output; unknown lines are ignored.
    pub fn parse(output: &str) -> SshConfig {
        let mut config = SshConfig::default();
        for line in output.lines() {
            let mut words = line.split_whitespace();
            let (Some(key), value) = (words.next(), words.collect::<Vec<_>>().join(" ")) else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            match key {
                "user" => config.user = Some(value),
                "hostname" => config.host = Some(value),
                "port" => config.port = value.parse().ok().filter(|p| *p > 0),
                "identityfile" if value != "none" => config.identity_files.push(value),
                _ => {}
            }
        }
        config
    }

    /// `user@host[:port]` from these settings, falling back to `target`'s parts (`:22` is
    /// left out, as OpenClaw does).
    pub fn target(&self, target: &SshTarget) -> SshTarget {
        SshTarget {
            user: self.user.clone().or_else(|| target.user.clone()),
            host: self.host.clone().unwrap_or_else(|| target.host.clone()),
            port: self.port.or(target.port).filter(|p| *p != 22),
        }
    }
}

/// Runs `ssh -G [-p port] [-i identity] -- [user@]host` with the system ssh, within
/// `timeout`. `None` when ssh is missing, fails, prints nothing or takes too long: the
/// caller then uses the target as given.
pub async fn ssh_config(
    target: &SshTarget,
    identity: Option<&Path>,
    timeout: Duration,
) -> Option<SshConfig> {
    let ssh = find_ssh().ok()?;
    let mut cmd = Command::new(ssh);
    cmd.arg("-G");
    if let Some(port) = target.port.filter(|p| *p != 22) {
        cmd.args(["-p", &port.to_string()]);
    }
    if let Some(identity) = identity {
        cmd.arg("-i").arg(identity);
    }
    cmd.arg("--")
        .arg(target.destination())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().ok()?;
    let mut stdout = child.stdout.take()?;
    let run = async {
        let mut out = Vec::new();
        (&mut stdout)
            .take(OUTPUT_MAX as u64 + 1)
            .read_to_end(&mut out)
            .await
            .ok()?;
        let status = child.wait().await.ok()?;
        (status.success() && out.len() <= OUTPUT_MAX).then_some(out)
    };
    let out = tokio::time::timeout(timeout, run).await.ok()??;
    let text = String::from_utf8_lossy(&out);
    (!text.trim().is_empty()).then(|| SshConfig::parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ssh_g_output() {
        let out = "user me\nhostname gw.internal\nport 2222\nidentityfile ~/.ssh/id_gw\n\
                   identityfile none\nidentityfile ~/.ssh/id_ed25519\nbatchmode no\n";
        let c = SshConfig::parse(out);
        assert_eq!(c.user.as_deref(), Some("me"));
        assert_eq!(c.host.as_deref(), Some("gw.internal"));
        assert_eq!(c.port, Some(2222));
        assert_eq!(c.identity_files, ["~/.ssh/id_gw", "~/.ssh/id_ed25519"]);
        let alias = SshTarget::parse("gw").unwrap();
        assert_eq!(c.target(&alias).to_string(), "me@gw.internal:2222");
        let c = SshConfig::parse("user root\nhostname 10.0.0.5\nport 22\n");
        assert_eq!(c.target(&alias).to_string(), "root@10.0.0.5");
        assert_eq!(SshConfig::parse("port x\n").port, None);
    }
}
