//! pocket-ic 16.x against ww: the IC's cycles accounting as an ic-cdk
//! canister (guests/ic-cdk/cdk_platform) and the test see it, with every
//! expected amount computed here from the IC's published fee schedule
//! (`CyclesAccountManagerConfig::application_subnet`, the interface spec),
//! never taken from ww:
//!
//! - fees are defined for 13 nodes and scaled `fee · n / 13` (integer
//!   division), each part on its own;
//! - before an update, a call's callback or a call from another canister
//!   runs, `execution_cost(40 B instructions) = scale(5_000_000 +
//!   40_000_000_000)` is withdrawn, the unused instructions refunded after;
//! - `call_perform` withdraws exactly `ic0.cost_call(|method|, |arg|)`
//!   (call fee, request bytes, the reservation for a 2 MiB response and for
//!   executing the callback) plus the cycles attached; the response refunds
//!   `scale(1_000 · (2 MiB − response bytes))` before the callback runs (a
//!   reject counts its message plus 1 byte for the reject code);
//! - ingress costs `scale(1_200_000) + scale(2_000 · envelope bytes)`;
//! - memory costs 127_000 cycles per GiB and second, charged every 10 s or
//!   more; `idle_cycles_burned_per_day` is the day's amount, and
//!   `freezing_limit = idle_cycles_burned_per_day · freezing_threshold /
//!   86_400`; the liquid balance is the balance above it;
//! - a canister below its freezing limit (or one that cannot prepay a
//!   message above it) refuses work with the IC's errors, and works again
//!   after a top-up or a lower threshold;
//! - `create_canister` takes its fee (500 B · n / 13) from the cycles sent;
//! - under PocketIC's `Free` cost schedule nothing is charged, while cycles
//!   attached to calls and burned cycles still move.
//!
//! The test reads a canister's balance from outside with the client's
//! `cycle_balance` (free, unlike `canister_status`, an ingress message the
//! canister pays for) and inside with the canister's own System API calls.

use std::time::Duration;

use candid::{CandidType, Decode, Deserialize, Encode, Nat, Principal};
use pocket_ic::common::rest::{CanisterCyclesCostSchedule, CreateInstanceResponse, ExtendedSubnetConfigSet, IcpConfig, IcpFeatures, InstanceConfig, SubnetSpec};
use pocket_ic::{CanisterSettings, ErrorCode, PocketIc, PocketIcBuilder, RejectCode, RejectResponse};

mod common;
use common::{check_server, wasm};


// --- the fee schedule --------------------------------------------------------

/// An application subnet's size, the reference size of every fee.
const APP_NODES: u128 = 13;
/// PocketIC 16's fiduciary subnet.
const FIDUCIARY_NODES: u128 = 34;

const MAX_INSTRUCTIONS: u128 = 40_000_000_000;
const UPDATE_BASE_FEE: u128 = 5_000_000;
const XNET_CALL_FEE: u128 = 260_000;
const XNET_BYTE_FEE: u128 = 1_000;
const INGRESS_FEE: u128 = 1_200_000;
const INGRESS_BYTE_FEE: u128 = 2_000;
const GIB_STORAGE_PER_SECOND_FEE: u128 = 127_000;
const CREATION_FEE: u128 = 500_000_000_000;
/// `MAX_INTER_CANISTER_PAYLOAD_IN_BYTES`: the response size reserved.
const MAX_RESPONSE_BYTES: u128 = 2 * 1024 * 1024;
const DAY: u128 = 86_400;
const GIB: u128 = 1 << 30;

/// A fee of the 13-node schedule on `nodes` nodes.
fn scale(fee: u128, nodes: u128) -> u128 {
    fee * nodes / APP_NODES
}

/// `execution_cost(max_instructions)`: what a message prepays.
fn prepay(nodes: u128) -> u128 {
    scale(UPDATE_BASE_FEE + MAX_INSTRUCTIONS, nodes)
}

/// `ic0.cost_call(method_len, arg_len)`, part by part.
fn cost_call(method_len: u128, arg_len: u128, nodes: u128) -> u128 {
    scale(XNET_CALL_FEE, nodes) + scale(XNET_BYTE_FEE * (method_len + arg_len), nodes) + scale(XNET_BYTE_FEE * MAX_RESPONSE_BYTES, nodes) + prepay(nodes)
}

/// What a response of `bytes` bytes gives back of the response reservation.
fn response_refund(bytes: u128, nodes: u128) -> u128 {
    scale(XNET_BYTE_FEE * MAX_RESPONSE_BYTES, nodes) - scale(XNET_BYTE_FEE * bytes, nodes)
}

/// The memory part of `idle_cycles_burned_per_day`.
fn memory_per_day(bytes: u128, nodes: u128) -> u128 {
    scale(bytes * GIB_STORAGE_PER_SECOND_FEE * DAY / GIB, nodes)
}

/// The bounds of an ingress message's fee whose argument is `arg_len`
/// bytes: the envelope is the argument plus sender, ids, method name, expiry
/// and nonce, which this allows up to 2 KiB for.
fn ingress_fee_bounds(arg_len: u128, nodes: u128) -> (u128, u128) {
    (scale(INGRESS_FEE, nodes) + scale(INGRESS_BYTE_FEE * arg_len, nodes), scale(INGRESS_FEE, nodes) + scale(INGRESS_BYTE_FEE * (arg_len + 2048), nodes))
}

