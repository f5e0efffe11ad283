#!/usr/bin/env node
// Compiles every guests/motoko/src/*.mo canister to an IC Wasm module with
// the `motoko` npm package (the Motoko compiler, moc, compiled to JavaScript;
// version pinned in package.json), as `make motoko` does:
//
//     node guests/motoko/build.js
//
// For each src/<name>.mo it writes, in guests/target/motoko/:
//   <name>.wasm  the module, with the Candid interface in the custom section
//                `icp:public candid:service` (moc emits it itself, asked to
//                make that metadata public; it is appended here if it is not)
//   <name>.did   the Candid interface the compiler gives
//   <name>.most  the stable signature (what an upgrade must stay compatible with)
//
// A `<name>_v<N>.mo` is the upgrade target of `<name>_v<N-1>.mo` (or of
// `<name>.mo` for N = 2): the build fails unless its stable signature is
// compatible with its predecessor's, as a replica's upgrade check would.
//
// Each canister is compiled in a worker thread of its own, with a fresh
// compiler: moc keeps state between compilations in one process, so a second
// compilation in the same process gives a different module.
//
// On a compile error it prints one line (`build.js: <file>:<line>:<col>: ...`)
// and exits 1. Only the npm registry is needed (npm ci); the `core` library
// that `import "mo:core/..."` uses is the copy the package ships.

'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');

const HERE = __dirname;
const SRC = path.join(HERE, 'src');
const OUT = path.resolve(HERE, '..', 'target', 'motoko');
const REPO = path.resolve(HERE, '..', '..');
const CANDID_SECTION = 'icp:public candid:service';
// Metadata moc puts in `icp:public` custom sections (the rest is `icp:private`).
const PUBLIC_METADATA = ['candid:service', 'candid:args'];

function rel(p) {
  return path.relative(REPO, p) || p;
}

function oneLine(text) {
  return String(text).replace(/\s*\n\s*/g, ' ').trim();
}

function loadMotoko() {
  let mo;
  try {
    mo = require('motoko');
  } catch (err) {
    throw new Error(`cannot load the motoko package (${oneLine(err.message)}); run: npm ci --prefix ${rel(HERE)}`);
  }
  mo.loadPackage(require('motoko/packages/latest/core.json'));
  return mo;
}

// `file:line:col: code message` for a compiler diagnostic (its lines and
// columns are 0-based).
function describe(d) {
  const at = d.range ? `:${d.range.start.line + 1}:${d.range.start.character + 1}` : '';
  return `${d.source || '?'}${at}: ${d.code ? d.code + ' ' : ''}${oneLine(d.message)}`;
}

function errorsOf(diagnostics) {
  return (diagnostics || []).filter((d) => d.severity === 1);
}

