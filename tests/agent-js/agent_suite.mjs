// The tests both JavaScript agent lines run against `ww serve --http`
// (icp_sdk_core.test.mjs: @icp-sdk/core 6.x; dfinity_agent.test.mjs:
// @dfinity/agent 3.x), each with the agent's own checks on: the root key
// fetched from /api/v2/status, query response signatures verified against
// the node keys read from the state tree, certificates verified against the
// root key. Every test installs its own canister through the management
// canister, as an agent user does, so no test depends on another.
import { before, after, test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import {
  startWw,
  CDK_COUNTER_WASM,
  MO_COUNTER_WASM,
  MO_COUNTER_DID,
  CREATE_ECID,
  readWasm,
  sha256Hex,
  customSection,
  bytesEqual,
  recordingFetch,
  until,
} from './harness.mjs';

// The DER prefix of an IC BLS12-381 public key (spec: "Certification").
const BLS_DER_PREFIX = Buffer.from('308182301d060d2b0601040182dc7c0503010201060c2b0601040182dc7c05030201036100', 'hex');
// The DER prefix of an Ed25519 public key (RFC 8410), the node keys.
const ED25519_DER_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

// The part of cdk_counter's interface (guests/ic-cdk/cdk_counter/cdk_counter.did)
// these tests call, as a user hand-writes it.
export const counterIdl = ({ IDL }) =>
  IDL.Service({
    inc: IDL.Func([], [IDL.Nat64], []),
    get: IDL.Func([], [IDL.Nat64], ['query']),
    whoami: IDL.Func([], [IDL.Principal], ['query']),
    inc_then_trap: IDL.Func([], [], []),
    set_certified: IDL.Func([IDL.Vec(IDL.Nat8)], [], []),
    certified: IDL.Func([], [IDL.Opt(IDL.Vec(IDL.Nat8))], ['query']),
    root_key: IDL.Func([], [IDL.Vec(IDL.Nat8)], ['query']),
    slow: IDL.Func([], [IDL.Nat64], []),
    release: IDL.Func([], [], []),
    refused_by_inspect: IDL.Func([], [IDL.Nat64], []),
  });

// The management canister methods used to install, from the IC interface
// spec's ic.did (only the fields sent; the rest are optional).
const managementIdl = ({ IDL }) => {
  const settings = IDL.Record({ controllers: IDL.Opt(IDL.Vec(IDL.Principal)) });
  return IDL.Service({
    provisional_create_canister_with_cycles: IDL.Func(
      [IDL.Record({ amount: IDL.Opt(IDL.Nat), settings: IDL.Opt(settings), specified_id: IDL.Opt(IDL.Principal) })],
      [IDL.Record({ canister_id: IDL.Principal })],
      [],
    ),
    install_code: IDL.Func(
      [
        IDL.Record({
          mode: IDL.Variant({ install: IDL.Null, reinstall: IDL.Null }),
          canister_id: IDL.Principal,
          wasm_module: IDL.Vec(IDL.Nat8),
          arg: IDL.Vec(IDL.Nat8),
        }),
      ],
      [],
      [],
    ),
  });
};

/**
 * Registers the suite for one agent line. `lib` carries that line's exports
 * and the few places where the lines differ (`certificatePrincipal`, the
 * endpoints each line calls).
 */
export function agentSuite(lib) {
  const {
    HttpAgent,
    Actor,
    CanisterStatus,
    Certificate,
    Principal,
    IDL,
    AnonymousIdentity,
    Ed25519KeyIdentity,
    ECDSAKeyIdentity,
    Secp256k1KeyIdentity,
    DelegationChain,
    DelegationIdentity,
    RejectError,
    TrustError,
    CertifiedRejectErrorCode,
    UncertifiedRejectUpdateErrorCode,
    CertificateVerificationErrorCode,
    QuerySignatureVerificationFailedErrorCode,
    ReplicaRejectCode,
    Cbor,
    lookupResultToBuffer,
    certificatePrincipal,
    endpoints,
  } = lib;
  // Each test's name says which agent line it ran.
  const test = (name, fn) => nodeTest(`${lib.line}: ${name}`, fn);

  let node;
  before(async () => {
    node = await startWw();
  });
  after(async () => {
    await node?.stop();
  });

  const agentFor = (identity, extra = {}) =>
    HttpAgent.create({ host: node.url, identity, shouldFetchRootKey: true, ...extra });

  // Creates a canister (the caller becomes its controller) and installs the
  // module, both through the management canister `aaaaa-aa`.
  async function install(agent, wasmPath, arg, createTarget = {}) {
    const management = Actor.createActor(managementIdl, {
      agent,
      canisterId: 'aaaaa-aa',
      callTransform: (methodName, args) =>
        methodName === 'install_code'
          ? { effectiveCanisterId: args[0].canister_id }
          : { effectiveCanisterId: Principal.fromText(CREATE_ECID), ...createTarget },
    });
    const { canister_id } = await management.provisional_create_canister_with_cycles({
      amount: [],
      settings: [],
      specified_id: [],
    });
    await management.install_code({
      mode: { install: null },
      canister_id,
      wasm_module: readWasm(wasmPath),
      arg: new Uint8Array(arg),
    });
    return canister_id;
  }

  // cdk_counter's init argument `opt InitArg`: none.
  const counterArg = () => IDL.encode([IDL.Opt(IDL.Record({ greeting: IDL.Text }))], [[]]);

  async function installCounter(agent) {
    return install(agent, CDK_COUNTER_WASM, counterArg());
  }

  const counter = (agent, canisterId) => Actor.createActor(counterIdl, { agent, canisterId });

  test('the agent fetches the DER BLS root key from /api/v2/status: the key canisters see', async () => {
    const agent = await agentFor(Ed25519KeyIdentity.generate());
    const rootKey = new Uint8Array(agent.rootKey);
    assert.equal(rootKey.length, 133);
    assert.ok(bytesEqual(rootKey.subarray(0, BLS_DER_PREFIX.length), BLS_DER_PREFIX), 'BLS DER prefix');

    // fetchRootKey() on an agent made without it gets the same key.
    const other = HttpAgent.createSync({ host: node.url });
    const fetched = await other.fetchRootKey();
    assert.ok(bytesEqual(fetched, rootKey));
    assert.ok(bytesEqual(other.rootKey, rootKey));

    // ic0.root_key_* in a canister: the same DER key.
    const canisterId = await installCounter(agent);
    const seen = await counter(agent, canisterId).root_key();
    assert.ok(bytesEqual(seen, rootKey), 'the canister sees the root key the agent fetched');
  });

  test('update (inc) and query (get, whoami) with Ed25519, ECDSA P-256, secp256k1, delegated and anonymous senders', async (t) => {
    const installer = await agentFor(Ed25519KeyIdentity.generate());
    const canisterId = await installCounter(installer);
    const delegated = async () => {
      const root = Ed25519KeyIdentity.generate();
      const session = await ECDSAKeyIdentity.generate();
      const chain = await DelegationChain.create(root, session.getPublicKey(), new Date(Date.now() + 15 * 60_000), {
        targets: [canisterId],
      });
      return { identity: DelegationIdentity.fromDelegation(session, chain), principal: root.getPrincipal() };
    };
    const senders = [
      ['Ed25519KeyIdentity', async () => Ed25519KeyIdentity.generate()],
      ['ECDSAKeyIdentity (P-256, WebCrypto)', async () => ECDSAKeyIdentity.generate()],
      ['Secp256k1KeyIdentity', async () => Secp256k1KeyIdentity.generate()],
      ['DelegationIdentity (Ed25519 -> P-256 session, targets: the canister)', delegated],
      ['AnonymousIdentity', async () => new AnonymousIdentity()],
    ];
    let expected = 0n;
    for (const [name, make] of senders) {
      await t.test(name, async () => {
        const made = await make();
        const identity = made.identity ?? made;
        const principal = made.principal ?? identity.getPrincipal();
        const recorder = recordingFetch();
        const agent = await agentFor(identity, { fetch: recorder.fetch });
        const actor = counter(agent, canisterId);

        expected += 1n;
        assert.equal(await actor.inc(), expected);
        assert.equal(await actor.get(), expected);
        const me = await actor.whoami();
        assert.equal(me.toText(), principal.toText());
        if (name === 'AnonymousIdentity') assert.equal(me.toText(), '2vxsx-fae');

        // The endpoints this agent line uses, answered 200 (no fallback).
        const id = canisterId.toText();
        const call = recorder.seen.filter((r) => r.path.endsWith('/call'));
        assert.deepEqual(
          call.map((r) => [r.path, r.status]),
          [[`/api/${endpoints.call}/canister/${id}/call`, 200]],
        );
        const queries = recorder.seen.filter((r) => r.path.endsWith('/query'));
        assert.deepEqual(
          queries.map((r) => [r.path, r.status]),
          [
            [`/api/${endpoints.query}/canister/${id}/query`, 200],
            [`/api/${endpoints.query}/canister/${id}/query`, 200],
          ],
        );
        // The node keys for the query signatures came from read_state.
        assert.ok(
          recorder.seen.some((r) => r.path === `/api/${endpoints.readState}/canister/${id}/read_state` && r.status === 200),
          JSON.stringify(recorder.seen),
        );
      });
    }
  });

  test('a trap (inc_then_trap) is the agent\'s RejectError with reject code 5, certified, and rolls back', async () => {
    const agent = await agentFor(Ed25519KeyIdentity.generate());
    const actor = counter(agent, await installCounter(agent));
    assert.equal(await actor.inc(), 1n);
    await assert.rejects(actor.inc_then_trap(), (err) => {
      assert.ok(err instanceof RejectError, `a RejectError, got ${err}`);
      assert.ok(err.code instanceof CertifiedRejectErrorCode, `a certified reject, got ${err.code?.name}`);
      assert.equal(err.code.rejectCode, ReplicaRejectCode.CanisterError);
      assert.equal(err.code.rejectCode, 5);
      assert.match(err.code.rejectMessage, /inc_then_trap: deliberate/);
      assert.equal(err.code.rejectErrorCode, 'IC0503');
      return true;
    });
    assert.equal(await actor.get(), 1n, 'the trapped update changed nothing');
  });

  test('an update canister_inspect_message refuses is the agent\'s uncertified RejectError (code 4, IC0406)', async () => {
    const agent = await agentFor(Ed25519KeyIdentity.generate());
    const actor = counter(agent, await installCounter(agent));
    await assert.rejects(actor.refused_by_inspect(), (err) => {
      assert.ok(err instanceof RejectError, `a RejectError, got ${err}`);
      assert.ok(err.code instanceof UncertifiedRejectUpdateErrorCode, `an uncertified reject, got ${err.code?.name}`);
      assert.equal(err.code.rejectCode, ReplicaRejectCode.CanisterReject);
      assert.equal(err.code.rejectErrorCode, 'IC0406');
      return true;
    });
    assert.equal(await actor.inc(), 1n, 'the canister still takes other updates');
  });

  test('CanisterStatus reads controllers, module_hash, candid, subnet and time of a Motoko canister', async () => {
    const identity = Ed25519KeyIdentity.generate();
    const agent = await agentFor(identity);
    const canisterId = await install(agent, MO_COUNTER_WASM, IDL.encode([], []));
    const wasm = readWasm(MO_COUNTER_WASM);
    const status = await CanisterStatus.request({
      canisterId,
      agent,
      paths: ['controllers', 'module_hash', 'candid', 'subnet', 'time'],
    });

    const controllers = status.get('controllers');
    assert.ok(Array.isArray(controllers), `controllers: ${controllers}`);
    assert.deepEqual(
      controllers.map((p) => p.toText()),
      [identity.getPrincipal().toText()],
    );

    assert.equal(status.get('module_hash'), sha256Hex(wasm));

    const candid = status.get('candid');
    const section = new TextDecoder().decode(customSection(wasm, 'icp:public candid:service'));
    assert.ok(section.length > 0, 'the module carries icp:public candid:service');
    assert.equal(candid, section);
    assert.equal(candid, readFileSync(MO_COUNTER_DID, 'utf8'));

    const subnet = status.get('subnet');
    assert.ok(subnet, 'subnet');
    assert.equal(subnet.subnetId, Principal.selfAuthenticating(new Uint8Array(agent.rootKey)).toText());
    const nodeKeys = [...subnet.nodeKeys.values()];
    assert.ok(nodeKeys.length >= 1, 'at least one node key');
    for (const key of nodeKeys) {
      const der = new Uint8Array(key);
      assert.equal(der.length, 44);
      assert.ok(bytesEqual(der.subarray(0, 12), ED25519_DER_PREFIX), 'an Ed25519 node key');
    }

    const time = status.get('time');
    assert.ok(time instanceof Date, `time: ${time}`);
    assert.ok(Math.abs(time.getTime() - Date.now()) < 60_000, `certified time ${time.toISOString()} is now`);
  });

  test('certified data: set_certified, then the certified query\'s data certificate verifies and holds the data', async () => {
    const agent = await agentFor(Ed25519KeyIdentity.generate());
    const canisterId = await installCounter(agent);
    const actor = counter(agent, canisterId);
    const data = new Uint8Array(randomBytes(32));
    await actor.set_certified(data);

    const [certificate] = await actor.certified();
    assert.ok(certificate instanceof Uint8Array && certificate.length > 0, 'a data certificate in the query');
    const cert = await Certificate.create({
      certificate,
      rootKey: agent.rootKey,
      ...certificatePrincipal(canisterId),
    });
    const found = lookupResultToBuffer(cert.lookup_path(['canister', canisterId.toUint8Array(), 'certified_data']));
    assert.ok(found, 'certified_data is in the certificate');
    assert.ok(bytesEqual(found, data), 'certified_data is the data set');
    const time = lookupResultToBuffer(cert.lookup_path(['time']));
    assert.ok(time && time.length > 0, 'the certificate has /time');

    // The same certificate against another root key (mainnet's, the agent's
    // default) fails verification.
    const mainnetKey = HttpAgent.createSync({ host: node.url }).rootKey;
    assert.ok(!bytesEqual(mainnetKey, agent.rootKey));
    await assert.rejects(
      Certificate.create({ certificate, rootKey: mainnetKey, ...certificatePrincipal(canisterId) }),
      (err) => err instanceof TrustError && err.hasCode(CertificateVerificationErrorCode),
    );
  });

  test('agent.syncTime() reads the certified time: no clock offset', async () => {
    const agent = await agentFor(Ed25519KeyIdentity.generate());
    const canisterId = await installCounter(agent);
    // With no argument the agents read /time through the ICP ledger's id.
    await agent.syncTime();
    assert.equal(agent.hasSyncedTime(), true);
    assert.ok(Math.abs(agent.getTimeDiffMsecs()) < 30_000, `offset ${agent.getTimeDiffMsecs()} ms`);

    const other = await agentFor(Ed25519KeyIdentity.generate());
    await other.syncTime(canisterId);
    assert.equal(other.hasSyncedTime(), true);
    assert.ok(Math.abs(other.getTimeDiffMsecs()) < 30_000, `offset ${other.getTimeDiffMsecs()} ms`);
    assert.equal(await counter(other, canisterId).inc(), 1n);
  });

  test('a query reply altered in transit fails the node signature check', async () => {
    const agent = await agentFor(Ed25519KeyIdentity.generate());
    const canisterId = await installCounter(agent);
    assert.equal(await counter(agent, canisterId).inc(), 1n);

    let altered = 0;
    const recorder = recordingFetch({
      rewrite: (path, body) => {
        if (!path.endsWith('/query')) return undefined;
        const answer = Cbor.decode(body);
        if (answer.status !== 'replied') return undefined;
        // nat64 1 -> a much larger number: the top byte of the value.
        const arg = new Uint8Array(answer.reply.arg);
        arg[arg.length - 1] ^= 0x40;
        answer.reply.arg = arg;
        altered += 1;
        return Cbor.encode(answer);
      },
    });
    const tampered = await agentFor(Ed25519KeyIdentity.generate(), { fetch: recorder.fetch });
    await assert.rejects(counter(tampered, canisterId).get(), (err) => {
      assert.ok(err instanceof TrustError, `a TrustError, got ${err}`);
      assert.ok(err.hasCode(QuerySignatureVerificationFailedErrorCode), `${err}`);
      return true;
    });
    assert.ok(altered >= 1, 'the reply was altered');
    assert.equal(await counter(agent, canisterId).get(), 1n);
  });

  test('with mainnet\'s root key instead of the fetched one, update certificates and queries are refused', async () => {
    const installer = await agentFor(Ed25519KeyIdentity.generate());
    const canisterId = await installCounter(installer);
    const mainnet = HttpAgent.createSync({ host: node.url, identity: Ed25519KeyIdentity.generate() });
    const actor = counter(mainnet, canisterId);
    await assert.rejects(actor.inc(), (err) => {
      assert.ok(err instanceof TrustError, `a TrustError, got ${err}`);
      assert.ok(err.hasCode(CertificateVerificationErrorCode), `${err}`);
      return true;
    });
    await assert.rejects(actor.get(), (err) => {
      assert.ok(err instanceof TrustError, `a TrustError, got ${err}`);
      return true;
    });
  });

  test('an update still running when the synchronous wait ends (202) is polled to its reply through read_state', async () => {
    const slowNode = await startWw({ extraArgs: ['--http-sync-wait-ms', '300'] });
    try {
      const recorder = recordingFetch();
      const agent = await HttpAgent.create({
        host: slowNode.url,
        identity: Ed25519KeyIdentity.generate(),
        shouldFetchRootKey: true,
        fetch: recorder.fetch,
      });
      const canisterId = await install(agent, CDK_COUNTER_WASM, counterArg());
      const id = canisterId.toText();
      recorder.seen.length = 0;
      // `slow` stays open until `release`: its synchronous wait must end in 202.
      const pending = counter(agent, canisterId).slow();
      await until(() => recorder.seen.some((r) => r.path.endsWith('/call')), 30_000, 'the call of slow');
      const releaser = await HttpAgent.create({
        host: slowNode.url,
        identity: Ed25519KeyIdentity.generate(),
        shouldFetchRootKey: true,
      });
      await counter(releaser, canisterId).release();
      assert.equal(await pending, 1n);
      assert.deepEqual(
        recorder.seen.filter((r) => r.path.endsWith('/call')).map((r) => [r.path, r.status]),
        [[`/api/${endpoints.call}/canister/${id}/call`, 202]],
      );
      assert.ok(
        recorder.seen.some((r) => r.path === `/api/${endpoints.readState}/canister/${id}/read_state` && r.status === 200),
        JSON.stringify(recorder.seen),
      );
    } finally {
      await slowNode.stop();
    }
  });

  return {
    node: () => node,
    agentFor,
    install,
    installCounter,
    counter,
  };
}
