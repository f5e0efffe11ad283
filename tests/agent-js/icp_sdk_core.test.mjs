// @icp-sdk/core 6.x (the successor of @dfinity/agent) against `ww serve
// --http`, verification on: v4 synchronous calls, v3 queries and read_state,
// and canister creation through the subnet endpoint /api/v4/subnet/<id>/call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as agent from '@icp-sdk/core/agent';
import { IDL } from '@icp-sdk/core/candid';
import { Principal } from '@icp-sdk/core/principal';
import * as identity from '@icp-sdk/core/identity';
import { Secp256k1KeyIdentity } from '@icp-sdk/core/identity/secp256k1';
import { agentSuite } from './agent_suite.mjs';
import { recordingFetch, CDK_COUNTER_WASM } from './harness.mjs';

const suite = agentSuite({
  ...agent,
  ...identity,
  IDL,
  Principal,
  Secp256k1KeyIdentity,
  line: '@icp-sdk/core',
  certificatePrincipal: (canisterId) => ({ principal: { canisterId } }),
  endpoints: { call: 'v4', query: 'v3', readState: 'v3' },
});

test('@icp-sdk/core: provisional_create_canister_with_cycles through /api/v4/subnet/<root subnet>/call (effectiveTarget: subnetId)', async () => {
  const recorder = recordingFetch();
  const http = await suite.agentFor(identity.Ed25519KeyIdentity.generate(), { fetch: recorder.fetch });
  // No delegation: the subnet id is the self-authenticating id of the root key.
  const subnetId = Principal.selfAuthenticating(new Uint8Array(http.rootKey));
  const canisterId = await suite.install(
    http,
    CDK_COUNTER_WASM,
    IDL.encode([IDL.Opt(IDL.Record({ greeting: IDL.Text }))], [[]]),
    { effectiveTarget: { subnetId } },
  );
  assert.ok(
    recorder.seen.some((r) => r.path === `/api/v4/subnet/${subnetId.toText()}/call` && r.status === 200),
    JSON.stringify(recorder.seen),
  );
  assert.equal(await suite.counter(http, canisterId).inc(), 1n);
});

test('@icp-sdk/core: agent.syncTime({ subnetId }) reads /time through /api/v3/subnet/<root subnet>/read_state', async () => {
  const recorder = recordingFetch();
  const http = await suite.agentFor(identity.Ed25519KeyIdentity.generate(), { fetch: recorder.fetch });
  const subnetId = Principal.selfAuthenticating(new Uint8Array(http.rootKey));
  await http.syncTime({ subnetId });
  assert.equal(http.hasSyncedTime(), true);
  assert.ok(Math.abs(http.getTimeDiffMsecs()) < 30_000, `offset ${http.getTimeDiffMsecs()} ms`);
  assert.ok(
    recorder.seen.some((r) => r.path === `/api/v3/subnet/${subnetId.toText()}/read_state` && r.status === 200),
    JSON.stringify(recorder.seen),
  );
});
