/**
 * What the security room needs from a partition spec: what it asks the policy for (GrantAsk), the
 * plain data its spec hash is computed from, and a detached signature read from where the spec
 * says. Kept here so the Hypervisor only passes values along.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.ts';
import { readRegularFile } from '../files.ts';
import type { ResolvedDevices } from '../devices/config.ts';
import type { WasiSpec } from '../wasi/config.ts';
import { realFolder, type GrantAsk } from './policy.ts';
import { MAX_DEPTH } from './canonical.ts';

/** Largest detached signature file read. The format's own limits keep real ones far smaller. */
export const MAX_SIGNATURE_BYTES = 1024 * 1024;

/** The resolved values a policy judges. */
export function partitionAsk(
  name: string,
  r: { devices: ResolvedDevices; memoryPages: number; memoryPagesDefault: boolean; fuel: number | null; wasi: WasiSpec | undefined },
): GrantAsk {
  const preopens = Array.isArray(r.wasi?.preopens) ? r.wasi.preopens : [];
  return {
    partition: name,
    devices: Object.entries(r.devices)
      .filter(([, v]) => v !== null)
      .map(([k]) => k),
    memoryPages: r.memoryPages,
    memoryPagesDefault: r.memoryPagesDefault,
    fuel: r.fuel,
    blockMiB: r.devices.block?.sizeMiB ?? null,
    netSegment: r.devices.net?.segment ?? null,
    netHost: r.devices.net?.host ?? false,
    wasi: r.wasi !== undefined,
    preopenHostPaths: preopens.filter((p) => typeof p?.hostPath === 'string').map((p) => realFolder(path.resolve(p.hostPath!))),
  };
}

/**
 * The resolved spec as plain JSON data, for its canonical hash: Infinity becomes the string
 * "Infinity", bytes become their SHA-256 (WASI seed files, fixed stdin), bigints their decimal.
 * The result is what JSON.stringify (with that replacer) and JSON.parse make of the spec; a spec
 * of plain data only (no WASI files, the common case) is copied directly, without the round
 * trip, whose replacer ran for every value on the warm start's path (issue #15).
 */
export function specForMeasurement(spec: Record<string, unknown>): unknown {
  const direct = plainCopy(spec);
  return direct !== NOT_PLAIN ? direct : specByRoundTrip(spec);
}

/** The JSON round trip specForMeasurement stands for (exported for its tests' comparison). */
export function specByRoundTrip(spec: unknown): unknown {
  return JSON.parse(
    JSON.stringify(spec, (_key, value: unknown) => {
      if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
      if (typeof value === 'bigint') return value.toString();
      if (value instanceof Uint8Array) return { sha256: createHash('sha256').update(value).digest('hex'), bytes: value.length };
      return value;
    }),
  ) as unknown;
}

const NOT_PLAIN = Symbol('not plain');

/** A container being copied: its source, its copy, and its depth (the spec itself is 0). */
interface CopyFrame {
  src: object;
  out: unknown[] | Record<string, unknown>;
  depth: number;
}

/**
 * `value` as the JSON round trip above would make it, for plain data: null, booleans, strings,
 * numbers (non-finite ones as their string, -0 as 0), arrays of those, plain objects (members
 * that are `undefined` left out). Anything else (bytes, bigints, class instances, a hole or
 * `undefined` in an array, a `toJSON`, a `__proto__` key, deeper than canonical JSON allows) is
 * NOT_PLAIN: the round trip, whose semantics are JSON's own, handles it. A loop with its own
 * stack, no recursion, and depth-bounded like canonicalJson.
 */
function plainCopy(value: unknown): unknown {
  const stack: CopyFrame[] = [];
  /** The copy of one value: a scalar, or a container's (empty, filled from the stack) copy. */
  const copy = (v: unknown, depth: number): unknown => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') return Number.isFinite(v) ? (v === 0 ? 0 : v) : String(v);
    if (typeof v !== 'object' || depth > MAX_DEPTH) return NOT_PLAIN;
    const proto = Object.getPrototypeOf(v) as unknown;
    let out: unknown[] | Record<string, unknown>;
    if (Array.isArray(v)) {
      if (proto !== Array.prototype) return NOT_PLAIN;
      out = new Array<unknown>(v.length);
    } else {
      if ((proto !== Object.prototype && proto !== null) || 'toJSON' in v) return NOT_PLAIN;
      out = {};
    }
    stack.push({ src: v, out, depth });
    return out;
  };
  const root = copy(value, 0);
  for (let frame = stack.pop(); frame !== undefined; frame = stack.pop()) {
    const { src, out, depth } = frame;
    if (Array.isArray(out)) {
      const items = src as unknown[];
      for (let i = 0; i < items.length; i++) {
        const v = copy(items[i], depth + 1);
        if (v === NOT_PLAIN) return NOT_PLAIN;
        out[i] = v;
      }
    } else {
      for (const key of Object.keys(src)) {
        if (key === '__proto__') return NOT_PLAIN;
        const member = (src as Record<string, unknown>)[key];
        if (member === undefined) continue;
        const v = copy(member, depth + 1);
        if (v === NOT_PLAIN) return NOT_PLAIN;
        out[key] = v;
      }
    }
  }
  return root;
}

/**
 * A detached signature: bytes as given, or read from a file (a regular file of at most
 * MAX_SIGNATURE_BYTES; with `pipes`, for a file the command line names, also a pipe up to it).
 */
export async function readSignatureSource(source: Uint8Array | string, options: { pipes?: boolean } = {}): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return Uint8Array.from(source);
  return new Uint8Array(await readRegularFile(source, { maxBytes: MAX_SIGNATURE_BYTES, what: 'signature file', pipes: options.pipes === true }));
}
