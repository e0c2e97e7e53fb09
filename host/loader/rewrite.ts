import { InvalidArgumentError } from '../errors.ts';
import type { ClampPlan } from './policy.ts';
import { ByteReader, PREAMBLE_SIZE, SectionId, readLimits, readRefType, type ModuleInfo, type SectionSpan } from './sections.ts';

const LIMITS_HAS_MAX = 0x01;

/**
 * Applies a clamp plan: returns `bytes` itself when nothing needs rewriting, else a new
 * binary whose memory and/or table section declares the planned maxima. Everything else is
 * copied byte for byte; only the rewritten sections get a new payload and a re-encoded size.
 *
 * Invariants:
 * - A rewrite only ever lowers or adds a maximum, never raises one nor drops below the
 *   initial size (either would be a broken plan, refused with InvalidArgumentError).
 * - `info` must describe `bytes` (its section spans must tile the file exactly); otherwise
 *   InvalidArgumentError, because splicing by someone else's offsets would corrupt the module.
 * - Tables in the function-references form (`0x40 0x00 reftype limits expr`) never get
 *   here: the section reader refuses them with FeatureDeniedError.
 * - Nothing is validated or compiled here; the compile step rejects anything the engine
 *   would not accept, and the tests check every rewrite with WebAssembly.validate.
 */
export function applyClampPlan(bytes: Uint8Array, info: ModuleInfo, plan: ClampPlan): Uint8Array {
  if (!plan.needsRewrite) return bytes;
  if (plan.memoryMaximum !== null && info.memories.length !== 1) {
    throw new InvalidArgumentError(`clamp plan sets a memory maximum but the module defines ${info.memories.length} memories`);
  }
  if (plan.tableMaxima.length !== info.tables.length) {
    throw new InvalidArgumentError(`clamp plan has ${plan.tableMaxima.length} table maxima but the module defines ${info.tables.length} tables`);
  }
  checkSpansTile(bytes, info.sections);
  const parts: Uint8Array[] = [bytes.subarray(0, PREAMBLE_SIZE)];
  for (const span of info.sections) {
    if (span.id === SectionId.MEMORY && plan.memoryMaximum !== null) {
      parts.push(encodeSection(span.id, rewriteLimits(bytes, span, 'memory', [plan.memoryMaximum])));
    } else if (span.id === SectionId.TABLE && plan.tableMaxima.some((m) => m !== null)) {
      parts.push(encodeSection(span.id, rewriteLimits(bytes, span, 'table', plan.tableMaxima)));
    } else {
      parts.push(bytes.subarray(span.start, span.end));
    }
  }
  return concat(parts);
}

/** Checked before any splicing: the spans must cover the file after the preamble, in order, without gaps. */
function checkSpansTile(bytes: Uint8Array, spans: readonly SectionSpan[]): void {
  const mismatch = (): InvalidArgumentError => new InvalidArgumentError('module info does not describe these bytes (section spans do not tile the file)');
  let cursor = PREAMBLE_SIZE;
  for (const span of spans) {
    if (span.start !== cursor || span.payloadStart <= span.start || span.end < span.payloadStart) throw mismatch();
    cursor = span.end;
  }
  if (cursor !== bytes.length) throw mismatch();
}

/**
 * Re-encodes a memory or table section payload: entry i gets maximum `maxima[i]` when it
 * is non-null, and is copied verbatim otherwise.
 */
function rewriteLimits(bytes: Uint8Array, span: SectionSpan, kind: 'memory' | 'table', maxima: readonly (number | null)[]): Uint8Array {
  const r = new ByteReader(bytes, span.payloadStart, span.end);
  const n = r.count(kind);
  if (n !== maxima.length) throw new InvalidArgumentError(`${kind} section has ${n} entries, the clamp plan ${maxima.length}`);
  const out: number[] = encodeU32(n);
  for (let i = 0; i < n; i++) {
    if (kind === 'table') {
      const typeStart = r.pos;
      readRefType(r);
      out.push(...bytes.subarray(typeStart, r.pos));
    }
    const limitsStart = r.pos;
    const limits = readLimits(r, kind);
    const maximum = maxima[i] ?? null;
    if (maximum === null) {
      out.push(...bytes.subarray(limitsStart, r.pos));
      continue;
    }
    if (maximum < limits.initial || (limits.maximum !== null && maximum > limits.maximum)) {
      throw new InvalidArgumentError(`clamp plan would set ${kind} ${i} maximum to ${maximum}, outside [initial ${limits.initial}, declared maximum ${limits.maximum ?? 'none'}]`);
    }
    // Same flags (shared, 64-bit) plus "has maximum"; sizes in canonical LEB128, which is
    // also valid for 64-bit limits since the values are far below 2^32.
    out.push(limits.flags | LIMITS_HAS_MAX, ...encodeU32(limits.initial), ...encodeU32(maximum));
  }
  if (r.pos !== span.end) throw new InvalidArgumentError(`${kind} section has trailing bytes`);
  return Uint8Array.from(out);
}

function encodeSection(id: number, payload: Uint8Array): Uint8Array {
  const header = [id, ...encodeU32(payload.length)];
  const out = new Uint8Array(header.length + payload.length);
  out.set(header);
  out.set(payload, header.length);
  return out;
}

/** Canonical unsigned LEB128 of a non-negative integer below 2^32 (division, not `>>>`, keeps it exact). */
function encodeU32(value: number): number[] {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new InvalidArgumentError(`cannot encode ${value} as u32`);
  const out: number[] = [];
  let v = value;
  do {
    const byte = v % 128;
    v = Math.floor(v / 128);
    out.push(v > 0 ? byte | 0x80 : byte);
  } while (v > 0);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