/// How many instructions a small update of cdk_platform may take, generously
/// (the tests compare refunds of unused instructions against it).
const SMALL_MESSAGE_INSTRUCTIONS: u128 = 1_000_000_000;

// --- cdk_platform ------------------------------------------------------------

/// cdk_platform's `Failure`.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Failure {
    code: u32,
    message: String,
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Balances {
    balance: u128,
    liquid: u128,
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Burned {
    before: u128,
    liquid_before: u128,
    burned: u128,
    after: u128,
    liquid_after: u128,
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Measured {
    before: u128,
    after_perform: u128,
    in_callback: u128,
    instructions_at_perform: u64,
    cost_call: u128,
    refunded: u128,
    response_bytes: u64,
    reply: Option<Vec<u8>>,
    reject: Option<Failure>,
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Performed {
    code: u32,
    before: u128,
    after: u128,
    cost_call: u128,
}

/// The raw argument of a method without arguments.
fn no_args() -> Vec<u8> {
    Encode!().unwrap()
}

/// One cdk_platform canister.
#[derive(Clone, Copy)]
struct Platform<'a> {
    pic: &'a PocketIc,
    id: Principal,
}

impl<'a> Platform<'a> {
    /// Creates (100 T cycles from the client) and installs cdk_platform on
    /// `subnet`, and runs one update so that its heap has settled.
    fn install(pic: &'a PocketIc, subnet: Principal) -> Self {
        let id = pic.create_canister_on_subnet(None, None, subnet);
        pic.install_canister(id, wasm("cdk_platform"), no_args(), None);
        let p = Platform { pic, id };
        p.balance_update();
        p
    }

    fn update<T: CandidType + for<'de> Deserialize<'de>>(&self, method: &str, arg: Vec<u8>) -> T {
        let reply = self.pic.update_call(self.id, Principal::anonymous(), method, arg).unwrap_or_else(|e| panic!("{method}: {e}"));
        candid::decode_one(&reply).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn query<T: CandidType + for<'de> Deserialize<'de>>(&self, method: &str, arg: Vec<u8>) -> T {
        let reply = self.pic.query_call(self.id, Principal::anonymous(), method, arg).unwrap_or_else(|e| panic!("{method}: {e}"));
        candid::decode_one(&reply).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// The balance as the client reads it (free).
    fn cycles(&self) -> u128 {
        self.pic.cycle_balance(self.id)
    }

    /// `canister_status` (an ingress message the canister pays for):
    /// (cycles, idle_cycles_burned_per_day, memory_size, freezing_threshold).
    fn status(&self) -> Status {
        let s = self.pic.canister_status(self.id, None).unwrap_or_else(|e| panic!("canister_status: {e}"));
        let n = |n: &Nat| u128::try_from(n.0.clone()).expect("a u128");
        assert_eq!(n(&s.reserved_cycles), 0, "no reserved cycles below the subnet's storage reservation threshold");
        Status {
            cycles: n(&s.cycles),
            idle_per_day: n(&s.idle_cycles_burned_per_day),
            memory_size: n(&s.memory_size),
            freezing_threshold: n(&s.settings.freezing_threshold),
        }
    }

    fn balance_update(&self) -> u128 {
        self.update("balance_update", no_args())
    }

    fn liquid(&self) -> Balances {
        self.update("liquid", no_args())
    }

    fn liquid_query(&self) -> Balances {
        self.query("liquid_query", no_args())
    }

    fn padded(&self, padding: &[u8]) -> u128 {
        self.update("padded", Encode!(&padding).unwrap())
    }

    fn burn(&self, amount: u128) -> Burned {
        self.update("burn", Encode!(&amount).unwrap())
    }

    fn burn_to(&self, keep: u128) -> Burned {
        self.update("burn_to", Encode!(&keep).unwrap())
    }

    fn cost_call(&self, method_len: u64, arg_len: u64) -> u128 {
        self.query("cost_call", Encode!(&method_len, &arg_len).unwrap())
    }

    fn cost_create_canister(&self) -> u128 {
        self.query("cost_create_canister", no_args())
    }

    fn measure_call(&self, callee: Principal, method: &str, arg: &[u8], cycles: u128) -> Result<Measured, Failure> {
        self.update("measure_call", Encode!(&callee, &method, &arg, &cycles).unwrap())
    }

    fn perform_raw(&self, callee: Principal, method: &str, arg: &[u8], cycles: u128) -> Performed {
        self.update("perform_raw", Encode!(&callee, &method, &arg, &cycles).unwrap())
    }

    fn create_with(&self, cycles: u128) -> Result<Principal, Failure> {
        self.update("create_with", Encode!(&cycles).unwrap())
    }

    fn create_extra(&self, extra: u128) -> Result<Principal, Failure> {
        self.update("create_extra", Encode!(&extra).unwrap())
    }

    fn set_freezing_threshold(&self, seconds: u128) {
        let settings = CanisterSettings { freezing_threshold: Some(Nat::from(seconds)), ..CanisterSettings::default() };
        self.pic.update_canister_settings(self.id, None, settings).unwrap_or_else(|e| panic!("update_settings: {e}"));
    }
}

#[derive(Debug, Clone, Copy)]
struct Status {
    cycles: u128,
    idle_per_day: u128,
    memory_size: u128,
    freezing_threshold: u128,
}

impl Status {
    fn freezing_limit(&self) -> u128 {
        self.idle_per_day * self.freezing_threshold / DAY
    }
}

fn app_subnet(pic: &PocketIc) -> Principal {
    *pic.topology().get_app_subnets().first().expect("an application subnet")
}

fn app_pic() -> PocketIc {
    check_server();
    PocketIc::new()
}

fn fiduciary_pic() -> (PocketIc, Principal) {
    check_server();
    let pic = PocketIcBuilder::new().with_fiduciary_subnet().build();
    let subnet = pic.topology().get_fiduciary().expect("a fiduciary subnet");
    (pic, subnet)
}

/// An instance whose one application subnet has the `Free` cost schedule.
///
/// The pocket-ic 16.1 client can describe such a subnet
/// (`SubnetSpec::with_cost_schedule`) but `PocketIcBuilder` takes no
/// `SubnetSpec`: so the instance is created with the client's own
/// `InstanceConfig` posted to the server that a plain `PocketIc::new()`
/// started, and the client attaches to it with `new_from_existing_instance`
/// (which does not delete it when dropped: `FreeInstance` does).
struct FreeInstance {
    pic: PocketIc,
    _server: PocketIc,
    authority: String,
    instance_id: usize,
}

impl Drop for FreeInstance {
    fn drop(&mut self) {
        let _ = http(&self.authority, "DELETE", &format!("/instances/{}", self.instance_id), None);
    }
}

/// One HTTP/1.1 request to the PocketIC server: the response's status and
/// body.
fn http(authority: &str, method: &str, path: &str, body: Option<&[u8]>) -> std::io::Result<(u16, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(authority)?;
    let body = body.unwrap_or_default();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP response");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("an HTTP status");
    let mut rest = &response[split + 4..];
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Ok((status, rest.to_vec()));
    }
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").expect("a chunk size");
        let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return Ok((status, body));
        }
        body.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
        rest = &rest[line_end + 2 + size + 2..];
    }
}

fn free_instance() -> FreeInstance {
    check_server();
    let server = PocketIc::new();
    let url = server.get_server_url();
    let authority = format!("{}:{}", url.host_str().expect("a host"), url.port().expect("a port"));
    let config = InstanceConfig {
        subnet_config_set: ExtendedSubnetConfigSet {
            application: vec![SubnetSpec::default().with_cost_schedule(CanisterCyclesCostSchedule::Free)],
            ..ExtendedSubnetConfigSet::default()
        },
        icp_config: Some(IcpConfig::default()),
        icp_features: Some(IcpFeatures::default()),
        ..InstanceConfig::default()
    };
    let (status, body) = http(&authority, "POST", "/instances", Some(&serde_json::to_vec(&config).unwrap())).expect("POST /instances");
    let response: CreateInstanceResponse =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("POST /instances answered {status}: {e}: {}", String::from_utf8_lossy(&body)));
    let instance_id = match response {
        CreateInstanceResponse::Created { instance_id, topology, .. } => {
            let subnets: Vec<_> = topology.subnet_configs.values().collect();
            assert_eq!(subnets.len(), 1);
            assert_eq!(subnets[0].cost_schedule, CanisterCyclesCostSchedule::Free, "the topology shows the Free schedule");
            instance_id
        }
        CreateInstanceResponse::Error { message } => panic!("a Free application subnet was refused: {message}"),
    };
    let pic = PocketIc::new_from_existing_instance(url, instance_id, None);
    FreeInstance { pic, _server: server, authority, instance_id }
}

