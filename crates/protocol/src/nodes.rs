//! Node command policy: which commands a node may be invoked with, which commands need an
//! operator's approval and with which scopes. Tables as OpenClaw 2026.9.6 has them.

use crate::scopes;
use std::collections::BTreeSet;

const SYSTEM_RUN: [&str; 3] = ["system.run.prepare", "system.run", "system.which"];
const EXEC_APPROVALS: [&str; 2] = ["system.execApprovals.get", "system.execApprovals.set"];
const FILE: [&str; 2] = ["fs.listDir", "terminal.upload"];
const BROWSER_PROXY: [&str; 2] = ["browser.proxy", "browser.proxy.upload.v1"];
const MCP_TOOLS_CALL: &str = "mcp.tools.call.v1";
const SYSTEM_NOTIFY: &str = "system.notify";
const AGENT_CLI_CLAUDE_RUN: &str = "agent.cli.claude.run.v1";
const DESKTOP_STREAM: &str = "desktop.stream";
const DEVICE_APPS: &str = "device.apps";

const CAMERA: [&str; 1] = ["camera.list"];
const SCREEN: [&str; 1] = ["screen.snapshot"];
const COMPUTER: [&str; 1] = ["computer.act"];
const LOCATION: [&str; 1] = ["location.get"];
const DEVICE: [&str; 2] = ["device.info", "device.status"];
const CONTACTS: [&str; 1] = ["contacts.search"];
const CALENDAR: [&str; 1] = ["calendar.events"];
const REMINDERS: [&str; 1] = ["reminders.list"];
const PHOTOS: [&str; 1] = ["photos.latest"];
const MOTION: [&str; 2] = ["motion.activity", "motion.pedometer"];

/// Privacy-heavy commands: never allowed by default, only through
/// `gateway.nodes.commands.allow`.
pub const DANGEROUS_COMMANDS: &[&str] = &[
    "camera.snap",
    "camera.clip",
    "camera.ptz.control",
    "screen.record",
    "contacts.add",
    "calendar.add",
    "reminders.add",
    "sms.send",
    "sms.search",
    "health.summary",
];

/// Commands whose approval needs `operator.admin` besides `operator.pairing`.
const ADMIN_APPROVAL_COMMANDS: &[&str] = &[
    "system.run",
    "system.run.prepare",
    "system.which",
    "browser.proxy",
    "browser.proxy.upload.v1",
    "fs.listDir",
    "system.execApprovals.get",
    "system.execApprovals.set",
];

fn system_commands() -> Vec<&'static str> {
    let mut v: Vec<&str> = SYSTEM_RUN.to_vec();
    v.extend(EXEC_APPROVALS);
    v.extend(FILE);
    v.push(SYSTEM_NOTIFY);
    v.extend(BROWSER_PROXY);
    v.push(MCP_TOOLS_CALL);
    v.push(AGENT_CLI_CLAUDE_RUN);
    v
}

/// The platform a node's `platform`/`deviceFamily` strings name.
pub fn platform_id(platform: &str, device_family: Option<&str>) -> &'static str {
    let hay = format!("{} {}", platform, device_family.unwrap_or("")).to_ascii_lowercase();
    if hay.contains("watch") {
        "watchos"
    } else if hay.contains("iphone") || hay.contains("ipad") || hay.contains("ios") {
        "ios"
    } else if hay.contains("android") {
        "android"
    } else if hay.contains("mac") || hay.contains("darwin") {
        "macos"
    } else if hay.contains("win") {
        "windows"
    } else if hay.contains("linux") {
        "linux"
    } else {
        "unknown"
    }
}

