/**
 * Lab runs started from the dashboard: at most MAX_RUNS at once, each with its own run id, its
 * events and result streamed through the telemetry, its audit records written to the host's
 * audit log.
 */
import { randomBytes } from 'node:crypto';
import { BusyError, InvalidArgumentError, NotFoundError, NotImplementedError } from '../errors.ts';
import type { AuditEntry } from '../mgmt/audit.ts';
import { findLab } from './catalog.ts';
import type { AuditLine, LabResult } from './lab.ts';
import { isLive, runLab } from './runner.ts';
import type { Telemetry } from './telemetry.ts';
import { quoted } from '../escape.ts';

/** Lab runs at once (each may start several partitions). */
export const MAX_RUNS = 4;

export class LabSession {
  private readonly running = new Map<string, Promise<LabResult>>();
  private readonly results = new Map<string, LabResult>();
  private closed = false;
  private readonly abort = new AbortController();

  constructor(
    private readonly telemetry: Telemetry,
    private readonly audit: (entry: AuditEntry) => AuditLine,
  ) {}

  /** Starts a run; returns its id at once (the run goes on; its events stream). */
  start(labId: string, mode: 'defence' | 'defence-off'): string {
    if (this.closed) throw new InvalidArgumentError('the lab session is closing');
    const lab = findLab(labId);
    if (lab === undefined) throw new NotFoundError(`no lab named ${quoted(labId)}`);
    if (!isLive(lab)) throw new NotImplementedError(`lab ${lab.id} is coming: its feature (${lab.feature}) is not in this build`);
    if (mode === 'defence-off' && lab.defenceOff === undefined) throw new InvalidArgumentError(`lab ${lab.id} has no comparison with the defence off`);
    if (this.running.size >= MAX_RUNS) throw new BusyError(`${MAX_RUNS} labs are running; wait for one to finish`);
    const run = `${lab.id}-${mode === 'defence' ? 'on' : 'off'}-${randomBytes(3).toString('hex')}`;
    this.telemetry.labStart(run, lab.id, mode);
    const done = runLab(lab, {
      mode,
      runLabel: run,
      watcher: this.telemetry,
      signal: this.abort.signal,
      audit: this.audit,
      onEvent: (event) => this.telemetry.labEvent(run, lab.id, event),
    }).then((result) => {
      this.running.delete(run);
      this.results.set(run, result);
      if (this.results.size > 100) this.results.delete(this.results.keys().next().value!);
      this.telemetry.labEnd(run, lab.id, result);
      return result;
    });
    this.running.set(run, done);
    return run;
  }

  /** A finished run's result, or null while it runs; ERR_NOT_FOUND for an unknown id. */
  result(run: string): LabResult | null {
    const r = this.results.get(run);
    if (r !== undefined) return r;
    if (this.running.has(run)) return null;
    throw new NotFoundError(`no lab run ${quoted(run)}`);
  }

  /** Stops the runs in progress and waits until their hypervisors are closed. */
  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort();
    await Promise.allSettled([...this.running.values()]);
  }
}