/// The raw argument of `reply_bytes(size)` / `reject_text(size)`: the same
/// length for every size.
fn size_arg(size: u64) -> Vec<u8> {
    Encode!(&size).unwrap()
}

/// `<prefix><number><suffix>`: the number (written with or without `_`
/// separators, as the IC's `Cycles` display has done either way).
fn number_between(message: &str, prefix: &str, suffix: &str) -> u128 {
    let rest = message.strip_prefix(prefix).unwrap_or_else(|| panic!("{message:?} does not start with {prefix:?}"));
    let end = rest.find(suffix).unwrap_or_else(|| panic!("{message:?}: no {suffix:?} after the number"));
    rest[..end].replace('_', "").parse().unwrap_or_else(|e| panic!("{message:?}: {e}"))
}

// --- calls -------------------------------------------------------------------

/// Everything a call shows of the call fees on a subnet of `nodes` nodes,
/// `caller` calling `callee` (both cdk_platform, on that subnet).
fn check_call_accounting(caller: Platform, callee: Platform, nodes: u128) {
    // ic0.cost_call is the fee schedule's sum, each part scaled on its own.
    for (m, p) in [(0u64, 0u64), (1, 1), (11, 8), (100, 5_000), (20, 2_000_000)] {
        assert_eq!(caller.cost_call(m, p), cost_call(m.into(), p.into(), nodes), "cost_call({m}, {p}) on {nodes} nodes");
    }
    if nodes == APP_NODES {
        assert_eq!(caller.cost_call(11, 8), 42_102_412_000 + 1_000 * 19, "the interface spec's 13-node figure");
    }
    assert_eq!(caller.cost_create_canister(), scale(CREATION_FEE, nodes));

    let arg = size_arg(100);
    let measure = |method: &str, size: u64, cycles: u128| -> Measured {
        caller.measure_call(callee.id, method, &size_arg(size), cycles).unwrap_or_else(|f| panic!("{method}({size}): {f:?}"))
    };
    // Once first, so that both canisters' heaps have settled.
    measure("reply_bytes", 100, 0);

    // call_perform withdraws exactly ic0.cost_call.
    let a = measure("reply_bytes", 100, 0);
    assert_eq!(a.cost_call, cost_call("reply_bytes".len() as u128, arg.len() as u128, nodes), "ic0.cost_call in the method");
    assert_eq!(a.before - a.after_perform, a.cost_call, "call_perform withdrew ic0.cost_call: {a:?}");
    assert_eq!(a.reply.as_ref().map(Vec::len), Some(a.response_bytes as usize));
    assert_eq!(Decode!(a.reply.as_ref().unwrap(), Vec<u8>).unwrap(), vec![0x5a; 100]);
    assert_eq!(a.refunded, 0);
    // In the callback: the response refund, plus the update's unused
    // instructions refunded when the update's first part ended.
    let d = |m: &Measured| m.in_callback - m.after_perform;
    let unused = d(&a).checked_sub(response_refund(a.response_bytes.into(), nodes)).unwrap_or_else(|| panic!("the callback saw less than the response refund: {a:?}"));
    assert!(
        unused <= scale(MAX_INSTRUCTIONS, nodes) && unused >= scale(MAX_INSTRUCTIONS - SMALL_MESSAGE_INSTRUCTIONS, nodes),
        "in_callback - after_perform - response refund = {unused}: not the refund of a small update's unused instructions ({a:?})"
    );
    // After the callback: its own unused instructions refunded.
    let after = caller.cycles();
    let callback_refund = after.checked_sub(a.in_callback).unwrap_or_else(|| panic!("the balance fell after the callback: {after} < {a:?}"));
    assert!(
        callback_refund <= scale(MAX_INSTRUCTIONS, nodes) && callback_refund >= scale(MAX_INSTRUCTIONS - SMALL_MESSAGE_INSTRUCTIONS, nodes),
        "after the callback the balance rose by {callback_refund}: not the callback prepayment's unused part"
    );

    // The refund of the update's unused instructions depends on how many it
    // used, which varies a little from call to call (the heap differs).
    // The canister reads its instruction counter right after call_perform:
    // with that added back, what is left is the same for every call (the
    // few instructions after the reading are always the same), so the
    // response refunds compare exactly on 13 nodes; on 34 the two scalings
    // each round by less than 1.
    let settled = |m: &Measured| d(m) as i128 + scale(m.instructions_at_perform.into(), nodes) as i128;
    let tolerance: u128 = if nodes == APP_NODES { 0 } else { 2 };
    let tail = (MAX_INSTRUCTIONS - u128::from(a.instructions_at_perform)) as i128 - (unused * APP_NODES / nodes) as i128;
    eprintln!(
        "{nodes} nodes: the update's unused instructions refunded {unused} ({} used at call_perform, about {tail} after), the callback's {callback_refund}",
        a.instructions_at_perform
    );
    assert!((-2..1_000_000).contains(&tail), "the update used {tail} instructions after call_perform?");

    // The same call again.
    let b = measure("reply_bytes", 100, 0);
    assert_eq!(b.before - b.after_perform, b.cost_call);
    assert!(settled(&a).abs_diff(settled(&b)) <= tolerance, "two equal calls: {} and {} in the callback, instructions added back", settled(&a), settled(&b));

    // A bigger reply refunds less, by the byte fee of the difference.
    let big = measure("reply_bytes", 200_000, 0);
    assert_eq!(big.before - big.after_perform, big.cost_call, "the reply size does not change what call_perform takes");
    let expected = scale(XNET_BYTE_FEE * u128::from(big.response_bytes), nodes) as i128 - scale(XNET_BYTE_FEE * u128::from(a.response_bytes), nodes) as i128;
    let got = settled(&a) - settled(&big);
    assert!(got.abs_diff(expected) <= tolerance, "a {}-byte reply refunds {got} less than a {}-byte one; expected {expected}", big.response_bytes, a.response_bytes);

    // A reject counts its message and one byte for its code.
    let r = measure("reject_text", 100, 0);
    assert_eq!(r.reject, Some(Failure { code: RejectCode::CanisterReject as u32, message: "r".repeat(100) }));
    assert_eq!(r.response_bytes, 100);
    assert_eq!(r.before - r.after_perform, r.cost_call);
    let expected = scale(XNET_BYTE_FEE * (1 + 100), nodes) as i128 - scale(XNET_BYTE_FEE * u128::from(a.response_bytes), nodes) as i128;
    let got = settled(&a) - settled(&r);
    assert!(got.abs_diff(expected) <= tolerance, "a reject of 100 bytes refunds {got} less than a {}-byte reply; expected {expected} (1 + 100 bytes)", a.response_bytes);

    // Attached cycles leave with the call and come back unaccepted.
    let c = measure("reply_bytes", 100, 7_000_000);
    assert_eq!(c.before - c.after_perform, c.cost_call + 7_000_000, "call_perform withdrew ic0.cost_call and the attached cycles");
    assert_eq!(c.refunded, 7_000_000, "reply_bytes accepts nothing");
    let got = settled(&c) - 7_000_000;
    assert!(got.abs_diff(settled(&a)) <= tolerance, "with 7_000_000 cycles attached the callback saw {got}, without {}", settled(&a));

    // The callee, called by a canister, runs with the prepayment withdrawn
    // (no ingress fee): its balance inside is the one read from outside
    // less execution_cost(40 B).
    let status = callee.status();
    let outside = callee.cycles();
    assert_eq!(status.cycles, outside, "canister_status reports the balance (after its own ingress fee)");
    let m = caller.measure_call(callee.id, "balance_update", &no_args(), 0).expect("balance_update");
    let inside = Decode!(m.reply.as_ref().expect("replied"), u128).unwrap();
    assert_eq!(inside, outside - prepay(nodes), "the callee's balance inside = canister_status cycles - scale(40_005_000_000)");
    let charged = outside - callee.cycles();
    assert!(
        charged >= scale(UPDATE_BASE_FEE, nodes) && charged <= scale(UPDATE_BASE_FEE + SMALL_MESSAGE_INSTRUCTIONS, nodes),
        "the callee paid {charged}: not scale(5_000_000 + instructions) of a small message"
    );
}

