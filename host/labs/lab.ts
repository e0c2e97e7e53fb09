/**
 * A lab is a small declarative module: the concept it teaches (two or three paragraphs), the
 * feature of Wasmvisor it needs, what the defence must produce when the attack runs (the error
 * code, the violation, the audit record), the attack itself, and optionally the same attack with
 * the defence off where that can be shown safely. The same module drives the dashboard's lab page
 * and `wasmvisor lab <id>` in a terminal: both render the events a run emits, in order.
 */
import type { FeatureId } from './features.ts';
import type { LabContext } from './context.ts';

/** Audit outcomes, in the vocabulary of host/security's log and the management API's. */
export type Outcome = 'success' | 'denied' | 'failure';

/** What the defence must visibly produce for the lab to count as held. */
export interface Expectation {
  /** The exact error code or status the defence answers with (`ERR_IMPORT_DENIED`, `HV_STATUS_INVALID_ADDRESS`, ...). */
  code: string;
  /** A violation event the defence must report (status, and the call when it matters). */
  violation?: { status: string; call?: string };
  /** The audit record the defence must leave: its action and outcome, and code when it has one. */
  audit: { action: string; outcome: Outcome; code?: string };
}

/** The same attack with the defence taken away, where that can be shown without harm. */
export interface DefenceOff {
  /** One line: what is taken away (shown on the comparison's button). */
  title: string;
  /** A paragraph: how the comparison is run and why it is safe. */
  text: string;
  run(ctx: LabContext): Promise<void>;
}

export interface LabDefinition {
  /** URL- and command-line-safe name: `memory-isolation`. */
  id: string;
  title: string;
  /** Position in the suggested order (docs/LABS.md). */
  order: number;
  /** Minutes a class needs for it, discussion included. */
  minutes: number;
  /** The security goal it belongs to (isolation, runtime integrity, platform integrity, restricted access, audit). */
  goal: 'isolation' | 'runtime integrity' | 'platform integrity' | 'restricted access' | 'audit' | 'availability';
  /** Two or three paragraphs: the concept and the real-world attack it answers. */
  concept: string[];
  /** The Wasmvisor feature the lab needs; without it the lab shows as "coming". */
  feature: FeatureId;
  /** The guests the attack runs (build/guests/<name>.wasm), for the page and the docs. */
  guests: string[];
  expect: Expectation;
  /** The attack with the defence on. Absent while the feature's code is not in this build. */
  run?: (ctx: LabContext) => Promise<void>;
  defenceOff?: DefenceOff;
}

/** One step of a run, as the dashboard and the terminal show it. */
export type LabEvent =
  | { kind: 'say'; text: string }
  | { kind: 'step'; text: string }
  /** A line a guest printed (the only guest-made text a lab shows: what the lab deliberately prints). */
  | { kind: 'console'; partition: string; stream: 'stdout' | 'stderr'; line: string }
  | { kind: 'evidence'; label: string; text: string }
  | { kind: 'code'; code: string; message: string; source: string }
  | { kind: 'violation'; partition: string; call: string; status: string; reason: string }
  | { kind: 'audit'; record: AuditLine }
  | { kind: 'problem'; text: string };

/** An audit record as labs show it (one line of JSON in the page and the terminal). */
export interface AuditLine {
  seq: number;
  time: string;
  actor: string;
  action: string;
  target: string;
  outcome: Outcome;
  reason: string;
  code?: string;
  details?: Record<string, string | number | boolean | null>;
}

/** The verdict of a run: did the defence produce what the lab expects? */
export interface LabResult {
  id: string;
  mode: 'defence' | 'defence-off';
  /** `held`: every expectation met, no problem (defence on); `breached`: the attack worked (defence off, as the lab shows); `failed`: something was missing or went wrong. */
  verdict: 'held' | 'breached' | 'failed';
  /** The first code matching the expectation (or, when none did, what was seen). */
  code: { code: string; message: string; source: string } | null;
  violation: { partition: string; call: string; status: string; reason: string } | null;
  audit: AuditLine | null;
  /** What was expected and not seen, and problems the lab reported. */
  problems: string[];
  /** With the defence off: what the attack got. */
  breaches: string[];
  events: LabEvent[];
  durationMs: number;
}
