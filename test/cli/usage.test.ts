/**
 * The command line as a new user meets it (issue 11, "The CLI"; issue 10, item 10 and the full
 * exit code): per-subcommand help, guest arguments after the module, readable errors for bad
 * values, --json on run, call and inspect, call's input and partition flags, inspect agreeing
 * with run and call, and manifests. Through the real CLI process.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { guest } from '../helpers.ts';
import { cli, lines, type CliResult } from './harness.ts';
import { HV_ABI_MAJOR, HV_ABI_MINOR } from '../../host/abi/codes.ts';

/** What the hello guest prints about the ABI it runs on. */
const ABI_LINE = `ABI version ${HV_ABI_MAJOR}.${HV_ABI_MINOR}`;

const C_CAT = new URL('../../guests/c/cat.wasm', import.meta.url).pathname;
const RUST_WC = new URL('../../guests/rust/wc.wasm', import.meta.url).pathname;
// Each test spawns a few CLI processes; on a loaded 2-core machine that takes seconds each.
vi.setConfig({ testTimeout: 90_000 });

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wv-usage-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The report --json leaves as the last line of stderr. */
function jsonReport(r: CliResult): Record<string, unknown> {
  const last = lines(r.stderr).at(-1)!;
  return JSON.parse(last) as Record<string, unknown>;
}

describe.concurrent('help: every subcommand prints its own', () => {
  for (const command of ['run', 'call', 'inspect', 'delete', 'demo', 'keygen', 'sign', 'verify', 'attest verify', 'attest key', 'audit verify', 'audit show']) {
    it(`${command} --help, ${command} -h and help ${command}`, async () => {
      const words = command.split(' ');
      for (const args of [[...words, '--help'], [...words, '-h'], ['help', ...words]]) {
        const r = await cli(args);
        expect(r.code, args.join(' ')).toBe(0);
        expect(r.stderr).toBe('');
        expect(r.stdout.startsWith(`Usage:\n  wasmvisor ${command}`)).toBe(true);
        expect(r.stdout).toContain('-h, --help');
      }
    });
  }

  for (const [command, subs] of [['attest', ['verify', 'key']], ['audit', ['verify', 'show']]] as const) {
    it(`${command} --help lists its subcommands; ${command} alone or with another word says which there are`, async () => {
      for (const args of [[command, '--help'], ['help', command]]) {
        const r = await cli(args);
        expect(r).toMatchObject({ code: 0, stderr: '' });
        expect(r.stdout.startsWith(`Usage:\n  wasmvisor ${command} ${subs[0]}`)).toBe(true);
        for (const sub of subs) expect(r.stdout).toContain(`  ${command} ${sub}  `);
      }
      const none = await cli([command]);
      expect(none).toMatchObject({ code: 2, stdout: '', stderr: `ERR_INVALID_ARGUMENT: ${command} takes ${subs.join(' or ')}, got ""; see wasmvisor ${command} --help\n` });
      const typo = await cli([command, `${subs[0]}y`]);
      expect(typo.stderr).toBe(`ERR_INVALID_ARGUMENT: ${command} takes ${subs.join(' or ')}, got "${subs[0]}y"; did you mean ${subs[0]}?; see wasmvisor ${command} --help\n`);
    });
  }

  for (const command of ['serve', 'token', 'cert']) {
    it(`${command} --help prints its usage (a command with its own parser)`, async () => {
      for (const args of [[command, '--help'], ['help', command]]) {
        const r = await cli(args);
        expect(r).toMatchObject({ code: 0, stderr: '' });
        expect(r.stdout.startsWith(`Usage:\n  wasmvisor ${command}`)).toBe(true);
      }
    });
  }

  it("run --help states the exit status is code & 0xff and that --json carries the full code", async () => {
    const r = await cli(['run', '--help']);
    expect(r.stdout).toContain('& 0xff');
    expect(r.stdout).toContain('256 or 0x80000000');
    expect(r.stdout).toContain('--json carries the full code');
    for (const flag of ['--memory', '--timeout', '--fuel', '--cpu-percent', '--devices', '--dir', '--env', '--json', '--wasi', '--disk']) expect(r.stdout).toContain(flag);
  });

  it('--help after the module is still help, not a guest argument', async () => {
    const r = await cli(['run', guest('hello'), '--help']);
    expect(r.stdout.startsWith('Usage:\n  wasmvisor run')).toBe(true);
  });
});

