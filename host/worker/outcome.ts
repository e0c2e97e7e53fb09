import { FuelExhausted, GuestAbort, GuestExit } from '../abi/dispatcher.ts';
import type { WorkerOutcome } from '../channel/protocol.ts';
import { guestText } from '../escape.ts';

/** Maps whatever ended a guest's run to an outcome with a stable code. */
export function classify(error: unknown): WorkerOutcome {
  if (error instanceof GuestExit) return { kind: 'exit', code: error.code };
  if (error instanceof FuelExhausted) {
    return { kind: 'error', error: 'ERR_LIMIT_CPU', message: `partition ${error.partition} ran out of fuel: its budget of ${error.budget} is spent` };
  }
  // The abort message is the guest's own text: escaped and cut (host/escape.ts).
  if (error instanceof GuestAbort) return { kind: 'error', error: 'ERR_GUEST_TRAP', message: `guest aborted: ${guestText(error.message)}` };
  if (error instanceof WebAssembly.RuntimeError) return { kind: 'error', error: 'ERR_GUEST_TRAP', message: `guest trapped: ${error.message}` };
  if (error instanceof RangeError && /call stack/i.test(error.message)) {
    return { kind: 'error', error: 'ERR_GUEST_TRAP', message: 'guest trapped: stack overflow (maximum call stack size exceeded)' };
  }
  if (error instanceof WebAssembly.LinkError) return { kind: 'error', error: 'ERR_IMPORT_DENIED', message: `guest failed to link: ${guestText(error.message)}` };
  if (error instanceof RangeError && /memory/i.test(error.message)) return { kind: 'error', error: 'ERR_LIMIT_MEMORY', message: error.message };
  const message = error instanceof Error ? error.message : String(error);
  return { kind: 'error', error: 'ERR_INTERNAL', message: `runtime fault while running the guest: ${guestText(message)}` };
}
