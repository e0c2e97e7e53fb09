#!/usr/bin/env node
// The cost of authentication, authorization and audit on the management API: requests/s of
// GET /metrics and of POST /partitions/<p>/call (a reactor's `echo`, 64 bytes in and out) on a
// host with auth on (bearer token, SHA-256 + constant-time compare, rate limit, RBAC decision,
// audit record) vs the same routes on a host with auth off, both over TLS on loopback, measured
// in the same run. The two hosts run in one child process (so the load generator does not share
// their event loop); autocannon (10 connections) measures paired rounds, off and on back to back
// in alternating order, and the median of the per-round ratios is reported (a shared machine's
// load drifts; pairs cancel most of it). Target: auth + audit cost <= 20%.
// Audit is what serve runs with: the durable, hash-chained log (host/security/audit.ts) in the
// host's data directory; a decision is noted (fsynced with its batch: at most 255 records or
// 100 ms), an action recorded (fsynced before the answer).
// Usage: node bench/mgmt.mjs [seconds-per-round] [rounds]
import autocannon from 'autocannon';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

if (process.env.WV_BENCH_MGMT_CHILD === '1') {
  // The hosts: one with auth, one without, each with a started reactor `p`.
  const { serve } = await import(`${root}dist/mgmt.js`);
  const limits = { ratePerSecond: 1e9, rateBurst: 1e9, maxConnections: 256 };
  const module = readFileSync(`${root}build/guests/transform.wasm`).toString('base64');
  const host = async (auth) => {
    const config = mkdtempSync(path.join(os.tmpdir(), 'wv-bench-'));
    const running = await serve({ config, port: 0, tlsSelfSigned: true, limits, auth, log: () => {} });
    const { token } = await running.tokens.create({ name: 'bench', role: 'Operator', scope: '/', lifetimeMs: 3_600_000, createdBy: 'bench' });
    await running.host.create({ spec: { name: 'p', kind: 'reactor' }, module, start: true }, 'bench');
    return { running, token };
  };
  const on = await host(true);
  const off = await host(false);
  // The auth path alone, per request, in this process: what the auth-on host adds to each request
  // (token verification, the principal's bucket is left out: a Map lookup; RBAC decision; the
  // decision's audit record, noted into the durable log as the server does, batches fsynced).
  const { Rbac } = await import(`${root}dist/mgmt.js`);
  const rbac = new Rbac({});
  const n = 20_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const record = on.running.tokens.verify(on.token);
    const id = `token:${record.name}`;
    const d = rbac.decide(id, [{ principal: id, role: record.role, scope: record.scope }], 'metrics/read', '/');
    on.running.audit.note({ actor: id, action: 'api.authorize', target: '/', outcome: d.allowed ? 'success' : 'denied', reason: d.rule, details: { permission: 'metrics/read', requestId: 'bench' } });
  }
  const authMicros = ((performance.now() - t0) * 1000) / n;
  process.stdout.write(JSON.stringify({ authMicros, on: { url: on.running.url, token: on.token }, off: { url: off.running.url, token: off.token } }) + '\n');
  process.stdin.resume();
  process.stdin.on('end', async () => {
    const records = await on.running.audit.query({ limit: Number.MAX_SAFE_INTEGER });
    process.stdout.write(JSON.stringify({ auditRecords: records.length }) + '\n');
    await on.running.close();
    await off.running.close();
    process.exit(0);
  });
} else {
  const seconds = Number(process.argv[2] ?? 1.5);
  const rounds = Number(process.argv[3] ?? 6);
  const child = spawn(process.execPath, ['--no-warnings', fileURLToPath(import.meta.url)], { env: { ...process.env, WV_BENCH_MGMT_CHILD: '1' }, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const hosts = JSON.parse((await lines.next()).value);

  const run = (target, route) =>
    new Promise((resolve, reject) => {
      autocannon(
        {
          url: `${target.url}${route.path}`,
          method: route.method,
          connections: 10,
          duration: seconds,
          headers: { authorization: `Bearer ${target.token}`, 'content-type': 'application/json' },
          ...(route.body ? { body: route.body } : {}),
        },
        (error, result) => {
          if (error) return reject(error);
          if (result.non2xx > 0 || result.errors > 0) return reject(new Error(`${route.name}: ${result.non2xx} non-2xx, ${result.errors} errors`));
          resolve(result.requests.total / seconds);
        },
      );
    });
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const routes = [
    { name: 'GET /metrics', method: 'GET', path: '/metrics' },
    { name: 'POST call (echo, 64 B)', method: 'POST', path: '/partitions/p/call', body: JSON.stringify({ export: 'echo', input: 'x'.repeat(64) }) },
  ];
  console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, ${os.cpus().length} cores; ${rounds} paired rounds of ${seconds} s per route`);
  console.log(`auth path alone (verify token, RBAC decision, audit record): ${hosts.authMicros.toFixed(1)} us per request, measured in the hosts' process`);
  try {
    for (const route of routes) {
      await run(hosts.off, route); // warm-up of both hosts (JIT, connections)
      await run(hosts.on, route);
      const ons = [];
      const offs = [];
      const ratios = [];
      for (let i = 0; i < rounds; i++) {
        const order = i % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
        const r = {};
        for (const k of order) r[k] = await run(hosts[k], route);
        ons.push(r.on);
        offs.push(r.off);
        ratios.push(r.on / r.off);
      }
      const ratio = median(ratios);
      console.log(
        `${route.name.padEnd(24)} auth on ${median(ons).toFixed(0).padStart(6)} req/s   auth off ${median(offs).toFixed(0).padStart(6)} req/s   ` +
          `on/off median ${ratio.toFixed(3)} (rounds ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})   cost ${((1 - ratio) * 100).toFixed(1)}% (target <= 20%); ` +
          `auth path / request time off: ${((hosts.authMicros * median(offs)) / 1e4).toFixed(1)}%`,
      );
    }
  } finally {
    child.stdin.end();
    const done = await lines.next();
    if (!done.done) console.log(`audit records in the auth-on host's durable log: ${JSON.parse(done.value).auditRecords}`);
  }
}
