/**
 * The security commands end to end, as real processes (dist/cli.js): keygen, sign, verify,
 * run --policy refusals, attest verify, audit verify/show — and the README's walk-through, run
 * exactly as written.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { guest } from '../helpers.ts';

// Each step spawns a CLI process; on a loaded machine a test of several steps takes a while.
vi.setConfig({ testTimeout: 120_000 });

const root = fileURLToPath(new URL('../../', import.meta.url));
const CLI = path.join(root, 'dist', 'cli.js');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], cwd: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000, killSignal: 'SIGKILL', env: { ...process.env, NODE_OPTIONS: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The one error line, leading with the code, and the exit status. */
function refused(r: Result, code: string, status: number, message?: RegExp): void {
  expect(r.stdout).toBe('');
  expect(r.stderr, r.stdout).toMatch(new RegExp(`^${code}: \\S[^\\n]*\\n$`));
  if (message) expect(r.stderr).toMatch(message);
  expect(r.code).toBe(status);
}

let dir: string;
let hello: string;
beforeAll(async () => {
  hello = guest('hello');
  dir = mkdtempSync(path.join(tmpdir(), 'wv-seccli-'));
  expect((await cli(['keygen', 'acme'], dir)).code).toBe(0);
  expect((await cli(['keygen', 'mallory'], dir)).code).toBe(0);
  writeFileSync(
    path.join(dir, 'policy.json'),
    JSON.stringify({ publishers: { acme: { keys: [{ file: 'acme.pub' }], grants: { devices: ['console', 'clock', 'entropy'], memoryPages: 64 } } } }),
  );
});