/// Commands a node of this platform may run without any approval or config.
pub fn platform_defaults(platform: &str) -> Vec<&'static str> {
    let desktop = |mut v: Vec<&'static str>| {
        v.extend(system_commands());
        v.extend(SCREEN);
        v.push(DESKTOP_STREAM);
        v.extend(COMPUTER);
        v
    };
    match platform {
        "ios" => [
            &CAMERA[..],
            &LOCATION,
            &DEVICE,
            &CONTACTS,
            &CALENDAR,
            &REMINDERS,
            &PHOTOS,
            &MOTION,
            &[SYSTEM_NOTIFY],
        ]
        .concat(),
        "watchos" => [&DEVICE[..], &[SYSTEM_NOTIFY]].concat(),
        "android" => [
            &CAMERA[..],
            &LOCATION,
            &["notifications.list", "notifications.actions", SYSTEM_NOTIFY],
            &DEVICE,
            &["device.permissions", "device.health", DEVICE_APPS],
            &CONTACTS,
            &CALENDAR,
            &["callLog.search"],
            &REMINDERS,
            &PHOTOS,
            &MOTION,
            &["mobile.ui.observe", "mobile.ui.act"],
        ]
        .concat(),
        "macos" => desktop(
            [
                &CAMERA[..],
                &["camera.ptz.status"],
                &LOCATION,
                &DEVICE,
                &[DEVICE_APPS],
                &CONTACTS,
                &CALENDAR,
                &REMINDERS,
                &PHOTOS,
                &MOTION,
            ]
            .concat(),
        ),
        "linux" => desktop(Vec::new()),
        "windows" => desktop([&CAMERA[..], &LOCATION, &DEVICE].concat()),
        _ => [&CAMERA[..], &LOCATION, &[SYSTEM_NOTIFY]].concat(),
    }
}

/// Invocable commands: platform defaults + the approved surface + `allow`, minus the
/// dangerous defaults (unless explicitly allowed), minus `deny` (deny always wins).
pub fn allowlist(
    platform: &str,
    approved: &[String],
    allow: &[String],
    deny: &[String],
) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = platform_defaults(platform)
        .into_iter()
        .map(str::to_owned)
        .chain(approved.iter().cloned())
        .filter(|c| !DANGEROUS_COMMANDS.contains(&c.as_str()))
        .collect();
    set.extend(
        allow
            .iter()
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty()),
    );
    for d in deny {
        set.remove(d.trim());
    }
    set
}

/// Why an invoke is refused before it reaches the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandRefusal {
    NotAllowlisted,
    NotDeclared,
    NothingDeclared,
}

/// The real gateway's order: allowlist first, then the node's own declaration.
pub fn check_command(
    command: &str,
    allowlist: &BTreeSet<String>,
    declared: &[String],
) -> Result<(), CommandRefusal> {
    if !allowlist.contains(command) {
        return Err(CommandRefusal::NotAllowlisted);
    }
    if declared.is_empty() {
        return Err(CommandRefusal::NothingDeclared);
    }
    if !declared.iter().any(|d| d == command) {
        return Err(CommandRefusal::NotDeclared);
    }
    Ok(())
}

