//! The `ic0` system API as host functions: which entry points may call
//! each function (a call from anywhere else traps, as on the IC), what each
//! returns, and the effects they stage in the execution's [`ExecContext`]
//! (committed only if the execution returns).

use candid::Principal;

use super::{EntryPoint, ExecContext, ExecState, OutgoingCall, Response, ic0, trap};
use crate::replica::types::{ErrorCode, RejectCode};

impl ExecState {
    fn cx(&mut self, function: &str) -> wasmtime::Result<&mut ExecContext> {
        match self.ctx.as_mut() {
            Some(c) => Ok(c),
            None => trap(
                ErrorCode::CanisterContractViolation,
                format!("ic0.{function} called outside of a message execution"),
            ),
        }
    }

    /// The context, if `function` may be called from the current entry point.
    fn allowed(&mut self, function: &str, ok: impl Fn(&EntryPoint) -> bool) -> wasmtime::Result<&mut ExecContext> {
        let cx = self.cx(function)?;
        if !ok(&cx.input.entry) {
            let from = cx.input.entry.name();
            return trap(
                ErrorCode::CanisterContractViolation,
                format!("\"ic0.{function}\" cannot be executed in {from} mode"),
            );
        }
        Ok(cx)
    }
}

use EntryPoint as E;

fn can_read_arg(e: &EntryPoint) -> bool {
    matches!(e, E::Init | E::PostUpgrade | E::Update(_) | E::Query { .. } | E::Reply(_))
}
fn can_respond(e: &EntryPoint) -> bool {
    matches!(e, E::Update(_) | E::Query { .. } | E::Reply(_) | E::Reject(_))
}
fn can_call(e: &EntryPoint) -> bool {
    matches!(e, E::Update(_) | E::Reply(_) | E::Reject(_) | E::Timer)
}
fn is_callback(e: &EntryPoint) -> bool {
    matches!(e, E::Reply(_) | E::Reject(_))
}
/// Where the cycles attached to the call can be seen and accepted.
fn can_take_cycles(e: &EntryPoint) -> bool {
    matches!(e, E::Update(_) | E::Query { replicated: true, .. } | E::Reply(_) | E::Reject(_))
}

impl ic0::Host for ExecState {
    fn msg_arg_data(&mut self) -> wasmtime::Result<Vec<u8>> {
        Ok(self.allowed("msg_arg_data_copy", can_read_arg)?.input.arg.clone())
    }

    fn msg_caller(&mut self) -> wasmtime::Result<Vec<u8>> {
        Ok(self.cx("msg_caller_copy")?.input.caller.as_slice().to_vec())
    }

    fn msg_reject_code(&mut self) -> wasmtime::Result<u32> {
        let cx = self.allowed("msg_reject_code", is_callback)?;
        Ok(cx.input.reject.as_ref().map_or(0, |(c, _)| *c as u32))
    }

    fn msg_reject_msg(&mut self) -> wasmtime::Result<String> {
        let cx = self.allowed("msg_reject_msg_copy", |e| matches!(e, E::Reject(_)))?;
        Ok(cx.input.reject.as_ref().map(|(_, m)| m.clone()).unwrap_or_default())
    }

    fn msg_deadline(&mut self) -> wasmtime::Result<u64> {
        let cx = self.allowed("msg_deadline", |e| {
            matches!(e, E::Update(_) | E::Query { .. } | E::Reply(_) | E::Reject(_))
        })?;
        Ok(cx.input.deadline)
    }

    fn msg_method_name(&mut self) -> wasmtime::Result<String> {
        // The IC allows it only in `canister_inspect_message`, which ww does
        // not run: everywhere else it traps, so code relying on it fails
        // here as it would on the IC.
        self.allowed("msg_method_name_copy", |_| false)?;
        Ok(String::new())
    }