describe('keygen, sign, verify', () => {
  it('keygen writes the spec serialization, the secret 0600, and refuses to overwrite', async () => {
    expect(readFileSync(path.join(dir, 'acme.key')).length).toBe(65);
    expect(readFileSync(path.join(dir, 'acme.key'))[0]).toBe(0x81);
    expect(readFileSync(path.join(dir, 'acme.pub'))[0]).toBe(0x01);
    expect(statSync(path.join(dir, 'acme.key')).mode & 0o777).toBe(0o600);
    const before = readFileSync(path.join(dir, 'acme.key'));
    refused(await cli(['keygen', 'acme'], dir), 'ERR_INVALID_ARGUMENT', 2, /acme.key already exists; refusing to overwrite a key/);
    expect(readFileSync(path.join(dir, 'acme.key'))).toEqual(before);
    refused(await cli(['keygen'], dir), 'ERR_INVALID_ARGUMENT', 2);
  });

  it("keygen's usage mistakes are worded as every command's (options.ts), after its two usage lines, and write nothing", async () => {
    const sub = mkdtempSync(path.join(dir, 'keygen-usage-'));
    const cases: [string[], string][] = [
      [[], 'keygen needs <name> or --secret-key <file> and --public-key <file>'],
      [['--secret-key', 's.key'], 'keygen --secret-key <file> needs --public-key <file>'],
      [['--public-key', 'p.pub'], 'keygen --public-key <file> needs --secret-key <file>'],
      [['--public-key', 'p.pub', 'acme'], 'keygen --public-key <file> needs --secret-key <file>'],
      [['--secret-key', 's.key', '--public-key', 'p.pub', 'acme'], 'keygen --secret-key <file> --public-key <file> takes no arguments, got an extra argument "acme"'],
      [['acme', 'other'], 'keygen takes [<name>], got an extra argument "other"'],
    ];
    for (const [args, message] of cases) {
      const r = await cli(['keygen', ...args], sub);
      expect(r.stderr, args.join(' ')).toBe(`ERR_INVALID_ARGUMENT: ${message}; see wasmvisor keygen --help\n`);
      expect(r.code).toBe(2);
    }
    expect(readdirSync(sub)).toEqual([]);
  });

  it('keygen refuses a name or file that names no file, and a refused or failed pair leaves no file behind', async () => {
    const sub = mkdtempSync(path.join(dir, 'keygen-'));
    // An empty name wrote the hidden files .key and .pub; a folder's name, keys/.key and keys/.pub.
    refused(await cli(['keygen', ''], sub), 'ERR_INVALID_ARGUMENT', 2, /^ERR_INVALID_ARGUMENT: keygen: expected <name>, got ""/);
    mkdirSync(path.join(sub, 'keys'));
    refused(await cli(['keygen', 'keys/'], sub), 'ERR_INVALID_ARGUMENT', 2, /keygen: the name "keys\/" names no file/);
    refused(await cli(['keygen', '--secret-key', '', '--public-key', 'p.pub'], sub), 'ERR_INVALID_ARGUMENT', 2, /^ERR_INVALID_ARGUMENT: --secret-key: expected a file, got ""/);
    // Both keys to one file: the secret key was written, then the public key refused as "already exists".
    refused(await cli(['keygen', '--secret-key', 'k', '--public-key', './k'], sub), 'ERR_INVALID_ARGUMENT', 2, /the secret and the public key would both be written to k: name two files/);
    // The public key's folder is missing: the secret key just written goes too.
    refused(await cli(['keygen', '--secret-key', 's.key', '--public-key', 'missing/p.pub'], sub), 'ERR_STORAGE', 74, /cannot create missing\/p\.pub/);
    expect(readdirSync(sub)).toEqual(['keys']);
    expect(readdirSync(path.join(sub, 'keys'))).toEqual([]);
  });

  it('embedded and detached round trips, several signers, wrong key refused', async () => {
    expect((await cli(['sign', hello, '--key', 'acme.key', '--out', 'one.wasm'], dir)).code).toBe(0);
    expect((await cli(['sign', 'one.wasm', '--key', 'mallory.key', '--out', 'two.wasm'], dir)).code).toBe(0);
    const v = await cli(['verify', 'two.wasm', '--key', 'acme.pub', '--key', 'mallory.pub'], dir);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/valid signature by acme/);
    expect(v.stdout).toMatch(/valid signature by mallory/);
    refused(await cli(['verify', hello, '--key', 'acme.pub'], dir), 'ERR_INTEGRITY', 125, /is not signed/);
    expect((await cli(['sign', hello, '--key', 'acme.key', '--detached', 'hello.sig'], dir)).code).toBe(0);
    expect((await cli(['sign', hello, '--key', 'mallory.key', '--detached', 'hello.sig'], dir)).stdout).toMatch(/added a signature to hello.sig/);
    expect((await cli(['verify', hello, '--key', 'mallory.pub', '--signature', 'hello.sig'], dir)).code).toBe(0);
    refused(await cli(['sign', hello, '--key', 'acme.pub', '--out', 'x.wasm'], dir), 'ERR_INVALID_ARGUMENT', 2, /is a public key, not a secret key/);
    refused(await cli(['verify', 'one.wasm', '--key', 'mallory.pub'], dir), 'ERR_INTEGRITY', 125, /signed only by keys the policy does not trust/);
  });
});

