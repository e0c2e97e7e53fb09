/**
 * WASI stdio and the console are byte streams: what the guest writes is what the reader gets,
 * byte for byte, in order, at any size; a slow reader slows the guest (backpressure), never
 * loses bytes; a rate limit drops only what it refuses, says so to the guest (EAGAIN), and
 * reports every refused byte; a reader that goes away is EPIPE for the guest and a quiet end for
 * the CLI. Through the library and through the real CLI (dist/cli.js), with guests/c/stream.wasm.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Hypervisor, type PartitionExit } from '../../host/index.ts';
import { PLACEMENT, guest, hypervisor } from '../helpers.ts';
import { wat } from '../loader/wat.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CLI = path.join(root, 'dist/cli.js');
const STREAM = path.join(root, 'guests/c/stream.wasm');

/** The bytes `stream gen <n>` writes: byte i = (i*31 + (i >> 10)) & 255. */
function pattern(from: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let k = 0; k < n; k++) {
    const i = from + k;
    b[k] = (i * 31 + Math.floor(i / 1024)) & 255;
  }
  return b;
}

/** SHA-256 of `stream gen <total>`'s output, computed here in pieces. */
function patternSha(total: number): string {
  const h = createHash('sha256');
  for (let at = 0; at < total; at += 1 << 20) h.update(pattern(at, Math.min(1 << 20, total - at)));
  return h.digest('hex');
}

/** What `stream bytes` writes. */
function everyByte(): Buffer {
  const parts: number[] = [];
  for (let r = 0; r < 4; r++) for (let b = 0; b < 256; b++) parts.push(b);
  return Buffer.concat([Buffer.from(parts), Buffer.from([0x0d, 0x0a, 0xff]), Buffer.alloc(70000, 'a')]);
}

interface Cli {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs the CLI; stdout kept as bytes. `stdoutLimit`: stop reading (close our end) after that many bytes. */
function cli(args: string[], opts: { input?: Buffer; stdoutLimit?: number; hashStdout?: boolean; pauseStdoutMs?: number } = {}): Promise<Cli & { sha?: string; length: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'], timeout: 120_000, killSignal: 'SIGKILL' });
    const chunks: Buffer[] = [];
    const hash = createHash('sha256');
    let length = 0;
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      length += c.length;
      if (opts.hashStdout) hash.update(c);
      else chunks.push(c);
      if (opts.stdoutLimit !== undefined && length >= opts.stdoutLimit) child.stdout.destroy();
    });
    if (opts.pauseStdoutMs !== undefined) {
      // A reader that stops for a while: the pipe fills, and the CLI must hold the guest back.
      child.stdout.pause();
      setTimeout(() => child.stdout.resume(), opts.pauseStdoutMs);
    }
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.stdin.on('error', () => {});
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({ code, stdout: Buffer.concat(chunks), stderr, length, ...(opts.hashStdout ? { sha: hash.digest('hex') } : {}) }),
    );
    child.stdin.end(opts.input ?? Buffer.alloc(0));
  });
}

/** A stream.wasm partition in the library; output collected from `output` events. */
async function lib(args: string[], options: { rateLimit?: object; slowReader?: boolean; stdin?: Buffer } = {}) {
  const hv = hypervisor();
  try {
    const p = await hv.createPartition({
      name: 'stream',
      module: STREAM,
      // The clock lets `stream flood` wait for a rate limit's refill before it reports.
      devices: { console: options.rateLimit ? { rateLimit: options.rateLimit } : true, clock: true },
      limits: { timeoutMs: 60_000 },
      wasi: { args: ['stream', ...args], ...(options.stdin ? {} : { stdin: 'none' }) },
    });
    const stdout: Buffer[] = [];
    let stderr = '';
    const dropped: { stream: string; bytes: number }[] = [];
    p.on('dropped', (d) => dropped.push(d));
    p.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    if (options.slowReader) {
      // A reader slower than the guest: one chunk every 2 ms. The guest must wait for it.
      const out = p.stdout;
      out.on('readable', function pull() {
        const c = out.read(4096) as Buffer | null;
        if (c !== null) {
          stdout.push(c);
          setTimeout(pull, 2);
        }
      });
    } else {
      p.on('output', (chunk, stream) => stream === 'stdout' && stdout.push(Buffer.from(chunk)));
    }
    await p.start();
    if (options.stdin) p.stdin.end(options.stdin);
    const exit: PartitionExit = await p.exited;
    if (options.slowReader) await new Promise((r) => p.stdout.once('end', r).resume());
    return { exit, stdout: Buffer.concat(stdout), stderr, dropped };
  } finally {
    await hv.close();
  }
}

