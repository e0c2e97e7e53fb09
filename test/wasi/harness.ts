import { GuestMemory } from '../../host/abi/guest-memory.ts';
import { GuestExit } from '../../host/abi/dispatcher.ts';
import type { ResolvedWasi } from '../../host/wasi/config.ts';
import { WASI_QUOTA_DEFAULTS } from '../../host/wasi/config.ts';
import { createWasi, type WasiInstance, type WasiWiring } from '../../host/wasi/setup.ts';
import type { SeedEntry } from '../../host/wasi/vfs.ts';

/** A WASI instance over a plain 1-page memory, with fake devices: for calling the table directly. */
export interface Harness {
  bytes: Uint8Array;
  dv: DataView;
  wasi: WasiInstance;
  call(name: string, ...args: (number | bigint)[]): number;
  stdout: string[];
  stderr: string[];
  faults: string[];
  /** Writes a string at ptr; returns its byte length. */
  put(ptr: number, s: string): number;
  get(ptr: number, len: number): string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * What createWasi needs from a worker, for calling it directly: a memory, no device granted, an
 * exit that throws; `devices` replaces any part.
 */
export function wiring(memory: GuestMemory, devices: Partial<WasiWiring> = {}): WasiWiring {
  return {
    memory,
    console: null,
    clock: null,
    entropy: null,
    exit: (code) => {
      throw new Error(`exit ${code}`);
    },
    checkEnding: () => {},
    onCall: () => {},
    onFault: () => {},
    admit: () => true,
    ...devices,
  };
}

export function harness(
  options: {
    entries?: SeedEntry[];
    readonly?: boolean;
    quotas?: Partial<ResolvedWasi['quotas']>;
    stdin?: string;
    pages?: number;
    /** Devices other than the fake ones (null: not granted). */
    clock?: WasiWiring['clock'];
    entropy?: WasiWiring['entropy'];
    /** The hypercall rate limit (default: always admits). */
    admit?: WasiWiring['admit'];
  } = {},
): Harness {
  const buffer = new ArrayBuffer(65536 * (options.pages ?? 1));
  const bytes = new Uint8Array(buffer);
  const memory = new GuestMemory();
  memory.bind({ buffer });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const faults: string[] = [];
  let ending: GuestExit | null = null;
  const config: ResolvedWasi = {
    args: ['prog', 'a1'],
    env: ['K=V'],
    preopens: [{ guestPath: '/sandbox', kind: 'virtual', readonly: options.readonly ?? false, entries: options.entries ?? [] }],
    stdin: options.stdin === undefined ? { kind: 'none' } : { kind: 'bytes', bytes: enc.encode(options.stdin) },
    quotas: { ...WASI_QUOTA_DEFAULTS, ...options.quotas },
  };
  let t = 1_000_000n;
  const wasi = createWasi(config, {
    memory,
    console: {
      writeStream: (stream, b, n) => ((stream === 'stdout' ? stdout : stderr).push(dec.decode(b.subarray(0, n))), n),
      readStream: () => 0,
      readableBytes: () => 0,
      waitInput: () => {},
    },
    clock: options.clock !== undefined ? options.clock : { read: () => (t += 1_000_000n), resolutionNs: 1_000_000 },
    entropy: options.entropy !== undefined ? options.entropy : { fill: (out, n) => out.fill(0xab, 0, n) },
    exit: (code) => {
      throw (ending = new GuestExit(code));
    },
    checkEnding: () => {
      if (ending) throw ending;
    },
    onCall: () => {},
    onFault: (name) => faults.push(name),
    admit: options.admit ?? (() => true),
  });
  const fns = wasi.imports as unknown as Record<string, (...a: (number | bigint)[]) => number>;
  return {
    bytes,
    dv: new DataView(buffer),
    wasi,
    stdout,
    stderr,
    faults,
    call: (name, ...args) => {
      const fn = fns[name];
      if (fn === undefined) throw new Error(`no WASI function ${name}`);
      return fn(...args);
    },
    put: (ptr, s) => {
      const b = enc.encode(s);
      bytes.set(b, ptr);
      return b.length;
    },
    get: (ptr, len) => dec.decode(bytes.subarray(ptr, ptr + len)),
  };
}
