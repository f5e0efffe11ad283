//! The raw `ic0` system API of core modules (ic-cdk, Motoko, ...): the
//! IC's import surface (`ic0` 1.2, 67 functions, plus the older names
//! Motoko and older CDKs import) over the module's linear memory, with
//! `i32` pointers for a 32-bit memory and `i64` for a 64-bit one. Every
//! function is a thin layer on the shared logic in `system_api`: it moves
//! bytes between linear memory and the execution, nothing else.
//!
//! Functions the IC allows in `(start)` (stable memory, costs, debugging,
//! `performance_counter`) work during instantiation, when no message is
//! executing; every other function traps there.
//!
//! Where ww has nothing behind a function, it gives the IC's answer for
//! "not available": no threshold keys (`cost_sign_with_*` report an
//! unknown key name). The root key is the replica's (empty when it has
//! none); a data certificate is present in non-replicated queries when the
//! replica certifies its state (see `crate::certified`). `cost_*` report a 13-node application subnet's fees;
//! ww charges no cycles.

use candid::Principal;
use wasmtime::{AsContextMut, Caller, Linker};

use super::system_api::{MAX_CERTIFIED_DATA, StagedCall, performance_counter};
use super::{Continuation, ExecState, trap};
use crate::replica::types::ErrorCode;

/// Every name a core module may import from `ic0` (the linker defines
/// each; the 32-bit-only legacy names only for 32-bit memories).
pub const IC0_FUNCTIONS: &[&str] = &[
    "msg_arg_data_size", "msg_arg_data_copy", "msg_caller_size", "msg_caller_copy",
    "msg_caller_info_data_size", "msg_caller_info_data_copy", "msg_caller_info_signer_size", "msg_caller_info_signer_copy",
    "msg_reject_code", "msg_reject_msg_size", "msg_reject_msg_copy", "msg_deadline", "msg_reply_data_append", "msg_reply",
    "msg_reject", "msg_cycles_available128", "msg_cycles_refunded128", "msg_cycles_accept128", "cycles_burn128",
    "canister_self_size", "canister_self_copy", "canister_cycle_balance128", "canister_liquid_cycle_balance128",
    "canister_status", "canister_version", "subnet_self_size", "subnet_self_copy", "subnet_self_node_count",
    "msg_method_name_size", "msg_method_name_copy", "accept_message", "call_new", "call_on_cleanup", "call_data_append",
    "call_with_best_effort_response", "call_cycles_add128", "call_perform", "stable64_size", "stable64_grow",
    "stable64_write", "stable64_read", "root_key_size", "root_key_copy", "certified_data_set", "data_certificate_present",
    "data_certificate_size", "data_certificate_copy", "time", "global_timer_set", "performance_counter", "is_controller",
    "in_replicated_execution", "cost_call", "cost_create_canister", "cost_http_request", "cost_http_request_v2",
    "cost_sign_with_ecdsa", "cost_sign_with_schnorr", "cost_vetkd_derive_key", "env_var_count", "env_var_name_size",
    "env_var_name_copy", "env_var_name_exists", "env_var_value_size", "env_var_value_copy", "debug_print", "trap",
];

/// Older names (before `ic0` 1.0) still imported by Motoko and older CDKs.
pub const IC0_LEGACY_FUNCTIONS: &[&str] = &[
    "msg_cycles_available", "msg_cycles_refunded", "msg_cycles_accept", "canister_cycle_balance", "call_cycles_add",
    "mint_cycles", "mint_cycles128",
];

/// The deprecated 32-bit stable memory API (32-bit memories only).
pub const IC0_STABLE32_FUNCTIONS: &[&str] = &["stable_size", "stable_grow", "stable_read", "stable_write"];

/// Whether `name` is an `ic0` function a module with this memory may import.
pub fn is_ic0_function(name: &str, memory64: bool) -> bool {
    IC0_FUNCTIONS.contains(&name) || IC0_LEGACY_FUNCTIONS.contains(&name) || (!memory64 && IC0_STABLE32_FUNCTIONS.contains(&name))
}

/// The subnet ww presents itself as by default (one subnet per node; a
/// replica with several id ranges names each range's subnet).
pub fn subnet_id() -> Principal {
    let hash = blake3::hash(b"ww:subnet");
    let mut bytes = hash.as_bytes()[..28].to_vec();
    bytes.push(0x02);
    Principal::from_slice(&bytes)
}

fn memory(c: &Caller<'_, ExecState>, f: &str) -> wasmtime::Result<wasmtime::Memory> {
    match c.data().memory {
        Some(m) => Ok(m),
        None => trap(ErrorCode::CanisterContractViolation, format!("ic0.{f}: the module has no memory")),
    }
}

fn range(start: u64, size: u64, len: usize) -> Option<std::ops::Range<usize>> {
    let end = start.checked_add(size)?;
    (end <= len as u64).then_some(start as usize..end as usize)
}