/// The command surface that goes through capability approval: plugin-provided commands
/// (`dir.*`, `file.*`, `workspace.*`) are not part of it.
pub fn approval_surface(declared: &[String]) -> Vec<String> {
    let mut v: Vec<String> = declared
        .iter()
        .filter(|c| {
            !(c.starts_with("dir.") || c.starts_with("file.") || c.starts_with("workspace."))
        })
        .cloned()
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Commands the plugins a default 2026.9.6 gateway loads add to the node surface (ollama,
/// file-transfer, canvas), without the built-in ones those plugins also police (`browser.*`,
/// `camera.*`, `computer.act`, …).
const PLUGIN_COMMANDS: &[&str] = &[
    "canvas.hide",
    "canvas.navigate",
    "canvas.present",
    "dir.fetch",
    "dir.list",
    "file.create",
    "file.fetch",
    "file.stat",
    "file.write",
    "ollama.chat",
    "ollama.models",
    "workspace.memory",
    "workspace.skills",
];

/// Capabilities named after those plugins (ids of plugins with node commands or node invoke
/// policies, and the canvas surface).
const PLUGIN_CAPS: &[&str] = &[
    "browser",
    "canvas",
    "cua-computer",
    "file-transfer",
    "linux-node",
    "ollama",
];

/// A legacy node (protocol 3) keeps only the built-in part of what it declares: the real
/// gateway withholds plugin caps and commands from such a session, because plugin node
/// features came with protocol 4. Observed on 2026.9.6: a `maxProtocol:3` node declaring
/// `ollama.chat` and the caps `browser`, `ollama` is shown (and invocable) without them once
/// approved, while the same node at protocol 4 keeps them.
pub fn withhold_plugin_surface(caps: &mut Vec<String>, commands: &mut Vec<String>) {
    caps.retain(|c| !PLUGIN_CAPS.contains(&c.as_str()));
    commands.retain(|c| !PLUGIN_COMMANDS.contains(&c.as_str()));
}

/// Scopes an operator needs to approve `surface`: pairing alone for no commands, plus admin
/// for shell and file access, plus write otherwise.
pub fn required_approve_scopes(surface: &[String]) -> Vec<&'static str> {
    if surface.is_empty() {
        vec![scopes::PAIRING]
    } else if surface
        .iter()
        .any(|c| ADMIN_APPROVAL_COMMANDS.contains(&c.as_str()))
    {
        vec![scopes::PAIRING, scopes::ADMIN]
    } else {
        vec![scopes::PAIRING, scopes::WRITE]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_recorded_node_surface() {
        let declared = s(&[
            "browser.proxy",
            "browser.proxy.upload.v1",
            "desktop.stream",
            "dir.fetch",
            "dir.list",
            "file.create",
            "file.fetch",
            "file.stat",
            "file.write",
            "fs.listDir",
            "mcp.tools.call.v1",
            "ollama.chat",
            "ollama.models",
            "system.execApprovals.get",
            "system.execApprovals.set",
            "system.run",
            "system.run.prepare",
            "system.which",
            "terminal.upload",
            "workspace.memory",
            "workspace.skills",
        ]);
        let surface = approval_surface(&declared);
        assert_eq!(
            surface,
            s(&[
                "browser.proxy",
                "browser.proxy.upload.v1",
                "desktop.stream",
                "fs.listDir",
                "mcp.tools.call.v1",
                "ollama.chat",
                "ollama.models",
                "system.execApprovals.get",
                "system.execApprovals.set",
                "system.run",
                "system.run.prepare",
                "system.which",
                "terminal.upload",
            ])
        );
        assert_eq!(
            required_approve_scopes(&surface),
            vec!["operator.pairing", "operator.admin"]
        );
        assert_eq!(
            required_approve_scopes(&s(&["ollama.chat"])),
            vec!["operator.pairing", "operator.write"]
        );
        assert_eq!(required_approve_scopes(&[]), vec!["operator.pairing"]);
    }

    #[test]
    fn legacy_nodes_lose_the_plugin_surface_only() {
        let mut caps = s(&["browser", "file", "ollama", "system", "canvas", "mcp"]);
        let mut commands = s(&[
            "browser.proxy",
            "computer.act",
            "dir.list",
            "ollama.chat",
            "system.run",
            "canvas.present",
            "talk.ptt.start",
            "foo.bar",
        ]);
        withhold_plugin_surface(&mut caps, &mut commands);
        assert_eq!(caps, s(&["file", "system", "mcp"]));
        assert_eq!(
            commands,
            s(&[
                "browser.proxy",
                "computer.act",
                "system.run",
                "talk.ptt.start",
                "foo.bar"
            ])
        );
        // The real filter never touches built-in commands, whatever plugin polices them.
        for platform in [
            "ios", "watchos", "android", "macos", "linux", "windows", "unknown",
        ] {
            for c in platform_defaults(platform) {
                assert!(!PLUGIN_COMMANDS.contains(&c), "{c} is built in");
            }
        }
        for c in DANGEROUS_COMMANDS {
            assert!(!PLUGIN_COMMANDS.contains(c), "{c} is built in");
        }
    }

    #[test]
    fn policy() {
        let linux = platform_id("linux", Some("Linux"));
        assert_eq!(linux, "linux");
        let list = allowlist(linux, &[], &[], &[]);
        assert!(list.contains("system.run"));
        assert_eq!(
            check_command("camera.snap", &list, &s(&["system.run"])),
            Err(CommandRefusal::NotAllowlisted)
        );
        assert_eq!(
            check_command("system.run", &list, &s(&["system.which"])),
            Err(CommandRefusal::NotDeclared)
        );
        assert_eq!(
            check_command("system.run", &list, &s(&["system.run"])),
            Ok(())
        );
        let list = allowlist(linux, &[], &s(&["camera.snap"]), &s(&["system.run"]));
        assert!(
            list.contains("camera.snap"),
            "an explicit allow admits a dangerous command"
        );
        assert!(!list.contains("system.run"), "deny wins");
        let approved = allowlist(linux, &s(&["ollama.chat", "camera.snap"]), &[], &[]);
        assert!(approved.contains("ollama.chat"));
        assert!(
            !approved.contains("camera.snap"),
            "approval alone does not admit dangerous commands"
        );
    }
}
