//! `gateway probe`: reachability, auth and capability of the configured gateway, of this
//! machine's when that is another one, and through a one-shot SSH tunnel, with the Bonjour
//! browse beside them.

use super::bonjour::ProbeBrowse;
use super::conn::{ConnArgs, EXIT_CODES_HELP};
use super::probe_ssh;
use super::probe_target::{PROBE_METHODS, Probed, Reached, probe_target};
use super::render;
use super::rpc::CallOutcome;
use super::session::{ConnSpec, failed_connection_json};
use super::target::{self, Target, Which};
use crate::output::{Failure, FailureKind, Report, block_on, exit_code, print_json, print_out};
use clap::Args;
use clawgate_client::failure;
use clawgate_client::probe_tunnel;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct ProbeArgs {
    /// Also probe through a one-shot SSH tunnel to this gateway host ([user@]host[:port]),
    /// closed after the probe [default: gateway.remote.sshTarget, else $USER@<host of
    /// gateway.remote.url>]
    #[arg(long, value_name = "[USER@]HOST[:PORT]")]
    pub ssh: Option<String>,
    /// Private key for that tunnel (ssh -i) [default: gateway.remote.sshIdentity]
    #[arg(long, value_name = "PATH")]
    pub ssh_identity: Option<PathBuf>,
    /// Without --ssh or a configured target: tunnel to the first gateway Bonjour discovery
    /// finds on this network ($USER@<its host>[:<its sshPort>])
    #[arg(long)]
    pub ssh_auto: bool,
    /// The gateway's port: of the local gateway, and at the far end of the SSH tunnel
    /// [default: gateway.remote.remotePort there, gateway.port here, 18789]
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub fn run(args: ProbeArgs) -> ExitCode {
    block_on(probe_async(args))
}

/// `{ok:true, result, latencyMs}` or `{ok:false, error, latencyMs}`.
fn outcome_json(o: &CallOutcome) -> Value {
    match o {
        CallOutcome::Ok(v, ms) => json!({"ok": true, "latencyMs": ms, "result": v}),
        CallOutcome::Failed(e, ms) => {
            let error = match e.wire() {
                Some(w) => failure::request_error_json(w),
                None => json!({"type": "gateway_transport_error", "message": e.to_string()}),
            };
            json!({"ok": false, "latencyMs": ms, "error": error})
        }
        CallOutcome::TimedOut => {
            json!({"ok": false, "error": {"type": "gateway_transport_error", "kind": "timeout", "message": "no answer in time"}})
        }
    }
}

/// The time budget of the probe through the SSH tunnel (OpenClaw's).
const TUNNEL_PROBE_BUDGET_MS: u64 = 2000;

/// Probes the target the flags and config name, this machine's gateway when that is
/// another one, and, with `--ssh` (or `gateway.remote.sshTarget`, or a `gateway.remote.url`
/// host), the gateway through a one-shot SSH tunnel as well. The report is about the
/// reachable target a person most likely means (`--url`, else the tunnel, else the
/// configured one, else this machine's), lists them all, and warns `multiple_gateways`
/// when several different gateways answer.
async fn probe_async(args: ProbeArgs) -> ExitCode {
    let json_out = args.conn.json;
    let ssh_flags = probe_ssh::flags(
        &args.conn,
        args.ssh.clone(),
        args.ssh_identity.clone(),
        args.port,
    );
    let config = args.conn.config.as_deref();
    let ssh = match probe_tunnel::plan(&ssh_flags, config) {
        Ok(p) => p,
        Err(f) => return f.report(json_out),
    };
    let mut warnings = Vec::new();
    let mut browse = ProbeBrowse::start(args.conn.timeout);
    let ssh = match ssh {
        None if args.ssh_auto => probe_ssh::discovered(&ssh_flags, config, browse.wait().await)
            .map_err(|w| warnings.push(w))
            .ok(),
        given => given,
    };
    let budget = Duration::from_millis(args.conn.timeout.max(1));
    let tunnel = match &ssh {
        Some(plan) => {
            let progress = crate::term::Progress::new(json_out);
            let opened = probe_tunnel::open(plan, budget, &progress).await;
            progress.clear();
            opened
                .map_err(|e| warnings.push(probe_tunnel::failed_warning(&e, plan)))
                .ok()
        }
        None => None,
    };
    // `--port` is the local gateway's port, as CLAWGATE_GATEWAY_PORT would be.
    let port = args.port;
    let env = move |name: &str| match port {
        Some(p) if name == "CLAWGATE_GATEWAY_PORT" => Some(p.to_string()),
        _ => clawgate_config::process_env(name),
    };
    let direct_target = target::resolve_with_env(&args.conn, &env, Which::Configured);
    let tunnel_target = tunnel
        .as_ref()
        .zip(ssh.as_ref())
        .map(|(t, plan)| t.target(plan));
    let local_target = local_probe_target(&args.conn, &env, &direct_target, tunnel_target.as_ref());
    // Secondary targets never wait for a pairing approval.
    let no_wait = ConnArgs {
        wait: false,
        no_wait: true,
        ..args.conn.clone()
    };
    let direct = probe_target(&args.conn, ConnSpec::probe(), direct_target);
    let through = async {
        let t = tunnel_target?;
        // Like OpenClaw, give the tunnel that closes with the probe 2 s at most (a gateway
        // that is down on the far end leaves the connection hanging rather than refused).
        let conn = ConnArgs {
            timeout: args.conn.timeout.min(TUNNEL_PROBE_BUDGET_MS),
            ..no_wait.clone()
        };
        let spec = ConnSpec {
            suppress_stored_device_auth: true,
            ..ConnSpec::probe()
        };
        Some(probe_target(&conn, spec, Ok(t)).await)
    };
    let local = async { Some(probe_target(&no_wait, ConnSpec::probe(), Ok(local_target?)).await) };
    let (direct, through, local) = tokio::join!(direct, through, local);
    if let Some(t) = tunnel {
        t.stop().await;
    }
    let discovery = browse.wait().await;

    let probed: Vec<&Probed> = through.iter().chain([&direct]).chain(&local).collect();
    warnings.extend(multiple_gateways_warning(&probed));
    fn reached(p: &Probed) -> Option<(&Probed, &Reached)> {
        p.result.as_ref().ok().map(|r| (p, r))
    }
    let primary = probed
        .iter()
        .filter_map(|p| reached(p))
        .find(|(p, _)| p.kind() == "explicit")
        .or_else(|| probed.iter().find_map(|p| reached(p)));
    let targets: Vec<Value> = probed
        .iter()
        .map(|p| p.json(primary.is_some_and(|(q, _)| std::ptr::eq(*p, q))))
        .collect();
    let (primary, r) = match (primary, &direct.result) {
        (Some(found), _) => found,
        (None, Err(f)) => {
            if discovery.is_empty() {
                warnings.push(
                    json!({"code": "no_gateway_reachable", "message": NO_GATEWAY_REACHABLE,
                    "targetIds": probed.iter().map(|p| p.kind()).collect::<Vec<_>>()}),
                );
            }
            return probe_failed(
                f,
                &direct.target,
                through.as_ref(),
                ProbeLists {
                    targets,
                    warnings: &warnings,
                    discovery: discovery.json(),
                },
                json_out,
            );
        }
        (None, Ok(r)) => (&direct, r),
    };
    let limited: Vec<String> = r
        .outcomes
        .iter()
        .filter_map(|o| match o {
            CallOutcome::Failed(e, _) => {
                e.wire().and_then(|w| w.missing_scope()).map(str::to_owned)
            }
            _ => None,
        })
        .collect();
    if let Some(scope) = limited.first() {
        warnings.push(json!({"code": "probe_scope_limited", "message": format!(
            "read calls are limited by this connection's scopes (missing {scope}); the connection itself succeeded. OpenClaw gateways grant probe connections no scopes: use `clawgate status --deep` (a cli connection) or a paired device for full diagnostics"
        )}));
    }
    let mut calls = serde_json::Map::new();
    for (method, o) in PROBE_METHODS.iter().zip(&r.outcomes) {
        calls.insert((*method).to_owned(), outcome_json(o));
    }
    let degraded =
        !warnings.is_empty() || r.outcomes.iter().any(|o| !matches!(o, CallOutcome::Ok(..)));
    let mut report = json!({"ok": true, "degraded": degraded});
    if let (Value::Object(out), Value::Object(g)) = (&mut report, &r.gateway) {
        out.extend(g.clone());
    }
    report["version"] = json!(r.hello.server_version());
    report["calls"] = Value::Object(calls);
    report["warnings"] = Value::Array(warnings.clone());
    report["discovery"] = discovery.json();
    report["primaryTargetId"] = json!(primary.kind());
    report["targets"] = Value::Array(targets);
    if json_out {
        print_json(&report);
    } else {
        let mut text = render::probe(
            &r.hello,
            &primary.target,
            r.connect_ms,
            &PROBE_METHODS,
            &r.outcomes,
            &warnings,
        );
        text.push_str(&discovery.text());
        if probed.len() > 1 {
            text.push_str(&render::probe_targets(&probed_rows(&probed)));
        }
        print_out(&text);
    }
    ExitCode::SUCCESS
}

/// This machine's gateway as a second target when the configured one is another (OpenClaw
/// always probes its `localLoopback` target), unless it is the same URL as one probed
/// already. `None` when the configured target did not resolve: that failure is the report.
fn local_probe_target(
    conn: &ConnArgs,
    env: &dyn Fn(&str) -> Option<String>,
    direct: &Result<Target, Failure>,
    tunnel: Option<&Target>,
) -> Option<Target> {
    let direct = direct.as_ref().ok()?;
    if direct.source == clawgate_config::TargetSource::Local {
        return None;
    }
    match target::resolve_with_env(conn, env, Which::LocalLoopback) {
        Ok(t) if t.url == direct.url || tunnel.is_some_and(|u| u.url == t.url) => None,
        Ok(t) => Some(t),
        Err(f) => {
            eprintln!("warning: not probing this machine's gateway: {}", f.message);
            None
        }
    }
}

/// OpenClaw's words for two or more gateways answering one probe.
const MULTIPLE_GATEWAYS: &str = "Unconventional setup: multiple reachable gateway identities detected. Usually one gateway per network is recommended unless you intentionally run isolated profiles, like a rescue bot (see docs: /gateway#multiple-gateways-same-host).";

/// OpenClaw's `multiple_gateways` warning: more than one probed target answered and they
/// are not all the same gateway. A gateway is known by its `reason: "self"` presence entry
/// (host, ip, instance id); one whose presence the probe could not read counts as another.
fn multiple_gateways_warning(probed: &[&Probed]) -> Option<Value> {
    let reachable: Vec<&Probed> = probed.iter().copied().filter(|p| p.reachable()).collect();
    let identities: Vec<Option<String>> = reachable.iter().map(|p| p.identity()).collect();
    let several = identities.iter().any(Option::is_none)
        || identities
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1;
    (reachable.len() > 1 && several).then(|| {
        let ids: Vec<&str> = reachable.iter().map(|p| p.kind()).collect();
        json!({"code": "multiple_gateways", "message": MULTIPLE_GATEWAYS, "targetIds": ids})
    })
}

fn probed_rows<'a>(probed: &[&'a Probed]) -> Vec<render::ProbedRow<'a>> {
    probed
        .iter()
        .map(|p| render::ProbedRow {
            target: &p.target,
            reached: p.result.as_ref().map(|r| (&r.hello, r.connect_ms)),
        })
        .collect()
}

