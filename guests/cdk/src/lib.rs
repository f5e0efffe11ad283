//! `ww-cdk`: write Internet Computer canisters, the way `ic-cdk` 0.18 does,
//! that run on ww as components of world `ww:canister/canister@0.1.0`
//! (`wit/canister.wit`: they import `ic0`, the IC system API in typed form,
//! and export `entry`).
//!
//! ```ignore
//! use ww_cdk::{query, update};
//!
//! thread_local! {
//!     static COUNTER: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
//! }
//!
//! #[update]
//! fn inc() -> u64 {
//!     COUNTER.with(|c| { c.set(c.get() + 1); c.get() })
//! }
//!
//! #[query]
//! fn get() -> u64 {
//!     COUNTER.with(|c| c.get())
//! }
//!
//! ww_cdk::export_canister!();
//! ww_cdk::export_candid!(); // debug-assertion builds only
//! ```
//!
//! # How a canister runs
//!
//! - Methods and hooks are declared with the attribute macros ([`update`],
//!   [`query`], [`init`], [`pre_upgrade`], [`post_upgrade`], [`on_timer`]).
//!   Each registers itself with [`inventory`]; the component's `entry`
//!   exports (generated once per canister by [`export_canister!`]) find them
//!   there. Registration runs as a WebAssembly constructor, which the
//!   generated exports run (once per instance) before anything else.
//! - Every export call except `methods` is one *message execution*. If it
//!   traps, the host rolls back everything it did and continues on a fresh
//!   instance whose linear memory is the pre-execution one. So all state
//!   (yours and the SDK's: tasks, pending calls) lives in linear memory,
//!   i.e. in statics and `thread_local!`s, and nothing may hold a WASI
//!   resource (a stream, a pollable) across executions. Print through
//!   [`println!`] (`ic0.debug-print`), never `std::println!`.
//! - A panic traps the execution with the panic message (the SDK installs a
//!   panic hook that calls `ic0.trap`).
//! - `async` update methods run on a small single-threaded executor
//!   ([`futures`]): a task awaiting an inter-canister [`Call`] is parked
//!   until the host runs `on-reply`/`on-reject` for that call, which polls it
//!   again; if that callback traps, `on-cleanup` drops the task.
//! - Stable memory: [`stable::StableMemory`] implements
//!   `ic_stable_structures::Memory`; use [`stable::DefaultMemoryImpl`]
//!   (never `ic_stable_structures::DefaultMemoryImpl`, which imports the raw
//!   `ic0` module that a component does not have: the link fails).
//!
//! # The Candid interface
//!
//! A canister's interface is a build artifact: its checked-in `.did` file.
//! Under `cfg(debug_assertions)` the attribute macros also record each
//! method's Candid signature, and [`export_candid!`] exports the query
//! `__get_candid_interface_tmp_hack : () -> (text)` that returns the service
//! as Candid text, so a test can check the `.did` file against the code.
//! Release builds record nothing and export no such method.

pub mod api;
pub mod call;
mod candid_export;
mod entry;
pub mod futures;
pub mod intent;
pub mod memory;
mod reply;
pub mod stable;
mod timers;

/// The bindings generated from `wit/canister.wit` (world `canister`). Not a
/// stable API: use [`api`], [`call`] and [`stable`].
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "canister",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_canister_world",
        default_bindings_module: "::ww_cdk::bindings",
    });
}

pub use call::Call;
pub use candid::{self, CandidType, Deserialize, Principal};
pub use futures::spawn;
pub use reply::ManualReply;
pub use ic_stable_structures;
pub use ww_cdk_macros::{composite_query, init, on_timer, post_upgrade, pre_upgrade, query, timer, update};

/// Exports the canister's entry points (the `ww:canister/entry` interface).
/// Call it exactly once, at the root of the canister crate (a `cdylib`).
#[macro_export]
macro_rules! export_canister {
    () => {
        const _: () = {
            use $crate::__private::Canister as __WwCdkCanister;
            $crate::bindings::__export_canister_world!(__WwCdkCanister with_types_in $crate::bindings);
        };
    };
}

/// Exports the query `__get_candid_interface_tmp_hack : () -> (text)`,
/// which replies with the canister's Candid interface (the service, with
/// the `#[init]` arguments and named types), in builds with
/// `debug_assertions` only; in release builds it expands to nothing.
/// Call it once, at the root of the canister crate, next to
/// [`export_canister!`].
#[macro_export]
macro_rules! export_candid {
    () => {
        #[cfg(debug_assertions)]
        const _: () = {
            fn __ww_cdk_candid_interface() {
                $crate::__private::reply_service_interface();
            }
            $crate::__private::inventory::submit! {
                $crate::__private::Entry {
                    kind: $crate::__private::EntryKind::Query,
                    name: $crate::__private::CANDID_METHOD,
                    handler: __ww_cdk_candid_interface,
                }
            }
        };
    };
}

/// Formats like `std::println!` and sends the line to the canister log
/// (`ic0.debug-print`).
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::api::debug_print(::std::format!($($arg)*))
    };
}

/// Formats like `std::eprintln!`; same as [`println!`] (the canister log
/// has a single stream).
#[macro_export]
macro_rules! eprintln {
    ($($arg:tt)*) => {
        $crate::api::debug_print(::std::format!($($arg)*))
    };
}

/// Used by the code the macros generate. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::candid_export::{
        CANDID_METHOD, CandidKind, CandidSignature, reply_service_interface,
    };
    pub use crate::entry::{Canister, Entry, EntryKind};
    pub use candid::types::Type;
    pub use candid::types::internal::TypeContainer;
    pub use inventory;

    use candid::utils::ArgumentDecoder;

    /// Decodes the current message's argument as the tuple `T`, trapping with
    /// a message naming `what` if it does not decode. Empty argument bytes
    /// count as the empty tuple `()` (so `Option` arguments become `None`).
    pub fn decode_args<T>(what: &str) -> T
    where
        T: for<'de> ArgumentDecoder<'de>,
    {
        let mut bytes = crate::api::msg_arg_data();
        if bytes.is_empty() {
            bytes = crate::api::EMPTY_CANDID_ARGS.to_vec();
        }
        match candid::decode_args::<T>(&bytes) {
            Ok(args) => args,
            Err(e) => crate::api::trap(format!("failed to decode the arguments of {what}: {e}")),
        }
    }

    /// Replies with the Candid encoding of one value.
    pub fn reply_one<T: candid::CandidType>(value: &T) {
        match candid::encode_one(value) {
            Ok(bytes) => crate::api::msg_reply(bytes),
            Err(e) => crate::api::trap(format!("failed to encode the reply: {e}")),
        }
    }

    /// Replies with the Candid encoding of `()`.
    pub fn reply_unit() {
        crate::api::msg_reply(crate::api::EMPTY_CANDID_ARGS);
    }

    /// Runs an `async` method or hook as a task of the executor.
    pub fn spawn_entry<F: std::future::Future<Output = ()> + 'static>(future: F) {
        crate::futures::spawn(future);
    }
}
