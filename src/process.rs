//! Process guests: WASI command components, their stdio pipes and lifetimes.
//!
//! A process is one instance of a component exporting `wasi:cli/run`. The
//! [`Spawner`] places each process on one of a few worker threads (one per
//! core); the process's own host-side services (its Cap'n Proto session, if
//! it has one) run on the same thread, so a guest and its server never pay a
//! cross-thread wakeup. Everything a caller holds ([`ProcessHandle`]) is
//! `Send`, so a process can be managed from any thread.
//!
//! What a guest gets is exactly what its [`ProcessSpec`] says: its arguments
//! and environment, its image root read-only at `/` (or no filesystem), its
//! three stdio streams, a memory limit, and WASI clocks and randomness. No
//! network, no host environment, nothing else of the host's filesystem.
//!
//! Exit codes: a normal return is 0, `Err` from `main` is 1,
//! `std::process::exit(n)` is `n`, a trap (a Rust panic, an out-of-memory
//! abort) is [`EXIT_TRAP`], and a killed process is [`EXIT_KILLED`].

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, watch};
use tokio_util::task::LocalPoolHandle;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxView, WasiView};

use crate::engine::{Engine, WasmHash, one_line};
use crate::pipe::{self, GuestStdin, GuestStdout, PipeReader, PipeWriter};

/// Exit code of a process that trapped (panicked, ran out of memory, ...).
pub const EXIT_TRAP: i32 = 101;
/// Exit code of a process that was killed.
pub const EXIT_KILLED: i32 = 137;
/// Default memory limit per guest instance (linear memory bytes).
pub const DEFAULT_MEMORY_LIMIT: usize = 256 << 20;
/// Longest stderr line forwarded as one log record; longer lines are split.
pub const MAX_LOG_LINE: usize = 4096;

/// A future that serves a guest's session on its worker thread. It receives
/// the host ends of the guest's stdout (to read requests) and stdin (to write
/// responses).
pub type SessionServer =
    Box<dyn FnOnce(PipeReader, PipeWriter) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// How a process's stdin and stdout are connected.
pub enum StdioSpec {
    /// stdin/stdout carry a Cap'n Proto session served by the given server.
    Session(SessionServer),
    /// stdin/stdout are plain pipes, handed to the caller in the [`ProcessHandle`].
    Pipes,
}

