//! Instances through the real pocket-ic 13 client: the topology of
//! `PocketIc::new()` (one application subnet), deterministic canister ids,
//! instances isolated from one another on the one server, and the server's
//! instance list.

mod common;

use candid::Principal;
use common::*;
use pocket_ic::common::rest::SubnetKind;
use pocket_ic::{PocketIc, PocketIcBuilder};

#[test]
fn a_new_instance_has_one_application_subnet() {
    let pic = pic();
    let topology = pic.topology();
    assert_eq!(topology.subnet_configs.len(), 1, "{topology:?}");
    let apps = topology.get_app_subnets();
    assert_eq!(apps.len(), 1, "{topology:?}");
    let app = apps[0];
    let config = &topology.subnet_configs[&app];
    assert_eq!(config.subnet_kind, SubnetKind::Application);
    assert!(!config.canister_ranges.is_empty());
    assert_eq!(topology.get_nns(), None);
    let effective = Principal::from_slice(&topology.default_effective_canister_id.canister_id);
    assert_eq!(topology.get_subnet(effective), Some(app), "the default effective canister id is on the app subnet");

    let id = pic.create_canister();
    assert_eq!(pic.get_subnet(id), Some(app));
    assert_eq!(topology.get_subnet(id), Some(app), "the canister id is in the subnet's ranges");

    // The builder's form of the same thing.
    let pic2 = PocketIcBuilder::new().with_application_subnet().build();
    assert_eq!(pic2.topology().get_app_subnets().len(), 1);
}

#[test]
fn canister_ids_are_allocated_in_order_from_the_subnet_range() {
    let pic = pic();
    let first = pic.create_canister();
    assert_eq!(first, Principal::from_text(FIRST_APP_CANISTER).unwrap(), "pocket-ic's HOWTO and real suites hard-code it");
    assert_eq!(first.as_slice(), &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xE0, 0x00, 0x00, 0x01, 0x01]);
    let second = pic.create_canister();
    assert_eq!(second.as_slice(), &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xE0, 0x00, 0x01, 0x01, 0x01], "the next id");
    assert!(pic.canister_exists(first) && pic.canister_exists(second));
}

#[test]
fn two_instances_are_isolated() {
    let pic1 = pic();
    let pic2 = pic();
    assert_ne!(pic1.instance_id(), pic2.instance_id());
    assert_eq!(pic1.get_server_url(), pic2.get_server_url(), "one server per test process");

    let a1 = pic1.create_canister();
    let a2 = pic1.create_canister();
    assert!(!pic2.canister_exists(a1), "a canister of one instance does not exist in another");
    assert!(!pic2.canister_exists(a2));

    // Each instance allocates ids on its own: the same first id.
    let b1 = pic2.create_canister();
    assert_eq!(b1, a1, "a fresh instance allocates from the start of its range");
    assert!(!pic2.canister_exists(a2), "pic1's second canister is still not pic2's");

    // The same id, two canisters: state does not leak.
    pic1.add_cycles(a1, INIT_CYCLES);
    pic1.install_canister(a1, wasm("cdk_counter"), no_init(), None);
    pic2.add_cycles(b1, INIT_CYCLES);
    pic2.install_canister(b1, wasm("cdk_counter"), no_init(), None);
    for _ in 0..3 {
        inc(&pic1, a1);
    }
    assert_eq!(get(&pic1, a1), 3);
    assert_eq!(get(&pic2, b1), 0);

    // Time is per instance.
    pic1.advance_time(std::time::Duration::from_secs(3600));
    let t1 = pic1.get_time().as_nanos_since_unix_epoch();
    let t2 = pic2.get_time().as_nanos_since_unix_epoch();
    assert!(t1 >= t2 + 3_600_000_000_000, "advancing one instance's time leaves the other's: {t1} vs {t2}");

    // Dropping one leaves the other working.
    drop(pic1);
    assert_eq!(inc(&pic2, b1), 1);
}

#[test]
fn the_server_lists_instances_and_deleted_ones() {
    let pic = pic();
    let id = pic.instance_id();
    let listed = PocketIc::list_instances();
    assert_eq!(listed.get(id).map(String::as_str), Some("Available"), "{listed:?}");
    drop(pic);
    let listed = PocketIc::list_instances();
    assert_eq!(listed.get(id).map(String::as_str), Some("Deleted"), "{listed:?}");
}

#[test]
fn several_subnets_have_their_own_ids_ranges_and_canisters_that_call_across() {
    let pic = PocketIcBuilder::new().with_application_subnet().with_application_subnet().with_system_subnet().build();
    let topology = pic.topology();
    assert_eq!(topology.subnet_configs.len(), 3, "{topology:?}");
    let apps = topology.get_app_subnets();
    assert_eq!(apps.len(), 2);
    assert_eq!(topology.get_system_subnets().len(), 1);
    let ranges: Vec<_> = topology.subnet_configs.values().flat_map(|c| c.canister_ranges.clone()).collect();
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            let (a0, a1) = (Principal::from_slice(&a.start.canister_id), Principal::from_slice(&a.end.canister_id));
            let (b0, b1) = (Principal::from_slice(&b.start.canister_id), Principal::from_slice(&b.end.canister_id));
            assert!(a1 < b0 || b1 < a0, "subnet ranges overlap: {a:?} {b:?}");
        }
    }
    // One canister on each application subnet, created where asked.
    let mut on = Vec::new();
    for &subnet in &apps {
        let id = pic.create_canister_on_subnet(None, None, subnet);
        assert_eq!(pic.get_subnet(id), Some(subnet));
        assert_eq!(topology.get_subnet(id), Some(subnet), "the id is in the subnet's range");
        pic.add_cycles(id, INIT_CYCLES);
        on.push(id);
    }
    pic.install_canister(on[0], wasm("cdk_caller"), candid::encode_args(()).unwrap(), None);
    pic.install_canister(on[1], wasm("cdk_counter"), no_init(), None);
    // Each canister sees its own subnet (ic0.subnet_self).
    let (seen,): (Principal,) = query(&pic, on[0], "subnet", ()).expect("subnet");
    assert_eq!(seen, apps[0]);
    // A call from one subnet to the other.
    let (result,): (Result<u64, String>,) = update(&pic, on[0], "call_inc", (on[1],)).expect("call_inc");
    assert_eq!(result, Ok(1));
    assert_eq!(get(&pic, on[1]), 1);
    // A canister a canister creates lives on its creator's subnet.
    let (child,): (Principal,) = update(&pic, on[0], "create_with_cycles", (candid::Nat::from(1_000_000_000_000u64),)).expect("create_with_cycles");
    assert_eq!(pic.get_subnet(child), Some(apps[0]));
}

/// dfx, agents and PicJS (`getTopology`, `getDefaultEffectiveCanisterId`)
/// read an instance's topology at `GET <instance url>/_/topology`, which
/// pocket-ic's `get_default_effective_canister_id` also asks.
#[test]
fn agents_find_the_topology_at_the_instance_url() {
    let pic = pic();
    let instance_url = format!("{}instances/{}", pic.get_server_url(), pic.instance_id());
    let effective = pocket_ic::get_default_effective_canister_id(instance_url).expect("GET <instance url>/_/topology");
    let topology = pic.topology();
    assert_eq!(effective, Principal::from_slice(&topology.default_effective_canister_id.canister_id));
    assert_eq!(pic.get_subnet(effective), None, "no canister there yet");
    assert_eq!(topology.get_subnet(effective), topology.get_app_subnets().first().copied(), "on the application subnet");
}
