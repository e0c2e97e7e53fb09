/**
 * `wasmvisor serve` as a real process: killed with SIGKILL and started again, it brings back the
 * declared partitions per their restart policy, with their disks, and its audit log (the API's
 * and the Hypervisor's records in one chain) verifies with `wasmvisor audit verify` after the
 * kill and after the restart; a second serve on the same directory is refused; SIGTERM shuts
 * down in order (exit 0, lock released, partitions recorded as stopped by the host).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Client } from '../../host/mgmt/client.ts';
import { createBody, tempDir } from './harness.ts';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const children = new Set<ChildProcess>();

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

interface Serve {
  child: ChildProcess;
  url: string;
  client: Client;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    c.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function startServe(config: string, tokenFile: string): Promise<Serve> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config, '--port', '0', '--tls-self-signed'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal, stderr });
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const m = /listening on (\S+)/.exec(stdout);
      if (m) resolve(m[1]!);
    });
    void exited.then((e) => reject(new Error(`serve exited (${e.code}): ${e.stderr}`)));
  });
  const client = new Client({ url, token: readFileSync(tokenFile, 'utf8').trim(), ca: readFileSync(`${config}/tls/ca.crt`, 'utf8') });
  return { child, url, client, exited };
}

async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`not reached in time: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type Info = { name: string; state: string; lastRun: string; restarts: number };
const ps = async (c: Client) => Object.fromEntries((await c.json<{ partitions: Info[] }>('GET', '/partitions')).partitions.map((p) => [p.name, p]));
const logs = async (c: Client, name: string) => {
  const lines: string[] = [];
  await c.stream(`/partitions/${name}/console?tail=100&follow=false`, (_n, d) => lines.push((d as { line: string }).line));
  return lines;
};

describe('serve as a daemon', () => {
  it('SIGKILL and restart: declared partitions come back per restart policy, with their disks', async () => {
    const config = tempDir();
    // Tokens are made before serve, in the config directory, as an operator would.
    const made = await cli(['token', 'create', '--config', config, '--name', 'admin', '--role', 'Owner', '--scope', '/', '--expires', '1h']);
    expect(made.code, made.stderr).toBe(0);
    const tokenFile = `${config}/admin.token`;
    writeFileSync(tokenFile, made.stdout, { mode: 0o600 });

    const first = await startServe(config, tokenFile);
    const service = { console: true, block: { sizeMiB: 1 } };
    await first.client.json('POST', '/partitions', createBody('kv', 'counter', { start: true, restartPolicy: 'on-failure' }, { devices: service }));
    await first.client.json('POST', '/partitions', createBody('svc', 'echo', { start: true, restartPolicy: 'on-failure' }, { devices: { console: true }, limits: { timeoutMs: 0 } }));
    await first.client.json('POST', '/partitions', createBody('web', 'echo', { start: true, restartPolicy: 'always' }, { devices: { console: true }, limits: { timeoutMs: 0 } }));
    await first.client.json('POST', '/partitions', createBody('idle', 'echo', { start: true, restartPolicy: 'never' }, { devices: { console: true }, limits: { timeoutMs: 0 } }));
    await first.client.json('POST', '/partitions', createBody('parked', 'echo', { start: false, restartPolicy: 'always' }, { devices: { console: true } }));
    await until(() => ps(first.client), (p) => p.kv?.state === 'exited');
    expect(await logs(first.client, 'kv')).toContain('counter: 1');

    // A second serve on the same directory is refused while the first lives.
    const second = await cli(['serve', '--config', config, '--port', '0']);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/^ERR_INVALID_STATE: another wasmvisor serve \(pid \d+\) is using/);

    // The log checkpoints (signed, anchored in audit.head) at most CHECKPOINT_MS after its last
    // checkpoint even when idle: wait for that anchor, so the kill comes after one exists.
    const head = `${config}/data/keys/audit.head`;
    for (const deadline = Date.now() + 15_000; !existsSync(head) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
    first.child.kill('SIGKILL');
    await first.exited;
    // The chain verifies after the crash: MACs, links, signed checkpoints, the anchor.
    const log = `${config}/data/audit`;
    const afterKill = await cli(['audit', 'verify', log]);
    expect(afterKill.code, afterKill.stderr).toBe(0);
    expect(afterKill.stdout).toMatch(/^audit log verified: \d+ records in 1 file \(MACs, chain, \d+ checkpoint signatures, anchor\)$/m);

    const again = await startServe(config, tokenFile);
    try {
      const p = await until(() => ps(again.client), (x) => x.svc?.state === 'running' && x.web?.state === 'running');
      expect(p.svc!.state).toBe('running'); // on-failure: the host died under it
      expect(p.web!.state).toBe('running'); // always
      expect(p.idle!.state).toBe('created'); // never
      expect(p.parked!.state).toBe('created'); // always, but never started by an operator
      expect(p.kv!.state).toBe('created'); // on-failure, and its last run succeeded
      // The disk came back: the counter goes on from 1.
      await again.client.json('POST', '/partitions/kv/start');
      await until(() => logs(again.client, 'kv'), (l) => l.includes('counter: 2'));
      // Console streams and calls work on the restored partitions.
      await again.client.json('POST', '/partitions/svc/console', { lines: ['still here'] });
      await until(() => logs(again.client, 'svc'), (l) => l.includes('echo: still here'));
    } finally {
      again.child.kill('SIGTERM');
      const e = await again.exited;
      expect(e.code).toBe(0);
    }
    // One chain across the crash and the restart, the API's records and the runtime's in it.
    const verified = await cli(['audit', 'verify', log]);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(/^audit log verified: /m);
    const records = (await cli(['audit', 'show', log, '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l) as { actor: string; action: string; target: string });
    const count = (action: string, actor?: string) => records.filter((r) => r.action === action && (actor === undefined || r.actor === actor)).length;
    expect(count('host.start')).toBe(2);
    expect(count('host.stop')).toBe(1); // the SIGKILLed host never said goodbye
    expect(count('audit.open')).toBe(2);
    expect(count('partition.create', 'token:admin')).toBe(5); // the API's actions, by the principal
    expect(count('partition.create', 'host')).toBeGreaterThanOrEqual(5); // the runtime's, by the host (restores included)
    expect(count('partition.restore')).toBe(5);
    expect(count('api.authorize', 'token:admin')).toBeGreaterThan(5);
  }, 60_000);

  it('SIGTERM: exit 0, lock released, running partitions recorded as stopped by the host; always restarts them, on-failure does not', async () => {
    const config = tempDir();
    const made = await cli(['token', 'create', '--config', config, '--name', 'admin', '--role', 'Owner', '--scope', '/']);
    const tokenFile = `${config}/t`;
    writeFileSync(tokenFile, made.stdout);
    const first = await startServe(config, tokenFile);
    await first.client.json('POST', '/partitions', createBody('a', 'echo', { start: true, restartPolicy: 'always' }, { devices: { console: true }, limits: { timeoutMs: 0 } }));
    await first.client.json('POST', '/partitions', createBody('f', 'echo', { start: true, restartPolicy: 'on-failure' }, { devices: { console: true }, limits: { timeoutMs: 0 } }));
    first.child.kill('SIGTERM');
    const e = await first.exited;
    expect(e.code).toBe(0);
    expect(e.stderr).toContain('wasmvisor serve: stopped');
    expect(existsSync(`${config}/serve.lock`)).toBe(false);
    expect(JSON.parse(readFileSync(`${config}/partitions/a.json`, 'utf8')).lastRun).toBe('host-shutdown');
    const again = await startServe(config, tokenFile);
    try {
      const p = await until(() => ps(again.client), (x) => x.a?.state === 'running');
      expect(p.f!.state).toBe('created');
    } finally {
      again.child.kill('SIGTERM');
      await again.exited;
    }
  }, 60_000);

  it('the remote CLI: run, ps, logs, call, stop, audit, attest, with a pinned certificate', async () => {
    const config = tempDir();
    const made = await cli(['token', 'create', '--config', config, '--name', 'admin', '--role', 'Owner', '--scope', '/']);
    const tokenFile = `${config}/t`;
    writeFileSync(tokenFile, made.stdout);
    const s = await startServe(config, tokenFile);
    try {
      const { X509Certificate } = await import('node:crypto');
      const fp = new X509Certificate(readFileSync(`${config}/tls/server.crt`)).fingerprint256;
      const base = ['--host', s.url, '--token-file', tokenFile, '--fingerprint', fp];
      const transform = fileURLToPath(new URL('../../build/guests/transform.wasm', import.meta.url));
      const hello = fileURLToPath(new URL('../../build/guests/hello.wasm', import.meta.url));
      expect((await cli([...base, 'run', transform, '--name', 'md', '--reactor'])).code).toBe(0);
      expect((await cli([...base, 'run', hello, '--name', 'hi', '--', 'x'])).code).toBe(0);
      const list = await cli([...base, 'ps']);
      expect(list.stdout).toMatch(/^md\s+reactor\s+running/m);
      await until(() => cli([...base, 'logs', 'hi']), (r) => r.stdout.includes('arg[0]=x'));
      const inputFile = `${config}/in.txt`;
      writeFileSync(inputFile, 'shout');
      const called = await cli([...base, 'call', 'md', 'upper', '--input', inputFile]);
      expect(called.stdout).toBe('SHOUT');
      // A non-zero return exits as the local call does (README's exit-status table): the export's
      // status & 0xff with ERR_GUEST_CALL, and its output still on stdout.
      const failed = await cli([...base, 'call', 'md', 'fail', '--input', inputFile]);
      expect(failed).toMatchObject({ code: 7, stdout: 'bad input', stderr: 'ERR_GUEST_CALL: export fail of partition md returned status 7\n' });
      // --input-file reads a file as the local call does; both flags, or a file that cannot be read, are usage errors naming the flag.
      expect((await cli([...base, 'call', 'md', 'upper', '--input-file', inputFile])).stdout).toBe('SHOUT');
      const both = await cli([...base, 'call', 'md', 'upper', '--input', inputFile, '--input-file', inputFile]);
      expect(both).toMatchObject({ code: 2, stderr: 'ERR_INVALID_ARGUMENT: --input and --input-file: give one of them, not both\n' });
      const missing = await cli([...base, 'call', 'md', 'upper', '--input-file', `${config}/nope`]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/^ERR_INVALID_ARGUMENT: --input-file: cannot read ".*nope": ENOENT/);
      expect((await cli([...base, 'stop', 'md'])).code).toBe(0);
      const audit = await cli([...base, 'audit', '--partition', 'md', '--action', 'partition.stop']);
      expect(audit.stdout).toMatch(/token:admin partition\.stop \/partitions\/md success/);
      // A real report: verified offline with the host's public key and the nonce.
      const attest = await cli([...base, 'attest', '--nonce', '00112233445566778899']);
      expect(attest.code, attest.stderr).toBe(0);
      writeFileSync(`${config}/report.json`, attest.stdout);
      expect((await cli(['attest', 'key', '--data-dir', `${config}/data`, '--out', `${config}/host.pub`])).code).toBe(0);
      const md = createHash('sha256').update(readFileSync(transform)).digest('hex');
      const checked = await cli(['attest', 'verify', `${config}/report.json`, '--key', `${config}/host.pub`, '--nonce', '00112233445566778899', '--expect-measurement', md]);
      expect(checked.code, checked.stderr).toBe(0);
      expect(checked.stdout).toMatch(/^host report verified: format, key, signature, nonce, log \(\d+ events\), partitions, expectations$/m);
      const asked = await cli([...base, 'audit', '--action', 'attestation.request', '--json']);
      expect(JSON.parse(asked.stdout).records).toMatchObject([{ actor: 'token:admin', action: 'attestation.request', outcome: 'success' }]);
      // A wrong pin: refused before the token is sent.
      const wrong = await cli(['--host', s.url, '--token-file', tokenFile, '--fingerprint', 'AB'.repeat(32), 'ps']);
      expect(wrong.code).toBe(69);
      expect(wrong.stderr).toMatch(/^ERR_CONNECTION: the host's certificate .* does not match the pinned fingerprint/);
      const denied = await cli(['--host', s.url, '--token-file', inputFile, '--fingerprint', fp, 'ps']);
      expect(denied.code).toBe(77);
      expect(denied.stderr).toMatch(/^ERR_UNAUTHENTICATED/);
    } finally {
      s.child.kill('SIGTERM');
      await s.exited;
    }
  }, 60_000);
});
