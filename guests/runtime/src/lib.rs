//! The runtime every ww process guest links.
//!
//! [`run`] connects to the host over the guest's own stdin/stdout (Cap'n
//! Proto two-party RPC; stderr stays the log channel), bootstraps the node's
//! [`Membrane`], and drives the RPC system and the guest's future together
//! on one thread until the future finishes.
//!
//! # The executor, and why it cannot lose a wakeup
//!
//! There are two tasks (the RPC system and the guest's future), each with a
//! "woken" flag set by its waker. The loop polls every task whose flag is
//! set, and only when a whole pass leaves every flag clear does it block in
//! `wasi:io/poll`. Anything that can make a task runnable either happens
//! during a poll (and sets a flag, so the loop does not block) or is I/O
//! readiness (stdin readable, stdout writable, a timer), which is exactly
//! what the loop blocks on. In particular, a request the guest queues just
//! before the loop would block wakes the RPC task, which then writes and
//! flushes it before the loop ever blocks.
//!
//! Writes never exceed the `check-write` budget: output is buffered and
//! drained as the host makes room, waiting on stdout's pollable when it is
//! full (backpressure instead of truncated frames).
//!
//! # Shutdown
//!
//! When the guest's future finishes, [`run`] returns its exit code after
//! flushing what the RPC system already queued. When the host hangs up (stdin
//! reaches end of stream) and the guest's future cannot finish anymore, [`run`]
//! returns 0: a service asked to stop has stopped.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use capnp_rpc::{RpcSystem, rpc_twoparty_capnp::Side, twoparty::VatNetwork};
use wasip2::io::poll::Pollable;
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// Code generated from the node's schema, `capnp/ww.capnp`.
pub mod ww_capnp {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/ww_capnp.rs"));
}

pub use ww_capnp::{byte_stream, call_result, executor, host, membrane, process, replica};

/// Bytes asked of the host per stdin read.
const READ_CHUNK: u64 = 64 * 1024;
/// Output buffered before `poll_write` waits for the host to drain it.
const WRITE_BUFFER_LIMIT: usize = 1 << 20;

// ---- I/O state ----------------------------------------------------------------

/// The guest's stdio plus the wakers waiting on it. Field order matters:
/// pollables are children of their streams and must be dropped first.
struct Io {
    stdin_ready: Pollable,
    stdout_ready: Pollable,
    stdin: InputStream,
    stdout: OutputStream,
    inbuf: RefCell<Vec<u8>>,
    inpos: Cell<usize>,
    stdin_closed: Cell<bool>,
    out: RefCell<Vec<u8>>,
    read_waker: RefCell<Option<Waker>>,
    write_waker: RefCell<Option<Waker>>,
    timers: RefCell<Vec<(u64, Waker)>>,
}

thread_local! {
    static IO: RefCell<Option<Rc<Io>>> = const { RefCell::new(None) };
}

fn io() -> Rc<Io> {
    IO.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                let stdin = wasip2::cli::stdin::get_stdin();
                let stdout = wasip2::cli::stdout::get_stdout();
                Rc::new(Io {
                    stdin_ready: stdin.subscribe(),
                    stdout_ready: stdout.subscribe(),
                    stdin,
                    stdout,
                    inbuf: RefCell::new(Vec::new()),
                    inpos: Cell::new(0),
                    stdin_closed: Cell::new(false),
                    out: RefCell::new(Vec::new()),
                    read_waker: RefCell::new(None),
                    write_waker: RefCell::new(None),
                    timers: RefCell::new(Vec::new()),
                })
            })
            .clone()
    })
}

fn stream_err(e: StreamError) -> io::Error {
    match e {
        StreamError::Closed => io::ErrorKind::BrokenPipe.into(),
        StreamError::LastOperationFailed(e) => io::Error::other(e.to_debug_string()),
    }
}

