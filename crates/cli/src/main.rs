//! `clawgate`: the gateway, the operator CLI and (later) the node host in one binary.
//! Parsing and dispatch only; the work lives in the library crates.

mod doctor;
mod exposure_view;
mod gateway_run;
mod gateway_tls;
mod node_run;
mod operator;
mod output;
mod process;
mod security_audit;
mod service;
mod term;
mod tunnel;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "clawgate",
    version,
    about = "OpenClaw-compatible gateway and operator CLI"
)]
struct Cli {
    /// Use a named profile: state and config under ~/.openclaw-<NAME>, gateway port
    /// 20000 + FNV-1a(NAME) mod 40000 unless one is set [env: CLAWGATE_PROFILE,
    /// OPENCLAW_PROFILE]
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
    /// Dev profile: --profile dev with gateway port 19001
    #[arg(long, global = true)]
    dev: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run or talk to the gateway.
    Gateway {
        #[command(subcommand)]
        command: GatewayCommand,
    },
    /// Gateway health (reads `health` from the configured or given gateway).
    Health(operator::health::HealthArgs),
    /// Gateway status; `--deep` also asks channels, presence and the last heartbeat.
    Status(operator::status::StatusArgs),
    /// Device pairing: pending requests, paired devices and their tokens.
    Devices {
        #[command(subcommand)]
        command: operator::devices::DevicesCommand,
    },
    /// Nodes: status, capability approval, invoking their commands.
    Nodes {
        #[command(subcommand)]
        command: operator::nodes::NodesCommand,
    },
    /// One agent turn: send a message, stream the reply (tool calls on stderr).
    Agent(operator::agent::AgentArgs),
    /// Talk with the agent in a session, line by line (stdin may be a pipe).
    Chat(operator::chat::ChatArgs),
    /// The agent's sessions: list them, reset one.
    Sessions {
        #[command(subcommand)]
        command: operator::sessions::SessionsCommand,
    },
    /// Who may DM the gateway's bots: list, approve or dismiss pairing codes (Telegram).
    Pairing {
        #[command(subcommand)]
        command: operator::dm_pairing::PairingCommand,
    },
    /// Run this machine as a node of a gateway.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Exposure report (who can reach the gateway, with what credential, over what transport,
    /// and each risky combination with its fix), then a live check of reachability, TLS,
    /// auth, pairing and scopes.
    Doctor(doctor::DoctorArgs),
    /// Security checks of the gateway config and local state (OpenClaw's `security audit`).
    Security {
        #[command(subcommand)]
        command: security_audit::SecurityCommand,
    },
    /// The address of the gateway's browser UI, with its token (`--open` opens it).
    Dashboard(operator::dashboard::DashboardArgs),
    /// SSH tunnels to a gateway on another host: up, status, down.
    Tunnel {
        #[command(subcommand)]
        command: tunnel::TunnelCommand,
    },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Run the headless node host in the foreground: connect to the gateway as a node and
    /// serve system.run, system.which and exec approvals.
    Run(node_run::RunArgs),
    /// Print the node host device identity (device id + public key)
    Identity(node_run::IdentityArgs),
}

#[derive(Subcommand)]
enum GatewayCommand {
    /// Run the gateway in the foreground.
    Run(gateway_run::RunArgs),
    /// Call one gateway RPC method and print its result.
    Call(operator::call::CallArgs),
    /// Fetch `health` from the gateway.
    Health(operator::health::HealthArgs),
    /// Connect and report whether the gateway is reachable, its version and our scopes.
    Status(operator::gateway_status::GatewayStatusArgs),
    /// Probe reachability, auth and capability (read/write/admin) of the gateway.
    Probe(operator::probe::ProbeArgs),
    /// Find gateways on this network through Bonjour (mDNS `_openclaw-gw._tcp`).
    Discover(operator::discover::DiscoverArgs),
    /// The gateway's TLS certificate: show its fingerprint, rotate it.
    Tls {
        #[command(subcommand)]
        command: gateway_tls::TlsCommand,
    },
    /// Install the gateway as a systemd user service (openclaw-gateway[-<profile>].service)
    /// running `clawgate gateway run`, enable and start it.
    Install(service::InstallArgs),
    /// Stop, disable and remove the gateway's systemd user service.
    Uninstall(service::ServiceArgs),
    /// Start the gateway's systemd user service.
    Start(service::ServiceArgs),
    /// Stop the gateway's systemd user service.
    Stop(service::ServiceArgs),
    /// Restart the gateway's systemd user service.
    Restart(service::ServiceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = clawgate_config::apply_cli_profile(cli.profile.as_deref(), cli.dev) {
        eprintln!("error: {e}");
        return ExitCode::from(output::EXIT_USAGE);
    }
    match cli.command {
        Command::Gateway { command } => match command {
            GatewayCommand::Run(args) => {
                // Every connection is a file descriptor, and the gateway's default connection
                // cap comes from this limit.
                clawgate_gateway::raise_fd_limit();
                gateway_run::run(args)
            }
            GatewayCommand::Call(args) => operator::call::run(args),
            GatewayCommand::Health(args) => operator::health::run(args),
            GatewayCommand::Status(args) => operator::gateway_status::run(args),
            GatewayCommand::Probe(args) => operator::probe::run(args),
            GatewayCommand::Discover(args) => operator::discover::run(args),
            GatewayCommand::Tls { command } => gateway_tls::run(command),
            GatewayCommand::Install(args) => service::install(args),
            GatewayCommand::Uninstall(args) => service::uninstall(args),
            GatewayCommand::Start(args) => service::start(args),
            GatewayCommand::Stop(args) => service::stop(args),
            GatewayCommand::Restart(args) => service::restart(args),
        },
        Command::Health(args) => operator::health::run(args),
        Command::Status(args) => operator::status::run(args),
        Command::Devices { command } => operator::devices::run(command),
        Command::Nodes { command } => operator::nodes::run(command),
        Command::Agent(args) => operator::agent::run(args),
        Command::Chat(args) => operator::chat::run(args),
        Command::Sessions { command } => operator::sessions::run(command),
        Command::Pairing { command } => operator::dm_pairing::run(command),
        Command::Node { command } => match command {
            NodeCommand::Run(args) => node_run::run(args),
            NodeCommand::Identity(args) => node_run::identity(args),
        },
        Command::Dashboard(args) => operator::dashboard::run(args),
        Command::Tunnel { command } => tunnel::run(command),
        Command::Doctor(args) => doctor::run(args),
        Command::Security { command } => security_audit::run(command),
    }
}