/// Everything a process is given.
pub struct ProcessSpec {
    pub name: String,
    pub component: (WasmHash, Component),
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Host directory visible read-only at `/`; `None` means no filesystem.
    pub root: Option<PathBuf>,
    pub memory_limit: usize,
    pub stdio: StdioSpec,
    /// Also send every stderr line here.
    pub log_tee: Option<LogTee>,
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{name}: cannot be linked: {reason}")]
    Link { name: String, reason: String },
    #[error("{name}: instantiation failed: {reason}")]
    Instantiate { name: String, reason: String },
    #[error("{name}: cannot open root directory {path}: {reason}")]
    Root {
        name: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{name}: the node is shutting down")]
    Shutdown { name: String },
}

/// The store data of a process guest.
pub struct ProcessState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for ProcessState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Starts processes on the node's worker threads.
#[derive(Clone)]
pub struct Spawner {
    inner: Arc<SpawnerInner>,
}

struct SpawnerInner {
    engine: Engine,
    linker: Linker<ProcessState>,
    pool: LocalPoolHandle,
    pres: Mutex<HashMap<WasmHash, CommandPre<ProcessState>>>,
    next_pid: AtomicU64,
}

impl Spawner {
    pub fn new(engine: Engine, workers: usize) -> Result<Self, SpawnError> {
        let mut linker = Linker::new(engine.wasmtime());
        // This includes `wasi:cli/exit.exit-with-code`, so a guest can report
        // its real exit status (plain WASI p2 `exit` only carries ok/err).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| SpawnError::Link {
            name: "node".into(),
            reason: one_line(&e),
        })?;
        Ok(Self {
            inner: Arc::new(SpawnerInner {
                engine,
                linker,
                pool: LocalPoolHandle::new(workers.max(1)),
                pres: Mutex::new(HashMap::new()),
                next_pid: AtomicU64::new(1),
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    fn command_pre(&self, name: &str, hash: WasmHash, c: &Component) -> Result<CommandPre<ProcessState>, SpawnError> {
        let mut pres = self.inner.pres.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pre) = pres.get(&hash) {
            return Ok(pre.clone());
        }
        let link_err = |e: wasmtime::Error| SpawnError::Link {
            name: name.to_string(),
            reason: one_line(&e),
        };
        let pre = CommandPre::new(self.inner.linker.instantiate_pre(c).map_err(link_err)?)
            .map_err(link_err)?;
        pres.insert(hash, pre.clone());
        Ok(pre)
    }

    /// Starts a process. Returns once the component is instantiated (so link
    /// and instantiation errors are reported here); it then runs on a worker.
    pub async fn spawn(&self, spec: ProcessSpec) -> Result<ProcessHandle, SpawnError> {
        let ProcessSpec {
            name,
            component: (hash, component),
            args,
            env,
            root,
            memory_limit,
            stdio,
            log_tee,
        } = spec;
        let pre = self.command_pre(&name, hash, &component)?;
        let pid = self.inner.next_pid.fetch_add(1, Ordering::Relaxed);

        let mut wasi = WasiCtx::builder();
        let mut argv = Vec::with_capacity(args.len() + 1);
        argv.push(name.clone());
        argv.extend(args);
        wasi.args(&argv).envs(&env);
        // File reads of the image root run inline on the guest's worker
        // thread instead of hopping to tokio's blocking pool for each 64 KiB:
        // the root is a local, read-only directory, and the worker runs only
        // this guest's tasks. (Reading a 7.8 MiB release set took 28 ms with
        // the hops.)
        wasi.allow_blocking_current_thread(true);
        if let Some(root) = &root {
            wasi.preopened_dir(root, "/", FsPerms::ReadOnly)
                .map_err(|e| SpawnError::Root {
                    name: name.clone(),
                    path: root.clone(),
                    reason: one_line(&e),
                })?;
        }
        let (in_w, in_r) = pipe::pipe(match stdio {
            StdioSpec::Session(_) => pipe::SESSION_PIPE_CAPACITY,
            StdioSpec::Pipes => pipe::RAW_PIPE_CAPACITY,
        });
        let (out_w, out_r) = pipe::pipe(match stdio {
            StdioSpec::Session(_) => pipe::SESSION_PIPE_CAPACITY,
            StdioSpec::Pipes => pipe::RAW_PIPE_CAPACITY,
        });
        wasi.stdin(GuestStdin::new(in_r))
            .stdout(GuestStdout::new(out_w))
            .stderr(LogSink::with_tee(&name, log_tee));
        let state = ProcessState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_limit)
                .trap_on_grow_failure(false)
                .build(),
        };

        let (session, handle_pipes) = match stdio {
            StdioSpec::Session(server) => (Some((server, out_r, in_w)), None),
            StdioSpec::Pipes => (None, Some((in_w, out_r))),
        };
        let (exit_tx, exit_rx) = watch::channel(None);
        let (hangup_tx, hangup_rx) = oneshot::channel();
        let (started_tx, started_rx) = oneshot::channel();
        let engine = self.inner.engine.wasmtime().clone();
        let task_name = name.clone();
        let join = self.inner.pool.spawn_pinned(move || async move {
            let exit = ExitGuard(exit_tx);
            let mut store = Store::new(&engine, state);
            store.limiter(|s| &mut s.limits);
            store.epoch_deadline_async_yield_and_update(1);
            let command = match pre.instantiate_async(&mut store).await {
                Ok(c) => c,
                Err(e) => {
                    let _ = started_tx.send(Err(one_line(&e)));
                    exit.set(EXIT_TRAP);
                    return;
                }
            };
            if let Some((server, from_guest, to_guest)) = session {
                let serve = server(from_guest, to_guest);
                tokio::task::spawn_local(async move {
                    tokio::select! {
                        () = serve => {}
                        () = hang_up_signal(hangup_rx) => {}
                    }
                });
            }
            let _ = started_tx.send(Ok(()));
            tracing::debug!(process = %task_name, pid, "started");
            let code = match command.wasi_cli_run().call_run(&mut store).await {
                Ok(Ok(())) => 0,
                Ok(Err(())) => 1,
                Err(e) => match e.downcast_ref::<I32Exit>() {
                    Some(I32Exit(code)) => *code,
                    None => {
                        let reason = match e.downcast_ref::<wasmtime::Trap>() {
                            Some(trap) => trap.to_string(),
                            None => one_line(&e),
                        };
                        tracing::warn!(process = %task_name, pid, "process trapped: {reason}");
                        tracing::debug!(process = %task_name, pid, "trap details: {}", one_line(&e));
                        EXIT_TRAP
                    }
                },
            };
            drop(store);
            tracing::debug!(process = %task_name, pid, code, "exited");
            exit.set(code);
        });
        let abort = join.abort_handle();
        match started_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(SpawnError::Instantiate { name, reason }),
            Err(_) => return Err(SpawnError::Shutdown { name }),
        }
        let (stdin, stdout) = match handle_pipes {
            Some((w, r)) => (Some(w), Some(r)),
            None => (None, None),
        };
        Ok(ProcessHandle {
            name,
            pid,
            exit: exit_rx,
            abort,
            stdin: Mutex::new(stdin),
            stdout: Mutex::new(stdout),
            hangup: Mutex::new(Some(hangup_tx)),
        })
    }
}

