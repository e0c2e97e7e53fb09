/**
 * The files the local security commands name on the command line may be pipes: `sign --key`,
 * `verify --key`, `attest verify --key` (MAX_KEY_FILE_BYTES) and `--policy` of run, call and
 * inspect (MAX_POLICY_BYTES), as `--key /dev/stdin` or `<(cmd)` (a secret key that never touches
 * the disk). Each is read through host/files.ts up to its bound: exactly the bound is read, one
 * byte more is ERR_INVALID_ARGUMENT (exit 2) naming the file, for a regular file and for a pipe,
 * and a refused sign leaves no output behind. A policy from a pipe resolves the key files it names
 * from the working directory. Real processes (dist/cli.js), run by bash for its pipes.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULT_MAX_MODULE_BYTES } from '../../host/loader/read.ts';
import { MAX_REPORT_BYTES } from '../../host/security/attestation.ts';
import { MAX_KEY_FILE_BYTES } from '../../host/security/keys.ts';
import { MAX_POLICY_BYTES } from '../../host/security/policy.ts';
import { guest } from '../helpers.ts';
import { shell, type CliResult } from '../cli/harness.ts';

vi.setConfig({ testTimeout: 120_000 });

type Result = CliResult;

/** A bash command line in the test's folder, the CLI as `wv`. */
function sh(line: string): Promise<Result> {
  return shell(`wv() { "$NODE" "$CLI" "$@"; }\n${line}`, { cwd: dir, env: { HELLO: hello } });
}

function refused(r: Result, message: RegExp): void {
  expect(r.stdout).toBe('');
  expect(r.stderr).toMatch(/^ERR_INVALID_ARGUMENT: [^\n]*\n$/);
  expect(r.stderr).toMatch(message);
  expect(r.code).toBe(2);
}

let dir: string;
let hello: string;
/** A PEM secret key and its public half, each padded with newlines to `bytes` bytes. */
function pemPair(name: string, bytes: number): void {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  writeFileSync(path.join(dir, `${name}.key`), (privateKey.export({ type: 'pkcs8', format: 'pem' }) as string).padEnd(bytes, '\n'));
  writeFileSync(path.join(dir, `${name}.pub`), (publicKey.export({ type: 'spki', format: 'pem' }) as string).padEnd(bytes, '\n'));
}

beforeAll(async () => {
  hello = guest('hello');
  dir = mkdtempSync(path.join(tmpdir(), 'wv-secpipes-'));
  expect((await sh('wv keygen acme')).code).toBe(0);
  pemPair('edge', MAX_KEY_FILE_BYTES);
  pemPair('past', MAX_KEY_FILE_BYTES + 1);
  writeFileSync(path.join(dir, 'policy.json'), JSON.stringify({ publishers: { acme: { keys: [{ file: 'acme.pub' }] } } }));
});

