/**
 * The transform worker's job (see transform.ts): what transform-worker.ts does with each message
 * the root posts to it, as a function from the message to the reply, so that it can be called
 * (and tested) in any thread. The entry only wires it to its parent port.
 *
 * Invariants:
 * - Every message gets exactly one reply and the reply never throws: the module's bytes, or the
 *   error with its code (ERR_FEATURE_DENIED for a module the suspend transform cannot take, a
 *   typed refusal's own code, null for a fault of the transform, which the root reports as
 *   ERR_INTERNAL).
 * - A message the root would never send (no positive integer id, no byte array, `suspendable`
 *   not a boolean) is refused as a fault, code null, without touching binaryen.
 */
import { WasmvisorError } from '../errors.ts';
import { quoted } from '../escape.ts';
import { ASYNCIFY_EXPORTS, ASYNCIFY_IMPORTS, type TransformReply, type TransformRequest } from './transform.ts';
import { binaryenFeatures, instrumentFuel, instrumenterHealthy, loadBinaryen } from './instrument.ts';

/** The names the pass exports, by our name for them. */
const PASS_EXPORTS: Record<keyof typeof ASYNCIFY_EXPORTS, string> = {
  startUnwind: 'asyncify_start_unwind',
  stopUnwind: 'asyncify_stop_unwind',
  startRewind: 'asyncify_start_rewind',
  stopRewind: 'asyncify_stop_rewind',
  getState: 'asyncify_get_state',
};

/** The id a reply carries when the message had no usable one: the root numbers from 1. */
export const NO_TRANSFORM_ID = 0;

class Denied extends Error {}

/** The reply to post, and the buffers to transfer with it. */
export interface TransformAnswer {
  readonly reply: TransformReply;
  readonly transfer: ArrayBuffer[];
}

async function transform(request: TransformRequest): Promise<Uint8Array> {
  const metered = (await instrumentFuel(request.bytes)).bytes;
  return request.suspendable ? asyncify(metered) : metered;
}

async function asyncify(bytes: Uint8Array): Promise<Uint8Array> {
  const b = await loadBinaryen();
  const read = b.readBinary as unknown as (data: Uint8Array, features: number) => InstanceType<typeof b.Module>;
  const module = read(bytes, binaryenFeatures(b));
  try {
    for (const name of Object.values(PASS_EXPORTS)) {
      if (module.getExport(name) !== 0) throw new Denied(`shared placement needs the export name ${name}, which the module uses`);
    }
    b.setPassArgument('asyncify-imports', ASYNCIFY_IMPORTS.join(','));
    module.runPasses(['asyncify']);
    for (const [ours, theirs] of Object.entries(PASS_EXPORTS) as [keyof typeof ASYNCIFY_EXPORTS, string][]) {
      const info = b.getExportInfo(module.getExport(theirs));
      module.removeExport(theirs);
      module.addFunctionExport(info.value, ASYNCIFY_EXPORTS[ours]);
    }
    if (!module.validate()) throw new Error('the transform produced an invalid module');
    return module.emitBinary();
  } finally {
    module.dispose();
  }
}

/** The request in `message`, or why it is not one. */
function requestOf(message: unknown): TransformRequest | string {
  if (typeof message !== 'object' || message === null) return `malformed transform request: ${quoted(message)}`;
  const { id, bytes, suspendable } = message as Partial<TransformRequest>;
  if (!Number.isSafeInteger(id) || (id as number) < 1) return `malformed transform request: its id is ${quoted(id)}, not a positive integer`;
  if (!(bytes instanceof Uint8Array)) return `malformed transform request: its bytes are ${quoted(bytes)}, not a byte array`;
  if (typeof suspendable !== 'boolean') return `malformed transform request: suspendable is ${quoted(suspendable)}, not a boolean`;
  return { id: id as number, bytes, suspendable };
}

/**
 * Meters fuel in the message's module (and, when asked, makes it suspendable) and replies with
 * the new bytes, transferred, or with the error and its code; `retire` when this thread's
 * binaryen is no longer trusted (instrument.ts, `instrumenterHealthy`).
 */
export async function answerTransformRequest(message: unknown): Promise<TransformAnswer> {
  const answer = await answerOne(message);
  // As the loader's thread does (loader-jobs.ts): once an exception has unwound through this
  // thread's binaryen, the reply asks the root to retire the thread.
  return instrumenterHealthy() ? answer : { reply: { ...answer.reply, retire: true }, transfer: answer.transfer };
}

/** The reply to one message, before the thread's health is added. */
async function answerOne(message: unknown): Promise<TransformAnswer> {
  let id = NO_TRANSFORM_ID;
  try {
    const request = requestOf(message);
    if (typeof request === 'string') return { reply: { id: NO_TRANSFORM_ID, error: request, code: null }, transfer: [] };
    id = request.id;
    const bytes = await transform(request);
    return { reply: { id, bytes }, transfer: [bytes.buffer as ArrayBuffer] };
  } catch (error) {
    const code = error instanceof Denied ? 'ERR_FEATURE_DENIED' : error instanceof WasmvisorError ? error.code : null;
    return { reply: { id, error: error instanceof Error ? error.message : typeof error === 'string' ? error : quoted(error), code }, transfer: [] };
  }
}
