//! `kill -9` at random points while the gateway writes what users rely on: device pairing
//! approvals, device token rotations and node command approvals run concurrently, the gateway
//! is killed at a random moment, restarted on the same state, and checked:
//!
//! - nothing answered is lost: every approval whose answer arrived holds after the restart, and
//!   a rotation whose answer arrived is the token in force;
//! - nothing half-written is visible: every paired device has its token, no approved request is
//!   still pending, and a device's token in force is the one the gateway hands it and the only
//!   one that authenticates it.
//!
//! The kill points come from a seed printed at the start (`CLAWGATE_KILL9_SEED` replays one).

use clawgate_client::{
    Client, ClientError, ConnectOptions, DeviceIdentity, HelloOk, RpcError, client_info,
};
use clawgate_testkit::{ChildProcess, ClawgateBin, IsolatedHome, json};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "kill9-matrix-token";
const ROUNDS: usize = 12;
/// A round's workload runs this long at least before the kill…
const MIN_KILL_DELAY_MS: u64 = 50;
/// …and this long at most.
const MAX_KILL_DELAY_MS: u64 = 600;
/// Concurrent loops of each kind, so that kills land inside writes of every kind (a node
/// approval takes five steps, a rotation two).
const PAIRING_LOOPS: usize = 2;
const ROTATION_LOOPS: usize = 1;
const NODE_LOOPS: usize = 3;
const NODE_COMMAND: &str = "system.which";
const ADMIN_SCOPES: &[&str] = &[
    "operator.admin",
    "operator.pairing",
    "operator.read",
    "operator.write",
];
const DEVICE_SCOPES: &[&str] = &["operator.read", "operator.pairing"];

/// A small deterministic generator, so a failing seed can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// What the test knows the gateway promised, from answers that reached it.
#[derive(Default)]
struct Ledger {
    devices: Vec<Arc<DeviceIdentity>>,
    /// Devices whose pairing approval was answered.
    approved: Vec<usize>,
    /// The device token each approved device last received (hello or an answered rotation).
    tokens: HashMap<usize, String>,
    /// Devices with a rotation sent but not answered: the token in force may be either.
    uncertain_rotation: Vec<usize>,
    /// Node devices whose command surface approval was answered.
    approved_nodes: Vec<Arc<DeviceIdentity>>,
    /// Rotations answered, over the whole run.
    rotations: usize,
}

type Shared = Arc<Mutex<Ledger>>;

async fn start(home: &IsolatedHome, port: &str) -> (ChildProcess, String) {
    let bin = ClawgateBin::new(env!("CARGO_BIN_EXE_clawgate"));
    let mut cmd = bin.command(home);
    cmd.args(["gateway", "run", "--port", port, "--token", TOKEN]);
    let mut p = ChildProcess::spawn(cmd, "clawgate gateway").unwrap();
    let line = p
        .wait_for_line(
            |l| l.contains("listening on ws://"),
            Instant::now() + Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|e| panic!("the gateway did not start again on its state: {e:#}"));
    (
        p,
        clawgate_testkit::parse_listening_url(&line.text).unwrap(),
    )
}

fn options<'a>(
    url: &str,
    role: &str,
    scopes: &[&str],
    device: Option<&'a DeviceIdentity>,
) -> ConnectOptions<'a> {
    let (id, mode) = if role == "node" {
        ("node-host", "node")
    } else {
        ("cli", "cli")
    };
    let mut o = ConnectOptions::new(url, client_info(id, mode));
    o.token = Some(TOKEN.into());
    o.role = role.into();
    o.scopes = scopes.iter().map(|s| s.to_string()).collect();
    o.device = device;
    o.timeout = Duration::from_secs(5);
    if role == "node" {
        o.caps = vec!["system".into()];
        o.commands = vec![NODE_COMMAND.into()];
    }
    o
}

/// A connect's outcome while the gateway may be killed at any moment: `None` when the gateway
/// went away; any refusal from a live gateway fails the test.
fn unless_gone<T>(r: Result<T, ClientError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(
            ClientError::Unreachable { .. } | ClientError::Closed(..) | ClientError::Protocol(_),
        ) => None,
        Err(e) => panic!("a live gateway refused a connect it should take: {e}"),
    }
}