describe('sign --key and verify --key: a file or a pipe, up to MAX_KEY_FILE_BYTES', () => {
  it('a secret key from a shell pipe (/dev/stdin) or process substitution signs; a public key from a pipe verifies', async () => {
    const piped = await sh('cat acme.key | wv sign "$HELLO" --key /dev/stdin --out piped.wasm');
    expect(piped.stderr).toBe('');
    expect(piped.code).toBe(0);
    const substituted = await sh('wv sign "$HELLO" --key <(cat acme.key) --out substituted.wasm');
    expect(substituted.stderr).toBe('');
    expect(substituted.code).toBe(0);
    for (const f of ['piped.wasm', 'substituted.wasm']) {
      const file = await sh(`wv verify ${f} --key acme.pub`);
      expect(file.stdout, f).toMatch(/^valid signature by acme /);
      // Through a descriptor path the publisher is named after the key, not /dev/stdin or /dev/fd/63.
      const pipe = await sh(`cat acme.pub | wv verify ${f} --key /dev/stdin`);
      const [, name, keyId] = /^valid signature by (\S+) \(key id ([0-9a-f]{24})\)\n/.exec(pipe.stdout) ?? [];
      expect(name, pipe.stdout).toBe(`key-${keyId!.slice(0, 8)}`);
      expect(pipe.code).toBe(0);
      expect((await sh(`wv verify ${f} --key <(cat acme.pub)`)).stdout).toMatch(new RegExp(`^valid signature by key-${keyId!.slice(0, 8)} `));
    }
    // A key from a pipe that does not sign the module: refused as from a file.
    expect((await sh('wv keygen other')).code).toBe(0);
    const other = await sh('wv verify piped.wasm --key <(cat other.pub)');
    expect(other.stderr).toMatch(/^ERR_INTEGRITY: /);
    expect(other.code).toBe(125);
  });

  it('an OpenSSH public key through a descriptor path names its publisher after its comment', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    writeFileSync(path.join(dir, 'alice.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
    const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), raw]);
    writeFileSync(path.join(dir, 'alice.ssh.pub'), `ssh-ed25519 ${blob.toString('base64')} alice@laptop\n`);
    expect((await sh('wv sign "$HELLO" --key alice.key --out alice.wasm')).code).toBe(0);
    for (const line of ['wv verify alice.wasm --key <(cat alice.ssh.pub)', 'wv verify alice.wasm --key /dev/stdin < alice.ssh.pub']) {
      const r = await sh(line);
      expect(r.stdout, line).toMatch(/^valid signature by alice_laptop \(key id [0-9a-f]{24}\)\n/);
      expect(r.code).toBe(0);
    }
    // From a file it is the file's name, as before; two keys with one comment stay apart.
    expect((await sh('wv verify alice.wasm --key alice.ssh.pub')).stdout).toMatch(/^valid signature by alice\.ssh /);
    const two = await sh('wv verify alice.wasm --key <(cat acme.pub) --key <(cat alice.ssh.pub)');
    expect(two.stdout).toMatch(/^valid signature by alice_laptop /);
    // A base name longer than a publisher name may be is cut (it was refused as an unknown policy key).
    const long = 'a'.repeat(70);
    const cut = await sh(`cp alice.ssh.pub ${long}.pub && wv verify alice.wasm --key ${long}.pub`);
    expect(cut.stdout).toMatch(new RegExp(`^valid signature by ${'a'.repeat(56)} `));
    expect(cut.code).toBe(0);
  });

  it('exactly the bound is read, from a file and from a pipe; one byte more is refused naming the file, and nothing is written', async () => {
    for (const [line, out] of [
      ['wv sign "$HELLO" --key edge.key --out edge-file.wasm', 'edge-file.wasm'],
      ['cat edge.key | wv sign "$HELLO" --key /dev/stdin --out edge-pipe.wasm', 'edge-pipe.wasm'],
    ] as const) {
      const r = await sh(line);
      expect(r.stderr, line).toBe('');
      expect(r.code).toBe(0);
      expect((await sh(`wv verify ${out} --key edge.pub`)).code).toBe(0);
      expect((await sh(`cat edge.pub | wv verify ${out} --key /dev/stdin`)).code).toBe(0);
    }
    refused(await sh('wv sign "$HELLO" --key past.key --out past-file.wasm'), new RegExp(`key file past\\.key is ${MAX_KEY_FILE_BYTES + 1} bytes, over the ${MAX_KEY_FILE_BYTES}-byte limit`));
    refused(await sh('cat past.key | wv sign "$HELLO" --key /dev/stdin --out past-pipe.wasm'), new RegExp(`key file /dev/stdin gave more than ${MAX_KEY_FILE_BYTES} bytes, over the ${MAX_KEY_FILE_BYTES}-byte limit`));
    refused(await sh('wv sign "$HELLO" --key <(cat past.key) --detached past.sig'), new RegExp(`key file /dev/fd/\\d+ gave more than ${MAX_KEY_FILE_BYTES} bytes`));
    for (const f of ['past-file.wasm', 'past-pipe.wasm', 'past.sig']) expect(existsSync(path.join(dir, f)), f).toBe(false);
    refused(await sh('wv verify edge-file.wasm --key past.pub'), new RegExp(`key file past\\.pub is ${MAX_KEY_FILE_BYTES + 1} bytes, over the ${MAX_KEY_FILE_BYTES}-byte limit`));
    refused(await sh('cat past.pub | wv verify edge-file.wasm --key /dev/stdin'), new RegExp(`key file /dev/stdin gave more than ${MAX_KEY_FILE_BYTES} bytes`));
  });

  it('a pipe that never ends (`yes |`) is refused at the bound, not read whole', async () => {
    refused(await sh('yes | wv sign "$HELLO" --key /dev/stdin --out never.wasm'), new RegExp(`key file /dev/stdin gave more than ${MAX_KEY_FILE_BYTES} bytes`));
    expect(existsSync(path.join(dir, 'never.wasm'))).toBe(false);
  });
});

