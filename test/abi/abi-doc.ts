/**
 * docs/ABI.md, read as data: the tables outside reviewers write guests against. Tests check the
 * implementation against what this returns (test/sdk/abi-constants.test.ts: codes, devices and
 * versions; test/abi/statuses.test.ts: each call's inputs, outputs and statuses), so the doc is
 * the contract and not a copy of it. A row this cannot read fails loudly, never silently.
 */
import { readFileSync } from 'node:fs';
import { HvCall, HvStatus, type HvCallName, type HvStatusName } from '../../host/abi/codes.ts';
import { CALL_DEVICE } from '../../host/abi/dispatcher.ts';
import { packageRoot } from '../../host/paths.ts';

/** docs/ABI.md (found from the package root, so the fuzzers' bundle in build/ reads it too). */
export const ABI_DOC = readFileSync(new URL('docs/ABI.md', packageRoot), 'utf8');

/** The text of the section that starts with `heading` (a whole heading line) up to the next heading of any level. */
export function section(heading: string, doc = ABI_DOC): string {
  const at = doc.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`docs/ABI.md has no heading "${heading}"`);
  const body = doc.slice(at + heading.length + 2);
  const next = body.search(/^#{1,6} /m);
  return next < 0 ? body : body.slice(0, next);
}

/** One row of the table of calls (## Calls). */
export interface CallRow {
  hex: string;
  name: HvCallName;
  /** "(X.Y)" after the name, or undefined for 1.0. */
  version: string | undefined;
  /** The device column: a device name, or "—". */
  device: string;
  input: string;
  output: string;
  returns: string;
}

/** The table of calls, in the doc's order. */
export function callTable(doc = ABI_DOC): CallRow[] {
  const rows: CallRow[] = [];
  for (const m of doc.matchAll(/^\| `(0x[0-9a-f]{4})` \| `HV_CALL_(\w+)`(?: \((\d+\.\d+)\))? \| ([^|]+?) \| ([^|]+?) \| ([^|]+?) \| (.+) \|$/gm)) {
    const [, hex, name, version, device, input, output, returns] = m as unknown as [string, string, string, string | undefined, string, string, string, string];
    if (!(name in HvCall)) throw new Error(`docs/ABI.md's table of calls names HV_CALL_${name}, which codes.ts does not define`);
    rows.push({ hex, name: name as HvCallName, version, device, input, output, returns });
  }
  return rows;
}

/** The statuses named (as `NAME`) in a piece of the doc. */
export function statusesIn(text: string): HvStatusName[] {
  const names: HvStatusName[] = [];
  for (const m of text.matchAll(/`(?:HV_STATUS_)?([A-Z_]+)`/g)) {
    if (m[1]! in HvStatus && m[1] !== 'SUCCESS') names.push(m[1] as HvStatusName);
  }
  return names;
}

/** One row of "Statuses by call". */
export interface StatusRow {
  name: HvCallName;
  /** The `in_len` cell, as written. */
  inLen: string;
  /** The `out_cap` cell, as written. */
  outCap: string;
  /** The statuses the row lists (not the ones every call can return). */
  statuses: HvStatusName[];
}

/** The table of "Statuses by call", by call name. */
export function statusTable(doc = ABI_DOC): Map<HvCallName, StatusRow> {
  const text = section('### Statuses by call', doc);
  const rows = new Map<HvCallName, StatusRow>();
  for (const m of text.matchAll(/^\| `(\w+)` \| ([^|]+?) \| ([^|]+?) \| (.+) \|$/gm)) {
    const [, name, inLen, outCap, statuses] = m as unknown as [string, string, string, string, string];
    if (!(name in HvCall)) throw new Error(`docs/ABI.md's "Statuses by call" names ${name}, which codes.ts does not define`);
    if (rows.has(name as HvCallName)) throw new Error(`docs/ABI.md's "Statuses by call" lists ${name} twice`);
    rows.set(name as HvCallName, { name: name as HvCallName, inLen, outCap, statuses: statusesIn(statuses) });
  }
  return rows;
}

/**
 * What "Statuses by call" says every call can return besides its row: `INVALID_ADDRESS` and
 * `TOO_LARGE` (all but ABORT), `RATE_LIMITED` (all but EXIT and ABORT), `ACCESS_DENIED` (a
 * device's calls). test/abi/statuses.test.ts checks the doc still says so, and provokes each.
 */
