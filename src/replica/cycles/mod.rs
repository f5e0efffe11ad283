//! Cycles accounting: the IC's fee schedule and every charge computed from
//! it, in one place (the scheduler, the ingress path, the management
//! canister and the `ic0.cost_*` functions all ask [`Fees`]).
//!
//! Fees are the IC's published ones for a 13-node application subnet
//! (`CyclesAccountManagerConfig::application_subnet`), each scaled to the
//! canister's subnet as `fee · nodes / 13` (integer division, each part
//! separately, as the IC's `scale_cost`). A [`CostSchedule`] says whether a
//! subnet charges: `Normal`; `Free` (PocketIC's `cost_schedule: Free`, ww's
//! `--cycles free`): every charge and every `cost_*` is 0; `System` (the
//! IC's system subnets): nothing but threshold signatures is charged.
//!
//! What is charged, and when (the IC's `cycles_account_manager`):
//! - an execution prepays [`Fees::execution_prepay`] (base fee + the
//!   instruction limit) before it starts, and gets the unused instructions
//!   back: the net charge is [`Fees::execution_cost`] of what it used;
//! - `call_perform` withdraws [`Fees::call_cost`] (the call and its bytes)
//!   plus [`Fees::response_reservation`] (the largest response's bytes and
//!   its callback's prepayment); the response refunds
//!   [`Fees::response_refund`] before the callback runs;
//! - an ingress message costs [`Fees::ingress_cost`], paid by its canister
//!   when it is inducted;
//! - memory and compute allocation are charged over replica time
//!   ([`Fees::resource_charge`]), in steps of at least
//!   [`RESOURCE_CHARGE_PERIOD_NS`];
//! - `create_canister` takes [`Fees::creation`] from the new canister's
//!   initial cycles.
//!
//! A canister may not spend below its freezing limit
//! ([`Fees::freezing_limit`]): what is left above it is its liquid balance.

mod account;

pub(in crate::replica) use account::Payment;

/// Whether and how a subnet charges cycles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CostSchedule {
    /// The IC's fee schedule.
    #[default]
    Normal,
    /// Nothing is charged and every `cost_*` is 0 (PocketIC's Free).
    Free,
    /// An IC system subnet: only threshold signatures cost cycles.
    System,
}

impl std::str::FromStr for CostSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "normal" => Ok(Self::Normal),
            "free" => Ok(Self::Free),
            other => Err(format!("unknown cycles schedule '{other}' (expected 'normal' or 'free')")),
        }
    }
}

/// The 13-node reference fees.
pub mod fee13 {
    pub const CREATE_CANISTER: u128 = 500_000_000_000;
    pub const UPDATE_MESSAGE: u128 = 5_000_000;
    /// Per instruction (the IC's `ten_update_instructions_execution_fee`
    /// is 10 per ten instructions).
    pub const INSTRUCTION: u128 = 1;
    pub const XNET_CALL: u128 = 260_000;
    pub const XNET_BYTE: u128 = 1_000;
    pub const INGRESS_MESSAGE: u128 = 1_200_000;
    pub const INGRESS_BYTE: u128 = 2_000;
    pub const GIB_STORAGE_PER_SECOND: u128 = 127_000;
    pub const COMPUTE_PERCENT_PER_SECOND: u128 = 10_000_000;
}

/// The reference subnet size the fees are given for.
pub const REFERENCE_NODES: u128 = 13;
/// Wasm64 instructions cost twice as much.
pub const WASM64_INSTRUCTION_FACTOR: u128 = 2;
/// The largest inter-canister payload, whose transmission a call reserves
/// for its response.
pub const MAX_RESPONSE_BYTES: u128 = 2 * 1024 * 1024;
/// The IC's `max_instructions_per_message` on application subnets: what an
/// execution prepays.
pub const MAX_INSTRUCTIONS_PER_MESSAGE: u128 = 40_000_000_000;
/// Memory and compute are charged at most this often (the IC's
/// `duration_between_allocation_charges`, 10 s).
pub const RESOURCE_CHARGE_PERIOD_NS: u64 = 10_000_000_000;
const SECONDS_PER_DAY: u128 = 86_400;
const GIB: u128 = 1 << 30;

/// What a canister's subnet charges: its size and schedule. Copy; every
/// charge is a method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fees {
    nodes: u128,
    schedule: CostSchedule,
}

impl Default for Fees {
    fn default() -> Self {
        Self::new(13, CostSchedule::Normal)
    }
}

impl Fees {
    pub fn new(nodes: u32, schedule: CostSchedule) -> Self {
        Self { nodes: u128::from(nodes), schedule }
    }

    pub fn schedule(&self) -> CostSchedule {
        self.schedule
    }

