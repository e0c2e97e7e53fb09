/**
 * Test helpers for the loader suites: WAT → bytes via wabt, a standard admissible guest,
 * a raw binary builder for forms wabt cannot write (GC rec groups, table initialisers),
 * and instantiation with a stub hypercall.
 */
import wabtInit from 'wabt';
import { leb } from './bombs.mjs';

const wabt = await wabtInit();

/** Post-MVP features the fixtures may use; the loader, not wabt, decides what is allowed. */
const features = {
  threads: true,
  memory64: true,
  reference_types: true,
  bulk_memory: true,
  multi_value: true,
  simd: true,
  exceptions: true,
  sign_extension: true,
  sat_float_to_int: true,
  mutable_globals: true,
  annotations: true,
};

/** Compiles WAT text to a binary. */
export function wat(source: string): Uint8Array {
  const module = wabt.parseWat('fixture.wat', source, features);
  try {
    return module.toBinary({}).buffer;
  } finally {
    module.destroy();
  }
}

/** The one allowed import. */
export const HYPERCALL_IMPORT = '(import "hv" "hypercall" (func $hypercall (param i32 i32 i32 i32 i32) (result i32)))';

/** Pieces of a guest module; every field has an admissible default. */
export interface GuestParts {
  /** Import declarations. Default: hv.hypercall. */
  imports?: string;
  /** Memory declaration. Default: one exported memory, 1 page initial, 2 maximum. */
  memory?: string;
  /** The `_start` export. Default: `() -> ()` calling nothing. */
  start?: string;
  /** Anything else (tables, functions, exports). */
  extra?: string;
}

/** WAT of an admissible guest, with parts replaced. */
export function guestWat(parts: GuestParts = {}): string {
  return `(module
    ${parts.imports ?? HYPERCALL_IMPORT}
    ${parts.memory ?? '(memory (export "memory") 1 2)'}
    ${parts.start ?? '(func (export "_start"))'}
    ${parts.extra ?? ''}
  )`;
}

/** Binary of an admissible guest, with parts replaced. */
export function guest(parts: GuestParts = {}): Uint8Array {
  return wat(guestWat(parts));
}

/** Unsigned LEB128 (one implementation, shared with the module generators). */
export { leb };

/** A name: LEB length + UTF-8 bytes. */
export function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...leb(bytes.length), ...bytes];
}

/** A module from raw sections: each `[id, payload]`; sizes are computed. */
export function rawModule(...sections: readonly (readonly [number, readonly number[]])[]): Uint8Array {
  // concat, not push(...payload): payloads may be far larger than the argument limit.
  const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00].concat(...sections.map(([id, payload]) => [id, ...leb(payload.length)].concat(payload)));
  return Uint8Array.from(out);
}

/** Instantiates with a stub hv.hypercall that returns 0; returns the exports. */
export function instantiate(module: WebAssembly.Module): WebAssembly.Exports {
  return new WebAssembly.Instance(module, { hv: { hypercall: () => 0 } }).exports;
}

/** The error `run` throws, checked to be a `type`; fails when it throws nothing or something else. */
export function thrownBy<E extends Error>(run: () => unknown, type: abstract new (...args: never[]) => E): E {
  try {
    run();
  } catch (error) {
    if (error instanceof type) return error;
    throw error;
  }
  throw new Error(`expected a ${type.name}, nothing was thrown`);
}
