/**
 * A compromised partition process that stops reading its channel but keeps acknowledging what
 * the root forwards (fixtures/forged-child.cjs, scenario `deaf`): the root must not buffer for it
 * without bound. What the root holds unread for a child stays within the rings it mirrors; a
 * child that then acknowledges bytes it was never sent is refused like any forged frame.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor, type Violation } from '../../host/index.ts';
import { guest } from '../helpers.ts';
import { useProcessCode } from './process-seam.ts';

const forgedChild = new URL('./fixtures/forged-child.cjs', import.meta.url);

let hv: Hypervisor | null = null;
afterEach(async () => {
  await hv?.close();
  hv = null;
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Bytes the root has written to its partition processes' channels that they have not taken (Node's buffer; the kernel's comes on top). */
function unread(h: Hypervisor): number {
  const procs = (h as unknown as { sched: { processes: Set<{ channel: { writableLength: number } }> } }).sched.processes;
  let n = 0;
  for (const p of procs) n += p.channel.writableLength;
  return n;
}

describe('a partition process that does not read its channel', () => {
  it('gets nothing more until it reads: the root holds at most about a ring for it, and a forged acknowledgement then kills it', async () => {
    hv = new Hypervisor({ dataDir: mkdtempSync(path.join(os.tmpdir(), 'wv-deaf-')), warmWorkers: 0 });
    useProcessCode(hv, forgedChild);
    // An input buffer of one record: each 64 KiB line waits for the child's acknowledgement.
    const p = await hv.createPartition({ name: 'deaf', module: guest('hello'), isolation: 'process', args: ['deaf'], devices: { console: { inputBufferBytes: 64 } } });
    const violations: Violation[] = [];
    p.on('violation', (v) => violations.push(v));
    await p.start();
    const pid = p.workerId!;
    const line = new Uint8Array(65536).fill(0x61);
    let most = 0;
    // 150 lines are 9.6 MiB: several times what the kernel's socket buffers take.
    for (let i = 0; i < 150 && p.state === 'running'; i++) {
      let queued = false;
      for (let wait = 0; wait < 400 && !queued && p.state === 'running'; wait++) {
        queued = p.writeLine(line);
        if (!queued) await sleep(5);
      }
      most = Math.max(most, unread(hv));
      if (!queued) break;
      process.kill(pid, 'SIGUSR2');
    }
    expect(most).toBeLessThan(1 << 20);
    const exit = await Promise.race([p.exited, sleep(10_000).then(() => null)]);
    if (exit === null) throw new Error('the deaf child was still running 10 s after its last acknowledgement');
    expect([exit.state, exit.reason]).toEqual(['killed', 'ERR_KILLED']);
    expect(exit.error!.message).toMatch(/an acknowledgement of 65540 bytes of ring 2, more than was forwarded/);
    expect(violations).toHaveLength(1);
    // The first partition process of a test file transforms its module (suspendable): seconds on a loaded machine.
  }, 60_000);
});