describe.concurrent('run: guest arguments after the module, as Wasmtime', () => {
  it('run tool.wasm a b passes a b', async () => {
    const r = await cli(['run', guest('hello'), 'a', 'b']);
    expect(lines(r.stdout)).toEqual(['Hello from a Wasmvisor partition!', ABI_LINE, 'arg[0]=a', 'arg[1]=b']);
    expect(r.code).toBe(0);
  });

  it('everything from the first guest argument on is the guest\'s, options included', async () => {
    const r = await cli(['run', guest('hello'), 'a', '--stats', '-l']);
    expect(lines(r.stdout)).toEqual(['Hello from a Wasmvisor partition!', ABI_LINE, 'arg[0]=a', 'arg[1]=--stats', 'arg[2]=-l']);
    expect(r.stderr).toBe('');
  });

  it('options between the module and the first guest argument are ours; -- still works', async () => {
    const r = await cli(['run', guest('hello'), '--stats', 'a', '--', 'b']);
    expect(lines(r.stdout)).toEqual(['Hello from a Wasmvisor partition!', ABI_LINE, 'arg[0]=a', 'arg[1]=--', 'arg[2]=b']);
    expect(r.stderr).toContain('wasmvisor stats');
    const dashed = await cli(['run', guest('hello'), '--', '--memory', '1']);
    expect(lines(dashed.stdout).slice(2)).toEqual(['arg[0]=--memory', 'arg[1]=1']);
  });

  it('a negative number is a guest argument, not an option', async () => {
    const r = await cli(['run', guest('exit'), '-1']);
    expect(r.code).toBe(255);
  });

  it('a WASI program: its arguments after the module (cat reads the file it is given)', async () => {
    const dir = path.join(tmp, 'cat');
    rmSync(dir, { recursive: true, force: true });
    mkdtempSync(dir);
    writeFileSync(path.join(tmp, 'note.txt'), 'hello, cat\n');
    const r = await cli(['run', '--dir', `${tmp}::/data`, C_CAT, '/data/note.txt']);
    expect(r.stdout).toBe('hello, cat\n');
    expect(r.code).toBe(0);
  });

  it('an unknown option before the module: the nearest known one, and how to pass it to the guest', async () => {
    const r = await cli(['run', '--timout', '5', guest('hello')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('ERR_INVALID_ARGUMENT: run: unknown option --timout; did you mean --timeout? (to pass it to the guest, put it after the module or after --); see wasmvisor run --help\n');
  });
});

describe.concurrent('bad values get a full, readable message (#10.10 at the CLI)', () => {
  const cases: [string[], string][] = [
    [['--timeout', '-1'], '--timeout: expected a number of ms: an integer from 0 to 2147483647 (about 24.8 days), or 0 or Infinity for none, got "-1"'],
    [['--timeout=-1'], '--timeout: expected a number of ms: an integer from 0 to 2147483647 (about 24.8 days), or 0 or Infinity for none, got "-1"'],
    [['--timeout', '2147483648'], '--timeout: expected a number of ms: an integer from 0 to 2147483647 (about 24.8 days), or 0 or Infinity for none, got "2147483648"'],
    [['--timeout', 'soon'], '--timeout: expected a number of ms: an integer from 0 to 2147483647 (about 24.8 days), or 0 or Infinity for none, got "soon"'],
    [['--memory', '16.5'], '--memory: expected an integer from 1 to 65536, got "16.5"'],
    [['--memory', '65537'], '--memory: expected an integer from 1 to 65536, got "65537"'],
    [['--cpu-percent', '0'], '--cpu-percent: expected an integer from 1 to 100, got "0"'],
    [['--fuel', '9007199254740992'], '--fuel: expected an integer from 1 to 9007199254740991, got "9007199254740992"'],
    [['--disk', '4097'], '--disk: expected an integer from 1 to 4096, got "4097"'],
    [['--sha256', 'abc'], '--sha256: expected 64 hexadecimal digits (a SHA-256), got "abc"'],
    [['--name', 'a b'], `--name: expected 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), got "a b"`],
    [['--devices', 'gpu'], '--devices: unknown device "gpu" (known: console, clock, entropy, net, attestation; or none)'],
    // No device only by `none`: an empty list (an unset variable) granted nothing, unsaid.
    [['--devices', ''], '--devices: expected a comma-separated list of devices (known: console, clock, entropy, net, attestation; or none), got ""'],
    [['--devices', 'console,,clock'], '--devices: expected a comma-separated list of devices (known: console, clock, entropy, net, attestation; or none), got "console,,clock"'],
    [['--devices', 'none,console'], '--devices: none grants no device and goes alone, got "none,console"'],
    [['--env', 'NOVALUE'], '--env: expected KEY=VALUE, got "NOVALUE"'],
    // An empty folder is the working directory, unsaid: named by its flag (it said "Hypervisor options: dataDir").
    [['--data-dir', ''], '--data-dir: expected a directory, got ""'],
    // An empty file name: --attest was ERR_STORAGE (exit 74, "cannot write : ENOENT"), --policy named Policy.fromFile.
    [['--attest', ''], '--attest: expected a file, got ""'],
    [['--policy', ''], '--policy: expected a file, got ""'],
    [['--timeout'], '--timeout needs a value; see wasmvisor run --help'],
  ];
  for (const [flags, message] of cases) {
    it(flags.join(' '), async () => {
      const r = await cli(['run', guest('hello'), ...flags]);
      expect(r).toMatchObject({ code: 2, stdout: '', stderr: `ERR_INVALID_ARGUMENT: ${message}\n` });
    });
  }

  it('an option that takes one value, given twice, is refused naming both values (only the marked ones repeat)', async () => {
    const r = await cli(['run', '--memory', '16', '--memory', '32', guest('hello')]);
    expect(r).toMatchObject({ code: 2, stdout: '', stderr: 'ERR_INVALID_ARGUMENT: --memory is given twice ("16" and "32"); give it once; see wasmvisor run --help\n' });
    // sign takes one key: the first was silently dropped, the module signed with the second alone.
    const sign = await cli(['sign', guest('hello'), '--key', 'a.key', '--key=b.key', '--out', path.join(tmp, 'never.wasm')]);
    expect(sign).toMatchObject({ code: 2, stdout: '', stderr: 'ERR_INVALID_ARGUMENT: --key is given twice ("a.key" and "b.key"); give it once; see wasmvisor sign --help\n' });
    // Repeatable options (--env here) and a flag given again still work.
    const ok = await cli(['run', '--env', 'A=1', '--env', 'B=2', '--stats', '--stats', C_CAT], { input: '' });
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('an empty argument is refused naming what it stands for, exit 2, by every command (inspect called it a bad module, 125; audit verify verified the working directory)', async () => {
    const cwd = mkdtempSync(path.join(tmp, 'empty-arg-'));
    for (const [args, what] of [
      [['run', ''], 'run: expected <guest.wasm | app.json>'],
      [['inspect', ''], 'inspect: expected <guest.wasm | app.json>'],
      [['call', guest('transform'), ''], 'call: expected <export>'],
      [['verify', '', '--key', 'k.pub'], 'verify: expected <guest.wasm>'],
      [['sign', '', '--key', 'k.key', '--out', 'x.wasm'], 'sign: expected <guest.wasm>'],
      [['audit', 'verify', ''], 'audit verify: expected <dir>'],
      [['audit', 'show', ''], 'audit show: expected <dir>'],
    ] as const) {
      const r = await cli([...args], { cwd });
      expect(r, args.join(' ')).toMatchObject({ code: 2, stdout: '', stderr: `ERR_INVALID_ARGUMENT: ${what}, got ""; see wasmvisor ${args[0] === 'audit' ? `audit ${args[1]}` : args[0]} --help\n` });
    }
  });

  it('a required option missing is worded as every one (options.ts needsOption): verify said "needs at least one --key …"', async () => {
    for (const [args, verdict] of [
      [['verify', guest('hello')], 'verify needs --key <public key file>; see wasmvisor verify --help'],
      [['sign', guest('hello')], 'sign needs --key <secret key file>; see wasmvisor sign --help'],
      [['attest', 'verify', guest('hello')], 'attest verify needs --key <host public key file>; see wasmvisor attest verify --help'],
    ] as const) {
      expect(await cli([...args]), args.join(' ')).toMatchObject({ code: 2, stdout: '', stderr: `ERR_INVALID_ARGUMENT: ${verdict}\n` });
    }
  });

  it('an empty file name for a file written or read is refused naming the flag, exit 2 (not ERR_STORAGE, 74)', async () => {
    for (const [args, flagName] of [
      [['sign', guest('hello'), '--key', 'a.key', '--out', ''], '--out'],
      [['sign', guest('hello'), '--key', 'a.key', '--detached', ''], '--detached'],
      [['attest', 'key', '--data-dir', tmp, '--out', ''], '--out'],
      [['call', guest('transform'), 'upper', '--input-file', ''], '--input-file'],
      [['verify', guest('hello'), '--key', ''], '--key'],
    ] as const) {
      expect(await cli([...args]), args.join(' ')).toMatchObject({ code: 2, stdout: '', stderr: `ERR_INVALID_ARGUMENT: ${flagName}: expected a file, got ""\n` });
    }
  });

  it('--timeout at the edge: 2147483647 runs (not a 1 ms timer), 0 means none', async () => {
    for (const t of ['2147483647', '0']) {
      const r = await cli(['run', '--timeout', t, guest('hello')]);
      expect(r.code, t).toBe(0);
      expect(lines(r.stdout)[0]).toBe('Hello from a Wasmvisor partition!');
    }
  });
});

describe.concurrent('--json', () => {
  it('run: the last stderr line is the report, with the full exit code (256 is status 0)', async () => {
    const r = await cli(['run', '--json', guest('exit'), '256']);
    expect(r.code).toBe(0);
    expect(lines(r.stderr)).toHaveLength(1);
    const report = jsonReport(r);
    expect(report).toMatchObject({ command: 'run', state: 'exited', code: 256, exitStatus: 0, error: null });
    expect(report.metrics).toMatchObject({ hypercallsByCall: { EXIT: 1 } });
    expect(typeof report.runTimeMs).toBe('number');
  });

  it('run: 0x80000000 looks like success to a shell, and --json says -2147483648', async () => {
    const r = await cli(['run', '--json', guest('exit'), '-2147483648']);
    expect(r.code).toBe(0);
    expect(jsonReport(r)).toMatchObject({ code: -2147483648, exitStatus: 0 });
  });

  it('run: a trap and a refusal carry the error code', async () => {
    const trap = await cli(['run', '--json', guest('trap')]);
    expect(trap.code).toBe(134);
    expect(jsonReport(trap)).toMatchObject({ state: 'trapped', code: null, exitStatus: 134, error: { code: 'ERR_GUEST_TRAP' } });
    const refused = await cli(['run', '--json', '--memory', '1', guest('hello')]);
    expect(refused.code).toBe(125);
    expect(lines(refused.stderr)[0]).toMatch(/^ERR_LIMIT_MEMORY: /);
    expect(jsonReport(refused)).toMatchObject({ state: 'not-run', code: null, exitStatus: 125, error: { code: 'ERR_LIMIT_MEMORY' }, metrics: null });
  });

  it('call: one JSON document on stdout with the status, the output and the metrics', async () => {
    const r = await cli(['call', '--json', guest('transform'), 'upper', '--input', 'hello']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(doc).toMatchObject({ command: 'call', export: 'upper', state: 'running', status: 0, output: 'HELLO', outputEncoding: 'utf8', exitStatus: 0, error: null });
    expect(doc.metrics).toMatchObject({ hypercallsByCall: { OUTPUT_WRITE: 1 } });
    const failed = await cli(['call', '--json', guest('transform'), 'fail']);
    expect(failed.code).toBe(7);
    expect(JSON.parse(failed.stdout)).toMatchObject({ status: 7, output: 'bad input', exitStatus: 7, error: { code: 'ERR_GUEST_CALL' } });
  });

  it('a command line that does not parse is refused with the report too: the verdict, then the JSON (not-run, exit 2)', async () => {
    // It used to end with the verdict alone when the refusal came from the options themselves.
    for (const args of [
      ['run', '--json', '--memory', '0', guest('hello')],
      ['run', '--memory', '0', guest('hello'), '--json'],
      ['run', '--json', '--memroy', '16', guest('hello')],
      ['run', '--json'],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      const [verdict, json, more] = lines(r.stderr);
      expect(verdict, args.join(' ')).toMatch(/^ERR_INVALID_ARGUMENT: /);
      expect(more).toBeUndefined();
      expect(JSON.parse(json!)).toEqual({ command: 'run', state: 'not-run', code: null, exitStatus: 2, error: { code: 'ERR_INVALID_ARGUMENT', message: verdict!.slice('ERR_INVALID_ARGUMENT: '.length) }, runTimeMs: null, metrics: null });
    }
    const c = await cli(['call', '--json', guest('transform')]);
    expect(c).toMatchObject({ code: 2, stderr: 'ERR_INVALID_ARGUMENT: call needs <export>; see wasmvisor call --help\n' });
    expect(JSON.parse(c.stdout)).toMatchObject({ command: 'call', state: 'not-run', exitStatus: 2, export: null, status: null, output: null, error: { code: 'ERR_INVALID_ARGUMENT' } });
    // --json that is an option's value or the guest's argument asks for nothing.
    expect(await cli(['run', '--name', '--json', guest('hello')])).toMatchObject({ code: 2, stderr: expect.not.stringContaining('{') });
    expect(await cli(['call', '--input', '--json', '--bogus', guest('transform'), 'upper'])).toMatchObject({ code: 2, stdout: '' });
  });

  it('inspect: the inspection with the kind, whether WASI is used, and the exit status', async () => {
    const r = await cli(['inspect', '--json', C_CAT]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ kind: 'command', wasi: true, exitStatus: 0, verdict: { admitted: true } });
  });
});

describe.concurrent('call: input and the partition flags run has', () => {
  it('--input is the data', async () => {
    expect((await cli(['call', guest('transform'), 'upper', '--input', 'abc'])).stdout).toBe('ABC');
  });

  it('--input-file is a file, - is stdin, and without either the input is stdin', async () => {
    const file = path.join(tmp, 'in.txt');
    writeFileSync(file, 'from a file');
    expect((await cli(['call', guest('transform'), 'upper', '--input-file', file])).stdout).toBe('FROM A FILE');
    expect((await cli(['call', guest('transform'), 'upper'], { input: 'from stdin' })).stdout).toBe('FROM STDIN');
    expect((await cli(['call', guest('transform'), 'upper', '--input-file', '-'], { input: 'dash' })).stdout).toBe('DASH');
  });

  it('both, or a file that cannot be read: a usage error naming the flag', async () => {
    const both = await cli(['call', guest('transform'), 'upper', '--input', 'a', '--input-file', 'x']);
    expect(both).toMatchObject({ code: 2, stderr: 'ERR_INVALID_ARGUMENT: --input and --input-file: give one of them, not both\n' });
    const missing = await cli(['call', guest('transform'), 'upper', '--input-file', path.join(tmp, 'nope')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^ERR_INVALID_ARGUMENT: --input-file: cannot read ".*nope": ENOENT/);
  });

  it('--fuel meters the call (a spinning export ends with ERR_LIMIT_CPU, exit 124)', async () => {
    expect((await cli(['call', '--fuel', '100000000', guest('transform'), 'upper', '--input', 'x'])).stdout).toBe('X');
    const r = await cli(['call', '--fuel', '100000', guest('transform'), 'spin']);
    expect(r.code).toBe(124);
    expect(r.stderr).toMatch(/^ERR_LIMIT_CPU: /);
  });

  it('--devices net and --wasi grant what they say', async () => {
    const r = await cli(['call', '--json', '--devices', 'net,clock', '--segment', 'blue', '--wasi', guest('transform'), 'upper', '--input', 'x']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { metrics: { net: { segment: string } } };
    expect(doc.metrics.net).toMatchObject({ segment: 'blue' });
  });

  it('a flag for a device that is not granted is refused, naming the flag and the device, not ignored', async () => {
    const manifest = path.join(tmp, 'console-only.json');
    writeFileSync(manifest, JSON.stringify({ name: 'g', module: guest('hello'), devices: { console: true } }));
    for (const [args, flag, device] of [
      [['run', '--segment', 'blue', guest('hello')], 'segment', 'net'],
      [['run', '--devices', 'console', '--seed', 's1', guest('hello')], 'seed', 'entropy'],
      [['run', '--clock-resolution', '5', manifest], 'clock-resolution', 'clock'],
      [['call', '--output-rate', '100000', guest('transform'), 'upper', '--input', 'x'], 'output-rate', 'console'],
      [['call', '--seed', 's1', guest('transform'), 'upper', '--input', 'x'], 'seed', 'entropy'],
    ] as const) {
      const r = await cli([...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(new RegExp(`^ERR_INVALID_ARGUMENT: --${flag} configures the ${device} device, which is not granted .*: add ${device} to --devices, or drop --${flag}\n$`));
    }
    // Granted, each is taken: the same flags with their device run.
    expect((await cli(['run', '--devices', 'console,entropy', '--seed', 's1', guest('hello')])).code).toBe(0);
    expect((await cli(['run', '--devices', 'console,clock', '--clock-resolution', '5', manifest])).code).toBe(0);
    expect((await cli(['run', '--devices', 'console,clock', '--deterministic', guest('hello')])).code).toBe(0);
  });

  it('--deterministic, a mode, is taken with neither clock nor entropy granted: the guest has no time or randomness to vary', async () => {
    // call grants no devices by default: a script that always asks for a reproducible call runs.
    expect(await cli(['call', '--deterministic', guest('transform'), 'upper', '--input', 'x'])).toMatchObject({ code: 0, stdout: 'X', stderr: '' });
    expect((await cli(['run', '--devices', 'console', '--deterministic', guest('hello')])).code).toBe(0);
  });

  it('--timeout is the call\'s budget, with the same range as run\'s', async () => {
    const r = await cli(['call', '--timeout', '50', guest('transform'), 'spin']);
    expect(r.code).toBe(124);
    expect((await cli(['call', '--timeout', '-5', guest('transform'), 'spin'])).stderr).toMatch(/^ERR_INVALID_ARGUMENT: --timeout: expected a number of ms/);
  });
});

describe.concurrent('inspect agrees with run and call', () => {
  // Each module: what inspect says, and what run (command) or call (reactor) does with it.
  const modules: [string, () => string, 'run' | 'call', string[]][] = [
    ['an hv command', () => guest('hello'), 'run', []],
    ['a WASI C program', () => C_CAT, 'run', []],
    ['a WASI Rust program', () => RUST_WC, 'run', []],
    ['a reactor', () => guest('transform'), 'call', ['upper', '--input', 'x']],
    ['a module with a forbidden import', () => guest('attack-import'), 'run', []],
    ['shared memory', () => guest('attack-shared-memory'), 'run', []],
  ];
  for (const [what, file, how, extra] of modules) {
    it(what, async () => {
      const inspected = await cli(['inspect', '--json', file()]);
      const doc = JSON.parse(inspected.stdout) as { exitStatus: number; kind: string; verdict: { admitted: boolean; code?: string } };
      expect(doc.kind).toBe(how === 'run' ? 'command' : 'reactor');
      expect(inspected.code).toBe(doc.exitStatus);
      const ran = how === 'run' ? await cli(['run', file(), ...extra]) : await cli(['call', file(), ...extra]);
      if (doc.verdict.admitted) {
        expect([0, 1]).toContain(ran.code); // wc and cat with no input exit 0; nothing is refused
        expect(ran.stderr).not.toMatch(/^ERR_(MODULE_INVALID|IMPORT_DENIED|FEATURE_DENIED|LIMIT_MEMORY|LIMIT_TABLE|INTEGRITY)/);
      } else {
        expect(ran.code).toBe(doc.exitStatus);
        expect(ran.stderr.startsWith(`${doc.verdict.code}: `)).toBe(true);
      }
    });
  }

  it('run on a reactor: refused as before, and told to use call with its exports', async () => {
    const r = await cli(['run', guest('transform')]);
    expect(r.code).toBe(125);
    expect(r.stderr).toBe(`ERR_MODULE_INVALID: guest must export a function _start: () -> (); this module is a reactor (exports upper, echo, count, fill, fail, trap, spin, render): use wasmvisor call ${guest('transform')} <export>\n`);
  });

  it('--signature without --policy is refused by run, call and inspect alike, naming both flags (inspect weighed nothing and admitted)', async () => {
    const sig = path.join(tmp, 'any.sig');
    writeFileSync(sig, 'not checked');
    const verdict = "ERR_INVALID_ARGUMENT: --signature goes with --policy <file>: a detached signature is checked against the policy's publisher keys\n";
    for (const args of [['inspect', '--signature', sig, guest('hello')], ['run', '--signature', sig, guest('hello')], ['call', '--signature', sig, guest('transform'), 'upper', '--input', 'x']]) {
      expect(await cli(args), args[0]).toMatchObject({ code: 2, stdout: '', stderr: verdict });
    }
    // A manifest's signature without a policy: inspect refuses it as run does.
    const manifest = path.join(tmp, 'signed-app.json');
    writeFileSync(manifest, JSON.stringify({ module: guest('hello'), signature: sig }));
    const inspected = await cli(['inspect', manifest]);
    expect(inspected).toMatchObject({ code: 2, stdout: '' });
    expect(inspected.stderr).toMatch(/^ERR_INVALID_ARGUMENT: inspect options: signature needs a policy with publisher keys/);
    expect((await cli(['run', manifest])).stderr).toMatch(/^ERR_INVALID_ARGUMENT: spec\.signature needs a policy with publisher keys/);
  });

  it('--memory and --sha256 are judged as run would', async () => {
    expect((await cli(['inspect', '--memory', '1', guest('hello')])).code).toBe(125);
    const r = await cli(['inspect', '--sha256', '0'.repeat(64), guest('hello')]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^ERR_INTEGRITY: /);
  });
});

describe.concurrent('manifests: wasmvisor run app.json', () => {
  function app(name: string, manifest: Record<string, unknown>): string {
    const dir = mkdtempSync(path.join(tmp, 'app-'));
    copyFileSync(guest('hello'), path.join(dir, 'hello.wasm'));
    const file = path.join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify(manifest, null, 2));
    return file;
  }

  it('--name overrides the manifest\'s name, so a file name that is no partition name needs none (it was refused as if the name were missing)', async () => {
    const file = app('my app', { module: 'hello.wasm', devices: { console: true } });
    const refused = await cli(['run', file]);
    expect(refused.code).toBe(2);
    // Named as the remote run names a module file that is no partition name: by --name (options.ts needsName).
    expect(refused.stderr).toBe(`ERR_INVALID_ARGUMENT: run needs --name <name> (manifest ${file} names none, and its file name "my app" is not a valid partition name); see wasmvisor run --help\n`);
    const r = await cli(['run', '--name', 'ok', '--json', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)[0]).toBe('Hello from a Wasmvisor partition!');
  });

  it('inspect reads a manifest without a name whatever its file is called: it creates no partition, so needs no name (it was refused "name: is required")', async () => {
    const file = app('my app', { module: 'hello.wasm', wasi: {}, devices: { console: true } });
    const r = await cli(['inspect', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const out = lines(r.stdout);
    expect(out[0]).toMatch(new RegExp(`^module: +${path.join(path.dirname(file), 'hello.wasm').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(\\d+ bytes\\)$`));
    expect(out).toContain('policy:     admitted (memory maximum clamped to 256 pages)');
    expect(out).toContain('wasi:       enabled');
    const json = await cli(['inspect', '--json', file]);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ command: 'inspect', wasi: true, kind: 'command', error: null, exitStatus: 0 });
    // What the manifest says wrongly is still refused, naming the file.
    const bad = app('my app', { name: 'My App', module: 'hello.wasm' });
    const refused = await cli(['inspect', bad]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(new RegExp(`^ERR_INVALID_ARGUMENT: manifest .*my app\\.json: name: `));
  });

  it('runs the module the manifest names, relative to the manifest, from any directory', async () => {
    const file = app('hello-app', { module: 'hello.wasm', args: ['x'], devices: { console: true } });
    const r = await cli(['run', file], { cwd: os.tmpdir() });
    expect(lines(r.stdout)).toEqual(['Hello from a Wasmvisor partition!', ABI_LINE, 'arg[0]=x']);
    expect(r.code).toBe(0);
    // Guest arguments and flags on the command line override the manifest's.
    const over = await cli(['run', '--json', file, 'y']);
    expect(lines(over.stdout).at(-1)).toBe('arg[0]=y');
    expect((await cli(['run', '--memory', '1', file])).code).toBe(125);
  });

  it('a typo in the manifest names the file and the path', async () => {
    const file = app('typo', { module: 'hello.wasm', limits: { timeout: 10 } });
    const r = await cli(['run', file]);
    expect(r).toMatchObject({ code: 2, stdout: '', stderr: `ERR_INVALID_ARGUMENT: manifest ${file}: limits.timeout: unknown key; did you mean timeoutMs?\n` });
  });

  it('a sha256 pin: a different module is refused with ERR_INTEGRITY', async () => {
    const file = app('pinned', { module: 'hello.wasm', sha256: 'a'.repeat(64), devices: { console: true } });
    const r = await cli(['run', file]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^ERR_INTEGRITY: /);
  });

  it("a reactor's manifest (kind: 'reactor') is refused, naming call, with the --json report: run never waits for calls", async () => {
    const file = app('plugin', { module: 'hello.wasm', kind: 'reactor' });
    copyFileSync(guest('transform'), path.join(path.dirname(file), 'hello.wasm'));
    // It used to start the reactor and wait for an exit that never came: Node ended the process
    // with status 13 (an unsettled promise), with no verdict and no JSON on stderr.
    const r = await cli(['run', '--json', file]);
    const verdict = `ERR_INVALID_ARGUMENT: manifest ${file} describes a reactor (kind: 'reactor'): run runs a command (its _start); call an export with wasmvisor call ${file} <export>`;
    expect(r).toMatchObject({ code: 2, stdout: '' });
    const [line, json] = r.stderr.trimEnd().split('\n');
    expect(line).toBe(verdict);
    expect(JSON.parse(json!)).toMatchObject({ command: 'run', state: 'not-run', exitStatus: 2, error: { code: 'ERR_INVALID_ARGUMENT' } });
    // call runs the same manifest.
    expect(await cli(['call', file, 'upper', '--input', 'ok'])).toMatchObject({ code: 0, stdout: 'OK' });
  });
});
