/**
 * The `wasmvisor` command line, end to end: spawns the built CLI (dist/cli.js) as a real
 * process and checks the contract in README.md ("Command line" and the exit-status table):
 * stdout, stderr and the exit status, byte for byte where the contract fixes them.
 */
import { HV_ABI_MAJOR, HV_ABI_MINOR } from '../../host/abi/codes.ts';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { guest } from '../helpers.ts';
import { guest as wasmGuest } from '../loader/wat.ts';
import { CLI, cli, lines, type CliResult } from './harness.ts';

const root = new URL('../../', import.meta.url);
const PACKAGE_JSON = fileURLToPath(new URL('package.json', root));
const README = fileURLToPath(new URL('README.md', root));

/** One error line starting with the code, nothing on stdout, the given exit status. */
function expectError(r: CliResult, code: string, status: number): void {
  expect(r.signal).toBeNull();
  expect(r.stdout).toBe('');
  expect(r.stderr).toMatch(new RegExp(`^${code}: \\S.*\\n$`));
  expect(r.code).toBe(status);
}

/** Bad command line: ERR_INVALID_ARGUMENT first on stderr, exit 2, the guest never ran. */
function expectUsageError(r: CliResult): void {
  expect(r.signal).toBeNull();
  expect(r.stdout).toBe('');
  expect(r.stderr.startsWith('ERR_INVALID_ARGUMENT: ')).toBe(true);
  expect(r.code).toBe(2);
}

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

beforeAll(() => {
  // guest() fails with a clear message when the build has not run.
  guest('hello');
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
});

describe.concurrent('wasmvisor run: a guest that exits', () => {
  it('hello: prints its greeting, the ABI version and its arguments, exit 0', async () => {
    const r = await cli(['run', guest('hello'), '--', 'a', 'b']);
    expect(r.stderr).toBe('');
    expect(lines(r.stdout)).toEqual(['Hello from a Wasmvisor partition!', `ABI version ${HV_ABI_MAJOR}.${HV_ABI_MINOR}`, 'arg[0]=a', 'arg[1]=b']);
    expect(r.code).toBe(0);
  });

  it('arguments after -- go to the guest, even when they look like options', async () => {
    const r = await cli(['run', guest('hello'), '--', '--memory', '1', 'x y']);
    expect(r.stderr).toBe('');
    expect(lines(r.stdout)).toEqual(['Hello from a Wasmvisor partition!', `ABI version ${HV_ABI_MAJOR}.${HV_ABI_MINOR}`, 'arg[0]=--memory', 'arg[1]=1', 'arg[2]=x y']);
    expect(r.code).toBe(0);
  });

  it("exit 7: the guest's code is the exit status", async () => {
    const r = await cli(['run', guest('exit'), '--', '7']);
    expect(r).toMatchObject({ code: 7, signal: null, stdout: '', stderr: '' });
  });

  it('exit 300: the status is code & 0xff (44)', async () => {
    const r = await cli(['run', guest('exit'), '--', '300']);
    expect(r).toMatchObject({ code: 300 & 0xff, signal: null, stdout: '', stderr: '' });
    expect(r.code).toBe(44);
  });

  it('exits when the guest does, even if stdin stays open', async () => {
    const r = await cli(['run', guest('exit'), '--', '5'], { keepStdinOpen: true, killAfterMs: 10_000 });
    expect(r).toMatchObject({ code: 5, signal: null, stdout: '', stderr: '' });
  });
});

describe.concurrent('wasmvisor run: stdin is console input', () => {
  it('echo: one "echo:" line per stdin line, then the count', async () => {
    const r = await cli(['run', guest('echo')], { input: 'first\nsecond line\n\nlast\n' });
    expect(r.stderr).toBe('');
    expect(lines(r.stdout)).toEqual(['echo: first', 'echo: second line', 'echo: ', 'echo: last', 'bye (4 lines)']);
    expect(r.code).toBe(0);
  });

  it('echo: a final line without a newline still counts', async () => {
    const r = await cli(['run', guest('echo')], { input: 'no newline' });
    expect(lines(r.stdout)).toEqual(['echo: no newline', 'bye (1 lines)']);
    expect(r.code).toBe(0);
  });

  it('echo: empty stdin is end of input at once', async () => {
    const r = await cli(['run', guest('echo')], { input: '' });
    expect(r).toMatchObject({ code: 0, signal: null, stdout: 'bye (0 lines)\n', stderr: '' });
  });

  it('echo: many lines pass through the bounded input buffer in order (backpressure)', async () => {
    const input = Array.from({ length: 300 }, (_, i) => `line ${i}`);
    const r = await cli(['run', guest('echo')], { input: input.join('\n') + '\n' });
    expect(r.stderr).toBe('');
    expect(lines(r.stdout)).toEqual([...input.map((l) => `echo: ${l}`), 'bye (300 lines)']);
    expect(r.code).toBe(0);
  });
});

