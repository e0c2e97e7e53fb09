/**
 * The CLI's documented contract against the code, as an outside reviewer reads it: README.md's
 * error table lists exactly the codes host/errors.ts defines; its exit-status table gives every
 * code the status the CLI exits with (host/cli/common.ts); every option of every subcommand is
 * documented, and every option the README's synopsis shows exists.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { attestKeyCommand, attestVerifyCommand } from '../../host/cli/attest.ts';
import { auditShowCommand, auditVerifyCommand } from '../../host/cli/audit.ts';
import { callCommand } from '../../host/cli/call.ts';
import { exitStatus } from '../../host/cli/common.ts';
import { deleteCommand } from '../../host/cli/delete.ts';
import { demoCommand } from '../../host/cli/demo.ts';
import { disksCommand } from '../../host/cli/disks.ts';
import { inspectCommand } from '../../host/cli/inspect.ts';
import { keygenCommand } from '../../host/cli/keygen.ts';
import type { CommandSpec, OptionTable } from '../../host/cli/options.ts';
import { runCommand } from '../../host/cli/run.ts';
import { signCommand } from '../../host/cli/sign.ts';
import { verifyCommand } from '../../host/cli/verify.ts';
import { ErrorCodes } from '../../host/errors.ts';
import { DEFAULT_MAX_MODULE_BYTES } from '../../host/loader/read.ts';
import { MAX_REPORT_BYTES } from '../../host/security/attestation.ts';
import { MAX_SIGNATURE_BYTES } from '../../host/security/spec.ts';
import { MAX_KEY_FILE_BYTES } from '../../host/security/keys.ts';
import { MAX_POLICY_BYTES } from '../../host/security/policy.ts';
import { httpStatus } from '../../host/mgmt/server.ts';
import { LABS } from '../../host/labs/catalog.ts';

const read = (file: string): string => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
const readme = read('README.md');
/** The rows of the markdown table that follows `heading` (up to the next blank line after it). */
function table(text: string, header: string): string[][] {
  const at = text.indexOf(header);
  expect(at, `a table headed ${header}`).toBeGreaterThanOrEqual(0);
  const rows: string[][] = [];
  for (const line of text.slice(at).split('\n').slice(2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.split('|').slice(1, -1).map((c) => c.trim()));
  }
  return rows;
}

describe("README.md's error table and exit-status table", () => {
  it('the error table lists every code host/errors.ts defines, and no other', () => {
    const listed = table(readme, '| code | meaning |').map(([code]) => /^`(ERR_\w+)`$/.exec(code!)?.[1]);
    expect([...listed].sort()).toEqual([...ErrorCodes].sort());
  });

  it('the exit-status table gives each code the status the CLI exits with', () => {
    const rows = table(readme, '| exit status | when |');
    const documented = new Map<string, string>();
    for (const [status, when] of rows) {
      for (const m of when!.matchAll(/`(ERR_\w+)`/g)) {
        // A code may be named in another row's explanation (ERR_GUEST_CALL in the guest's row): its own row is the first one naming it alone.
        if (!documented.has(m[1]!)) documented.set(m[1]!, status!);
      }
    }
    for (const code of ErrorCodes) {
      const status = exitStatus(code);
      if (code === 'ERR_GUEST_CALL') {
        // call: the export's own status & 0xff (documented in the guest's row), else 1.
        expect(documented.get(code), code).toBe("guest's code & 0xff");
        continue;
      }
      expect(documented.get(code), `${code} exits with ${status}`).toBe(String(status));
    }
    const numbers = rows.map(([s]) => s).filter((s) => /^\d+$/.test(s!)).map(Number);
    for (const n of numbers) expect(ErrorCodes.some((c) => exitStatus(c) === n) || n === 1, `exit status ${n} is one the CLI gives`).toBe(true);
  });
});

describe("docs/MANAGEMENT.md's error table", () => {
  it('gives each code the HTTP status the management server answers with (ERR_CONNECTION is the client\'s own)', () => {
    const documented = new Map<string, number>();
    for (const [status, codes] of table(read('docs/MANAGEMENT.md'), '| status | code |')) {
      for (const m of codes!.matchAll(/`(ERR_\w+)`/g)) if (!documented.has(m[1]!)) documented.set(m[1]!, Number(status));
    }
    for (const code of ErrorCodes.filter((c) => c !== 'ERR_CONNECTION')) expect(documented.get(code), `${code} answers HTTP ${httpStatus(code)}`).toBe(httpStatus(code));
  });
});

