//! The operator commands: `gateway call|health|status|probe`, `health`, `status`.
//!
//! Each one resolves the target (flags > env > config > the local gateway), opens one
//! WebSocket connection with the least scopes it needs, and maps every failure to an exit
//! code and a message that names the fix (see [`EXIT_CODES_HELP`]).

mod devices;
mod discover;
mod failure;
mod nodes;
mod pairing;
mod probe_ssh;
mod render;
mod table;
mod target;

use clap::Args;
use clawgate_client::session::{self, SessionOptions};
use clawgate_client::{
    Client, ClientInfo, DeviceAuthMode, HelloOk, RpcError, TlsOptions, client_info,
};
use clawgate_protocol::scopes::{self, MethodAccess};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use target::{Target, Which};
use tokio::time::Instant;

use crate::output::{EXIT_OK, EXIT_REJECTED, EXIT_RPC, EXIT_USAGE, Failure, block_on};
pub(crate) use crate::output::{print_json, print_out};

/// Shown at the end of each operator command's `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the gateway answered the request with an error
  2  usage or configuration error (bad flag, --params, config file, URL)
  3  gateway unreachable: connection refused, DNS failure, timeout, or still starting
  4  rejected at connect: wrong or missing token/password, pairing required, protocol mismatch
  5  connected, but the connection lacks the scope the method needs (FORBIDDEN missing scope)

Target: --url (then only --token/--password are used), else CLAWGATE_GATEWAY_URL, else
gateway.remote.url when gateway.mode is \"remote\", else the local gateway at
ws://127.0.0.1:<gateway.port|18789> with --token, CLAWGATE_GATEWAY_TOKEN, gateway.auth.token or
the token a local clawgate gateway generated in <state dir>/gateway.token.
Every CLAWGATE_* variable also has an OPENCLAW_* twin.

Device identity: unless the URL is loopback and a token/password is sent (see --device-auth),
commands sign with this machine's device key (<state dir>/clawgate/identity.json) and keep the
device tokens gateways issue (<state dir>/clawgate/device-tokens.json, used when no
token/password is given). A gateway that has not approved this device answers with a request
id: approve it on the gateway host with `clawgate devices approve <id>` (`openclaw devices
approve <id>` on OpenClaw). On a terminal the command waits for the approval; with --json or
off a terminal it exits 4 unless --wait is given.";