/// The bytes at `src..src+size` of linear memory.
fn read(c: &mut Caller<'_, ExecState>, f: &str, src: u64, size: u64) -> wasmtime::Result<Vec<u8>> {
    let m = memory(c, f)?;
    let data = m.data(&*c);
    match range(src, size, data.len()) {
        Some(r) => Ok(data[r].to_vec()),
        None => trap(ErrorCode::CanisterContractViolation, format!("ic0.{f}: src={src} + length={size} exceeds the heap size {}", data.len())),
    }
}

fn read_text(c: &mut Caller<'_, ExecState>, f: &str, src: u64, size: u64) -> wasmtime::Result<String> {
    match String::from_utf8(read(c, f, src, size)?) {
        Ok(s) => Ok(s),
        Err(_) => trap(ErrorCode::CanisterContractViolation, format!("ic0.{f}: the text is not valid UTF-8")),
    }
}

/// Writes `bytes` at `dst`.
fn write(c: &mut Caller<'_, ExecState>, f: &str, dst: u64, bytes: &[u8]) -> wasmtime::Result<()> {
    let m = memory(c, f)?;
    let data = m.data_mut(&mut *c);
    match range(dst, bytes.len() as u64, data.len()) {
        Some(r) => {
            data[r].copy_from_slice(bytes);
            Ok(())
        }
        None => trap(ErrorCode::CanisterContractViolation, format!("ic0.{f}: dst={dst} + length={} exceeds the heap size {}", bytes.len(), data.len())),
    }
}

fn write_u128(c: &mut Caller<'_, ExecState>, f: &str, dst: u64, n: u128) -> wasmtime::Result<()> {
    write(c, f, dst, &n.to_le_bytes())
}

/// `*_copy(dst, offset, size)` of bytes the execution holds: copies
/// `source[offset..offset+size]` to `dst`, trapping on either range.
fn copy_out(
    c: &mut Caller<'_, ExecState>,
    f: &str,
    (dst, offset, size): (u64, u64, u64),
    source: fn(&mut ExecState) -> wasmtime::Result<&[u8]>,
) -> wasmtime::Result<()> {
    let m = memory(c, f)?;
    let (heap, state) = m.data_and_store_mut(&mut *c);
    let bytes = source(state)?;
    let Some(from) = range(offset, size, bytes.len()) else {
        return trap(ErrorCode::CanisterContractViolation, format!("ic0.{f}: offset={offset} + length={size} exceeds the source size {}", bytes.len()));
    };
    let Some(to) = range(dst, size, heap.len()) else {
        return trap(ErrorCode::CanisterContractViolation, format!("ic0.{f}: dst={dst} + length={size} exceeds the heap size {}", heap.len()));
    };
    heap[to].copy_from_slice(&bytes[from]);
    Ok(())
}

/// [`copy_out`] of an owned value.
fn copy_owned(c: &mut Caller<'_, ExecState>, f: &str, (dst, offset, size): (u64, u64, u64), bytes: &[u8]) -> wasmtime::Result<()> {
    let Some(from) = range(offset, size, bytes.len()) else {
        return trap(ErrorCode::CanisterContractViolation, format!("ic0.{f}: offset={offset} + length={size} exceeds the source size {}", bytes.len()));
    };
    write(c, f, dst, &bytes[from])
}

fn arg_bytes(s: &mut ExecState) -> wasmtime::Result<&[u8]> {
    s.arg()
}
fn reject_bytes(s: &mut ExecState) -> wasmtime::Result<&[u8]> {
    s.reject_message().map(str::as_bytes)
}
fn method_bytes(s: &mut ExecState) -> wasmtime::Result<&[u8]> {
    s.method_name().map(str::as_bytes)
}
fn caller_info_data(s: &mut ExecState) -> wasmtime::Result<&[u8]> {
    s.caller_info("msg_caller_info_data_copy", true)
}
fn caller_info_signer(s: &mut ExecState) -> wasmtime::Result<&[u8]> {
    s.caller_info("msg_caller_info_signer_copy", false)
}

fn amount(high: u64, low: u64) -> u128 {
    (u128::from(high) << 64) | u128::from(low)
}

fn pending<'a>(s: &'a mut ExecState, f: &str) -> wasmtime::Result<&'a mut StagedCall> {
    match s.cx(f)?.pending_call.as_mut() {
        Some(p) => Ok(p),
        None => trap(ErrorCode::CanisterContractViolation, format!("ic0.{f}: no call is under construction (call ic0.call_new first)")),
    }
}

