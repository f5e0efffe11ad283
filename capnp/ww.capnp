@0x98c13566127dd966;
# The capabilities a ww node hands to its guests.
#
# Transport: Cap'n Proto two-party RPC over the guest's WASI stdin/stdout.
# The host is the server side and bootstraps a `Membrane`; the guest grafts a
# `Session` from it. stderr is never part of the RPC stream: it is the guest's
# log channel.
#
# Authority rules (enforced by the host, see ARCHITECTURE.md):
# - Everything reachable from a session (Host, Executor, Process, ByteStream)
#   is guarded by the epoch the session was issued in. When the node advances
#   its epoch, every such capability fails with an error whose message starts
#   with `staleEpoch:`; the guest calls `graft()` again on the same connection.
# - A child's sessions are never wider than the session that spawned it: its
#   grant is the intersection of what the parent asked for and what the
#   parent's own session holds, and its memory limit is at most the parent's.

interface Membrane {
  graft @0 () -> (session :Session);
  # Issue a new session in the node's current epoch. Never fails for epoch
  # reasons: this is how a guest recovers from `staleEpoch`.
}

struct Session {
  epoch @0 :UInt64;
  # The epoch this session was issued in.

  host @1 :Host;
  # Node identity and network view. A broken capability ("not granted") when
  # the session's grant does not include it.

  executor @2 :Executor;
  # Spawn child processes. A broken capability when not granted.

  replica @3 :Replica;
  # The node's canisters. A broken capability when not granted.
}

interface Replica {
  # The node's replica, as the holder's principal (for pid0 and the control
  # socket: the node's admin identity, which controls what it creates).
  # The management canister is `aaaaa-aa`: create and install canisters by
  # calling it with Candid arguments, as on the IC.

  call @0 (canister :Data, method :Text, arg :Data) -> (result :CallResult);
  # An update call (ingress). `canister` is the raw principal.

  query @1 (canister :Data, method :Text, arg :Data) -> (result :CallResult);
  # A query call; state changes are discarded.

  setName @2 (name :Text, canister :Data) -> ();
  # Names a canister in the node's registry (for `ww call <name>`).

  lookup @3 (name :Text) -> (canister :Data);
  # The canister with this name (empty if none).

  list @4 () -> (canisters :List(CanisterEntry));
  # Every canister on the node.

  principal @5 () -> (principal :Data);
  # The principal this capability calls as.

  candid @6 (canister :Data) -> (interface :Text);
  # The Candid interface (`.did` text) the canister's module carries in its
  # `icp:public candid:service` custom section; empty when it has none.

  canisterInfo @7 (canister :Data, changes :UInt64) -> (info :Data);
  # What the management canister's `canister_info` gives a canister (it
  # refuses ingress): the Candid `canister_info_result` with up to `changes`
  # of the most recent changes (creation, code deployments, uninstalls,
  # controller changes). Empty when the canister does not exist.

  hosts @8 () -> (ranges :List(HostedRange));
  # Which node hosts which canister ids: this node's ranges first (empty
  # `node`), then each connected peer's, as its peer id.
}

struct HostedRange {
  node @0 :Text;
  first @1 :Data;
  last @2 :Data;
  # The first and last canister ids of the range.
}

struct CallResult {
  union {
    reply @0 :Data;
    reject @1 :Reject;
  }
}

struct Reject {
  code @0 :UInt32;
  # IC reject code: 1 SYS_FATAL, 2 SYS_TRANSIENT, 3 DESTINATION_INVALID,
  # 4 CANISTER_REJECT, 5 CANISTER_ERROR, 6 SYS_UNKNOWN.
  errorCode @1 :Text;
  # `IC0xxx` when the system produced the reject, else empty.
  message @2 :Text;
}

struct CanisterEntry {
  id @0 :Data;
  name @1 :Text;
  status @2 :Text;
  # running, stopping or stopped.
  moduleHash @3 :Data;
  memorySize @4 :UInt64;
  cycles @5 :UInt64;
}

interface Admin {
  # Served on the node's control socket (`<state dir>/control.sock`) for the
  # CLI. Whoever can open the socket acts for the node's operator.

  replica @0 (anonymous :Bool) -> (replica :Replica);
  # The replica, calling as the node's admin identity, or as the anonymous
  # principal when asked.

