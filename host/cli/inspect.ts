/** `wasmvisor inspect`: describe a module and say whether the policy admits it. */
import { Hypervisor } from '../hypervisor.ts';
import { escapeText } from '../escape.ts';
import type { Inspection } from '../loader/pipeline.ts';
import { PartitionLimitsSchema, PartitionSpecSchema } from '../schema/index.ts';
import { exitStatus, jsonOnFailure } from './common.ts';
import { stderr } from './stderr.ts';
import { flag, numberIn, parseOrHelp, stringIn, filePath, value, type CommandSpec, type OptionTable } from './options.ts';
import { readSourceUnnamed, signatureNeedsPolicy } from './partition-options.ts';
import { MAX_POLICY_BYTES, Policy } from '../security/policy.ts';
import type { FuncSig, Limits } from '../loader/sections.ts';

function sig(s: FuncSig | undefined): string {
  if (s === undefined) return '';
  const results = s.results.length === 0 ? '()' : s.results.length === 1 ? s.results[0]! : `(${s.results.join(', ')})`;
  return ` (${s.params.join(', ')}) -> ${results}`;
}

function limits(l: Limits, unit: string): string {
  return `initial ${l.initial} ${unit}, maximum ${l.maximum === null ? 'none' : `${l.maximum} ${unit}`}`;
}

/** The human-readable report of `wasmvisor inspect`. Names come from the module: every one is escaped. */
export function formatInspection(file: string, i: Inspection): string {
  const lines: string[] = [];
  const row = (k: string, v: string) => lines.push(`${(k ? k + ':' : '').padEnd(12)}${v}`);
  row('module', `${escapeText(file)} (${i.size} bytes)`);
  row('sha256', i.measurement);
  if (i.imports.length === 0) row('imports', 'none');
  i.imports.forEach((imp, n) => row(n === 0 ? 'imports' : '', `${escapeText(`${imp.module}.${imp.name}`)} ${imp.kind}${'sig' in imp ? sig(imp.sig) : ''}`));
  if (i.exports.length === 0) row('exports', 'none');
  i.exports.forEach((exp, n) => row(n === 0 ? 'exports' : '', `${escapeText(exp.name)} ${exp.kind}${'sig' in exp ? sig(exp.sig) : ''}`));
  if (i.memories.length === 0) row('memory', 'none');
  i.memories.forEach((m) => row('memory', `${limits(m, 'pages')}${m.shared ? ', shared' : ''}${m.memory64 ? ', 64-bit' : ''}`));
  if (i.tables.length === 0) row('tables', 'none');
  i.tables.forEach((t, n) => row(n === 0 ? 'tables' : '', `${t.elementType} ${limits(t, 'elements')}`));
  row('start', i.start === null ? 'none' : `function ${i.start}`);
  const v = i.verdict;
  if (v.admitted) {
    const clamps: string[] = [];
    if (v.plan.memoryMaximum !== null) clamps.push(`memory maximum clamped to ${v.plan.memoryMaximum} pages`);
    v.plan.tableMaxima.forEach((m, n) => m !== null && clamps.push(`table ${n} maximum clamped to ${m} elements`));
    row('policy', `admitted${clamps.length ? ` (${clamps.join('; ')})` : ''}`);
  } else {
    row('policy', `refused: ${v.code}: ${escapeText(v.message)}`);
  }
  return lines.join('\n') + '\n';
}

