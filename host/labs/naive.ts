/**
 * Naive embeddings: how the same guests fare in a host without Wasmvisor's defences, for the
 * labs' "what if the defence were off" comparisons. Each is the smallest honest version of a
 * shape real plugin hosts have had: several plugins linked to one shared memory, an import object
 * that offers whatever a module asks for, a host function that writes before it checks, and one
 * plugin instance reused for every caller. None of them reaches anything real: the "host
 * functions" here only record that they were called, and the unchecked writer runs in a worker
 * thread so that its crash ends that thread, not the lab.
 */
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { HvCall, HvStatus } from '../abi/codes.ts';

/** Two plugins linked to one memory: the holder keeps `copies` copies of the secret, the scanner counts them. */
export async function sharedMemoryScan(holderWasm: string, scanWasm: string, secret: string, copies: number): Promise<{ found: number; pages: number }> {
  const memory = new WebAssembly.Memory({ initial: 2, maximum: 2 });
  const env = { env: { memory } };
  const holder = (await WebAssembly.instantiate(readFileSync(holderWasm), env)).instance;
  const scanner = (await WebAssembly.instantiate(readFileSync(scanWasm), env)).instance;
  const bytes = new TextEncoder().encode(secret);
  const view = new Uint8Array(memory.buffer);
  // The host hands each plugin its input in "its" part of the one memory: the holder's on page 1, the scanner's on page 0.
  view.set(bytes, 65536);
  (holder.exports.hold as (src: number, len: number, dst: number, n: number) => void)(65536, bytes.length, 65536 + 4096, copies);
  view.fill(0, 65536, 65536 + bytes.length);
  view.set(bytes, 1024);
  const found = (scanner.exports.scan as (ptr: number, len: number) => number)(1024, bytes.length);
  return { found, pages: memory.buffer.byteLength / 65536 };
}

/** An import object that gives a module what it asks for: here a harmless `env.system` that records its calls. */
export async function openImports(wasm: string): Promise<{ calls: number[]; linked: boolean }> {
  const calls: number[] = [];
  const system = (arg: number) => {
    calls.push(arg);
    return 0;
  };
  const { instance } = await WebAssembly.instantiate(readFileSync(wasm), { env: { system } });
  (instance.exports._start as () => void)();
  return { calls, linked: true };
}

/** The naive host of naive-pointers.wat, in a worker: `fill` writes byte by byte without checking first. */
const UNCHECKED_HOST = `
const { workerData } = require('node:worker_threads');
const written = new Int32Array(workerData.progress);
(async () => {
  let memory;
  const { instance } = await WebAssembly.instantiate(workerData.bytes, {
    env: {
      fill(ptr, len) {
        const view = new DataView(memory.buffer);
        for (let i = 0; i < len; i++) {
          view.setUint8(ptr + i, 0x5a);
          Atomics.add(written, 0, 1);
        }
      },
    },
  });
  memory = instance.exports.memory;
  instance.exports._start();
})();
`;

/** Runs naive-pointers.wat in a host whose `fill` writes without checking. Resolves with what happened to that host. */
export function uncheckedWrite(wasm: string): Promise<{ written: number; requested: number; crashed: string | null }> {
  const progress = new SharedArrayBuffer(4);
  const worker = new Worker(UNCHECKED_HOST, { eval: true, workerData: { bytes: readFileSync(wasm), progress } });
  return new Promise((resolve) => {
    let crashed: string | null = null;
    worker.on('error', (error) => (crashed = `${error.name}: ${error.message}`));
    worker.on('exit', () => resolve({ written: new Int32Array(progress)[0]!, requested: 16, crashed }));
  });
}

/**
 * One instance of a reactor plugin reused for every caller, with the smallest hv.hypercall that
 * serves its calls (INPUT_SIZE, INPUT_READ, OUTPUT_WRITE; everything else INVALID_CALL).
 */
export class ReusedPlugin {
  private instance!: WebAssembly.Instance;
  private input: Uint8Array = new Uint8Array(0);
  private output: Uint8Array[] = [];

  static async load(wasm: string): Promise<ReusedPlugin> {
    const plugin = new ReusedPlugin();
    const hypercall = (call: number, inPtr: number, inLen: number, outPtr: number, outCap: number): number => plugin.hypercall(call, inPtr, inLen, outPtr, outCap);
    plugin.instance = (await WebAssembly.instantiate(readFileSync(wasm), { hv: { hypercall } })).instance;
    (plugin.instance.exports._initialize as (() => void) | undefined)?.();
    return plugin;
  }

  /** Calls an export with `input` (as a caller of the plugin would); returns its output. */
  call(name: string, input: string | Uint8Array): Uint8Array {
    this.input = typeof input === 'string' ? new TextEncoder().encode(input) : input;
    this.output = [];
    (this.instance.exports[name] as () => number)();
    return Buffer.concat(this.output);
  }

  private hypercall(call: number, inPtr: number, inLen: number, outPtr: number, outCap: number): number {
    const memory = new Uint8Array((this.instance.exports.memory as WebAssembly.Memory).buffer);
    switch (call) {
      case HvCall.INPUT_SIZE:
        return this.input.length;
      case HvCall.INPUT_READ: {
        const offset = inLen >= 4 ? new DataView(memory.buffer).getUint32(inPtr, true) : 0;
        const chunk = this.input.subarray(offset, offset + outCap);
        memory.set(chunk, outPtr);
        return chunk.length;
      }
      case HvCall.OUTPUT_WRITE:
        this.output.push(memory.slice(inPtr, inPtr + inLen));
        return inLen;
      default:
        return -HvStatus.INVALID_CALL;
    }
  }
}
