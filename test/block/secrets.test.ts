/**
 * Key material and the worker boundary (issue #18 item 3). What a partition's worker receives is
 * captured where it is handed over (workerData, or the warm pool's `assign` message), and inspected byte by byte: its block init holds only its
 * own image's data key and image id, each on an ArrayBuffer of exactly its size (so no slice of
 * Node's shared Buffer pool, which could hold other keys, crosses); no buffer in the whole worker
 * data contains the master key, the keystore key or another partition's key; the root's copy is
 * zeroed once the worker has its own. And keys made on the root side never live in pooled Buffers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

interface Captured {
  /** workerData as it was cloned into the worker (a structured clone taken at construction). */
  clone: Record<string, unknown>;
  /** The root's own object, to see what it zeroes afterwards. */
  live: Record<string, unknown>;
}
const captured: Captured[] = [];

vi.mock('node:worker_threads', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:worker_threads')>();
  // A partition's init reaches its worker as workerData or, from the warm pool, in an `assign`
  // message (host/scheduler/dedicated.ts): both are structured clones taken at the call.
  class InspectedWorker extends real.Worker {
    constructor(file: string | URL, options?: import('node:worker_threads').WorkerOptions) {
      const data = options?.workerData as Record<string, unknown> | undefined;
      // Partitions' workers; the loader's thread (host/loader/offthread.ts) is given no data at all.
      if (options?.name === 'wasmvisor:loader') expect(data).toBeUndefined();
      else if (data !== undefined && 'block' in data) captured.push({ clone: structuredClone(data), live: data });
      super(file, options);
    }
    override postMessage(message: unknown, transfer?: readonly import('node:worker_threads').Transferable[]): void {
      const m = message as { type?: unknown; init?: Record<string, unknown> } | null;
      if (m?.type === 'assign' && m.init !== undefined) captured.push({ clone: structuredClone(m.init), live: m.init });
      super.postMessage(message, transfer);
    }
  }
  return { ...real, Worker: InspectedWorker, default: { ...real, Worker: InspectedWorker } };
});

const { Hypervisor } = await import('../../host/index.ts');
const { deriveImageKeys } = await import('../../host/storage/image.ts');
const { Storage } = await import('../../host/storage/storage.ts');
const { isStandalone } = await import('../../host/storage/secret.ts');
const { guest, runToExit } = await import('../helpers.ts');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-secrets-'));
  captured.length = 0;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Every ArrayBuffer (not shared) reachable from a value, with the views found on each. */
function buffers(value: unknown, out = new Set<ArrayBuffer>(), seen = new Set<unknown>()): Set<ArrayBuffer> {
  const stack = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object' || seen.has(v)) continue;
    seen.add(v);
    if (ArrayBuffer.isView(v)) {
      if (v.buffer instanceof ArrayBuffer) out.add(v.buffer);
    } else if (v instanceof ArrayBuffer) {
      out.add(v);
    } else if (v instanceof Map || v instanceof Set) {
      for (const x of v) stack.push(x);
    } else {
      for (const x of Object.values(v)) stack.push(x);
    }
  }
  return out;
}

function contains(haystack: ArrayBuffer, needle: Uint8Array): boolean {
  return Buffer.from(haystack).indexOf(Buffer.from(needle)) >= 0;
}

type Block = { fd: number; sectorCount: number; imageId: Uint8Array; dataKey: Uint8Array };