impl Io {
    /// Moves buffered output into stdout as far as the budget allows.
    /// Returns true when the buffer is empty.
    fn drain(&self) -> io::Result<bool> {
        let mut out = self.out.borrow_mut();
        while !out.is_empty() {
            let budget = self.stdout.check_write().map_err(stream_err)? as usize;
            if budget == 0 {
                return Ok(false);
            }
            let n = budget.min(out.len());
            self.stdout.write(&out[..n]).map_err(stream_err)?;
            out.drain(..n);
        }
        Ok(true)
    }
}

/// The guest's stdin as an async byte source.
struct StdinReader(Rc<Io>);
/// The guest's stdout as an async byte sink.
struct StdoutWriter(Rc<Io>);

impl futures::io::AsyncRead for StdinReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let io = &self.0;
        loop {
            {
                let inbuf = io.inbuf.borrow();
                let pos = io.inpos.get();
                if pos < inbuf.len() {
                    let n = buf.len().min(inbuf.len() - pos);
                    buf[..n].copy_from_slice(&inbuf[pos..pos + n]);
                    io.inpos.set(pos + n);
                    return Poll::Ready(Ok(n));
                }
            }
            if io.stdin_closed.get() {
                return Poll::Ready(Ok(0));
            }
            match io.stdin.read(READ_CHUNK) {
                Ok(bytes) if bytes.is_empty() => {
                    *io.read_waker.borrow_mut() = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Ok(bytes) => {
                    *io.inbuf.borrow_mut() = bytes;
                    io.inpos.set(0);
                }
                Err(StreamError::Closed) => {
                    io.stdin_closed.set(true);
                    return Poll::Ready(Ok(0));
                }
                Err(e) => return Poll::Ready(Err(stream_err(e))),
            }
        }
    }
}

impl futures::io::AsyncWrite for StdoutWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let io = &self.0;
        if io.out.borrow().len() >= WRITE_BUFFER_LIMIT && !io.drain()? {
            *io.write_waker.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        io.out.borrow_mut().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.0.drain()? {
            Poll::Ready(Ok(()))
        } else {
            *self.0.write_waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

// ---- executor -------------------------------------------------------------------

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

struct Task<F: Future + ?Sized> {
    flag: Arc<Flag>,
    waker: Waker,
    future: Pin<Box<F>>,
}

impl<F: Future + ?Sized> Task<F> {
    fn new(future: Pin<Box<F>>) -> Self {
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        Self {
            waker: Waker::from(flag.clone()),
            flag,
            future,
        }
    }
    fn runnable(&self) -> bool {
        self.flag.0.load(Ordering::Acquire)
    }
    /// Polls the task if it was woken.
    fn poll_if_woken(&mut self) -> Option<F::Output> {
        if !self.flag.0.swap(false, Ordering::AcqRel) {
            return None;
        }
        match self.future.as_mut().poll(&mut Context::from_waker(&self.waker)) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }
}

/// Blocks until stdin is readable, stdout is writable (if anyone waits for
/// it) or the earliest timer is due, then wakes whoever waited for it.
/// Returns false when nothing at all is being waited for.
fn block_on_io(io: &Io) -> bool {
    let want_read = io.read_waker.borrow().is_some();
    let want_write = io.write_waker.borrow().is_some();
    let next_timer = io.timers.borrow().iter().map(|(t, _)| *t).min();
    if !want_read && !want_write && next_timer.is_none() {
        return false;
    }
    let timer = next_timer.map(|deadline| wasip2::clocks::monotonic_clock::subscribe_instant(deadline));
    let mut set: Vec<&Pollable> = Vec::with_capacity(3);
    let mut kinds = Vec::with_capacity(3);
    if want_read {
        set.push(&io.stdin_ready);
        kinds.push(0u8);
    }
    if want_write {
        set.push(&io.stdout_ready);
        kinds.push(1);
    }
    if let Some(t) = &timer {
        set.push(t);
        kinds.push(2);
    }
    for i in wasip2::io::poll::poll(&set) {
        match kinds.get(i as usize) {
            Some(0) => {
                if let Some(w) = io.read_waker.borrow_mut().take() {
                    w.wake();
                }
            }
            Some(1) => {
                if let Some(w) = io.write_waker.borrow_mut().take() {
                    w.wake();
                }
            }
            Some(_) => wake_due_timers(io),
            None => {}
        }
    }
    drop(timer);
    true
}

fn wake_due_timers(io: &Io) {
    let now = wasip2::clocks::monotonic_clock::now();
    let mut due = Vec::new();
    io.timers.borrow_mut().retain(|(t, w)| {
        if *t <= now {
            due.push(w.clone());
            false
        } else {
            true
        }
    });
    for w in due {
        w.wake();
    }
}

/// Waits for `d` without blocking the RPC system.
pub async fn sleep(d: Duration) {
    let deadline = wasip2::clocks::monotonic_clock::now().saturating_add(d.as_nanos().min(u64::MAX as u128) as u64);
    std::future::poll_fn(|cx| {
        if wasip2::clocks::monotonic_clock::now() >= deadline {
            return Poll::Ready(());
        }
        io().timers.borrow_mut().push((deadline, cx.waker().clone()));
        Poll::Pending
    })
    .await
}

// ---- sessions -------------------------------------------------------------------

/// The guest's view of the host's bootstrap capability.
#[derive(Clone)]
pub struct Membrane {
    pub client: membrane::Client,
}

/// The capabilities of one session, valid until the node's epoch moves on.
#[derive(Clone)]
pub struct Session {
    pub epoch: u64,
    pub host: host::Client,
    pub executor: executor::Client,
    pub replica: Replica,
}

/// The node's canisters, called as the node's admin identity.
#[derive(Clone)]
pub struct Replica {
    pub client: replica::Client,
}

/// A reject from a canister call.
#[derive(Clone, Debug)]
pub struct CallReject {
    /// IC reject code (1 to 6).
    pub code: u32,
    /// `IC0xxx`, when the system produced the reject.
    pub error_code: String,
    pub message: String,
}

impl std::fmt::Display for CallReject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reject code {}: {}", self.code, self.message)
    }
}