describe.concurrent('wasmvisor run: runtime errors', () => {
  it('--timeout 300 on a spinning guest: ERR_LIMIT_CPU, exit 124', async () => {
    const r = await cli(['run', '--timeout', '300', guest('attack-spin')]);
    expect(r.signal).toBeNull();
    expect(r.stderr).toMatch(/^ERR_LIMIT_CPU: .*300 ms.*\n$/);
    expect(r.code).toBe(124);
    // The budget covers worker start-up: on a loaded machine the guest may not have reached its
    // first line within 300 ms, so 'spinning' is checked with a roomier budget below.
    expect(['', 'spinning\n']).toContain(r.stdout);
    expect(r.ms).toBeGreaterThanOrEqual(300);
    expect(r.ms).toBeLessThan(10_000);
  });

  it('a spinning guest: the line it printed before the watchdog fired reaches stdout', async () => {
    // The budget starts before the worker does; on a loaded machine worker start-up alone can eat
    // a small budget, so a run that never got to print is retried with a larger one.
    for (const budget of [1000, 2500, 5000]) {
      const r = await cli(['run', '--timeout', String(budget), guest('attack-spin')]);
      expect(r.stderr).toMatch(new RegExp(`^ERR_LIMIT_CPU: .*${budget} ms.*\\n$`));
      expect(r.code).toBe(124);
      expect(['', 'spinning\n']).toContain(r.stdout);
      if (r.stdout !== '') return;
    }
    expect.fail('the spinning guest never printed its line, even with a 5 s budget');
  }, 60_000); // three runs, each a CLI start-up that a loaded machine can stretch to seconds

  it('--timeout covers the wasm start function too', async () => {
    const r = await cli(['run', '--timeout', '300', guest('attack-start-spin')]);
    expectError(r, 'ERR_LIMIT_CPU', 124);
  });

  it('trap: stdout keeps what it printed, ERR_GUEST_TRAP on the error line, exit 134', async () => {
    const r = await cli(['run', guest('trap')]);
    expect(r.stdout).toBe('about to trap\n');
    expect(r.stderr).toMatch(/^ERR_GUEST_TRAP: .*unreachable.*\n$/);
    expect(r.code).toBe(134);
  });

  it('abort: ERR_GUEST_TRAP with the assertion message, exit 134', async () => {
    const r = await cli(['run', guest('abort')]);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^ERR_GUEST_TRAP: .*guest assertion failed.*\n$/);
    expect(r.code).toBe(134);
  });
});

