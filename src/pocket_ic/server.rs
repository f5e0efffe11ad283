//! The PocketIC server's process protocol: the command line the client
//! starts it with, the port file, the HTTP listener and when to exit.
//!
//! The client (`pocket-ic` 13.x) runs `<bin> --version` and checks the line
//! ([`version_line`]), then spawns `<bin> [--ttl N] [--hard-ttl N]
//! --port-file P` on every `PocketIc::new()` and polls P until it holds
//! `"<port>\n"`. So [`run`]:
//!
//! - creates the port file exclusively (O_EXCL); when it already exists
//!   another server owns it and this one returns at once, leaving it alone;
//! - binds a loopback address (nothing else is allowed), writes the port and
//!   serves the router over HTTP/1.1 (keep-alive, concurrent requests,
//!   uncompressed responses);
//! - exits when idle (no request in flight and none for `--ttl` seconds),
//!   at `--hard-ttl` seconds after launch, or on SIGINT/SIGTERM, removing the
//!   port file before it stops serving.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::ListenerExt;
use tokio::time::Instant;

/// The server name the client checks in the `--version` line.
pub const SERVER_NAME: &str = "pocket-ic-server";
/// Selects the reported server version: `13`, `16`, or a full version
/// whose major is one of those (`13.0.0`, `16.1.0`). Unset or empty: 13.0.0.
pub const VERSION_ENV: &str = "WW_POCKET_IC_VERSION";
/// The version reported for each supported client major when only the
/// major is given (the client checks `>=M.0.0, <M+1`).
pub const SUPPORTED_VERSIONS: [ServerVersion; 2] =
    [ServerVersion { major: 13, minor: 0, patch: 0 }, ServerVersion { major: 16, minor: 1, patch: 0 }];
/// The version reported when [`VERSION_ENV`] is unset.
pub const DEFAULT_VERSION: ServerVersion = SUPPORTED_VERSIONS[0];

/// `--ttl` default, as the real server's: seconds without a request before
/// an idle server exits.
pub const DEFAULT_TTL_SECS: u64 = 60;
/// `--ip-addr` default.
pub const DEFAULT_IP_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Request bodies up to this size are accepted (modules and stable memory
/// travel as base64 in JSON).
pub const MAX_REQUEST_BODY_BYTES: usize = 1 << 30;
/// How long requests still in flight at shutdown may take to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The longest the idle watch sleeps between looks while a request is in
/// flight.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// The server's command line: the real server's flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ServerArgs {
    /// Create FILE exclusively and write the listening port to it ("<port>\n").
    /// When FILE already exists another server owns it: exit at once.
    #[arg(long, value_name = "FILE")]
    pub port_file: Option<PathBuf>,

    /// Exit after SECS seconds without a request (none in flight).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TTL_SECS)]
    pub ttl: u64,

    /// Exit SECS seconds after launch, busy or not.
    #[arg(long, value_name = "SECS")]
    pub hard_ttl: Option<u64>,

    /// Address to listen on: loopback only (127.0.0.0/8 or ::1).
    #[arg(long, value_name = "IP", default_value_t = DEFAULT_IP_ADDR)]
    pub ip_addr: IpAddr,

    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,

    /// The real server's log filter; accepted and ignored (ww's logs follow
    /// RUST_LOG).
    #[arg(long, value_name = "LEVELS")]
    pub log_levels: Option<String>,
}