/// A canister call's outcome: reply bytes, or a reject.
pub type CallResult = Result<Vec<u8>, CallReject>;

fn call_result(r: call_result::Reader) -> Result<CallResult, capnp::Error> {
    Ok(match r.which()? {
        call_result::Which::Reply(b) => Ok(b?.to_vec()),
        call_result::Which::Reject(rj) => {
            let rj = rj?;
            Err(CallReject {
                code: rj.get_code(),
                error_code: rj.get_error_code()?.to_str()?.to_string(),
                message: rj.get_message()?.to_str()?.to_string(),
            })
        }
    })
}

impl Replica {
    /// An update call; `canister` is a raw principal (the management
    /// canister, `aaaaa-aa`, is the empty principal).
    pub async fn call(&self, canister: &[u8], method: &str, arg: &[u8]) -> Result<CallResult, capnp::Error> {
        let mut req = self.client.call_request();
        let mut p = req.get();
        p.set_canister(canister);
        p.set_method(method);
        p.set_arg(arg);
        let resp = req.send().promise.await?;
        call_result(resp.get()?.get_result()?)
    }

    /// A query call.
    pub async fn query(&self, canister: &[u8], method: &str, arg: &[u8]) -> Result<CallResult, capnp::Error> {
        let mut req = self.client.query_request();
        let mut p = req.get();
        p.set_canister(canister);
        p.set_method(method);
        p.set_arg(arg);
        let resp = req.send().promise.await?;
        call_result(resp.get()?.get_result()?)
    }

    /// The canister registered under `name`, if any.
    pub async fn lookup(&self, name: &str) -> Result<Option<Vec<u8>>, capnp::Error> {
        let mut req = self.client.lookup_request();
        req.get().set_name(name);
        let resp = req.send().promise.await?;
        let canister = resp.get()?.get_canister()?;
        // An unknown name answers an empty principal.
        Ok((!canister.is_empty()).then(|| canister.to_vec()))
    }