describe('console byte streams through the library', () => {
  it('every byte value, \\r\\n, \\xff and a 70000-byte unterminated line arrive exactly, with no newline added', async () => {
    const r = await lib(['bytes']);
    expect(r.exit).toMatchObject({ state: 'exited', code: 0 });
    expect(r.stdout.equals(everyByte())).toBe(true);
    expect(r.exit.metrics.console.bytesOut).toBe(everyByte().length);
  });

  it('the console event still gives lines: long runs in pieces of maxLineBytes, nothing lost', async () => {
    const hv = hypervisor();
    const p = await hv.createPartition({ name: 'lines', module: STREAM, devices: { console: true }, wasi: { args: ['stream', 'bytes'], stdin: 'none' } });
    const lines: string[] = [];
    p.on('console', (line) => lines.push(line));
    await p.start();
    await p.exited;
    await hv.close();
    // 4 x 256 bytes hold 4 newlines, then "\r\n" ends a fifth line; the last line, 0xff and 70000
    // 'a', comes in pieces of 4096 bytes (the default maxLineBytes): 0xff + 4095 'a', 16 x 4096 'a', the rest.
    expect(lines).toHaveLength(5 + 18);
    expect(lines[4]!.endsWith('\r')).toBe(true);
    expect(lines[5]).toBe('\ufffd' + 'a'.repeat(4095));
    expect(lines.slice(6, 22)).toEqual(Array(16).fill('a'.repeat(4096)));
    expect(lines[22]).toBe('a'.repeat(70001 - 17 * 4096));
  });

  it('a slow reader slows the guest (backpressure): 8 MiB in 64 KiB writes, zero loss, and the guest waited', async () => {
    const total = 8 << 20;
    const r = await lib(['gen', String(total)], { slowReader: true });
    // The reason and message are in the comparison so that a failure says why the run ended.
    expect({ state: r.exit.state, code: r.exit.code, reason: r.exit.reason, message: r.exit.error?.message }).toMatchObject({ state: 'exited', code: 0 });
    expect(r.stdout.length).toBe(total);
    expect(createHash('sha256').update(r.stdout).digest('hex')).toBe(patternSha(total));
    expect(r.exit.metrics.console.bytesDropped).toBe(0);
    expect(r.exit.metrics.console.outputWaits).toBeGreaterThan(0);
  });

  it('flood without a rate limit: 200 000 writes of 100 bytes, every byte delivered, none refused', async () => {
    const r = await lib(['flood', '200000', '100']);
    expect(r.exit).toMatchObject({ state: 'exited', code: 0 });
    expect(r.stderr).toBe('refused 0 0 written 20000000\n');
    expect(r.stdout.length).toBe(20_000_000);
    expect(r.exit.metrics.console.bytesDropped).toBe(0);
    expect(r.dropped).toEqual([]);
  });

  it('flood with a rate limit (reject): refused writes fail with EAGAIN, are never counted as written, and every refused byte is reported', async () => {
    const r = await lib(['flood', '20000', '100'], { rateLimit: { bytesPerSecond: 200_000, burstBytes: 65536, mode: 'reject' } });
    expect(r.exit).toMatchObject({ state: 'exited', code: 0 });
    const m = /^refused (\d+) (\d+) written (\d+)\n$/.exec(r.stderr);
    expect(m).not.toBeNull();
    const [refusedWrites, refusedBytes, written] = m!.slice(1).map(Number) as [number, number, number];
    expect(refusedWrites).toBeGreaterThan(0);
    expect(refusedBytes + written).toBe(2_000_000);
    // What the guest was told it wrote is exactly what the reader got.
    expect(r.stdout.length).toBe(written);
    expect(r.exit.metrics.console.bytesOut).toBe(written + r.stderr.length);
    // Exact drop accounting: the counter and the events both equal what the guest saw refused.
    expect(r.exit.metrics.console.bytesDropped).toBe(refusedBytes);
    expect(r.dropped.reduce((n, d) => n + d.bytes, 0)).toBe(refusedBytes);
    expect(r.dropped.every((d) => d.stream === 'stdout')).toBe(true);
  });

  it('stdin is a byte stream: every byte value, \\r\\n, \\xff and no final newline come back exactly', async () => {
    const input = Buffer.concat([everyByte(), Buffer.from('\r\nend without newline\xff', 'latin1')]);
    const r = await lib(['copy'], { stdin: input });
    expect(r.exit).toMatchObject({ state: 'exited', code: 0 });
    expect(r.stdout.equals(input)).toBe(true);
    expect(r.exit.metrics.console.bytesIn).toBe(input.length);
  });

  it('a destroyed stdout is EPIPE for the guest', async () => {
    const hv = hypervisor();
    const p = await hv.createPartition({ name: 'epipe', module: STREAM, devices: { console: true }, wasi: { args: ['stream', 'gen', String(64 << 20)], stdin: 'none' } });
    let got = 0;
    let stderr = '';
    p.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    p.stdout.on('data', (c: Buffer) => {
      got += c.length;
      if (got >= 100_000) p.stdout.destroy();
    });
    await p.start();
    const exit = await p.exited;
    await hv.close();
    expect({ state: exit.state, code: exit.code, reason: exit.reason, message: exit.error?.message }).toEqual({ state: 'exited', code: 3, reason: 'exit', message: undefined });
    expect(stderr).toBe('stream: write: errno 64\n'); // WASI EPIPE
    expect(exit.metrics.console.bytesOut).toBeLessThan(64 << 20);
  });
});

