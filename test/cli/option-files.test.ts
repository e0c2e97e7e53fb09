/**
 * Files named by the remote client's options (`--token-file`, `--ca`, `--cert`, `--key`, the
 * module of `run`): read through host/files.ts, bounded per kind (OPTION_FILE_BYTES, the API's
 * MAX_MODULE_BYTES), a pipe accepted (`--token-file /dev/stdin`, `<(cmd)`) and bounded too; over
 * a bound is ERR_INVALID_ARGUMENT (exit 2) naming the option and the file, before any connection.
 * And the reader's `pipes` mode itself, on named FIFOs with real writer processes.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, ftruncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRegularFile, readRegularFileSync } from '../../host/files.ts';
import { OPTION_FILE_BYTES } from '../../host/cli/mgmt-args.ts';
import { MAX_MODULE_BYTES } from '../../host/mgmt/schemas.ts';
import { startHost, type Harness } from '../mgmt/harness.ts';
import { cli, shell } from './harness.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'wv-option-files-'));
/** Nothing listens there: a command that got past reading its files ends with ERR_CONNECTION (69). */
const NOWHERE = ['--host', 'https://127.0.0.1:1', '--fingerprint', 'AB'.repeat(32)];

function file(name: string, bytes: number, fill = 'a'): string {
  const f = path.join(tmp, name);
  writeFileSync(f, fill.repeat(bytes));
  return f;
}