  advanceTime @1 (nanos :UInt64) -> ();
  # Moves replica time forward (timers and deadlines due by then fire).

  runImage @2 (layers :List(Text), args :List(Text), log :LineSink) -> (exitCode :Int32, error :Text);
  # Boots an image on this node, as `ww run` would, but against the node's
  # running replica: `layers` are directories on the node's host (absolute
  # paths, lowest first), merged per file. Its services start first; its
  # pid0 gets a full session (calling the replica as the admin identity).
  # Every stderr line of the image's processes is sent to `log` as well as
  # to the node's log. Returns pid0's exit code once its services are
  # stopped. An unusable image (a missing layer, no bin/main.wasm, a broken
  # component) returns a one-line `error` instead, naming the path and the
  # reason; `exitCode` is then meaningless.
  # `ww deploy` uses this to run a deployment pipeline against a node.
}

interface LineSink {
  # Receives log lines, in order.
  line @0 (text :Text) -> ();
}

interface Host {
  id @0 () -> (peerId :Text);
  # This node's libp2p peer id (base58).

  addrs @1 () -> (addrs :List(Text));
  # Multiaddrs the node is listening on (empty unless started with --listen).

  peers @2 () -> (peers :List(PeerInfo));
  # Peers the node is connected to, each with the addresses its connections
  # came from, then the listen addresses it announced (identify).

  dial @3 (peer :Text) -> (replica :Replica);
  # The capability a trusted peer exports to this node: its `Replica`,
  # calling as this node's principal there (the self-authenticating
  # principal of this node's key, not the peer's admin). Carried as Cap'n
  # Proto over the libp2p stream protocol `/ww/capnp/1`; the peer guards it
  # with its own epoch, like a local session. Fails with a message naming
  # the peer when it is not trusted, not reachable or not networked.
}

struct PeerInfo {
  peerId @0 :Text;
  addrs @1 :List(Text);
}

interface Executor {
  echo @0 (message :Text) -> (response :Text);
  # Diagnostic: answers with the message unchanged.

  runBytes @1 (wasm :Data, args :List(Text), env :List(Text), options :SpawnOptions)
      -> (process :Process);
  # Compile (or fetch from the compile cache) and start a WASI component.
  # Fails cleanly, without harming the node, when the bytes are not a valid
  # component. `env` entries are `KEY=VALUE`. The child lives as long as the
  # returned Process capability is held: dropping it kills the child.
}

struct SpawnOptions {
  name @0 :Text;
  # Process name used to tag its log lines (default: "child").

  stdio @1 :StdioMode;

  grant @2 :Grant;
  # What the child's sessions may hold. Unset means: everything the caller's
  # session holds.
}

enum StdioMode {
  session @0;
  # The child's stdin/stdout carry its own Cap'n Proto session with the host
  # (it bootstraps a Membrane). Process.stdin/stdout are unavailable.

  pipes @1;
  # The child's stdin/stdout are plain byte pipes reachable through
  # Process.stdin/stdout. The child gets no session.
}

struct Grant {
  host @0 :Bool = true;
  executor @1 :Bool = true;
  replica @4 :Bool = true;
  memoryLimit @2 :UInt64;
  # Bytes of linear memory per instance; 0 means the caller's own limit.
  # Clamped to the caller's limit.
  filesystem @3 :Bool = true;
  # The caller's own root directory, read-only at `/` (only if the caller
  # has one). Without it the child sees no filesystem at all.
}

interface Process {
  wait @0 () -> (exitCode :Int32);
  # Resolves when the process has exited. May be called any number of times.
  # A trap is exit code 101 (like a Rust panic); a kill is 137.

  kill @1 () -> ();
  # Stop the process now, even if it is spinning. Idempotent.

  stdin @2 () -> (stream :ByteStream);
  # Write end of the child's stdin (pipes mode only).

  stdout @3 () -> (stream :ByteStream);
  # Read end of the child's stdout (pipes mode only).
}

interface ByteStream {
  read @0 (maxBytes :UInt32) -> (data :Data);
  # Up to maxBytes (clamped by the host to 64 KiB); empty means end of stream.

  write @1 (data :Data) -> ();
  # Waits until the pipe has room (backpressure).

  close @2 () -> ();
  # Close the write end (the reader then sees end of stream).
}