describe('every option of every subcommand is documented, and every documented one exists', () => {
  const commands: CommandSpec<OptionTable>[] = [
    runCommand,
    callCommand,
    inspectCommand,
    deleteCommand,
    disksCommand,
    demoCommand,
    keygenCommand,
    signCommand,
    verifyCommand,
    attestVerifyCommand,
    attestKeyCommand,
    auditVerifyCommand,
    auditShowCommand,
  ] as unknown as CommandSpec<OptionTable>[];
  const synopsis = /## Command line\n\n```sh\n([\s\S]*?)\n```/.exec(readme)?.[1] ?? '';
  const mentioned = new Set([...readme.matchAll(/(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!));

  for (const command of commands) {
    it(`${command.name}: each of its options is in README.md; each option its synopsis line there shows is one of them`, () => {
      const options = Object.keys(command.options).map((k) => `--${k}`);
      for (const o of options) expect(mentioned.has(o), `${command.name} ${o} is documented in README.md`).toBe(true);
      const line = synopsis.split('\n').find((l) => l.startsWith(`npx wasmvisor ${command.name} `) || l === `npx wasmvisor ${command.name}`);
      expect(line, `README.md's "Command line" shows ${command.name}`).toBeDefined();
      for (const m of line!.replace(/#.*$/, '').matchAll(/(--[a-z][a-z0-9-]*)/g)) expect(options.concat('--help'), `${command.name} takes ${m[1]}`).toContain(m[1]);
    });
  }

  // The commands with their own parsers (util.parseArgs): their option names, read from the
  // source, must be in the document that is their manual.
  const ownParsers: [string, string][] = [
    ['host/cli/serve.ts', 'docs/MANAGEMENT.md'],
    ['host/cli/token.ts', 'docs/MANAGEMENT.md'],
    ['host/cli/cert.ts', 'docs/MANAGEMENT.md'],
    ['host/cli/remote.ts', 'docs/MANAGEMENT.md'],
    ['host/labs/cli.ts', 'docs/LABS.md'],
  ];
  for (const [file, manual] of ownParsers) {
    it(`${file}: each option it parses is in ${manual}; README's synopsis shows only options it parses`, () => {
      const names = new Set([...read(file).matchAll(/'?([a-z][a-z-]*)'?: \{ type: '(?:string|boolean)'/g)].map((m) => m[1]!));
      expect(names.size).toBeGreaterThan(0);
      const doc = read(manual);
      for (const name of names) expect(doc, `--${name} (${file}) is documented in ${manual}`).toMatch(new RegExp(`--${name}(?![a-z-])`));
      // And the other way: every option README.md's synopsis line for the command shows is one it parses.
      const command = { 'host/cli/serve.ts': 'serve', 'host/cli/token.ts': 'token', 'host/cli/cert.ts': 'cert', 'host/labs/cli.ts': 'lab' }[file];
      if (command === undefined) return;
      const line = synopsis.split('\n').find((l) => l.startsWith(`npx wasmvisor ${command} `));
      expect(line, `README.md's "Command line" shows ${command}`).toBeDefined();
      for (const m of line!.replace(/#.*$/, '').matchAll(/--([a-z][a-z0-9-]*)/g)) expect([...names, 'help'], `${command} takes --${m[1]}`).toContain(m[1]);
    });
  }
});

describe("README.md's table of the key and policy files the command line reads", () => {
  it('states the bounds the code reads them with, and that each may be a pipe', () => {
    const rows = new Map(table(readme, '| option | bound | a pipe |').map(([option, bound, pipe]) => [option!, { bound: bound!, pipe: pipe! }]));
    const key = rows.get('`sign --key`, `verify --key`, `attest verify --key`');
    const policy = rows.get('`--policy` (`run`, `call`, `inspect`)');
    expect(key?.bound).toContain(`(${MAX_KEY_FILE_BYTES} bytes)`);
    expect(policy?.bound).toContain(`(${MAX_POLICY_BYTES} bytes)`);
    expect(key?.pipe).toMatch(/^read\b/);
    expect(policy?.pipe).toMatch(/^read\b/);
    // What the security commands read once: the module, a detached signature, a report.
    for (const [option, bound] of [
      ['`verify --signature`', MAX_SIGNATURE_BYTES],
      ['the module of `sign` and `verify`', DEFAULT_MAX_MODULE_BYTES],
      ['the report of `attest verify`', MAX_REPORT_BYTES],
    ] as const) {
      expect(rows.get(option)?.bound, option).toContain(`(${bound} bytes)`);
      expect(rows.get(option)?.pipe, option).toMatch(/^read\b/);
    }
    // And each option's help says the same bound.
    for (const command of [signCommand, verifyCommand, attestVerifyCommand]) expect(command.options.key.help, command.name).toContain(`at most ${MAX_KEY_FILE_BYTES} bytes`);
    for (const command of [runCommand, callCommand, inspectCommand]) expect(command.options.policy.help, command.name).toContain(`at most ${MAX_POLICY_BYTES} bytes`);
  });
});

describe("docs/LABS.md's table of the labs", () => {
  it('lists every lab of the catalog in order, with its minutes, the code and violation it expects and the audit record it must write', () => {
    const rows = table(read('docs/LABS.md'), '| # | lab | minutes | defence | expected code | audit record |');
    expect(rows.map(([n, id]) => `${n} ${id}`)).toEqual(LABS.map((lab) => `${lab.order} \`${lab.id}\``));
    for (const [, id, minutes, , code, audit] of rows) {
      const lab = LABS.find((l) => `\`${l.id}\`` === id)!;
      expect(Number(minutes), `${lab.id}: minutes`).toBe(lab.minutes);
      const codes = (text: string) => [...text.matchAll(/\b(?:ERR|HV_STATUS)_[A-Z_]+/g)].map((m) => m[0]).sort();
      // The expected code, and the violation's status when the lab expects one (the same status may be both).
      expect(codes(code!), `${lab.id}: expected code`).toEqual([...new Set([lab.expect.code, lab.expect.violation?.status].filter((c) => c !== undefined))].sort());
      expect(audit, `${lab.id}: audit record`).toMatch(new RegExp(`^\`${lab.expect.audit.action.replace('.', '\\.')}\` ${lab.expect.audit.outcome}\\b`));
      // A code the row names for the record is the one the lab expects the record to carry.
      if (codes(audit!).length > 0) expect(codes(audit!), `${lab.id}: the audit record's code`).toEqual([lab.expect.audit.code]);
    }
    // "About three hours in all".
    const total = LABS.reduce((sum, lab) => sum + lab.minutes, 0);
    expect(read('docs/LABS.md')).toContain('About three hours in all');
    expect(Math.round(total / 60)).toBe(3);
  });
});