impl Default for ServerArgs {
    fn default() -> Self {
        Self { port_file: None, ttl: DEFAULT_TTL_SECS, hard_ttl: None, ip_addr: DEFAULT_IP_ADDR, port: 0, log_levels: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot set up the canister engine: {0}")]
    Engine(String),
    #[error("{addr}: not a loopback address; ww's PocketIC server listens on loopback only (127.0.0.0/8, ::1)")]
    NotLoopback { addr: IpAddr },
    #[error("{path}: cannot create the port file: {source}")]
    CreatePortFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot write the port file: {source}")]
    WritePortFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: cannot listen: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: the HTTP server failed: {source}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{VERSION_ENV}={value:?}: {reason} (use 13, 16, or a version such as 13.0.0 or 16.1.0)")]
    Version { value: String, reason: &'static str },
}

/// A server version `major.minor.patch` (no pre-release, no build metadata).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl ServerVersion {
    /// Parses a [`VERSION_ENV`] value: a supported major alone, or
    /// `major.minor.patch` with a supported major.
    pub fn parse(value: &str) -> Result<Self, ServerError> {
        let bad = |reason| ServerError::Version { value: value.to_owned(), reason };
        let number = |part: &str| -> Result<u64, ServerError> {
            let plain = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) && (part == "0" || !part.starts_with('0'));
            if !plain {
                return Err(bad("not a version number"));
            }
            part.parse().map_err(|_| bad("not a version number"))
        };
        let parts: Vec<&str> = value.split('.').collect();
        let version = match parts.as_slice() {
            [major] => {
                let major = number(major)?;
                return SUPPORTED_VERSIONS.iter().find(|v| v.major == major).copied().ok_or_else(|| bad("unsupported major version"));
            }
            [major, minor, patch] => Self { major: number(major)?, minor: number(minor)?, patch: number(patch)? },
            _ => return Err(bad("not a version number")),
        };
        if !SUPPORTED_VERSIONS.iter().any(|v| v.major == version.major) {
            return Err(bad("unsupported major version"));
        }
        Ok(version)
    }

    /// The version [`VERSION_ENV`] selects (unset or empty: [`DEFAULT_VERSION`]).
    pub fn from_env() -> Result<Self, ServerError> {
        match std::env::var(VERSION_ENV) {
            Ok(value) if !value.is_empty() => Self::parse(&value),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(DEFAULT_VERSION),
            Err(std::env::VarError::NotUnicode(value)) => {
                Err(ServerError::Version { value: value.to_string_lossy().into_owned(), reason: "not UTF-8" })
            }
        }
    }
}

/// The `--version` line without its newline, e.g. `pocket-ic-server 13.0.0`.
pub fn version_line_for(version: ServerVersion) -> String {
    format!("{SERVER_NAME} {version}")
}

/// The `--version` line for the version [`VERSION_ENV`] selects.
pub fn version_line() -> Result<String, ServerError> {
    ServerVersion::from_env().map(version_line_for)
}

/// Serves `router` until SIGINT or SIGTERM, or until idle or past the hard
/// TTL (see the module doc). `on_exit` runs once, after serving has stopped
/// (on every path, also when another server owns the port file).
pub async fn run(args: ServerArgs, router: axum::Router, on_exit: impl FnOnce()) -> Result<(), ServerError> {
    let signals = match shutdown_signals() {
        Ok(signals) => signals,
        Err(e) => {
            on_exit();
            return Err(e);
        }
    };
    run_until(args, router, on_exit, signals).await
}

/// [`run`] with `stop` in place of the signals: the server also exits when
/// `stop` completes.
pub async fn run_until(
    args: ServerArgs,
    router: axum::Router,
    on_exit: impl FnOnce(),
    stop: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let result = serve(args, router, stop).await;
    on_exit();
    result
}

/// Why the server stopped.
#[derive(Debug)]
enum Exit {
    Idle,
    HardTtl,
    Stopped,
    ServerEnded(Result<std::io::Result<()>, tokio::task::JoinError>),
}

async fn serve(args: ServerArgs, router: axum::Router, stop: impl Future<Output = ()>) -> Result<(), ServerError> {
    let launched = Instant::now();
    if !args.ip_addr.is_loopback() {
        return Err(ServerError::NotLoopback { addr: args.ip_addr });
    }
    let mut port_file = match &args.port_file {
        Some(path) => match PortFile::create(path)? {
            Some(file) => Some(file),
            None => {
                tracing::info!(port_file = %path.display(), "another PocketIC server owns the port file; deferring to it");
                return Ok(());
            }
        },
        None => None,
    };
    let addr = SocketAddr::new(args.ip_addr, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind { addr, source })?;
    if let Some(file) = &mut port_file {
        file.write_port(addr.port())?;
    }

    let activity = Arc::new(Activity::new(launched));
    let app = router
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(activity.clone(), track));
    let listener = listener.tap_io(|tcp| {
        // Small request/response pairs: no Nagle delay on loopback.
        let _ = tcp.set_nodelay(true);
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop_rx.await;
    });
    let mut task = AbortOnDrop(tokio::spawn(server.into_future()));
    tracing::info!(
        "PocketIC server listening on http://{addr}/ (idle TTL {}s, hard TTL {})",
        args.ttl,
        args.hard_ttl.map_or_else(|| "none".to_owned(), |s| format!("{s}s")),
    );