/// OpenClaw's `no_gateway_reachable` diagnostic (no probe answered, Bonjour found nothing
/// either), naming clawgate's own commands.
const NO_GATEWAY_REACHABLE: &str = "No gateway answered any probe and Bonjour discovery returned no local gateways. Run `clawgate gateway status --require-rpc` to inspect service state, config paths and the listener; include `ss -ltnp` or `lsof -nP -iTCP:<port> -sTCP:LISTEN` for the configured port when filing a report.";

/// What a failed probe lists beside its error.
struct ProbeLists<'a> {
    targets: Vec<Value>,
    warnings: &'a [Value],
    discovery: Value,
}

/// No target answered: the direct target's failure `f` (its exit code), with the warnings
/// and every target in the report.
fn probe_failed(
    f: &Failure,
    direct: &Target,
    through: Option<&Probed>,
    lists: ProbeLists<'_>,
    json_out: bool,
) -> ExitCode {
    let ProbeLists {
        targets,
        warnings,
        discovery,
    } = lists;
    if json_out && f.kind != FailureKind::Usage {
        let mut report = failed_connection_json(f, direct);
        report["warnings"] = json!(warnings);
        report["discovery"] = discovery;
        report["targets"] = Value::Array(targets);
        print_json(&report);
    } else if json_out {
        print_json(&json!({"ok": false, "error": f.json, "warnings": warnings,
            "discovery": discovery, "targets": targets}));
    }
    for w in warnings {
        if let Some(message) = w.get("message").and_then(Value::as_str) {
            eprintln!("warning: {message}");
        }
    }
    if let Some(Probed {
        result: Err(tunnel_failure),
        ..
    }) = through
    {
        eprintln!(
            "warning: through the SSH tunnel: {}",
            tunnel_failure.message
        );
    }
    f.print_human();
    ExitCode::from(exit_code(f.kind))
}
