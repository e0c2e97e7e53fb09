/**
 * Building blocks shared by every schema in this folder: the JavaScript-only kinds a spec may
 * hold (a URL, an ArrayBuffer, an AbortSignal, Infinity) and the few value types whose range is
 * a cross-layer limit (timers, names). Each bound here is the one every layer honours: the
 * schema states it, the CLI reads it from the schema, the runtime relies on it.
 */
import type { AuditSink } from '../security/audit.ts';
import { MAX_CERT_NAME_LENGTH, MAX_NAME_LENGTH, NAME_PATTERN, SHA256_PATTERN } from './patterns.ts';
import { Kind, Type, TypeRegistry, type TInteger, type TString, type TUnion, type TUnsafe } from '@sinclair/typebox';

/**
 * Kinds that exist only in JavaScript. They are accepted by the library's checks and dropped
 * from the exported JSON Schema (see json.ts), where a manifest or an API body cannot hold them.
 */
export const JS_ONLY_KINDS: ReadonlySet<string> = new Set([
  'Uint8Array',
  'Wasmvisor:URL',
  'Wasmvisor:ArrayBuffer',
  'Wasmvisor:Infinity',
  'Wasmvisor:AbortSignal',
  'Wasmvisor:Iterable',
  'Wasmvisor:Policy',
  'Wasmvisor:AuditSink',
]);

/** A schema for a JavaScript-only kind (its name must be in JS_ONLY_KINDS), accepted when `test` says so. */
export function jsKind<T>(kind: string, title: string, test: (value: unknown) => boolean): () => TUnsafe<T> {
  TypeRegistry.Set(kind, (_schema, value) => test(value));
  return () => Type.Unsafe<T>({ [Kind]: kind, title });
}

/** A WHATWG URL object (the loader accepts `file:` URLs only and says so). */
export const UrlObject = jsKind<URL>('Wasmvisor:URL', 'a URL', (v) => v instanceof URL);
/** An ArrayBuffer (module bytes). */
export const ArrayBufferObject = jsKind<ArrayBuffer>('Wasmvisor:ArrayBuffer', 'an ArrayBuffer', (v) => v instanceof ArrayBuffer);
/** An AbortSignal. */
export const AbortSignalObject = jsKind<AbortSignal>('Wasmvisor:AbortSignal', 'an AbortSignal', (v) => v instanceof AbortSignal);
/** The number Infinity ("no limit"), which JSON cannot spell. */
export const InfinityValue = jsKind<number>('Wasmvisor:Infinity', 'Infinity', (v) => v === Infinity);
/** Any iterable that is not a string (an array, a Set): its items are checked by the resolver. */
export const IterableObject = jsKind<Iterable<unknown>>(
  'Wasmvisor:Iterable',
  'an array or another iterable',
  (v) => typeof v === 'object' && v !== null && typeof (v as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function',
);

/** An AuditSink: any object with `record` and `note` functions (host/security/audit.ts), e.g. an AuditLog. */
export const AuditSinkObject = jsKind<AuditSink>(
  'Wasmvisor:AuditSink',
  'an AuditSink (an object with record and note functions)',
  (v) => typeof v === 'object' && v !== null && typeof (v as { record?: unknown }).record === 'function' && typeof (v as { note?: unknown }).note === 'function',
);

/**
 * The longest delay a Node.js timer honours: `setTimeout` turns anything larger into 1 ms
 * (with a TimeoutOverflowWarning). Every timeout a caller gives is within this, or "none".
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A wall-clock budget in ms: an integer from 0 to MAX_TIMER_MS (about 24.8 days), where 0 means
 * "no timeout" (Node's convention), or Infinity (the same, for JavaScript callers).
 */
export function Timeout(description: string): TUnion<[TInteger, TUnsafe<number>]> {
  return Type.Union([Type.Integer({ minimum: 0, maximum: MAX_TIMER_MS }), InfinityValue()], {
    title: `a number of ms: an integer from 0 to ${MAX_TIMER_MS} (about 24.8 days), or 0 or Infinity for none`,
    description: `${description} 0 or Infinity: none.`,
  });
}

/** The value a Timeout schema admitted, as a timer delay: null for "none". */
export function timerMs(value: number): number | null {
  return value === 0 || value === Infinity ? null : value;
}

// The name and digest bounds live in patterns.ts (no import: the worker and rbac.ts read them too).
export { MAX_CERT_NAME_LENGTH, MAX_NAME_LENGTH, NAME_PATTERN, SHA256_PATTERN };
export const NAME = new RegExp(NAME_PATTERN);

export function Name(description: string): TString {
  return Type.String({ pattern: NAME_PATTERN, title: `1-${MAX_NAME_LENGTH} letters, digits, '.', '_' or '-' (starting with a letter or digit)`, description });
}

export function Sha256(description: string): TString {
  return Type.String({ pattern: SHA256_PATTERN, title: '64 hexadecimal digits (a SHA-256)', description });
}

/** Options of every object schema here: a key the schema does not name is an error, never ignored. */
export const CLOSED = { additionalProperties: false } as const;
