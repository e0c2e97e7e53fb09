import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor } from '../../host/index.ts';
import { loaderCounters } from '../../host/loader/pipeline.ts';
import { guest as builtGuest } from '../helpers.ts';
import { localsBomb } from './bombs.mjs';

/** The longest the event loop went without running a 5 ms interval, until `stop()`. */
function loopLag(): { stop(): number } {
  let last = performance.now();
  let max = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    max = Math.max(max, now - last);
    last = now;
  }, 5);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(max, performance.now() - last);
    },
  };
}

let hv: Hypervisor | undefined;
afterEach(async () => {
  await hv?.close();
  hv = undefined;
});

describe('the loader runs off the root thread', () => {
  it('keeps another partition’s 300 ms watchdog punctual and the event loop free while a slow module loads', async () => {
    // 30,000 functions of 50,000 locals: the engine's validation costs seconds, linear in the
    // 1.5e9 locals (issue #10.2 used 150k functions). The bound on total locals would refuse it
    // at once, so it is raised here: the point is the thread the work happens on.
    hv = new Hypervisor({ moduleLimits: { totalLocals: 0xffff_ffff } });
    const bomb = localsBomb(30_000, 50_000);
    const spinner = await hv.createPartition({ name: 'spinner', module: builtGuest('attack-spin'), limits: { timeoutMs: 300 }, devices: { console: true } });
    await spinner.start();
    const lag = loopLag();
    const started = performance.now();
    const loading = hv.createPartition({ name: 'slow', module: bomb, limits: { timeoutMs: 60_000 } });
    const spun = await spinner.exited;
    await loading;
    const loadMs = performance.now() - started;
    const maxLag = lag.stop();
    expect(spun).toMatchObject({ state: 'killed', reason: 'ERR_LIMIT_CPU' });
    // Ratios, not absolute times: the watchdog fires within 3x its budget, and the event loop
    // never stalls for a fifth of the load (on the synchronous loader it stalled for most of it).
    expect(spun.runTimeMs / 300).toBeLessThan(3);
    expect(maxLag).toBeLessThan(loadMs / 5);
  }, 120_000);

  it('validates a module once when it is inspected and then loaded (the CLI’s WASI check), and once for many partitions', async () => {
    hv = new Hypervisor();
    // A module this test file has not loaded before, so the loader's caches are cold.
    const bytes = localsBomb(3, 7);
    const before = await loaderCounters();
    await hv.inspect(bytes, {}, { wasi: true });
    await hv.createPartition({ name: 'a', module: bytes });
    await hv.createPartition({ name: 'b', module: bytes });
    const after = await loaderCounters();
    expect(after.validations - before.validations).toBe(1);
  });
});