/// Attaches `want` cycles to the call under construction; more than the
/// liquid balance (what the execution has not attached yet, above the
/// freezing limit) traps, as on the IC.
fn add_call_cycles(s: &mut ExecState, f: &str, want: u128) -> wasmtime::Result<()> {
    let liquid = s.liquid_balance()?;
    let id = s.self_id()?;
    let p = pending(s, f)?;
    if want > liquid {
        return trap(
            ErrorCode::CanisterOutOfCycles,
            format!("Canister {id} is out of cycles: requested {want} cycles but the available balance is {liquid} cycles above the freezing limit"),
        );
    }
    p.cycles = p.cycles.saturating_add(u64::try_from(want).unwrap_or(u64::MAX));
    Ok(())
}

fn env_var_name(s: &mut ExecState, index: u64, f: &str) -> wasmtime::Result<String> {
    let vars = s.env_vars()?;
    match vars.get(index as usize) {
        Some((name, _)) => Ok(name.clone()),
        None => trap(ErrorCode::CanisterContractViolation, format!("ic0.{f}: index {index} is out of range ({} variables)", vars.len())),
    }
}

fn env_var_value(c: &mut Caller<'_, ExecState>, f: &str, src: u64, size: u64) -> wasmtime::Result<Option<String>> {
    let name = read_text(c, f, src, size)?;
    let vars = c.data_mut().env_vars()?;
    Ok(vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()))
}

/// 0 on success, 1 for an invalid curve or algorithm, 2 for an unknown key
/// name: ww holds no threshold keys, so every valid curve gets 2.
/// `ic0.cost_sign_with_*` / `cost_vetkd_derive_key`: the signing subnet's
/// fee for the key named at `src` (0), or 1 for an unknown curve, 2 for a
/// key no subnet holds (`dst` untouched).
fn threshold_cost(c: &mut Caller<'_, ExecState>, f: &str, (src, size): (u64, u64), curve: u32, dst: u64) -> wasmtime::Result<u32> {
    let name = read(c, f, src, size)?;
    match c.data().threshold_fee(f, &String::from_utf8_lossy(&name), curve) {
        Ok(fee) => write_u128(c, f, dst, fee).map(|()| 0),
        Err(code) => Ok(code),
    }
}