describe('what crosses to a partition’s worker', () => {
  it('master key: each worker gets only its own derived key and id, on standalone buffers; the master key crosses nowhere', async () => {
    const master = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) master[i] = 0xa0 + i;
    const hv = new Hypervisor({ dataDir: dir, storageKey: master });
    try {
      // Two boots each: the first creates the image, the second opens it (its id read from the header).
      const names = ['alice', 'bob', 'alice', 'bob'];
      for (const name of names) {
        const p = await hv.createPartition({ name, module: guest('counter'), devices: { console: true, block: { sizeMiB: 1 } } });
        await runToExit(p);
        await p.destroy();
      }
      expect(captured).toHaveLength(4);
      const blocks = captured.map((c) => c.clone.block as Block);
      for (const b of blocks) expect(Object.keys(b).sort()).toEqual(['dataKey', 'fd', 'imageId', 'sectorCount']);
      const derived = names.map((name, i) => deriveImageKeys(master, blocks[i]!.imageId, name).dataKey);
      for (const [i, c] of captured.entries()) {
        const block = blocks[i]!;
        expect(isStandalone(block.dataKey) && block.dataKey.byteLength === 32, 'data key on its own 32-byte buffer').toBe(true);
        expect(isStandalone(block.imageId) && block.imageId.byteLength === 16, 'image id on its own 16-byte buffer').toBe(true);
        expect(Buffer.from(block.dataKey).equals(derived[i]!)).toBe(true);
        const other = derived[i % 2 === 0 ? 1 : 0]!;
        for (const ab of buffers(c.clone)) {
          expect(contains(ab, master), 'the master key is in the worker data').toBe(false);
          expect(contains(ab, other), 'another partition’s key is in the worker data').toBe(false);
        }
        // The root's copy was zeroed once the Worker had cloned it.
        expect((c.live.block as Block).dataKey.every((x) => x === 0)).toBe(true);
      }
    } finally {
      await hv.close();
    }
  });

  it('keystore: the keystore key never crosses, only the key derived for this image', async () => {
    const hv = new Hypervisor({ dataDir: dir });
    try {
      const p = await hv.createPartition({ name: 'carol', module: guest('counter'), devices: { console: true, block: { sizeMiB: 1 } } });
      await runToExit(p);
    } finally {
      await hv.close();
    }
    const block = captured[0]!.clone.block as Block;
    const st = new Storage({ dataDir: dir });
    const keystoreKey = (await st.keystore!.find(block.imageId))!.key;
    expect(Buffer.from(block.dataKey).equals(deriveImageKeys(keystoreKey, block.imageId, 'carol').dataKey)).toBe(true);
    for (const ab of buffers(captured[0]!.clone)) expect(contains(ab, keystoreKey)).toBe(false);
  });
});

describe('keys on the root side never live in pooled Buffers', () => {
  it('isStandalone: only a view of its whole ArrayBuffer is', () => {
    const ab = new ArrayBuffer(32);
    expect(isStandalone(new Uint8Array(ab))).toBe(true);
    expect(isStandalone(new Uint8Array(ab, 0, 16))).toBe(false);
    expect(isStandalone(new Uint8Array(ab, 16, 16))).toBe(false);
    expect(isStandalone(new Uint8Array(ab, 8))).toBe(false);
    expect(isStandalone(Buffer.from('a pooled buffer'))).toBe(false);
  });

  it('attachments, keystore reads and derived keys are standalone', async () => {
    for (const masterKey of [undefined, Buffer.alloc(32, 9)]) {
      const st = new Storage({ dataDir: mkdtempSync(path.join(dir, 'k')), ...(masterKey ? { masterKey } : {}) });
      for (const created of [true, false]) {
        const a = await st.attach('p', 1);
        expect(a.created).toBe(created);
        expect(isStandalone(a.imageId)).toBe(true);
        expect(isStandalone(a.dataKey)).toBe(true);
        if (st.keystore) expect(isStandalone((await st.keystore.find(a.imageId))!.key)).toBe(true);
        const key = a.dataKey;
        await st.detach(a);
        expect(key.every((x) => x === 0), 'detach zeroes the data key').toBe(true);
      }
      const keys = deriveImageKeys(Buffer.alloc(32, 1), new Uint8Array(16), 'p');
      expect(isStandalone(keys.dataKey) && isStandalone(keys.macKey)).toBe(true);
    }
  });
});
