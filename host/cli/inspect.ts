import { escapeText } from '../escape.ts';
import type { Inspection } from '../loader/pipeline.ts';
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
