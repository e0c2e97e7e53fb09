import { guestText } from '../escape.ts';
import { ModuleInvalidError } from '../errors.ts';
import { isCompileError, wasmEngine } from './wasm-api.ts';

/**
 * Asks the engine whether `bytes` is a valid module, code bodies included; throws
 * ModuleInvalidError if not. `WebAssembly.validate` answers only yes or no, so on a no the
 * bytes are compiled once more, synchronously, purely to obtain the engine's reason
 * (e.g. `... invalid memory limits flags 0x4 @+11`); that compile fails by construction and
 * no module is kept. Nothing here instantiates or runs guest code.
 */
export function validateModule(bytes: Uint8Array): void {
  if (wasmEngine.validate(bytes)) return;
  throw new ModuleInvalidError(`not a valid WebAssembly module: ${engineReason(bytes)}`);
}

function engineReason(bytes: Uint8Array): string {
  try {
    // Result deliberately dropped: this call exists only for its error message.
    new wasmEngine.Module(bytes);
  } catch (error) {
    // The engine's message may quote the module (e.g. a function's name from its name section).
    if (isCompileError(error)) return guestText(error.message.replace(/^WebAssembly\.Module\(\): /, ''));
    return guestText(error instanceof Error ? error.message : String(error));
  }
  // validate and Module disagreed (should not happen); say so rather than invent a reason.
  return 'rejected by WebAssembly.validate (no reason available)';
}
