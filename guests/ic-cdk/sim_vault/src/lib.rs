//! `sim_vault`: a vault written against the unmodified ic-cdk 0.20 from
//! crates.io that holds users' credit on a `sim_ledger` and pays it out,
//! demonstrating what an upgrade with calls in flight does to a canister
//! (Motoko #2676, OpenChat #755), for ww's deterministic simulation.
//!
//! `withdraw(amount)` takes the caller's per-user lock (one withdrawal at a
//! time), debits `amount` from the caller's credit and adds it to
//! `in_flight()`, all committed at the await; then it calls the ledger's
//! `transfer` with an unbounded wait (it never gets `SYS_UNKNOWN`). When
//! the answer comes it releases the lock, takes `amount` off `in_flight()`
//! and, if the transfer failed, credits it back.
//!
//! The state survives upgrades the way ic-cdk users keep it: `pre_upgrade`
//! saves it to stable memory with `stable_save`, `post_upgrade` restores it.
//! What does not survive is the heap, and with it the futures of the calls
//! in flight: an ic-cdk callback is a function-table index and a pointer
//! into the heap of the module that made the call. Upgraded with calls in
//! flight, the new module runs those callbacks with pointers into its own,
//! unrelated heap: the code after the `await` never runs, and the lock and
//! `in_flight()` it should release stay taken for good (a failed transfer
//! is never credited back either). The spec advises stopping a canister
//! before upgrading it for exactly this.
//!
//! [`Mode`]: `Plain` upgrades whenever asked; `Guarded` traps in
//! `pre_upgrade` while a withdrawal is in flight (what Motoko does for its
//! own canisters), so an upgrade that would break it fails and the old
//! module stays.
//!
//! Invariants (once every call has concluded): no withdrawal is left in
//! flight and no lock held; the vault's balance on the ledger equals the
//! credit it owes.
//!
//! The `.did` beside this crate (`sim_vault.did`) is what `export_candid!`
//! gives; keep the two in sync.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use candid::{CandidType, Deserialize, Principal};
use ic_cdk::call::Call;
use ic_cdk::{init, post_upgrade, pre_upgrade, query, update};

/// Whether the vault lets itself be upgraded with withdrawals in flight.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Upgrades whenever asked.
    Plain,
    /// `pre_upgrade` traps while a withdrawal is in flight.
    Guarded,
}

/// The install argument.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct VaultInit {
    pub ledger: Principal,
    pub mode: Mode,
    /// What the vault owes whom at the start (it must hold as much on the
    /// ledger).
    pub credits: Vec<(Principal, u64)>,
}

/// `sim_ledger`'s `TransferArg`.
#[derive(CandidType, Deserialize, Clone, Debug)]
struct TransferArg {
    to: Principal,
    amount: u64,
    created_at_time: Option<u64>,
    memo: Option<u64>,
}

/// `sim_ledger`'s `TransferError`.
#[derive(CandidType, Deserialize, Clone, Debug)]
enum TransferError {
    InsufficientFunds { balance: u64 },
    Duplicate { duplicate_of: u64 },
}

/// Everything the vault keeps (saved whole across upgrades).
#[derive(CandidType, Deserialize)]
struct Vault {
    ledger: Principal,
    mode: Mode,
    credits: BTreeMap<Principal, u64>,
    /// Users with a withdrawal in flight.
    locked: BTreeSet<Principal>,
    /// The sum of the withdrawals in flight.
    in_flight: u64,
    /// How many times `post_upgrade` ran.
    upgrades: u64,
}

thread_local! {
    static VAULT: RefCell<Option<Vault>> = const { RefCell::new(None) };
}

fn with_vault<R>(f: impl FnOnce(&mut Vault) -> R) -> R {
    VAULT.with_borrow_mut(|v| f(v.as_mut().unwrap_or_else(|| ic_cdk::trap("sim_vault: not initialized"))))
}

#[init]
fn init(arg: VaultInit) {
    let mut credits = BTreeMap::new();
    for (user, amount) in arg.credits {
        let c: &mut u64 = credits.entry(user).or_default();
        *c = c.checked_add(amount).unwrap_or_else(|| ic_cdk::trap("init: a credit would overflow nat64"));
    }
    VAULT.set(Some(Vault { ledger: arg.ledger, mode: arg.mode, credits, locked: BTreeSet::new(), in_flight: 0, upgrades: 0 }));
}

#[pre_upgrade]
fn pre_upgrade() {
    let vault = VAULT.take().unwrap_or_else(|| ic_cdk::trap("sim_vault: not initialized"));
    if vault.mode == Mode::Guarded && !vault.locked.is_empty() {
        ic_cdk::trap(format!(
            "sim_vault: {} withdrawal(s) in flight; stop the canister before upgrading it",
            vault.locked.len()
        ));
    }
    ic_cdk::storage::stable_save((vault,)).unwrap_or_else(|e| ic_cdk::trap(format!("pre_upgrade: {e}")));
}

#[post_upgrade]
fn post_upgrade() {
    let (mut vault,): (Vault,) = ic_cdk::storage::stable_restore().unwrap_or_else(|e| ic_cdk::trap(format!("post_upgrade: {e}")));
    vault.upgrades += 1;
    VAULT.set(Some(vault));
}

/// Pays `amount` of the caller's credit out to the caller on the ledger;
/// returns the transfer's index, or what went wrong.
#[update]
async fn withdraw(amount: u64) -> Result<u64, String> {
    let caller = ic_cdk::api::msg_caller();
    let ledger = with_vault(|v| {
        if v.locked.contains(&caller) {
            return Err("a withdrawal of yours is in flight".to_string());
        }
        let credit = v.credits.get(&caller).copied().unwrap_or(0);
        if credit < amount {
            return Err(format!("insufficient credit: {credit}"));
        }
        v.credits.insert(caller, credit - amount);
        v.locked.insert(caller);
        // Cannot overflow: in_flight never exceeds the credits it came from.
        v.in_flight += amount;
        Ok(v.ledger)
    })?;
    let arg = TransferArg { to: caller, amount, created_at_time: None, memo: None };
    let result = match Call::unbounded_wait(ledger, "transfer").with_arg(&arg).await {
        Ok(reply) => match reply.candid::<Result<u64, TransferError>>() {
            Ok(Ok(index)) => Ok(index),
            Ok(Err(e)) => Err(format!("the ledger refused the transfer: {e:?}")),
            Err(e) => Err(format!("the ledger's reply to transfer: {e}")),
        },
        Err(e) => Err(format!("transfer failed: {e}")),
    };
    with_vault(|v| {
        v.locked.remove(&caller);
        v.in_flight = v.in_flight.checked_sub(amount).unwrap_or_else(|| ic_cdk::trap("withdraw: in_flight would go below zero"));
        if result.is_err() {
            *v.credits.entry(caller).or_default() += amount;
        }
    });
    result
}

/// What the vault owes `user`.
#[query]
fn credit_of(user: Principal) -> u64 {
    with_vault(|v| v.credits.get(&user).copied().unwrap_or(0))
}

/// What the vault owes in all.
#[query]
fn total_credit() -> u64 {
    with_vault(|v| v.credits.values().sum())
}

/// The sum of the withdrawals in flight.
#[query]
fn in_flight() -> u64 {
    with_vault(|v| v.in_flight)
}

/// How many users have a withdrawal in flight.
#[query]
fn locked() -> u64 {
    with_vault(|v| v.locked.len() as u64)
}

/// How many upgrades the vault went through.
#[query]
fn upgrades() -> u64 {
    with_vault(|v| v.upgrades)
}

ic_cdk::export_candid!();
