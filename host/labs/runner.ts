/**
 * Runs a lab (the attack with the defence on, or the comparison with it off) and judges the
 * result against the lab's expectation: the expected code must have been seen, the expected
 * violation reported, the expected audit record written, and the lab must have reported no
 * problem. The same function serves the dashboard and the terminal; they differ only in how they
 * render the events.
 */
import { WasmvisorError } from '../errors.ts';
import type { AuditEntry } from '../mgmt/audit.ts';
import { LabContext, type Watcher } from './context.ts';
import { featurePresent } from './features.ts';
import type { AuditLine, LabDefinition, LabEvent, LabResult } from './lab.ts';

/** A run that takes longer than this is ended (its hypervisors closed) and fails. */
export const LAB_TIMEOUT_MS = 90_000;

export interface RunOptions {
  mode?: 'defence' | 'defence-off';
  /** Every event, as it happens. */
  onEvent?: (event: LabEvent) => void;
  /** Where audit records go, besides the run's result (the dashboard's audit stream, the session's log). */
  audit?: (entry: AuditEntry) => AuditLine | void;
  watcher?: Watcher;
  /** Unique among concurrent runs; shown as the scope of the run's partitions. Default: the lab's id. */
  runLabel?: string;
  timeoutMs?: number;
  /** Ends the run early (its hypervisors are closed); the run fails with ERR_KILLED. */
  signal?: AbortSignal;
}

/** Whether the lab can run in this build: its feature is here and its attack is written. */
export function isLive(lab: LabDefinition): boolean {
  return lab.run !== undefined && featurePresent(lab.feature);
}

let localSeq = 0;

export async function runLab(lab: LabDefinition, options: RunOptions = {}): Promise<LabResult> {
  const mode = options.mode ?? 'defence';
  const body = mode === 'defence' ? lab.run : lab.defenceOff?.run;
  if (!isLive(lab) || body === undefined) {
    throw new WasmvisorError('ERR_NOT_IMPLEMENTED', mode === 'defence' ? `lab ${lab.id} is not live in this build` : `lab ${lab.id} has no comparison with the defence off`);
  }
  const events: LabEvent[] = [];
  const records: AuditLine[] = [];
  const emit = (event: LabEvent) => {
    events.push(event);
    options.onEvent?.(event);
  };
  const audit = (entry: AuditEntry) => {
    const line: AuditLine = options.audit?.(entry) ?? { seq: ++localSeq, time: new Date().toISOString(), ...entry };
    records.push(line);
    emit({ kind: 'audit', record: line });
  };
  const started = performance.now();
  const ctx = new LabContext({ labId: lab.id, mode, runLabel: options.runLabel ?? lab.id, emit, audit, watcher: options.watcher });
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeoutMs = options.timeoutMs ?? LAB_TIMEOUT_MS;
    await Promise.race([
      body(ctx),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new WasmvisorError('ERR_LIMIT_CPU', `the lab did not finish within ${timeoutMs} ms`)), timeoutMs);
        const abort = () => reject(new WasmvisorError('ERR_KILLED', 'the run was stopped'));
        if (options.signal?.aborted) abort();
        else options.signal?.addEventListener('abort', abort, { once: true });
      }),
    ]);
  } catch (error) {
    ctx.problem(error instanceof WasmvisorError ? `${error.code}: ${error.message}` : `the lab failed: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    clearTimeout(timer);
    await ctx.close();
  }
  return judge(lab, mode, ctx, records, events, performance.now() - started);
}

function judge(lab: LabDefinition, mode: 'defence' | 'defence-off', ctx: LabContext, records: AuditLine[], events: LabEvent[], durationMs: number): LabResult {
  const problems = [...ctx.problems];
  if (mode === 'defence-off') {
    if (ctx.breaches.length === 0 && problems.length === 0) problems.push('the comparison did not show the attack succeeding');
    return {
      id: lab.id,
      mode,
      verdict: problems.length === 0 ? 'breached' : 'failed',
      code: ctx.codes[0] ?? null,
      violation: ctx.violations[0] ?? null,
      audit: null,
      problems,
      breaches: [...ctx.breaches],
      events,
      durationMs,
    };
  }
  const e = lab.expect;
  const code = ctx.codes.find((c) => c.code === e.code) ?? null;
  if (code === null) problems.push(`expected the code ${e.code}; saw ${ctx.codes.length ? ctx.codes.map((c) => c.code).join(', ') : 'none'}`);
  let violation = null;
  if (e.violation) {
    const want = e.violation;
    violation = ctx.violations.find((v) => v.status === want.status && (want.call === undefined || v.call === want.call)) ?? null;
    if (violation === null) problems.push(`expected a violation ${want.call ?? ''} ${want.status}; none was reported`.replace('  ', ' '));
  }
  const audit = records.find((r) => r.action === e.audit.action && r.outcome === e.audit.outcome && (e.audit.code === undefined || r.code === e.audit.code)) ?? null;
  if (audit === null) problems.push(`expected an audit record ${e.audit.action} (${e.audit.outcome}${e.audit.code ? `, ${e.audit.code}` : ''}); none was written`);
  return { id: lab.id, mode, verdict: problems.length === 0 ? 'held' : 'failed', code, violation, audit, problems, breaches: [], events, durationMs };
}
