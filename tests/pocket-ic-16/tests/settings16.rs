//! Canister settings as the pocket-ic 16.1 client and the current management
//! canister interface see them: every default `canister_status` reports for a
//! new canister, the settings 16.1 clients (and PicJS) send, and what the
//! visibility settings allow.

use std::path::PathBuf;

use candid::{Nat, Principal};
use ic_management_canister_types::{LogVisibility, SnapshotVisibility};
use pocket_ic::{CanisterSettings, PocketIc};

fn pic() -> PocketIc {
    let bin = std::env::var_os("POCKET_IC_BIN").expect("POCKET_IC_BIN must name ww's pocket-ic symlink (make test sets it)");
    assert!(PathBuf::from(&bin).is_file(), "POCKET_IC_BIN {bin:?} is not a file");
    assert_eq!(std::env::var("WW_POCKET_IC_VERSION").as_deref(), Ok("16"), "run with WW_POCKET_IC_VERSION=16 (make test does)");
    PocketIc::new()
}

#[test]
fn canister_status_reports_the_interface_defaults() {
    let pic = pic();
    let id = pic.create_canister();
    let status = pic.canister_status(id, None).expect("canister_status");
    let s = status.settings;
    assert_eq!(s.controllers, vec![Principal::anonymous()], "the creator");
    assert_eq!(s.compute_allocation, Nat::from(0u64));
    assert_eq!(s.memory_allocation, Nat::from(0u64));
    assert_eq!(s.freezing_threshold, Nat::from(2_592_000u64), "30 days");
    assert_eq!(s.reserved_cycles_limit, Nat::from(5_000_000_000_000u64));
    assert_eq!(s.log_visibility, LogVisibility::Controllers);
    assert_eq!(s.log_memory_limit, Nat::from(0u64), "PocketIC 16.1 reports 0 until set");
    assert_eq!(s.snapshot_visibility, SnapshotVisibility::Controllers);
    assert_eq!(s.wasm_memory_limit, Nat::from(3u64 << 30), "3 GiB");
    assert_eq!(s.wasm_memory_threshold, Nat::from(0u64));
    assert!(s.environment_variables.is_empty());
    assert_eq!(status.module_hash, None);
}

#[test]
fn settings_the_16_client_sends_are_kept_and_enforced() {
    let pic = pic();
    let stranger = Principal::self_authenticating(b"stranger");
    let settings = CanisterSettings {
        log_memory_limit: Some(Nat::from(8192u64)),
        snapshot_visibility: Some(SnapshotVisibility::AllowedViewers(vec![stranger])),
        ..CanisterSettings::default()
    };
    let id = pic.create_canister_with_settings(None, Some(settings));
    let s = pic.canister_status(id, None).expect("canister_status").settings;
    assert_eq!(s.log_memory_limit, Nat::from(8192u64), "create_canister kept log_memory_limit");
    assert_eq!(s.snapshot_visibility, SnapshotVisibility::AllowedViewers(vec![stranger]));
    // An allowed viewer lists the snapshots; anyone else is refused.
    assert_eq!(pic.list_canister_snapshots(id, Some(stranger)).expect("an allowed viewer lists snapshots"), vec![]);
    let other = Principal::self_authenticating(b"other");
    assert!(pic.list_canister_snapshots(id, Some(other)).is_err(), "not a viewer");
    // update_settings changes them; a field left out stays.
    let update = CanisterSettings { snapshot_visibility: Some(SnapshotVisibility::Public), ..CanisterSettings::default() };
    pic.update_canister_settings(id, None, update).expect("update_settings");
    let s = pic.canister_status(id, None).expect("canister_status").settings;
    assert_eq!(s.snapshot_visibility, SnapshotVisibility::Public);
    assert_eq!(s.log_memory_limit, Nat::from(8192u64));
    assert_eq!(pic.list_canister_snapshots(id, Some(other)).expect("public"), vec![]);
}

/// The IC keeps controllers as a set in principal order (DFINITY's own
/// `canister_info` test compares them so): given out of order and twice,
/// they come back sorted and once.
#[test]
fn controllers_are_a_set_in_principal_order() {
    let pic = pic();
    let long = Principal::self_authenticating(b"a controller");
    let short = Principal::from_slice(&[1, 2, 3]);
    let anonymous = Principal::anonymous();
    let settings = CanisterSettings { controllers: Some(vec![long, anonymous, short, long]), ..CanisterSettings::default() };
    let id = pic.create_canister_with_settings(None, Some(settings));
    let mut expected = vec![long, anonymous, short];
    expected.sort();
    assert_eq!(expected, vec![anonymous, short, long], "by length, then bytes");
    assert_eq!(pic.canister_status(id, Some(anonymous)).expect("canister_status").settings.controllers, expected);
    pic.set_controllers(id, Some(anonymous), vec![long, short, anonymous]).expect("set_controllers");
    assert_eq!(pic.get_controllers(id), expected);
}
