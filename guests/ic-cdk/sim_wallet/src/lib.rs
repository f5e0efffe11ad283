//! `sim_wallet`: a wallet written against the unmodified ic-cdk 0.20 from
//! crates.io that pays out of its balance on a `sim_ledger`, demonstrating
//! the "retry after `SYS_UNKNOWN` without a de-duplication key" bug and its
//! two fixes, for ww's deterministic simulation and fault injection.
//!
//! `pay(to, amount)` first adds `amount` to `requested()` (committed at the
//! first await), then calls the ledger's `transfer`, the way [`Mode`] says:
//!
//! - `Buggy`: a bounded-wait call, retried (at most 3 attempts in all)
//!   whenever the error `is_immediately_retryable()`, as a developer writes
//!   who read "retry on retryable errors", with no de-duplication key. A
//!   bounded-wait call whose transfer executed on the ledger but whose reply
//!   was lost comes back `SYS_UNKNOWN`, which counts as retryable: the retry
//!   transfers `amount` a second time.
//! - `Dedup`: the same calls and retries, but with `created_at_time` and
//!   `memo` fixed once per payment, so the ledger answers a retry of a
//!   transfer it already made `Duplicate { duplicate_of }`, which counts as
//!   success.
//! - `Unbounded`: one unbounded-wait call, never retried (an unbounded-wait
//!   call never gets `SYS_UNKNOWN`: it waits for the real outcome).
//!
//! On success `amount` is added to `paid()`.
//!
//! Invariant: `ledger.balance_of(wallet) + wallet.requested()` is at least
//! the wallet's initial balance on the ledger (no payment debits more than
//! it asked for). `Buggy` breaks it when a transfer's reply is dropped and
//! the wallet retries; `Dedup` and `Unbounded` never do.
//!
//! The `.did` beside this crate (`sim_wallet.did`) is what `export_candid!`
//! gives; keep the two in sync.

use std::cell::RefCell;

use candid::{CandidType, Deserialize, Principal};
use ic_cdk::call::{Call, CallErrorExt, Response};
use ic_cdk::{init, query, update};

/// How `pay` calls the ledger.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Bounded wait, retried on retryable errors, no de-duplication key.
    Buggy,
    /// Bounded wait, retried on retryable errors, with a de-duplication key.
    Dedup,
    /// Unbounded wait, not retried.
    Unbounded,
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

/// Attempts a bounded-wait transfer makes at most (the first and two retries).
const MAX_ATTEMPTS: u32 = 3;

struct Wallet {
    ledger: Principal,
    mode: Mode,
    requested: u64,
    paid: u64,
    /// The memo of the next `Dedup` payment.
    next_memo: u64,
}

thread_local! {
    static WALLET: RefCell<Option<Wallet>> = const { RefCell::new(None) };
}

fn with_wallet<R>(f: impl FnOnce(&mut Wallet) -> R) -> R {
    WALLET.with_borrow_mut(|w| f(w.as_mut().unwrap_or_else(|| ic_cdk::trap("sim_wallet: not initialized"))))
}

#[init]
fn init(ledger: Principal, mode: Mode) {
    WALLET.set(Some(Wallet { ledger, mode, requested: 0, paid: 0, next_memo: 0 }));
}

/// Pays `amount` to `to` through the ledger; returns the transfer's index
/// on the ledger, or what went wrong.
#[update]
async fn pay(to: Principal, amount: u64) -> Result<u64, String> {
    let (ledger, mode) = with_wallet(|w| {
        w.requested =
            w.requested.checked_add(amount).unwrap_or_else(|| ic_cdk::trap("pay: the requested total would overflow nat64"));
        (w.ledger, w.mode)
    });
    let result = match mode {
        Mode::Buggy => {
            let arg = TransferArg { to, amount, created_at_time: None, memo: None };
            transfer_with_retries(ledger, &arg).await
        }
        Mode::Dedup => {
            let memo = with_wallet(|w| {
                let memo = w.next_memo;
                w.next_memo += 1;
                memo
            });
            let arg = TransferArg { to, amount, created_at_time: Some(ic_cdk::api::time()), memo: Some(memo) };
            transfer_with_retries(ledger, &arg).await
        }
        Mode::Unbounded => {
            let arg = TransferArg { to, amount, created_at_time: None, memo: None };
            match Call::unbounded_wait(ledger, "transfer").with_arg(&arg).await {
                Ok(reply) => outcome(&reply),
                Err(e) => Err(format!("transfer failed: {e}")),
            }
        }
    };
    if result.is_ok() {
        // Cannot overflow: `paid` never exceeds `requested`.
        with_wallet(|w| w.paid += amount);
    }
    result
}

/// Bounded-wait calls to the ledger's `transfer`, the call retried while
/// its error is immediately retryable, [`MAX_ATTEMPTS`] calls at most.
async fn transfer_with_retries(ledger: Principal, arg: &TransferArg) -> Result<u64, String> {
    let mut attempt = 1;
    loop {
        match Call::bounded_wait(ledger, "transfer").with_arg(arg).await {
            Ok(reply) => return outcome(&reply),
            Err(e) if e.is_immediately_retryable() && attempt < MAX_ATTEMPTS => attempt += 1,
            Err(e) => return Err(format!("transfer failed after {attempt} attempt(s): {e}")),
        }
    }
}

/// What the ledger's reply to `transfer` means for the payment: a
/// `Duplicate` answer is the transfer an earlier attempt made, so it is
/// success.
fn outcome(reply: &Response) -> Result<u64, String> {
    match reply.candid::<Result<u64, TransferError>>() {
        Ok(Ok(index)) | Ok(Err(TransferError::Duplicate { duplicate_of: index })) => Ok(index),
        Ok(Err(TransferError::InsufficientFunds { balance })) => {
            Err(format!("insufficient funds: the wallet's balance is {balance}"))
        }
        Err(e) => Err(format!("the ledger's reply to transfer: {e}")),
    }
}

/// The sum of the amounts of every `pay` so far (successful or not).
/// Sends `cycles` to the ledger's `take_tip`, with a bounded wait when
/// `bounded`, and returns how many came back (`msg_cycles_refunded`; none
/// when the call expired): for cycles conservation (I6).
#[update]
async fn tip(cycles: u64, bounded: bool) -> u64 {
    let ledger = with_wallet(|w| w.ledger);
    let call = if bounded { Call::bounded_wait(ledger, "take_tip") } else { Call::unbounded_wait(ledger, "take_tip") };
    let _ = call.with_cycles(u128::from(cycles)).await;
    ic_cdk::api::msg_cycles_refunded() as u64
}

#[query]
fn requested() -> u64 {
    with_wallet(|w| w.requested)
}

/// The sum of the amounts of the successful `pay`s.
#[query]
fn paid() -> u64 {
    with_wallet(|w| w.paid)
}

ic_cdk::export_candid!();