macro_rules! define_ic0 {
    ($linker:ident, $P:ty) => {{
        type P = $P;
        let l = &mut *$linker;
        type C<'a> = Caller<'a, ExecState>;
        type R<T> = wasmtime::Result<T>;

        // -- the message
        l.func_wrap("ic0", "msg_arg_data_size", |mut c: C<'_>| -> R<P> { Ok(c.data_mut().arg()?.len() as P) })?;
        l.func_wrap("ic0", "msg_arg_data_copy", |mut c: C<'_>, d: P, o: P, s: P| copy_out(&mut c, "msg_arg_data_copy", (d as u64, o as u64, s as u64), arg_bytes))?;
        l.func_wrap("ic0", "msg_caller_size", |mut c: C<'_>| -> R<P> { Ok(c.data_mut().caller()?.as_slice().len() as P) })?;
        l.func_wrap("ic0", "msg_caller_copy", |mut c: C<'_>, d: P, o: P, s: P| {
            let p = c.data_mut().caller()?;
            copy_owned(&mut c, "msg_caller_copy", (d as u64, o as u64, s as u64), p.as_slice())
        })?;
        // The sender info of the call context's ingress message (empty without one).
        l.func_wrap("ic0", "msg_caller_info_data_size", |mut c: C<'_>| -> R<P> { Ok(c.data_mut().caller_info("msg_caller_info_data_size", true)?.len() as P) })?;
        l.func_wrap("ic0", "msg_caller_info_data_copy", |mut c: C<'_>, d: P, o: P, s: P| copy_out(&mut c, "msg_caller_info_data_copy", (d as u64, o as u64, s as u64), caller_info_data))?;
        l.func_wrap("ic0", "msg_caller_info_signer_size", |mut c: C<'_>| -> R<P> { Ok(c.data_mut().caller_info("msg_caller_info_signer_size", false)?.len() as P) })?;
        l.func_wrap("ic0", "msg_caller_info_signer_copy", |mut c: C<'_>, d: P, o: P, s: P| copy_out(&mut c, "msg_caller_info_signer_copy", (d as u64, o as u64, s as u64), caller_info_signer))?;
        l.func_wrap("ic0", "msg_reject_code", |mut c: C<'_>| -> R<u32> { c.data_mut().reject_code() })?;
        l.func_wrap("ic0", "msg_reject_msg_size", |mut c: C<'_>| -> R<P> { Ok(c.data_mut().reject_message()?.len() as P) })?;
        l.func_wrap("ic0", "msg_reject_msg_copy", |mut c: C<'_>, d: P, o: P, s: P| copy_out(&mut c, "msg_reject_msg_copy", (d as u64, o as u64, s as u64), reject_bytes))?;
        l.func_wrap("ic0", "msg_deadline", |mut c: C<'_>| -> R<u64> { c.data_mut().deadline() })?;
        l.func_wrap("ic0", "msg_reply_data_append", |mut c: C<'_>, src: P, size: P| {
            c.data_mut().cx("msg_reply_data_append")?;
            let bytes = read(&mut c, "msg_reply_data_append", src as u64, size as u64)?;
            c.data_mut().reply_append(&bytes)
        })?;
        l.func_wrap("ic0", "msg_reply", |mut c: C<'_>| c.data_mut().reply())?;
        l.func_wrap("ic0", "msg_reject", |mut c: C<'_>, src: P, size: P| {
            c.data_mut().cx("msg_reject")?;
            let message = read_text(&mut c, "msg_reject", src as u64, size as u64)?;
            c.data_mut().reject(message)
        })?;
        l.func_wrap("ic0", "msg_method_name_size", |mut c: C<'_>| -> R<P> { Ok(c.data_mut().method_name()?.len() as P) })?;
        l.func_wrap("ic0", "msg_method_name_copy", |mut c: C<'_>, d: P, o: P, s: P| copy_out(&mut c, "msg_method_name_copy", (d as u64, o as u64, s as u64), method_bytes))?;
        l.func_wrap("ic0", "accept_message", |mut c: C<'_>| c.data_mut().accept_message())?;

        // -- cycles (128-bit, little-endian at dst)
        l.func_wrap("ic0", "msg_cycles_available128", |mut c: C<'_>, dst: P| {
            let n = c.data_mut().cycles_available()?;
            write_u128(&mut c, "msg_cycles_available128", dst as u64, n.into())
        })?;
        l.func_wrap("ic0", "msg_cycles_refunded128", |mut c: C<'_>, dst: P| {
            let n = c.data_mut().cycles_refunded()?;
            write_u128(&mut c, "msg_cycles_refunded128", dst as u64, n.into())
        })?;
        l.func_wrap("ic0", "msg_cycles_accept128", |mut c: C<'_>, high: u64, low: u64, dst: P| {
            let n = c.data_mut().cycles_accept(amount(high, low))?;
            write_u128(&mut c, "msg_cycles_accept128", dst as u64, n.into())
        })?;
        l.func_wrap("ic0", "cycles_burn128", |mut c: C<'_>, high: u64, low: u64, dst: P| {
            let n = c.data_mut().cycles_burn(amount(high, low))?;
            write_u128(&mut c, "cycles_burn128", dst as u64, n)
        })?;
        l.func_wrap("ic0", "canister_cycle_balance128", |mut c: C<'_>, dst: P| {
            let n = c.data_mut().balance128()?;
            write_u128(&mut c, "canister_cycle_balance128", dst as u64, n)
        })?;
        l.func_wrap("ic0", "canister_liquid_cycle_balance128", |mut c: C<'_>, dst: P| {
            let n = c.data_mut().liquid_balance()?;
            write_u128(&mut c, "canister_liquid_cycle_balance128", dst as u64, n)
        })?;

        // -- this canister and its subnet
        l.func_wrap("ic0", "canister_self_size", |mut c: C<'_>| -> R<P> { Ok(c.data_mut().self_id()?.as_slice().len() as P) })?;
        l.func_wrap("ic0", "canister_self_copy", |mut c: C<'_>, d: P, o: P, s: P| {
            let p = c.data_mut().self_id()?;
            copy_owned(&mut c, "canister_self_copy", (d as u64, o as u64, s as u64), p.as_slice())
        })?;
        l.func_wrap("ic0", "canister_status", |mut c: C<'_>| -> R<u32> { c.data_mut().status() })?;
        l.func_wrap("ic0", "canister_version", |mut c: C<'_>| -> R<u64> { c.data_mut().version() })?;
        l.func_wrap("ic0", "subnet_self_size", |mut c: C<'_>| -> R<P> {
            Ok(c.data_mut().cx("subnet_self_size")?.info.subnet.as_slice().len() as P)
        })?;
        l.func_wrap("ic0", "subnet_self_copy", |mut c: C<'_>, d: P, o: P, s: P| {
            let subnet = c.data_mut().cx("subnet_self_copy")?.info.subnet;
            copy_owned(&mut c, "subnet_self_copy", (d as u64, o as u64, s as u64), subnet.as_slice())
        })?;
        l.func_wrap("ic0", "subnet_self_node_count", |mut c: C<'_>| -> R<u32> {
            c.data_mut().cx("subnet_self_node_count")?;
            Ok(c.data().fees().0.nodes())
        })?;
        l.func_wrap("ic0", "is_controller", |mut c: C<'_>, src: P, size: P| -> R<u32> {
            c.data_mut().cx("is_controller")?;
            let bytes = read(&mut c, "is_controller", src as u64, size as u64)?;
            Ok(c.data_mut().controls(&bytes)? as u32)
        })?;
        l.func_wrap("ic0", "in_replicated_execution", |mut c: C<'_>| -> R<u32> { Ok(c.data_mut().replicated()? as u32) })?;

        // -- outgoing calls
        l.func_wrap(
            "ic0",
            "call_new",
            |mut c: C<'_>, callee_src: P, callee_size: P, name_src: P, name_size: P, reply_fun: P, reply_env: P, reject_fun: P, reject_env: P| {
                c.data_mut().may_call("call_new")?;
                let callee = read(&mut c, "call_new", callee_src as u64, callee_size as u64)?;
                let Ok(callee) = Principal::try_from_slice(&callee) else {
                    return trap(ErrorCode::CanisterContractViolation, "ic0.call_new: callee is not a valid principal");
                };
                let method = read_text(&mut c, "call_new", name_src as u64, name_size as u64)?;
                // A call still under construction is discarded (its cycles
                // go back to the balance).
                c.data_mut().cx("call_new")?.pending_call = Some(StagedCall {
                    callee,
                    method,
                    arg: Vec::new(),
                    cycles: 0,
                    timeout_seconds: None,
                    continuation: Continuation::Core {
                        reply: (reply_fun as u64, reply_env as u64),
                        reject: (reject_fun as u64, reject_env as u64),
                        cleanup: None,
                    },
                });
                Ok(())
            },
        )?;
        l.func_wrap("ic0", "call_on_cleanup", |mut c: C<'_>, fun: P, env: P| {
            let p = pending(c.data_mut(), "call_on_cleanup")?;
            match &mut p.continuation {
                Continuation::Core { cleanup: cleanup @ None, .. } => {
                    *cleanup = Some((fun as u64, env as u64));
                    Ok(())
                }
                _ => trap(ErrorCode::CanisterContractViolation, "ic0.call_on_cleanup: a cleanup callback is already set for this call"),
            }
        })?;
        l.func_wrap("ic0", "call_data_append", |mut c: C<'_>, src: P, size: P| {
            pending(c.data_mut(), "call_data_append")?;
            let bytes = read(&mut c, "call_data_append", src as u64, size as u64)?;
            let max = c.data_mut().cx("call_data_append")?.limits.max_inter_canister_payload;
            let p = pending(c.data_mut(), "call_data_append")?;
            if p.arg.len() + bytes.len() > max {
                return trap(
                    ErrorCode::CanisterContractViolation,
                    format!("ic0.call_data_append: payload size ({}) cannot be larger than {max}", p.arg.len() + bytes.len()),
                );
            }
            p.arg.extend_from_slice(&bytes);
            Ok(())
        })?;
        l.func_wrap("ic0", "call_with_best_effort_response", |mut c: C<'_>, timeout_seconds: u32| {
            let p = pending(c.data_mut(), "call_with_best_effort_response")?;
            if p.timeout_seconds.is_some() {
                return trap(ErrorCode::CanisterContractViolation, "ic0.call_with_best_effort_response: already called for this call");
            }
            p.timeout_seconds = Some(timeout_seconds);
            Ok(())
        })?;
        l.func_wrap("ic0", "call_cycles_add128", |mut c: C<'_>, high: u64, low: u64| {
            add_call_cycles(c.data_mut(), "call_cycles_add128", amount(high, low))
        })?;
        l.func_wrap("ic0", "call_perform", |mut c: C<'_>| -> R<u32> {
            let Some(p) = c.data_mut().may_call("call_perform")?.pending_call.take() else {
                return trap(ErrorCode::CanisterContractViolation, "ic0.call_perform: no call is under construction (call ic0.call_new first)");
            };
            let staged = c.data_mut().stage_call(p)?;
            Ok(match staged {
                Ok(()) => 0,
                Err((code, _)) => code as u32,
            })
        })?;

        // -- certification: the replica's root key, and in a non-replicated
        // query a certificate of the canister's certified data.
        l.func_wrap("ic0", "root_key_size", |mut c: C<'_>| -> R<P> {
            c.data_mut().cx("root_key_size")?;
            Ok(c.data().root_key.len() as P)
        })?;
        l.func_wrap("ic0", "root_key_copy", |mut c: C<'_>, d: P, o: P, s: P| {
            c.data_mut().cx("root_key_copy")?;
            let key = c.data().root_key.clone();
            copy_owned(&mut c, "root_key_copy", (d as u64, o as u64, s as u64), &key)
        })?;
        l.func_wrap("ic0", "certified_data_set", |mut c: C<'_>, src: P, size: P| {
            c.data_mut().cx("certified_data_set")?;
            if size as u64 > MAX_CERTIFIED_DATA as u64 {
                return trap(
                    ErrorCode::CanisterContractViolation,
                    format!("ic0.certified_data_set: certified data is {size} bytes; at most {MAX_CERTIFIED_DATA} are allowed"),
                );
            }
            let bytes = read(&mut c, "certified_data_set", src as u64, size as u64)?;
            c.data_mut().set_certified_data(&bytes)
        })?;
        l.func_wrap("ic0", "data_certificate_present", |mut c: C<'_>| -> R<u32> {
            Ok(c.data_mut().cx("data_certificate_present")?.info.data_certificate.as_ref().is_some_and(|d| d.get().is_some()) as u32)
        })?;
        l.func_wrap("ic0", "data_certificate_size", |mut c: C<'_>| -> R<P> {
            match c.data_mut().cx("data_certificate_size")?.info.data_certificate.as_ref().and_then(|d| d.get()) {
                Some(cert) => Ok(cert.len() as P),
                None => trap(ErrorCode::CanisterContractViolation, "ic0.data_certificate_size: no data certificate is present (only non-replicated queries get one)"),
            }
        })?;
        l.func_wrap("ic0", "data_certificate_copy", |mut c: C<'_>, d: P, o: P, s: P| -> R<()> {
            let Some(cert) = c.data_mut().cx("data_certificate_copy")?.info.data_certificate.as_ref().and_then(|d| d.get().map(<[u8]>::to_vec)) else {
                return trap(ErrorCode::CanisterContractViolation, "ic0.data_certificate_copy: no data certificate is present (only non-replicated queries get one)");
            };
            copy_owned(&mut c, "data_certificate_copy", (d as u64, o as u64, s as u64), &cert)
        })?;

        // -- time, timer, instructions
        l.func_wrap("ic0", "time", |mut c: C<'_>| -> R<u64> { c.data_mut().time() })?;
        l.func_wrap("ic0", "global_timer_set", |mut c: C<'_>, t: u64| -> R<u64> { c.data_mut().set_timer(t) })?;
        l.func_wrap("ic0", "performance_counter", |mut c: C<'_>, kind: u32| -> R<u64> { performance_counter(&c.as_context_mut(), kind) })?;

        // -- costs
        l.func_wrap("ic0", "cost_call", |mut c: C<'_>, method_name_size: u64, payload_size: u64, dst: P| {
            let (fees, wasm64) = c.data().fees();
            let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
            write_u128(&mut c, "cost_call", dst as u64, fees.cost_call(size(method_name_size), size(payload_size), wasm64))
        })?;
        l.func_wrap("ic0", "cost_create_canister", |mut c: C<'_>, dst: P| {
            let fee = c.data().fees().0.creation();
            write_u128(&mut c, "cost_create_canister", dst as u64, fee)
        })?;
        l.func_wrap("ic0", "cost_http_request", |mut c: C<'_>, request_size: u64, max_res_bytes: u64, dst: P| {
            let fee = c.data().outcall_fee(request_size, max_res_bytes);
            write_u128(&mut c, "cost_http_request", dst as u64, fee)
        })?;
        // The v2 parameters are a Candid record ww does not decode: the
        // cost is that of a request of their size with the IC's default
        // response limit (2 MB).
        l.func_wrap("ic0", "cost_http_request_v2", |mut c: C<'_>, src: P, size: P, dst: P| {
            let arg = read(&mut c, "cost_http_request_v2", src as u64, size as u64)?;
            let fees = c.data().fees().0;
            match crate::outcalls::pricing::cost_v2(fees.nodes(), &arg) {
                Some(fee) if !fees.charges() => { let _ = fee; write_u128(&mut c, "cost_http_request_v2", dst as u64, 0) }
                Some(fee) => write_u128(&mut c, "cost_http_request_v2", dst as u64, fee),
                None => trap(ErrorCode::CanisterContractViolation, "ic0.cost_http_request_v2: the argument is not a valid Candid cost record"),
            }
        })?;
        l.func_wrap("ic0", "cost_sign_with_ecdsa", |mut c: C<'_>, src: P, size: P, curve: u32, dst: P| -> R<u32> {
            threshold_cost(&mut c, "cost_sign_with_ecdsa", (src as u64, size as u64), curve, dst as u64)
        })?;
        l.func_wrap("ic0", "cost_sign_with_schnorr", |mut c: C<'_>, src: P, size: P, algorithm: u32, dst: P| -> R<u32> {
            threshold_cost(&mut c, "cost_sign_with_schnorr", (src as u64, size as u64), algorithm, dst as u64)
        })?;
        l.func_wrap("ic0", "cost_vetkd_derive_key", |mut c: C<'_>, src: P, size: P, curve: u32, dst: P| -> R<u32> {
            threshold_cost(&mut c, "cost_vetkd_derive_key", (src as u64, size as u64), curve, dst as u64)
        })?;

        // -- environment variables (the canister's settings)
        l.func_wrap("ic0", "env_var_count", |mut c: C<'_>| -> R<P> { Ok(c.data_mut().env_vars()?.len() as P) })?;
        l.func_wrap("ic0", "env_var_name_size", |mut c: C<'_>, index: P| -> R<P> {
            Ok(env_var_name(c.data_mut(), index as u64, "env_var_name_size")?.len() as P)
        })?;
        l.func_wrap("ic0", "env_var_name_copy", |mut c: C<'_>, index: P, d: P, o: P, s: P| {
            let name = env_var_name(c.data_mut(), index as u64, "env_var_name_copy")?;
            copy_owned(&mut c, "env_var_name_copy", (d as u64, o as u64, s as u64), name.as_bytes())
        })?;
        l.func_wrap("ic0", "env_var_name_exists", |mut c: C<'_>, src: P, size: P| -> R<u32> {
            Ok(env_var_value(&mut c, "env_var_name_exists", src as u64, size as u64)?.is_some() as u32)
        })?;
        l.func_wrap("ic0", "env_var_value_size", |mut c: C<'_>, src: P, size: P| -> R<P> {
            match env_var_value(&mut c, "env_var_value_size", src as u64, size as u64)? {
                Some(v) => Ok(v.len() as P),
                None => trap(ErrorCode::CanisterContractViolation, "ic0.env_var_value_size: no environment variable of that name"),
            }
        })?;
        l.func_wrap("ic0", "env_var_value_copy", |mut c: C<'_>, src: P, size: P, d: P, o: P, s: P| {
            match env_var_value(&mut c, "env_var_value_copy", src as u64, size as u64)? {
                Some(v) => copy_owned(&mut c, "env_var_value_copy", (d as u64, o as u64, s as u64), v.as_bytes()),
                None => trap(ErrorCode::CanisterContractViolation, "ic0.env_var_value_copy: no environment variable of that name"),
            }
        })?;

        // -- debugging
        l.func_wrap("ic0", "debug_print", |mut c: C<'_>, src: P, size: P| {
            // Never traps on the IC: an out-of-bounds range prints nothing.
            if let Ok(bytes) = read(&mut c, "debug_print", src as u64, size as u64) {
                c.data_mut().print(&bytes);
            }
            Ok(())
        })?;
        l.func_wrap("ic0", "trap", |mut c: C<'_>, src: P, size: P| -> R<()> {
            let bytes = read(&mut c, "trap", src as u64, size as u64)?;
            c.data_mut().trap_with(String::from_utf8_lossy(&bytes).into_owned())
        })?;
    }};
}


