//! `sim_minter`: a minter written against the unmodified ic-cdk 0.20 from
//! crates.io that mints a `sim_ledger`'s tokens for deposits, the way the
//! ckBTC minter mints ckBTC for Bitcoin UTXOs, demonstrating the
//! "record the outcome after the await" double-mint risk (fixed in the
//! ckBTC minter by dfinity/ic PR #3930) for ww's deterministic simulation
//! and fault injection.
//!
//! `deposit(id, amount)` records a pending deposit (think: a UTXO the
//! minter has seen). `update_balance()` mints each pending deposit, in id
//! order and one at a time, to the caller with an unbounded-wait call to
//! the ledger's `mint` (the legacy unbounded wait the ckBTC minter uses),
//! and after the await marks it minted (on a reply) or leaves it pending
//! (on a reject). How, [`MinterMode`] says:
//!
//! - `Early`: exactly that. If the execution after the await traps (at the
//!   instruction limit, say), the system rolls it back, `Minted` mark
//!   included: the deposit is pending again and the next `update_balance`
//!   mints it a second time. Two concurrent `update_balance` calls can also
//!   both mint the same deposit (it stays pending while its mint is in
//!   flight).
//! - `Guarded`: before the call the deposit is marked `Minting` (committed
//!   at the await, so it is never picked again while the outcome is open)
//!   and a [`MintGuard`] is armed; after the await the deposit is marked
//!   `Minted` (or `Pending` again on a reject) and the guard disarmed. If
//!   the execution after the await traps, the rollback brings back the
//!   `Minting` mark and the armed guard; ic-cdk's cleanup callback then
//!   drops the method's future, and the guard's `Drop` marks the deposit
//!   `MintUnknown`: never minted again automatically, counted by
//!   `unknown()`.
//!
//! Invariant: `ledger.total_supply() <= minter.deposited()` (the minter
//! never mints more than was deposited; the ledger has no other minter).
//! `Early` breaks it when the execution after a mint's await traps;
//! `Guarded` never does.
//!
//! The `.did` beside this crate (`sim_minter.did`) is what `export_candid!`
//! gives; keep the two in sync.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

use candid::{CandidType, Deserialize, Principal};
use ic_cdk::call::Call;
use ic_cdk::{init, query, update};

/// When `update_balance` records that a deposit is being minted.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinterMode {
    /// Only after the mint call's await: a trap there loses the record.
    Early,
    /// Before the call too (`Minting`), with a scope guard for a trap
    /// after the await.
    Guarded,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Seen, not minted yet: `update_balance` mints it.
    Pending,
    /// Its mint call is in flight (`Guarded` only).
    Minting,
    Minted,
    /// Its mint call's outcome was lost to a trap (`Guarded` only): it may
    /// or may not have been minted, and is never minted again
    /// automatically.
    MintUnknown,
}

struct Deposit {
    amount: u64,
    status: Status,
}

struct Minter {
    ledger: Principal,
    mode: MinterMode,
    deposits: BTreeMap<u64, Deposit>,
    /// The sum of the amounts of all deposits.
    deposited: u64,
}

impl Minter {
    /// The first pending deposit with an id above `after` (any id when
    /// `None`): its id and amount.
    fn next_pending(&self, after: Option<u64>) -> Option<(u64, u64)> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.deposits.range((from, Bound::Unbounded)).find(|(_, d)| d.status == Status::Pending).map(|(&id, d)| (id, d.amount))
    }

    fn set_status(&mut self, id: u64, status: Status) {
        if let Some(d) = self.deposits.get_mut(&id) {
            d.status = status;
        }
    }
}

thread_local! {
    static MINTER: RefCell<Option<Minter>> = const { RefCell::new(None) };
}

fn with_minter<R>(f: impl FnOnce(&mut Minter) -> R) -> R {
    MINTER.with_borrow_mut(|m| f(m.as_mut().unwrap_or_else(|| ic_cdk::trap("sim_minter: not initialized"))))
}

/// Marks deposit `id` `MintUnknown` if dropped while armed. ic-cdk 0.20
/// drops an async method's future in the cleanup callback of the call it
/// awaits when the execution after that await traps (after the rollback,
/// so the guard is armed again), and `Drop` runs there. The cleanup
/// callback may only touch the heap (and a few system calls): `drop` reads
/// nothing about the message, and does not trap.
struct MintGuard {
    id: u64,
    armed: bool,
}

impl MintGuard {
    fn arm(id: u64) -> Self {
        MintGuard { id, armed: true }
    }

    /// The outcome of the mint has been recorded.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for MintGuard {
    fn drop(&mut self) {
        if self.armed {
            MINTER.with_borrow_mut(|m| {
                if let Some(m) = m {
                    m.set_status(self.id, Status::MintUnknown);
                }
            });
        }
    }
}

#[init]
fn init(ledger: Principal, mode: MinterMode) {
    MINTER.set(Some(Minter { ledger, mode, deposits: BTreeMap::new(), deposited: 0 }));
}

/// Records a pending deposit of `amount`; a known `id` is ignored.
#[update]
fn deposit(id: u64, amount: u64) {
    with_minter(|m| {
        if m.deposits.contains_key(&id) {
            return;
        }
        m.deposited =
            m.deposited.checked_add(amount).unwrap_or_else(|| ic_cdk::trap("deposit: the deposited total would overflow nat64"));
        m.deposits.insert(id, Deposit { amount, status: Status::Pending });
    });
}

/// Mints every pending deposit to the caller, one at a time in id order;
/// returns how many this call minted.
#[update]
async fn update_balance() -> u64 {
    let owner = ic_cdk::api::msg_caller();
    let (ledger, mode) = with_minter(|m| (m.ledger, m.mode));
    let mut minted = 0;
    let mut after = None;
    while let Some((id, amount)) = with_minter(|m| m.next_pending(after)) {
        after = Some(id);
        let ok = match mode {
            MinterMode::Early => {
                let ok = mint(ledger, owner, id, amount).await;
                if ok {
                    with_minter(|m| m.set_status(id, Status::Minted));
                }
                ok
            }
            MinterMode::Guarded => {
                with_minter(|m| m.set_status(id, Status::Minting));
                let guard = MintGuard::arm(id);
                let ok = mint(ledger, owner, id, amount).await;
                with_minter(|m| m.set_status(id, if ok { Status::Minted } else { Status::Pending }));
                guard.disarm();
                ok
            }
        };
        if ok {
            minted += 1;
        }
    }
    minted
}

/// Mints `amount` to `owner` on the ledger for deposit `id`: whether the
/// ledger replied (with an unbounded wait, a reply means the mint happened
/// and a reject that it did not).
async fn mint(ledger: Principal, owner: Principal, id: u64, amount: u64) -> bool {
    match Call::unbounded_wait(ledger, "mint").with_args(&(owner, amount)).await {
        Ok(_block_index) => true,
        Err(e) => {
            ic_cdk::println!("update_balance: minting deposit {id} failed: {e}");
            false
        }
    }
}

/// The sum of the amounts of all deposits.
#[query]
fn deposited() -> u64 {
    with_minter(|m| m.deposited)
}

/// The sum of the amounts of the minted deposits.
#[query]
fn minted() -> u64 {
    with_minter(|m| m.deposits.values().filter(|d| d.status == Status::Minted).map(|d| d.amount).sum())
}

/// How many deposits' mint outcome was lost to a trap (`Guarded` only).
#[query]
fn unknown() -> u64 {
    with_minter(|m| m.deposits.values().filter(|d| d.status == Status::MintUnknown).count() as u64)
}

ic_cdk::export_candid!();