export const inspectCommand = {
  name: 'inspect',
  summary: 'describe a module and say whether run or call would admit it',
  usage: ['wasmvisor inspect [options] <guest.wasm | app.json>'],
  options: {
    memory: value('<pages>', 'judge with this memory limit in 64 KiB pages', numberIn(PartitionLimitsSchema.properties.memoryPages), { default: '256' }),
    wasi: flag('judge with WASI preview1 admitted (automatic when the module imports it)'),
    reactor: flag('judge it as a reactor, as call would (automatic when it exports no _start)'),
    sha256: value('<hex>', 'judge it against this pinned SHA-256 too', stringIn(PartitionSpecSchema.properties.sha256)),
    policy: value('<file>', `judge it under this security policy too (a file or a pipe of at most ${MAX_POLICY_BYTES} bytes): signed by a trusted publisher or pinned (docs/SECURITY.md)`, filePath),
    signature: value('<file>', 'a detached signature for the module, for --policy', filePath),
    json: flag('print a JSON document instead of the table'),
  },
  positionals: { names: ['guest.wasm | app.json'], min: 1 },
  notes: `The verdict is the one run (for a command) or call (for a reactor) would reach with the same
options: a module that imports wasi_snapshot_preview1 is judged with WASI admitted, as run and call
enable it; one that exports no _start but functions () -> i32 (or _initialize) is a reactor. A
manifest is judged with its own limits, wasi, kind, sha256 and devices. With --policy the spec is
held to the policy's grants too, for the devices run (console, clock, entropy) or call (none)
would grant.

Exit status: 0 when admitted; otherwise the refusal's (125 for module, import, feature, limit,
integrity and policy refusals; 2 bad usage).

--json: the inspection as one JSON document: {"command":"inspect","measurement","size","imports",
"exports","memories","tables","start","verdict","kind","wasi","error","exitStatus"}; error is null
when admitted, else the refusal's {"code","message"}. Any other failure, a bad command line
included, prints {"command":"inspect","error":{"code","message"},"exitStatus"} instead.`,
} satisfies CommandSpec<OptionTable>;

export function inspect(argv: string[]): Promise<number> {
  return jsonOnFailure(inspectCommand, argv, () => inspectModule(argv));
}

async function inspectModule(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(inspectCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  signatureNeedsPolicy(values);
  // Nothing is created, so nothing is named: a manifest without a name is inspected whatever its file is called.
  const source = await readSourceUnnamed(positionals[0]!);
  const m = source.manifest;
  const kind = values.reactor ? 'reactor' : (m?.kind ?? source.shape?.kind ?? 'command');
  const wasi = values.wasi === true || m?.wasi !== undefined || (m === null && source.shape?.importsWasi === true);
  const memoryPages = values.memory ?? m?.limits?.memoryPages;
  const sha256 = values.sha256 ?? m?.sha256;
  const limits = {
    ...(memoryPages !== undefined ? { memoryPages } : {}),
    ...(m?.limits?.tableElements !== undefined ? { tableElements: m.limits.tableElements } : {}),
    ...(m?.limits?.fuel !== undefined ? { fuel: m.limits.fuel } : {}),
    ...(m?.limits?.cpu !== undefined ? { cpu: m.limits.cpu } : {}),
  };
  // The devices run (console, clock, entropy) or call (none) would grant, or the manifest's: a
  // policy's grants are judged for them, as run and call are held to them.
  const devices = m !== null ? (m.devices ?? {}) : kind === 'reactor' ? {} : { console: true, clock: true, entropy: true };
  const signature = values.signature ?? (typeof m?.signature === 'string' ? m.signature : undefined);
  const hv = new Hypervisor(values.policy !== undefined ? { policy: Policy.fromFile(values.policy, { pipes: true }) } : {});
  const inspection = await hv.inspect(source.file, limits, { wasi, kind, devices, ...(sha256 !== undefined ? { sha256 } : {}), ...(signature !== undefined ? { signature } : {}) });
  const status = inspection.verdict.admitted ? 0 : exitStatus(inspection.verdict.code);
  process.stdout.write(
    values.json
      ? JSON.stringify({ command: 'inspect', ...inspection, kind, wasi, error: inspection.verdict.admitted ? null : { code: inspection.verdict.code, message: inspection.verdict.message }, exitStatus: status }, null, 2) + '\n'
      : formatInspection(source.file, inspection) + `${'kind:'.padEnd(12)}${kind === 'reactor' ? 'reactor (wasmvisor call)' : 'command (wasmvisor run)'}\n${'wasi:'.padEnd(12)}${wasi ? 'enabled' : 'not used'}\n`,
  );
  if (!inspection.verdict.admitted) stderr.verdict(inspection.verdict.code, inspection.verdict.message);
  return status;
}
