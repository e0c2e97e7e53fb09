/**
 * A reactor call whose budget (`timeoutMs`) runs out says whether the partition had taken the
 * call. Issue #16: calls failed with "exceeded its budget of 5000 ms" although the guest never
 * ran them (a lost wake-up left them unread in the call ring), and nothing in the error said so.
 * The root reads the call ring's read position when the budget fires: a call still unread there
 * gets the diagnostic; a call that was taken and ran too long does not.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Hypervisor } from '../../host/index.ts';
import { guest, hypervisor, PLACEMENT } from '../helpers.ts';

const NOT_TAKEN = '; the partition had not taken the call (still unread in its call ring: the guest never started it)';

let hv: Hypervisor | null = null;
afterEach(async () => {
  await hv?.close();
  hv = null;
});

async function message(call: Promise<unknown>): Promise<string> {
  const error = await call.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toMatchObject({ code: 'ERR_LIMIT_CPU', name: 'LimitCpuError' });
  return (error as Error).message;
}

describe("a reactor call's budget", () => {
  it('a call the guest took and ran past its budget: the message as before, no diagnostic', async () => {
    hv = hypervisor({ warmWorkers: 0 });
    const p = await hv.createPartition({ name: 'spinner', module: guest('transform'), kind: 'reactor' });
    await p.start();
    expect(await message(p.call('spin', '', { timeoutMs: 1000 }))).toBe('call to spin in partition spinner exceeded its budget of 1000 ms');
  });

  // A partition process stopped by a signal (SIGSTOP) cannot take a call: the call stays unread.
  // Only a process can be stopped from outside; run in the suite's process placement.
  it.skipIf(PLACEMENT !== 'process' || process.platform === 'win32')('a call the partition never took (its process stopped): the message says so; its replacement takes the next', async () => {
    hv = hypervisor({ warmWorkers: 0 });
    const p = await hv.createPartition({ name: 'frozen', module: guest('transform'), kind: 'reactor' });
    await p.start();
    expect(new TextDecoder().decode(await p.call('upper', 'ok'))).toBe('OK');
    const pid = p.workerId!;
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGSTOP');
    try {
      expect(await message(p.call('upper', 'ok', { timeoutMs: 300 }))).toBe(`call to upper in partition frozen exceeded its budget of 300 ms${NOT_TAKEN}`);
    } finally {
      // The budget's kill is a SIGKILL, which ends a stopped process too; never leave one stopped.
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // already gone
      }
    }
    expect(new TextDecoder().decode(await p.call('upper', 'ok'))).toBe('OK');
    expect(p.workerId).not.toBe(pid);
  });
});