describe.concurrent('wasmvisor run: refused before running (exit 125)', () => {
  it('attack-import: exactly the documented ERR_IMPORT_DENIED line', async () => {
    const r = await cli(['run', guest('attack-import')]);
    expect(r).toMatchObject({
      code: 125,
      signal: null,
      stdout: '',
      stderr: 'ERR_IMPORT_DENIED: env.system is not part of the hv interface\n',
    });
  });

  it('attack-hv-signature: hv.hypercall with the wrong signature is ERR_IMPORT_DENIED', async () => {
    expectError(await cli(['run', guest('attack-hv-signature')]), 'ERR_IMPORT_DENIED', 125);
  });

  it('attack-shared-memory: ERR_FEATURE_DENIED', async () => {
    expectError(await cli(['run', guest('attack-shared-memory')]), 'ERR_FEATURE_DENIED', 125);
  });

  it('attack-no-start: ERR_MODULE_INVALID', async () => {
    const r = await cli(['run', guest('attack-no-start')]);
    expectError(r, 'ERR_MODULE_INVALID', 125);
    expect(r.stderr).toContain('_start');
  });

  it('a file that does not exist: ERR_MODULE_INVALID', async () => {
    expectError(await cli(['run', 'build/guests/no-such-guest.wasm']), 'ERR_MODULE_INVALID', 125);
  });

  it('a file that is not wasm: ERR_MODULE_INVALID', async () => {
    expectError(await cli(['run', README]), 'ERR_MODULE_INVALID', 125);
  });

  it('--memory 1 on hello (2 initial pages): ERR_LIMIT_MEMORY', async () => {
    expectError(await cli(['run', '--memory', '1', guest('hello')]), 'ERR_LIMIT_MEMORY', 125);
  });

  it('--sha256 with the wrong (well-formed) hash: ERR_INTEGRITY', async () => {
    const r = await cli(['run', '--sha256', '0'.repeat(64), guest('hello')]);
    expectError(r, 'ERR_INTEGRITY', 125);
  });

  it('--sha256 with the right hash (from inspect --json): runs', async () => {
    const inspected = await cli(['inspect', '--json', guest('hello')]);
    expect(inspected.code).toBe(0);
    const { measurement } = JSON.parse(inspected.stdout) as { measurement: string };
    const r = await cli(['run', '--sha256', measurement, guest('hello')]);
    expect(r.stderr).toBe('');
    expect(lines(r.stdout)).toEqual(['Hello from a Wasmvisor partition!', `ABI version ${HV_ABI_MAJOR}.${HV_ABI_MINOR}`]);
    expect(r.code).toBe(0);
  });
});

describe.concurrent('wasmvisor run: limits and devices', () => {
  it('--memory 20: memory.grow is refused at the cap, the guest survives', async () => {
    const r = await cli(['run', '--memory', '20', guest('attack-memgrow')]);
    expect(r).toMatchObject({ code: 0, signal: null, stdout: 'grew to 20 pages, refused\n', stderr: '' });
  });

  it('--devices console: entropy and clock are denied and reported as violations on stderr', async () => {
    const r = await cli(['run', '--devices', 'console', guest('attack-device')]);
    expect(lines(r.stdout)).toEqual(['denied: entropy clock', 'devices: 1']);
    const errLines = lines(r.stderr);
    expect(errLines).toHaveLength(2);
    expect(errLines[0]).toMatch(/^wasmvisor: violation: ENTROPY_GET HV_STATUS_ACCESS_DENIED: /);
    expect(errLines[1]).toMatch(/^wasmvisor: violation: CLOCK_GET HV_STATUS_ACCESS_DENIED: /);
    expect(r.code).toBe(0);
  });

  it('--deterministic: dice rolls the same twice', async () => {
    const [a, b] = await Promise.all([cli(['run', '--deterministic', guest('dice')]), cli(['run', '--deterministic', guest('dice')])]);
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    expect(a.stderr).toBe('');
    expect(lines(a.stdout)[0]).toMatch(/^dice: [1-6]( [1-6]){4}$/);
    expect(b.stdout).toBe(a.stdout);
  });

  it('--seed: the same seed gives the same rolls', async () => {
    const [a, b] = await Promise.all([cli(['run', '--seed', 's1', guest('dice')]), cli(['run', '--seed', 's1', guest('dice')])]);
    expect(a.code).toBe(0);
    expect(b.stdout).toBe(a.stdout);
  });

  it('without --deterministic: five fair dice and their sum', async () => {
    const r = await cli(['run', guest('dice')]);
    expect(r.stderr).toBe('');
    const [dice, sum, ...rest] = lines(r.stdout);
    expect(dice).toMatch(/^dice: [1-6]( [1-6]){4}$/);
    const faces = dice!.slice('dice: '.length).split(' ').map(Number);
    expect(sum).toBe(`sum: ${faces.reduce((x, y) => x + y, 0)}`);
    expect(rest).toEqual([]);
    expect(r.code).toBe(0);
  });
});

