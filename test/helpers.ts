import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Partition, PartitionExit } from '../host/index.ts';

const root = new URL('../', import.meta.url);

/** Path of a built guest; a clear failure when the build has not run. */
export function guest(name: string): string {
  const path = fileURLToPath(new URL(`build/guests/${name}.wasm`, root));
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build\` first (npm test does)`);
  if (!existsSync(fileURLToPath(new URL('dist/worker.js', root)))) throw new Error('dist/worker.js is missing: run `npm run build` first');
  return path;
}

/** Collects a partition's console lines. */
export function collect(p: Partition): { stdout: string[]; stderr: string[] } {
  const out = { stdout: [] as string[], stderr: [] as string[] };
  p.on('console', (line, stream) => out[stream].push(line));
  return out;
}

/** Starts a partition and waits for its exit. */
export async function runToExit(p: Partition): Promise<PartitionExit> {
  await p.start();
  return p.exited;
}

/** A small deterministic PRNG (mulberry32): the same seed gives the same run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
