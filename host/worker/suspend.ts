import { Suspend, type Blocker, type WaitCondition } from '../channel/blocker.ts';
import type { OutputSink } from '../devices/console.ts';
import type { Outbox } from './outbox.ts';
import { ASYNCIFY_EXPORTS } from '../loader/transform.ts';
import { SUSPENDED, type Placement } from './context.ts';

/**
 * How a partition runs in a shared worker: it is unwound instead of blocking the thread.
 *
 * The module was transformed by binaryen's Asyncify (host/loader/asyncify.ts). When a hypercall
 * (or WASI call) would wait, its Blocker throws `Suspend`; the import wrapper catches it, starts
 * an unwind and returns; the guest's instrumented code saves its frames and returns out of the
 * export; `invoke` stops the unwind and reports SUSPENDED with what the guest waits for. When the
 * scheduler runs it again, `invoke` starts a rewind and calls the same export: the guest restores
 * its frames and calls the same import again, which this time runs the operation from its start
 * (a redo: not counted or rate-limited twice, see Dispatcher.setRedo) or, for an operation that
 * completed before the guest was preempted, returns its result.
 *
 * Preemption: at a fuel checkpoint, or after any import, a guest whose time slice is spent while
 * others wait is unwound the same way and resumes with the import's result.
 *
 * Where the saved frames go: Asyncify needs a buffer in the guest's own memory. The first
 * SUSPEND_BYTES bytes of linear memory are borrowed: copied aside before the unwind writes
 * there, and put back (only the bytes the unwind wrote) as soon as the rewind is done, before
 * any guest code runs again. While the guest is suspended nothing runs in its memory, and the
 * frames are its own locals: the borrowed bytes are never visible to it, nor to anyone else.
 */

/** Bytes of linear memory borrowed for the saved frames (and the most the frames may take). */
export const SUSPEND_BYTES = 65536;

/** Asyncify's state when neither unwinding nor rewinding (asyncify_get_state). */
const NORMAL = 0;

interface AsyncifyExports {
  startUnwind(ptr: number): void;
  stopUnwind(): void;
  startRewind(ptr: number): void;
  stopRewind(): void;
  getState(): number;
}

/** What the scheduler tells a running partition about its time slice. */
export interface SliceClock {
  /** True when the running partition should give the thread up now (its slice is spent and others wait). */
  shouldYield(): boolean;
}

/** What an import does when the guest comes back into it after a rewind. */
type Resume = { redo: true } | { redo: false; value: unknown; then: (() => void) | null };

export class SuspendingPlacement implements Placement {
  readonly blocksThread = false;
  readonly blocker: Blocker;
  readonly sink = (outbox: Outbox): OutputSink => outbox.sink();
  private ex: AsyncifyExports | null = null;
  private memory: WebAssembly.Memory | null = null;
  private state: 'running' | 'unwinding' | 'suspended' | 'rewinding' = 'running';
  private wait: WaitCondition | null = null;
  private resumeWith: Resume | null = null;
  /** The guest's own bytes that the saved frames cover, put back after the rewind. */
  private saved: Uint8Array | null = null;
  /** Bytes of the thread's scratch the last unwind copied the guest's memory into. */
  private borrowed = 0;
  /**
   * When the current operation first asked for a deadline (kept across its redos: its timeouts
   * count from here); -1 until it asks. Taken lazily: most calls never wait, and a clock read
   * per hypercall is not free.
   */
  private callStart = -1;
  private request: { wait: WaitCondition | null; then: (() => void) | null } | null = null;

  constructor(
    private readonly slice: SliceClock,
    /** The thread's scratch for the bytes under the frames (one suspension at a time per thread). */
    private readonly scratch: Uint8Array,
  ) {
    const suspend = (wait: WaitCondition): never => {
      throw new Suspend(wait);
    };
    this.blocker = {
      deadline: (ms) => {
        if (this.callStart < 0) this.callStart = performance.now();
        return this.callStart + ms;
      },
      readable: (ring, seq, deadline) => suspend({ what: 'readable', ring, seq, deadline }),
      writable: (ring, seq, deadline) => suspend({ what: 'writable', ring, seq, deadline }),
      sleep: (deadline) => suspend({ what: 'time', deadline }),
    };
  }

