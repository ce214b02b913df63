//! The connection flags every operator command shares, and the exit codes its `--help` ends
//! with.

use clap::Args;
use clawgate_client::DeviceAuthMode;
use std::path::PathBuf;

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