describe('run --policy: each refusal, before the guest runs, with a real module', () => {
  const run = (module: string, ...extra: string[]) => cli(['run', '--policy', 'policy.json', '--data-dir', 'wv', '--memory', '64', ...extra, module], dir);

  it('admits the signed module and runs it', async () => {
    expect((await cli(['sign', hello, '--key', 'acme.key', '--out', 'ok.wasm'], dir)).code).toBe(0);
    const r = await run('ok.wasm');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Hello from a Wasmvisor partition!\n/);
  });

  it('unsigned, unknown key, changed byte, over the grants: one line each, exit 125, nothing printed', async () => {
    refused(await run(hello), 'ERR_INTEGRITY', 125, /is not signed and not pinned by the policy/);
    expect((await cli(['sign', hello, '--key', 'mallory.key', '--out', 'mallory.wasm'], dir)).code).toBe(0);
    refused(await run('mallory.wasm'), 'ERR_INTEGRITY', 125, /signed only by keys the policy does not trust/);
    const changed = readFileSync(path.join(dir, 'ok.wasm'));
    changed[changed.length - 5]! ^= 1;
    writeFileSync(path.join(dir, 'changed.wasm'), changed);
    refused(await run('changed.wasm'), 'ERR_INTEGRITY', 125, /changed after signing/);
    refused(await run('ok.wasm', '--devices', 'console,attestation'), 'ERR_POLICY_DENIED', 125, /publisher acme does not grant the attestation device/);
    refused(await cli(['run', '--policy', 'policy.json', '--data-dir', 'wv', 'ok.wasm'], dir), 'ERR_POLICY_DENIED', 125, /grants at most 64 memory pages; the spec asks for 256 \(the default/);
    // inspect reaches the verdict run would with the same options (README), grants included: it
    // said "admitted" for both of these, checking only the signature.
    const inspected = async (extra: string[], verdict: RegExp | null) => {
      const r = await cli(['inspect', '--policy', 'policy.json', ...extra, 'ok.wasm'], dir);
      if (verdict === null) return expect(r, extra.join(' ')).toMatchObject({ code: 0, stderr: '', stdout: expect.stringMatching(/^policy: +admitted/m) });
      expect(r.code, extra.join(' ')).toBe(125);
      expect(r.stdout).toMatch(/^policy: +refused: ERR_POLICY_DENIED: /m);
      expect(r.stderr).toMatch(verdict);
    };
    await inspected([], /^ERR_POLICY_DENIED: partition \(inspected\): publisher acme grants at most 64 memory pages; the spec asks for 256 \(the default/);
    await inspected(['--memory', '65'], /grants at most 64 memory pages; the spec asks for 65\n$/);
    await inspected(['--memory', '64'], null);
  });

  it('a bad policy file is a usage error naming the file and the field', async () => {
    writeFileSync(path.join(dir, 'bad.json'), JSON.stringify({ publishers: { acme: { keys: [{ file: 'acme.pub' }], grants: { memoryPages: 'lots' } } } }));
    refused(await cli(['run', '--policy', 'bad.json', hello], dir), 'ERR_INVALID_ARGUMENT', 2, /policy file bad.json: publishers.acme.grants.memoryPages: expected an integer/);
    writeFileSync(path.join(dir, 'notjson.json'), '{');
    refused(await cli(['run', '--policy', 'notjson.json', hello], dir), 'ERR_INVALID_ARGUMENT', 2, /policy file notjson.json is not JSON/);
  });

  it('a policy, key or signature file that is a FIFO where no pipe is taken, a device or a directory is a usage error naming it, at once (never waiting on a FIFO)', async () => {
    const fifo = path.join(dir, 'fifo');
    if (!existsSync(fifo)) spawnSync('mkfifo', [fifo]);
    const policyWith = (file: string, name: string) => {
      writeFileSync(path.join(dir, name), JSON.stringify({ publishers: { acme: { keys: [{ file }] } } }));
      return name;
    };
    const cases: [string[], RegExp][] = [
      [['run', '--policy', policyWith('fifo', 'fifo-key.json'), hello], /key file \S*fifo is a FIFO, not a regular file/],
      [['run', '--policy', policyWith('/dev/zero', 'zero-key.json'), hello], /key file \/dev\/zero is a device, not a regular file/],
      [['run', '--policy', policyWith('.', 'dir-key.json'), hello], /key file \S+ is a directory, not a regular file/],
      // The files the command line names may be pipes (test/security/cli-pipes): a device or a directory is still refused.
      [['run', '--policy', '/dev/zero', hello], /policy file \/dev\/zero is a device, not a regular file or a pipe/],
      [['inspect', '--policy', '.', hello], /policy file \. is a directory, not a regular file or a pipe/],
      [['verify', hello, '--key', '/dev/zero'], /key file \/dev\/zero is a device, not a regular file or a pipe/],
      [['sign', hello, '--key', '/dev/zero', '--out', 'never.wasm'], /key file \/dev\/zero is a device, not a regular file or a pipe/],
      [['attest', 'verify', 'report.json', '--key', '/dev/zero'], /key file \/dev\/zero is a device, not a regular file or a pipe/],
      [['run', '--policy', 'policy.json', '--signature', 'fifo', hello], /signature file \S*fifo is a FIFO, not a regular file/],
    ];
    for (const [args, message] of cases) refused(await cli(args, dir), 'ERR_INVALID_ARGUMENT', 2, message);
    // audit verify's key directory: a key that is there but unusable is named, not a check silently left out.
    mkdirSync(path.join(dir, 'fifo-keys'), { recursive: true });
    if (!existsSync(path.join(dir, 'fifo-keys', 'audit.key'))) spawnSync('mkfifo', [path.join(dir, 'fifo-keys', 'audit.key')]);
    refused(await cli(['audit', 'verify', 'wv/audit', '--key-dir', 'fifo-keys'], dir), 'ERR_INVALID_ARGUMENT', 2, /key directory file \S+audit\.key is a FIFO, not a regular file/);
    // A --key-dir that is not there (a typo) is named, not a log 'verified' with every keyed check left out.
    refused(await cli(['audit', 'verify', 'wv/audit', '--key-dir', 'no-such-keys'], dir), 'ERR_INVALID_ARGUMENT', 2, /--key-dir: there is no directory at \S+no-such-keys; see wasmvisor audit verify --help$/m);
    refused(await cli(['audit', 'verify', 'wv/audit', '--key-dir', 'policy.json'], dir), 'ERR_INVALID_ARGUMENT', 2, /--key-dir: there is no directory at \S+policy\.json; see wasmvisor audit verify --help$/m);
  });

  it('every refusal is in the audit log with its code; audit show filters', async () => {
    const show = await cli(['audit', 'show', 'wv/audit', '--outcome', 'denied', '--json'], dir);
    expect(show.code).toBe(0);
    const codes = show.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { code?: string }).code);
    expect(codes).toEqual(expect.arrayContaining(['ERR_INTEGRITY', 'ERR_POLICY_DENIED']));
    const human = await cli(['audit', 'show', 'wv/audit', '--action', 'partition.create', '--outcome', 'success'], dir);
    expect(human.stdout).toMatch(/^#\d+ \S+ cli:\S+ partition.create guest success: admitted \(signature\)$/m);
    // A day its month does not have is refused, not read as the next month's (Date.parse: 2025-02-30 is March 2nd).
    for (const since of ['2025-02-30', '2025-04-31T00:00:00Z', '2023-02-29']) refused(await cli(['audit', 'show', 'wv/audit', '--since', since], dir), 'ERR_INVALID_ARGUMENT', 2, /--since: expected an ISO time/);
    expect((await cli(['audit', 'show', 'wv/audit', '--since', '2024-02-29', '--json'], dir)).code).toBe(0);
    expect((await cli(['audit', 'verify', 'wv/audit'], dir)).stdout).toMatch(/^audit log verified: \d+ records in 1 file \(MACs, chain, \d+ checkpoint signatures, anchor\)$/m);
  });
});

