//! Candid interfaces are build artifacts: each canister's
//! `guests/canisters/<name>/<name>.did` exists on its own and is checked
//! against the code here.
//!
//! `make guests` builds every guest twice (one cargo invocation per
//! profile): `release`, the code that is deployed, and `did`, the same
//! code with debug assertions, where ww-cdk records each method's Candid
//! signature and `ww_cdk::export_candid!` exports the query
//! `__get_candid_interface_tmp_hack : () -> (text)`. For every canister
//! listed in [`canisters!`] below:
//!
//! - `did_file_exists`: the `.did` file is there and parses, with a service;
//! - `release_exports_no_candid_method`: the release build's exported
//!   methods (its `methods()` list) do not include the Candid query, and are
//!   exactly the `.did` service's methods, each an update or a query as the
//!   `.did` says;
//! - `did_file_matches_the_code`: the did build's Candid query and the
//!   `.did` file describe the same service (`candid_parser`'s structural
//!   `service_equal`, so type names, order and formatting do not matter).
//!
//! A missing build artifact fails the test (it never skips) and says to run
//! `make test`, which builds both profiles first.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candid::types::{FuncMode, TypeInner};
use candid::{Decode, Encode, Principal};
use candid_parser::utils::{CandidSource, service_equal};
use ww::replica::exec::{CanisterInstance, MethodKind};
use ww::replica::install::prepare_module;
use ww::replica::stable::StableMemory;
use ww::replica::{InstallMode, Replica, ReplicaConfig};

/// The query the did build exports (ic-cdk's name for it).
const CANDID_METHOD: &str = "__get_candid_interface_tmp_hack";

/// The install argument of every role canister (`role-common`'s `InitArgs`).
const ROLE_INIT: &str =
    r#"(record { role = "candid-check"; root = principal "aaaaa-aa"; parent = principal "aaaaa-aa"; version = "did" })"#;

/// The install argument of wasm_store (`WasmStoreInitArgs`).
const STORE_INIT: &str = r#"(record { root = principal "aaaaa-aa"; policy = record { max_store_bytes = 40_000_000 : nat64; headroom_bytes = opt (4_000_000 : nat64); max_templates = null; max_template_versions_per_template = null } })"#;

/// One module of tests per canister: `<name> => "<install argument>"`, the
/// argument as Candid text (typed by the `.did` file's init arguments), with
/// which the did build is installed to ask it for its interface. Adding a
/// canister is one line.
macro_rules! canisters {
    ($($name:ident => $init:expr),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn did_file_exists() {
                    super::did_file_exists(stringify!($name));
                }

                #[tokio::test]
                async fn release_exports_no_candid_method() {
                    super::release_exports_no_candid_method(stringify!($name)).await;
                }

                #[tokio::test]
                async fn did_file_matches_the_code() {
                    super::did_file_matches_the_code(stringify!($name), $init).await;
                }
            }
        )*
    };
}

canisters! {
    counter => "(null)",
    probe => "(null)",
    keeper => "()",
    intents => "(null)",
    app => super::ROLE_INIT,
    minimal => super::ROLE_INIT,
    scale => super::ROLE_INIT,
    scale_hub => super::ROLE_INIT,
    shard => super::ROLE_INIT,
    shard_hub => super::ROLE_INIT,
    test => super::ROLE_INIT,
    user_hub => super::ROLE_INIT,
    user_shard => super::ROLE_INIT,
    root => "(record { auto_create = vec {}; controllers = vec {}; store_policy = null })",
    wasm_store => super::STORE_INIT,
}

fn admin() -> Principal {
    Principal::self_authenticating(b"ww-test-admin")
}

fn replica() -> Replica {
    common::canister_replica(ReplicaConfig::default())
}

/// `guests/canisters/<name>/<name>.did`, relative to the repository.
fn did_path(name: &str) -> PathBuf {
    PathBuf::from("guests/canisters").join(name).join(format!("{name}.did"))
}

/// The checked-in `.did` file. Fails when it is missing.
fn did_file(name: &str) -> PathBuf {
    let p = common::repo().join(did_path(name));
    assert!(
        p.is_file(),
        "{} is missing: every canister's Candid interface is checked in next to its Cargo.toml",
        did_path(name).display()
    );
    p
}

/// The did-profile build of a canister. Fails (never skips) when it is missing.
fn did_build(name: &str) -> PathBuf {
    let p = common::repo().join("guests/target/wasm32-wasip2/did").join(format!("{name}.wasm"));
    assert!(
        p.is_file(),
        "the did build of {name} ({}) is missing: run `make test` (it builds the guests, release and did profiles, first)",
        p.display()
    );
    p
}