export function commonStatuses(call: HvCallName): HvStatusName[] {
  if (call === 'ABORT') return [];
  const out: HvStatusName[] = ['INVALID_ADDRESS', 'TOO_LARGE'];
  if (call !== 'EXIT') out.push('RATE_LIMITED');
  if (CALL_DEVICE.has(HvCall[call])) out.push('ACCESS_DENIED');
  return out;
}

/** Every status docs/ABI.md lets each call return (its row and the common ones), by call name. */
export function documentedStatuses(doc = ABI_DOC): Map<HvCallName, Set<HvStatusName>> {
  const rows = statusTable(doc);
  return new Map([...rows].map(([name, row]) => [name, new Set([...row.statuses, ...commonStatuses(name)])]));
}

/** The input lengths a row accepts, and the status for the others (see ABI.md's `in_len` column). */
export interface InputRule {
  accepts(length: number): boolean;
  /** The status a length outside the rule gets: INVALID_ARGUMENT unless the cell says otherwise. */
  refusal(length: number): HvStatusName;
  /** Lengths at and around the rule's edges, 0 .. maxTransfer + 1. */
  edges: number[];
}

/**
 * Reads an `in_len` cell: `any`, `N`, `N or M`, `N, M or K`, `A .. B` (B may be `4 + MTU`, with
 * "(more: `STATUS`)" for the status above B), or `16 + 4096 × count` (count 1 .. maxCount).
 * `vars` gives the values of names (MTU, the count's maximum).
 */
export function inputRule(cell: string, maxTransfer: number, vars: { MTU: number; maxCount: number }): InputRule {
  const value = (expr: string): number => {
    const m = /^(\d+)(?: \+ (MTU|\d+))?$/.exec(expr.trim());
    if (!m) throw new Error(`cannot read the length "${expr}" in ABI.md`);
    return Number(m[1]) + (m[2] === undefined ? 0 : m[2] === 'MTU' ? vars.MTU : Number(m[2]));
  };
  const around = (...points: number[]) => [...new Set(points.flatMap((p) => [p - 1, p, p + 1]))].filter((n) => n >= 0 && n <= maxTransfer + 1).sort((a, b) => a - b);
  const within = (n: number) => n >= 0 && n <= maxTransfer;
  if (cell === 'any') return { accepts: within, refusal: () => 'TOO_LARGE', edges: around(0, maxTransfer) };
  const formula = /^(\d+) \+ (\d+) × count$/.exec(cell);
  if (formula) {
    const base = Number(formula[1]);
    const unit = Number(formula[2]);
    const accepts = (n: number) => within(n) && n >= base + unit && (n - base) % unit === 0 && (n - base) / unit <= vars.maxCount;
    return { accepts, refusal: () => 'INVALID_ARGUMENT', edges: around(0, base, base + unit, base + unit * vars.maxCount, base + unit * (vars.maxCount + 1)) };
  }
  const range = /^(.+?) \.\. (.+?)(?: \(more: `(\w+)`\))?$/.exec(cell);
  if (range) {
    const lo = value(range[1]!);
    const hi = value(range[2]!);
    const above = (range[3] ?? 'INVALID_ARGUMENT') as HvStatusName;
    if (!(above in HvStatus)) throw new Error(`ABI.md: unknown status ${above} in "${cell}"`);
    return { accepts: (n) => n >= lo && n <= hi, refusal: (n) => (n > hi ? above : 'INVALID_ARGUMENT'), edges: around(0, lo, hi) };
  }
  const set = /^(\d+)(?:, (\d+))*(?: or (\d+))?$/.test(cell) ? cell.split(/, | or /).map(Number) : null;
  if (set) return { accepts: (n) => set.includes(n), refusal: () => 'INVALID_ARGUMENT', edges: around(0, ...set) };
  throw new Error(`cannot read the in_len cell "${cell}" in ABI.md`);
}

/** An `out_cap` cell: `any`, or `≥ N`, or `≥ <symbol>` (the symbol is the caller's to value). */
export function outputNeed(cell: string): { any: true } | { any: false; bytes: number } | { any: false; symbol: string } {
  if (cell === 'any') return { any: true };
  const m = /^≥ (.+)$/.exec(cell);
  if (!m) throw new Error(`cannot read the out_cap cell "${cell}" in ABI.md`);
  return /^\d+$/.test(m[1]!) ? { any: false, bytes: Number(m[1]) } : { any: false, symbol: m[1]! };
}
