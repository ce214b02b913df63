//! `clawgate-bench`: runs the suite against clawgate and the real OpenClaw gateway (`run`), or
//! renders a saved results file again (`report`). `bench/run` is the one command to use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Instant, SystemTime};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use clawgate_bench::gateway::{Kind, Launcher};
use clawgate_bench::report::{self, Results};
use clawgate_bench::suite::{self, GatewayRun, Plan};
use clawgate_bench::{svg, sys};

#[derive(Parser)]
#[command(name = "clawgate-bench", about = "clawgate vs OpenClaw benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the suite (normally through bench/run, inside a loopback-only network namespace).
    Run(RunArgs),
    /// Print the table of a results file again, and optionally write its chart and update the docs.
    Report(ReportArgs),
    /// Open COUNT idle authenticated connections to a running gateway and hold them (for
    /// profiling a gateway by hand, e.g. under a heap profiler).
    Hold(HoldArgs),
    /// Run only the agent turns (item 10) against one gateway and print its rows (for
    /// profiling a gateway's chat turn by hand; inside a loopback-only network namespace).
    Agent(AgentArgs),
    /// Run only the Telegram turns (item 11) against one gateway and print its rows.
    Telegram(AgentArgs),
}

#[derive(clap::Args)]
struct AgentArgs {
    /// The gateway to start: clawgate or openclaw.
    #[arg(long, value_enum)]
    gateway: Only,
    /// Its binary (clawgate, or the OpenClaw CLI).
    #[arg(long)]
    bin: PathBuf,
    /// The OpenClaw CLI whose `node run` is the node host.
    #[arg(long)]
    openclaw: PathBuf,
    /// Fewer turns, as `run --quick`.
    #[arg(long)]
    quick: bool,
}

#[derive(clap::Args)]
struct HoldArgs {
    /// The gateway, e.g. 127.0.0.1:18789.
    #[arg(long)]
    addr: std::net::SocketAddr,
    #[arg(long)]
    token: String,
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// How long to hold them once open.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    Clawgate,
    Openclaw,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The clawgate binary to benchmark.
    #[arg(long)]
    clawgate: Option<PathBuf>,
    /// The OpenClaw CLI (the launcher scripts/setup-openclaw writes).
    #[arg(long)]
    openclaw: Option<PathBuf>,
    /// OpenClaw's installed package tree (for the install footprint).
    #[arg(long)]
    openclaw_tree: Option<PathBuf>,
    /// The Node binary OpenClaw runs on (reported, not counted in the footprint).
    #[arg(long)]
    node: Option<PathBuf>,
    /// Fewer iterations, 5 s idle instead of 30 s, no 10,000-connection level.
    #[arg(long)]
    quick: bool,
    /// Threads of the load client's runtime. 1 (a single-threaded runtime) leaves the other
    /// core to the gateway and costs the least CPU per request on a 2-core machine.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Benchmark one gateway only.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Where results (<date>.json, .svg, .md) go.
    #[arg(long, default_value = "bench/results")]
    out_dir: PathBuf,
    /// The command line recorded in the results.
    #[arg(long, default_value = "clawgate-bench run")]
    command: String,
    /// The cargo profile clawgate was built with (recorded).
    #[arg(long, default_value = "unknown")]
    profile: String,
    #[command(flatten)]
    publish: Publish,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// A results file written by `run`.
    json: PathBuf,
    /// Also write the chart here.
    #[arg(long)]
    svg: Option<PathBuf>,
    #[command(flatten)]
    publish: Publish,
}

