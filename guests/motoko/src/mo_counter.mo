// mo_counter (v1): a Motoko counter canister, the Motoko twin of ww-cdk's
// `counter`. Built by guests/motoko/build.js to guests/target/motoko/.
//
// `persistent actor`: every `var` below is stable and survives an upgrade.
// mo_counter_v2.mo has the same state and answers `version_tag` with "v2",
// so installing v1, calling `inc`, and upgrading to v2 shows `count` kept
// and `upgrades` bumped by the `postupgrade` hook.

import Debug "mo:core/Debug";

persistent actor {
  var count : Nat = 0;
  // How many upgrades this canister's state has gone through.
  var upgrades : Nat = 0;

  system func postupgrade() {
    upgrades += 1;
  };

  // Increments the counter; returns the new value.
  public func inc() : async Nat {
    count += 1;
    count;
  };

  public query func get() : async Nat {
    count;
  };

  // Increments, then traps: the increment must be rolled back.
  public func inc_then_trap() : async () {
    count += 1;
    assert false;
  };

  // Prints `t` through ic0.debug_print.
  public func log(t : Text) : async () {
    Debug.print(t);
  };

  public func noop() : async () {};

  public query func version_tag() : async Text {
    "v1";
  };

  public query func upgrade_count() : async Nat {
    upgrades;
  };
};