    /// The principal this capability calls as.
    pub async fn principal(&self) -> Result<Vec<u8>, capnp::Error> {
        let resp = self.client.principal_request().send().promise.await?;
        Ok(resp.get()?.get_principal()?.to_vec())
    }

    /// Names a canister in the node's registry.
    pub async fn set_name(&self, name: &str, canister: &[u8]) -> Result<(), capnp::Error> {
        let mut req = self.client.set_name_request();
        req.get().set_name(name);
        req.get().set_canister(canister);
        req.send().promise.await?;
        Ok(())
    }
}

impl Membrane {
    /// Grafts a session in the node's current epoch.
    pub async fn graft(&self) -> Result<Session, capnp::Error> {
        let response = self.client.graft_request().send().promise.await?;
        let s = response.get()?.get_session()?;
        Ok(Session {
            epoch: s.get_epoch(),
            host: s.get_host()?,
            executor: s.get_executor()?,
            replica: Replica { client: s.get_replica()? },
        })
    }
}

/// True when `e` says the capability belongs to an older epoch (graft again).
pub fn is_stale_epoch(e: &capnp::Error) -> bool {
    e.extra.contains("staleEpoch")
}

impl Session {
    /// Round trip through the host's `Executor.echo`.
    pub async fn echo(&self, message: &str) -> Result<String, capnp::Error> {
        let mut req = self.executor.echo_request();
        req.get().set_message(message);
        let response = req.send().promise.await?;
        Ok(response.get()?.get_response()?.to_str()?.to_string())
    }

    /// Starts building a `runBytes` call.
    pub fn spawn<'a>(&self, wasm: &'a [u8]) -> Spawn<'a> {
        Spawn {
            executor: self.executor.clone(),
            wasm,
            name: String::new(),
            args: Vec::new(),
            env: Vec::new(),
            pipes: false,
            grant: None,
        }
    }
}

/// A `runBytes` call being built.
pub struct Spawn<'a> {
    executor: executor::Client,
    wasm: &'a [u8],
    name: String,
    args: Vec<String>,
    env: Vec<String>,
    pipes: bool,
    grant: Option<(bool, bool, bool, u64)>,
}

impl Spawn<'_> {
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push(format!("{key}={value}"));
        self
    }
    /// Plain stdio pipes instead of a session.
    pub fn pipes(mut self) -> Self {
        self.pipes = true;
        self
    }
    /// Ask for at most these capabilities (the host also caps them at ours):
    /// a Host, an Executor, our root directory, and a memory limit in bytes
    /// (0: ours).
    pub fn grant(mut self, host: bool, executor: bool, filesystem: bool, memory_limit: u64) -> Self {
        self.grant = Some((host, executor, filesystem, memory_limit));
        self
    }

    pub async fn start(self) -> Result<Process, capnp::Error> {
        let mut req = self.executor.run_bytes_request();
        {
            let mut p = req.get();
            p.set_wasm(self.wasm);
            let mut args = p.reborrow().init_args(self.args.len() as u32);
            for (i, a) in self.args.iter().enumerate() {
                args.set(i as u32, a);
            }
            let mut env = p.reborrow().init_env(self.env.len() as u32);
            for (i, e) in self.env.iter().enumerate() {
                env.set(i as u32, e);
            }
            let mut o = p.init_options();
            o.set_name(&self.name);
            o.set_stdio(if self.pipes {
                ww_capnp::StdioMode::Pipes
            } else {
                ww_capnp::StdioMode::Session
            });
            if let Some((host, executor, filesystem, mem)) = self.grant {
                let mut g = o.init_grant();
                g.set_host(host);
                g.set_executor(executor);
                g.set_filesystem(filesystem);
                g.set_memory_limit(mem);
            }
        }
        let response = req.send().promise.await?;
        Ok(Process {
            client: response.get()?.get_process()?,
        })
    }
}

/// A child process.
#[derive(Clone)]
pub struct Process {
    pub client: process::Client,
}