  bind(instance: WebAssembly.Instance, memory: WebAssembly.Memory): void {
    const get = (name: string): ((...a: number[]) => number) => {
      const fn = instance.exports[name];
      if (typeof fn !== 'function') throw new Error(`a shared partition's module lacks ${name}: it was not made suspendable`);
      return fn as (...a: number[]) => number;
    };
    const e = ASYNCIFY_EXPORTS;
    this.ex = {
      startUnwind: get(e.startUnwind),
      stopUnwind: get(e.stopUnwind),
      startRewind: get(e.startRewind),
      stopRewind: get(e.stopRewind),
      getState: get(e.getState),
    };
    this.memory = memory;
  }

  invoke(fn: () => unknown): unknown {
    if (this.state === 'suspended') {
      this.ex!.startRewind(0);
      this.state = 'rewinding';
    }
    let value: unknown;
    try {
      value = fn();
    } catch (error) {
      if (this.state === 'unwinding' && error instanceof WebAssembly.RuntimeError) {
        // Asyncify traps when the frames outgrow their buffer.
        throw new RangeError(`suspending the guest needs more than ${SUSPEND_BYTES} bytes of saved stack (memory)`);
      }
      throw error;
    }
    if (this.state === 'unwinding') {
      this.ex!.stopUnwind();
      const used = new DataView(this.memory!.buffer).getUint32(0, true);
      this.saved = this.scratch.slice(0, used);
      // The thread's scratch holds the guest's first 64 KiB; only the bytes under its frames are
      // kept (its own, put back at the rewind). The rest goes now, before other partitions run.
      this.scratch.fill(0, 0, this.borrowed);
      this.state = 'suspended';
      return SUSPENDED;
    }
    if (this.state === 'rewinding' || this.ex?.getState() !== NORMAL) throw new Error('the guest did not return to the call it was suspended in');
    return value;
  }

  pending(): WaitCondition | null {
    return this.wait;
  }

  unwinding(): boolean {
    return this.state === 'unwinding';
  }

  wrapImport<F extends (...args: never[]) => unknown>(_name: string, fn: F, redo: (on: boolean) => void): F {
    const wrapped = (...args: Parameters<F>): unknown => {
      if (this.state === 'rewinding') {
        this.ex!.stopRewind();
        this.state = 'running';
        this.restore();
        const r = this.resumeWith!;
        this.resumeWith = null;
        if (!r.redo) {
          r.then?.();
          return r.value;
        }
        redo(true);
        try {
          return this.attempt(fn, args);
        } finally {
          redo(false);
        }
      }
      this.callStart = -1;
      return this.attempt(fn, args);
    };
    return wrapped as unknown as F;
  }

  /** Runs an import; suspends the guest when it must wait, or when its slice is spent. */
  private attempt<F extends (...args: never[]) => unknown>(fn: F, args: Parameters<F>): unknown {
    let value: unknown;
    try {
      value = fn(...args);
    } catch (error) {
      if (!(error instanceof Suspend)) throw error;
      this.suspend(error.wait, { redo: true });
      return 0;
    }
    const request = this.request;
    if (request !== null) {
      this.request = null;
      this.suspend(request.wait, { redo: false, value, then: request.then });
      return 0;
    }
    // A long host call (a large copy, a disk request) still ends the slice afterwards.
    if (this.slice.shouldYield()) {
      this.suspend(null, { redo: false, value, then: null });
      return 0;
    }
    return value;
  }

  checkpoint(): void {
    // attempt() checks the slice after every import, the fuel hook included.
  }

  pause(deadline: number, then: () => void): void {
    this.request = { wait: { what: 'time', deadline }, then };
  }

  private suspend(wait: WaitCondition | null, resume: Resume): void {
    const memory = this.memory;
    if (memory === null) throw new RangeError('the guest cannot be suspended before its memory exists (memory)');
    const size = Math.min(SUSPEND_BYTES, memory.buffer.byteLength);
    if (size < 16) throw new RangeError('a guest with less than one page of memory cannot be suspended (memory)');
    const view = new Uint8Array(memory.buffer, 0, size);
    this.scratch.set(view);
    this.borrowed = size;
    const header = new DataView(memory.buffer);
    header.setUint32(0, 8, true);
    header.setUint32(4, size, true);
    this.ex!.startUnwind(0);
    this.state = 'unwinding';
    this.wait = wait;
    this.resumeWith = resume;
  }

  scrub(): void {
    // A run that ended while suspended (killed, or its worker stopping it) never rewinds.
    this.saved?.fill(0);
    this.saved = null;
  }

  /** Puts back the guest's bytes under the saved frames (the rewind is done with them). */
  private restore(): void {
    const saved = this.saved;
    if (saved === null) return;
    new Uint8Array(this.memory!.buffer, 0, saved.length).set(saved);
    saved.fill(0);
    this.saved = null;
    this.wait = null;
  }
}