/**
 * An hv guest on the 1.0 line calls: one line of 5000 'y' (CONSOLE_WRITE keeps maxLineBytes of
 * it), then 3000 lines "x\n" as fast as it can, then a final "x\n" on stderr.
 */
const LINE_FLOOD = wat(String.raw`(module
  (import "hv" "hypercall" (func $hv (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 8192) "x\0a")
  (func (export "_start") (local $i i32)
    (memory.fill (i32.const 0) (i32.const 121) (i32.const 5000))
    (i32.store8 (i32.const 5000) (i32.const 10))
    (drop (call $hv (i32.const 0x0100) (i32.const 0) (i32.const 5001) (i32.const 0) (i32.const 0)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.const 3000)))
      (drop (call $hv (i32.const 0x0100) (i32.const 8192) (i32.const 2) (i32.const 0) (i32.const 0)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (drop (call $hv (i32.const 0x0101) (i32.const 8192) (i32.const 2) (i32.const 0) (i32.const 0)))))`);

describe('what the line calls drop is reported too', () => {
  it('lines over the lines bucket and bytes cut from an over-long line: `dropped` events add up to the counters exactly', async () => {
    const hv = hypervisor();
    try {
      const p = await hv.createPartition({ name: 'lines', module: LINE_FLOOD, devices: { console: { linesPerSecond: 100, burstLines: 100 } } });
      const dropped: { stream: string; bytes: number; lines: number; bytesTruncated: number }[] = [];
      let out = 0; // stdout and stderr
      p.on('dropped', (d) => dropped.push(d));
      p.on('output', (chunk) => (out += chunk.length));
      await p.start();
      const exit = await p.exited;
      const sum = (k: 'bytes' | 'lines' | 'bytesTruncated', stream = 'stdout') => dropped.filter((d) => d.stream === stream).reduce((n, d) => n + d[k], 0);
      const c = exit.metrics.console;
      expect(exit).toMatchObject({ state: 'exited', code: 0 });
      expect(c.bytesTruncated).toBe(5000 - 4096);
      expect(sum('bytesTruncated')).toBe(5000 - 4096);
      expect(c.linesDropped).toBeGreaterThan(2000);
      expect(sum('lines') + sum('lines', 'stderr')).toBe(c.linesDropped);
      // Every line is either delivered or reported: the long one (cut) and the "x" lines.
      expect(c.linesOut + c.linesDropped).toBe(3002);
      expect(out).toBe(4097 + 2 * (c.linesOut - 1));
      expect(sum('bytes') + sum('bytes', 'stderr')).toBe(0);
      expect(c.bytesDropped).toBe(0);
    } finally {
      await hv.close();
    }
  });
});

