//! Network helpers: free ports and the loopback-only namespace check.

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Binds port 0, reads the port the kernel picked and closes the listener.
/// There is a small race: another process may take the port before the
/// caller binds it. Callers that start a server on it should retry with a
/// new port if the server fails with "address in use" ([`crate::RealGateway`]
/// does).
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

/// The network interfaces visible to this process, from `/proc/self/net/dev`
/// (which, unlike `/sys/class/net`, follows the process's own network
/// namespace even when sysfs was mounted outside it).
pub fn network_interfaces() -> Vec<String> {
    let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
    dev.lines()
        .skip(2)
        .filter_map(|l| Some(l.split(':').next()?.trim().to_owned()))
        .filter(|n| !n.is_empty())
        .collect()
}

/// True when the only network interface is `lo`: nothing this process (or
/// its children) sends can leave the machine.
pub fn in_loopback_only_netns() -> bool {
    let ifaces = network_interfaces();
    !ifaces.is_empty() && ifaces.iter().all(|i| i == "lo")
}

/// Panics unless [`in_loopback_only_netns`] holds.
#[track_caller]
pub fn require_loopback_only_netns() {
    if !in_loopback_only_netns() {
        panic!(
            "interop tests must run in a loopback-only network namespace (the real OpenClaw \
             processes contact outside hosts), but this process sees interfaces {:?}. \
             Run the suite through ./scripts/test (it runs the tests under `unshare -n`).",
            network_interfaces()
        );
    }
}