/// A request's answer while the gateway may be killed: `None` when it went away first.
fn answered(r: Result<Value, RpcError>) -> Option<Value> {
    match r {
        Ok(v) => Some(v),
        Err(RpcError::Closed { .. } | RpcError::Protocol(_)) => None,
        Err(e) => panic!("a live gateway refused a request it should take: {e}"),
    }
}

/// Approves a device pairing or node surface request: `None` when the gateway went away first.
async fn approve(admin: &Client, method: &str, request_id: impl Into<Value>) -> Option<Value> {
    let params = json!({"requestId": request_id.into()});
    answered(admin.request(method, Some(params)).await)
}

async fn admin(url: &str) -> Option<Client> {
    unless_gone(Client::connect(options(url, "operator", ADMIN_SCOPES, None)).await).map(|c| c.0)
}

/// Connects `device`, expecting `PAIRING_REQUIRED`, and returns the request id.
async fn pairing_request(url: &str, role: &str, device: &DeviceIdentity) -> Option<String> {
    let scopes = if role == "node" {
        &[][..]
    } else {
        DEVICE_SCOPES
    };
    match Client::connect(options(url, role, scopes, Some(device))).await {
        Err(ClientError::Handshake { error, .. }) if error.pairing_required().is_some() => {
            let request = error.pairing_required()?.request_id;
            Some(request.expect("PAIRING_REQUIRED names its request"))
        }
        Err(e) => unless_gone(Err::<(), _>(e)).and(None),
        Ok(_) => panic!("an unpaired {role} device was let in without approval"),
    }
}

async fn connect_device(url: &str, device: &DeviceIdentity) -> Option<(Client, HelloOk)> {
    unless_gone(Client::connect(options(url, "operator", DEVICE_SCOPES, Some(device))).await)
}

/// New devices asking to pair, approved one after another, until the gateway dies.
async fn pair_devices(url: String, ledger: Shared) {
    let Some(admin) = admin(&url).await else {
        return;
    };
    loop {
        let device = Arc::new(DeviceIdentity::generate());
        let Some(request_id) = pairing_request(&url, "operator", &device).await else {
            return;
        };
        let idx = {
            let mut l = ledger.lock().unwrap();
            l.devices.push(device.clone());
            l.devices.len() - 1
        };
        if approve(&admin, "device.pair.approve", request_id)
            .await
            .is_none()
        {
            return;
        }
        ledger.lock().unwrap().approved.push(idx);
        let Some((_, hello)) = connect_device(&url, &device).await else {
            return;
        };
        let token = hello
            .device_token()
            .expect("a paired device gets its token");
        ledger.lock().unwrap().tokens.insert(idx, token.to_owned());
    }
}

/// Paired devices rotating their own token, until the gateway dies.
async fn rotate_tokens(url: String, ledger: Shared, mut rng: XorShift, killed: Arc<AtomicBool>) {
    loop {
        let pick = {
            let l = ledger.lock().unwrap();
            let candidates: Vec<usize> = l
                .tokens
                .keys()
                .copied()
                .filter(|i| !l.uncertain_rotation.contains(i))
                .collect();
            (!candidates.is_empty()).then(|| {
                let i = candidates[(rng.next() % candidates.len() as u64) as usize];
                (i, l.devices[i].clone())
            })
        };
        let Some((idx, device)) = pick else {
            if killed.load(Ordering::SeqCst) {
                return;
            }
            // Nothing paired yet in this run: wait for the pairing loops.
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        };
        let Some((client, _)) = connect_device(&url, &device).await else {
            return;
        };
        ledger.lock().unwrap().uncertain_rotation.push(idx);
        let answer = client
            .request(
                "device.token.rotate",
                Some(json!({"deviceId": device.id(), "role": "operator"})),
            )
            .await;
        let Some(payload) = answered(answer) else {
            return;
        };
        let token = payload["token"]
            .as_str()
            .expect("a device rotating its own token gets it in-band");
        let mut l = ledger.lock().unwrap();
        l.tokens.insert(idx, token.to_owned());
        l.uncertain_rotation.retain(|i| *i != idx);
        l.rotations += 1;
    }
}

