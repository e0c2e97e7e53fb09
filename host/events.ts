/**
 * Events the hypervisor gives the embedder (a partition's `exit`, `restart`, `console`, …; the
 * hypervisor's own; a host NIC's `frame`) are emitted from the middle of the hypervisor's work:
 * a partition's end, a restart being scheduled, a console record being drained. A plain
 * EventEmitter lets a listener's exception unwind that work, so an embedder's one buggy listener
 * could leave a partition that never restarts nor ends (a `restart` listener that throws: the
 * restart was never scheduled), kill a partition for a console line, or keep every later
 * listener of the same event from hearing it.
 *
 * A `GuardedEmitter` calls every listener (in order, as EventEmitter does, `once` included); a
 * listener that throws, or returns a promise that rejects, is reported as a process warning
 * (code `WASMVISOR_LISTENER_THREW`, naming the event and the emitter) and the emitter's work goes
 * on. `error` events keep EventEmitter's meaning (no listener: the error is thrown).
 */
import { EventEmitter } from 'node:events';
import { guestText } from './escape.ts';

/** The `code` of the process warning a throwing listener raises. */
export const LISTENER_WARNING = 'WASMVISOR_LISTENER_THREW';

/**
 * Warnings per emitter and event at the most: a listener that throws on every console line would
 * otherwise write a warning per line a guest prints. The last one says the rest go unreported.
 */
export const MAX_LISTENER_WARNINGS = 10;
const warned = new WeakMap<object, Map<string | symbol, number>>();

/** Reports a listener's failure without throwing (its message may quote guest text: escaped). */
export function listenerThrew(owner: string, event: string | symbol, error: unknown, emitter: object | null = null): void {
  let more = '';
  if (emitter !== null) {
    let counts = warned.get(emitter);
    if (counts === undefined) warned.set(emitter, (counts = new Map()));
    const n = (counts.get(event) ?? 0) + 1;
    counts.set(event, n);
    if (n > MAX_LISTENER_WARNINGS) return;
    if (n === MAX_LISTENER_WARNINGS) more = ` (${MAX_LISTENER_WARNINGS} reported: further failures of '${String(event)}' listeners on ${owner} are not)`;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.emitWarning(guestText(`a listener for '${String(event)}' on ${owner} threw: ${message}`) + more, { code: LISTENER_WARNING });
}

type Listener = (...args: unknown[]) => unknown;

export class GuardedEmitter<T extends Record<keyof T, unknown[]>> extends EventEmitter<T> {
  /** How a warning names this emitter ("partition web", "the hypervisor"). */
  protected describeEmitter(): string {
    return this.constructor.name;
  }
}

function guardedEmit(this: GuardedEmitter<Record<string, unknown[]>>, event: string | symbol, ...args: unknown[]): boolean {
  if (event === 'error') return EventEmitter.prototype.emit.call(this, event, ...args);
  // EventEmitter's own store (what its emit reads): one function, or an array of them (`once`
  // listeners are wrappers that remove themselves when called). An array is copied first: a
  // listener that adds or removes listeners does not change who hears this event.
  const stored = (this as unknown as { _events: Record<string | symbol, Listener | Listener[] | undefined> })._events[event];
  if (stored === undefined) return false;
  if (typeof stored === 'function') {
    call(this, stored, event, args);
    return true;
  }
  const listeners = stored.slice();
  for (let i = 0; i < listeners.length; i++) call(this, listeners[i]!, event, args);
  return true;
}

function call(emitter: GuardedEmitter<Record<string, unknown[]>>, listener: Listener, event: string | symbol, args: unknown[]): void {
  try {
    const result = Reflect.apply(listener, emitter, args);
    if (result instanceof Promise) result.catch((error: unknown) => listenerThrew(describe(emitter), event, error, emitter));
  } catch (error) {
    listenerThrew(describe(emitter), event, error, emitter);
  }
}

const describe = (emitter: GuardedEmitter<Record<string, unknown[]>>): string => (emitter as unknown as { describeEmitter(): string }).describeEmitter();

// Set on the prototype rather than declared as an override: the class keeps EventEmitter's typed
// `emit` signature (event names and argument tuples checked at every call site).
Object.defineProperty(GuardedEmitter.prototype, 'emit', { value: guardedEmit, writable: true, configurable: true });