#[test]
fn call_perform_withdraws_cost_call_and_the_response_refunds_the_unused_reservation_on_13_nodes() {
    let pic = app_pic();
    let subnet = app_subnet(&pic);
    let caller = Platform::install(&pic, subnet);
    let callee = Platform::install(&pic, subnet);
    check_call_accounting(caller, callee, APP_NODES);
}

#[test]
fn the_fiduciary_subnet_scales_every_fee_to_34_nodes() {
    let (pic, subnet) = fiduciary_pic();
    let caller = Platform::install(&pic, subnet);
    let callee = Platform::install(&pic, subnet);
    check_call_accounting(caller, callee, FIDUCIARY_NODES);

    // Ingress bytes: scale(2_000 · bytes) for each size, so 2_000 more bytes
    // cost 2_000 · 2_000 · 34 / 13 = 10_461_538.46 more, rounded either way.
    let (small, big) = ingress_fees(caller, 1_000, 3_000, FIDUCIARY_NODES);
    assert!([10_461_538, 10_461_539].contains(&(big - small)), "2_000 more ingress bytes cost {} more on 34 nodes", big - small);

    // Memory: scale(bytes · 127_000 · 86_400 / 2^30), charged after a day.
    check_storage(caller, FIDUCIARY_NODES);

    // Creation: 500 B · 34 / 13.
    assert_eq!(scale(CREATION_FEE, FIDUCIARY_NODES), 1_307_692_307_692);
    check_creation(caller, FIDUCIARY_NODES);
}

