//! Inter-canister calls, shaped like `ic-cdk` 0.18's `Call` builder.
//!
//! ```ignore
//! use ww_cdk::call::{Call, CallFailed};
//!
//! let n: u64 = Call::unbounded_wait(callee, "get").await?.candid()?;
//! let reply = Call::bounded_wait(callee, "add")
//!     .change_timeout(10)
//!     .with_args(&(1u64, 2u64))
//!     .await?;
//! ```
//!
//! A `Call` is queued (`ic0.call`) when its future is first polled, and sent
//! by the host only if the execution commits. The task awaiting it is parked
//! until the host runs `on-reply` or `on-reject` for the call, as a separate
//! execution. Dropping the future of a queued call does not cancel the call:
//! its response is discarded when it arrives.
//!
//! [`Call::issue`] queues the call immediately, so a method can queue many
//! calls in order (and see synchronous failures, e.g. a full queue) before
//! awaiting any of them; [`Call::oneway`] queues it and ignores the response.

use crate::api;
use crate::bindings::ww::canister::ic0;
use crate::futures::{TaskId, current_task};
use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Principal};
use serde::de::DeserializeOwned;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// The timeout of a [`Call::bounded_wait`] call unless changed, in seconds
/// (also the longest the host allows).
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 300;

/// An IC reject code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RejectCode {
    /// 1: fatal system error.
    SysFatal = 1,
    /// 2: transient system error (e.g. a full queue); retrying may help.
    SysTransient = 2,
    /// 3: the destination does not exist, or has no such method.
    DestinationInvalid = 3,
    /// 4: the callee rejected the call explicitly.
    CanisterReject = 4,
    /// 5: the callee trapped or did not reply.
    CanisterError = 5,
    /// 6: the outcome is unknown (e.g. a bounded-wait call timed out).
    SysUnknown = 6,
}

impl RejectCode {
    /// The code for a raw value, if it is one of the six.
    pub fn from_u32(code: u32) -> Option<Self> {
        Some(match code {
            1 => Self::SysFatal,
            2 => Self::SysTransient,
            3 => Self::DestinationInvalid,
            4 => Self::CanisterReject,
            5 => Self::CanisterError,
            6 => Self::SysUnknown,
            _ => return None,
        })
    }

    /// The raw value (1 to 6).
    pub fn as_u32(self) -> u32 {
        self as u32
    }
}

/// The host refused to queue the call (nothing was queued; no callback runs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallPerformFailed {
    /// The reject code the host gave (2, SYS_TRANSIENT, when the queue to the
    /// callee is full).
    pub code: u32,
    /// The host's message.
    pub message: String,
}

/// The call was sent and came back rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRejected {
    /// The reject code ([`RejectCode::SysUnknown`] if the host gave a code
    /// outside 1..=6; see [`CallRejected::raw_reject_code`]).
    pub reject_code: RejectCode,
    /// The reject code exactly as the host gave it.
    pub raw_reject_code: u32,
    /// The reject message.
    pub reject_message: String,
}

impl CallRejected {
    fn new(raw_reject_code: u32, reject_message: String) -> Self {
        Self {
            reject_code: RejectCode::from_u32(raw_reject_code).unwrap_or(RejectCode::SysUnknown),
            raw_reject_code,
            reject_message,
        }
    }

    /// The reject code.
    pub fn reject_code(&self) -> RejectCode {
        self.reject_code
    }

    /// The reject code as the host gave it.
    pub fn raw_reject_code(&self) -> u32 {
        self.raw_reject_code
    }

    /// The reject message.
    pub fn reject_message(&self) -> &str {
        &self.reject_message
    }
}

/// Why a call produced no reply.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallFailed {
    /// The call could not be queued.
    CallPerformFailed(CallPerformFailed),
    /// The call was rejected (by the system or by the callee).
    CallRejected(CallRejected),
    /// The call's [intent](crate::intent) did not fit (or was invalid):
    /// the call was never sent.
    Intent(crate::intent::IntentFailed),
}

impl CallFailed {
    /// The raw reject code, whichever way the call failed (an intent that
    /// did not fit counts as SYS_TRANSIENT: retrying later may work).
    pub fn code(&self) -> u32 {
        match self {
            Self::CallPerformFailed(e) => e.code,
            Self::CallRejected(e) => e.raw_reject_code,
            Self::Intent(_) => RejectCode::SysTransient.as_u32(),
        }
    }

    /// The message, whichever way the call failed.
    pub fn message(&self) -> &str {
        match self {
            Self::CallPerformFailed(e) => &e.message,
            Self::CallRejected(e) => &e.reject_message,
            Self::Intent(e) => &e.message,
        }
    }
}

