/**
 * The labs in a terminal, through the real CLI (dist/cli.js): the list, every live lab with its
 * comparison (the same lab modules the dashboard runs), and the refusals.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LABS } from '../../host/labs/catalog.ts';
import { isLive } from '../../host/labs/runner.ts';

const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

function wasmvisor(args: string[], timeout = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('wasmvisor lab in a terminal', () => {
  it('--list names every lab, live or coming', async () => {
    const r = await wasmvisor(['lab', '--list']);
    expect(r.code).toBe(0);
    for (const lab of LABS) expect(r.stdout).toMatch(new RegExp(`^\\s*${lab.order}\\s+${lab.id}\\s+${isLive(lab) ? 'live' : 'coming'}\\b`, 'm'));
  });

  it('--all runs every live lab and its comparison: each defence holds with its code and audit record', async () => {
    const r = await wasmvisor(['lab', '--all'], 240_000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const sections = r.stdout.split(/^== /m).slice(1);
    const live = LABS.filter(isLive);
    expect(sections).toHaveLength(live.length);
    for (const [i, lab] of live.entries()) {
      const text = sections[i]!;
      expect(text.startsWith(lab.title)).toBe(true);
      for (const p of lab.concept) expect(text.replace(/\s+/g, ' ')).toContain(p);
      expect(text).toMatch(/^RESULT: HELD, the defence stopped the attack/m);
      expect(text).toMatch(new RegExp(`^   error code: ${lab.expect.code}: `, 'm'));
      const audit = /^ {3}audit: {6}(\{.*\})$/m.exec(text);
      expect(audit, `${lab.id}: the result names its audit record`).not.toBeNull();
      const record = JSON.parse(audit![1]!) as { action: string; outcome: string; code?: string };
      expect(record).toMatchObject({ action: lab.expect.audit.action, outcome: lab.expect.audit.outcome, ...(lab.expect.audit.code ? { code: lab.expect.audit.code } : {}) });
      if (lab.expect.violation) expect(text).toMatch(new RegExp(`^   violation: {2}\\S+ ${lab.expect.violation.call ?? '\\S+'} ${lab.expect.violation.status}: `, 'm'));
      if (lab.defenceOff) expect(text).toMatch(/^RESULT: without the defence the attack succeeded, as expected/m);
      expect(text).not.toMatch(/PROBLEM|missing:/);
    }
  }, 300_000);

  it('an unknown lab is a usage error with a suggestion', async () => {
    const r = await wasmvisor(['lab', 'memory-isolaton']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ERR_INVALID_ARGUMENT: no lab named "memory-isolaton"; did you mean memory-isolation\?/);
  });

  it('a coming lab prints its concept and says what it waits for', async () => {
    const coming = LABS.find((l) => !isLive(l));
    if (coming === undefined) return; // every lab is live in this build
    const r = await wasmvisor(['lab', coming.id]);
    expect(r.code).toBe(1);
    expect(r.stdout.replace(/\s+/g, ' ')).toContain(coming.concept[0]);
    expect(r.stdout).toMatch(/COMING: this lab needs/);
    expect(r.stderr).toMatch(/^ERR_NOT_IMPLEMENTED: lab \S+ is coming/);
  });

  it('bad options are usage errors', async () => {
    expect((await wasmvisor(['lab', '--port', '70000'])).code).toBe(2);
    expect((await wasmvisor(['lab', '--all', 'network'])).code).toBe(2);
    // node:util's advice to put a positional after '--' does not apply to lab: not printed.
    expect(await wasmvisor(['lab', '--bogus'])).toMatchObject({ code: 2, stderr: 'ERR_INVALID_ARGUMENT: lab: unknown option --bogus; see wasmvisor lab --help\n' });
  });

  // An option for another form is refused, not ignored: `lab --no-compare` started the dashboard
  // (which runs until killed), `--port` with a lab ran the lab, `--list` with a lab listed.
  for (const [args, message] of [
    [['lab', '--no-compare'], 'ERR_INVALID_ARGUMENT: --no-compare goes with a lab name or --all'],
    [['lab', '--port', '0', 'memory-isolation'], "ERR_INVALID_ARGUMENT: --port is the dashboard's"],
    [['lab', '--port', '0', '--all'], "ERR_INVALID_ARGUMENT: --port is the dashboard's"],
    [['lab', '--list', '--all'], 'ERR_INVALID_ARGUMENT: lab --list takes no other option or lab name'],
    [['lab', '--list', 'audit'], 'ERR_INVALID_ARGUMENT: lab --list takes no other option or lab name'],
    [['lab', 'memory'], 'ERR_INVALID_ARGUMENT: no lab named "memory"; did you mean memory-isolation or memory-exhaustion? (wasmvisor lab --list)'],
  ] as const) {
    it(`${args.join(' ')} is a usage error`, async () => {
      const r = await wasmvisor([...args], 30_000);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.startsWith(message), r.stderr).toBe(true);
    });
  }

  it('serve --dashboard refuses a non-loopback bind', async () => {
    const r = await wasmvisor(['serve', '--dashboard', '--bind', '0.0.0.0', '--tls-self-signed', '--config', '/nonexistent/never-created']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ERR_INVALID_ARGUMENT: --dashboard serves a page on loopback only/);
  });
});