describe.concurrent('wasmvisor: bad command lines (ERR_INVALID_ARGUMENT, exit 2)', () => {
  it('--devices nope', async () => {
    const r = await cli(['run', '--devices', 'nope', guest('hello')]);
    expectUsageError(r);
    expect(r.stderr).toContain('nope');
  });

  it('an unknown option', async () => {
    expectUsageError(await cli(['run', '--bogus', guest('hello')]));
  });

  it('run without a file', async () => {
    expectUsageError(await cli(['run']));
  });

  it("run with two files: the second is the guest's argument (Wasmtime's shape)", async () => {
    const r = await cli(['run', guest('hello'), guest('exit')]);
    expect(lines(r.stdout)).toContain(`arg[0]=${guest('exit')}`);
    expect(r.code).toBe(0);
  });

  it('inspect without a file', async () => {
    expectUsageError(await cli(['inspect']));
  });

  it('an unknown command', async () => {
    const r = await cli(['frobnicate']);
    expectUsageError(r);
    expect(r.stderr).toContain('frobnicate');
  });

  it('an unknown option before any command names the nearest of the few taken there (it was "unknown command")', async () => {
    const r = await cli(['--hlep']);
    expectUsageError(r);
    expect(r.stderr).toBe('ERR_INVALID_ARGUMENT: unknown option --hlep; did you mean --help?; see wasmvisor --help\n');
    expect((await cli(['--verison'])).stderr).toBe('ERR_INVALID_ARGUMENT: unknown option --verison; did you mean --version?; see wasmvisor --help\n');
  });

  it('--memory abc', async () => {
    expectUsageError(await cli(['run', '--memory', 'abc', guest('hello')]));
  });

  it('--memory 0 (out of range)', async () => {
    expectUsageError(await cli(['run', '--memory', '0', guest('hello')]));
  });

  it('--timeout 1.5 (not a whole number)', async () => {
    expectUsageError(await cli(['run', '--timeout', '1.5', guest('hello')]));
  });

  it('--clock-resolution 0', async () => {
    expectUsageError(await cli(['run', '--clock-resolution', '0', guest('hello')]));
  });

  it('--sha256 that is not 64 hex digits', async () => {
    expectUsageError(await cli(['run', '--sha256', 'abc', guest('hello')]));
  });

  it('--cpu-percent outside 1..100 or not whole', async () => {
    for (const p of ['0', '101', '2.5', 'half']) expectUsageError(await cli(['run', '--cpu-percent', p, guest('hello')]));
  });
});

describe.concurrent('wasmvisor run --stats', () => {
  it('prints the metrics block to stderr after the run, stdout untouched', async () => {
    const r = await cli(['run', guest('dice'), '--stats', '--deterministic']);
    expect(r.code).toBe(0);
    expect(lines(r.stdout)).toHaveLength(2);
    expect(r.stderr).toMatch(/^wasmvisor stats\n  state +exited \(code 0\)\n/);
    expect(r.stderr).toMatch(/^  hypercalls +8 \(ENTROPY_GET 5, CONSOLE_WRITE 2, EXIT 1\)$/m);
    expect(r.stderr).toMatch(/^  entropy +20 bytes$/m);
  });

  it('prints it for a killed run too, before the verdict, which stays the last line', async () => {
    const r = await cli(['run', guest('attack-spin'), '--timeout', '300', '--stats']);
    expect(r.code).toBe(124);
    expect(r.stderr).toMatch(/^wasmvisor stats\n/);
    expect(lines(r.stderr).at(-1)).toMatch(/^ERR_LIMIT_CPU: /);
    expect(r.stderr).toMatch(/^  state +killed \(ERR_LIMIT_CPU\)$/m);
  });

  it('--cpu-percent: a spinner is paused, not killed, and the stats say so', async () => {
    // On a loaded machine the spinner may not get enough CPU within the second to reach its cap:
    // the measurement is retried (up to three runs), never the outcome.
    const paused = /^  cpu +[\d.]+ ms running, [\d.]+ ms paused by the cap \([1-9]\d* pauses\)$/m;
    let r = await cli(['run', guest('attack-spin'), '--cpu-percent', '20', '--timeout', '3000', '--stats']);
    for (let i = 0; i < 2 && r.code === 124 && !paused.test(r.stderr); i++) r = await cli(['run', guest('attack-spin'), '--cpu-percent', '20', '--timeout', '3000', '--stats']);
    expect(r.code).toBe(124); // the wall-clock watchdog still ends it
    expect(r.stderr).toMatch(paused);
    expect(r.stderr).toMatch(/^  fuel +\d+ \(no budget\)$/m);
    expect(r.stderr).toMatch(/^  throttled +console 0 /m);
  }, 60_000);
});