describe('remote client option files: bounded, typed, before any connection', () => {
  it('--token-file: at its bound it is read (the command goes on to connect); one byte past is ERR_INVALID_ARGUMENT naming it, exit 2', async () => {
    const max = OPTION_FILE_BYTES['token-file'];
    const edge = await cli([...NOWHERE, '--token-file', file('token-edge', max), 'ps']);
    expect(edge.stderr).toMatch(/^ERR_CONNECTION: /);
    expect(edge.code).toBe(69);
    const past = file('token-past', max + 1);
    const r = await cli([...NOWHERE, '--token-file', past, 'ps']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`ERR_INVALID_ARGUMENT: --token-file ${past} is ${max + 1} bytes, over the ${max}-byte limit\n`);
  });

  it('--ca, --cert, --key: one byte past 1 MiB is refused naming the option and the file', async () => {
    const token = file('token', 10);
    const big = file('big.pem', OPTION_FILE_BYTES.ca + 1);
    const small = file('small.pem', 10);
    for (const [args, option] of [
      [['--ca', big], '--ca'],
      [['--cert', big, '--key', small], '--cert'],
      [['--cert', small, '--key', big], '--key'],
    ] as const) {
      const r = await cli([...NOWHERE, '--token-file', token, ...args, 'ps']);
      expect(r.code, option).toBe(2);
      expect(r.stderr).toBe(`ERR_INVALID_ARGUMENT: ${option} ${big} is ${OPTION_FILE_BYTES.ca + 1} bytes, over the ${OPTION_FILE_BYTES.ca}-byte limit\n`);
    }
  });

  it('a directory or a missing file is ERR_INVALID_ARGUMENT naming the option', async () => {
    let r = await cli([...NOWHERE, '--token-file', tmp, 'ps']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`ERR_INVALID_ARGUMENT: --token-file ${tmp} is a directory, not a regular file or a pipe\n`);
    r = await cli([...NOWHERE, '--token-file', path.join(tmp, 'nope'), 'ps']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ERR_INVALID_ARGUMENT: cannot read --token-file .*nope: ENOENT/);
  });

  it('run: a module over what the API takes is refused by its size before it is read or sent', async () => {
    const f = path.join(tmp, 'huge.wasm');
    const fd = openSync(f, 'w');
    ftruncateSync(fd, MAX_MODULE_BYTES + 1); // sparse: nothing is written
    closeSync(fd);
    const r = await cli([...NOWHERE, '--token-file', file('token2', 10), 'run', f, '--name', 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`ERR_INVALID_ARGUMENT: module file ${f} is ${MAX_MODULE_BYTES + 1} bytes, over the ${MAX_MODULE_BYTES}-byte limit\n`);
  });
});

describe('remote client option files: pipes', () => {
  let h: Harness;
  let token: string;
  beforeAll(async () => {
    h = await startHost();
    token = (await h.token('Owner', '/')).token;
  }, 30_000);
  afterAll(async () => {
    await h?.close();
  });

  it('--token-file /dev/stdin (a shell pipe) and <(cmd) (process substitution) are read, and the token works', async () => {
    const env = { URL: h.running.url, CA: h.running.caFile!, TOKEN: token };
    const piped = await shell('printf "%s\\n" "$TOKEN" | "$NODE" "$CLI" --host "$URL" --ca "$CA" --token-file /dev/stdin ps --json', { env });
    expect(piped.stderr).toBe('');
    expect(piped.code).toBe(0);
    const substituted = await shell('"$NODE" "$CLI" --host "$URL" --ca <(cat "$CA") --token-file <(printf "%s" "$TOKEN") ps --json', { env });
    expect(substituted.stderr).toBe('');
    expect(substituted.code).toBe(0);
  });

  it('a pipe that gives more than the bound is refused, not read whole (`yes |`)', async () => {
    // A command line that is right (a host and how to verify it): the file is read only then.
    const r = await shell(`yes | "$NODE" "$CLI" --host https://127.0.0.1:1 --fingerprint ${'AA'.repeat(32)} --token-file /dev/stdin ps`);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^ERR_INVALID_ARGUMENT: --token-file /dev/stdin gave more than ${OPTION_FILE_BYTES['token-file']} bytes, over the ${OPTION_FILE_BYTES['token-file']}-byte limit\\n$`));
  });
});

describe('host/files.ts: the pipes mode on named FIFOs', () => {
  /** A FIFO and a writer process that opens it (waiting for a reader, as writers do) and writes `bytes` bytes. */
  function fifoWith(name: string, bytes: number) {
    const f = path.join(tmp, name);
    execFileSync('mkfifo', [f]);
    const writer = spawn('sh', ['-c', `head -c ${bytes} /dev/zero | tr '\\0' 'z' > "$0"`, f], { stdio: 'ignore' });
    const done = new Promise<void>((resolve) => writer.on('close', () => resolve()));
    return { f, done };
  }

  it('reads a FIFO whole, waiting for its writer (sync and async), up to the bound', async () => {
    const a = fifoWith('sync.fifo', 4096);
    expect(readRegularFileSync(a.f, { maxBytes: 4096, what: 'token file', pipes: true })).toEqual(Buffer.alloc(4096, 'z'));
    await a.done;
    // More than the first buffer (64 KiB) and exactly at the bound: the buffer grows, nothing is lost.
    const b = fifoWith('async.fifo', 200_000);
    expect(await readRegularFile(b.f, { maxBytes: 200_000, what: 'module file', pipes: true })).toEqual(Buffer.alloc(200_000, 'z'));
    await b.done;
  });

  it('one byte past the bound is refused naming the file, sync and async', async () => {
    const a = fifoWith('past-sync.fifo', 4097);
    expect(() => readRegularFileSync(a.f, { maxBytes: 4096, what: 'token file', pipes: true })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: `token file ${a.f} gave more than 4096 bytes, over the 4096-byte limit` }),
    );
    await a.done;
    const b = fifoWith('past-async.fifo', 70_000);
    await expect(readRegularFile(b.f, { maxBytes: 69_999, what: 'module file', pipes: true })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: `module file ${b.f} gave more than 69999 bytes, over the 69999-byte limit` });
    await b.done;
  });

  it('without `pipes` a FIFO is refused at once, as before', () => {
    const f = path.join(tmp, 'plain.fifo');
    execFileSync('mkfifo', [f]);
    expect(() => readRegularFileSync(f, { maxBytes: 10, what: 'policy file' })).toThrow(`policy file ${f} is a FIFO, not a regular file`);
  });
});