    let ttl = Duration::from_secs(args.ttl);
    let hard_ttl = async {
        match args.hard_ttl {
            Some(secs) => tokio::time::sleep_until(deadline(launched, Duration::from_secs(secs))).await,
            None => std::future::pending().await,
        }
    };
    let exit = tokio::select! {
        () = activity.idle_for(ttl) => Exit::Idle,
        () = hard_ttl => Exit::HardTtl,
        () = stop => Exit::Stopped,
        ended = &mut task.0 => Exit::ServerEnded(ended),
    };
    // The port file goes first, so no new client picks this server up while
    // it stops.
    if let Some(file) = &mut port_file {
        file.remove();
    }
    let ended = match exit {
        Exit::ServerEnded(ended) => ended,
        other => {
            tracing::info!("PocketIC server at {addr} stopping: {}", describe(&other, args.ttl));
            let _ = stop_tx.send(());
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut task.0).await {
                Ok(ended) => ended,
                Err(_) => {
                    tracing::warn!("requests still in flight after {}s; stopping anyway", SHUTDOWN_GRACE.as_secs());
                    Ok(Ok(()))
                }
            }
        }
    };
    match ended {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(ServerError::Serve { addr, source }),
        Err(join) => Err(ServerError::Serve { addr, source: std::io::Error::other(join.to_string()) }),
    }
}

fn describe(exit: &Exit, ttl: u64) -> String {
    match exit {
        Exit::Idle => format!("no request for {ttl}s"),
        Exit::HardTtl => "hard TTL reached".to_owned(),
        Exit::Stopped => "signalled".to_owned(),
        Exit::ServerEnded(_) => "the listener ended".to_owned(),
    }
}

/// `start + after`, or far in the future when that overflows.
fn deadline(start: Instant, after: Duration) -> Instant {
    start.checked_add(after).unwrap_or_else(|| start + Duration::from_secs(86_400 * 365 * 30))
}

/// Resolves on the first SIGINT or SIGTERM.
fn shutdown_signals() -> Result<impl Future<Output = ()>, ServerError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).map_err(|source| ServerError::Signal { signal: "SIGINT", source })?;
    let mut term = signal(SignalKind::terminate()).map_err(|source| ServerError::Signal { signal: "SIGTERM", source })?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// The port file this server created; removed when dropped.
struct PortFile {
    path: PathBuf,
    file: Option<std::fs::File>,
    removed: bool,
}

impl PortFile {
    /// Creates `path` exclusively; `None` when it already exists.
    fn create(path: &Path) -> Result<Option<Self>, ServerError> {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(file) => Ok(Some(Self { path: path.to_owned(), file: Some(file), removed: false })),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
            Err(source) => Err(ServerError::CreatePortFile { path: path.to_owned(), source }),
        }
    }

    fn write_port(&mut self, port: u16) -> Result<(), ServerError> {
        use std::io::Write;
        let err = |source| ServerError::WritePortFile { path: self.path.clone(), source };
        let Some(mut file) = self.file.take() else { return Ok(()) };
        file.write_all(format!("{port}\n").as_bytes()).map_err(err)?;
        file.flush().map_err(err)?;
        file.sync_all().map_err(err)
    }

    fn remove(&mut self) {
        if !self.removed {
            self.removed = true;
            if let Err(e) = std::fs::remove_file(&self.path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(port_file = %self.path.display(), "cannot remove the port file: {e}");
            }
        }
    }
}