impl fmt::Display for CallPerformFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the call could not be queued (code {}): {}",
            self.code, self.message
        )
    }
}

impl fmt::Display for CallRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the call was rejected ({:?}, code {}): {}",
            self.reject_code, self.raw_reject_code, self.reject_message
        )
    }
}

impl fmt::Display for CallFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CallPerformFailed(e) => e.fmt(f),
            Self::CallRejected(e) => e.fmt(f),
            Self::Intent(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CallPerformFailed {}
impl std::error::Error for CallRejected {}
impl std::error::Error for CallFailed {}

impl From<CallPerformFailed> for CallFailed {
    fn from(e: CallPerformFailed) -> Self {
        Self::CallPerformFailed(e)
    }
}

impl From<CallRejected> for CallFailed {
    fn from(e: CallRejected) -> Self {
        Self::CallRejected(e)
    }
}

/// A reply did not decode as the Candid type asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidDecodeFailed {
    /// The decoder's message.
    pub message: String,
}

impl fmt::Display for CandidDecodeFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to decode the reply: {}", self.message)
    }
}

impl std::error::Error for CandidDecodeFailed {}

/// Any failure of "call, then decode the reply", for `?` in one place.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The call failed.
    CallFailed(CallFailed),
    /// The reply did not decode.
    CandidDecodeFailed(CandidDecodeFailed),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CallFailed(e) => e.fmt(f),
            Self::CandidDecodeFailed(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<CallFailed> for Error {
    fn from(e: CallFailed) -> Self {
        Self::CallFailed(e)
    }
}

impl From<CallPerformFailed> for Error {
    fn from(e: CallPerformFailed) -> Self {
        Self::CallFailed(e.into())
    }
}

impl From<CallRejected> for Error {
    fn from(e: CallRejected) -> Self {
        Self::CallFailed(e.into())
    }
}

impl From<CandidDecodeFailed> for Error {
    fn from(e: CandidDecodeFailed) -> Self {
        Self::CandidDecodeFailed(e)
    }
}

/// The result of awaiting a call.
pub type CallResult<T> = Result<T, CallFailed>;

/// A reply: raw bytes, usually Candid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response(Vec<u8>);

impl Response {
    /// Decodes the reply as one Candid value.
    pub fn candid<R: CandidType + DeserializeOwned>(&self) -> Result<R, CandidDecodeFailed> {
        candid::decode_one(&self.0).map_err(|e| CandidDecodeFailed {
            message: e.to_string(),
        })
    }

    /// Decodes the reply as a tuple of Candid values.
    pub fn candid_tuple<R: for<'de> ArgumentDecoder<'de>>(&self) -> Result<R, CandidDecodeFailed> {
        candid::decode_args(&self.0).map_err(|e| CandidDecodeFailed {
            message: e.to_string(),
        })
    }

    /// The raw reply bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The raw reply bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Response {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Response {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// An inter-canister call being built. Await it (it is [`IntoFuture`]),
/// [`issue`](Call::issue) it, or send it [`oneway`](Call::oneway).
#[derive(Clone, Debug)]
#[must_use = "a Call does nothing until it is awaited, issued or sent oneway"]
pub struct Call<'m> {
    canister_id: Principal,
    method: &'m str,
    arg: Option<Vec<u8>>,
    cycles: u128,
    timeout_seconds: Option<u32>,
    intent: Option<crate::intent::IntentReservation>,
}

impl<'m> Call<'m> {
    /// A bounded-wait (best-effort response) call: after the timeout
    /// ([`DEFAULT_TIMEOUT_SECONDS`] unless [changed](Call::change_timeout))
    /// the caller gets SYS_UNKNOWN and a late reply is dropped.
    pub fn bounded_wait(canister_id: Principal, method: &'m str) -> Self {
        Self {
            canister_id,
            method,
            arg: None,
            cycles: 0,
            timeout_seconds: Some(DEFAULT_TIMEOUT_SECONDS),
            intent: None,
        }
    }

    /// An unbounded-wait (guaranteed response) call.
    pub fn unbounded_wait(canister_id: Principal, method: &'m str) -> Self {
        Self {
            canister_id,
            method,
            arg: None,
            cycles: 0,
            timeout_seconds: None,
            intent: None,
        }
    }

    /// Sets the timeout of a bounded-wait call, in seconds (this makes the
    /// call bounded-wait if it was not).
    pub fn change_timeout(mut self, timeout_seconds: u32) -> Self {
        self.timeout_seconds = Some(timeout_seconds);
        self
    }

    /// The argument: one Candid value. Without an argument the call sends
    /// the empty Candid tuple `()`.
    pub fn with_arg<A: CandidType>(mut self, arg: A) -> Self {
        self.arg = Some(match candid::encode_one(arg) {
            Ok(bytes) => bytes,
            Err(e) => api::trap(format!(
                "failed to encode the argument of a call to {}: {e}",
                self.method
            )),
        });
        self
    }

    /// The arguments: a tuple of Candid values.
    pub fn with_args<A: ArgumentEncoder>(mut self, args: &A) -> Self {
        self.arg = Some(match candid::utils::encode_args_ref(args) {
            Ok(bytes) => bytes,
            Err(e) => api::trap(format!(
                "failed to encode the arguments of a call to {}: {e}",
                self.method
            )),
        });
        self
    }

    /// The argument as raw bytes (sent as is).
    pub fn with_raw_args(mut self, raw_args: &[u8]) -> Self {
        self.arg = Some(raw_args.to_vec());
        self
    }

    /// Cycles to attach (taken from the balance when the call is queued).
    pub fn with_cycles(mut self, cycles: u128) -> Self {
        self.cycles = cycles;
        self
    }

    /// Reserves capacity for the call (see [`crate::intent`]): the call
    /// is sent only if the reservation fits; its reply commits the
    /// reservation, a reject aborts it.
    pub fn with_intent(mut self, intent: crate::intent::IntentReservation) -> Self {
        self.intent = Some(intent);
        self
    }

    /// Queues the call now and returns the future of its response. A
    /// synchronous failure (nothing queued, or an intent that does not
    /// fit) is returned right away.
    pub fn issue(self) -> Result<CallFuture<'m>, CallFailed> {
        let (env, intent) = perform(&self)?;
        register(env, intent);
        Ok(CallFuture {
            state: State::Issued(env),
        })
    }

    /// Queues the call and ignores its response. A call with an intent
    /// cannot be oneway (nothing would settle the reservation).
    pub fn oneway(&self) -> Result<(), CallPerformFailed> {
        if self.intent.is_some() {
            return Err(CallPerformFailed {
                code: RejectCode::SysTransient.as_u32(),
                message: "a oneway call cannot carry an intent: nothing would settle the reservation".to_owned(),
            });
        }
        perform(self).map(drop).map_err(|e| match e {
            CallFailed::CallPerformFailed(e) => e,
            other => CallPerformFailed { code: other.code(), message: other.message().to_owned() },
        })
    }
}