describe.concurrent('wasmvisor call: one export of a reactor', () => {
  it('reads the input from stdin and writes the output to stdout, exit 0', async () => {
    const r = await cli(['call', guest('transform'), 'upper'], { input: 'make me loud' });
    expect(r.stdout).toBe('MAKE ME LOUD');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('reads the input from --input-file <file>', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'wasmvisor-call-'));
    const file = path.join(dir, 'in.md');
    writeFileSync(file, '# Title\n- item\n');
    const r = await cli(['call', guest('transform'), 'render', '--input-file', file]);
    expect(r.stdout).toBe('<h1>Title</h1>\n<ul>\n<li>item</li>\n</ul>\n');
    expect(r.code).toBe(0);
  });

  it("an export's non-zero status is its exit status, with ERR_GUEST_CALL and the output", async () => {
    const r = await cli(['call', guest('transform'), 'fail']);
    expect(r.stdout).toBe('bad input');
    expect(r.stderr).toMatch(/^ERR_GUEST_CALL: export fail .* returned status 7\n$/);
    expect(r.code).toBe(7);
  });

  it('a trap is ERR_GUEST_TRAP (134); a call over --timeout is ERR_LIMIT_CPU (124)', async () => {
    const trap = await cli(['call', guest('transform'), 'trap']);
    expect(trap.stderr).toMatch(/^ERR_GUEST_TRAP: /);
    expect(trap.code).toBe(134);
    const spin = await cli(['call', guest('transform'), 'spin', '--timeout', '300']);
    expect(spin.stderr).toMatch(/^ERR_LIMIT_CPU: /);
    expect(spin.code).toBe(124);
  }, 60_000);

  it('an unknown export, or missing arguments, is ERR_INVALID_ARGUMENT (2)', async () => {
    const r = await cli(['call', guest('transform'), 'nope']);
    expect(r.stderr).toMatch(/^ERR_INVALID_ARGUMENT: .*nope/);
    expect(r.code).toBe(2);
    expect((await cli(['call', guest('transform')])).code).toBe(2);
  }, 60_000);
});

describe.concurrent('wasmvisor inspect', () => {
  it('hello: measurement, import, exports, memory and the verdict', async () => {
    const r = await cli(['inspect', guest('hello')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toContain(sha256(guest('hello')));
    expect(out).toMatch(new RegExp(`^sha256:\\s+${sha256(guest('hello'))}$`, 'm'));
    expect(out).toContain('hv.hypercall');
    expect(out).toMatch(/^memory:/m);
    expect(out).toContain('_start');
    expect(out).toMatch(/^policy:\s+admitted/m);
  });

  it('--json: parses, with measurement, imports, exports and an admitting verdict', async () => {
    const r = await cli(['inspect', '--json', guest('hello')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const i = JSON.parse(r.stdout) as {
      measurement: string;
      imports: { module: string; name: string; kind: string }[];
      exports: { name: string; kind: string }[];
      verdict: { admitted: boolean };
    };
    expect(i.measurement).toBe(sha256(guest('hello')));
    expect(i.imports).toEqual([expect.objectContaining({ module: 'hv', name: 'hypercall', kind: 'function' })]);
    expect(i.exports).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'memory', kind: 'memory' }), expect.objectContaining({ name: '_start', kind: 'function' })]),
    );
    expect(i.verdict.admitted).toBe(true);
  });

  it('attack-import: the report says refused, stderr has the error line, exit 125', async () => {
    const r = await cli(['inspect', guest('attack-import')]);
    expect(r.stdout).toContain('env.system');
    expect(r.stdout).toMatch(/^policy:\s+refused: ERR_IMPORT_DENIED/m);
    expect(r.stderr).toBe('ERR_IMPORT_DENIED: env.system is not part of the hv interface\n');
    expect(r.code).toBe(125);
  });

  it('--json on a refused module: a verdict that does not admit, exit 125', async () => {
    const r = await cli(['inspect', '--json', guest('attack-import')]);
    const i = JSON.parse(r.stdout) as { verdict: { admitted: boolean; code?: string } };
    expect(i.verdict).toMatchObject({ admitted: false, code: 'ERR_IMPORT_DENIED' });
    expect(r.stderr).toBe('ERR_IMPORT_DENIED: env.system is not part of the hv interface\n');
    expect(r.code).toBe(125);
  });

  it('--memory 1 on hello: refused with ERR_LIMIT_MEMORY, exit 125', async () => {
    const r = await cli(['inspect', '--memory', '1', guest('hello')]);
    expect(r.stdout).toMatch(/^policy:\s+refused: ERR_LIMIT_MEMORY/m);
    expect(r.stderr).toMatch(/^ERR_LIMIT_MEMORY: .*\n$/);
    expect(r.code).toBe(125);
  });

  it('a file that is not wasm: ERR_MODULE_INVALID, exit 125', async () => {
    expectError(await cli(['inspect', README]), 'ERR_MODULE_INVALID', 125);
  });

  it("a manifest with a fuel limit or a CPU cap: run's refusal of code the meter cannot see (table.fill)", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'wasmvisor-inspect-'));
    writeFileSync(path.join(dir, 'fill.wasm'), wasmGuest({ extra: '(table $t 4 funcref) (func (export "fill") (table.fill $t (i32.const 0) (ref.null func) (i32.const 2)))' }));
    const manifest = (limits: object): string => {
      const file = path.join(dir, `m${Object.keys(limits).join('')}.json`);
      writeFileSync(file, JSON.stringify({ name: 'fill', module: 'fill.wasm', limits }));
      return file;
    };
    const plain = manifest({});
    expect((await cli(['inspect', plain])).code).toBe(0);
    for (const file of [manifest({ fuel: 100000 }), manifest({ cpu: { maxPercent: 50 } })]) {
      const [inspected, ran] = await Promise.all([cli(['inspect', file]), cli(['run', file])]);
      expect(ran.stderr).toMatch(/^ERR_FEATURE_DENIED: fuel metering cannot meter table\.fill .*\n$/);
      expect(inspected.stdout).toMatch(/^policy:\s+refused: ERR_FEATURE_DENIED: fuel metering cannot meter table\.fill/m);
      expect(inspected.stderr).toBe(ran.stderr);
      expect([inspected.code, ran.code]).toEqual([125, 125]);
    }
  });
});

