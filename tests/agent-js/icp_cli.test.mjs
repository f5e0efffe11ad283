// icp-cli (@icp-sdk/icp-cli-linux-x64, as npm ships it) against `ww serve
// --http` as a *connected* network: an icp.yaml naming the node's URL with
// `root-key: fetch`, so icp-cli takes the root key from /api/v2/status and
// verifies every certificate and query signature against it. The canisters
// are created and installed with the ww CLI (`ww canister create|install`):
// icp-cli creates canisters through the cycles ledger, which ww does not run.
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IDL } from '@icp-sdk/core/candid';
import {
  startWw,
  ww,
  CDK_COUNTER_WASM,
  CDK_COUNTER_DID,
  MO_COUNTER_WASM,
  MO_COUNTER_DID,
  readWasm,
  sha256Hex,
} from './harness.mjs';

const ICP = fileURLToPath(new URL('./node_modules/@icp-sdk/icp-cli-linux-x64/bin/icp', import.meta.url));
const BLS_DER_PREFIX = '308182301d060d2b0601040182dc7c0503010201060c2b0601040182dc7c05030201036100';

let node;
let project; // the icp-cli project: icp.yaml
let home; // icp-cli's identities and settings, apart from the user's

before(async () => {
  node = await startWw();
  project = await mkdtemp(join(tmpdir(), 'ww-icp-project-'));
  home = await mkdtemp(join(tmpdir(), 'ww-icp-home-'));
  const url = node.url.replace(/\/$/, '');
  await writeFile(
    join(project, 'icp.yaml'),
    ['networks:', '  - name: ww', '    mode: connected', `    url: ${url}`, '    root-key: fetch', ''].join('\n'),
  );
});

after(async () => {
  await node?.stop();
  if (project) await rm(project, { recursive: true, force: true });
  if (home) await rm(home, { recursive: true, force: true });
});