// --- ingress -------------------------------------------------------------------

/// The ingress fee of `padded` with `small` and with `big` bytes of padding,
/// from the balance before (read from outside) and inside the update.
fn ingress_fees(p: Platform, small: usize, big: usize, nodes: u128) -> (u128, u128) {
    let fee = |size: usize| {
        let padding = vec![7u8; size];
        let before = p.cycles();
        let inside = p.padded(&padding);
        let fee = before.checked_sub(inside + prepay(nodes)).unwrap_or_else(|| panic!("inside {inside} is not below {before} less the prepayment"));
        let arg_len = Encode!(&padding).unwrap().len() as u128;
        let (lo, hi) = ingress_fee_bounds(arg_len, nodes);
        assert!(fee >= lo && fee <= hi, "the ingress fee of a {arg_len}-byte argument is {fee}: not in [{lo}, {hi}]");
        fee
    };
    // Both sizes have 2-byte LEB128 lengths in Candid and 3-byte headers in
    // CBOR: the envelopes differ by exactly `big - small` bytes.
    fee(small);
    (fee(small), fee(big))
}

#[test]
fn ingress_costs_the_receiving_canister_a_fee_and_2000_cycles_per_byte() {
    let pic = app_pic();
    let p = Platform::install(&pic, app_subnet(&pic));
    let (small, big) = ingress_fees(p, 1_000, 3_000, APP_NODES);
    assert_eq!(big - small, 2_000 * 2_000, "2_000 more bytes of ingress");
    let (small2, big2) = ingress_fees(p, 1_000, 10_000, APP_NODES);
    assert_eq!(small2, small, "the same message costs the same");
    assert_eq!(big2 - small2, 2_000 * 9_000);
}

// --- idle burn, freezing limit, liquid balance ---------------------------------