    fn msg_reply_data_append(&mut self, data: Vec<u8>) -> wasmtime::Result<()> {
        let cx = self.allowed("msg_reply_data_append", can_respond)?;
        if !cx.input.needs_response || cx.response.is_some() {
            return trap(ErrorCode::CanisterContractViolation, "ic0.msg_reply_data_append: the call was already answered");
        }
        let max = cx.max_reply_bytes();
        if cx.reply_buf.len() + data.len() > max {
            return trap(
                ErrorCode::CanisterContractViolation,
                format!("ic0.msg_reply_data_append: application payload size ({}) cannot be larger than {max}", cx.reply_buf.len() + data.len()),
            );
        }
        cx.reply_buf.extend_from_slice(&data);
        Ok(())
    }

    fn msg_reply(&mut self) -> wasmtime::Result<()> {
        let cx = self.allowed("msg_reply", can_respond)?;
        if !cx.input.needs_response || cx.response.is_some() {
            return trap(ErrorCode::CanisterContractViolation, "ic0.msg_reply: the call was already answered (a call gets exactly one response)");
        }
        cx.response = Some(Response::Reply(std::mem::take(&mut cx.reply_buf)));
        Ok(())
    }

    fn msg_reject(&mut self, message: String) -> wasmtime::Result<()> {
        let cx = self.allowed("msg_reject", can_respond)?;
        if !cx.input.needs_response || cx.response.is_some() {
            return trap(ErrorCode::CanisterContractViolation, "ic0.msg_reject: the call was already answered (a call gets exactly one response)");
        }
        cx.response = Some(Response::Reject(message));
        Ok(())
    }

    fn msg_cycles_available(&mut self) -> wasmtime::Result<u64> {
        let cx = self.allowed("msg_cycles_available", can_take_cycles)?;
        Ok(cx.cycles_left())
    }

    fn msg_cycles_accept(&mut self, max_amount: u64) -> wasmtime::Result<u64> {
        let cx = self.allowed("msg_cycles_accept", can_take_cycles)?;
        let n = max_amount.min(cx.cycles_left());
        cx.cycles_accepted += n;
        Ok(n)
    }

    fn msg_cycles_refunded(&mut self) -> wasmtime::Result<u64> {
        Ok(self.allowed("msg_cycles_refunded", is_callback)?.input.cycles_refunded)
    }

    fn canister_cycle_balance(&mut self) -> wasmtime::Result<u64> {
        let cx = self.cx("canister_cycle_balance")?;
        let attached: u64 = cx.calls.iter().map(|c| c.cycles).sum();
        Ok(cx.info.balance.saturating_add(cx.cycles_accepted).saturating_sub(attached))
    }

    fn canister_self(&mut self) -> wasmtime::Result<Vec<u8>> {
        Ok(self.cx("canister_self_copy")?.info.id.as_slice().to_vec())
    }

    fn canister_status(&mut self) -> wasmtime::Result<u32> {
        Ok(self.cx("canister_status")?.info.status)
    }

    fn canister_version(&mut self) -> wasmtime::Result<u64> {
        Ok(self.cx("canister_version")?.info.version)
    }

    fn is_controller(&mut self, principal: Vec<u8>) -> wasmtime::Result<bool> {
        let cx = self.cx("is_controller")?;
        let Ok(p) = Principal::try_from_slice(&principal) else {
            return trap(ErrorCode::CanisterContractViolation, "ic0.is_controller: not a valid principal");
        };
        Ok(cx.info.controllers.contains(&p))
    }

    fn in_replicated_execution(&mut self) -> wasmtime::Result<bool> {
        let cx = self.cx("in_replicated_execution")?;
        Ok(!matches!(cx.input.entry, E::Query { replicated: false, .. }))
    }