describe('attest verify --key: a file or a pipe, up to MAX_KEY_FILE_BYTES', () => {
  it('the host key from a pipe verifies a report; one byte past the bound is refused', async () => {
    expect((await sh('wv run --data-dir wv --attest report.json --nonce abcd "$HELLO"')).code).toBe(0);
    expect((await sh('wv attest key --data-dir wv --out host.pub')).code).toBe(0);
    const ok = await sh('wv attest key --data-dir wv | wv attest verify report.json --key /dev/stdin --nonce abcd');
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toMatch(/^host report verified: /);
    expect(ok.code).toBe(0);
    expect((await sh('wv attest verify report.json --key <(cat host.pub) --nonce abcd')).code).toBe(0);
    // The hex the command prints, padded with spaces to exactly the bound, and one byte more.
    const edge = await sh(`{ wv attest key --data-dir wv | tr -d '\\n'; head -c $(( ${MAX_KEY_FILE_BYTES} - 66 )) /dev/zero | tr '\\0' ' '; } | wv attest verify report.json --key /dev/stdin`);
    expect(edge.stderr).toBe('');
    expect(edge.code).toBe(0);
    refused(
      await sh(`{ wv attest key --data-dir wv | tr -d '\\n'; head -c $(( ${MAX_KEY_FILE_BYTES} - 65 )) /dev/zero | tr '\\0' ' '; } | wv attest verify report.json --key /dev/stdin`),
      new RegExp(`key file /dev/stdin gave more than ${MAX_KEY_FILE_BYTES} bytes, over the ${MAX_KEY_FILE_BYTES}-byte limit`),
    );
  });
});

