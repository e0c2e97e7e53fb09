/**
 * The transform worker (dist/transform.js): runs the binaryen passes for host/loader/transform.ts
 * (fuel metering, then Asyncify for shared placement) off the root's thread.
 */
import { parentPort } from 'node:worker_threads';
import { WasmvisorError } from '../errors.ts';
import { ASYNCIFY_EXPORTS, ASYNCIFY_IMPORTS, type TransformReply, type TransformRequest } from './transform.ts';
import { binaryenFeatures, instrumentFuel, loadBinaryen } from './instrument.ts';

/** The names the pass exports, by our name for them. */
const PASS_EXPORTS: Record<keyof typeof ASYNCIFY_EXPORTS, string> = {
  startUnwind: 'asyncify_start_unwind',
  stopUnwind: 'asyncify_stop_unwind',
  startRewind: 'asyncify_start_rewind',
  stopRewind: 'asyncify_stop_rewind',
  getState: 'asyncify_get_state',
};

class Denied extends Error {}

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

parentPort?.on('message', (request: TransformRequest) => {
  void transform(request).then(
    (bytes) => parentPort!.postMessage({ id: request.id, bytes } satisfies TransformReply, [bytes.buffer as ArrayBuffer]),
    (error: unknown) => {
      const code = error instanceof Denied ? 'ERR_FEATURE_DENIED' : error instanceof WasmvisorError ? error.code : null;
      parentPort!.postMessage({ id: request.id, error: error instanceof Error ? error.message : String(error), code } satisfies TransformReply);
    },
  );
});
