import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HV_ABI_MAJOR, HV_ABI_MINOR } from '../../host/abi/codes.ts';
import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor, type PartitionState } from '../../host/index.ts';
import { collect, guest, runToExit, hypervisor } from '../helpers.ts';

let hv: Hypervisor;
afterEach(async () => {
  await hv?.close();
});

describe('partition lifecycle', () => {
  it('runs a guest to a normal exit: created → running → exited → destroyed', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'hello', module: guest('hello'), devices: { console: true }, args: ['x', 'y z'] });
    const states: PartitionState[] = [];
    p.on('state', (s) => states.push(s));
    const out = collect(p);
    expect(p.state).toBe('created');
    const exit = await runToExit(p);
    expect(exit).toMatchObject({ state: 'exited', code: 0, reason: 'exit' });
    expect(exit.error).toBeUndefined();
    expect(out.stdout).toEqual(['Hello from a Wasmvisor partition!', `ABI version ${HV_ABI_MAJOR}.${HV_ABI_MINOR}`, 'arg[0]=x', 'arg[1]=y z']);
    expect(exit.metrics.hypercalls).toBeGreaterThan(0);
    expect(exit.metrics.hypercallsByCall.CONSOLE_WRITE).toBeGreaterThan(0);
    expect(exit.metrics.memoryBytes).toBeGreaterThan(0);
    await p.destroy();
    await p.destroy(); // idempotent
    expect(states).toEqual(['running', 'exited', 'destroyed']);
    expect(hv.partitions()).toEqual([]);
  });

  it("passes the guest's own exit code through", async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'exit', module: guest('exit'), args: ['42'] });
    expect(await runToExit(p)).toMatchObject({ state: 'exited', code: 42, reason: 'exit' });
  });

  it('refuses to start twice, and to start after destroy', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'e', module: guest('exit'), args: ['0'] });
    await p.start();
    await expect(p.start()).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
    await p.exited;
    await p.destroy();
    await expect(p.start()).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
  });

  it('stop() kills a running guest with ERR_KILLED; stopping a created one never runs it', async () => {
    hv = hypervisor();
    const spin = await hv.createPartition({ name: 'spin', module: guest('attack-spin'), devices: { console: true } });
    const out = collect(spin);
    await spin.start();
    await new Promise((r) => setTimeout(r, 100));
    const exit = await spin.stop();
    expect(exit).toMatchObject({ state: 'killed', code: null, reason: 'ERR_KILLED' });
    expect(exit.error?.code).toBe('ERR_KILLED');
    expect(out.stdout).toEqual(['spinning']);
    const idle = await hv.createPartition({ name: 'idle', module: guest('hello') });
    expect(await idle.stop()).toMatchObject({ state: 'killed', reason: 'ERR_KILLED' });
    expect(idle.metrics().hypercalls).toBe(0);
  });

  it('refuses duplicate names (a conflict: ERR_INVALID_STATE) and malformed ones (ERR_INVALID_ARGUMENT)', async () => {
    hv = hypervisor();
    await hv.createPartition({ name: 'a', module: guest('hello') });
    await expect(hv.createPartition({ name: 'a', module: guest('hello') })).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
    await expect(hv.createPartition({ name: '../x', module: guest('hello') })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });

  it('refuses bad limits and unknown devices with ERR_INVALID_ARGUMENT', async () => {
    hv = hypervisor();
    await expect(hv.createPartition({ name: 'a', module: guest('hello'), limits: { memoryPages: 0 } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(hv.createPartition({ name: 'a', module: guest('hello'), limits: { timeoutMs: -1 } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(
      hv.createPartition({ name: 'a', module: guest('hello'), devices: { disk: true } as never }),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('disk') });
  });

  it('echoes console input, with backpressure and end of input', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'echo', module: guest('echo'), devices: { console: { inputBufferBytes: 64 } } });
    const out = collect(p);
    await p.start();
    const lines = Array.from({ length: 50 }, (_, i) => `line ${i} ${'x'.repeat(i % 7)}`);
    for (const line of lines) expect(await p.writeLineWhenReady(line)).toBe(true);
    p.endInput();
    expect(await p.exited).toMatchObject({ state: 'exited', code: 0 });
    expect(out.stdout).toEqual([...lines.map((l) => `echo: ${l}`), 'bye (50 lines)']);
    expect(p.writeLine('late')).toBe(false);
  });

  it('console input after destroy is refused (false, EPIPE), never left in the scrubbed input ring', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'echo-gone', module: guest('echo'), devices: { console: true } });
    await p.start();
    p.endInput();
    await p.exited;
    await p.destroy();
    expect(p.writeLine('after destroy')).toBe(false);
    expect(await p.writeLineWhenReady('after destroy')).toBe(false);
    const failed = await new Promise<NodeJS.ErrnoException | null | undefined>((resolve) => {
      p.stdin.on('error', () => {});
      p.stdin.write('after destroy', resolve);
    });
    expect(failed).toMatchObject({ code: 'EPIPE' });
  });

  it('console input that is neither a string nor bytes is refused with ERR_INVALID_ARGUMENT, never queued', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'echo-bad', module: guest('echo'), devices: { console: true } });
    const bad = [5, null, {}, [104, 105]] as unknown as string[];
    for (const line of bad) {
      expect(() => p.writeLine(line)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('console input line must be a string or a Uint8Array') }));
      await expect(p.writeLineWhenReady(line)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    }
    const out = collect(p);
    await p.start();
    expect(await p.writeLineWhenReady('only this')).toBe(true);
    p.endInput();
    await p.exited;
    expect(out.stdout).toEqual(['echo: only this', 'bye (1 lines)']);
  });

  it('reports a trap and an abort as ERR_GUEST_TRAP, with the console output before it', async () => {
    hv = hypervisor();
    const trap = await hv.createPartition({ name: 'trap', module: guest('trap'), devices: { console: true } });
    const out = collect(trap);
    const exit = await runToExit(trap);
    expect(exit).toMatchObject({ state: 'trapped', code: null, reason: 'ERR_GUEST_TRAP' });
    expect(exit.error?.message).toMatch(/unreachable/);
    expect(out.stdout).toEqual(['about to trap']);
    const abort = await hv.createPartition({ name: 'abort', module: guest('abort') });
    const aborted = await runToExit(abort);
    expect(aborted).toMatchObject({ state: 'trapped', reason: 'ERR_GUEST_TRAP' });
    expect(aborted.error?.message).toMatch(/guest assertion failed/);
  });

  it('a name in use is ERR_INVALID_STATE (a conflict with a live partition, as the management API answers 409), one after another and at once, with a disk too; free again once destroyed', async () => {
    hv = hypervisor({ dataDir: mkdtempSync(path.join(os.tmpdir(), 'wv-dup-')) });
    const first = await hv.createPartition({ name: 'dup', module: guest('exit'), args: ['0'] });
    await expect(hv.createPartition({ name: 'dup', module: guest('exit'), args: ['0'] })).rejects.toMatchObject({ code: 'ERR_INVALID_STATE', message: 'a partition named dup already exists' });
    // Two at once: both pass the first check, so the one that loses is refused after its load.
    for (const block of [false, { sizeMiB: 1 }] as const) {
      const name = block ? 'race-disk' : 'race';
      const settled = await Promise.allSettled([0, 1].map(() => hv.createPartition({ name, module: guest('exit'), args: ['0'], devices: { block } })));
      expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
      const refused = settled.find((s) => s.status === 'rejected') as PromiseRejectedResult;
      // With a disk the loser may meet the winner's lock on the image first: the same code either way.
      expect(refused.reason, name).toMatchObject({ code: 'ERR_INVALID_STATE', message: block ? expect.stringMatching(/race-disk/) : `a partition named ${name} already exists` });
    }
    await first.destroy();
    const again = await hv.createPartition({ name: 'dup', module: guest('exit'), args: ['0'] });
    expect(again.state).toBe('created');
  });

  it('close() while creations are loading: each is refused with ERR_INVALID_STATE and nothing outlives close', async () => {
    hv = hypervisor();
    const creations = [
      hv.createPartition({ name: 'late-r', module: guest('transform'), kind: 'reactor' }),
      hv.createPartition({ name: 'late-c', module: guest('exit'), args: ['0'] }),
    ];
    const closed = hv.close();
    for (const c of creations) await expect(c).rejects.toMatchObject({ code: 'ERR_INVALID_STATE', message: expect.stringMatching(/closed while partition late-[rc] was being created/) });
    await closed;
    expect(hv.partitions()).toEqual([]);
    expect(hv.memoryUsage().reservedBytes).toBe(0);
  });
});
