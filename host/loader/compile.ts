import { guestText, quoted } from '../escape.ts';
import { InternalError, InvalidArgumentError, ModuleInvalidError } from '../errors.ts';
import { loaderThread } from './offthread.ts';
import { isCompileError, wasmEngine } from './wasm-api.ts';

/**
 * Compiles bytes into a module on the loader's thread (offthread.ts): even the engine's
 * asynchronous compile does work on the calling thread that grows with the number of
 * functions, and the root's thread must not pay it. The bytes are copied, the caller keeps
 * its own. Errors as `compileHere`.
 */
export function compileModule(bytes: Uint8Array): Promise<WebAssembly.Module> {
  return loaderThread().request<WebAssembly.Module>('compile', bytes);
}

/**
 * Compiles bytes into a module on this thread (the loader's). An engine CompileError becomes
 * ModuleInvalidError (the bytes are at fault); anything else (e.g. the engine out of memory)
 * is InternalError.
 */
export async function compileHere(bytes: Uint8Array): Promise<WebAssembly.Module> {
  try {
    return await wasmEngine.compile(bytes);
  } catch (error) {
    if (isCompileError(error)) throw new ModuleInvalidError(`module failed to compile: ${guestText(error.message)}`, { cause: error });
    throw new InternalError(`compiling a module failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/**
 * Compiled modules by key, least recently used evicted beyond `maxEntries`.
 *
 * Invariants:
 * - The key names the bytes: the pipeline uses the measurement plus the clamp plan, since
 *   the same original bytes under different plans run as different binaries. The cache
 *   never looks at the bytes of a key it already holds or is compiling.
 * - Concurrent `compile` calls for one key share one compilation (one promise); a failed
 *   compilation is not cached, so a later call retries.
 * - At most `maxEntries` finished modules are held; in-flight compilations are not counted.
 */
export class ModuleCache {
  /** Finished modules in recency order: the first entry is the least recently used. */
  private readonly modules = new Map<string, WebAssembly.Module>();
  private readonly pending = new Map<string, Promise<WebAssembly.Module>>();
  /** `compile` calls answered from the cache or by joining an in-flight compilation. */
  hits = 0;
  /** `compile` calls that started a compilation. */
  misses = 0;

  /** `maxEntries` must be a positive integer; InvalidArgumentError otherwise. */
  constructor(readonly maxEntries = 64) {
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new InvalidArgumentError(`ModuleCache maxEntries must be a positive integer, got ${quoted(maxEntries)}`);
  }

  /** Number of finished modules held. */
  get size(): number {
    return this.modules.size;
  }

  /** The module for `key`, marking it most recently used; undefined if absent. Does not count as a hit or miss. */
  get(key: string): WebAssembly.Module | undefined {
    const module = this.modules.get(key);
    if (module !== undefined) this.touch(key, module);
    return module;
  }

  /** The module for `key`, compiling `bytes` if it is neither cached nor being compiled. */
  compile(key: string, bytes: Uint8Array): Promise<WebAssembly.Module> {
    const cached = this.get(key);
    if (cached !== undefined) {
      this.hits++;
      return Promise.resolve(cached);
    }
    const inflight = this.pending.get(key);
    if (inflight !== undefined) {
      this.hits++;
      return inflight;
    }
    this.misses++;
    const promise = compileModule(bytes).then(
      (module) => {
        this.pending.delete(key);
        this.touch(key, module);
        this.evict();
        return module;
      },
      (error: unknown) => {
        this.pending.delete(key);
        throw error;
      },
    );
    this.pending.set(key, promise);
    return promise;
  }

  private touch(key: string, module: WebAssembly.Module): void {
    // Map keeps insertion order: delete + set moves the key to the most recent end.
    this.modules.delete(key);
    this.modules.set(key, module);
  }

  private evict(): void {
    for (const key of this.modules.keys()) {
      if (this.modules.size <= this.maxEntries) break;
      this.modules.delete(key);
    }
  }
}