describe('--policy: a file or a pipe, up to MAX_POLICY_BYTES', () => {
  it('a policy from a pipe admits what the same file admits; its relative key files resolve from the working directory', async () => {
    expect((await sh('wv sign "$HELLO" --key acme.key --out ok.wasm')).code).toBe(0);
    const file = await sh('wv run --policy policy.json --data-dir wv ok.wasm');
    expect(file.stdout).toMatch(/^Hello from a Wasmvisor partition!\n/);
    const piped = await sh('cat policy.json | wv run --policy /dev/stdin --data-dir wv ok.wasm');
    expect(piped.stderr).toBe('');
    expect(piped.stdout).toBe(file.stdout);
    expect(piped.code).toBe(0);
    const unsigned = await sh('wv run --policy <(cat policy.json) --data-dir wv "$HELLO"');
    expect(unsigned.stderr).toMatch(/^ERR_INTEGRITY: .*is not signed and not pinned by the policy/);
    expect(unsigned.code).toBe(125);
    // From a folder without acme.pub: the key file is looked for there, not beside the pipe.
    const elsewhere = await sh('mkdir -p sub && cd sub && wv inspect --policy <(cat ../policy.json) ../ok.wasm');
    expect(elsewhere.stderr).toMatch(new RegExp(`^ERR_INVALID_ARGUMENT: policy \\S+: publishers\\.acme\\.keys\\[0\\]\\.file: cannot read key file ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/sub/acme\\.pub: ENOENT`));
    expect(elsewhere.code).toBe(2);
    const inspected = await sh('wv inspect --policy <(cat policy.json) ok.wasm');
    expect(inspected.stdout).toMatch(/^policy: +admitted/m);
    expect(inspected.code).toBe(0);
  });

  it('/dev/stdin redirected from a file (`< policy.json`) resolves as the same pipe would: from the working directory, not /dev', async () => {
    expect((await sh('wv sign "$HELLO" --key acme.key --out ok.wasm')).code).toBe(0);
    // The shell gives the file itself as descriptor 0: a regular file, reached through /dev/stdin.
    for (const line of ['wv inspect --policy /dev/stdin ok.wasm < policy.json', 'wv run --policy /dev/stdin --data-dir wv ok.wasm < policy.json']) {
      const r = await sh(line);
      expect(r.stderr, line).toBe('');
      expect(r.code, line).toBe(0);
    }
    // Its key file is looked for in the working directory, as for a pipe (it was /dev/acme.pub).
    const elsewhere = await sh('mkdir -p sub2 && cd sub2 && wv inspect --policy /dev/stdin ../ok.wasm < ../policy.json');
    expect(elsewhere.stderr).toMatch(new RegExp(`^ERR_INVALID_ARGUMENT: policy \\S+: publishers\\.acme\\.keys\\[0\\]\\.file: cannot read key file ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/sub2/acme\\.pub: ENOENT`));
    expect(elsewhere.code).toBe(2);
  });

  it('exactly the bound is read, from a file and from a pipe; one byte more is refused naming the file', async () => {
    const doc = JSON.stringify({ publishers: { acme: { keys: [{ file: 'acme.pub' }] } } });
    writeFileSync(path.join(dir, 'edge.json'), doc.padEnd(MAX_POLICY_BYTES, ' '));
    writeFileSync(path.join(dir, 'past.json'), doc.padEnd(MAX_POLICY_BYTES + 1, ' '));
    for (const line of ['wv inspect --policy edge.json ok.wasm', 'cat edge.json | wv inspect --policy /dev/stdin ok.wasm', 'wv inspect --policy <(cat edge.json) ok.wasm']) {
      const r = await sh(line);
      expect(r.stderr, line).toBe('');
      expect(r.stdout, line).toMatch(/^policy: +admitted/m);
    }
    refused(await sh('wv inspect --policy past.json ok.wasm'), new RegExp(`policy file past\\.json is ${MAX_POLICY_BYTES + 1} bytes, over the ${MAX_POLICY_BYTES}-byte limit`));
    refused(await sh('cat past.json | wv run --policy /dev/stdin ok.wasm'), new RegExp(`policy file /dev/stdin gave more than ${MAX_POLICY_BYTES} bytes, over the ${MAX_POLICY_BYTES}-byte limit`));
    refused(await sh('wv call --policy <(cat past.json) ok.wasm run'), new RegExp(`policy file /dev/fd/\\d+ gave more than ${MAX_POLICY_BYTES} bytes`));
  });
});