impl<'m> IntoFuture for Call<'m> {
    type Output = CallResult<Response>;
    type IntoFuture = CallFuture<'m>;

    fn into_future(self) -> CallFuture<'m> {
        CallFuture {
            state: State::Unissued(self),
        }
    }
}

/// The future of a call's response. The call is queued on first poll
/// (unless it came from [`Call::issue`]).
#[must_use = "futures do nothing unless awaited"]
pub struct CallFuture<'m> {
    state: State<'m>,
}

enum State<'m> {
    Unissued(Call<'m>),
    Issued(u64),
    Done,
}

impl Future for CallFuture<'_> {
    type Output = CallResult<Response>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let env = match &this.state {
            State::Unissued(call) => match perform(call) {
                Ok((env, intent)) => {
                    register(env, intent);
                    this.state = State::Issued(env);
                    env
                }
                Err(e) => {
                    this.state = State::Done;
                    return Poll::Ready(Err(e));
                }
            },
            State::Issued(env) => *env,
            State::Done => api::trap("a call future was polled after it completed"),
        };
        let outcome = CALLS.with(|calls| {
            let mut calls = calls.borrow_mut();
            match calls.get_mut(&env) {
                Some(slot) => match slot.result.take() {
                    Some(result) => {
                        calls.remove(&env);
                        Some(result)
                    }
                    None => {
                        slot.waker = Some(cx.waker().clone());
                        slot.task = current_task();
                        None
                    }
                },
                None => Some(Err(CallFailed::CallRejected(CallRejected::new(
                    RejectCode::SysUnknown.as_u32(),
                    "ww-cdk lost track of this call".to_owned(),
                )))),
            }
        });
        match outcome {
            Some(result) => {
                this.state = State::Done;
                Poll::Ready(result)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for CallFuture<'_> {
    fn drop(&mut self) {
        if let State::Issued(env) = self.state {
            // The response will be (or was) discarded.
            CALLS.with(|calls| {
                let mut calls = calls.borrow_mut();
                if let Some(slot) = calls.get_mut(&env) {
                    if slot.result.is_some() {
                        calls.remove(&env);
                    } else {
                        slot.abandoned = true;
                        slot.waker = None;
                        slot.task = None;
                    }
                }
            });
        }
    }
}

/// What the SDK knows about a queued call, under its `env`.
struct Slot {
    /// The response, once its callback ran and until the future takes it.
    result: Option<CallResult<Response>>,
    /// The waker of the task awaiting it.
    waker: Option<Waker>,
    /// The task awaiting it (dropped if the callback traps).
    task: Option<TaskId>,
    /// The future was dropped: discard the response.
    abandoned: bool,
    /// The pending intent reservation the call's outcome settles.
    intent: Option<u64>,
}

thread_local! {
    static CALLS: RefCell<BTreeMap<u64, Slot>> = const { RefCell::new(BTreeMap::new()) };
    static NEXT_ENV: Cell<u64> = const { Cell::new(0) };
}

/// Queues `call` with a fresh `env`, reserving its intent first: (env,
/// the pending reservation).
fn perform(call: &Call<'_>) -> Result<(u64, Option<u64>), CallFailed> {
    let Ok(cycles) = u64::try_from(call.cycles) else {
        return Err(CallFailed::CallPerformFailed(CallPerformFailed {
            code: RejectCode::SysTransient.as_u32(),
            message: format!(
                "cannot attach {} cycles (more than the balance can hold)",
                call.cycles
            ),
        }));
    };
    let intent = match &call.intent {
        Some(intent) => Some(crate::intent::workflow::reserve(intent).map_err(CallFailed::Intent)?),
        None => None,
    };
    // Envs never repeat across upgrades: a response to a call the old
    // module made must not find a call of the new one. The first env of a
    // module's heap starts at the canister version (which only grows) in
    // the high half.
    let env = NEXT_ENV.with(|next| {
        let mut env = next.get();
        if env == 0 {
            env = (api::canister_version() << 32) | 1;
        }
        next.set(env + 1);
        env
    });
    let args = ic0::CallArgs {
        callee: call.canister_id.as_slice().to_vec(),
        method: call.method.to_owned(),
        arg: call
            .arg
            .clone()
            .unwrap_or_else(|| api::EMPTY_CANDID_ARGS.to_vec()),
        cycles,
        timeout_seconds: call.timeout_seconds,
        env,
    };
    match ic0::call(&args) {
        Ok(()) => Ok((env, intent)),
        Err(reject) => {
            // Not sent: the reservation goes again at once.
            if let Some(id) = intent {
                crate::intent::workflow::settle(id, false);
            }
            Err(CallFailed::CallPerformFailed(CallPerformFailed {
                code: reject.code,
                message: reject.message,
            }))
        }
    }
}

fn register(env: u64, intent: Option<u64>) {
    CALLS.with(|calls| {
        calls.borrow_mut().insert(
            env,
            Slot {
                result: None,
                waker: None,
                task: current_task(),
                abandoned: false,
                intent,
            },
        )
    });
}

/// `on-reply` / `on-reject`: stores the response for the call queued with
/// `env` and wakes the task awaiting it. Unknown `env`s (oneway calls) are
/// ignored.
pub(crate) fn complete(env: u64, result: CallResult<Response>) {
    let intent = CALLS.with(|calls| calls.borrow_mut().get_mut(&env).and_then(|slot| slot.intent.take()));
    if let Some(id) = intent {
        crate::intent::workflow::settle(id, result.is_ok());
    }
    let waker = CALLS.with(|calls| {
        let mut calls = calls.borrow_mut();
        let slot = calls.get_mut(&env)?;
        if slot.abandoned {
            calls.remove(&env);
            return None;
        }
        slot.result = Some(result);
        slot.waker.take()
    });
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// The response of the current reply callback.
pub(crate) fn reply_result() -> CallResult<Response> {
    Ok(Response(ic0::msg_arg_data()))
}

/// The response of the current reject callback.
pub(crate) fn reject_result() -> CallResult<Response> {
    Err(CallFailed::CallRejected(CallRejected::new(
        ic0::msg_reject_code(),
        ic0::msg_reject_msg(),
    )))
}

/// `on-cleanup`: the callback for `env` trapped (and was rolled back, its
/// commit or abort of the call's intent too). Aborts the intent (its
/// continuation failed: the capacity is free again at once) and drops the
/// task that awaited the call, as `ic-cdk` does.
pub(crate) fn cleanup(env: u64) {
    let slot = CALLS.with(|calls| calls.borrow_mut().remove(&env));
    let Some(slot) = slot else { return };
    if let Some(id) = slot.intent {
        crate::intent::workflow::settle(id, false);
    }
    if let Some(task) = slot.task {
        crate::futures::cancel_task(task);
    }
}
