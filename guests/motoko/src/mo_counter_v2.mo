// mo_counter (v2): the upgrade target of mo_counter.mo, built the same way.
// The same stable state as v1 (build.js checks the two are stable-compatible
// with the compiler); only `version_tag` differs ("v2"), so an upgrade from v1
// to v2 shows which code runs while `count` and `upgrades` carry over.

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
    "v2";
  };

  public query func upgrade_count() : async Nat {
    upgrades;
  };
};