/// The 64-bit stable memory API, the same for both pointer widths.
fn define_stable64(l: &mut Linker<ExecState>) -> wasmtime::Result<()> {
    type C<'a> = Caller<'a, ExecState>;
    l.func_wrap("ic0", "stable64_size", |c: C<'_>| -> wasmtime::Result<u64> {
        Ok(c.data().stable.size())
    })?;
    l.func_wrap("ic0", "stable64_grow", |mut c: C<'_>, pages: u64| -> wasmtime::Result<u64> {
        Ok(c.data_mut().stable.grow(pages) as u64)
    })?;
    l.func_wrap("ic0", "stable64_write", |mut c: C<'_>, offset: u64, src: u64, size: u64| {
        stable_write(&mut c, "stable64_write", offset, src, size)
    })?;
    l.func_wrap("ic0", "stable64_read", |mut c: C<'_>, dst: u64, offset: u64, size: u64| {
        stable_read(&mut c, "stable64_read", dst, offset, size)
    })?;
    Ok(())
}

fn stable_write(c: &mut Caller<'_, ExecState>, f: &str, offset: u64, src: u64, size: u64) -> wasmtime::Result<()> {
    let bytes = read(c, f, src, size)?;
    match c.data_mut().stable.write(offset, &bytes) {
        Ok(()) => Ok(()),
        Err(e) => trap(ErrorCode::CanisterTrapped, format!("ic0.{f}: {e}")),
    }
}

