/**
 * The terminal's rendering of a lab: the same events, in the same order, as the dashboard's lab
 * page, as plain text (guest text escaped). `wasmvisor lab <id>` prints these as the run goes.
 */
import { escapeText as terminalSafe } from '../escape.ts';
import { FEATURES } from './features.ts';
import type { AuditLine, LabDefinition, LabEvent, LabResult } from './lab.ts';
import { isLive } from './runner.ts';

const WIDTH = 96;

/** Wraps a paragraph at WIDTH columns with an indent. */
export function wrap(text: string, indent = ''): string {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line.length > 0 && indent.length + line.length + 1 + word.length > WIDTH) {
      out.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(indent + line);
  return out.join('\n');
}

export function auditText(r: AuditLine): string {
  return terminalSafe(JSON.stringify(r));
}

export function header(lab: LabDefinition, index: number, total: number): string {
  const title = `${lab.title} (lab ${index} of ${total}, about ${lab.minutes} min, ${lab.goal})`;
  const lines = [`== ${title} ${'='.repeat(Math.max(3, WIDTH - title.length - 4))}`, ''];
  for (const p of lab.concept) lines.push(wrap(p), '');
  if (!isLive(lab)) {
    const f = FEATURES[lab.feature];
    lines.push(wrap(`COMING: this lab needs ${f.what} (${f.where}), which this build does not have yet. It turns live when that code lands.`), '');
  } else {
    const e = lab.expect;
    lines.push(wrap(`The defence must answer with ${e.code}${e.violation ? `, report a violation ${e.violation.call ? `${e.violation.call} ` : ''}${e.violation.status}` : ''}, and leave an audit record ${e.audit.action} (${e.audit.outcome}${e.audit.code ? `, ${e.audit.code}` : ''}).`), '');
  }
  return lines.join('\n');
}

export function modeHeading(lab: LabDefinition, mode: 'defence' | 'defence-off'): string {
  if (mode === 'defence') return '-- The attack, with the defence on';
  const off = lab.defenceOff!;
  return `-- What if the defence were off: ${off.title}\n${wrap(off.text, '   ')}`;
}

/** One event as one or more lines. */
export function eventText(e: LabEvent): string {
  switch (e.kind) {
    case 'say':
      return wrap(e.text, '   ');
    case 'step':
      return `>  ${e.text}`;
    case 'console':
      return `   [${e.partition}${e.stream === 'stderr' ? ' stderr' : ''}] ${terminalSafe(e.line)}`;
    case 'evidence':
      return `   ${e.label}: ${terminalSafe(e.text)}`;
    case 'code':
      return `   code: ${e.code}: ${terminalSafe(e.message)} (${e.source})`;
    case 'violation':
      return `   violation: ${e.partition} ${e.call} ${e.status}: ${terminalSafe(e.reason)}`;
    case 'audit':
      return `   audit: ${auditText(e.record)}`;
    case 'problem':
      return `   PROBLEM: ${terminalSafe(e.text)}`;
  }
}

export function resultText(result: LabResult): string {
  const lines: string[] = [];
  const seconds = (result.durationMs / 1000).toFixed(1);
  if (result.mode === 'defence') {
    lines.push(result.verdict === 'held' ? `RESULT: HELD, the defence stopped the attack (${seconds} s)` : `RESULT: FAILED (${seconds} s)`);
    if (result.code) lines.push(`   error code: ${result.code.code}: ${terminalSafe(result.code.message)}`);
    if (result.violation) lines.push(`   violation:  ${result.violation.partition} ${result.violation.call} ${result.violation.status}: ${terminalSafe(result.violation.reason)}`);
    if (result.audit) lines.push(`   audit:      ${auditText(result.audit)}`);
  } else {
    lines.push(result.verdict === 'breached' ? `RESULT: without the defence the attack succeeded, as expected (${seconds} s)` : `RESULT: FAILED: the comparison did not show what it should (${seconds} s)`);
    for (const b of result.breaches) lines.push(`   the attack got: ${terminalSafe(b)}`);
  }
  for (const p of result.problems) lines.push(`   missing: ${terminalSafe(p)}`);
  return lines.join('\n');
}
