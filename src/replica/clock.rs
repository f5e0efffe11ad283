//! The replica's clock thread: it fires due global timers, queues a
//! heartbeat per round for canisters that export one, fails
//! `stop_canister` calls that waited too long (IC0206), and expires
//! bounded-wait calls at their deadline (`SYS_UNKNOWN`; the callee still
//! owes its response, which is dropped on the way back). It sleeps until
//! the next of these is due, at most 100 ms, or until woken
//! (`clock_changed`). In rounds mode it does nothing: each round does the
//! same at the round's time (see `ingress`), and nothing happens between
//! rounds.

use std::sync::Weak;
use std::time::Duration;

use candid::Principal;

use super::scheduler::Inner;
use super::state::{Origin, SystemTask, Task};
use super::{ErrorCode, Reject, RejectCode, Status, wall_clock_ns};

impl Inner {
    /// Fires due timers and expires bounded-wait calls.
    pub(super) fn tick(&self) {
        let mut st = self.lock();
        let now = st.now();
        let due: Vec<Principal> = st
            .canisters
            .iter()
            .filter(|(_, s)| s.timer != 0 && s.timer <= now && s.status == Status::Running && s.module_hash.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(s) = st.canisters.get_mut(&id) {
                s.timer = 0;
            }
            self.enqueue(&mut st, id, Task::System(SystemTask::Timer));
        }
        // A round: every running canister with a heartbeat gets one (unless
        // the last has not run yet).
        let beating: Vec<Principal> = st
            .canisters
            .iter()
            .filter(|(_, s)| s.heartbeat && !s.heartbeat_queued && s.status == Status::Running && s.module_hash.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in beating {
            if let Some(s) = st.canisters.get_mut(&id) {
                s.heartbeat_queued = true;
            }
            self.enqueue(&mut st, id, Task::System(SystemTask::Heartbeat));
        }
        // stop_canister calls that waited too long fail; the canister stays
        // stopping (IC0206, as on the IC).
        let mut timed_out = Vec::new();
        for (id, slot) in st.canisters.iter_mut() {
            if slot.stop_waiters.iter().any(|(until, _)| *until <= now) {
                let (late, waiting) = std::mem::take(&mut slot.stop_waiters).into_iter().partition(|(until, _)| *until <= now);
                slot.stop_waiters = waiting;
                timed_out.extend(late.into_iter().map(|(_, w): (u64, _)| (*id, w)));
            }
        }
        for (id, waiter) in timed_out {
            waiter.call(Err(Reject::system(
                ErrorCode::StopCanisterRequestTimeout,
                format!("Stop canister request for {id} timed out; the canister is still stopping."),
            )));
        }
        let expired: Vec<(u64, u64)> = st.deadlines.range(..=(now, u64::MAX)).copied().collect();
        for key in expired {
            st.deadlines.remove(&key);
            let cb_id = key.1;
            let Some(cb) = st.callbacks.get(&cb_id) else { continue };
            let caller = cb.caller;
            let remote = cb.callee_context.is_none() && cb.callee != Principal::management_canister();
            // The callee still owes a response (its reply succeeds and its
            // execution commits), but the response no longer reaches us.
            if let Some(cctx) = cb.callee_context
                && let Some(c) = st.contexts.get_mut(&cctx)
                && matches!(c.origin, Origin::Canister { .. })
            {
                c.origin = Origin::Expired;
            }
            let reject = Reject {
                code: RejectCode::SysUnknown,
                error_code: Some(ErrorCode::DeadlineExpired),
                message: "IC0601: the call's deadline expired before a response arrived; the call may or may not have been executed".into(),
            };
            // The response (and any refund in it) is dropped when it comes.
            if remote {
                st.remote_expired.insert(cb_id);
            }
            self.enqueue(&mut st, caller, Task::Response { callback: cb_id, result: Err(reject), refund: 0 });
        }
    }

    pub(super) fn next_wakeup(&self) -> Option<u64> {
        let st = self.lock();
        let timers = st
            .canisters
            .values()
            .flat_map(|s| (s.timer != 0).then_some(s.timer).into_iter().chain(s.stop_waiters.iter().map(|(until, _)| *until)))
            .min();
        let deadline = st.deadlines.iter().next().map(|(d, _)| *d);
        match (timers, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|t| t.saturating_sub(st.time_offset))
    }
}

pub(super) fn clock_thread(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if inner.config.clock == super::Clock::Wall {
            inner.tick();
        }
        let wait = match inner.next_wakeup() {
            Some(at) => Duration::from_nanos(at.saturating_sub(wall_clock_ns())).min(Duration::from_millis(100)),
            None => Duration::from_millis(100),
        };
        let guard = inner.lock();
        let _ = inner.clock_changed.wait_timeout(guard, wait.max(Duration::from_micros(200)));
    }
}