describe.concurrent('wasmvisor demo, --help, --version', () => {
  it('demo: three partitions side by side and a summary line each, then the counter on its disk', async () => {
    const r = await cli(['demo']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = lines(r.stdout);
    expect(out).toContain('[hello] Hello from a Wasmvisor partition!');
    expect(out.some((l) => /^\[dice \] dice: [1-6]( [1-6]){4}$/.test(l))).toBe(true);
    expect(out.some((l) => l.startsWith('[clock] '))).toBe(true);
    const at = out.indexOf('Summary');
    expect(at).toBeGreaterThan(0);
    const rest = out.slice(at + 1);
    const summary = rest.slice(0, rest.indexOf('') < 0 ? rest.length : rest.indexOf(''));
    expect(summary).toHaveLength(3);
    for (const [n, name] of ['hello', 'dice', 'clock'].entries()) {
      expect(summary[n]).toMatch(new RegExp(`^${name}\\s.*\\bexit 0\\b.*\\bhypercalls \\d+`));
    }
    const boots = out.filter((l) => /^\[counter, boot [12]\] counter: \d+$/.test(l)).map((l) => Number(l.split(': ')[1]));
    expect(boots).toHaveLength(2);
    expect(boots[1]).toBe(boots[0]! + 1);
  });

  it('--help: the usage, exit 0', async () => {
    const r = await cli(['--help']);
    expect(r.stdout).toMatch(/^Usage/);
    expect(r.stdout).toContain('wasmvisor run');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it("--version: the package.json version, exit 0", async () => {
    const { version } = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string };
    const r = await cli(['--version']);
    expect(r.stdout).toBe(`wasmvisor ${version}\n`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('no command at all: the usage on stderr, then the ERR_INVALID_ARGUMENT verdict last, exit 2', async () => {
    const r = await cli([]);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^Usage/);
    expect(r.stderr).toMatch(/\nERR_INVALID_ARGUMENT: no command given\n$/);
    expect(r.code).toBe(2);
  });

  it('an option parser complaint is one error line', async () => {
    const r = await cli(['run', '--timeout', '-5', 'x.wasm']);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/^ERR_INVALID_ARGUMENT: /);
  });

  it('inspect aligns continuation rows without a stray colon', async () => {
    const r = await cli(['inspect', guest('hello')]);
    expect(r.stdout).not.toMatch(/^:/m);
    expect(r.stdout).toMatch(/^exports: +memory memory\n {12}_start function/m);
  });
});
