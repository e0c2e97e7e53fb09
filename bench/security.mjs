#!/usr/bin/env node
/**
 * Security bench (after a build: `node bench/security.mjs [--json]`, or `npm run bench`). Every
 * number is measured in this run next to a baseline measured in the same run:
 *
 * 1. Audit records per second, in a temporary directory on this machine's disk:
 *    - per-record fsync: `await log.record(…)` one after another (each resolves once its record
 *      is written and fdatasync'ed), against a bare loop of the same number of JSON lines of the
 *      same size, each written with writeSync + fdatasyncSync (the disk's floor);
 *    - batched: `log.note(…)` (written every 128 records or 100 ms and fsynced off the event loop;
 *      never 256 unsynced), then `flush()`, against the
 *      same lines written in 256-line batches with one fdatasync each, without chain, MAC or
 *      checkpoints (so the difference is what the audit format costs).
 * 2. Signature verification of a 1 MiB and a 10 MiB module (a small valid module plus one custom
 *    section of filler, signed with one key): `verifyModule` against plain SHA-256 of the same bytes.
 * 3. Attestation: `hv.attest()` with 4 partitions created (report creation: event log copy,
 *    canonical JSON, Ed25519 signature) and `verifyReport` (schema, signature, replay), against a
 *    bare Ed25519 sign / verify of the report's canonical bytes.
 */
import { createHash, sign as edSign, verify as edVerify } from 'node:crypto';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AuditLog, Hypervisor, generateKeyPair, signModule, verifyModule, verifyReport } from '../dist/index.js';

const JSON_OUT = process.argv.includes('--json');
const root = fileURLToPath(new URL('..', import.meta.url));
const results = [];
const t0 = performance.now();

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
function add(section, id, label, unit, samples, baseline) {
  results.push({ section, id, label, unit, median: median(samples), min: Math.min(...samples), samples: samples.length, ...(baseline ? { baseline } : {}) });
}

// 1. Audit
const key = generateKeyPair();
const macKey = new Uint8Array(32).fill(1);
const entry = (i) => ({ action: 'bench.record', target: `partition-${i % 64}`, outcome: 'success', reason: 'a representative audit record', details: { i } });
function auditRun(n, mode) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wv-bench-audit-'));
  try {
    const log = AuditLog.open({ dir: path.join(dir, 'audit'), macKey, signingKey: key, headFile: path.join(dir, 'keys', 'audit.head') });
    return { dir, log };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
async function auditPerRecord(n) {
  const { dir, log } = auditRun(n);
  const start = performance.now();
  for (let i = 0; i < n; i++) await log.record(entry(i));
  const ms = performance.now() - start;
  const lineBytes = readFileSync(path.join(dir, 'audit', 'audit-000001.jsonl')).length / (n + 2);
  await log.close();
  rmSync(dir, { recursive: true, force: true });
  return { perSecond: (n / ms) * 1000, lineBytes };
}
async function auditBatched(n) {
  const { dir, log } = auditRun(n);
  const start = performance.now();
  for (let i = 0; i < n; i++) log.note(entry(i));
  await log.flush();
  const ms = performance.now() - start;
  await log.close();
  rmSync(dir, { recursive: true, force: true });
  return (n / ms) * 1000;
}
function rawLines(n, lineBytes, batch) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wv-bench-raw-'));
  const fd = openSync(path.join(dir, 'raw.jsonl'), 'a', 0o600);
  const line = JSON.stringify({ pad: 'x'.repeat(Math.max(0, Math.round(lineBytes) - 12)) }) + '\n';
  const start = performance.now();
  let pending = '';
  for (let i = 0; i < n; i++) {
    pending += line;
    if ((i + 1) % batch === 0 || i === n - 1) {
      writeSync(fd, pending);
      fdatasyncSync(fd);
      pending = '';
    }
  }
  const ms = performance.now() - start;
  closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
  return (n / ms) * 1000;
}
{
  const runs = 3;
  const perRecord = [];
  const rawPer = [];
  const batched = [];
  const rawBatched = [];
  for (let r = 0; r < runs; r++) {
    const p = await auditPerRecord(200);
    perRecord.push(p.perSecond);
    rawPer.push(rawLines(200, p.lineBytes, 1));
    batched.push(await auditBatched(20000));
    rawBatched.push(rawLines(20000, p.lineBytes, 256));
  }
  add('audit', 'raw1', 'write + fdatasync per line (baseline)', 'records/s', rawPer);
  add('audit', 'record', 'audit record(), fsync per record', 'records/s', perRecord, 'raw1');
  add('audit', 'raw256', 'write + fdatasync per 256 lines (baseline)', 'records/s', rawBatched);
  add('audit', 'note', 'audit note(), batched (128 / 100 ms, < 256 unsynced)', 'records/s', batched, 'raw256');
}

