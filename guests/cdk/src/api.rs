//! The IC system API (`ic0`), with `ic-cdk` 0.18's names and Rust types.
//!
//! Functions called where the IC does not allow them (e.g. `msg_reply` in a
//! query that already replied, `msg_caller` in `on-timer`...) trap, as the
//! host enforces the IC's rules.

use crate::bindings::ww::canister::ic0;
use candid::Principal;

/// The Candid encoding of `()`: the argument of a call made without one,
/// and the reply of a method returning `()`.
pub const EMPTY_CANDID_ARGS: &[u8] = b"DIDL\x00\x00";

fn principal(bytes: Vec<u8>, what: &str) -> Principal {
    match Principal::try_from_slice(&bytes) {
        Ok(p) => p,
        Err(e) => trap(format!("the host gave an invalid principal as {what}: {e}")),
    }
}

// -- the current message

/// The argument bytes of the current message (in a reply callback: the reply).
pub fn msg_arg_data() -> Vec<u8> {
    ic0::msg_arg_data()
}

/// The caller of the current message.
pub fn msg_caller() -> Principal {
    principal(ic0::msg_caller(), "the caller")
}

/// 0 in a reply callback; the reject code in a reject callback.
pub fn msg_reject_code() -> u32 {
    ic0::msg_reject_code()
}

/// The reject message, in a reject callback.
pub fn msg_reject_msg() -> String {
    ic0::msg_reject_msg()
}

/// The deadline of the current call, in nanoseconds since the epoch: 0 for
/// unbounded-wait calls, ingress messages and queries.
pub fn msg_deadline() -> u64 {
    ic0::msg_deadline()
}

/// The name of the method a message is for. As on the IC this is only
/// allowed in `canister_inspect_message` (which ww does not run yet):
/// anywhere else it traps.
pub fn msg_method_name() -> String {
    ic0::msg_method_name()
}

// -- responding

/// Replies to the current call with `data` (raw bytes; usually Candid).
/// A second response to the same call traps.
pub fn msg_reply<T: AsRef<[u8]>>(data: T) {
    ic0::msg_reply_data_append(data.as_ref());
    ic0::msg_reply();
}

/// Appends to the reply without sending it (see [`msg_reply_finish`]).
pub fn msg_reply_data_append(data: &[u8]) {
    ic0::msg_reply_data_append(data);
}

/// Sends the reply assembled with [`msg_reply_data_append`].
pub fn msg_reply_finish() {
    ic0::msg_reply();
}

/// Rejects the current call (CANISTER_REJECT, code 4) with `message`.
pub fn msg_reject<T: AsRef<str>>(message: T) {
    ic0::msg_reject(message.as_ref());
}

// -- cycles (the host counts in u64; the API keeps ic-cdk's u128)

fn cycles_u64(amount: u128) -> u64 {
    u64::try_from(amount).unwrap_or(u64::MAX)
}

/// The cycles attached to the current call and not yet accepted.
pub fn msg_cycles_available() -> u128 {
    u128::from(ic0::msg_cycles_available())
}

/// Accepts up to `max_amount` of the attached cycles; returns how many it took.
pub fn msg_cycles_accept(max_amount: u128) -> u128 {
    u128::from(ic0::msg_cycles_accept(cycles_u64(max_amount)))
}

/// In a callback: the cycles the callee sent back.
pub fn msg_cycles_refunded() -> u128 {
    u128::from(ic0::msg_cycles_refunded())
}

/// This canister's cycle balance.
pub fn canister_cycle_balance() -> u128 {
    u128::from(ic0::canister_cycle_balance())
}

/// What this canister may spend: its balance above the freezing limit
/// (the idle cost of its memory and compute for its freezing threshold).
pub fn canister_liquid_cycle_balance() -> u128 {
    u128::from(ic0::canister_liquid_cycle_balance())
}

/// Burns up to `amount` of the liquid balance; returns what was burned.
pub fn cycles_burn(amount: u128) -> u128 {
    u128::from(ic0::cycles_burn(cycles_u64(amount)))
}

// -- what things cost on this canister's subnet (0 where nothing is charged)

/// What a call with a method name and payload of these sizes takes from
/// the balance besides the cycles attached (the call, its bytes, and the
/// reservation for its response, mostly refunded).
pub fn cost_call(method_name_size: u64, payload_size: u64) -> u128 {
    u128::from(ic0::cost_call(method_name_size, payload_size))
}

/// The management canister's `create_canister` fee.
pub fn cost_create_canister() -> u128 {
    u128::from(ic0::cost_create_canister())
}

