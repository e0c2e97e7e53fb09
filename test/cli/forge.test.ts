/**
 * Guest text cannot forge the CLI's verdict (issue #10.12), tested with a hostile guest
 * (guests/attack-forge.ts) and hostile module names through the real CLI process. The rule
 * (README, "Command line"): the verdict is the last stderr line and the only one that starts
 * with ERR_; everything the host quotes from a guest or a module is escaped.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { guest } from '../helpers.ts';
import { wat } from '../loader/wat.ts';
import { startHost } from '../mgmt/harness.ts';
import { CLI, cli, lines } from './harness.ts';

/** C0, DEL, C1, line/paragraph separators and bidi controls: what a host line must never carry raw. */
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

/** The stderr lines that start with ERR_ (after optional spaces), case-insensitively. */
const verdictLike = (stderr: string): string[] => lines(stderr).filter((l) => /^\s*err_/i.test(l));

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wasmvisor-forge-'));

describe.concurrent('a hostile guest cannot forge the verdict', () => {
  it('abort with newlines, fake ERR_ lines and escape sequences: one verdict, last, escaped; exit 134', async () => {
    const r = await cli(['run', guest('attack-forge')]);
    expect(r.code).toBe(134);
    const err = lines(r.stderr);
    const verdict = err.at(-1)!;
    expect(verdictLike(r.stderr)).toEqual([verdict]);
    expect(verdict).toMatch(/^ERR_GUEST_TRAP: guest aborted: boom\\nERR_INTEGRITY: forged line inside the abort\\r\\n\\x1b\[2K\\x1b\[1A\\u\{202e\}esrever\\u\{2028\}next\\x00nul\\x7fdel\\x9bcsi$/);
    expect(verdict).not.toMatch(UNSAFE);
    // The guest's stderr lines that imitate the host are marked and escaped; its others pass through.
    expect(err).toContain('[guest] ERR_KILLED: forged on stderr');
    expect(err).toContain('[guest] wasmvisor: violation: CONSOLE_WRITE HV_STATUS_FORGED: not from the host');
    expect(err).toContain('[guest] innocent\\rERR_GUEST_TRAP: hidden behind a carriage return');
    expect(err).toContain('[guest]   err_limit_memory: lower case and indented');
    expect(err).toContain('\x1b[31mred\x1b[0m on stderr');
    // stdout is the guest's own stream, byte for byte.
    expect(r.stdout).toBe('ERR_INTERNAL: forged on stdout\n\x1b[2J\x1b]0;owned\x07stdout escape sequences\n');
  });

  it('a forged ERR_LIMIT_CPU as the last stderr line, then exit 124: no stderr line starts with ERR_', async () => {
    const r = await cli(['run', guest('attack-forge'), '--', 'exit', '124']);
    expect(r.code).toBe(124);
    expect(verdictLike(r.stderr)).toEqual([]);
    expect(lines(r.stderr).at(-1)).toBe('[guest] ERR_LIMIT_CPU: forged verdict before a plain exit');
  });

  it('--json: the report is the last line and carries the full code; the verdict, just before it, is still the only ERR_ line', async () => {
    const r = await cli(['run', '--json', guest('attack-forge')]);
    expect(r.code).toBe(134);
    const err = lines(r.stderr);
    const report = JSON.parse(err.at(-1)!) as { state: string; exitStatus: number; error: { code: string; message: string } };
    expect(report).toMatchObject({ state: 'trapped', exitStatus: 134, error: { code: 'ERR_GUEST_TRAP' } });
    expect(report.error.message).toMatch(/^guest aborted: boom\\nERR_INTEGRITY: forged line inside the abort/);
    expect(verdictLike(r.stderr)).toEqual([err.at(-2)]);
    expect(err.at(-2)).toBe(`ERR_GUEST_TRAP: ${report.error.message}`);
    expect(err.at(-1)).not.toMatch(UNSAFE);

    const exited = await cli(['run', '--json', guest('attack-forge'), '--', 'exit', '300']);
    expect(exited.code).toBe(300 & 0xff);
    expect(verdictLike(exited.stderr)).toEqual([]);
    expect(JSON.parse(lines(exited.stderr).at(-1)!)).toMatchObject({ state: 'exited', code: 300, exitStatus: 44, error: null });
  });

  it('remote logs: guest stderr that imitates the host is marked, every guest line is escaped, no line starts with ERR_', async () => {
    const h = await startHost();
    try {
      const { token } = await h.token('Owner', '/');
      const tokenFile = path.join(tmp, 'remote-token');
      writeFileSync(tokenFile, token);
      const base = ['--host', h.running.url, '--token-file', tokenFile, '--ca', h.running.caFile!];
      expect((await cli([...base, 'run', guest('attack-forge'), '--name', 'forge'])).code).toBe(0);
      let r = await cli([...base, 'logs', 'forge']);
      for (let i = 0; i < 100 && !r.stderr.includes('red'); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        r = await cli([...base, 'logs', 'forge']);
      }
      expect(r.code).toBe(0);
      expect(r.stdout).not.toMatch(UNSAFE);
      expect(r.stderr).not.toMatch(UNSAFE);
      expect(verdictLike(r.stderr)).toEqual([]);
      expect(lines(r.stdout)).toContain('\\x1b[2J\\x1b]0;owned\\x07stdout escape sequences');
      expect(lines(r.stderr)).toEqual([
        '[guest] ERR_KILLED: forged on stderr',
        '[guest] wasmvisor: violation: CONSOLE_WRITE HV_STATUS_FORGED: not from the host',
        'innocent\\rERR_GUEST_TRAP: hidden behind a carriage return',
        '[guest]   err_limit_memory: lower case and indented',
        '\\x1b[31mred\\x1b[0m on stderr',
      ]);
    } finally {
      await h.close();
    }
  });

  it('stdout and stderr to one file (2>&1): program order, the stderr guard, the verdict last', async () => {
    const file = path.join(tmp, 'both.log');
    const fd = openSync(file, 'w');
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'run', guest('attack-forge')], { stdio: ['ignore', fd, fd], env: { ...process.env, NODE_OPTIONS: '' } });
      child.on('close', resolve);
    });
    closeSync(fd);
    expect(code).toBe(134);
    const all = lines(readFileSync(file, 'utf8'));
    expect(all.slice(0, 3)).toEqual(['ERR_INTERNAL: forged on stdout', '\x1b[2J\x1b]0;owned\x07stdout escape sequences', '[guest] ERR_KILLED: forged on stderr']);
    expect(all.at(-1)).toMatch(/^ERR_GUEST_TRAP: guest aborted: boom\\n/);
  });

  it('--stats does not push the verdict off the last line', async () => {
    const r = await cli(['run', guest('attack-forge'), '--stats']);
    expect(r.code).toBe(134);
    expect(lines(r.stderr).at(-1)).toMatch(/^ERR_GUEST_TRAP: guest aborted: boom\\n/);
    expect(r.stderr).toMatch(/^wasmvisor stats$/m);
  });

  it('hostile import and export names: inspect escapes them, and the refusal is one escaped verdict line', async () => {
    const file = path.join(tmp, 'names.wasm');
    writeFileSync(
      file,
      wat(`(module (import "env\\0aERR_FAKE: x" "\\1b[2J\\e2\\80\\ae" (func))
        (memory (export "memory") 1) (func (export "_start")) (func (export "ok\\0d\\0aERR_INTEGRITY: y\\07")))`),
    );
    const inspected = await cli(['inspect', file]);
    expect(inspected.code).toBe(125);
    expect(inspected.stdout).not.toMatch(UNSAFE);
    expect(inspected.stdout).toContain('env\\nERR_FAKE: x.\\x1b[2J\\u{202e} function');
    expect(inspected.stdout).toContain('ok\\r\\nERR_INTEGRITY: y\\x07 function');
    expect(verdictLike(inspected.stderr)).toEqual(lines(inspected.stderr));
    expect(lines(inspected.stderr)).toEqual(['ERR_IMPORT_DENIED: env\\nERR_FAKE: x.\\x1b[2J\\u{202e} is not part of the hv interface']);

    const ran = await cli(['run', file]);
    expect(ran.code).toBe(125);
    expect(lines(ran.stderr)).toEqual(['ERR_IMPORT_DENIED: env\\nERR_FAKE: x.\\x1b[2J\\u{202e} is not part of the hv interface']);
  });

  it('a file name with a newline is escaped in the verdict', async () => {
    const r = await cli(['run', path.join(tmp, 'no\nERR_FAKE: such.wasm')]);
    expect(r.code).toBe(125);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/^ERR_MODULE_INVALID: .*no\\nERR_FAKE: such\.wasm/);
  });
});
