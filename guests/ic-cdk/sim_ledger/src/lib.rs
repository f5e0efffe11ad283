//! `sim_ledger`: a minimal ICRC-1-like token ledger written against the
//! unmodified ic-cdk 0.20 from crates.io, the callee of ww's deterministic
//! simulation and fault-injection demonstrations (`sim_wallet` pays through
//! its `transfer`, `sim_minter` mints through its `mint`).
//!
//! All state lives in the heap: the balances, the total supply, a
//! transaction counter and the de-duplication map. Every successful `mint`
//! or `transfer` is one transaction and gets the next index (the initial
//! balances are recorded as mints first, as ICRC-1 ledgers record them, so
//! the first index after `init` is the number of initial balances).
//!
//! De-duplication is ICRC-1's: only a transfer with `created_at_time` set
//! is de-duplicated, on the key (caller, `to`, `amount`, `created_at_time`,
//! `memo`); a repeated key is answered `Duplicate { duplicate_of }` (the
//! index of the first one) without moving funds. Unlike a real ICRC-1
//! ledger there is no transaction window (`TooOld`, `CreatedInFuture`): a
//! key is remembered forever.
//!
//! Invariant: the balances always add up to `total_supply()`, which only
//! `mint` (and `init`) increases.
//!
//! The `.did` beside this crate (`sim_ledger.did`) is what `export_candid!`
//! gives; keep the two in sync.

use std::cell::RefCell;
use std::collections::BTreeMap;

use candid::{CandidType, Deserialize, Principal};
use ic_cdk::{init, query, update};

/// The install argument: who holds what at the start.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct LedgerInit {
    pub initial_balances: Vec<(Principal, u64)>,
}

/// A transfer from the caller.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct TransferArg {
    pub to: Principal,
    pub amount: u64,
    /// When set, the transfer is de-duplicated (see the crate doc).
    pub created_at_time: Option<u64>,
    pub memo: Option<u64>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum TransferError {
    /// The caller's balance is below `amount`; nothing moved.
    InsufficientFunds { balance: u64 },
    /// The same transfer (same de-duplication key) already happened as
    /// transaction `duplicate_of`; nothing moved this time.
    Duplicate { duplicate_of: u64 },
}

/// ICRC-1's de-duplication key: (caller, to, amount, created_at_time, memo).
type DedupKey = (Principal, Principal, u64, u64, Option<u64>);

#[derive(Default)]
struct Ledger {
    balances: BTreeMap<Principal, u64>,
    total_supply: u64,
    tx_count: u64,
    /// De-duplication key to the index of the transaction it made.
    seen: BTreeMap<DedupKey, u64>,
}

impl Ledger {
    fn balance(&self, p: &Principal) -> u64 {
        self.balances.get(p).copied().unwrap_or(0)
    }

    /// Records a transaction and returns its index.
    fn next_tx(&mut self) -> u64 {
        let index = self.tx_count;
        self.tx_count += 1;
        index
    }

    fn mint(&mut self, to: Principal, amount: u64) -> u64 {
        self.total_supply =
            self.total_supply.checked_add(amount).unwrap_or_else(|| ic_cdk::trap("mint: the total supply would overflow nat64"));
        // Cannot overflow: every balance is at most the total supply.
        *self.balances.entry(to).or_default() += amount;
        self.next_tx()
    }

    fn transfer(&mut self, from: Principal, arg: &TransferArg) -> Result<u64, TransferError> {
        let key = arg.created_at_time.map(|t| (from, arg.to, arg.amount, t, arg.memo));
        if let Some(&duplicate_of) = key.as_ref().and_then(|k| self.seen.get(k)) {
            return Err(TransferError::Duplicate { duplicate_of });
        }
        let balance = self.balance(&from);
        if balance < arg.amount {
            return Err(TransferError::InsufficientFunds { balance });
        }
        self.balances.insert(from, balance - arg.amount);
        *self.balances.entry(arg.to).or_default() += arg.amount;
        let index = self.next_tx();
        if let Some(key) = key {
            self.seen.insert(key, index);
        }
        Ok(index)
    }
}

thread_local! {
    static LEDGER: RefCell<Ledger> = RefCell::default();
}

/// Mints each initial balance, in order (transactions 0, 1, ...).
#[init]
fn init(args: LedgerInit) {
    LEDGER.with_borrow_mut(|l| {
        for (owner, amount) in args.initial_balances {
            l.mint(owner, amount);
        }
    });
}

/// Moves `amount` from the caller to `to` and returns the transaction's
/// index; de-duplicated when `created_at_time` is set.
#[update]
fn transfer(arg: TransferArg) -> Result<u64, TransferError> {
    let from = ic_cdk::api::msg_caller();
    LEDGER.with_borrow_mut(|l| l.transfer(from, &arg))
}

/// Credits `amount` to `to` out of nothing (anyone may mint: this is a
/// demonstration) and returns the transaction's index.
#[update]
fn mint(to: Principal, amount: u64) -> u64 {
    LEDGER.with_borrow_mut(|l| l.mint(to, amount))
}

/// Keeps half the cycles sent with the call and returns how many it kept
/// (the rest goes back to the caller): for cycles conservation (I6).
#[update]
fn take_tip() -> u64 {
    let available = ic_cdk::api::msg_cycles_available();
    ic_cdk::api::msg_cycles_accept(available / 2) as u64
}

#[query]
fn balance_of(p: Principal) -> u64 {
    LEDGER.with_borrow(|l| l.balance(&p))
}

#[query]
fn total_supply() -> u64 {
    LEDGER.with_borrow(|l| l.total_supply)
}

/// How many transactions (mints, initial balances included, and
/// transfers) there have been: the next transaction's index.
#[query]
fn tx_count() -> u64 {
    LEDGER.with_borrow(|l| l.tx_count)
}

ic_cdk::export_candid!();