/** Runs `icp args...` in the project; resolves to {code, stdout, stderr}. */
function icp(args, { input } = {}) {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('ICP_')) delete env[name];
  Object.assign(env, {
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_DATA_HOME: join(home, '.local/share'),
    XDG_CACHE_HOME: join(home, '.cache'),
    DO_NOT_TRACK: '1', // no telemetry
    NO_COLOR: '1',
  });
  return new Promise((resolve) => {
    const child = execFile(ICP, args, { cwd: project, env, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code ?? 'killed') : 0, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

async function icpOk(args) {
  const out = await icp(args);
  assert.equal(out.code, 0, `icp ${args.join(' ')} failed:\n${out.stderr}\n${out.stdout}`);
  return out.stdout;
}

let names = 0;
/** Creates and installs a canister with the ww CLI; resolves to its id. */
async function wwCanister(wasm) {
  const name = `icp-cli-${++names}`;
  const id = (await ww(['canister', 'create', '--state', node.state, name])).trim();
  assert.match(id, /^[a-z0-9]{5}(-[a-z0-9]{5})*-cai$/, `a canister id: ${id}`);
  await ww(['canister', 'install', '--state', node.state, id, wasm]);
  return id;
}

test('icp-cli: icp network ping (and --wait-healthy) reads the status: healthy, with the DER BLS root key', async () => {
  for (const args of [['network', 'ping', 'ww'], ['network', 'ping', 'ww', '--wait-healthy']]) {
    const status = JSON.parse(await icpOk(args));
    assert.equal(status.replica_health_status, 'healthy');
    const rootKey = Buffer.from(status.root_key);
    assert.equal(rootKey.length, 133);
    assert.equal(rootKey.subarray(0, 37).toString('hex'), BLS_DER_PREFIX);
  }
});

test('icp-cli: icp canister call: update (inc) and query (get) on a Motoko canister, its interface read from candid:service', async () => {
  const id = await wwCanister(MO_COUNTER_WASM);
  assert.equal((await icpOk(['canister', 'call', '-n', 'ww', id, 'inc', '()'])).trim(), '(1 : nat)');
  assert.equal((await icpOk(['canister', 'call', '-n', 'ww', id, 'inc', '()'])).trim(), '(2 : nat)');
  assert.equal((await icpOk(['canister', 'call', '-n', 'ww', id, 'get', '()', '--query'])).trim(), '(2 : nat)');
  const json = JSON.parse(await icpOk(['canister', 'call', '-n', 'ww', id, 'get', '()', '--query', '--json']));
  assert.equal(json.response_candid, '(2 : nat)');
  assert.equal(json.response_bytes, Buffer.from(IDL.encode([IDL.Nat], [2n])).toString('hex'));
});

test('icp-cli: icp canister call as a new identity (icp identity new): whoami is its principal; anonymous is 2vxsx-fae', async () => {
  const id = await wwCanister(CDK_COUNTER_WASM);
  await icpOk(['identity', 'new', 'alice', '--storage', 'plaintext', '--output-seed', join(home, 'alice.seed')]);
  const alice = (await icpOk(['identity', 'principal', '--identity', 'alice'])).trim();
  assert.notEqual(alice, '2vxsx-fae');
  const call = (method, ...extra) =>
    icpOk(['canister', 'call', '-n', 'ww', id, method, '()', '--candid', CDK_COUNTER_DID, ...extra]);
  assert.equal((await call('whoami', '--query', '--identity', 'alice')).trim(), `(principal "${alice}")`);
  assert.equal((await call('whoami', '--query')).trim(), '(principal "2vxsx-fae")');
  assert.equal((await call('inc', '--identity', 'alice')).trim(), '(1 : nat64)');
  assert.equal((await call('get', '--query', '--identity', 'alice')).trim(), '(1 : nat64)');
});

test('icp-cli: icp canister call of a query method: the root key the canister sees is the one icp-cli fetched', async () => {
  const id = await wwCanister(CDK_COUNTER_WASM);
  const status = JSON.parse(await icpOk(['network', 'ping', 'ww']));
  const out = JSON.parse(
    await icpOk(['canister', 'call', '-n', 'ww', id, 'root_key', '()', '--query', '--candid', CDK_COUNTER_DID, '--json']),
  );
  const [seen] = IDL.decode([IDL.Vec(IDL.Nat8)], new Uint8Array(Buffer.from(out.response_bytes, 'hex')));
  assert.equal(Buffer.from(seen).toString('hex'), Buffer.from(status.root_key).toString('hex'));
});

test('icp-cli: a trap in an update: icp canister call fails with the canister\'s reject (code 5, IC0503)', async () => {
  const id = await wwCanister(MO_COUNTER_WASM);
  const out = await icp(['canister', 'call', '-n', 'ww', id, 'inc_then_trap', '()']);
  assert.notEqual(out.code, 0, out.stdout);
  assert.match(out.stderr, /reject code CanisterError/);
  assert.match(out.stderr, /IC0503/);
  assert.equal((await icpOk(['canister', 'call', '-n', 'ww', id, 'get', '()', '--query'])).trim(), '(0 : nat)');
});

test('icp-cli: icp canister metadata and status read the state tree: candid:service, controllers, module hash', async () => {
  const id = await wwCanister(MO_COUNTER_WASM);
  const candid = await icpOk(['canister', 'metadata', '-n', 'ww', id, 'candid:service']);
  assert.equal(candid.trim(), (await readFile(MO_COUNTER_DID, 'utf8')).trim());

  // Anonymous is no controller: icp-cli falls back on the state tree's
  // /canister/<id>/controllers and /canister/<id>/module_hash.
  const status = JSON.parse(await icpOk(['canister', 'status', '-n', 'ww', id, '--json']));
  assert.equal(status.id, id);
  assert.equal(status.module_hash, `0x${sha256Hex(readWasm(MO_COUNTER_WASM))}`);
  const info = await ww(['canister', 'info', '--state', node.state, id]);
  const controller = info.match(/^controllers:\s+(\S+)/m)?.[1];
  assert.ok(controller, info);
  assert.deepEqual(status.controllers, [controller]);
});

test('icp-cli: icp canister call by URL: with the pinned root key (-k <hex>) it works; with mainnet\'s key, verification fails', async () => {
  const id = await wwCanister(MO_COUNTER_WASM);
  const url = node.url.replace(/\/$/, '');
  const status = JSON.parse(await icpOk(['network', 'ping', 'ww']));
  const pinned = Buffer.from(status.root_key).toString('hex');
  assert.equal(pinned.length, 266);
  assert.equal((await icpOk(['canister', 'call', '-n', url, '-k', pinned, id, 'inc', '()'])).trim(), '(1 : nat)');
  assert.equal((await icpOk(['canister', 'call', '-n', url, '-k', pinned, id, 'get', '()', '--query'])).trim(), '(1 : nat)');

  for (const extra of [[], ['--query']]) {
    const out = await icp(['canister', 'call', '-n', url, '-k', 'mainnet', id, extra.length ? 'get' : 'inc', '()', ...extra]);
    assert.notEqual(out.code, 0, out.stdout);
    assert.match(out.stderr, /Certificate verification failed/);
  }
});