fn stable_read(c: &mut Caller<'_, ExecState>, f: &str, dst: u64, offset: u64, size: u64) -> wasmtime::Result<()> {
    let bytes = match c.data().stable.read(offset, size) {
        Ok(b) => b,
        Err(e) => return trap(ErrorCode::CanisterTrapped, format!("ic0.{f}: {e}")),
    };
    write(c, f, dst, &bytes)
}

/// The deprecated 32-bit stable API: usable while stable memory is at most
/// 4 GiB (65,536 pages).
fn define_stable32(l: &mut Linker<ExecState>) -> wasmtime::Result<()> {
    type C<'a> = Caller<'a, ExecState>;
    const MAX_PAGES: u64 = 1 << 16;
    l.func_wrap("ic0", "stable_size", |c: C<'_>| -> wasmtime::Result<u32> {
        let pages = c.data().stable.size();
        if pages > MAX_PAGES {
            return trap(ErrorCode::CanisterContractViolation, "ic0.stable_size: stable memory is over 4 GiB; use the 64-bit API");
        }
        Ok(pages as u32)
    })?;
    l.func_wrap("ic0", "stable_grow", |mut c: C<'_>, pages: u32| -> wasmtime::Result<i32> {
        let s = &mut c.data_mut().stable;
        if s.size() + u64::from(pages) > MAX_PAGES {
            return Ok(-1);
        }
        Ok(s.grow(pages.into()) as i32)
    })?;
    l.func_wrap("ic0", "stable_write", |mut c: C<'_>, offset: u32, src: u32, size: u32| {
        stable_write(&mut c, "stable_write", offset.into(), src.into(), size.into())
    })?;
    l.func_wrap("ic0", "stable_read", |mut c: C<'_>, dst: u32, offset: u32, size: u32| {
        stable_read(&mut c, "stable_read", dst.into(), offset.into(), size.into())
    })?;
    Ok(())
}

