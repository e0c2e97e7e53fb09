/** `wasmvisor inspect`: describe a module and say whether the policy admits it. */
import { parseArgs } from 'node:util';
import { Hypervisor } from '../hypervisor.ts';
import { InvalidArgumentError } from '../errors.ts';
import type { Inspection } from '../loader/pipeline.ts';
import { exitStatus, intOption, usage } from './common.ts';
import type { FuncSig, Limits } from '../loader/sections.ts';

function sig(s: FuncSig | undefined): string {
  if (s === undefined) return '';
  const results = s.results.length === 0 ? '()' : s.results.length === 1 ? s.results[0]! : `(${s.results.join(', ')})`;
  return ` (${s.params.join(', ')}) -> ${results}`;
}

function limits(l: Limits, unit: string): string {
  return `initial ${l.initial} ${unit}, maximum ${l.maximum === null ? 'none' : `${l.maximum} ${unit}`}`;
}

/** The human-readable report of `wasmvisor inspect`. */
export function formatInspection(file: string, i: Inspection): string {
  const lines: string[] = [];
  const row = (k: string, v: string) => lines.push(`${(k ? k + ':' : '').padEnd(12)}${v}`);
  row('module', `${file} (${i.size} bytes)`);
  row('sha256', i.measurement);
  if (i.imports.length === 0) row('imports', 'none');
  i.imports.forEach((imp, n) => row(n === 0 ? 'imports' : '', `${imp.module}.${imp.name} ${imp.kind}${'sig' in imp ? sig(imp.sig) : ''}`));
  if (i.exports.length === 0) row('exports', 'none');
  i.exports.forEach((exp, n) => row(n === 0 ? 'exports' : '', `${exp.name} ${exp.kind}${'sig' in exp ? sig(exp.sig) : ''}`));
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
    row('policy', `refused: ${v.code}: ${v.message}`);
  }
  return lines.join('\n') + '\n';
}

export async function inspect(argv: string[]): Promise<number> {
  const { values, positionals } = usage(() =>
    parseArgs({ args: argv, allowPositionals: true, strict: true, options: { memory: { type: 'string' }, json: { type: 'boolean' }, wasi: { type: 'boolean' } } }),
  );
  if (positionals.length !== 1) throw new InvalidArgumentError(`inspect takes one module, got ${positionals.length}; see wasmvisor --help`);
  const memoryPages = intOption(values.memory, 'memory', 1, 65536);
  const hv = new Hypervisor();
  const inspection = await hv.inspect(positionals[0]!, memoryPages !== undefined ? { memoryPages } : {}, { wasi: values.wasi === true });
  process.stdout.write(values.json ? JSON.stringify(inspection, null, 2) + '\n' : formatInspection(positionals[0]!, inspection));
  if (!inspection.verdict.admitted) {
    process.stderr.write(`${inspection.verdict.code}: ${inspection.verdict.message}\n`);
    return exitStatus(inspection.verdict.code);
  }
  return 0;
}