describe('devices.console.outputFd', () => {
  it('writes a stream to a file from the worker; anything that could make the guest wait on a reader is refused', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wasmvisor-outfd-'));
    const hv = hypervisor();
    try {
      const fd = openSync(path.join(dir, 'out'), 'w');
      const dirFd = openSync(dir, 'r');
      const spec = (outputFd: object) => ({ name: 'o', module: STREAM, devices: { console: { outputFd } }, wasi: { args: ['stream', 'bytes'], stdin: 'none' as const } });
      for (const bad of [{ stdout: dirFd }, { stdout: 99_999 }, { stdout: -1 }, { stdout: 1.5 }, { stdin: fd }]) {
        await expect(hv.createPartition(spec(bad)), JSON.stringify(bad)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      }
      const p = await hv.createPartition(spec({ stdout: fd }));
      let events = 0;
      p.on('output', () => events++);
      await p.start();
      const exit = await p.exited;
      closeSync(fd);
      closeSync(dirFd);
      expect(exit).toMatchObject({ state: 'exited', code: 0 });
      expect(events).toBe(0);
      expect(readFileSync(path.join(dir, 'out')).equals(everyByte())).toBe(true);
      expect(exit.metrics.console.bytesOut).toBe(everyByte().length);
    } finally {
      await hv.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The CLI runs its partition in a worker thread whatever this run's placement: in the partition
// process run (vitest.config.ts) these would repeat the dedicated run exactly, so they stay there.
describe.skipIf(PLACEMENT === 'process')('console byte streams through the real CLI', () => {
  it('every byte value, \\r\\n, \\xff and a 70000-byte line without newline reach stdout exactly', async () => {
    guest('hello');
    const r = await cli(['run', STREAM, '--', 'bytes']);
    expect(r.code).toBe(0);
    expect(r.stdout.equals(everyByte())).toBe(true);
    expect(r.stderr).toBe('');
  });

  it('an hv guest (SDK stdio, CONSOLE_STREAM_*) copies 1 MiB of every byte value exactly', async () => {
    const input = Buffer.concat([pattern(0, 1 << 20), Buffer.from('\r\n\xff', 'latin1')]);
    const r = await cli(['run', guest('cat')], { input });
    expect(r.code).toBe(0);
    expect(r.stdout.equals(input)).toBe(true);
    expect(r.stderr).toBe(`copied ${input.length} bytes\n`);
  });

  it('stdout and stderr on a file (2>&1): the guest writes there itself, exactly and in program order', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wasmvisor-stdio-'));
    try {
      const file = path.join(dir, 'out');
      const run = (args: string[]) =>
        new Promise<number | null>((resolve, reject) => {
          const fd = openSync(file, 'w');
          const child = spawn(process.execPath, [CLI, 'run', ...args], { cwd: root, stdio: ['ignore', fd, fd] });
          child.on('error', reject);
          child.on('close', (code) => {
            closeSync(fd);
            resolve(code);
          });
        });
      expect(await run([STREAM, '--', 'bytes'])).toBe(0);
      expect(readFileSync(file).equals(everyByte())).toBe(true);
      expect(await run([path.join(root, 'guests/c/hello.c').replace(/\.c$/, '.wasm'), '--', 'a'])).toBe(1);
      expect(readFileSync(file, 'utf8')).toBe('hello from wasi\narg 1: a\nthis goes to stderr\n');
      // --stats counts what the guest wrote to the file itself.
      expect(await run(['--stats', STREAM, '--', 'gen', '1000000'])).toBe(0);
      expect(readFileSync(file, 'latin1')).toMatch(/^  output +1000000 bytes, 0 refused/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('5000 short printf lines: all of them, in order', async () => {
    const r = await cli(['run', STREAM, '--', 'lines', '5000']);
    expect(r.code).toBe(0);
    const lines = r.stdout.toString('utf8').split('\n');
    expect(lines).toHaveLength(5001);
    expect(lines[4999]).toBe('line 4999');
    expect(lines[5000]).toBe('');
  });

  it('100 MB of stdout, compared by SHA-256', async () => {
    const total = 100_000_000;
    const r = await cli(['run', '--timeout', '0', STREAM, '--', 'gen', String(total)], { hashStdout: true });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.length).toBe(total);
    expect(r.sha).toBe(patternSha(total));
  }, 120_000);

  it('a reader that stops for a while: the guest waits (--stats shows it), nothing is lost', async () => {
    const total = 32 << 20;
    const r = await cli(['run', '--stats', '--timeout', '0', STREAM, '--', 'gen', String(total)], { hashStdout: true, pauseStdoutMs: 1500 });
    expect(r.code).toBe(0);
    expect(r.sha).toBe(patternSha(total));
    const waits = /^  output +(\d+) bytes, 0 refused by the rate limit, (\d+) waits for the reader/m.exec(r.stderr);
    expect(Number(waits![1])).toBe(total);
    expect(Number(waits![2])).toBeGreaterThan(0);
  }, 60_000);

  it('stdin to stdout byte for byte: 16 MiB of every byte value, \\r\\n and no final newline', async () => {
    const input = Buffer.concat([pattern(0, 16 << 20), Buffer.from('\r\n\xff\x00tail', 'latin1')]);
    const r = await cli(['run', '--timeout', '0', STREAM, '--', 'copy'], { input, hashStdout: true });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.sha).toBe(createHash('sha256').update(input).digest('hex'));
  }, 60_000);

  it('| head: the guest sees EPIPE, the CLI ends quietly with the guest\'s status, no stack trace', async () => {
    const r = await cli(['run', '--timeout', '0', STREAM, '--', 'gen', String(1 << 30)], { stdoutLimit: 10 });
    expect(r.stderr).toBe('stream: write: errno 64\n');
    expect(r.code).toBe(3);
  }, 60_000);

  it('| head -2 on a printf program: exit 0, nothing on stderr', async () => {
    const r = await cli(['run', STREAM, '--', 'lines', '1000000'], { stdoutLimit: 14 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  }, 60_000);

  it('an hv guest\'s line calls: dropped lines and cut bytes are in the warning line at the end', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wasmvisor-lines-'));
    try {
      const file = path.join(dir, 'flood.wasm');
      writeFileSync(file, LINE_FLOOD);
      const r = await cli(['run', '--stats', file]);
      expect(r.code).toBe(0);
      const m = /^wasmvisor: warning: guest output was dropped: (\d+) lines dropped by the console's lines-per-second limit; 904 bytes cut from lines longer than the console's maxLineBytes\n/m.exec(r.stderr);
      expect(m, r.stderr).not.toBeNull();
      expect(r.stderr).toMatch(new RegExp(`^  console +\\d+ lines out, 0 in, ${m![1]} dropped, 904 bytes truncated$`, 'm'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--output-rate: refused bytes are reported in --stats and by a warning line at the end', async () => {
    const r = await cli(['run', '--output-rate', '100000', '--stats', STREAM, '--', 'flood', '5000', '100']);
    expect(r.code).toBe(0);
    const m = /^refused (\d+) (\d+) written (\d+)$/m.exec(r.stderr);
    const refusedBytes = Number(m![2]);
    expect(refusedBytes).toBeGreaterThan(0);
    expect(r.stdout.length).toBe(Number(m![3]));
    expect(r.stderr).toContain(`wasmvisor: warning: guest output was dropped: ${refusedBytes} bytes of output refused by the console rate limit (--output-rate)\n`);
    expect(r.stderr).toMatch(new RegExp(`^  output +\\d+ bytes, ${refusedBytes} refused by the rate limit`, 'm'));
  }, 60_000);
});
