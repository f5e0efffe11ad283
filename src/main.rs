//! The `ww` command line: a thin layer over the `ww` library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use libp2p::Multiaddr;
use ww::engine::{EngineConfig, default_cache_dir};
use ww::node::{Node, NodeConfig, NodeError};
use ww::pocket_ic::server::{ServerArgs, ServerError};

mod client;

/// Exit code for bad input (a missing layer, a broken component, a bad flag),
/// distinct from any guest's own exit code.
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(name = "ww", version, about = "Run Internet Computer canister logic off-chain as WASI components")]
struct Cli {
    /// More log output (-v debug, -vv trace). RUST_LOG overrides this.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot a node from one or more image layers and run its pid0.
    ///
    /// Layers merge per file, later layers win. The merged image must have
    /// bin/main.wasm (pid0); each svc/<name>/ is started as a service. ww
    /// exits with pid0's exit code, or 2 when the input is unusable.
    /// SIGHUP advances the session epoch; one SIGINT or SIGTERM stops the
    /// node (pid0, services and, with --serve, the serving; exit 130).
    Run(RunArgs),

    /// Resume a node from its state directory and serve it (the control
    /// socket for `ww call`, `ww canister`, `ww deploy`) without running an
    /// image, until Ctrl-C or SIGTERM.
    Serve(ServeArgs),

    /// Call a canister on a node serving with `ww run --serve`, like
    /// `dfx canister call`: Candid text in, Candid text out.
    ///
    /// The canister is a name from the node's registry or a canister id;
    /// the management canister is `aaaaa-aa`. A reject prints its code and
    /// message and exits 1.
    Call(CallArgs),

    /// Run a deployment image (a pipeline pid0, e.g. a new release of
    /// examples/images/ic-deploy) against a node serving with
    /// `ww run --serve`.
    ///
    /// The node merges the layers and boots the image as `ww run` would,
    /// but on its running replica: pid0 calls canisters as the node's admin
    /// identity. The image's log lines are printed here; ww exits with
    /// pid0's exit code, or 2 when the image is unusable.
    Deploy(DeployArgs),

    /// Manage the canisters of a node serving with `ww run --serve`.
    Canister {
        #[command(subcommand)]
        command: CanisterCommand,
        /// State directory of the node.
        #[arg(long, global = true, default_value = ".ww", value_name = "DIR")]
        state: PathBuf,
    },

    /// Serve the PocketIC server protocol, for tests written against the
    /// `pocket-ic` client crate (13.x).
    ///
    /// Point the client at ww with POCKET_IC_BIN=<path to a `pocket-ic`
    /// symlink to ww> (`make build` creates target/release/pocket-ic): run
    /// under a name starting with `pocket-ic`, ww takes the real server's
    /// command line. WW_POCKET_IC_VERSION (13 or 16) selects the version
    /// `--version` reports.
    PocketIc(PocketIcArgs),

    /// Deterministic simulation with fault injection: run a scenario over
    /// many seeds, replay or shrink a failing run.
    Sim {
        #[command(subcommand)]
        command: ww::sim::cli::SimCommand,
    },

    /// Run an unchanged pocket-ic test command once per seed against ww's
    /// PocketIC server with seeded faults; fails when any seed failed.
    Test(ww::sim::cli::TestArgs),

    /// Measure and print a benchmark table.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },

    /// Print the identity of a state directory (created if missing): its
    /// libp2p peer id (the name of its file under other images' boot/), then
    /// its admin principal.
    Id {
        /// State directory of the node.
        #[arg(long, default_value = ".ww", value_name = "DIR")]
        state: PathBuf,
    },
}