/// Connection flags shared by every operator command.
#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// Gateway WebSocket URL (ws:// or wss://); with --url only --token/--password are sent
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Gateway token [env: CLAWGATE_GATEWAY_TOKEN, OPENCLAW_GATEWAY_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Gateway password [env: CLAWGATE_GATEWAY_PASSWORD, OPENCLAW_GATEWAY_PASSWORD]
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<String>,
    /// Pin the gateway's TLS certificate (SHA-256 of its DER, wss:// only); repeat it (or
    /// separate pins with commas) to accept any of several, e.g. old and new during a
    /// `gateway tls rotate`
    #[arg(long, value_name = "SHA256", value_delimiter = ',')]
    pub tls_fingerprint: Vec<String>,
    /// Config file (JSON5, OpenClaw keys) [env: CLAWGATE_CONFIG_PATH, OPENCLAW_CONFIG_PATH]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// Time budget in milliseconds for connecting and answering
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub timeout: u64,
    /// Sign with this machine's device identity: auto (unless the URL is loopback and a
    /// token/password is sent), always, or never
    #[arg(
        long,
        value_name = "MODE",
        env = "CLAWGATE_DEVICE_AUTH",
        default_value = "auto"
    )]
    pub device_auth: DeviceAuthMode,
    /// If the gateway must approve this device first, wait for the approval (the default on
    /// a terminal without --json)
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,
    /// Never wait for a device approval: print the approve command and exit 4
    #[arg(long, overrides_with = "wait")]
    pub no_wait: bool,
    /// How long to wait for a device approval, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub wait_timeout: u64,
}

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct CallArgs {
    /// Method name, e.g. health, status, node.list, config.get
    pub method: String,
    /// Params as a JSON value
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub params: String,
    /// Wait past an interim {"status":"accepted"} answer for the final one (agent runs)
    #[arg(long)]
    pub expect_final: bool,
    /// Fail before connecting if the resolved gateway URL differs from this one (the call
    /// keeps the configured authentication)
    #[arg(long, value_name = "URL")]
    pub expect_url: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct HealthArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct StatusArgs {
    /// Also ask presence, channels (without probing them), a fresh health check and the last
    /// heartbeat
    #[arg(long)]
    pub deep: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct GatewayStatusArgs {
    /// Also call `status` and fail unless it answers: connecting alone does not show that
    /// the gateway serves requests (OpenClaw's read probe)
    #[arg(long)]
    pub require_rpc: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

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

/// An open connection plus what the commands print about it.
struct Session {
    client: Client,
    hello: HelloOk,
    target: Target,
    /// Time to hello, in milliseconds.
    connect_ms: u64,
    deadline: Instant,
    timeout_ms: u64,
    /// This machine's device id, when the connection was signed.
    device_id: Option<String>,
}

/// What kind of connection to open.
struct ConnSpec {
    client: ClientInfo,
    scopes: Vec<String>,
    /// Probe connections accept protocol 3 too.
    probe: bool,
    /// Neither send nor keep a stored device token: the URL is a tunnel's passing local
    /// port, which another gateway may listen on next time (`gateway probe --ssh`).
    suppress_stored_device_auth: bool,
}

impl ConnSpec {
    fn cli(scopes: Vec<String>) -> Self {
        ConnSpec {
            client: client_info("cli", "cli"),
            scopes,
            probe: false,
            suppress_stored_device_auth: false,
        }
    }

    fn probe() -> Self {
        ConnSpec {
            client: client_info("cli", "probe"),
            scopes: vec![scopes::READ.to_owned()],
            probe: true,
            suppress_stored_device_auth: false,
        }
    }
}

/// Connects within the `--timeout` budget with the device policy of
/// [`clawgate_client::session`]: signing per `--device-auth`, stored device tokens, and
/// waiting for a pairing approval with `--wait` (or on a terminal without `--json`), the
/// approve command printed.
async fn open_session(conn: &ConnArgs, spec: ConnSpec) -> Result<Session, Box<(Failure, Target)>> {
    match target::resolve(conn) {
        Ok(target) => connect_session(conn, spec, target).await,
        Err(f) => Err(Box::new((f, placeholder_target(conn)))),
    }
}

/// What a failure is reported against when no target could be resolved.
fn placeholder_target(conn: &ConnArgs) -> Target {
    Target {
        url: conn.url.clone().unwrap_or_default(),
        token: None,
        password: None,
        tls_fingerprint: None,
        source: clawgate_config::TargetSource::Local,
        config_path: None,
        state_dir: PathBuf::new(),
        credential: target::CredentialOrigin::None,
        connect_to: None,
        tunnel: None,
        probe_tunnel: None,
    }
}

/// [`open_session`] to a target resolved already.
async fn connect_session(
    conn: &ConnArgs,
    spec: ConnSpec,
    target: Target,
) -> Result<Session, Box<(Failure, Target)>> {
    let opts = SessionOptions {
        url: target.url.clone(),
        connect_to: target.connect_to,
        token: target.token.clone(),
        password: target.password.clone(),
        tls: TlsOptions {
            fingerprint: target.tls_fingerprint.clone(),
        },
        client: spec.client,
        role: "operator".into(),
        scopes: spec.scopes,
        min_protocol: spec.probe.then_some(clawgate_protocol::MIN_PROBE_PROTOCOL),
        timeout: Duration::from_millis(conn.timeout),
        device_auth: conn.device_auth,
        state_dir: target.state_dir.clone(),
        stored_tokens: !spec.suppress_stored_device_auth,
        pairing_wait: crate::term::should_wait(conn.wait, conn.no_wait, conn.json)
            .then(|| Duration::from_secs(conn.wait_timeout)),
    };
    let mut watcher = pairing::Watcher::new(&target, conn.json);
    let opened = session::open(&opts, &mut |event| watcher.on(event)).await;
    drop(watcher);
    match opened {
        Ok(s) => Ok(Session {
            client: s.client,
            hello: s.hello,
            connect_ms: s.connect_ms,
            target,
            deadline: s.deadline,
            timeout_ms: conn.timeout,
            device_id: s.device_id,
        }),
        Err(e) => {
            let f = failure::session_failure(*e, &target, conn.wait_timeout);
            Err(Box::new((f, target)))
        }
    }
}

/// The outcome of one call within the session's budget.
enum CallOutcome {
    Ok(Value, u64),
    Failed(RpcError, u64),
    TimedOut,
}

impl Session {
    async fn call(&self, method: &str, params: Option<Value>, expect_final: bool) -> CallOutcome {
        let started = Instant::now();
        let fut = async {
            if expect_final {
                self.client.request_expect_final(method, params).await
            } else {
                self.client.request(method, params).await
            }
        };
        match tokio::time::timeout_at(self.deadline, fut).await {
            Err(_) => CallOutcome::TimedOut,
            Ok(Ok(v)) => CallOutcome::Ok(v, started.elapsed().as_millis() as u64),
            Ok(Err(e)) => CallOutcome::Failed(e, started.elapsed().as_millis() as u64),
        }
    }

    /// A call whose failure ends the command.
    async fn call_required(
        &self,
        method: &str,
        params: Option<Value>,
        expect_final: bool,
    ) -> Result<(Value, u64), Failure> {
        match self.call(method, params, expect_final).await {
            CallOutcome::Ok(v, ms) => Ok((v, ms)),
            CallOutcome::Failed(e, _) => Err(failure::rpc_failure(
                method,
                &e,
                &self.hello.scopes(),
                &self.target,
            )),
            CallOutcome::TimedOut => {
                Err(failure::call_timeout(method, self.timeout_ms, &self.target))
            }
        }
    }

    /// `{url, source, reachable, …}`: the connection facts every report shares.
    fn gateway_json(&self) -> Value {
        let h = &self.hello;
        json!({
            "url": self.target.url,
            "urlSource": self.target.source_label(),
            "reachable": true,
            "connectLatencyMs": self.connect_ms,
            "protocol": h.protocol(),
            "server": {"version": h.server_version(), "buildId": h.build_id(), "connId": h.conn_id()},
            "uptimeMs": h.uptime_ms(),
            "auth": {"method": h.auth_method(), "role": h.role(), "scopes": h.scopes()},
            "capability": capability(&h.scopes()),
        })
    }
}

/// What a connection may do, from hello-ok `auth.scopes`.
pub fn capability(granted: &[String]) -> &'static str {
    if scopes::satisfies(granted, scopes::ADMIN) {
        "admin_capable"
    } else if scopes::satisfies(granted, scopes::WRITE) {
        "write_capable"
    } else if scopes::satisfies(granted, scopes::READ) {
        "read_only"
    } else {
        "connected_no_operator_scope"
    }
}

/// Least privilege for one method.
fn scopes_for(method: &str) -> Vec<String> {
    match scopes::method_access(method) {
        MethodAccess::Scope(s) => vec![s.to_owned()],
        // Operators cannot call these; ask for admin so the gateway's answer is about the
        // role, not a scope.
        MethodAccess::NodeOnly => vec![scopes::ADMIN.to_owned()],
    }
}

// ---- gateway call ---------------------------------------------------------------------------

pub fn call(args: CallArgs) -> ExitCode {
    block_on(call_async(args))
}

async fn call_async(args: CallArgs) -> ExitCode {
    let params: Value = match serde_json::from_str(&args.params) {
        Ok(v) => v,
        Err(e) => {
            return Failure::usage(
                format!("--params must be valid JSON: {e}"),
                vec![r#"for example --params '{"probe":true}'"#.into()],
            )
            .report(true);
        }
    };
    let target = match target::resolve(&args.conn) {
        Ok(t) => t,
        Err(f) => return f.report(true),
    };
    // Compared as OpenClaw does, exactly: the caller names the URL it selected before.
    if let Some(expected) = &args.expect_url
        && *expected != target.url
    {
        return failure::destination_changed(expected, &target).report(true);
    }
    let spec = ConnSpec::cli(scopes_for(&args.method));
    let session = match connect_session(&args.conn, spec, target).await {
        Ok(s) => s,
        Err(b) => return b.0.report(true),
    };
    let result = session
        .call_required(&args.method, Some(params), args.expect_final)
        .await;
    session.client.close().await;
    match result {
        Ok((payload, _)) => {
            print_json(&payload);
            ExitCode::SUCCESS
        }
        Err(f) => f.report(true),
    }
}

// ---- health ---------------------------------------------------------------------------------

pub fn health(args: HealthArgs) -> ExitCode {
    block_on(health_async(args))
}

async fn health_async(args: HealthArgs) -> ExitCode {
    let json_out = args.conn.json;
    let session = match open_session(&args.conn, ConnSpec::cli(vec![scopes::READ.to_owned()])).await
    {
        Ok(s) => s,
        Err(b) => return b.0.report(json_out),
    };
    let result = session.call_required("health", None, false).await;
    session.client.close().await;
    let (payload, _) = match result {
        Ok(r) => r,
        Err(f) => return f.report(json_out),
    };
    if json_out {
        print_json(&payload);
    } else {
        print_out(&render::health(
            &payload,
            &session.hello,
            &session.target,
            session.connect_ms,
        ));
    }
    if payload.get("ok") == Some(&Value::Bool(false)) {
        if !json_out {
            eprintln!("error: the gateway reports itself unhealthy (health ok=false)");
        }
        return ExitCode::from(EXIT_RPC);
    }
    ExitCode::SUCCESS
}

// ---- gateway status -------------------------------------------------------------------------

pub fn gateway_status(args: GatewayStatusArgs) -> ExitCode {
    block_on(gateway_status_async(args))
}

/// The report for a connection that failed: `{url, reachable:false|true, ok:false, error}`.
fn failed_connection_json(f: &Failure, t: &Target) -> Value {
    // A gateway that answered with a rejection is reachable.
    let reachable = f.exit == EXIT_REJECTED;
    json!({"ok": false, "url": t.url, "urlSource": t.source_label(), "reachable": reachable,
        "error": f.json, "hint": f.fixes.first()})
}

async fn gateway_status_async(args: GatewayStatusArgs) -> ExitCode {
    let json_out = args.conn.json;
    // `--require-rpc` reads as any CLI command does (OpenClaw's `callGateway`): a probe
    // connection may be granted no scope at all.
    let spec = if args.require_rpc {
        ConnSpec::cli(vec![scopes::READ.to_owned()])
    } else {
        ConnSpec::probe()
    };
    let session = match open_session(&args.conn, spec).await {
        Ok(s) => s,
        Err(b) => {
            let (f, t) = *b;
            // A usage failure has no real target, so no service to report either.
            let service = (f.exit != EXIT_USAGE).then(|| local_service(&t)).flatten();
            if json_out && f.exit != EXIT_USAGE {
                let mut report = failed_connection_json(&f, &t);
                if let Some(s) = &service {
                    report["service"] = s.json();
                }
                print_json(&report);
                f.print_human();
                return ExitCode::from(f.exit);
            }
            if let Some(s) = &service {
                print_out(s.text());
            }
            return f.report(json_out);
        }
    };
    let rpc = if args.require_rpc {
        Some(session.call_required("status", None, false).await)
    } else {
        None
    };
    let mut report = json!({"ok": true});
    if let (Value::Object(r), Value::Object(g)) = (&mut report, session.gateway_json()) {
        r.extend(g);
    }
    let fingerprint = local_tls_fingerprint(&session.target);
    if let Some(fp) = &fingerprint {
        report["tlsFingerprint"] = json!(fp);
    }
    match &rpc {
        Some(Ok(_)) => report["rpc"] = json!({"ok": true, "method": "status"}),
        Some(Err(f)) => {
            report["ok"] = json!(false);
            report["rpc"] = json!({"ok": false, "method": "status", "error": f.json});
        }
        None => {}
    }
    let service = local_service(&session.target);
    if let Some(s) = &service {
        report["service"] = s.json();
    }
    if json_out {
        print_json(&report);
    } else {
        let mut text = render::gateway_status(&session.hello, &session.target, session.connect_ms);
        if let Some(fp) = &fingerprint {
            text.push_str(&format!("TLS fingerprint: sha256:{fp} (pin it with gateway.remote.tlsFingerprint or --tls-fingerprint)\n"));
        }
        if let Some(Ok(_)) = &rpc {
            text.push_str("Read probe: ok (status)\n");
        }
        if let Some(s) = &service {
            text.push_str(s.text());
        }
        print_out(&text);
    }
    session.client.close().await;
    match rpc {
        Some(Err(f)) => {
            f.print_human();
            ExitCode::from(f.exit)
        }
        _ => ExitCode::SUCCESS,
    }
}

/// The systemd service of this machine's gateway, when that gateway is the target.
fn local_service(target: &Target) -> Option<crate::service::ServiceStatus> {
    (target.source == clawgate_config::TargetSource::Local)
        .then(|| crate::service::inspect(&clawgate_config::process_env))
        .flatten()
}

/// The certificate fingerprint of this machine's gateway when the target is it and it speaks
/// TLS (from the local config's `gateway.tls`).
fn local_tls_fingerprint(target: &Target) -> Option<String> {
    if target.source != clawgate_config::TargetSource::Local || !target.url.starts_with("wss://") {
        return None;
    }
    target::local_tls_fingerprint(target.config_path.as_deref())
}

// ---- gateway probe --------------------------------------------------------------------------

pub fn probe(args: ProbeArgs) -> ExitCode {
    block_on(probe_async(args))
}

pub use discover::DiscoverArgs;

pub fn discover(args: DiscoverArgs) -> ExitCode {
    block_on(discover::run(args))
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

pub const PROBE_METHODS: [&str; 4] = ["health", "status", "system-presence", "config.get"];

/// The time budget of the probe through the SSH tunnel (OpenClaw's).
const TUNNEL_PROBE_BUDGET_MS: u64 = 2000;

/// One probed target: the connection and the read calls, or why it failed.
struct Probed {
    target: Target,
    result: Result<Reached, Failure>,
}

struct Reached {
    hello: HelloOk,
    connect_ms: u64,
    outcomes: Vec<CallOutcome>,
    /// [`Session::gateway_json`].
    gateway: Value,
}

impl Probed {
    /// A gateway answered: connected, or refused the credentials.
    fn reachable(&self) -> bool {
        self.result
            .as_ref()
            .map_or_else(|f| f.exit == EXIT_REJECTED, |_| true)
    }

    /// The gateway's identity, from its `system-presence` answer ([`self_identity`]).
    fn identity(&self) -> Option<String> {
        let reached = self.result.as_ref().ok()?;
        let at = PROBE_METHODS.iter().position(|m| *m == "system-presence")?;
        match reached.outcomes.get(at)? {
            CallOutcome::Ok(presence, _) => self_identity(presence),
            _ => None,
        }
    }

    /// `(id, kind)` in OpenClaw's words.
    fn kind(&self) -> &'static str {
        if self.target.probe_tunnel.is_some() {
            return "sshTunnel";
        }
        match self.target.source {
            clawgate_config::TargetSource::Flag => "explicit",
            clawgate_config::TargetSource::Env(_) => "env",
            clawgate_config::TargetSource::RemoteConfig => "configRemote",
            clawgate_config::TargetSource::Local => "localLoopback",
        }
    }

    fn json(&self, primary: bool) -> Value {
        let mut v = json!({"id": self.kind(), "kind": self.kind(), "url": self.target.url,
            "urlSource": self.target.source_label(), "primary": primary,
            "tunnel": self.target.probe_tunnel.as_ref().map(probe_ssh::tunnel_json)});
        match &self.result {
            Ok(r) => {
                v["connect"] = json!({"ok": true, "latencyMs": r.connect_ms});
                for key in ["capability", "server", "auth", "protocol"] {
                    v[key] = r.gateway[key].clone();
                }
            }
            Err(f) => v["connect"] = json!({"ok": false, "error": f.json}),
        }
        v
    }
}

/// Connects and asks the four read calls at once.
async fn probe_target(conn: &ConnArgs, spec: ConnSpec, target: Result<Target, Failure>) -> Probed {
    let session = match target {
        Ok(t) => connect_session(conn, spec, t).await,
        Err(f) => Err(Box::new((f, placeholder_target(conn)))),
    };
    let session = match session {
        Ok(s) => s,
        Err(b) => {
            let (f, target) = *b;
            return Probed {
                target,
                result: Err(f),
            };
        }
    };
    let (health, status, presence, config) = tokio::join!(
        session.call("health", None, false),
        session.call("status", None, false),
        session.call("system-presence", None, false),
        session.call("config.get", Some(json!({})), false),
    );
    let gateway = session.gateway_json();
    session.client.close().await;
    Probed {
        target: session.target,
        result: Ok(Reached {
            hello: session.hello,
            connect_ms: session.connect_ms,
            outcomes: vec![health, status, presence, config],
            gateway,
        }),
    }
}

/// The configured target alone (no SSH tunnel, no discovery, no second local target)
/// through [`probe_target`], for `security audit --deep`: its URL, and why the probe failed,
/// if it did: the connection's failure, or the first read call's error in OpenClaw's words
/// (the gateway's message, or `timeout`). It connects as `status --deep` does, a `cli`
/// client asking `operator.read`: gateways grant `probe` clients no scopes, so a probe
/// connection would report a healthy gateway's read calls as a failure.
pub(crate) async fn probe_configured(conn: &ConnArgs) -> (String, Option<String>) {
    let spec = ConnSpec::cli(vec![scopes::READ.to_owned()]);
    let probed = probe_target(conn, spec, target::resolve(conn)).await;
    let unanswered = |outcome: &CallOutcome| match outcome {
        CallOutcome::Ok(..) => None,
        CallOutcome::Failed(e, _) => Some(
            e.wire()
                .map_or_else(|| e.to_string(), |w| w.message.clone()),
        ),
        CallOutcome::TimedOut => Some("timeout".to_owned()),
    };
    let failure = match &probed.result {
        Err(f) => Some(f.message.clone()),
        Ok(r) => r.outcomes.iter().find_map(unanswered),
    };
    (probed.target.url, failure)
}

/// Probes the target the flags and config name, this machine's gateway when that is
/// another one, and, with `--ssh` (or `gateway.remote.sshTarget`, or a `gateway.remote.url`
/// host), the gateway through a one-shot SSH tunnel as well. The report is about the
/// reachable target a person most likely means (`--url`, else the tunnel, else the
/// configured one, else this machine's), lists them all, and warns `multiple_gateways`
/// when several different gateways answer.
async fn probe_async(args: ProbeArgs) -> ExitCode {
    let json_out = args.conn.json;
    let ssh = match probe_ssh::plan(&args) {
        Ok(p) => p,
        Err(f) => return f.report(json_out),
    };
    let mut warnings = Vec::new();
    let mut browse = discover::ProbeBrowse::start(args.conn.timeout);
    let ssh = match ssh {
        None if args.ssh_auto => probe_ssh::discovered(&args, browse.wait().await)
            .map_err(|w| warnings.push(w))
            .ok(),
        given => given,
    };
    let budget = Duration::from_millis(args.conn.timeout.max(1));
    let tunnel = match &ssh {
        Some(plan) => {
            let progress = crate::term::Progress::new(json_out);
            let opened = probe_ssh::open(plan, budget, &progress).await;
            progress.clear();
            opened
                .map_err(|e| warnings.push(probe_ssh::failed_warning(&e, plan)))
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

/// `host \0 ip \0 instance:<id>|device:<id>` of the gateway's own presence entry (OpenClaw's
/// `gatewaySelfIdentityKey`), or `None` without a host or ip and an id.
fn self_identity(presence: &Value) -> Option<String> {
    let entries = presence.as_array()?;
    let me = entries
        .iter()
        .find(|e| e["mode"] == "gateway" && e["reason"] == "self")
        .or_else(|| {
            entries.iter().find(|e| {
                e["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Gateway:"))
            })
        })?;
    let field = |key: &str| {
        me[key]
            .as_str()
            .map(|v| v.trim().to_lowercase())
            .filter(|v| !v.is_empty())
    };
    let (host, ip) = (field("host"), field("ip"));
    let id = field("instanceId")
        .map(|id| format!("instance:{id}"))
        .or_else(|| field("deviceId").map(|id| format!("device:{id}")))?;
    (host.is_some() || ip.is_some()).then(|| {
        format!(
            "{}\0{}\0{id}",
            host.unwrap_or_default(),
            ip.unwrap_or_default()
        )
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

/// No target answered: the direct target's failure `f` (its exit code), with the warnings
/// and every target in the report.
/// OpenClaw's `no_gateway_reachable` diagnostic (no probe answered, Bonjour found nothing
/// either), naming clawgate's own commands.
const NO_GATEWAY_REACHABLE: &str = "No gateway answered any probe and Bonjour discovery returned no local gateways. Run `clawgate gateway status --require-rpc` to inspect service state, config paths and the listener; include `ss -ltnp` or `lsof -nP -iTCP:<port> -sTCP:LISTEN` for the configured port when filing a report.";

/// What a failed probe lists beside its error.
struct ProbeLists<'a> {
    targets: Vec<Value>,
    warnings: &'a [Value],
    discovery: Value,
}

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
    if json_out && f.exit != EXIT_USAGE {
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
    ExitCode::from(f.exit)
}

// ---- status ---------------------------------------------------------------------------------

pub fn status(args: StatusArgs) -> ExitCode {
    block_on(status_async(args))
}

pub const DEEP_CALLS: [(&str, &str); 4] = [
    ("system-presence", "presence"),
    ("channels.status", "channels"),
    ("health", "health"),
    ("last-heartbeat", "lastHeartbeat"),
];

async fn status_async(args: StatusArgs) -> ExitCode {
    let json_out = args.conn.json;
    let session = match open_session(&args.conn, ConnSpec::cli(vec![scopes::READ.to_owned()])).await
    {
        Ok(s) => s,
        Err(b) => return b.0.report(json_out),
    };
    let status_call = session.call("status", None, false);
    let deep = async {
        if !args.deep {
            return None;
        }
        Some(tokio::join!(
            session.call("system-presence", None, false),
            session.call(
                "channels.status",
                Some(json!({"probe": false, "timeoutMs": 8000})),
                false
            ),
            session.call("health", Some(json!({"probe": true})), false),
            session.call("last-heartbeat", Some(json!({})), false),
        ))
    };
    let (status, deep) = tokio::join!(status_call, deep);
    let gateway = session.gateway_json();
    session.client.close().await;

    let status_payload = match status {
        CallOutcome::Ok(v, _) => v,
        CallOutcome::Failed(e, _) => {
            return failure::rpc_failure("status", &e, &session.hello.scopes(), &session.target)
                .report(json_out);
        }
        CallOutcome::TimedOut => {
            return failure::call_timeout("status", session.timeout_ms, &session.target)
                .report(json_out);
        }
    };
    let deep: Option<Vec<CallOutcome>> = deep.map(|(a, b, c, d)| vec![a, b, c, d]);

    // The first failed deep call decides the exit code; the report still shows everything.
    let mut exit = EXIT_OK;
    let mut first_failure: Option<Failure> = None;
    let mut errors = serde_json::Map::new();
    let mut deep_json = serde_json::Map::new();
    if let Some(outcomes) = &deep {
        for ((method, key), o) in DEEP_CALLS.iter().zip(outcomes) {
            match o {
                CallOutcome::Ok(v, _) => {
                    deep_json.insert((*key).to_owned(), v.clone());
                }
                CallOutcome::Failed(e, _) => {
                    let f =
                        failure::rpc_failure(method, e, &session.hello.scopes(), &session.target);
                    errors.insert((*method).to_owned(), f.json.clone());
                    if first_failure.is_none() {
                        exit = f.exit;
                        first_failure = Some(f);
                    }
                }
                CallOutcome::TimedOut => {
                    let f = failure::call_timeout(method, session.timeout_ms, &session.target);
                    errors.insert((*method).to_owned(), f.json.clone());
                    if first_failure.is_none() {
                        exit = f.exit;
                        first_failure = Some(f);
                    }
                }
            }
        }
    }

    // --deep on this machine's gateway: the exposure report of its config too.
    let exposure = (args.deep && session.target.source == clawgate_config::TargetSource::Local)
        .then(|| crate::doctor::local_exposure(session.target.config_path.as_deref()))
        .flatten();
    if json_out {
        let mut report =
            json!({"ok": exit == EXIT_OK, "gateway": gateway, "status": status_payload});
        if deep.is_some() {
            report["deep"] = Value::Object(deep_json);
            report["errors"] = Value::Object(errors);
        }
        if let Some((v, _)) = &exposure {
            report["exposure"] = v.clone();
        }
        print_json(&report);
    } else {
        let mut text = render::status(
            &session.hello,
            &session.target,
            session.connect_ms,
            &status_payload,
            deep.as_deref(),
        );
        if let Some((_, t)) = &exposure {
            text.push('\n');
            text.push_str(t);
        }
        print_out(&text);
    }
    if let Some(f) = first_failure {
        f.print_human();
    }
    ExitCode::from(exit)
}

// ---- devices / nodes ------------------------------------------------------------------------

pub use devices::DevicesCommand;
pub use nodes::NodesCommand;

pub fn devices(command: DevicesCommand) -> ExitCode {
    devices::run(command)
}

pub fn nodes(command: NodesCommand) -> ExitCode {
    nodes::run(command)
}