/// The fee of an `http_request` outcall of `request_size` bytes with this
/// response limit.
pub fn cost_http_request(request_size: u64, max_res_bytes: u64) -> u128 {
    u128::from(ic0::cost_http_request(request_size, max_res_bytes))
}

/// Why a threshold fee could not be given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignCostError {
    /// The curve or algorithm number is not one the IC knows.
    InvalidCurveOrAlgorithm,
    /// No subnet holds a key of that name.
    InvalidKeyName,
}

fn sign_cost(result: Result<u64, u32>) -> Result<u128, SignCostError> {
    match result {
        Ok(fee) => Ok(u128::from(fee)),
        Err(1) => Err(SignCostError::InvalidCurveOrAlgorithm),
        Err(_) => Err(SignCostError::InvalidKeyName),
    }
}

/// The fee of `sign_with_ecdsa` with key `key_name`: `curve` 0 secp256k1,
/// 1 secp256r1.
pub fn cost_sign_with_ecdsa(key_name: &str, curve: u32) -> Result<u128, SignCostError> {
    sign_cost(ic0::cost_sign_with_ecdsa(key_name, curve))
}

/// The fee of `sign_with_schnorr` with key `key_name`: `algorithm` 0
/// bip340secp256k1, 1 ed25519.
pub fn cost_sign_with_schnorr(key_name: &str, algorithm: u32) -> Result<u128, SignCostError> {
    sign_cost(ic0::cost_sign_with_schnorr(key_name, algorithm))
}

/// The fee of `vetkd_derive_key` with key `key_name`: `curve` 0
/// bls12_381_g2.
pub fn cost_vetkd_derive_key(key_name: &str, curve: u32) -> Result<u128, SignCostError> {
    sign_cost(ic0::cost_vetkd_derive_key(key_name, curve))
}

// -- this canister

/// This canister's id.
pub fn canister_self() -> Principal {
    principal(ic0::canister_self(), "this canister's id")
}

/// A canister's status, as [`canister_status`] returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CanisterStatusCode {
    /// Running.
    Running,
    /// Stopping: no new calls are accepted.
    Stopping,
    /// Stopped.
    Stopped,
    /// A code this SDK does not know.
    Unrecognized(u32),
}

impl From<u32> for CanisterStatusCode {
    fn from(code: u32) -> Self {
        match code {
            1 => Self::Running,
            2 => Self::Stopping,
            3 => Self::Stopped,
            other => Self::Unrecognized(other),
        }
    }
}

/// This canister's status.
pub fn canister_status() -> CanisterStatusCode {
    ic0::canister_status().into()
}

/// This canister's version (bumped by installs, upgrades and settings changes).
pub fn canister_version() -> u64 {
    ic0::canister_version()
}

/// Whether `principal` controls this canister.
pub fn is_controller(principal: &Principal) -> bool {
    ic0::is_controller(principal.as_slice())
}

/// Whether this execution is replicated (an update) rather than a query.
pub fn in_replicated_execution() -> bool {
    ic0::in_replicated_execution()
}

// -- time and timers

/// Replica time, in nanoseconds since the epoch: constant within one
/// execution, monotonic across executions.
pub fn time() -> u64 {
    ic0::time()
}

/// Sets the global timer to `timestamp` (nanoseconds since the epoch; 0
/// deactivates it) and returns the previous value (0 once it fired). When
/// it passes, the host runs the `#[on_timer]` function once. (The SDK
/// shares the host's one timer with its own work, the intents' TTL sweep;
/// this is the canister's timer alone.)
pub fn set_global_timer(timestamp: u64) -> u64 {
    crate::timers::set_canister_timer(timestamp)
}

/// `ic-cdk`'s name of [`set_global_timer`].
pub fn global_timer_set(timestamp: u64) -> u64 {
    set_global_timer(timestamp)
}

// -- introspection and debugging

/// Instructions executed so far in this execution (`counter_type` 0).
pub fn performance_counter(counter_type: u32) -> u64 {
    ic0::performance_counter(counter_type)
}

/// The number of instructions executed so far in this execution.
pub fn instruction_counter() -> u64 {
    performance_counter(0)
}

/// Writes `message` to the canister log. See also [`crate::println!`].
pub fn debug_print<T: AsRef<str>>(message: T) {
    ic0::debug_print(message.as_ref());
}

/// Traps with `message`: the host rolls the execution back.
pub fn trap<T: AsRef<str>>(message: T) -> ! {
    ic0::trap(message.as_ref());
    // `ic0.trap` does not return; if a host ever did, still trap.
    std::process::abort()
}
