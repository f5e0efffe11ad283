// PicJS (@dfinity/pic 0.23, as published) against ww's PocketIC server
// (POCKET_IC_BIN = ww's pocket-ic symlink; `make test` runs it): PicJS's
// topology helpers, which read GET /instances/<id>/_/topology, and time as
// PicJS's own time tests expect it (a query sees the time of the last round;
// set/advance take effect in the next round; a certified time at once).
import { after, before, beforeEach, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { PocketIc, PocketIcServer, SubnetType } from '@dfinity/pic';

const wasm = fileURLToPath(new URL('../../guests/target/wasm32-unknown-unknown/release/cdk_counter.wasm', import.meta.url));
const idlFactory = ({ IDL }) => IDL.Service({ time_now: IDL.Func([], [IDL.Nat64], ['query']) });
// cdk_counter's init argument `opt InitArg`, left out: no arguments.
const noArgs = new Uint8Array([0x44, 0x49, 0x44, 0x4c, 0x00, 0x00]);
const NANOS_PER_MS = 1_000_000n;

let server;
let pic;

before(async () => {
  assert.ok(process.env.POCKET_IC_BIN, 'POCKET_IC_BIN must name ww\'s pocket-ic symlink (make test sets it)');
  readFileSync(wasm); // a missing canister fails here, saying which
  server = await PocketIcServer.start();
});

after(async () => {
  await server?.stop();
});

beforeEach(async () => {
  pic = await PocketIc.create(server.getUrl());
});

afterEach(async () => {
  await pic?.tearDown();
});

async function counter() {
  const { actor } = await pic.setupCanister({ idlFactory, wasm, arg: noArgs });
  return actor;
}

test('the topology helpers find one application subnet and its default effective canister id', async () => {
  const topology = Object.values(await pic.getTopology());
  assert.equal(topology.length, 1);
  assert.equal(topology[0].type, SubnetType.Application);
  const [app] = await pic.getApplicationSubnets();
  assert.equal(app.id.toText(), topology[0].id.toText());
  const effective = await pic.getDefaultEffectiveCanisterId();
  assert.equal(effective.toText(), app.canisterRanges[0].start.toText());
});

test('a query sees a set time only after the next round, then exactly', async () => {
  const actor = await counter();
  const t = Date.UTC(2030, 0, 1);
  await pic.setTime(t);
  assert.ok((await actor.time_now()) < BigInt(t) * NANOS_PER_MS, 'before a round');
  assert.equal(await pic.getTime(), t);
  await pic.tick();
  assert.equal(await actor.time_now(), BigInt(t) * NANOS_PER_MS);
});

test('advanceTime then tick gives exactly that time; advancing by 0 is no change', async () => {
  const actor = await counter();
  await pic.resetTime();
  await pic.tick();
  const now = await pic.getTime();
  await pic.advanceTime(1_000);
  await pic.tick();
  assert.equal(await actor.time_now(), BigInt(now + 1_000) * NANOS_PER_MS);
  await pic.advanceTime(0);
  assert.equal(await pic.getTime(), now + 1_000);
});

test('a certified time is seen at once', async () => {
  const actor = await counter();
  const t = Date.UTC(2031, 5, 1);
  await pic.setCertifiedTime(t);
  assert.equal(await actor.time_now(), BigInt(t) * NANOS_PER_MS);
});