/// Resolves when a hang-up is requested; never if the handle is dropped
/// without one (dropping a handle must not end the session).
async fn hang_up_signal(rx: oneshot::Receiver<()>) {
    if rx.await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sets the exit code when the process task ends, whichever way it ends: a
/// task that is aborted (killed) drops this guard without a code.
struct ExitGuard(watch::Sender<Option<i32>>);

impl ExitGuard {
    fn set(&self, code: i32) {
        self.0.send_if_modified(|c| {
            if c.is_none() {
                *c = Some(code);
                true
            } else {
                false
            }
        });
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.set(EXIT_KILLED);
    }
}

/// A running (or finished) process. Dropping the handle does not stop the
/// process; call [`ProcessHandle::kill`] for that.
pub struct ProcessHandle {
    name: String,
    pid: u64,
    exit: watch::Receiver<Option<i32>>,
    abort: tokio::task::AbortHandle,
    stdin: Mutex<Option<PipeWriter>>,
    stdout: Mutex<Option<PipeReader>>,
    hangup: Mutex<Option<oneshot::Sender<()>>>,
}

impl ProcessHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u64 {
        self.pid
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn wait(&self) -> i32 {
        let mut rx = self.exit.clone();
        let waited = rx.wait_for(Option::is_some).await.map(|c| *c);
        match waited {
            Ok(code) => code.unwrap_or(EXIT_KILLED),
            // The sender lives in the task's guard, which always sets a code
            // before it goes away; a closed channel means the task is gone.
            Err(_) => rx.borrow().unwrap_or(EXIT_KILLED),
        }
    }

    /// The exit code, if the process has exited.
    pub fn try_exit_code(&self) -> Option<i32> {
        *self.exit.borrow()
    }

    /// Stops the process at its next yield point (at most one engine tick).
    pub fn kill(&self) {
        self.abort.abort();
    }

    /// Closes the process's session (session mode): the guest sees end of
    /// stream on stdin, which a well-behaved guest takes as a request to exit.
    pub fn hang_up(&self) {
        if let Some(tx) = self.hangup.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(());
        }
    }

    /// Takes the write end of the process's stdin (pipes mode, once).
    pub fn take_stdin(&self) -> Option<PipeWriter> {
        self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Takes the read end of the process's stdout (pipes mode, once).
    pub fn take_stdout(&self) -> Option<PipeReader> {
        self.stdout.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Where a process's stderr lines go besides the node log (`Admin.runImage`
/// streams them to its caller): each line as `<process name>: <line>`.
pub type LogTee = tokio::sync::mpsc::UnboundedSender<String>;

/// A guest's output stream forwarded to the node log line by line, tagged
/// with the guest's name, and to its [`LogTee`] if it has one.
#[derive(Clone)]
pub struct LogSink {
    name: Arc<str>,
    partial: Arc<Mutex<Vec<u8>>>,
    tee: Option<LogTee>,
}

impl LogSink {
    pub fn new(name: &str) -> Self {
        Self::with_tee(name, None)
    }

    pub fn with_tee(name: &str, tee: Option<LogTee>) -> Self {
        Self {
            name: name.into(),
            partial: Arc::new(Mutex::new(Vec::new())),
            tee,
        }
    }

    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        tracing::info!(target: "ww::guest", "{}: {}", self.name, line);
        if let Some(tee) = &self.tee {
            // The receiver is gone when the caller hung up: the node log
            // still has the line.
            let _ = tee.send(format!("{}: {}", self.name, line));
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        for &b in bytes {
            if b == b'\n' {
                self.emit(&partial);
                partial.clear();
            } else {
                partial.push(b);
                if partial.len() >= MAX_LOG_LINE {
                    self.emit(&partial);
                    partial.clear();
                }
            }
        }
    }
}

impl Drop for LogSink {
    fn drop(&mut self) {
        // The last clone flushes an unterminated final line.
        if Arc::strong_count(&self.partial) == 1 {
            let partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
            if !partial.is_empty() {
                self.emit(&partial);
            }
        }
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for LogSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[async_trait::async_trait]
impl Pollable for LogSink {
    async fn ready(&mut self) {}
}

#[async_trait::async_trait]
impl OutputStream for LogSink {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}