impl Drop for PortFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Aborts the serving task when `serve` is dropped early.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Requests in flight and the time the last one began or ended.
struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

impl Activity {
    fn new(now: Instant) -> Self {
        Self { in_flight: AtomicUsize::new(0), last: Mutex::new(now) }
    }

    fn touch(&self) {
        // A poisoned lock still holds a valid Instant.
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch();
        InFlight(self.clone())
    }

    /// Resolves once no request is in flight and none began or ended for `ttl`.
    async fn idle_for(&self, ttl: Duration) {
        loop {
            let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
            let busy = self.in_flight.load(Ordering::SeqCst) > 0;
            let now = Instant::now();
            if busy {
                tokio::time::sleep(IDLE_POLL.min(ttl.max(Duration::from_millis(10)))).await;
                continue;
            }
            let until = deadline(last, ttl);
            if now >= until {
                return;
            }
            tokio::time::sleep_until(until).await;
        }
    }
}

/// One request in flight; ending it (also by cancellation) counts as
/// activity.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn track(State(activity): State<Arc<Activity>>, request: Request, next: Next) -> Response {
    let _in_flight = activity.begin();
    tracing::debug!(method = %request.method(), uri = %request.uri(), "PocketIC request");
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::sync::atomic::AtomicBool;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn test_router() -> axum::Router {
        axum::Router::new().route("/ping", get(|| async { axum::Json(()) })).route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                axum::Json(())
            }),
        )
    }

    fn args(port_file: &Path, ttl: u64) -> ServerArgs {
        ServerArgs { port_file: Some(port_file.to_owned()), ttl, ..ServerArgs::default() }
    }

    /// Waits for the port file to hold "<port>\n", as the client does.
    async fn wait_port(path: &Path) -> u16 {
        for _ in 0..500 {
            if let Ok(text) = std::fs::read_to_string(path)
                && text.contains('\n')
            {
                return text.trim_end().parse().expect("port");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no port in {}", path.display());
    }

    /// One HTTP/1.1 GET; returns the whole response.
    async fn get_path(port: u16, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response
    }

    fn exit_flag() -> (Arc<AtomicBool>, impl FnOnce()) {
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        (flag, move || set.store(true, Ordering::SeqCst))
    }

    #[tokio::test]
    async fn port_file_is_exclusive_and_removed_on_exit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pocket_ic_1.port");
        let (exited, on_exit) = exit_flag();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(run_until(args(&path, 60), test_router(), on_exit, async {
            let _ = stop_rx.await;
        }));
        let port = wait_port(&path).await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{port}\n"));
        let response = get_path(port, "/ping").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("\r\n\r\nnull"), "{response}");
        assert!(!response.to_ascii_lowercase().contains("content-encoding"), "{response}");

        // A second server with the same port file defers at once and leaves
        // the file alone.
        let (second_exited, second_exit) = exit_flag();
        let second = run_until(args(&path, 60), test_router(), second_exit, std::future::pending());
        tokio::time::timeout(Duration::from_secs(2), second).await.expect("second server returns at once").unwrap();
        assert!(second_exited.load(Ordering::SeqCst));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{port}\n"));

        let _ = stop_tx.send(());
        tokio::time::timeout(Duration::from_secs(10), server).await.expect("stops").unwrap().unwrap();
        assert!(!path.exists(), "port file removed");
        assert!(exited.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn an_existing_port_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taken.port");
        std::fs::write(&path, "4321\n").unwrap();
        let (exited, on_exit) = exit_flag();
        let run = run_until(args(&path, 60), test_router(), on_exit, std::future::pending());
        tokio::time::timeout(Duration::from_secs(2), run).await.expect("returns at once").unwrap();
        assert!(exited.load(Ordering::SeqCst));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "4321\n");
    }

    #[tokio::test]
    async fn idle_ttl_shuts_down() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idle.port");
        let started = std::time::Instant::now();
        let server = tokio::spawn(run_until(args(&path, 1), test_router(), || {}, std::future::pending()));
        wait_port(&path).await;
        tokio::time::timeout(Duration::from_secs(10), server).await.expect("idle exit").unwrap().unwrap();
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_request_in_flight_keeps_the_server_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.port");
        let server = tokio::spawn(run_until(args(&path, 1), test_router(), || {}, std::future::pending()));
        let port = wait_port(&path).await;
        let started = std::time::Instant::now();
        // Longer than the TTL: the server must wait for it.
        let response = get_path(port, "/slow").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(path.exists(), "still serving right after the slow request");
        tokio::time::timeout(Duration::from_secs(10), server).await.expect("idle exit").unwrap().unwrap();
        assert!(started.elapsed() >= Duration::from_secs(3), "idle TTL counts from the end of the request");
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn hard_ttl_shuts_down_a_busy_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hard.port");
        let mut a = args(&path, 600);
        a.hard_ttl = Some(1);
        let server = tokio::spawn(run_until(a, test_router(), || {}, std::future::pending()));
        let port = wait_port(&path).await;
        assert!(get_path(port, "/ping").await.starts_with("HTTP/1.1 200"));
        tokio::time::timeout(Duration::from_secs(10), server).await.expect("hard TTL exit").unwrap().unwrap();
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn only_loopback_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("any.port");
        for ip in ["0.0.0.0", "192.0.2.1", "::"] {
            let a = ServerArgs { ip_addr: ip.parse().unwrap(), ..args(&path, 1) };
            let err = run_until(a, test_router(), || {}, std::future::pending()).await.unwrap_err();
            assert!(matches!(err, ServerError::NotLoopback { .. }), "{err}");
            assert!(err.to_string().contains("loopback"));
        }
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_missing_directory_is_a_port_file_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir.port");
        let err = run_until(args(&path, 1), test_router(), || {}, std::future::pending()).await.unwrap_err();
        assert!(matches!(err, ServerError::CreatePortFile { .. }), "{err}");
        assert!(err.to_string().contains("dir.port"), "{err}");
    }

    #[test]
    fn version_lines() {
        assert_eq!(version_line_for(DEFAULT_VERSION), "pocket-ic-server 13.0.0");
        for (value, line) in [
            ("13", "pocket-ic-server 13.0.0"),
            ("16", "pocket-ic-server 16.1.0"),
            ("13.0.0", "pocket-ic-server 13.0.0"),
            ("16.1.0", "pocket-ic-server 16.1.0"),
            ("13.2.10", "pocket-ic-server 13.2.10"),
        ] {
            assert_eq!(version_line_for(ServerVersion::parse(value).unwrap()), line, "{value}");
        }
        for bad in ["", "14", "12.0.0", "13.0", "13.0.0.0", "13.0.0-ww", "13.0.0+ww", "v13", "013", " 13", "x"] {
            let err = ServerVersion::parse(bad).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with(VERSION_ENV) && !text.contains('\n'), "{bad}: {text}");
        }
    }

    #[test]
    fn the_clients_command_lines_parse() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: ServerArgs,
        }
        let cli = Cli::try_parse_from(["pocket-ic", "--hard-ttl", "600", "--port-file", "/tmp/p.port"]).unwrap();
        assert_eq!(cli.args.hard_ttl, Some(600));
        assert_eq!(cli.args.ttl, DEFAULT_TTL_SECS);
        assert_eq!(cli.args.port_file.as_deref(), Some(Path::new("/tmp/p.port")));
        assert_eq!(cli.args.ip_addr, DEFAULT_IP_ADDR);
        let cli = Cli::try_parse_from(["pocket-ic", "--ttl", "5", "--port-file", "p", "--log-levels", "info", "--port", "0"]).unwrap();
        assert_eq!(cli.args.ttl, 5);
        assert_eq!(cli.args.log_levels.as_deref(), Some("info"));
        assert!(Cli::try_parse_from(["pocket-ic", "--ip-addr", "localhost"]).is_err());
    }
}