describe('what verify, sign and attest verify read once may be a pipe, up to the same bound with the same error code', () => {
  it('attest verify: a report from a named FIFO, a shell pipe or <(…) verifies; one larger than any report is ERR_INTEGRITY (the format check) from a pipe as from a file', async () => {
    expect((await sh('wv run --data-dir wv2 --attest r2.json --nonce 0a0b "$HELLO" && wv attest key --data-dir wv2 --out host2.pub')).code).toBe(0);
    for (const line of [
      'rm -f r2.fifo && mkfifo r2.fifo && { cat r2.json > r2.fifo & } && wv attest verify r2.fifo --key host2.pub --nonce 0a0b',
      'cat r2.json | wv attest verify /dev/stdin --key host2.pub --nonce 0a0b',
      'wv attest verify <(cat r2.json) --key <(cat host2.pub) --nonce 0a0b',
    ]) {
      const r = await sh(line);
      expect(r.stderr, line).toBe('');
      expect(r.stdout, line).toMatch(/^host report verified: format, key, signature, nonce, /);
      expect(r.code).toBe(0);
    }
    const tooBig = (r: Result, message: RegExp) => {
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^ERR_INTEGRITY: attestation format check failed: [^\n]*\n$/);
      expect(r.stderr).toMatch(message);
      expect(r.code).toBe(125);
    };
    tooBig(await sh(`truncate -s ${MAX_REPORT_BYTES + 1} big.json && wv attest verify big.json --key host2.pub`), new RegExp(`report file big\\.json is ${MAX_REPORT_BYTES + 1} bytes, over the ${MAX_REPORT_BYTES}-byte limit`));
    tooBig(await sh('yes | wv attest verify /dev/stdin --key host2.pub'), new RegExp(`report file /dev/stdin gave more than ${MAX_REPORT_BYTES} bytes, over the ${MAX_REPORT_BYTES}-byte limit`));
    // Not readable: a bad argument (2), as before.
    refused(await sh('wv attest verify . --key host2.pub'), /report file \. is a directory, not a regular file or a pipe/);
    refused(await sh('wv attest verify /dev/zero --key host2.pub'), /report file \/dev\/zero is a device, not a regular file or a pipe/);
  });

  it('verify: the module and --signature from pipes; sign: the module from a pipe with --out or --detached; a module over the cap from a pipe is ERR_MODULE_INVALID, as from a file', async () => {
    const signed = await sh('cat "$HELLO" | wv sign /dev/stdin --key acme.key --out from-pipe.wasm');
    expect(signed.stderr).toBe('');
    expect(signed.code).toBe(0);
    expect((await sh('wv verify from-pipe.wasm --key acme.pub')).stdout).toMatch(/^valid signature by acme /);
    const piped = await sh('cat from-pipe.wasm | wv verify /dev/stdin --key acme.pub');
    expect(piped.stdout).toMatch(/^valid signature by acme .*\nsha256: [0-9a-f]{64}\n$/);
    expect(piped.code).toBe(0);
    expect((await sh('wv sign <(cat "$HELLO") --key acme.key --detached d.sig')).code).toBe(0);
    const detached = await sh('rm -f m.fifo && mkfifo m.fifo && { cat "$HELLO" > m.fifo & } && wv verify m.fifo --key acme.pub --signature <(cat d.sig)');
    expect(detached.stderr).toBe('');
    expect(detached.stdout).toMatch(/^valid signature by acme /);
    // Through a pipe a module has no name for <module>.signed.wasm: --out or --detached is needed.
    refused(await sh('cat "$HELLO" | wv sign /dev/stdin --key acme.key'), /sign \/dev\/stdin: a module read through a pipe needs --out <file> or --detached <file>/);
    const cap = DEFAULT_MAX_MODULE_BYTES;
    for (const [line, message] of [
      [`truncate -s ${cap + 1} big.wasm && wv verify big.wasm --key acme.pub`, `module file big\\.wasm is ${cap + 1} bytes, over the ${cap}-byte limit`],
      ['yes | wv verify /dev/stdin --key acme.pub', `module file /dev/stdin gave more than ${cap} bytes, over the ${cap}-byte limit`],
      ['yes | wv sign /dev/stdin --key acme.key --out never.wasm', `module file /dev/stdin gave more than ${cap} bytes`],
    ] as const) {
      const r = await sh(line);
      expect(r.stdout, line).toBe('');
      expect(r.stderr, line).toMatch(new RegExp(`^ERR_MODULE_INVALID: ${message}`));
      expect(r.code, line).toBe(125);
    }
    expect(existsSync(path.join(dir, 'never.wasm'))).toBe(false);
    refused(await sh('wv verify from-pipe.wasm --key acme.pub --signature /dev/zero'), /signature file \/dev\/zero is a device, not a regular file or a pipe/);
  });
});
