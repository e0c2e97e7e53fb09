/**
 * A shared partition process (host/worker/process.ts) keeps its own copies of each partition's
 * rings: what a partition wrote (its console output) and was sent (its calls' inputs) passes
 * through them. When the partition is done there, the copies are zeroed, so none of it stays in
 * the memory of a process that goes on running other partitions. Driven in this thread: the
 * child's real PartitionProcess over a socket the test plays the root on (frames as the root
 * writes them), a real scheduler and a real context over a suspendable module.
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import v8 from 'node:v8';
import { describe, expect, it } from 'vitest';
import { HvCall } from '../../host/abi/codes.ts';
import { decodeChildFrame, encodeAdd, encodeBoot, FrameReader, type ProcessInit } from '../../host/channel/frames.ts';
import type { SharedRing } from '../../host/channel/ring.ts';
import { allocateStats } from '../../host/channel/stats.ts';
import { PartitionProcess } from '../../host/worker/process.ts';
import { loadSuspendable, workerInit } from './worker-init.ts';

const SECRET = 'the-process-secret';

/** Prints the secret on its console and exits 0. */
const PRINTER = `(module
  (import "hv" "hypercall" (func $hc (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "${SECRET}\\n")
  (func (export "_start")
    (drop (call $hc (i32.const ${HvCall.CONSOLE_WRITE}) (i32.const 64) (i32.const ${SECRET.length + 1}) (i32.const 0) (i32.const 0)))))`;

/** The root's end of the channel, as far as the child uses it: frames written to it are decoded here. */
class RootEnd extends EventEmitter {
  readonly writableLength = 0;
  readonly lifecycle: { slot: number; type: string }[] = [];
  private readonly reader = new FrameReader(1 << 24);

  write(frame: Uint8Array): boolean {
    this.reader.push(frame.slice(), (body) => {
      const f = decodeChildFrame(body);
      if (f.type === 'lifecycle') this.lifecycle.push({ slot: f.slot, type: f.message.type });
      return true;
    });
    return true;
  }

  cork(): void {}
  uncork(): void {}
  end(): void {}
}

describe('a shared partition process', () => {
  it('zeroes its copies of a partition’s rings once the partition is done there', async () => {
    const loaded = await loadSuspendable(PRINTER);
    const root = new RootEnd();
    const child = new PartitionProcess(root as unknown as net.Socket);
    child.start();
    const send = (frame: Uint8Array): void => void root.emit('data', Buffer.from(frame));
    send(encodeBoot(JSON.stringify({ sliceMs: 10, dedicated: false })));

    const { module: _m, stats: _s, events: _e, calls: _c, input: _i, stdio: _o, block: _b, net: _n, ...init } = workerInit('printer', loaded.module, { sliceFuel: 200_000 });
    const add: ProcessInit = {
      init,
      moduleBytes: Uint8Array.from(loaded.bytes),
      stats: new Float64Array(allocateStats()),
      rings: { events: 65536, calls: 64, input: 64 },
      stdio: 0,
      block: null,
      net: null,
    };
    send(encodeAdd(1, v8.serialize(add)));
    // The copies exist from the ADD on (frames for the partition may follow it at once).
    const slot = (child as unknown as { slots: Map<number, { events: { ring: SharedRing }; calls: { ring: SharedRing }; input: { ring: SharedRing } }> }).slots.get(1)!;
    const rings = [slot.events.ring, slot.calls.ring, slot.input.ring];

    const deadline = Date.now() + 30_000;
    while (!root.lifecycle.some((m) => m.type === 'done')) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(root.lifecycle).toEqual([
      { slot: 1, type: 'running' },
      { slot: 1, type: 'done' },
    ]);
    for (const ring of rings) expect(new Uint8Array(ring.sab).every((b) => b === 0)).toBe(true);
  }, 60_000);
});