// 2. Signature verification
function moduleOfSize(bytes) {
  const base = Uint8Array.from(readFileSync(path.join(root, 'build', 'guests', 'exit.wasm')));
  const name = new TextEncoder().encode('filler');
  const fill = bytes - base.length - 16;
  const leb = (v) => {
    const out = [];
    do {
      let b = v & 0x7f;
      v >>>= 7;
      if (v) b |= 0x80;
      out.push(b);
    } while (v);
    return out;
  };
  const body = new Uint8Array(1 + name.length + fill);
  body[0] = name.length;
  body.set(name, 1);
  for (let i = 1 + name.length; i < body.length; i++) body[i] = i & 0xff;
  return Uint8Array.from([...base, 0, ...leb(body.length), ...body]);
}
for (const mib of [1, 10]) {
  const bytes = signModule(moduleOfSize(mib * 1024 * 1024), key).module;
  const runs = mib === 1 ? 15 : 7;
  const verify = [];
  const hash = [];
  for (let r = 0; r < runs; r++) {
    let t = performance.now();
    createHash('sha256').update(bytes).digest();
    hash.push(performance.now() - t);
    t = performance.now();
    const v = verifyModule(bytes, [key.publicKey]);
    verify.push(performance.now() - t);
    if (!v.signers[0]?.full) throw new Error('bench module did not verify');
  }
  add('signature', `sha${mib}`, `SHA-256 of ${mib} MiB (baseline)`, 'ms', hash);
  add('signature', `verify${mib}`, `verify a signed ${mib} MiB module`, 'ms', verify, `sha${mib}`);
}

// 3. Attestation
{
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'wv-bench-attest-'));
  const hv = new Hypervisor({ dataDir });
  for (let i = 0; i < 4; i++) await hv.createPartition({ name: `p${i}`, module: path.join(root, 'build', 'guests', 'hello.wasm'), devices: { console: true } });
  const pub = hv.attestationPublicKey();
  const create = [];
  const verify = [];
  const rawSign = [];
  const rawVerify = [];
  let events = 0;
  const hostKey = generateKeyPair();
  for (let r = 0; r < 30; r++) {
    let t = performance.now();
    const report = await hv.attest({ nonce: 'abcdef' });
    create.push(performance.now() - t);
    t = performance.now();
    verifyReport(report, pub, { nonce: 'abcdef' });
    verify.push(performance.now() - t);
    events = report.events.length;
    const canonical = Buffer.from(JSON.stringify(report));
    t = performance.now();
    const sig = edSign(null, canonical, hostKey.keyObject);
    rawSign.push(performance.now() - t);
    t = performance.now();
    edVerify(null, canonical, hostKey.publicKey.keyObject, sig);
    rawVerify.push(performance.now() - t);
  }
  await hv.close();
  rmSync(dataDir, { recursive: true, force: true });
  add('attest', 'edsign', `Ed25519 sign of the report's bytes (baseline)`, 'ms', rawSign);
  add('attest', 'create', `hv.attest() (${events} events, 4 partitions)`, 'ms', create, 'edsign');
  add('attest', 'edverify', `Ed25519 verify of the report's bytes (baseline)`, 'ms', rawVerify);
  add('attest', 'verify', 'verifyReport (schema, signature, replay)', 'ms', verify, 'edverify');
}

const env = {
  node: process.version,
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? 'unknown',
  loadavg: os.loadavg().map((x) => x.toFixed(2)).join(' '),
  totalSeconds: (performance.now() - t0) / 1000,
};
if (JSON_OUT) {
  console.log(JSON.stringify({ env, results }, null, 2));
} else {
  const byId = new Map(results.map((r) => [`${r.section}.${r.id}`, r]));
  const fmt = (v, unit) => (unit === 'ms' ? `${v.toFixed(3)} ms` : `${Math.round(v).toLocaleString('en')} ${unit}`);
  const titles = { audit: '1. Audit log, records per second (temporary directory on this disk)', signature: '2. Module signature verification', attest: '3. Attestation reports' };
  const out = [`Wasmvisor security bench: node ${env.node}, ${env.cpus} x ${env.cpuModel}, load avg ${env.loadavg}, took ${env.totalSeconds.toFixed(1)} s`];
  for (const section of Object.keys(titles)) {
    out.push('', titles[section]);
    for (const r of results.filter((x) => x.section === section)) {
      let vs = '';
      if (r.baseline) {
        const b = byId.get(`${section}.${r.baseline}`);
        vs = `  (x${(r.median / b.median).toFixed(2)} of the baseline)`;
      }
      out.push(`  ${r.label.padEnd(52)} ${fmt(r.median, r.unit).padStart(18)}  n=${r.samples}${vs}`);
    }
  }
  console.log(out.join('\n'));
}
