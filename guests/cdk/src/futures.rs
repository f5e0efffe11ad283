//! The executor: single-threaded, and entirely in linear memory.
//!
//! Tasks live in a `thread_local` table (so a rolled-back execution rolls
//! the table back with everything else). Every export runs ready tasks
//! before it returns; a task that awaits something not ready yet (an
//! inter-canister call) stays in the table until a later execution wakes it
//! (the call's `on-reply`/`on-reject`) or drops it (its `on-cleanup`).
//!
//! [`spawn`] queues a task; it is first polled once the code running now
//! (the method, or the task calling `spawn`) returns or awaits something
//! pending, still within the same execution.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

/// A task's id; never reused within a canister's life.
pub(crate) type TaskId = u64;

thread_local! {
    /// Every live task; `None` while that task is being polled.
    static TASKS: RefCell<BTreeMap<TaskId, Option<BoxFuture>>> = const { RefCell::new(BTreeMap::new()) };
    /// Tasks to poll, in order.
    static READY: RefCell<VecDeque<TaskId>> = const { RefCell::new(VecDeque::new()) };
    static NEXT_TASK: Cell<TaskId> = const { Cell::new(1) };
    /// The task being polled, if any.
    static CURRENT: Cell<Option<TaskId>> = const { Cell::new(None) };
    /// Whether `run_ready` is on the stack.
    static RUNNING: Cell<bool> = const { Cell::new(false) };
}

/// Spawns `future` as a task of this canister. It first runs before the
/// current execution ends; if it then waits on a call, it resumes in the
/// call's callback execution.
pub fn spawn<F: Future<Output = ()> + 'static>(future: F) {
    let id = NEXT_TASK.with(|next| {
        let id = next.get();
        next.set(id + 1);
        id
    });
    TASKS.with(|tasks| tasks.borrow_mut().insert(id, Some(Box::pin(future))));
    wake_task(id);
}

/// The number of tasks alive (running, ready or waiting).
pub fn task_count() -> usize {
    TASKS.with(|tasks| tasks.borrow().len())
}

/// The task being polled now, if any.
pub(crate) fn current_task() -> Option<TaskId> {
    CURRENT.with(Cell::get)
}

fn wake_task(id: TaskId) {
    READY.with(|ready| {
        let mut ready = ready.borrow_mut();
        if !ready.contains(&id) {
            ready.push_back(id);
        }
    });
}

/// Drops task `id` without polling it again (a callback it waited on trapped).
pub(crate) fn cancel_task(id: TaskId) {
    let future = TASKS.with(|tasks| tasks.borrow_mut().remove(&id));
    // Dropped here, outside the borrow: the task's destructors may touch
    // the executor or the call table.
    drop(future);
}

struct TaskWaker(TaskId);

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        wake_task(self.0);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        wake_task(self.0);
    }
}

/// Polls ready tasks until none is ready. Every export calls it last.
pub(crate) fn run_ready() {
    if RUNNING.with(|r| r.replace(true)) {
        return;
    }
    while let Some(id) = READY.with(|ready| ready.borrow_mut().pop_front()) {
        let taken = TASKS.with(|tasks| tasks.borrow_mut().get_mut(&id).and_then(Option::take));
        let Some(mut future) = taken else {
            // Finished or cancelled since it was woken.
            continue;
        };
        let waker = Waker::from(Arc::new(TaskWaker(id)));
        let previous = CURRENT.with(|c| c.replace(Some(id)));
        let poll = future.as_mut().poll(&mut Context::from_waker(&waker));
        CURRENT.with(|c| c.set(previous));
        match poll {
            Poll::Ready(()) => {
                TASKS.with(|tasks| tasks.borrow_mut().remove(&id));
                drop(future);
            }
            Poll::Pending => {
                let orphan = TASKS.with(|tasks| match tasks.borrow_mut().get_mut(&id) {
                    Some(slot) => {
                        *slot = Some(future);
                        None
                    }
                    None => Some(future),
                });
                drop(orphan);
            }
        }
    }
    RUNNING.with(|r| r.set(false));
}