describe('attest verify and audit verify from the command line', () => {
  it('a report from run --attest verifies; a wrong nonce, another key, an edit: the check is named', async () => {
    expect((await cli(['run', '--policy', 'policy.json', '--data-dir', 'wv', '--memory', '64', '--attest', 'report.json', '--nonce', 'abcd', 'ok.wasm'], dir)).code).toBe(0);
    expect((await cli(['attest', 'key', '--data-dir', 'wv', '--out', 'host.pub'], dir)).code).toBe(0);
    const measurement = createHash('sha256').update(readFileSync(path.join(dir, 'ok.wasm'))).digest('hex');
    const ok = await cli(['attest', 'verify', 'report.json', '--key', 'host.pub', '--nonce', 'abcd', '--expect-measurement', measurement], dir);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^host report verified: format, key, signature, nonce, log \(\d+ events\), partitions, expectations$/m);
    refused(await cli(['attest', 'verify', 'report.json', '--key', 'host.pub', '--nonce', 'abce'], dir), 'ERR_INTEGRITY', 125, /^ERR_INTEGRITY: attestation nonce check failed/);
    refused(await cli(['attest', 'verify', 'report.json', '--key', 'acme.pub'], dir), 'ERR_INTEGRITY', 125, /attestation key check failed/);
    refused(await cli(['attest', 'verify', 'report.json', '--key', 'host.pub', '--expect-measurement', '0'.repeat(64)], dir), 'ERR_INTEGRITY', 125, /attestation expectations check failed/);
    const report = JSON.parse(readFileSync(path.join(dir, 'report.json'), 'utf8')) as { events: { data: Record<string, unknown> }[]; time: string };
    report.events[0]!.data['version'] = '9.9.9';
    writeFileSync(path.join(dir, 'edited.json'), JSON.stringify(report));
    refused(await cli(['attest', 'verify', 'edited.json', '--key', 'host.pub'], dir), 'ERR_INTEGRITY', 125, /attestation signature check failed/);
    const { time: _t, ...missing } = report;
    writeFileSync(path.join(dir, 'missing.json'), JSON.stringify(missing));
    refused(await cli(['attest', 'verify', 'missing.json', '--key', 'host.pub'], dir), 'ERR_INTEGRITY', 125, /attestation format check failed: the report is malformed: time: is required/);
  });

  it('a guest report written by the attest guest verifies from the command line', async () => {
    const r = await cli(['run', '--devices', 'console,attestation', '--data-dir', 'wv2', guest('attest'), '--', '0102', 'data'], dir);
    expect(r.code).toBe(0);
    const hex = r.stdout.split('\n').find((l) => l.startsWith('report '))!.slice(7);
    writeFileSync(path.join(dir, 'guest.bin'), Buffer.from(hex, 'hex'));
    expect((await cli(['attest', 'key', '--data-dir', 'wv2', '--out', 'host2.pub'], dir)).code).toBe(0);
    const ok = await cli(['attest', 'verify', 'guest.bin', '--key', 'host2.pub', '--nonce', '0102', '--expect-measurement', createHash('sha256').update(readFileSync(guest('attest'))).digest('hex')], dir);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^guest report verified: certificate, signature, nonce, expectations$/m);
    refused(await cli(['attest', 'verify', 'guest.bin', '--key', 'host2.pub', '--nonce', '0103'], dir), 'ERR_INTEGRITY', 125, /attestation nonce check failed/);
    // --max-age holds a guest report to its age too (it was ignored: a stale report verified).
    const fresh = await cli(['attest', 'verify', 'guest.bin', '--key', 'host2.pub', '--max-age', '3600000'], dir);
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(fresh.stdout).toMatch(/^guest report verified: certificate, signature, freshness$/m);
    await new Promise((resolve) => setTimeout(resolve, 5));
    refused(await cli(['attest', 'verify', 'guest.bin', '--key', 'host2.pub', '--max-age', '1'], dir), 'ERR_INTEGRITY', 125, /^ERR_INTEGRITY: attestation freshness check failed: the report is \d+ ms old, more than 1 ms\n$/);
  });

  it('audit verify names the first bad record of an edited log', async () => {
    const file = path.join(dir, 'wv', 'audit', readdirSync(path.join(dir, 'wv', 'audit'))[0]!);
    const original = readFileSync(file, 'utf8');
    const ls = original.split('\n');
    ls[3] = ls[3]!.replace('"success"', '"failure"');
    writeFileSync(file, ls.join('\n'));
    refused(await cli(['audit', 'verify', 'wv/audit'], dir), 'ERR_INTEGRITY', 125, /^ERR_INTEGRITY: audit log: audit-000001.jsonl line 4 \(seq 4\): its MAC does not verify/);
    writeFileSync(file, original);
    refused(await cli(['audit', 'verify', 'nowhere'], dir), 'ERR_INVALID_ARGUMENT', 2, /there is no audit log directory/);
  });
});

