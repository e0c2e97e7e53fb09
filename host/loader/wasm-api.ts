/**
 * The engine calls the loader makes, behind one narrow, typed handle. Two reasons:
 * - lib.dom types these calls with `BufferSource`, which (TypeScript 5.7+) excludes views of
 *   a SharedArrayBuffer; the engine accepts any Uint8Array and copies it, so the loader's
 *   `Uint8Array` parameters are typed here once instead of cast at every call site.
 * - It documents the loader's whole engine surface: it validates and compiles, and never
 *   instantiates (refusals must happen before any guest code could run).
 */
export interface WasmEngine {
  /** True when the engine accepts the bytes as a module (full validation, no module kept). */
  validate(bytes: Uint8Array): boolean;
  /** Synchronous compile; the loader uses it only to extract the engine's error message. */
  Module: new (bytes: Uint8Array) => WebAssembly.Module;
  /** Asynchronous compile: the only way the loader produces a module that will run. */
  compile(bytes: Uint8Array): Promise<WebAssembly.Module>;
}

/** The engine's `WebAssembly` global, seen through `WasmEngine`. */
export const wasmEngine: WasmEngine = WebAssembly as unknown as WasmEngine;

/** True for the engine's CompileError: the bytes, not the runtime, are at fault. */
export function isCompileError(error: unknown): error is WebAssembly.CompileError {
  return error instanceof WebAssembly.CompileError;
}