    fn call(&mut self, args: ic0::CallArgs) -> wasmtime::Result<Result<(), ic0::Reject>> {
        let cx = self.allowed("call_perform", can_call)?;
        let Ok(callee) = Principal::try_from_slice(&args.callee) else {
            return trap(ErrorCode::CanisterContractViolation, "ic0.call_new: callee is not a valid principal");
        };
        if args.arg.len() > cx.limits.max_inter_canister_payload {
            return trap(
                ErrorCode::CanisterContractViolation,
                format!(
                    "ic0.call_data_append: payload size ({}) cannot be larger than {}",
                    args.arg.len(),
                    cx.limits.max_inter_canister_payload
                ),
            );
        }
        let staged = cx.calls.iter().filter(|c| c.callee == callee).count() as u32;
        if (cx.outstanding)(&callee) + staged >= cx.limits.max_outstanding_calls {
            return Ok(Err(ic0::Reject {
                code: RejectCode::SysTransient as u32,
                message: format!(
                    "IC0201: Canister {} has {} outstanding calls to {callee}; the queue is full",
                    cx.info.id, cx.limits.max_outstanding_calls
                ),
            }));
        }
        let balance = self.canister_cycle_balance()?;
        let cx = self.cx("call_perform")?;
        if args.cycles > balance {
            // As `ic0.call_cycles_add128` on the IC: a trap, not a reject.
            return trap(
                ErrorCode::CanisterOutOfCycles,
                format!("Canister {} attempted to send {} cycles when only {balance} were available in its balance", cx.info.id, args.cycles),
            );
        }
        cx.calls.push(OutgoingCall {
            callee,
            method: args.method,
            arg: args.arg,
            cycles: args.cycles,
            timeout_seconds: args.timeout_seconds.map(|t| t.min(cx.limits.max_call_timeout_seconds)),
            env: args.env,
            caller_version: cx.info.version,
        });
        Ok(Ok(()))
    }

    fn stable_size(&mut self) -> wasmtime::Result<u64> {
        self.cx("stable64_size")?;
        Ok(self.stable.size())
    }

    fn stable_grow(&mut self, new_pages: u64) -> wasmtime::Result<i64> {
        self.cx("stable64_grow")?;
        Ok(self.stable.grow(new_pages))
    }

    fn stable_read(&mut self, offset: u64, length: u64) -> wasmtime::Result<Vec<u8>> {
        self.cx("stable64_read")?;
        self.stable
            .read(offset, length)
            .or_else(|e| trap(ErrorCode::CanisterTrapped, format!("ic0.stable64_read: {e}")))
    }

    fn stable_write(&mut self, offset: u64, data: Vec<u8>) -> wasmtime::Result<()> {
        self.cx("stable64_write")?;
        self.stable
            .write(offset, &data)
            .or_else(|e| trap(ErrorCode::CanisterTrapped, format!("ic0.stable64_write: {e}")))
    }

    fn time(&mut self) -> wasmtime::Result<u64> {
        Ok(self.cx("time")?.input.time)
    }

    fn global_timer_set(&mut self, timestamp: u64) -> wasmtime::Result<u64> {
        let cx = self.allowed("global_timer_set", |e| !e.is_query())?;
        let previous = cx.timer.unwrap_or(cx.current_timer);
        cx.timer = Some(timestamp);
        Ok(previous)
    }

    fn performance_counter(&mut self, _counter_type: u32) -> wasmtime::Result<u64> {
        // Replaced by a store-aware definition in `CanisterRuntime::new`
        // (it needs the store's fuel); this one is never linked.
        Ok(0)
    }

    fn debug_print(&mut self, message: String) -> wasmtime::Result<()> {
        tracing::info!(target: "ww::canister", "[{}] {}", self.log_name, message);
        Ok(())
    }

    fn trap(&mut self, message: String) -> wasmtime::Result<()> {
        if let Some(cx) = self.ctx.as_mut() {
            cx.trap_message = Some(message.clone());
        }
        trap(ErrorCode::CanisterCalledTrap, message)
    }
}

impl ExecContext {
    /// Cycles of the call not accepted yet; none once it is answered (they
    /// went back with the response).
    fn cycles_left(&self) -> u64 {
        if self.response.is_some() || !self.input.needs_response {
            return 0;
        }
        self.input.cycles_available.saturating_sub(self.cycles_accepted)
    }

    fn max_reply_bytes(&self) -> usize {
        match self.input.entry {
            E::Query { replicated: false, .. } => self.limits.max_query_reply,
            _ => self.limits.max_inter_canister_payload,
        }
    }
}