function summary(errors) {
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more error${errors.length > 2 ? 's' : ''})` : '';
  return describe(errors[0]) + more;
}

// ---- worker: compile one canister -----------------------------------------

function compileOne(file) {
  const mo = loadMotoko();
  mo.setPublicMetadata(PUBLIC_METADATA);
  // Every source is in the virtual file system under its repo path, so that
  // canisters can import each other and diagnostics name the real file.
  for (const f of fs.readdirSync(SRC)) {
    if (f.endsWith('.mo')) mo.write(rel(path.join(SRC, f)), fs.readFileSync(path.join(SRC, f), 'utf8'));
  }
  // The compiler itself, rather than mo.wasm(), which drops the diagnostics
  // (warnings, and the location of an error).
  const result = mo.compiler.compileWasm('ic', rel(path.join(SRC, file)));
  const errors = errorsOf(result.diagnostics);
  if (errors.length || !result.code) {
    return { error: errors.length ? summary(errors) : `${rel(path.join(SRC, file))}: compilation failed` };
  }
  const warnings = (result.diagnostics || []).filter((d) => d.severity !== 1).map(describe);
  const { wasm, candid, stable } = result.code;
  return { wasm, candid, stable, warnings };
}

if (!isMainThread) {
  let reply;
  try {
    reply = compileOne(workerData.file);
  } catch (err) {
    reply = { error: `${workerData.file}: ${oneLine(err && err.message ? err.message : err)}` };
  }
  parentPort.postMessage(reply);
  return;
}

// ---- Wasm custom sections -------------------------------------------------

function leb(n) {
  const out = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return Buffer.from(out);
}

function readLeb(buf, at) {
  let value = 0;
  let scale = 1;
  for (;;) {
    const byte = buf[at++];
    if (byte === undefined) throw new Error('truncated LEB128');
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if (!(byte & 0x80)) return [value, at];
  }
}

// Every custom section: { name, start, end, data }.
function customSections(wasm) {
  if (wasm.length < 8 || wasm.readUInt32LE(0) !== 0x6d736100) throw new Error('not a Wasm module');
  const sections = [];
  let at = 8;
  while (at < wasm.length) {
    const start = at;
    const id = wasm[at];
    const [size, body] = readLeb(wasm, at + 1);
    const end = body + size;
    if (end > wasm.length) throw new Error('truncated section');
    if (id === 0) {
      const [nameLen, nameAt] = readLeb(wasm, body);
      const name = wasm.subarray(nameAt, nameAt + nameLen).toString('utf8');
      sections.push({ name, start, end, data: wasm.subarray(nameAt + nameLen, end) });
    }
    at = end;
  }
  return sections;
}

// The module with `did` in its `icp:public candid:service` section: as it is
// when the compiler put exactly that there, else with any such section
// removed and a new one appended.
function embedCandid(wasm, did) {
  const payload = Buffer.from(did, 'utf8');
  const found = customSections(wasm).filter((s) => s.name === CANDID_SECTION);
  if (found.length === 1 && found[0].data.equals(payload)) return { wasm, appended: false };
  const parts = [];
  let at = 0;
  for (const s of found) {
    parts.push(wasm.subarray(at, s.start));
    at = s.end;
  }
  parts.push(wasm.subarray(at));
  const name = Buffer.from(CANDID_SECTION, 'utf8');
  const content = Buffer.concat([leb(name.length), name, payload]);
  parts.push(Buffer.from([0]), leb(content.length), content);
  return { wasm: Buffer.concat(parts), appended: true };
}

// ---- main ------------------------------------------------------------------

function compileInWorker(file) {
  return new Promise((resolve) => {
    const worker = new Worker(__filename, { workerData: { file } });
    let reply;
    worker.once('message', (m) => (reply = m));
    worker.once('error', (err) => (reply = { error: `${rel(path.join(SRC, file))}: ${oneLine(err.message)}` }));
    worker.once('exit', (code) => resolve(reply || { error: `${rel(path.join(SRC, file))}: compiler worker exited with ${code}` }));
  });
}

async function compileAll(files) {
  const results = new Map();
  const jobs = Math.max(1, Math.min(files.length, (os.availableParallelism ? os.availableParallelism() : os.cpus().length)));
  let next = 0;
  async function run() {
    while (next < files.length) {
      const file = files[next++];
      results.set(file, await compileInWorker(file));
    }
  }
  await Promise.all(Array.from({ length: jobs }, run));
  return results;
}

function writeIfChanged(file, data) {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  try {
    if (fs.readFileSync(file).equals(buf)) return;
  } catch (_) {
    // absent: write it
  }
  const tmp = `${file}.tmp${process.pid}`;
  fs.writeFileSync(tmp, buf);
  fs.renameSync(tmp, file);
}

// [upgrade target, its predecessor] pairs among the canister names.
function upgradePairs(names) {
  const pairs = [];
  for (const name of names) {
    const m = /^(.*)_v(\d+)$/.exec(name);
    if (!m || Number(m[2]) < 2) continue;
    const prev = Number(m[2]) === 2 ? m[1] : `${m[1]}_v${Number(m[2]) - 1}`;
    if (names.includes(prev)) pairs.push([name, prev]);
  }
  return pairs;
}

function fail(message) {
  process.stderr.write(`build.js: ${message}\n`);
  process.exit(1);
}

async function main() {
  const files = fs.readdirSync(SRC).filter((f) => f.endsWith('.mo')).sort();
  if (!files.length) fail(`no canister in ${rel(SRC)}`);
  try {
    require.resolve('motoko');
  } catch (_) {
    fail(`the motoko package is not installed; run: npm ci --prefix ${rel(HERE)}`);
  }
  const results = await compileAll(files);
  const failed = files.map((f) => results.get(f)).filter((r) => r.error);
  if (failed.length) {
    const more = failed.length > 1 ? ` (and ${failed.length - 1} more canister${failed.length > 2 ? 's' : ''} failed)` : '';
    fail(failed[0].error + more);
  }

  const names = files.map((f) => f.slice(0, -'.mo'.length));
  const stable = new Map(names.map((name, i) => [name, results.get(files[i]).stable || '']));
  const pairs = upgradePairs(names);
  if (pairs.length) {
    const mo = loadMotoko();
    for (const [name, prev] of pairs) {
      mo.write(`${prev}.most`, stable.get(prev));
      mo.write(`${name}.most`, stable.get(name));
      const { diagnostics } = mo.compiler.stableCompatible(`${prev}.most`, `${name}.most`);
      const errors = errorsOf(diagnostics);
      if (errors.length) {
        fail(`${name} cannot upgrade ${prev}: ${errors.map((d) => `${d.code} ${oneLine(d.message)}`).join('; ')}`);
      }
    }
  }

  fs.mkdirSync(OUT, { recursive: true });
  for (const [i, file] of files.entries()) {
    const name = names[i];
    const r = results.get(file);
    for (const w of r.warnings) process.stderr.write(`build.js: warning: ${w}\n`);
    let out;
    try {
      out = embedCandid(Buffer.from(r.wasm), r.candid);
    } catch (err) {
      fail(`${rel(path.join(SRC, file))}: bad module from the compiler: ${oneLine(err.message)}`);
    }
    writeIfChanged(path.join(OUT, `${name}.wasm`), out.wasm);
    writeIfChanged(path.join(OUT, `${name}.did`), r.candid);
    writeIfChanged(path.join(OUT, `${name}.most`), stable.get(name));
    console.log(`motoko: ${rel(path.join(OUT, name + '.wasm'))} (${out.wasm.length} bytes${out.appended ? ', Candid section appended' : ''})`);
  }
}

main().catch((err) => fail(oneLine(err && err.stack ? err.message : err)));
