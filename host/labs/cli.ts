/**
 * `wasmvisor lab`: the dashboard and the labs in a browser (a management host on 127.0.0.1 with
 * a temporary config directory and an Owner token for the page), or one lab, or all of them, in
 * the terminal with the same narration and verdict.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, NotImplementedError } from '../errors.ts';
import { MemoryAuditLog } from '../mgmt/audit.ts';
import { serve } from '../mgmt/serve.ts';
import { intOption, usage } from '../cli/mgmt-args.ts';
import { checkPositionals } from '../cli/options.ts';
import { LABS, findLab } from './catalog.ts';
import { Dashboard } from './dashboard.ts';
import { FEATURES } from './features.ts';
import type { LabDefinition } from './lab.ts';
import { isLive, runLab } from './runner.ts';
import { eventText, header, modeHeading, resultText } from './terminal.ts';
import { quoted } from '../escape.ts';

/** How long the page's token lives: a working day and then some. */
const TOKEN_LIFETIME_MS = 24 * 3600_000;

function out(text: string): void {
  process.stdout.write(text + '\n');
}

/** Closest lab id, for "did you mean". */
function nearest(id: string): string | null {
  let best: string | null = null;
  let bestScore = Infinity;
  for (const lab of LABS) {
    const a = id;
    const b = lab.id;
    const d: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let prev = d[0]!;
      d[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const cur = d[j]!;
        d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = cur;
      }
    }
    if (d[b.length]! < bestScore) {
      bestScore = d[b.length]!;
      best = lab.id;
    }
  }
  if (best !== null && bestScore <= Math.max(3, id.length / 2)) return best;
  // A part of a name (`memory`): the labs it could mean.
  const containing = id.length >= 3 ? LABS.filter((l) => l.id.includes(id.toLowerCase())).map((l) => l.id) : [];
  return containing.length > 0 ? containing.join(' or ') : null;
}

function list(): number {
  const width = Math.max(...LABS.map((l) => l.id.length));
  for (const lab of LABS) {
    const status = isLive(lab) ? 'live  ' : 'coming';
    out(`${String(lab.order).padStart(2)}  ${lab.id.padEnd(width)}  ${status}  ${String(lab.minutes).padStart(2)} min  ${lab.title}${isLive(lab) ? '' : ` (needs ${FEATURES[lab.feature].what})`}`);
  }
  return 0;
}

/** Runs labs in the terminal; true if every one held (and every comparison showed the breach). */
async function inTerminal(labs: LabDefinition[], compare: boolean): Promise<boolean> {
  const audit = new MemoryAuditLog();
  let ok = true;
  for (const lab of labs) {
    out(header(lab, lab.order, LABS.length));
    if (!isLive(lab)) continue;
    for (const mode of compare && lab.defenceOff ? (['defence', 'defence-off'] as const) : (['defence'] as const)) {
      out(modeHeading(lab, mode));
      const result = await runLab(lab, { mode, onEvent: (e) => out(eventText(e)), audit: (e) => audit.note(e) });
      out(resultText(result));
      out('');
      if (result.verdict === 'failed') ok = false;
    }
  }
  await audit.close();
  return ok;
}

async function dashboard(port: number): Promise<number> {
  const config = mkdtempSync(path.join(os.tmpdir(), 'wasmvisor-lab-host-'));
  try {
    const dash = new Dashboard({ labs: true });
    const running = await serve({ config, bind: '127.0.0.1', port, extension: dash, log: (line) => process.stderr.write(line + '\n') });
    try {
      const { token } = await running.tokens.create({ name: 'dashboard', role: 'Owner', scope: '/', lifetimeMs: TOKEN_LIFETIME_MS, createdBy: 'wasmvisor lab' });
      out(`wasmvisor lab: dashboard at ${running.url}/dashboard/#token=${token}`);
      out('  open that address in a browser on this machine (the token after # is the page\'s credential; it never leaves the page)');
      out(`  ${LABS.filter(isLive).length} labs live, ${LABS.filter((l) => !isLive(l)).length} coming; Ctrl-C stops`);
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      process.stderr.write('wasmvisor lab: shutting down\n');
    } finally {
      await running.close();
    }
    return 0;
  } finally {
    rmSync(config, { recursive: true, force: true });
  }
}

export async function labMain(argv: string[]): Promise<number> {
  const { values, positionals } = usage('lab', {
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { list: { type: 'boolean' }, all: { type: 'boolean' }, 'no-compare': { type: 'boolean' }, port: { type: 'string' } },
  });
  // Options that belong to another form are refused, never silently ignored.
  const terminal = values.all === true || positionals.length > 0;
  if (values.list && (terminal || values.port !== undefined || values['no-compare'])) throw new InvalidArgumentError('lab --list takes no other option or lab name');
  if (values.port !== undefined && terminal) throw new InvalidArgumentError("--port is the dashboard's (wasmvisor lab --port <n>); a lab in the terminal serves nothing");
  if (values['no-compare'] && !values.list && !terminal) throw new InvalidArgumentError('--no-compare goes with a lab name or --all (on the dashboard, each lab has its own button for the defence-off run)');
  if (values.list) return list();
  const compare = values['no-compare'] !== true;
  if (values.all) {
    if (positionals.length > 0) throw new InvalidArgumentError('lab --all takes no lab name');
    return (await inTerminal(LABS.filter(isLive), compare)) ? 0 : 1;
  }
  if (positionals.length === 0) return dashboard(intOption(values.port, 'port', 0, 65535) ?? 0);
  checkPositionals('lab', positionals, ['name'], 0);
  const id = positionals[0]!;
  const lab = findLab(id);
  if (lab === undefined) {
    const near = nearest(id);
    throw new InvalidArgumentError(`no lab named ${quoted(id)}${near ? `; did you mean ${near}?` : ''} (wasmvisor lab --list)`);
  }
  if (!isLive(lab)) {
    out(header(lab, lab.order, LABS.length));
    throw new NotImplementedError(`lab ${lab.id} is coming: this build does not have ${FEATURES[lab.feature].what}`);
  }
  return (await inTerminal([lab], compare)) ? 0 : 1;
}