    pub fn nodes(&self) -> u32 {
        u32::try_from(self.nodes).unwrap_or(u32::MAX)
    }

    /// Whether resources and messages are charged at all.
    pub fn charges(&self) -> bool {
        self.schedule == CostSchedule::Normal
    }

    /// A 13-node fee on this subnet (0 when it does not charge).
    pub fn scale(&self, fee: u128) -> u128 {
        if self.charges() { fee.saturating_mul(self.nodes) / REFERENCE_NODES } else { 0 }
    }

    fn instructions(instructions: u128, wasm64: bool) -> u128 {
        let per = if wasm64 { fee13::INSTRUCTION * WASM64_INSTRUCTION_FACTOR } else { fee13::INSTRUCTION };
        instructions.saturating_mul(per)
    }

    /// The net cost of an execution that used `instructions`.
    pub fn execution_cost(&self, instructions: u64, wasm64: bool) -> u128 {
        self.scale(fee13::UPDATE_MESSAGE + Self::instructions(u128::from(instructions), wasm64))
    }

    /// What an execution prepays (its cost at the instruction limit); it
    /// may start only if this fits above the freezing limit.
    pub fn execution_prepay(&self, wasm64: bool) -> u128 {
        self.scale(fee13::UPDATE_MESSAGE + Self::instructions(MAX_INSTRUCTIONS_PER_MESSAGE, wasm64))
    }

    /// The call and its request bytes (`call_perform`, not refunded).
    pub fn call_cost(&self, method: usize, arg: usize) -> u128 {
        self.scale(fee13::XNET_CALL) + self.scale(fee13::XNET_BYTE.saturating_mul((method + arg) as u128))
    }

    /// What `call_perform` also reserves for the response: its largest
    /// transmission and its callback's prepayment.
    pub fn response_reservation(&self, wasm64: bool) -> u128 {
        self.scale(fee13::XNET_BYTE * MAX_RESPONSE_BYTES) + self.execution_prepay(wasm64)
    }

    /// [`Self::response_reservation`], by part.
    pub fn reserve_response(&self, wasm64: bool) -> Reservation {
        Reservation { transmission: self.scale(fee13::XNET_BYTE * MAX_RESPONSE_BYTES), execution: self.execution_prepay(wasm64) }
    }

    /// The transmission part of the reservation a response of
    /// `response_bytes` gives back.
    pub fn response_refund(&self, response_bytes: usize) -> u128 {
        self.scale(fee13::XNET_BYTE * MAX_RESPONSE_BYTES.saturating_sub(response_bytes as u128))
    }

    /// `ic0.cost_call`: what must fit above the freezing limit for
    /// `call_perform` to succeed (attached cycles aside).
    pub fn cost_call(&self, method: usize, arg: usize, wasm64: bool) -> u128 {
        self.call_cost(method, arg) + self.response_reservation(wasm64)
    }

    /// An ingress message of `bytes` (its whole envelope).
    pub fn ingress_cost(&self, bytes: usize) -> u128 {
        self.scale(fee13::INGRESS_MESSAGE) + self.scale(fee13::INGRESS_BYTE.saturating_mul(bytes as u128))
    }

    /// `create_canister`'s fee, taken from the new canister's cycles.
    pub fn creation(&self) -> u128 {
        self.scale(fee13::CREATE_CANISTER)
    }

    fn memory_per_day(&self, bytes: u64) -> u128 {
        self.scale(u128::from(bytes).saturating_mul(fee13::GIB_STORAGE_PER_SECOND * SECONDS_PER_DAY) / GIB)
    }

    /// `idle_cycles_burned_per_day`: what holding `memory_bytes` (the
    /// larger of the usage and the memory allocation) and a compute
    /// allocation of `compute_percent` costs per day.
    pub fn idle_burn_per_day(&self, memory_bytes: u64, compute_percent: u64) -> u128 {
        self.memory_per_day(memory_bytes)
            + self.scale(u128::from(compute_percent) * fee13::COMPUTE_PERCENT_PER_SECOND * SECONDS_PER_DAY)
    }

    /// The freezing limit: the idle burn for `threshold_secs`.
    pub fn freezing_limit(&self, memory_bytes: u64, compute_percent: u64, threshold_secs: u64) -> u128 {
        self.idle_burn_per_day(memory_bytes, compute_percent).saturating_mul(u128::from(threshold_secs)) / SECONDS_PER_DAY
    }