/** What Node's diagnostic reports in `dir` (written by a step stopped for hanging) say: its JS stack and open handles. */
function hangReports(dir: string): string {
  if (!existsSync(dir)) return '';
  return readdirSync(dir)
    .map((file) => {
      const report = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as {
        header?: { commandLine?: string[] };
        javascriptStack?: { message?: string; stack?: string[] };
        libuv?: { type?: string; is_active?: boolean; is_referenced?: boolean }[];
        workers?: unknown[];
      };
      const handles = (report.libuv ?? []).filter((h) => h.is_active).map((h) => `${h.type}${h.is_referenced ? '' : ' (unref)'}`);
      return `report ${file}: ${(report.header?.commandLine ?? []).join(' ')}\n${(report.javascriptStack?.stack ?? []).join('\n')}\nactive handles: ${handles.join(', ')}; worker threads: ${(report.workers ?? []).length}`;
    })
    .join('\n');
}

describe('the README walk-through', () => {
  it('runs exactly as written', () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const block = /<!-- walkthrough:start -->\n```sh\n([\s\S]*?)```\n<!-- walkthrough:end -->/.exec(readme);
    expect(block, 'README.md has a walk-through block').not.toBeNull();
    const work = mkdtempSync(path.join(tmpdir(), 'wv-readme-'));
    // The walk-through starts from the repository: give it the built guests where it expects them.
    symlinkSync(path.join(root, 'build'), path.join(work, 'build'));
    // Each step is traced (with the shell's clock) and has 60 s: a step that hangs is stopped with
    // SIGUSR2, which makes Node write a diagnostic report (its JS stack and open handles), shown below.
    const reports = path.join(work, 'reports');
    mkdirSync(reports);
    const node = `timeout -s USR2 -k 10 60 node --report-on-signal --report-signal=SIGUSR2 --report-directory=${JSON.stringify(reports)}`;
    const script = `set -e\nPS4='+ [\${SECONDS}s] '\nset -x\nnpx() { if [ "$1" = wasmvisor ]; then shift; ${node} ${JSON.stringify(CLI)} "$@"; else command npx "$@"; fi; }\n${block![1]}`;
    const r = spawnSync('bash', ['-c', script], { cwd: work, encoding: 'utf8', timeout: 150_000, env: { ...process.env, NODE_OPTIONS: '' } });
    expect(r.status, `${r.stdout}\n${r.stderr}\n${hangReports(reports)}`).toBe(0);
    expect(r.stdout).toMatch(/valid signature by acme/);
    expect(r.stdout).toMatch(/^Hello from a Wasmvisor partition!$/m);
    expect(r.stdout).toMatch(/^unsigned: refused \(125\)$/m);
    expect(r.stderr).toMatch(/^ERR_INTEGRITY: module sha256:[0-9a-f]{64} is not signed and not pinned by the policy$/m);
    expect(r.stdout).toMatch(/^host report verified: .*nonce.*expectations$/m);
    expect(r.stdout).toMatch(/^audit log verified: /m);
    expect(r.stdout).toMatch(/ partition.create guest denied ERR_INTEGRITY: /);
    expect(existsSync(path.join(work, 'demo-sec', 'wv', 'keys', 'host.key'))).toBe(true);
  });
});
