// The harness of the agent-js and icp-cli suites: a `ww serve --http
// 127.0.0.1:0` node in a temporary state directory (binary from WW_BIN, else
// <repo>/target/debug/ww), the test canisters' files, and small helpers that
// read a wasm module the way the IC does (custom sections, module hash).
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repo = fileURLToPath(new URL('../../', import.meta.url));

export const WW_BIN = process.env.WW_BIN || join(repo, 'target/debug/ww');
export const CDK_COUNTER_WASM = join(repo, 'guests/target/wasm32-unknown-unknown/release/cdk_counter.wasm');
export const CDK_COUNTER_DID = join(repo, 'guests/ic-cdk/cdk_counter/cdk_counter.did');
export const MO_COUNTER_WASM = join(repo, 'guests/target/motoko/mo_counter.wasm');
export const MO_COUNTER_DID = join(repo, 'guests/target/motoko/mo_counter.did');

// The effective canister id for `provisional_create_canister_with_cycles`:
// any id in the node's range, here the first one it hands out.
export const CREATE_ECID = 'bkyz2-fmaaa-aaaaa-qaaaq-cai';

// How long the node may take to start listening.
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
const POLL_MS = 25;

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts `ww serve --state <tmp> --http 127.0.0.1:0 [extra...]` and waits
 * (bounded) until it has written `<state>/http.url`. The answer's `stop()`
 * sends SIGTERM (SIGKILL after a bound) and removes the state directory.
 */
export async function startWw({ extraArgs = [] } = {}) {
  await stat(WW_BIN).catch(() => {
    throw new Error(`ww binary not found at ${WW_BIN} (set WW_BIN, or build it with cargo build)`);
  });
  const state = await mkdtemp(join(tmpdir(), 'ww-agent-js-'));
  const child = spawn(WW_BIN, ['serve', '--state', state, '--http', '127.0.0.1:0', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The node's log, kept (the tail) for failure messages.
  let log = '';
  const keep = (chunk) => {
    log = (log + chunk.toString()).slice(-20_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  const exit = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });

  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const done = await Promise.race([exit, pause(STOP_TIMEOUT_MS).then(() => null)]);
      if (!done) {
        child.kill('SIGKILL');
        await exit;
      }
    }
    await rm(state, { recursive: true, force: true });
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  let url = null;
  while (!url) {
    if (exited) {
      await rm(state, { recursive: true, force: true });
      throw new Error(`ww serve exited (${JSON.stringify(exited)}) before listening:\n${log}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`ww serve wrote no http.url within ${START_TIMEOUT_MS} ms:\n${log}`);
    }
    const text = await readFile(join(state, 'http.url'), 'utf8').catch(() => '');
    if (text.endsWith('\n')) url = text.trim();
    else await pause(POLL_MS);
  }
  return { url, state, stop, log: () => log };
}

/** Runs `ww <args...>` (for `ww canister ... --state DIR`); resolves to stdout. */
export async function ww(args) {
  const { stdout } = await promisify(execFile)(WW_BIN, args, { timeout: 120_000 });
  return stdout;
}

export function sha256Hex(bytes) {
  return createHash('sha256').update(bytes).digest('hex');
}

export function readWasm(path) {
  return new Uint8Array(readFileSync(path));
}

function leb128(bytes, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return [value, at];
  }
}

/** The contents of the wasm module's custom section `name`, or null. */
export function customSection(wasm, name) {
  let at = 8; // magic and version
  while (at < wasm.length) {
    const id = wasm[at++];
    let size;
    [size, at] = leb128(wasm, at);
    const end = at + size;
    if (id === 0) {
      let len;
      let p;
      [len, p] = leb128(wasm, at);
      const sectionName = new TextDecoder().decode(wasm.subarray(p, p + len));
      if (sectionName === name) return wasm.subarray(p + len, end);
    }
    at = end;
  }
  return null;
}

export function bytesEqual(a, b) {
  return Buffer.from(a).equals(Buffer.from(b));
}

/**
 * A `fetch` for the agents that records every request's method, path and
 * answer status, and lets a test rewrite answers (`rewrite(path, bytes)`
 * returns the body to hand the agent, or undefined to leave it).
 */
export function recordingFetch({ rewrite } = {}) {
  const seen = [];
  const fetchFn = async (input, init) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? String(input) : input.url);
    const response = await fetch(input, init);
    seen.push({ method: init?.method ?? 'GET', path: url.pathname, status: response.status });
    if (!rewrite) return response;
    const body = new Uint8Array(await response.arrayBuffer());
    const changed = await rewrite(url.pathname, body);
    return new Response(changed ?? body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
  return { fetch: fetchFn, seen };
}

/** Polls `cond` every few milliseconds until it holds; fails after `timeoutMs`. */
export async function until(cond, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await pause(POLL_MS);
  }
}