impl Process {
    pub async fn wait(&self) -> Result<i32, capnp::Error> {
        let r = self.client.wait_request().send().promise.await?;
        Ok(r.get()?.get_exit_code())
    }
    pub async fn kill(&self) -> Result<(), capnp::Error> {
        self.client.kill_request().send().promise.await?;
        Ok(())
    }
    pub async fn stdin(&self) -> Result<ByteStream, capnp::Error> {
        let r = self.client.stdin_request().send().promise.await?;
        Ok(ByteStream { client: r.get()?.get_stream()? })
    }
    pub async fn stdout(&self) -> Result<ByteStream, capnp::Error> {
        let r = self.client.stdout_request().send().promise.await?;
        Ok(ByteStream { client: r.get()?.get_stream()? })
    }
}

/// One end of a child's stdio pipe.
#[derive(Clone)]
pub struct ByteStream {
    pub client: byte_stream::Client,
}

impl ByteStream {
    pub async fn read(&self, max: u32) -> Result<Vec<u8>, capnp::Error> {
        let mut req = self.client.read_request();
        req.get().set_max_bytes(max);
        let r = req.send().promise.await?;
        Ok(r.get()?.get_data()?.to_vec())
    }
    pub async fn write(&self, data: &[u8]) -> Result<(), capnp::Error> {
        let mut req = self.client.write_request();
        req.get().set_data(data);
        req.send().promise.await?;
        Ok(())
    }
    pub async fn close(&self) -> Result<(), capnp::Error> {
        self.client.close_request().send().promise.await?;
        Ok(())
    }
}

/// Exits the process with `code` (0 to 255), reported exactly to the host.
/// (Rust's `std::process::exit` on WASI p2 can only say success or failure.)
pub fn exit(code: i32) -> ! {
    if code == 0 {
        std::process::exit(0);
    }
    wasip2::cli::exit::exit_with_code(code.clamp(1, 255) as u8);
    // The host does not return from exit-with-code.
    std::process::exit(1)
}

// ---- entry point ----------------------------------------------------------------

/// Runs `main` with the host's membrane until it finishes; returns the exit
/// code (`Ok` is 0; `Err` is logged to stderr and is 1).
pub fn run<F, Fut, E>(main: F) -> i32
where
    F: FnOnce(Membrane) -> Fut,
    Fut: Future<Output = Result<(), E>> + 'static,
    E: std::fmt::Display,
{
    let io = io();
    let network = VatNetwork::new(
        StdinReader(io.clone()),
        StdoutWriter(io.clone()),
        Side::Client,
        capnp::message::ReaderOptions::new(),
    );
    let mut rpc_system = RpcSystem::new(Box::new(network), None);
    let membrane = Membrane {
        client: rpc_system.bootstrap(Side::Server),
    };
    let mut rpc: Task<dyn Future<Output = Result<(), capnp::Error>>> = Task::new(Box::pin(rpc_system));
    let mut user: Task<dyn Future<Output = Result<(), E>>> = Task::new(Box::pin(main(membrane)));
    let mut rpc_done = false;
    let code = loop {
        if let Some(result) = user.poll_if_woken() {
            break match result {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            };
        }
        if !rpc_done && let Some(result) = rpc.poll_if_woken() {
            rpc_done = true;
            if let Err(e) = result {
                eprintln!("session ended: {e}");
            }
            // Calls still in flight have now failed: let the guest see that.
            user.flag.0.store(true, Ordering::Release);
            continue;
        }
        if user.runnable() || (!rpc_done && rpc.runnable()) {
            continue;
        }
        if rpc_done && io.stdin_closed.get() {
            // The host hung up and the guest is waiting on nothing it can get.
            break 0;
        }
        if !block_on_io(&io) {
            eprintln!("error: deadlock: the guest waits on nothing that can wake it");
            break 70;
        }
    };
    // Push out anything the RPC system already queued (e.g. capability
    // releases), without waiting for the host.
    let _ = io.drain();
    drop(user);
    drop(rpc);
    code
}
