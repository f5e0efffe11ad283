//! The replica's side of cycles accounting: which fees a canister pays
//! (its subnet's), deposits, and the charges that happen outside an
//! execution: ingress induction and `create_canister`'s fee. Charges of
//! executions and calls are applied by the scheduler with the amounts
//! [`super::Fees`] gives.

use candid::Principal;

use super::Fees;
use crate::replica::state::Slot;
use crate::replica::{ErrorCode, Reject, Replica};

impl Replica {
    /// What subnet `subnet` charges (a 13-node Normal subnet if unknown).
    pub(crate) fn fees_of_subnet(&self, subnet: &Principal) -> Fees {
        self.inner.config.subnets.iter().find(|s| s.id == *subnet).map_or_else(Fees::default, |s| s.fees())
    }

    /// What canister `canister` is charged (its subnet's fees; for a
    /// principal that is no canister here, the first subnet's).
    pub fn fees_of(&self, canister: &Principal) -> Fees {
        if let Some(slot) = self.lock().canisters.get(canister) {
            return slot.fees;
        }
        let index = crate::replica::canister_index(canister);
        let subnets = &self.inner.config.subnets;
        subnets.iter().find(|s| index.is_some_and(|i| s.canisters.contains(&i))).or(subnets.first()).map_or_else(Fees::default, |s| s.fees())
    }

    /// Adds `amount` cycles to a canister's balance.
    pub fn deposit_cycles(&self, canister: Principal, amount: u128) -> Result<(), Reject> {
        let mut st = self.lock();
        let Some(slot) = st.canisters.get_mut(&canister) else {
            return Err(Reject::system(ErrorCode::CanisterNotFound, format!("Canister {canister} not found")));
        };
        slot.balance = slot.balance.saturating_add(amount);
        Ok(())
    }

    /// Charges canister `canister` for an ingress message of `bytes` sent
    /// by `sender`, as the IC does when it inducts it: refused with IC0207
    /// when that would take it below its freezing limit. A message to a
    /// canister that does not exist here is charged nothing (it fails
    /// elsewhere).
    pub(crate) fn charge_ingress(&self, canister: &Principal, sender: &Principal, bytes: usize) -> Result<(), Reject> {
        let mut st = self.lock();
        let now = st.now();
        let Some(slot) = st.canisters.get_mut(canister) else { return Ok(()) };
        slot.settle_resources(now);
        let cost = slot.fees.ingress_cost(bytes);
        if !slot.can_pay(cost) {
            return Err(slot.out_of_cycles(canister, sender, cost));
        }
        slot.charge(cost);
        Ok(())
    }

    /// Who pays for an ingress message to `canister`'s `method`: the
    /// canister; for the management canister, the canister the call is
    /// about (its `canister_id` or `target_canister`), except the
    /// provisional methods (free) and `update_settings` (which the IC
    /// charges after applying it, so that a frozen canister can lower its
    /// threshold; ww does not charge it).
    pub(crate) fn ingress_payer(canister: &Principal, method: &str, arg: &[u8]) -> Option<Principal> {
        if *canister != Principal::management_canister() {
            return Some(*canister);
        }
        if method.starts_with("provisional_") || method == "update_settings" {
            return None;
        }
        #[derive(candid::CandidType, candid::Deserialize)]
        struct Target {
            canister_id: Option<Principal>,
            target_canister: Option<Principal>,
        }
        let target: Target = candid::decode_one(arg).ok()?;
        target.canister_id.or(target.target_canister)
    }

    /// `create_canister`'s fee, checked against the `attached` cycles of a
    /// call from `caller`: what the new canister starts with.
    pub(crate) fn creation_balance(&self, caller: &Principal, attached: u128) -> Result<u128, Reject> {
        let fee = self.fees_of(caller).creation();
        if attached < fee {
            return Err(Reject::system(
                ErrorCode::InsufficientCyclesForCreateCanister,
                format!(
                    "Creating a canister requires a fee of {fee} that is deducted from the canister's initial balance but only {attached} cycles were received with the create_canister request."
                ),
            ));
        }
        Ok(attached - fee)
    }
}

/// How an execution pays for itself: settled with its outcome, whether it
/// committed or trapped.
#[derive(Clone, Copy, Debug)]
pub(in crate::replica) enum Payment {
    /// Nothing (a non-replicated execution).
    Nothing,
    /// From its prepayment: it is charged what it used.
    Prepaid { fees: Fees, wasm64: bool },
    /// A callback, from its call's reservation (`reserved`): what it did
    /// not use goes back.
    Reserved { fees: Fees, wasm64: bool, reserved: u128 },
}

impl Payment {
    /// Settles an execution that used `instructions` on `slot`.
    pub(in crate::replica) fn settle(self, slot: &mut Slot, instructions: u64) {
        match self {
            Payment::Nothing => {}
            Payment::Prepaid { fees, wasm64 } => slot.charge(fees.execution_cost(instructions, wasm64)),
            Payment::Reserved { fees, wasm64, reserved } => {
                slot.balance = slot.balance.saturating_add(reserved);
                slot.charge(fees.execution_cost(instructions, wasm64));
            }
        }
    }
}