#[derive(clap::Args)]
struct PocketIcArgs {
    /// Print the server version line (`pocket-ic-server 13.0.0`) and exit.
    #[arg(long)]
    version: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// The command line when ww runs as `pocket-ic*` (the client starts it so):
/// the real PocketIC server's flags, no subcommand.
#[derive(Parser)]
#[command(name = "pocket-ic", disable_version_flag = true, about = "ww serving the PocketIC server protocol")]
struct PocketIcCli {
    /// More log output (-v debug, -vv trace). RUST_LOG overrides this.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(flatten)]
    args: PocketIcArgs,
}

#[derive(clap::Args)]
struct CallArgs {
    /// Canister name or id.
    canister: String,
    /// Method name.
    method: String,
    /// Arguments in Candid text, e.g. '(42, "text", record { a = 1 })'. Default: ().
    args: Option<String>,
    /// Read the Candid text arguments from FILE (`-`: standard input), for
    /// arguments too large for a command line.
    #[arg(long, value_name = "FILE", conflicts_with = "args")]
    argument_file: Option<PathBuf>,
    /// Make a query call (state changes are discarded). Default: a query
    /// call when the interface marks the method as a query, else an update.
    #[arg(long, conflicts_with = "update")]
    query: bool,
    /// Make an update call, also to a query method (it then runs replicated;
    /// its state changes are still discarded).
    #[arg(long)]
    update: bool,
    /// Call as the anonymous principal instead of the node's admin identity.
    #[arg(long)]
    anonymous: bool,
    /// Print the reply as hex bytes instead of Candid text.
    #[arg(long)]
    raw: bool,
    /// The canister's Candid interface (.did): arguments take the method's
    /// types and replies show field names. Default: the interface the
    /// canister's module carries (`icp:public candid:service`); built in for
    /// `aaaaa-aa`.
    #[arg(long, value_name = "FILE")]
    candid: Option<PathBuf>,
    /// State directory of the node.
    #[arg(long, default_value = ".ww", value_name = "DIR")]
    state: PathBuf,
}

#[derive(clap::Args)]
struct DeployArgs {
    /// Image layer directories, lowest first (on this machine: the node
    /// reads them from the same filesystem).
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// Arguments passed to the image's pid0 (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
    /// State directory of the node.
    #[arg(long, default_value = ".ww", value_name = "DIR")]
    state: PathBuf,
}

#[derive(Subcommand)]
enum CanisterCommand {
    /// Create an empty canister and name it, like `dfx canister create`.
    ///
    /// Calls `provisional_create_canister_with_cycles` (the node's admin
    /// identity is its controller) and names the new canister NAME in the
    /// node's registry; prints its id. A name already taken is an error
    /// (exit 2), and nothing is created.
    Create {
        /// The name (for `ww call NAME ...`): no whitespace, not a principal.
        name: String,
    },
    /// Install a module on a canister, like `dfx canister install`.
    ///
    /// The module is a ww-cdk component or an IC core module (`.wasm` or
    /// `.wasm.gz`). It goes as one `install_code` call, or, when the message
    /// would exceed the IC's 2 MiB ingress limit, in 1 MiB chunks
    /// (`upload_chunk`, `install_chunked_code`, `clear_chunk_store`). A
    /// reject (an invalid module, already installed) exits 1.
    Install(InstallArgs),
    /// List the node's canisters.
    List,
    /// Show one canister's status.
    Status { canister: String },
    /// Show a canister's status, memory and settings (`canister_status`).
    ///
    /// Everything `canister_status` tells a controller: status,
    /// controllers, module hash, memory (heap, stable, chunk store), cycles,
    /// version and settings.
    Info { canister: String },
    /// Print a canister's log (`fetch_canister_logs`).
    ///
    /// Its `debug_print` lines and trap messages, one per line as dfx
    /// prints them: `[<index>. <RFC 3339 UTC time>]: <content>`.
    Logs { canister: String },
    /// Start a stopped canister.
    Start { canister: String },
    /// Stop a canister (waits until it has no open calls).
    Stop { canister: String },
    /// Delete a stopped canister.
    Delete { canister: String },
    /// Remove a canister's code and state (`uninstall_code`): its module,
    /// heap, stable memory and timer; calls it has not answered are rejected.
    Uninstall { canister: String },
    /// Canister snapshots (`take/load/list/delete_canister_snapshot`).
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Take a snapshot of a canister: module, heap, stable memory, certified
    /// data, chunk store and timer; prints its id. At most 10 per canister.
    Take {
        canister: String,
        /// Replace this snapshot (hex id) instead of adding one.
        #[arg(long, value_name = "SNAPSHOT")]
        replace: Option<String>,
    },
    /// Load a snapshot into a stopped canister (its state goes back to it).
    Load { canister: String, snapshot: String },
    /// List a canister's snapshots: id, time taken, size.
    List { canister: String },
    /// Delete a snapshot.
    Delete { canister: String, snapshot: String },
}

#[derive(clap::Args)]
struct InstallArgs {
    /// Canister name or id.
    canister: String,
    /// The module: a `.wasm` or `.wasm.gz` file.
    module: PathBuf,
    /// The init (or post_upgrade) argument in Candid text, e.g.
    /// '(opt record { greeting = "hey" })'. Default: (). Typed by the
    /// module's interface (see --candid); untyped, with a warning, when
    /// none is known.
    #[arg(long, value_name = "CANDID", conflicts_with = "argument_file")]
    argument: Option<String>,
    /// Read the Candid text argument from FILE (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    argument_file: Option<PathBuf>,
    /// The module's Candid interface (a `.did` file) to type the argument
    /// with. Default: the interface the module declares (its
    /// `candid:service` section, or ic-cdk's `get_candid_pointer`).
    #[arg(long, value_name = "FILE")]
    candid: Option<PathBuf>,
    /// install (an empty canister), reinstall (start over) or upgrade
    /// (pre_upgrade, then post_upgrade; stable memory kept).
    #[arg(long, value_enum, default_value = "install")]
    mode: InstallModeArg,
    /// With --mode upgrade: keep the Wasm heap (Motoko's enhanced
    /// orthogonal persistence) or replace it (the default).
    #[arg(long, value_enum)]
    wasm_memory_persistence: Option<PersistenceArg>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum InstallModeArg {
    Install,
    Reinstall,
    Upgrade,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PersistenceArg {
    Keep,
    Replace,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Image layer directories, lowest first.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,

    /// Arguments passed to pid0 (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,

    #[command(flatten)]
    node: NodeArgs,

    /// Keep the node serving after pid0 exits, until Ctrl-C or SIGTERM (a
    /// signal while pid0 still runs stops both).
    #[arg(long)]
    serve: bool,

    /// State directory: the replica's whole state (restored at start;
    /// every acknowledged call is on disk), the admin identity and the
    /// control socket (`control.sock`). Without it the replica lives in
    /// memory only; `--serve` then keeps the identity and socket in `.ww`.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The messaging throughput table (BENCHMARKS.md): a probe canister A
    /// calling B's `pong`, one-way, request and reply, composite queries
    /// and fan-out, on one node and across two nodes over loopback TCP, and
    /// what a caller sees past 500 outstanding calls. Prints Markdown.
    Messaging {
        /// The probe canister (built by `make guests`).
        #[arg(long, value_name = "WASM", default_value = "guests/target/wasm32-wasip2/release/probe.wasm")]
        probe: PathBuf,
        /// Messages per row.
        #[arg(long, value_name = "N", default_value_t = 20_000)]
        calls: u32,
    },
}

async fn bench_messaging(probe: PathBuf, calls: u32) -> anyhow::Result<i32> {
    let wasm = std::fs::read(&probe).with_context(|| format!("{}: the probe canister (build it with `make guests`)", probe.display()))?;
    let report = ww::bench::messaging(&wasm, calls.max(100), default_cache_dir()).await?;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "an unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    print!("{}", report.markdown(&format!("{cores} vCPU {cpu}")));
    Ok(0)
}

/// How a node runs (shared by `run` and `serve`).
#[derive(clap::Args)]
struct NodeArgs {
    /// Listen for peers on this multiaddr (repeatable). Without it the node
    /// opens no sockets.
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<Multiaddr>,

    /// Trust this peer (repeatable): it may connect and call this node's
    /// canisters. The image's boot/ peers and etc/peers are trusted too.
    #[arg(long, value_name = "PEER_ID")]
    trust: Vec<libp2p::PeerId>,

    /// Directory of the compile cache.
    #[arg(long, env = "WW_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Do not read or write the on-disk compile cache.
    #[arg(long)]
    no_cache: bool,

    /// Linear memory limit per guest instance, in MiB. Children get at most
    /// their parent's limit.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    memory_limit: usize,

    /// Worker threads for guests (default: one per core).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,

    #[command(flatten)]
    http: HttpArgs,

    #[command(flatten)]
    outcalls: OutcallArgs,

    /// How canisters pay: `normal` (the IC's fee schedule for a 13-node
    /// application subnet: executions, calls, ingress, memory over time,
    /// creation; the freezing threshold applies) or `free` (nothing is
    /// charged, as PocketIC's `cost_schedule: Free`).
    #[arg(long, value_name = "SCHEDULE", default_value = "normal", value_parser = parse_cycles)]
    cycles: ww::replica::cycles::CostSchedule,
}

fn parse_cycles(s: &str) -> Result<ww::replica::cycles::CostSchedule, String> {
    s.parse()
}

/// Canisters' HTTPS outcalls (`http_request`): no host is reached unless
/// named.
#[derive(clap::Args, Clone)]
struct OutcallArgs {
    /// Let canisters' outcalls reach this host (repeatable): `HOST` (any
    /// port), `HOST:PORT`, or `*` for any host. Plain `http://` is accepted
    /// for allowed hosts. Kept in the state directory for later runs.
    #[arg(long, value_name = "HOST")]
    allow_outcalls: Vec<String>,

    /// Forget the hosts a state directory allows (outcalls are refused).
    #[arg(long, conflicts_with = "allow_outcalls")]
    no_outcalls: bool,

    /// How long an outcall waits for the remote server, seconds (the IC: 30).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    outcall_timeout_secs: u64,
}

/// The IC's HTTP interface (off unless asked for).
#[derive(clap::Args, Clone)]
struct HttpArgs {
    /// Serve the IC's public HTTP interface (agents, icp-cli, frontends) on
    /// this address: `HOST:PORT`, or a port alone for 127.0.0.1 (0 picks a
    /// free port). The URL is logged and written to `<state>/http.url`.
    #[arg(long, value_name = "ADDR", value_parser = parse_http_addr)]
    http: Option<std::net::SocketAddr>,

    /// How long a synchronous call (`/api/v3|v4/.../call`) waits for its
    /// answer before answering 202 (the agent then polls), milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    http_sync_wait_ms: u64,
}

fn parse_http_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse().map_err(|e| format!("{text:?} is not HOST:PORT or a port: {e}"))
}

/// Starts the HTTP interface of `node` when `args` ask for it, writing its
/// URL to `state_dir/http.url`.
async fn serve_http(node: &Node, args: &HttpArgs, state_dir: Option<&std::path::Path>) -> anyhow::Result<Option<ww::http::HttpServer>> {
    let Some(addr) = args.http else {
        return Ok(None);
    };
    let config = ww::http::HttpConfig { sync_wait: std::time::Duration::from_millis(args.http_sync_wait_ms) };
    let server = ww::http::HttpServer::bind(addr, ww::http::router(node.certified().clone(), config))
        .await
        .with_context(|| format!("--http {addr}: cannot listen"))?;
    if let Some(dir) = state_dir {
        let path = dir.join("http.url");
        let tmp = dir.join("http.url.tmp");
        std::fs::write(&tmp, format!("{}\n", server.url()))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln_url(&server.url(), node);
    Ok(Some(server))
}

/// The file in a state directory that keeps the hosts outcalls may reach.
const OUTCALLS_FILE: &str = "outcalls.allow";

/// Lets `node`'s canisters make outcalls to the hosts `args` (or the state
/// directory, from an earlier run) allow; the rest are refused.
fn enable_outcalls(node: &Node, args: &OutcallArgs, state_dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    let saved = state_dir.map(|d| d.join(OUTCALLS_FILE));
    let hosts: Vec<String> = if args.no_outcalls {
        if let Some(path) = &saved
            && path.exists()
        {
            std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        }
        Vec::new()
    } else if !args.allow_outcalls.is_empty() {
        if let Some(path) = &saved {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, args.allow_outcalls.join("\n") + "\n")
                .and_then(|()| std::fs::rename(&tmp, path))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        args.allow_outcalls.clone()
    } else {
        match &saved {
            Some(path) if path.exists() => std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        }
    };
    let allow = ww::outcalls::live::AllowList::new(&hosts);
    if !allow.is_empty() {
        tracing::info!(hosts = %hosts.join(","), "canister outcalls may reach these hosts");
    }
    let timeout = std::time::Duration::from_secs(args.outcall_timeout_secs.max(1));
    let adapter = ww::outcalls::live::LiveAdapter::new(allow, timeout).context("setting up the HTTPS client for outcalls")?;
    node.replica().set_outcalls(std::sync::Arc::new(adapter), tokio::runtime::Handle::current());
    Ok(())
}

fn eprintln_url(url: &str, node: &Node) {
    report(format_args!("ww: the IC HTTP interface is at {url} (root key {})", hex::encode(node.certified().root_key())));
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The state directory to resume (created if new): the replica, the
    /// admin identity and the control socket.
    #[arg(long, required = true, value_name = "DIR")]
    state: PathBuf,

    #[command(flatten)]
    node: NodeArgs,
}

/// A binary file name that makes ww the PocketIC server (a `pocket-ic`
/// symlink to ww).
const POCKET_IC_NAME_PREFIX: &str = "pocket-ic";

fn main() -> ExitCode {
    if invoked_as_pocket_ic() {
        let cli = PocketIcCli::parse();
        return pocket_ic(cli.args, cli.verbose);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::PocketIc(args) => pocket_ic(args, cli.verbose),
        command @ (Command::Sim { .. } | Command::Test(_)) => {
            // Canisters' own log lines would drown the timeline: warnings
            // only unless -v.
            // The simulated network's restarts are in the timeline; the
            // network layer's warnings about them would only be noise.
            init_tracing_with(if cli.verbose == 0 { "ww=warn,ww::net=error" } else { tracing_default(cli.verbose) });
            let result = match command {
                Command::Sim { command } => ww::sim::cli::main(command),
                Command::Test(args) => ww::sim::cli::test(args),
                _ => unreachable!("matched above"),
            };
            match result {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    report(format_args!("ww: error: {e}"));
                    ExitCode::from(EXIT_USAGE)
                }
            }
        }
        _ => ww_main(cli),
    }
}

fn invoked_as_pocket_ic() -> bool {
    std::env::args_os().next().is_some_and(|arg0| {
        std::path::Path::new(&arg0)
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(POCKET_IC_NAME_PREFIX))
    })
}

/// `ww pocket-ic`, or ww run as `pocket-ic`: print the version line, or
/// serve until idle.
fn pocket_ic(args: PocketIcArgs, verbose: u8) -> ExitCode {
    if args.version {
        // The client runs `--version` before every server start: print and
        // exit before anything else starts.
        return match ww::pocket_ic::server::version_line() {
            Ok(line) => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                match out.write_all(format!("{line}\n").as_bytes()).and_then(|()| out.flush()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(_) => ExitCode::FAILURE,
                }
            }
            Err(e) => {
                report(format_args!("ww: error: {e}"));
                ExitCode::from(EXIT_USAGE)
            }
        };
    }
    init_tracing(verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            report(format_args!("ww: error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(ww::pocket_ic::serve(args.server));
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(format_args!("ww: error: {e}"));
            match e {
                // What the command line named: the address, the port file, the version.
                ServerError::NotLoopback { .. }
                | ServerError::Version { .. }
                | ServerError::CreatePortFile { .. }
                | ServerError::WritePortFile { .. }
                | ServerError::Bind { .. } => ExitCode::from(EXIT_USAGE),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn ww_main(cli: Cli) -> ExitCode {
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            report(format_args!("ww: error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Serve(args) => serve(args).await,
            Command::Call(args) => client::call(args).await,
            Command::Deploy(args) => client::deploy(args).await,
            Command::Canister { command, state } => client::canister(command, state).await,
            Command::PocketIc(_) | Command::Sim { .. } | Command::Test(_) => {
                unreachable!("main runs `ww pocket-ic`, `ww sim` and `ww test` without this runtime")
            }
            Command::Bench { command: BenchCommand::Messaging { probe, calls } } => bench_messaging(probe, calls).await,
            Command::Id { state } => {
                let id = ww::identity::load_or_create(&state).map_err(NodeError::from)?;
                use std::io::Write;
                // A closed stdout (`ww id | head -1`) is not an error.
                let _ = writeln!(std::io::stdout(), "{}\n{}", id.peer_id(), id.admin);
                Ok(0)
            }
        }
    });
    // Guests may still be unwinding on worker threads; do not wait for them.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
        Err(e) => {
            report(format_args!("ww: error: {}", one_line(&e)));
            if is_input_error(&e) {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn node_config(args: NodeArgs) -> NodeConfig {
    let mut config = NodeConfig {
        engine: EngineConfig {
            cache_dir: if args.no_cache {
                None
            } else {
                args.cache_dir.or_else(default_cache_dir)
            },
            ..EngineConfig::default()
        },
        memory_limit: args.memory_limit.saturating_mul(1 << 20),
        listen: args.listen,
        trusted: args.trust,
        ..NodeConfig::default()
    };
    if let Some(n) = args.workers {
        config.workers = n.max(1);
    }
    for subnet in &mut config.replica.subnets {
        subnet.cost_schedule = args.cycles;
    }
    config
}

async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let http = args.node.http.clone();
    let outcalls = args.node.outcalls.clone();
    let mut config = node_config(args.node);
    // Install the handlers before anything boots: a signal that arrives while
    // pid0 is starting must not take the default action (kill without cleanup).
    let mut shutdown = ShutdownSignals::install()?;
    config.durable = args.state.is_some();
    let state_dir = args.state.or_else(|| args.serve.then(|| PathBuf::from(".ww")));
    config.state_dir = state_dir.clone();
    let image = ww::image::merge_layers(&args.images).map_err(NodeError::from)?;
    config.boot = image.boot_peers().map_err(NodeError::from)?;
    config.trusted.extend(image.trusted_peers().map_err(NodeError::from)?);
    config.canister_range = image.canister_range().map_err(NodeError::from)?;
    let node = Node::start(config).await?;
    enable_outcalls(&node, &outcalls, state_dir.as_deref())?;
    spawn_epoch_on_sighup(node.clone())?;
    let control = match &state_dir {
        Some(dir) => Some(ww::control::serve(node.clone(), dir)?),
        None => None,
    };
    let http = serve_http(&node, &http, state_dir.as_deref()).await?;
    // One SIGINT or SIGTERM stops the whole node: pid0 first (it is killed),
    // then, with --serve, the serving too; no second signal is needed.
    let mut signalled = false;
    let interrupt = async {
        shutdown.recv().await;
        signalled = true;
    };
    let code = node.run_image(&image, args.args, interrupt).await?;
    if let Some(control) = &control
        && args.serve
        && !signalled
    {
        tracing::info!(socket = %control.path().display(), "pid0 exited with {code}; serving until Ctrl-C or SIGTERM");
        shutdown.recv().await;
        tracing::info!("shutting down");
    }
    drop(http);
    drop(control);
    final_cut(&node).await;
    Ok(code)
}

/// `ww serve --state DIR`: the node of a state directory, no image.
async fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    let http = args.node.http.clone();
    let outcalls = args.node.outcalls.clone();
    let mut config = node_config(args.node);
    let mut shutdown = ShutdownSignals::install()?;
    config.durable = true;
    config.state_dir = Some(args.state.clone());
    let node = Node::start(config).await?;
    enable_outcalls(&node, &outcalls, Some(&args.state))?;
    spawn_epoch_on_sighup(node.clone())?;
    let control = ww::control::serve(node.clone(), &args.state)?;
    let http = serve_http(&node, &http, Some(&args.state)).await?;
    tracing::info!(socket = %control.path().display(), canisters = node.replica().canister_ids().len(), "serving until Ctrl-C or SIGTERM");
    shutdown.recv().await;
    tracing::info!("shutting down");
    drop(http);
    drop(control);
    final_cut(&node).await;
    Ok(0)
}

/// Writes what the replica did last (a replica with a state directory).
async fn final_cut(node: &Node) {
    if node.replica().is_durable()
        && let Err(why) = node.replica().persisted().await
    {
        tracing::error!(error = %why, "the last state could not be written");
    }
}

/// SIGHUP advances the node's session epoch.
fn spawn_epoch_on_sighup(node: Node) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            node.advance_epoch();
        }
    });
    Ok(())
}

/// SIGINT and SIGTERM, installed once at startup.
struct ShutdownSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Resolves on the next SIGINT or SIGTERM.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

fn is_input_error(e: &anyhow::Error) -> bool {
    use ww::engine::LoadError;
    if e.downcast_ref::<ww::control::ControlError>().is_some() || e.downcast_ref::<client::UsageError>().is_some() {
        return true;
    }
    match e.downcast_ref::<NodeError>() {
        Some(NodeError::Image(_) | NodeError::Net(_) | NodeError::Spawn(_) | NodeError::Identity(_) | NodeError::StateDir(_)) => true,
        Some(NodeError::Load(LoadError::Engine(_)) | NodeError::Replica(_)) => false,
        Some(NodeError::Load(_)) => true,
        None => false,
    }
}

/// Writes an error line to stderr; a closed stderr loses the line, never
/// the exit code (`eprintln!` would panic).
fn report(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(line).and_then(|()| err.write_all(b"\n"));
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn init_tracing(verbose: u8) {
    init_tracing_with(tracing_default(verbose));
}

fn tracing_default(verbose: u8) -> &'static str {
    match verbose {
        0 => "ww=info",
        1 => "ww=debug",
        _ => "ww=trace",
    }
}

fn init_tracing_with(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none())
        .with_target(false)
        // A closed stderr (`ww run ... 2>&1 | head`) must not turn into a
        // panic inside whatever thread logged: drop the record instead.
        .log_internal_errors(false)
        .try_init();
}