    /// Memory and compute for `elapsed_ns` of replica time (the IC's
    /// `memory_cost` and `compute_allocation_cost`: the product first,
    /// then the division, then the scaling).
    pub fn resource_charge(&self, memory_bytes: u64, compute_percent: u64, elapsed_ns: u64) -> u128 {
        let secs = u128::from(elapsed_ns / 1_000_000_000);
        let memory = self.scale(u128::from(memory_bytes).saturating_mul(fee13::GIB_STORAGE_PER_SECOND).saturating_mul(secs) / GIB);
        let compute = self.scale(u128::from(compute_percent) * fee13::COMPUTE_PERCENT_PER_SECOND * secs);
        memory + compute
    }
}

/// What a call set aside for its response: the largest response's
/// transmission (refunded but for the response's bytes when it arrives)
/// and its callback's prepayment (refunded but for the callback's
/// execution).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reservation {
    pub transmission: u128,
    pub execution: u128,
}

impl Reservation {
    pub fn total(&self) -> u128 {
        self.transmission + self.execution
    }
}

/// The size of a call's HTTP envelope without signatures (CBOR, as an
/// agent sends it: `{content: {request_type, canister_id, method_name,
/// arg, sender, ingress_expiry}}` under the self-describing tag): what
/// ingress from a front end that has no envelope (PocketIC, the control
/// socket) is charged by.
pub fn unsigned_envelope_bytes(sender: &candid::Principal, canister: &candid::Principal, method: &str, arg_len: usize) -> usize {
    fn head(len: usize) -> usize {
        match len {
            0..=23 => 1,
            24..=0xff => 2,
            0x100..=0xffff => 3,
            0x1_0000..=0xffff_ffff => 5,
            _ => 9,
        }
    }
    let text = |s: &str| head(s.len()) + s.len();
    let bytes = |n: usize| head(n) + n;
    let tag = 3;
    let envelope = head(1) + text("content");
    let content = head(6)
        + text("request_type")
        + text("call")
        + text("canister_id")
        + bytes(canister.as_slice().len())
        + text("method_name")
        + text(method)
        + text("arg")
        + bytes(arg_len)
        + text("sender")
        + bytes(sender.as_slice().len())
        + text("ingress_expiry")
        + 9;
    tag + envelope + content
}

/// The extra cycles a canister needs for `cost` to fit above its freezing
/// limit (the figure the IC's out-of-cycles errors give).
pub fn top_up_needed(balance: u128, freezing_limit: u128, cost: u128) -> u128 {
    freezing_limit.saturating_add(cost).saturating_sub(balance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_call_on_13_nodes_is_the_spec_sum() {
        let fees = Fees::default();
        // 260_000 + 1_000·(m+p) + 1_000·2 MiB + 5_000_000 + 40 B
        assert_eq!(fees.cost_call(3, 7, false), 42_102_412_000 + 10_000);
        assert_eq!(fees.execution_prepay(false), 40_005_000_000);
        assert_eq!(fees.execution_prepay(true), 80_005_000_000);
    }

    #[test]
    fn fees_scale_part_by_part() {
        let fees = Fees::new(34, CostSchedule::Normal);
        assert_eq!(fees.creation(), 1_307_692_307_692);
        assert_eq!(fees.scale(fee13::UPDATE_MESSAGE), 13_076_923);
        assert_eq!(fees.ingress_cost(0), 3_138_461);
        assert_eq!(fees.call_cost(0, 0), 680_000);
        assert_eq!(fees.call_cost(1, 0), 680_000 + 2_615);
    }

    #[test]
    fn the_reference_worked_example() {
        // 1 GiB on 13 nodes: 10_972_800_000 per day; 30 days' threshold.
        let fees = Fees::default();
        assert_eq!(fees.idle_burn_per_day(1 << 30, 0), 10_972_800_000);
        assert_eq!(fees.freezing_limit(1 << 30, 0, 2_592_000), 329_184_000_000);
        assert_eq!(fees.idle_burn_per_day(0, 1), 864_000_000_000);
        assert_eq!(fees.resource_charge(1 << 30, 0, 86_400_000_000_000), 10_972_800_000);
    }

    #[test]
    fn free_and_system_schedules_charge_nothing() {
        for schedule in [CostSchedule::Free, CostSchedule::System] {
            let fees = Fees::new(13, schedule);
            assert_eq!(fees.cost_call(10, 10, false), 0);
            assert_eq!(fees.creation(), 0);
            assert_eq!(fees.freezing_limit(1 << 30, 5, 2_592_000), 0);
        }
    }

    #[test]
    fn a_response_refunds_what_it_did_not_use() {
        let fees = Fees::default();
        assert_eq!(fees.response_refund(0), 2_097_152_000);
        assert_eq!(fees.response_refund(100), 2_097_152_000 - 100_000);
        assert_eq!(top_up_needed(10, 20, 5), 15);
        assert_eq!(top_up_needed(100, 20, 5), 0);
    }
}