/// New node hosts: device pairing, then their command surface, until the gateway dies.
async fn approve_nodes(url: String, ledger: Shared) {
    let Some(admin) = admin(&url).await else {
        return;
    };
    loop {
        let node = Arc::new(DeviceIdentity::generate());
        let Some(request_id) = pairing_request(&url, "node", &node).await else {
            return;
        };
        if approve(&admin, "device.pair.approve", request_id)
            .await
            .is_none()
        {
            return;
        }
        let Some((_node_conn, _)) =
            unless_gone(Client::connect(options(&url, "node", &[], Some(&node))).await)
        else {
            return;
        };
        let Some(surface_request) = pending_surface(&admin, node.id()).await else {
            return;
        };
        if approve(&admin, "node.pair.approve", surface_request)
            .await
            .is_none()
        {
            return;
        }
        ledger.lock().unwrap().approved_nodes.push(node);
    }
}

/// The request id of `node_id`'s pending command surface. The gateway records it as the node
/// attaches, right after its hello, so it is polled for (with a deadline) rather than
/// expected at once. `None` when the gateway went away.
async fn pending_surface(admin: &Client, node_id: &str) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = answered(admin.request("node.pair.list", None).await)?;
        let request = list["pending"]
            .as_array()
            .and_then(|p| p.iter().find(|r| r["nodeId"] == node_id))
            .map(|r| r["requestId"].clone());
        if request.is_some() {
            return request;
        }
        assert!(
            Instant::now() < deadline,
            "a connected node's new surface is not pending: {list}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Everything the ledger says was answered holds, and nothing half-written shows.
async fn check(url: &str, ledger: &Shared, round: usize) {
    let admin = admin(url).await.expect("admin connects after restart");
    let devices = admin.request("device.pair.list", None).await.unwrap();
    let paired: HashMap<&str, &Value> = devices["paired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["deviceId"].as_str().unwrap(), d))
        .collect();
    let pending = devices["pending"].as_array().unwrap();
    for d in paired.values() {
        assert!(
            !d["tokens"].as_array().unwrap().is_empty(),
            "round {round}: a paired device without its token: {d}"
        );
        assert!(
            !pending.iter().any(|p| p["deviceId"] == d["deviceId"]
                && p["role"] == d["role"]
                && p["scopes"] == d["scopes"]),
            "round {round}: a device both paired and pending for the same ask: {d}"
        );
    }

    let (approved, tokens, uncertain, nodes, devs) = {
        let l = ledger.lock().unwrap();
        (
            l.approved.clone(),
            l.tokens.clone(),
            l.uncertain_rotation.clone(),
            l.approved_nodes.clone(),
            l.devices.clone(),
        )
    };
    for idx in approved {
        let device = &devs[idx];
        assert!(
            paired.contains_key(device.id()),
            "round {round}: an answered approval was lost (device {})",
            device.id()
        );
        let (_, hello) = connect_device(url, device)
            .await
            .unwrap_or_else(|| panic!("round {round}: the restarted gateway went away"));
        let in_force = hello.device_token().unwrap().to_owned();
        if let Some(known) = tokens.get(&idx) {
            if uncertain.contains(&idx) {
                // The rotation may or may not have been written; the old token works only if
                // it is still the one in force.
                let old_works = token_authenticates(url, device, known).await;
                assert_eq!(
                    old_works,
                    &in_force == known,
                    "round {round}: after an unanswered rotation the old token's fate does not match the token in force"
                );
            } else {
                assert_eq!(
                    &in_force, known,
                    "round {round}: an answered rotation was lost"
                );
            }
        }
        assert!(
            token_authenticates(url, device, &in_force).await,
            "round {round}: the token the gateway hands out does not authenticate"
        );
    }
    let node_list = admin.request("node.pair.list", None).await.unwrap();
    for node in nodes {
        let entry = node_list["paired"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["nodeId"] == node.id())
            .unwrap_or_else(|| {
                panic!(
                    "round {round}: an answered node approval was lost: {}",
                    node.id()
                )
            });
        assert!(
            entry["commands"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == NODE_COMMAND),
            "round {round}: a node's approved surface lost its command: {entry}"
        );
        assert!(
            !node_list["pending"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["nodeId"] == node.id()),
            "round {round}: an approved node surface is still pending"
        );
    }
}

async fn token_authenticates(url: &str, device: &DeviceIdentity, token: &str) -> bool {
    let mut o = options(url, "operator", DEVICE_SCOPES, Some(device));
    o.token = None;
    o.device_token = Some(token.to_owned());
    match Client::connect(o).await {
        Ok((_, hello)) => hello.auth_method() == Some("device-token"),
        Err(ClientError::Handshake { .. }) => false,
        Err(e) => panic!("device token check could not connect: {e}"),
    }
}

/// After a check, rotations that were in flight are settled: the token in force is known.
async fn settle(url: &str, ledger: &Shared) {
    let (uncertain, devs) = {
        let l = ledger.lock().unwrap();
        (l.uncertain_rotation.clone(), l.devices.clone())
    };
    for idx in uncertain {
        let (_, hello) = connect_device(url, &devs[idx]).await.unwrap();
        let mut l = ledger.lock().unwrap();
        l.tokens
            .insert(idx, hello.device_token().unwrap().to_owned());
        l.uncertain_rotation.retain(|i| *i != idx);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_rotations_and_node_approvals_survive_kill_9_at_random_points() {
    let seed = std::env::var("CLAWGATE_KILL9_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("kill -9 matrix seed: {seed} (CLAWGATE_KILL9_SEED={seed} replays it)");
    let mut rng = XorShift(seed);

    let home = IsolatedHome::new();
    // No silent local pairing: every device here pairs the way a remote one does.
    home.write_config(&json!({"gateway": {"nodes": {"pairing": {"autoApproveLocal": false}}}}));
    let ledger: Shared = Arc::default();
    let (mut gw, url) = start(&home, "0").await;
    let port = url.rsplit(':').next().unwrap().to_owned();
    let mut answered_before_kill = Vec::new();

    for round in 0..ROUNDS {
        let killed = Arc::new(AtomicBool::new(false));
        let mut workload = Vec::new();
        for _ in 0..PAIRING_LOOPS {
            workload.push(tokio::spawn(pair_devices(url.clone(), ledger.clone())));
        }
        for _ in 0..ROTATION_LOOPS {
            workload.push(tokio::spawn(rotate_tokens(
                url.clone(),
                ledger.clone(),
                XorShift(rng.next() | 1),
                killed.clone(),
            )));
        }
        for _ in 0..NODE_LOOPS {
            workload.push(tokio::spawn(approve_nodes(url.clone(), ledger.clone())));
        }
        let delay = Duration::from_millis(
            MIN_KILL_DELAY_MS + rng.next() % (MAX_KILL_DELAY_MS - MIN_KILL_DELAY_MS),
        );
        tokio::time::sleep(delay).await;
        gw.signal("KILL");
        gw.wait_timeout(Duration::from_secs(5))
            .await
            .expect("killed");
        killed.store(true, Ordering::SeqCst);
        for task in workload {
            task.await.expect("a workload task panicked");
        }
        {
            let l = ledger.lock().unwrap();
            answered_before_kill.push((
                delay.as_millis(),
                l.approved.len(),
                l.rotations,
                l.approved_nodes.len(),
            ));
        }
        (gw, _) = start(&home, &port).await;
        check(&url, &ledger, round).await;
        settle(&url, &ledger).await;
    }
    eprintln!(
        "(kill delay ms, devices approved, rotations, nodes approved) after each round: {answered_before_kill:?}"
    );
    let l = ledger.lock().unwrap();
    // The matrix must actually have exercised every kind of write.
    assert!(l.approved.len() >= 3, "too few device approvals ran");
    assert!(!l.approved_nodes.is_empty(), "no node approval ran");
    assert!(l.rotations > 0, "no token rotation ran");
    drop(l);
    drop(gw);
}