#[test]
fn the_liquid_balance_is_the_balance_above_the_freezing_limit() {
    let pic = app_pic();
    let p = Platform::install(&pic, app_subnet(&pic));
    let status = p.status();
    let cycles = p.cycles();
    assert_eq!(status.cycles, cycles, "canister_status reports the balance");
    assert_eq!(status.freezing_threshold, 2_592_000, "30 days by default");
    assert!(status.memory_size > 0);
    assert_eq!(status.idle_per_day, memory_per_day(status.memory_size, APP_NODES), "idle_cycles_burned_per_day of {} bytes", status.memory_size);
    let limit = status.freezing_limit();
    assert!(limit > 0);

    // A query pays nothing up front.
    assert_eq!(p.liquid_query(), Balances { balance: cycles, liquid: cycles - limit });
    // An update has paid its ingress fee and the prepayment.
    let inside = p.liquid();
    assert_eq!(inside.liquid, inside.balance - limit, "liquid = balance - idle_cycles_burned_per_day · threshold / 86_400");
    let fee = cycles - prepay(APP_NODES) - inside.balance;
    let (lo, hi) = ingress_fee_bounds(no_args().len() as u128, APP_NODES);
    assert!(fee >= lo && fee <= hi, "ingress fee {fee} not in [{lo}, {hi}]");

    // Other thresholds.
    for threshold in [0u128, 864_000, 365 * 86_400] {
        p.set_freezing_threshold(threshold);
        let status = p.status();
        assert_eq!(status.freezing_threshold, threshold);
        let cycles = p.cycles();
        assert_eq!(p.liquid_query(), Balances { balance: cycles, liquid: cycles - status.idle_per_day * threshold / DAY }, "threshold {threshold}");
    }
}

/// A day of replica time burns `idle_cycles_burned_per_day`; less than
/// 10 s burns nothing; 10 s burn 10 s' worth.
fn check_storage(p: Platform, nodes: u128) {
    let status = p.status();
    assert_eq!(status.idle_per_day, memory_per_day(status.memory_size, nodes), "idle_cycles_burned_per_day of {} bytes on {nodes} nodes", status.memory_size);
    let before = p.cycles();
    p.pic.advance_time(Duration::from_secs(86_400));
    p.pic.tick();
    let after = p.cycles();
    assert_eq!(before - after, status.idle_per_day, "a day burned idle_cycles_burned_per_day");

    p.pic.advance_time(Duration::from_secs(5));
    p.pic.tick();
    assert_eq!(p.cycles(), after, "5 s are below the 10 s between charges");
    p.pic.advance_time(Duration::from_secs(5));
    p.pic.tick();
    let charged = after - p.cycles();
    // The IC computes scale(bytes · 127_000 · 10 / 2^30); a day's rate · 10 /
    // 86_400 differs from it by rounding only.
    let ic = scale(status.memory_size * GIB_STORAGE_PER_SECOND_FEE * 10 / GIB, nodes);
    assert!(charged.abs_diff(ic) <= 1, "10 s burned {charged}, expected {ic} (±1)");
}

#[test]
fn memory_is_charged_by_replica_time() {
    let pic = app_pic();
    let p = Platform::install(&pic, app_subnet(&pic));
    check_storage(p, APP_NODES);
}

// --- cycles_burn -----------------------------------------------------------------

#[test]
fn cycles_burn_takes_at_most_the_liquid_balance_and_a_canister_that_cannot_prepay_refuses_updates() {
    let pic = app_pic();
    let subnet = app_subnet(&pic);
    let p = Platform::install(&pic, subnet);
    let other = Platform::install(&pic, subnet);

    let b = p.burn(1_000_000);
    assert_eq!(b.burned, 1_000_000);
    assert_eq!(b.before - b.after, 1_000_000, "{b:?}");
    assert_eq!(b.liquid_before - b.liquid_after, 1_000_000, "{b:?}");

    // Asking for more than there is burns the liquid balance, no more.
    let b = p.burn(u128::MAX);
    assert_eq!(b.burned, b.liquid_before, "{b:?}");
    assert_eq!(b.before - b.after, b.burned, "{b:?}");
    assert_eq!(b.liquid_after, 0, "{b:?}");

    // What is left is the freezing limit plus what the last update did not
    // use of its prepayment: not enough to prepay another update.
    let status = p.status();
    let limit = status.freezing_limit();
    let cycles = p.cycles();
    assert!(cycles >= limit && cycles - limit < prepay(APP_NODES), "balance {cycles}, freezing limit {limit}");

    // Queries still run: the balance is not below the freezing limit.
    assert_eq!(p.liquid_query(), Balances { balance: cycles, liquid: cycles - limit });

    // An update is inducted (its fee fits) but cannot prepay its execution.
    let err = pic.update_call(p.id, Principal::anonymous(), "balance_update", no_args()).expect_err("cannot prepay");
    assert_eq!(err.reject_code, RejectCode::SysTransient, "{err}");
    assert_eq!(err.error_code, ErrorCode::CanisterOutOfCycles, "{err}");
    let prefix = format!("Canister {} is out of cycles: please top up the canister with at least ", p.id);
    let n = number_between(&err.reject_message, &prefix, " additional cycles");
    // N = freezing limit + requested (the prepayment) - balance after the
    // ingress fee, so N - (limit + prepayment - balance before) is that fee.
    let fee = n.checked_sub(limit + prepay(APP_NODES) - cycles).unwrap_or_else(|| panic!("top-up {n} is below limit + prepayment - balance"));
    let (lo, hi) = ingress_fee_bounds(no_args().len() as u128, APP_NODES);
    assert!(fee >= lo && fee <= hi, "top-up {n}: ingress fee {fee} not in [{lo}, {hi}]");
    assert_eq!(p.cycles(), cycles - fee, "the refused update paid its ingress fee, nothing else");

    // A call from another canister is refused as transient.
    let m = other.measure_call(p.id, "balance_update", &no_args(), 0).expect("the call was made");
    assert_eq!(m.reject.as_ref().map(|f| f.code), Some(RejectCode::SysTransient as u32), "{m:?}");

    // Topped up, it works again.
    pic.add_cycles(p.id, 1_000_000_000_000);
    let cycles = p.cycles();
    assert!(p.balance_update() < cycles - prepay(APP_NODES));
}