/// The 64-bit cycles API and other names from before `ic0` 1.0.
fn define_legacy(l: &mut Linker<ExecState>) -> wasmtime::Result<()> {
    type C<'a> = Caller<'a, ExecState>;
    type R<T> = wasmtime::Result<T>;
    l.func_wrap("ic0", "msg_cycles_available", |mut c: C<'_>| -> R<u64> { c.data_mut().cycles_available() })?;
    l.func_wrap("ic0", "msg_cycles_refunded", |mut c: C<'_>| -> R<u64> { c.data_mut().cycles_refunded() })?;
    l.func_wrap("ic0", "msg_cycles_accept", |mut c: C<'_>, max: u64| -> R<u64> { c.data_mut().cycles_accept(max.into()) })?;
    l.func_wrap("ic0", "canister_cycle_balance", |mut c: C<'_>| -> R<u64> { c.data_mut().balance() })?;
    l.func_wrap("ic0", "call_cycles_add", |mut c: C<'_>, n: u64| add_call_cycles(c.data_mut(), "call_cycles_add", n.into()))?;
    // Only the cycles minting canister may mint.
    l.func_wrap("ic0", "mint_cycles", |_c: C<'_>, _n: u64| -> R<u64> {
        trap(ErrorCode::CanisterContractViolation, "ic0.mint_cycles: only the cycles minting canister may mint cycles")
    })?;
    l.func_wrap("ic0", "mint_cycles128", |_c: C<'_>, _h: u64, _l: u64, _d: u32| -> R<()> {
        trap(ErrorCode::CanisterContractViolation, "ic0.mint_cycles128: only the cycles minting canister may mint cycles")
    })?;
    Ok(())
}

/// The `ic0` linker for core modules with a 64-bit (`memory64`) or a
/// 32-bit memory.
pub(super) fn linker(engine: &wasmtime::Engine, memory64: bool) -> wasmtime::Result<Linker<ExecState>> {
    let mut linker: Linker<ExecState> = Linker::new(engine);
    let l = &mut linker;
    if memory64 {
        define_ic0!(l, u64);
    } else {
        define_ic0!(l, u32);
        define_stable32(l)?;
    }
    define_stable64(l)?;
    define_legacy(l)?;
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn linked(memory64: bool) -> BTreeSet<String> {
        let engine = crate::engine::Engine::new(&crate::engine::EngineConfig {
            kind: crate::engine::EngineKind::Canister,
            ..Default::default()
        })
        .unwrap();
        let runtime = super::super::CanisterRuntime::new(engine, Default::default()).unwrap();
        let mut store = super::super::new_store(&runtime, Default::default(), Default::default(), "t".into());
        let l = if memory64 { &runtime.core_linker64 } else { &runtime.core_linker32 };
        l.iter(&mut store).map(|(module, name, _)| format!("{module}.{name}")).collect()
    }

    #[test]
    fn every_ic0_function_is_linked_for_both_pointer_widths() {
        for memory64 in [false, true] {
            let linked = linked(memory64);
            assert_eq!(IC0_FUNCTIONS.len(), 67, "ic0 1.2 has 67 functions");
            for name in IC0_FUNCTIONS.iter().chain(IC0_LEGACY_FUNCTIONS) {
                assert!(linked.contains(&format!("ic0.{name}")), "ic0.{name} (memory64: {memory64})");
            }
            for name in IC0_STABLE32_FUNCTIONS {
                assert_eq!(linked.contains(&format!("ic0.{name}")), !memory64, "ic0.{name} (memory64: {memory64})");
            }
            let listed = IC0_FUNCTIONS.len() + IC0_LEGACY_FUNCTIONS.len() + if memory64 { 0 } else { IC0_STABLE32_FUNCTIONS.len() };
            assert_eq!(linked.len(), listed, "nothing is linked that is not listed");
        }
    }
}
