//! `gateway.nodes.pairing.sshVerify` with a real OpenSSH server on a second host (a network
//! namespace pair): clawgate's node host there asks to pair, the gateway logs in to the
//! host's port 22 and reads the node's identity back, and the node is paired as
//! `ssh-verified` without an approval; when the host answers with another identity the
//! request waits for an operator.

mod remote_support;

use clawgate_testkit::{IsolatedHome, Sshd, SshdSpec, json};
use remote_support::{
    HostPair, PEER_IP, WAIT, gateway_devices, paired_nodes, peer_node_host, port_of, start,
};
use std::net::IpAddr;
use std::time::Instant;

const TOKEN: &str = "ssh-verify-test-token";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_clawgate")
}

/// What the host's sshd runs for every login (`ForceCommand`): it records the command the
/// gateway asked for, then answers with the node host's identity, or with `impostor`'s.
fn write_wrapper(dir: &std::path::Path, node_state: &std::path::Path, impostor: Option<&str>) {
    let answer = match impostor {
        Some(line) => format!("printf '%s\\n' '{line}'"),
        None => format!(
            "exec '{}' node identity --json --state-dir '{}'",
            bin(),
            node_state.display()
        ),
    };
    let script = format!(
        "#!/bin/sh\nprintf '%s' \"$SSH_ORIGINAL_COMMAND\" > '{}'\n{answer}\n",
        dir.join("original-command").display()
    );
    let path = dir.join("wrapper");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn a_node_whose_host_shows_its_identity_over_ssh_pairs_without_asking() {
    for verified in [true, false] {
        let pair = HostPair::create("sshv");
        let node_home = IsolatedHome::new();
        node_home.write_config(&json!({}));
        let node_state = node_home.state_dir().join("node");
        let scratch = tempfile::tempdir().unwrap();
        let impostor = clawgate_client::DeviceIdentity::generate();
        let impostor_line =
            json!({"deviceId": impostor.id(), "publicKey": impostor.public_key()}).to_string();
        write_wrapper(
            scratch.path(),
            &node_state,
            (!verified).then_some(impostor_line.as_str()),
        );
        let sshd = Sshd::start_with(SshdSpec {
            listen: Some(IpAddr::V4(PEER_IP)),
            port: Some(22),
            launcher: vec![
                remote_support::ip_bin().into(),
                "netns".into(),
                "exec".into(),
                pair.peer.clone().into(),
            ],
            extra_config: format!("ForceCommand {}", scratch.path().join("wrapper").display()),
        })
        .await
        .unwrap();

        // ssh reads known_hosts from the passwd home directory, not $HOME: the gateway runs
        // with a home of the test's mounted over it, in its own mount namespace (which
        // `ip netns exec` makes), holding the peer's host key.
        let ssh_home = scratch.path().join("ssh-home");
        std::fs::create_dir_all(ssh_home.join(".ssh")).unwrap();
        std::fs::write(
            ssh_home.join(".ssh/known_hosts"),
            sshd.known_hosts_line().unwrap(),
        )
        .unwrap();
        let home = IsolatedHome::new();
        let identity = sshd.client_key().display().to_string();
        home.write_config(
            &json!({"gateway": {"nodes": {"pairing": {"sshVerify": {"identity": identity}}}}}),
        );
        let script = "mount --bind \"$1\" \"$(getent passwd \"$(id -u)\" | cut -d: -f6)\" && shift && exec \"$@\"";
        let ssh_home_arg = ssh_home.display().to_string();
        let gw_args = [
            "-c",
            script,
            "sh",
            &ssh_home_arg,
            bin(),
            "gateway",
            "run",
            "--port",
            "0",
            "--bind",
            "lan",
            "--token",
            TOKEN,
        ];
        let mut cmd = pair.command(&pair.gw, "sh", gw_args, &home);
        cmd.env("CLAWGATE_LOG", "info");
        let (mut gw, line) = start(cmd, "listening on ").await;
        let port = port_of(&line);

        let node = peer_node_host(&pair, &node_home, port, TOKEN, verified).await;

        let verdict = if verified {
            "security audit: device pairing ssh-verified auto-approve device="
        } else {
            "node pairing ssh-verify did not approve device="
        };
        let logged = gw
            .wait_for_line(|l| l.contains(verdict), Instant::now() + WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}\n{}", gw.transcript(), sshd.transcript()));
        let recorded = std::fs::read_to_string(scratch.path().join("original-command")).unwrap();
        assert_eq!(
            recorded,
            clawgate_gateway::ssh_verify::REMOTE_IDENTITY_COMMAND
        );

        let list = gateway_devices(&pair, &home, port, TOKEN).await;
        let paired_nodes = paired_nodes(&list);
        if verified {
            assert!(
                logged.text.contains(&format!("ip={PEER_IP} sshUser=")),
                "{}",
                logged.text
            );
            assert_eq!(paired_nodes.len(), 1, "{list:#}");
            assert_eq!(paired_nodes[0]["approvedVia"], "ssh-verified", "{list:#}");
            assert!(list["pending"].as_array().unwrap().is_empty(), "{list:#}");
        } else {
            assert!(
                logged.text.contains("reason=identity-mismatch"),
                "{}",
                logged.text
            );
            assert!(paired_nodes.is_empty(), "{list:#}");
            assert_eq!(list["pending"][0]["role"], "node", "{list:#}");
        }
        drop((node, gw, sshd));
    }
}