// --- frozen canisters ----------------------------------------------------------------

fn assert_out_of_cycles(err: &RejectResponse) {
    assert_eq!(err.reject_code, RejectCode::SysTransient, "{err}");
    assert_eq!(err.error_code, ErrorCode::CanisterOutOfCycles, "{err}");
}

fn assert_frozen_for_queries(pic: &PocketIc, id: Principal) {
    let err = pic.query_call(id, Principal::anonymous(), "liquid_query", no_args()).expect_err("a frozen canister refuses queries");
    assert_out_of_cycles(&err);
    assert_eq!(
        err.reject_message,
        format!("Canister {id} is unable to process query calls because it's frozen. Please top up the canister with cycles and try again.")
    );
}

#[test]
fn a_canister_below_its_freezing_limit_is_frozen_until_topped_up_or_its_threshold_lowered() {
    let pic = app_pic();
    let subnet = app_subnet(&pic);
    let p = Platform::install(&pic, subnet);
    let other = Platform::install(&pic, subnet);

    // A threshold whose freezing limit is twice the balance.
    let status = p.status();
    let threshold = 2 * status.cycles * DAY / status.idle_per_day + 1;
    p.set_freezing_threshold(threshold);
    let limit = status.idle_per_day * threshold / DAY;
    let cycles = p.cycles();
    assert!(limit > cycles);

    // Ingress from a controller: how much to top up.
    let err = pic.update_call(p.id, Principal::anonymous(), "balance_update", no_args()).expect_err("frozen");
    assert_out_of_cycles(&err);
    let prefix = format!("Canister {} is out of cycles: please top up the canister with at least ", p.id);
    let n = number_between(&err.reject_message, &prefix, " additional cycles");
    // N = freezing limit + the ingress fee - balance.
    let fee = n.checked_sub(limit - cycles).unwrap_or_else(|| panic!("top-up {n} is below limit - balance = {}", limit - cycles));
    let (lo, hi) = ingress_fee_bounds(no_args().len() as u128, APP_NODES);
    assert!(fee >= lo && fee <= hi, "top-up {n}: limit - balance + {fee}, not + an ingress fee in [{lo}, {hi}]");

    // Ingress from anyone else: no amount.
    let stranger = Principal::self_authenticating(b"a stranger");
    let err = pic.update_call(p.id, stranger, "balance_update", no_args()).expect_err("frozen");
    assert_out_of_cycles(&err);
    assert_eq!(err.reject_message, format!("Canister {} is out of cycles", p.id));

    // Queries.
    assert_frozen_for_queries(&pic, p.id);

    // Management ingress the frozen canister would pay for.
    let err = pic.canister_status(p.id, None).expect_err("canister_status is paid by the frozen canister");
    assert_out_of_cycles(&err);

    // Calls from other canisters: SYS_TRANSIENT.
    let m = other.measure_call(p.id, "balance_update", &no_args(), 0).expect("the call was made");
    assert_eq!(m.reject.as_ref().map(|f| f.code), Some(RejectCode::SysTransient as u32), "{m:?}");

    assert_eq!(p.cycles(), cycles, "refused messages cost a frozen canister nothing");

    // A top-up above the limit unfreezes it.
    pic.add_cycles(p.id, limit - cycles + 1_000_000_000_000);
    let cycles = p.cycles();
    assert_eq!(p.liquid_query(), Balances { balance: cycles, liquid: cycles - limit });
    let inside = p.balance_update();
    assert!(inside < cycles - prepay(APP_NODES));
    let m = other.measure_call(p.id, "balance_update", &no_args(), 0).expect("the call was made");
    assert_eq!(m.reject, None, "{m:?}");

    // Frozen again by a higher threshold, and unfrozen by a lower one
    // (update_settings with a small argument is charged after it applies).
    p.set_freezing_threshold(threshold * 4);
    assert!(pic.update_call(p.id, Principal::anonymous(), "balance_update", no_args()).is_err(), "frozen again");
    assert_frozen_for_queries(&pic, p.id);
    p.set_freezing_threshold(2_592_000);
    p.balance_update();
    p.liquid_query();
    assert_eq!(p.status().freezing_threshold, 2_592_000);
}