#[derive(clap::Args)]
struct Publish {
    /// Replace the marked results section of this markdown file (docs/benchmarks.md).
    #[arg(long)]
    update_doc: Option<PathBuf>,
    /// The chart the updated doc shows (default: benchmarks.svg beside the doc).
    #[arg(long)]
    doc_svg: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run(args) => run(args),
        Cmd::Report(args) => report_again(args),
        Cmd::Hold(args) => hold(args),
        Cmd::Agent(args) => section(args, suite::agent_section),
        Cmd::Telegram(args) => section(args, suite::telegram_section),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clawgate-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn random_token() -> String {
    use rand_core::RngCore as _;
    let mut bytes = [0u8; 24];
    rand_core::OsRng.fill_bytes(&mut bytes);
    clawgate_protocol::device::hex(&bytes)
}

fn node_version(node: &Path) -> Option<String> {
    let out = Command::new(node).arg("--version").output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = SystemTime::now();
    let t0 = Instant::now();
    let load0 = sys::cpu_busy_seconds();
    let (date, stamp) = sys::utc_stamp(started);
    let rt = if args.client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.client_threads)
            .enable_all()
            .build()?
    };
    let token = random_token();
    let want = |k: Only| args.only.is_none_or(|o| o == k);
    let mut notes = Vec::new();
    let mut bench = |kind: Kind, bin: &Option<PathBuf>| -> anyhow::Result<Option<GatewayRun>> {
        let wanted = want(match kind {
            Kind::Clawgate => Only::Clawgate,
            Kind::OpenClaw => Only::Openclaw,
        });
        if !wanted {
            return Ok(None);
        }
        let bin = bin.clone().with_context(|| {
            format!("--{} is required to benchmark {}", kind.key(), kind.label())
        })?;
        // Gateways and CLIs run from their private homes: the path must not be relative.
        let bin =
            std::fs::canonicalize(&bin).with_context(|| format!("{} not found", bin.display()))?;
        let launcher = Launcher {
            kind,
            bin,
            token: token.clone(),
        };
        let plan = Plan::new(kind, args.quick);
        eprintln!("== {} ({:?})", kind.label(), plan);
        let node_host = match &args.openclaw {
            Some(p) => Some(
                std::fs::canonicalize(p).with_context(|| format!("{} not found", p.display()))?,
            ),
            None => None,
        };
        let mut run = suite::bench_gateway(&launcher, node_host.as_deref(), &plan, &rt);
        notes.append(&mut run.notes);
        Ok(Some(run))
    };
    let mut cg = bench(Kind::Clawgate, &args.clawgate)?;
    let mut oc = bench(Kind::OpenClaw, &args.openclaw)?;
    let mut versions = BTreeMap::new();
    for (k, r) in [("clawgate", &cg), ("openclaw", &oc)] {
        // `--version` prints "clawgate 0.1.0" or "OpenClaw 2026.9.6 (eb377ac)": keep the version.
        let line = r.as_ref().and_then(|r| r.version.as_deref());
        if let Some(line) = line {
            let v = line
                .split_whitespace()
                .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
                .unwrap_or(line);
            versions.insert(k.to_owned(), v.to_owned());
        }
    }
    if let Some(v) = args.node.as_deref().and_then(node_version) {
        versions.insert("node".into(), v);
    }
    let fp = suite::footprint(
        args.clawgate.as_deref().filter(|_| want(Only::Clawgate)),
        args.openclaw_tree
            .as_deref()
            .filter(|_| want(Only::Openclaw)),
        args.node.as_ref(),
        &mut notes,
    );
    let idle = Plan::new(Kind::Clawgate, args.quick).idle;
    let rows = suite::rows(cg.as_mut(), oc.as_mut(), fp, args.quick, idle);
    if let (Some(a), Some(b)) = (load0, sys::cpu_busy_seconds()) {
        // Busy CPU time of the whole machine minus this run's own (client, gateways, CLIs).
        let ours = sys::own_and_children_cpu_seconds();
        let other = (b - a - ours).max(0.0) / t0.elapsed().as_secs_f64();
        notes.push(format!(
            "Other processes on this shared machine kept {:.2} of its {} cores busy on average during the run",
            other,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ));
    }
    notes.push(
        "Cells show the median with min–max over the runs or rounds counted in the last column; \
         latency percentiles are per round. 1 kB = 1,000 B, 1 MB = 10⁶ B."
            .into(),
    );
    notes.push(
        "Agent turn: each gateway runs on its own start with the same config (a local mock \
         model speaking the OpenAI chat completions format, answering every request at once, \
         and tools.exec.notifyOnExit false), and the same node host, the real `openclaw node \
         run` of the reference install; each turn is one `chat.send` on one operator \
         connection, the model's tool call `exec {command: \"true\", host: \"node\"}`, the \
         command on the node, the follow-up model request and its short text reply, timed \
         until the run's `chat` final. The figure is the gateway's own work plus the node \
         host's round trip."
            .into(),
    );
    notes.push(
        "Both gateways and the client share the same 2 cores (the client's own cost is included); \
         the gateways run one after the other, never at once."
            .into(),
    );
    let results = Results {
        date: date.clone(),
        started: stamp,
        command: args.command.clone(),
        mode: if args.quick { "quick" } else { "default" }.into(),
        profile: args.profile.clone(),
        duration_s: t0.elapsed().as_secs_f64(),
        machine: sys::machine(),
        versions,
        rows,
        notes,
    };
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let stem = if args.quick {
        format!("{date}-quick")
    } else {
        date
    };
    let json_path = args.out_dir.join(format!("{stem}.json"));
    let svg_path = args.out_dir.join(format!("{stem}.svg"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)? + "\n")?;
    std::fs::write(&svg_path, svg::chart(&results))?;
    let svg_name = svg_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let md = report::markdown_report(&results, svg_name.as_deref());
    std::fs::write(args.out_dir.join(format!("{stem}.md")), &md)?;
    println!("{md}");
    eprintln!(
        "results: {} (chart {}), {:.0} s",
        json_path.display(),
        svg_path.display(),
        results.duration_s
    );
    publish(&results, &args.publish)
}

