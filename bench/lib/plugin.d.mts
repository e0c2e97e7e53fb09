/** Types of bench/lib/plugin.mjs (plain JS, shared by bench/plugin.mjs and test/bench/plugin-guard.test.ts). */
export declare const INPUT: Uint8Array;
export declare function checkEcho(out: Uint8Array): void;
export declare function throughput(fn: () => Promise<unknown>, inFlight: number, total: number): Promise<number>;
/** CPU per call in all threads and in the root, µs, and the cores used on average (null without /proc). */
export interface CallCpu {
  cpuUs: number;
  rootUs: number;
  cores: number;
}
export declare function threadCpu(): Map<string, number> | null;
export declare function cpuPerCall(before: Map<string, number> | null, after: Map<string, number> | null, wallMs: number, calls: number): CallCpu | null;
export interface PoolVsOne {
  one: number;
  pool: number;
  /** The median of the per-pair ratios (pool / baseline), and their spread. */
  ratio: number;
  ratioMin: number;
  ratioMax: number;
  pairs: number;
  oneCpu: CallCpu | null;
  poolCpu: CallCpu | null;
  /** Every slice's calls/s, in the order measured. */
  oneRates: number[];
  poolRates: number[];
}
/** Alternated slices: `calls` calls per slice, `pairs` of each side; `rounds` alternated warm-up rounds of `warmup` calls each (default 2). */
export interface SliceOptions {
  calls: number;
  pairs: number;
  warmup: number;
  rounds?: number;
}
export declare function alternatedSlices(runOne: (calls: number) => Promise<unknown>, runPool: (calls: number) => Promise<unknown>, pairs: number, calls: number): Promise<PoolVsOne>;
export declare function poolVsOne(Hypervisor: unknown, module: string, options: SliceOptions): Promise<PoolVsOne>;
export declare function timedCalls<W>(pick: () => W, call: (w: W) => Promise<unknown>, n: number): Promise<number[]>;
export interface BareWorker {
  worker: import('node:worker_threads').Worker;
  a: Int32Array;
  bytes: Uint8Array;
  /** `bare worker <i>`, as a failure names it. */
  name: string;
  /** Why it died ('exited with code 1', 'failed: …'), or null while it lives. */
  dead: string | null;
}
export declare function bareWorkers(count: number): Promise<{ workers: BareWorker[]; call: (w: BareWorker) => Promise<void>; close: () => Promise<unknown> }>;
export declare function quantile(xs: readonly number[], q: number): number;
export declare function barePoolVsOne(options: SliceOptions): Promise<PoolVsOne>;