/// The `.did` file's init argument types and its methods (name -> is a query).
fn did_service(name: &str) -> (candid::TypeEnv, Vec<candid::types::Type>, BTreeMap<String, bool>) {
    let path = did_file(name);
    let (env, actor) = CandidSource::File(&path)
        .load()
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", did_path(name).display()));
    let actor = actor.unwrap_or_else(|| panic!("{} has no service", did_path(name).display()));
    let actor = env.trace_type(&actor).expect("the service type resolves");
    let (init, service) = match actor.as_ref() {
        TypeInner::Class(init, service) => (init.clone(), service.clone()),
        _ => (Vec::new(), actor.clone()),
    };
    let methods = env
        .as_service(&service)
        .unwrap_or_else(|e| panic!("{}: {e}", did_path(name).display()))
        .iter()
        .map(|(method, ty)| {
            let func = env.as_func(ty).expect("a service method is a function");
            (method.clone(), func.modes.contains(&FuncMode::Query))
        })
        .collect();
    (env, init, methods)
}

fn did_file_exists(name: &str) {
    let (_, _, methods) = did_service(name);
    assert!(!methods.is_empty(), "{} declares no method", did_path(name).display());
}

/// The methods a module exports (its `methods()` list): name -> is a query.
fn exported_methods(r: &Replica, wasm: &Path, name: &str) -> BTreeMap<String, bool> {
    let bytes = std::fs::read(wasm).unwrap_or_else(|e| panic!("reading {}: {e}", wasm.display()));
    let id = r.create_canister(vec![admin()]);
    let module = prepare_module(r, &id, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let instance = CanisterInstance::new(r.runtime(), &module.code, StableMemory::new(1), name)
        .unwrap_or_else(|e| panic!("{name}: instantiating {}: {e}", wasm.display()));
    instance.methods().iter().map(|(m, kind)| (m.clone(), *kind == MethodKind::Query)).collect()
}

async fn release_exports_no_candid_method(name: &str) {
    let (_, _, declared) = did_service(name);
    let r = replica();
    let exported = exported_methods(&r, &common::guest(name), name);
    assert!(
        !exported.contains_key(CANDID_METHOD),
        "the release build of {name} exports {CANDID_METHOD}: release builds must not (only debug-assertion builds record Candid)"
    );
    assert_eq!(
        exported,
        declared,
        "the release build of {name} exports other methods than {} declares (name -> query?)",
        did_path(name).display()
    );
    // The did build is the same code plus the Candid query.
    let mut did_exported = exported_methods(&r, &did_build(name), name);
    assert_eq!(did_exported.remove(CANDID_METHOD), Some(true), "the did build of {name} has no {CANDID_METHOD} query");
    assert_eq!(did_exported, exported, "the did and release builds of {name} export different methods");
}

async fn did_file_matches_the_code(name: &str, init: &str) {
    let did = did_file(name);
    let (env, init_types, _) = did_service(name);
    let arg = candid_parser::parse_idl_args(init)
        .unwrap_or_else(|e| panic!("the install argument of {name} {init:?} does not parse: {e}"))
        .to_bytes_with_types(&env, &init_types)
        .unwrap_or_else(|e| panic!("the install argument of {name} {init:?} does not fit {}: {e}", did_path(name).display()));

    let r = replica();
    let id = r.create_canister(vec![admin()]);
    let wasm = std::fs::read(did_build(name)).expect("read the did build");
    let module = prepare_module(&r, &id, &wasm).unwrap_or_else(|e| panic!("{name}: {e}"));
    r.install(admin(), id, InstallMode::Install, module, arg)
        .await
        .unwrap_or_else(|e| panic!("installing the did build of {name}: {e}"));
    let reply = r
        .query(admin(), id, CANDID_METHOD, Encode!().unwrap())
        .await
        .unwrap_or_else(|e| panic!("{name}.{CANDID_METHOD}: {e}"));
    let code = Decode!(&reply, String).expect("the Candid query replies with text");

    if let Err(e) = service_equal(CandidSource::Text(&code), CandidSource::File(&did)) {
        panic!(
            "{} does not describe the service the code of {name} exports \
             (left: the code, right: the .did file):\n  {e:#}\n\n\
             The code's interface (from the did build's {CANDID_METHOD}):\n{code}\n\
             Make the .did file and the code agree, then run `make test`.",
            did_path(name).display()
        );
    }
}