#[test]
fn call_perform_fails_when_the_withdrawal_would_go_below_the_freezing_limit() {
    let pic = app_pic();
    let subnet = app_subnet(&pic);
    let p = Platform::install(&pic, subnet);
    let callee = Platform::install(&pic, subnet);
    let args = no_args();

    // With cycles enough, call_perform succeeds and takes cost_call and
    // the cycles attached.
    let r = p.perform_raw(callee.id, "balance_update", &args, 3_000_000);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.cost_call, cost_call("balance_update".len() as u128, args.len() as u128, APP_NODES));
    assert_eq!(r.before - r.after, r.cost_call + 3_000_000, "{r:?}");

    // Leave 2 B liquid after this update: enough to prepay the next one,
    // not enough for a call (about 42.1 B).
    p.burn_to(2_000_000_000);
    let r = p.perform_raw(callee.id, "balance_update", &args, 0);
    assert_eq!(r.code, RejectCode::SysTransient as u32, "call_perform refused: {r:?}");
    assert_eq!(r.after, r.before, "a refused call_perform takes nothing");
    // ic-cdk checks the liquid balance before it even tries.
    let failure = p.measure_call(callee.id, "balance_update", &args, 0).expect_err("too few liquid cycles");
    assert_eq!(failure.code, 0);
    assert!(failure.message.starts_with("insufficient liquid cycles balance"), "{failure:?}");
    let required: u128 = failure.message.rsplit("required: ").next().unwrap().parse().unwrap_or_else(|e| panic!("{failure:?}: {e}"));
    assert_eq!(required, cost_call("balance_update".len() as u128, args.len() as u128, APP_NODES));

    // A top-up makes the call possible again.
    pic.add_cycles(p.id, 100_000_000_000);
    let r = p.perform_raw(callee.id, "balance_update", &args, 0);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.before - r.after, r.cost_call);
}

// --- create_canister ---------------------------------------------------------------

fn check_creation(p: Platform, nodes: u128) {
    let fee = scale(CREATION_FEE, nodes);
    assert_eq!(p.cost_create_canister(), fee);

    let before = p.cycles();
    let failure = p.create_with(fee - 1).expect_err("one cycle short");
    assert_eq!(failure.code, RejectCode::CanisterReject as u32, "{failure:?}");
    let expected = format!(
        "Creating a canister requires a fee of {fee} that is deducted from the canister's initial balance but only {} cycles were received with the create_canister request.",
        fee - 1
    );
    assert!(failure.message.starts_with(&expected), "{:?}\nis not\n{expected:?}", failure.message);
    let spent = before - p.cycles();
    assert!(spent < fee / 10, "the cycles sent came back: the refused creation cost {spent}");

    let extra = 7_000_000_000_000;
    let id = p.create_with(fee + extra).expect("fee + 7 T");
    assert_eq!(p.pic.cycle_balance(id), extra, "the new canister starts with what was sent less the fee");
    let id = p.create_extra(3_000_000_000_000).expect("create_canister_with_extra_cycles");
    assert_eq!(p.pic.cycle_balance(id), 3_000_000_000_000, "ic-cdk sends cost_create_canister + extra");
}

#[test]
fn create_canister_takes_the_creation_fee_from_the_cycles_sent() {
    let pic = app_pic();
    let p = Platform::install(&pic, app_subnet(&pic));
    check_creation(p, APP_NODES);
}

// --- the Free cost schedule ----------------------------------------------------------

#[test]
fn the_free_cost_schedule_charges_nothing_but_moves_attached_and_burned_cycles() {
    let free = free_instance();
    let pic = &free.pic;
    let subnet = app_subnet(pic);
    let p = Platform::install(pic, subnet);
    let callee = Platform::install(pic, subnet);

    assert_eq!(p.cost_call(11, 8), 0);
    assert_eq!(p.cost_call(0, 2_000_000), 0);
    assert_eq!(p.cost_create_canister(), 0);

    // No ingress fee, no prepayment, no charge for execution.
    let cycles = p.cycles();
    assert_eq!(p.padded(&[1u8; 5_000]), cycles, "the balance inside an update is the whole balance");
    assert_eq!(p.cycles(), cycles, "the update cost nothing");

    // Calls: only the attached cycles move, and come back unaccepted.
    let m = p.measure_call(callee.id, "reply_bytes", &size_arg(1_000), 5_000_000).expect("replied");
    assert_eq!(m.cost_call, 0);
    assert_eq!(m.before, cycles);
    assert_eq!(m.before - m.after_perform, 5_000_000, "{m:?}");
    assert_eq!(m.in_callback, m.before, "{m:?}");
    assert_eq!(m.refunded, 5_000_000);
    assert_eq!(p.cycles(), cycles);
    let callee_cycles = callee.cycles();
    let m = p.measure_call(callee.id, "balance_update", &no_args(), 0).expect("replied");
    assert_eq!(Decode!(m.reply.as_ref().unwrap(), u128).unwrap(), callee_cycles, "no prepayment for a call either");
    assert_eq!(callee.cycles(), callee_cycles);

    // No idle burn, so no freezing limit.
    let status = p.status();
    assert_eq!(status.idle_per_day, 0);
    assert_eq!(status.cycles, cycles, "canister_status cost nothing");
    assert_eq!(p.liquid_query(), Balances { balance: cycles, liquid: cycles });
    pic.advance_time(Duration::from_secs(86_400));
    pic.tick();
    assert_eq!(p.cycles(), cycles, "a day of storage is free");

    // Burned cycles are gone all the same.
    let b = p.burn(1_000_000);
    assert_eq!((b.before, b.burned, b.after), (cycles, 1_000_000, cycles - 1_000_000));
    assert_eq!(p.cycles(), cycles - 1_000_000);

    // Creation is free: the new canister keeps all that was sent.
    let id = p.create_with(0).expect("no fee to pay");
    assert_eq!(pic.cycle_balance(id), 0);
    let id = p.create_with(2_000_000_000_000).expect("created");
    assert_eq!(pic.cycle_balance(id), 2_000_000_000_000);
    assert_eq!(p.cycles(), cycles - 1_000_000 - 2_000_000_000_000, "the creator paid only the cycles it sent");
}
