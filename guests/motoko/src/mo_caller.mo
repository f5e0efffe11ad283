// mo_caller: a Motoko canister that calls other canisters' `inc`, to show
// Motoko calling both Motoko and non-Motoko (ww-cdk) canisters.
// Built by guests/motoko/build.js to guests/target/motoko/.

import Principal "mo:core/Principal";

persistent actor {
  // Calls `inc : () -> (nat)` on `target`: a Motoko counter (mo_counter).
  public func call_inc(target : Principal) : async Nat {
    let c : actor { inc : () -> async Nat } = actor (Principal.toText(target));
    await c.inc();
  };

  // Calls `inc : () -> (nat64)` on `target`: ww-cdk's `counter`
  // (guests/canisters/counter).
  public func call_inc_counter(target : Principal) : async Nat64 {
    let c : actor { inc : () -> async Nat64 } = actor (Principal.toText(target));
    await c.inc();
  };

  // A service reference as the argument (`ww call` must encode it with
  // this declared service type, or Motoko refuses it).
  public func incOther(c : actor { inc : () -> async Nat }) : async Nat {
    await c.inc();
  };

  // Service references nested in a record, a vector and an option: calls
  // `inc` on each and returns the sum.
  public func incMany(args : { counters : [actor { inc : () -> async Nat }]; extra : ?(actor { inc : () -> async Nat }) }) : async Nat {
    var sum = 0;
    for (c in args.counters.vals()) {
      sum += (await c.inc());
    };
    switch (args.extra) {
      case (?c) { sum += (await c.inc()) };
      case null {};
    };
    sum;
  };
};