/// One section against one gateway, its rows printed.
fn section(
    args: AgentArgs,
    run_section: fn(&Launcher, Option<&Path>, &Plan, &tokio::runtime::Runtime, &mut GatewayRun),
) -> anyhow::Result<()> {
    let kind = match args.gateway {
        Only::Clawgate => Kind::Clawgate,
        Only::Openclaw => Kind::OpenClaw,
    };
    let canonical =
        |p: &Path| std::fs::canonicalize(p).with_context(|| format!("{} not found", p.display()));
    let launcher = Launcher {
        kind,
        bin: canonical(&args.bin)?,
        token: random_token(),
    };
    let node_host = canonical(&args.openclaw)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut run = GatewayRun::default();
    let plan = Plan::new(kind, args.quick);
    run_section(&launcher, Some(&node_host), &plan, &rt, &mut run);
    for (id, cell) in &run.cells {
        println!("{id}: {}", serde_json::to_string(cell)?);
    }
    for note in &run.notes {
        println!("note: {note}");
    }
    Ok(())
}

fn hold(args: HoldArgs) -> anyhow::Result<()> {
    use clawgate_bench::ws::{Auth, Conn};
    use futures_util::StreamExt as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let t = Instant::now();
        let token = args.token.as_str();
        let conns: Vec<_> = futures_util::stream::iter(0..args.count)
            .map(|_| Conn::open(args.addr, Auth::Token(token), None))
            .buffer_unordered(32)
            .collect()
            .await;
        let failed = conns.iter().filter(|c| c.is_err()).count();
        eprintln!(
            "{} open, {failed} failed, in {:.2} s; holding for {} s",
            conns.len() - failed,
            t.elapsed().as_secs_f64(),
            args.seconds
        );
        tokio::time::sleep(std::time::Duration::from_secs(args.seconds)).await;
        drop(conns);
    });
    Ok(())
}

fn report_again(args: ReportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.json)
        .with_context(|| format!("reading {}", args.json.display()))?;
    let results: Results = serde_json::from_str(&text)?;
    if let Some(svg_path) = &args.svg {
        std::fs::write(svg_path, svg::chart(&results))?;
    }
    println!("{}", report::markdown_report(&results, None));
    publish(&results, &args.publish)
}

/// Writes the chart beside the doc and replaces the doc's marked results section.
fn publish(results: &Results, p: &Publish) -> anyhow::Result<()> {
    let Some(doc) = &p.update_doc else {
        return Ok(());
    };
    let dir = doc.parent().unwrap_or(Path::new("."));
    let svg_path = p
        .doc_svg
        .clone()
        .unwrap_or_else(|| dir.join("benchmarks.svg"));
    std::fs::write(&svg_path, svg::chart(results))?;
    let link = svg_path
        .strip_prefix(dir)
        .unwrap_or(&svg_path)
        .to_string_lossy()
        .into_owned();
    let text =
        std::fs::read_to_string(doc).with_context(|| format!("reading {}", doc.display()))?;
    let updated = report::splice(&text, &report::markdown_report(results, Some(&link)))
        .with_context(|| {
            format!(
                "{} has no <!-- bench-results:begin --> / <!-- bench-results:end --> markers",
                doc.display()
            )
        })?;
    std::fs::write(doc, updated)?;
    eprintln!("updated {} and {}", doc.display(), svg_path.display());
    Ok(())
}
