// mo_vault: the Motoko twin of guests/ic-cdk/sim_vault, for demonstration 3
// of ww's deterministic simulation (an upgrade with calls in flight). Built
// by guests/motoko/build.js to guests/target/motoko/.
//
// `withdraw(amount)` takes the caller's lock, debits the caller's credit and
// adds `amount` to `in_flight` before an unbounded-wait `transfer` on
// sim_ledger; after the await it releases the lock, takes `amount` off
// `in_flight` and credits a failed transfer back. `persistent actor class`:
// every `var` is stable and survives an upgrade. What an upgrade does to a
// withdrawal in flight is the Motoko runtime's business: examples/sim/
// mo-vault-upgrade.toml lets the simulator upgrade it with calls in flight.

import Array "mo:core/Array";
import Nat64 "mo:core/Nat64";
import Principal "mo:core/Principal";

persistent actor class Vault(init : { ledger : Principal; credits : [(Principal, Nat64)] }) {
  type TransferArg = { to : Principal; amount : Nat64; created_at_time : ?Nat64; memo : ?Nat64 };
  type TransferError = { #InsufficientFunds : { balance : Nat64 }; #Duplicate : { duplicate_of : Nat64 } };
  type Ledger = actor { transfer : TransferArg -> async { #Ok : Nat64; #Err : TransferError } };

  var credits : [(Principal, Nat64)] = init.credits;
  var locked : [Principal] = [];
  var inFlight : Nat64 = 0;
  var upgradeCount : Nat = 0;

  system func postupgrade() {
    upgradeCount += 1;
  };

  func creditOf(user : Principal) : Nat64 {
    for ((p, c) in credits.vals()) {
      if (p == user) return c;
    };
    0;
  };

  func setCredit(user : Principal, amount : Nat64) {
    var found = false;
    credits := Array.map<(Principal, Nat64), (Principal, Nat64)>(credits, func(entry) {
      if (entry.0 == user) { found := true; (entry.0, amount) } else { entry };
    });
    if (not found) credits := Array.concat(credits, [(user, amount)]);
  };

  func isLocked(user : Principal) : Bool {
    for (p in locked.vals()) {
      if (p == user) return true;
    };
    false;
  };

  // Pays `amount` of the caller's credit out to the caller on the ledger;
  // the transfer's index, or what went wrong.
  public shared ({ caller }) func withdraw(amount : Nat64) : async { #Ok : Nat64; #Err : Text } {
    if (isLocked(caller)) return #Err("a withdrawal of yours is in flight");
    let credit = creditOf(caller);
    if (credit < amount) return #Err("insufficient credit");
    setCredit(caller, credit - amount);
    locked := Array.concat(locked, [caller]);
    inFlight += amount;
    let ledger : Ledger = actor (Principal.toText(init.ledger));
    let result = try {
      switch (await ledger.transfer({ to = caller; amount; created_at_time = null; memo = null })) {
        case (#Ok(index)) { #Ok(index) };
        case (#Err(_)) { #Err("the ledger refused the transfer") };
      };
    } catch (_) {
      #Err("transfer failed");
    };
    locked := Array.filter(locked, func(p : Principal) : Bool { p != caller });
    inFlight -= amount;
    switch (result) {
      case (#Err(_)) { setCredit(caller, creditOf(caller) + amount) };
      case (#Ok(_)) {};
    };
    result;
  };

  public query func credit_of(user : Principal) : async Nat64 { creditOf(user) };

  public query func total_credit() : async Nat64 {
    var sum : Nat64 = 0;
    for ((_, c) in credits.vals()) sum += c;
    sum;
  };

  public query func in_flight() : async Nat64 { inFlight };

  public query func locked_count() : async Nat64 { Nat64.fromNat(locked.size()) };

  public query func upgrades() : async Nat { upgradeCount };
};
