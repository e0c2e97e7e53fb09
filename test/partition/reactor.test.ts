import { afterEach, describe, expect, it } from 'vitest';
import { GuestCallError, Hypervisor, type RestartInfo } from '../../host/index.ts';
import { MAX_NAME_LENGTH } from '../../host/schema/index.ts';
import { guest, hypervisor } from '../helpers.ts';

const dec = new TextDecoder();
const text = (b: Uint8Array) => dec.decode(b);
let hv: Hypervisor;
afterEach(async () => {
  await hv?.close();
});

async function reactor(name = 'transform', spec: Record<string, unknown> = {}) {
  hv ??= hypervisor();
  const p = await hv.createPartition({ name: `${name}-${Math.random().toString(36).slice(2, 8)}`, module: guest(name), kind: 'reactor', ...spec });
  const restarts: RestartInfo[] = [];
  p.on('restart', (r) => restarts.push(r));
  await p.start();
  return { p, restarts };
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

describe('reactor partitions: calls into a running guest', () => {
  it('round-trips empty, small and text payloads, and keeps state between calls', async () => {
    hv = hypervisor();
    const { p } = await reactor();
    expect(p.kind).toBe('reactor');
    expect(await p.call('echo')).toEqual(new Uint8Array(0));
    expect(text(await p.call('upper', 'hello, plugin'))).toBe('HELLO, PLUGIN');
    expect(text(await p.call('render', '# T\n\nsome **b** <x>\n- a\n'))).toBe('<h1>T</h1>\n<p>some <strong>b</strong> &lt;x&gt;</p>\n<ul>\n<li>a</li>\n</ul>\n');
    expect([text(await p.call('count')), text(await p.call('count'))]).toEqual(['1', '2']);
  });

  it('takes an input of exactly maxInputBytes and refuses one byte more before the guest sees it', async () => {
    hv = hypervisor();
    const { p } = await reactor('transform', { limits: { maxInputBytes: 200_000 } });
    const max = new Uint8Array(200_000).map((_, i) => 97 + (i % 26));
    const out = await p.call('echo', max);
    expect(Buffer.compare(out, max)).toBe(0);
    await expect(p.call('echo', new Uint8Array(200_001))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('maxInputBytes') });
    expect(text(await p.call('count'))).toBe('1');
  });

  it('lets the output reach exactly maxOutputBytes; past it the guest is told TOO_LARGE', async () => {
    hv = hypervisor();
    const { p } = await reactor('transform', { limits: { maxOutputBytes: 100_000 } });
    expect((await p.call('fill', u32(100_000))).length).toBe(100_000);
    const err = await p.call('fill', u32(100_001)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GuestCallError);
    expect(err).toMatchObject({ code: 'ERR_GUEST_CALL', status: 1 });
  });

  it('reports a non-zero return as ERR_GUEST_CALL with the status and output, without a restart', async () => {
    hv = hypervisor();
    const { p, restarts } = await reactor();
    await p.call('count');
    const err = (await p.call('fail').catch((e: unknown) => e)) as GuestCallError;
    expect(err.code).toBe('ERR_GUEST_CALL');
    expect(err.status).toBe(7);
    expect(text(err.output)).toBe('bad input');
    expect(text(await p.call('count'))).toBe('2');
    expect(restarts).toEqual([]);
  });

  it('serializes concurrent calls in order', async () => {
    hv = hypervisor();
    const { p } = await reactor();
    const results = await Promise.all(Array.from({ length: 20 }, () => p.call('count')));
    expect(results.map(text)).toEqual(Array.from({ length: 20 }, (_, i) => String(i + 1)));
  });

  it('bounds the queue: past maxQueuedCalls a call fails at once with ERR_BUSY', async () => {
    hv = hypervisor();
    const { p } = await reactor('transform', { limits: { maxQueuedCalls: 2 } });
    const spinning = p.call('spin', '', { timeoutMs: 300 });
    const a = p.call('count');
    const b = p.call('count');
    await expect(p.call('count')).rejects.toMatchObject({ code: 'ERR_BUSY' });
    await expect(spinning).rejects.toMatchObject({ code: 'ERR_LIMIT_CPU' });
    expect([text(await a), text(await b)]).toEqual(['1', '2']);
  });

  it('maxQueuedCalls 0: one call at a time, none waits (the call an idle reactor starts at once is not queued)', async () => {
    hv = hypervisor();
    const { p } = await reactor('transform', { limits: { maxQueuedCalls: 0 } });
    expect(text(await p.call('count'))).toBe('1');
    const running = p.call('count');
    await expect(p.call('count')).rejects.toMatchObject({ code: 'ERR_BUSY' });
    expect(text(await running)).toBe('2');
    expect(text(await p.call('count'))).toBe('3');
  });

  it('an AbortSignal drops a queued call; aborting the running call kills and restarts the instance', async () => {
    hv = hypervisor();
    const { p, restarts } = await reactor();
    const running = new AbortController();
    const queued = new AbortController();
    const spinning = p.call('spin', '', { signal: running.signal, timeoutMs: 10_000 });
    const dropped = p.call('count', '', { signal: queued.signal });
    const kept = p.call('count');
    queued.abort();
    await expect(dropped).rejects.toMatchObject({ name: 'AbortError' });
    running.abort();
    await expect(spinning).rejects.toMatchObject({ name: 'AbortError' });
    expect(text(await kept)).toBe('1'); // fresh instance: the counter starts again
    expect(restarts).toHaveLength(1);
    await expect(p.call('count', '', { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    // The README's contract: the rejection is the signal's reason (as fetch's), a non-Error
    // reason wrapped in an Error named AbortError with code ABORT_ERR and the reason as cause.
    const mine = new Error('mine');
    await expect(p.call('count', '', { signal: AbortSignal.abort(mine) })).rejects.toBe(mine);
    await expect(p.call('count', '', { signal: AbortSignal.abort('why') })).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR', cause: 'why' });
    const late = new AbortController();
    const lateCall = p.call('spin', '', { signal: late.signal, timeoutMs: 10_000 });
    late.abort(7);
    await expect(lateCall).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR', cause: 7 });
    await expect(p.call('spin', '', { signal: AbortSignal.timeout(20), timeoutMs: 10_000 })).rejects.toMatchObject({ name: 'TimeoutError' });
  });

  it('a queued call goes ahead into the ring behind the running one; its budget starts when it runs, and an instance that fails first hands it back', async () => {
    hv = hypervisor();
    const { p, restarts } = await reactor();
    const internals = p as unknown as { ahead: unknown; queue: unknown[] };
    const spinning = p.call('spin', '', { timeoutMs: 300 });
    // Sent ahead at once (no AbortSignal); its budget (100 ms) is shorter than the spin before it.
    const next = p.call('count', '', { timeoutMs: 100 });
    const queued = p.call('count');
    expect(internals.ahead).toMatchObject({ name: 'count' });
    expect(internals.queue).toHaveLength(1);
    expect(p.pendingCalls).toBe(3);
    await expect(spinning).rejects.toMatchObject({ code: 'ERR_LIMIT_CPU' });
    // Never started in the instance that was killed: it runs once, first, on the fresh one.
    expect([text(await next), text(await queued)]).toEqual(['1', '2']);
    expect(restarts).toHaveLength(1);
    // A trap in the running call: the call ahead of it runs on the next instance.
    const trapped = p.call('trap');
    const after = p.call('count');
    expect(internals.ahead).toMatchObject({ name: 'count' });
    await expect(trapped).rejects.toMatchObject({ code: 'ERR_GUEST_TRAP' });
    expect(text(await after)).toBe('1');
    expect(restarts).toHaveLength(2);
  });

  it('a call with an AbortSignal waits in the queue (never ahead): its abort leaves the instance alone', async () => {
    hv = hypervisor();
    const { p, restarts } = await reactor();
    const internals = p as unknown as { ahead: unknown };
    await p.call('count');
    const first = p.call('upper', 'a'.repeat(1000));
    const aborted = new AbortController();
    const dropped = p.call('count', '', { signal: aborted.signal });
    expect(internals.ahead).toBeNull();
    aborted.abort();
    await expect(dropped).rejects.toMatchObject({ name: 'AbortError' });
    expect(text(await first)).toBe('A'.repeat(1000));
    expect(text(await p.call('count'))).toBe('2');
    expect(restarts).toEqual([]);
  });

  it('trap → restart → the next call succeeds with fresh state', async () => {
    hv = hypervisor();
    const { p, restarts } = await reactor();
    await p.call('count');
    await p.call('count');
    await expect(p.call('trap')).rejects.toMatchObject({ code: 'ERR_GUEST_TRAP' });
    expect(text(await p.call('count'))).toBe('1');
    expect(restarts).toEqual([{ reason: 'ERR_GUEST_TRAP', message: 'guest trapped: unreachable', attempt: 1, delayMs: 10 }]);
    expect(p.metrics().restarts).toBe(1);
    expect(p.state).toBe('running');
  });

  it('a call over its time budget fails with ERR_LIMIT_CPU and the instance is replaced', async () => {
    hv = hypervisor();
    const { p, restarts } = await reactor();
    await expect(p.call('spin', '', { timeoutMs: 150 })).rejects.toMatchObject({ code: 'ERR_LIMIT_CPU' });
    expect(restarts[0]?.reason).toBe('ERR_LIMIT_CPU');
    expect(text(await p.call('upper', 'ok'))).toBe('OK');
  });

  it("restart: 'never' ends the partition at the first failure", async () => {
    hv = hypervisor();
    const { p } = await reactor('transform', { restart: 'never' });
    const queued = p.call('count');
    await expect(p.call('trap')).rejects.toMatchObject({ code: 'ERR_GUEST_TRAP' });
    expect(text(await queued)).toBe('1'); // queued before the trap in order: it ran first
    const exit = await p.exited;
    expect(exit).toMatchObject({ state: 'trapped', reason: 'ERR_GUEST_TRAP' });
    await expect(p.call('count')).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
  });

  it('gives up after maxRestarts failures in a row, with a growing backoff', async () => {
    hv = hypervisor();
    const { p, restarts } = await reactor('transform', { restart: { maxRestarts: 2, backoffMs: 5 } });
    for (let i = 0; i < 3; i++) await expect(p.call('trap')).rejects.toMatchObject({ code: 'ERR_GUEST_TRAP' });
    expect(restarts.map((r) => [r.attempt, r.delayMs])).toEqual([[1, 5], [2, 10]]);
    expect(await p.exited).toMatchObject({ state: 'trapped', reason: 'ERR_GUEST_TRAP' });
  });

  it('refuses calls to a command, to a missing or non-callable export, and before start', async () => {
    hv = hypervisor();
    const cmd = await hv.createPartition({ name: 'cmd', module: guest('hello') });
    await expect(cmd.call('anything')).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
    const idle = await hv.createPartition({ name: 'idle', module: guest('transform'), kind: 'reactor' });
    await expect(idle.call('echo')).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
    await idle.start();
    await expect(idle.call('nope')).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(idle.call('_initialize')).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(idle.call('memory')).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });

  it('stop() fails queued calls with ERR_KILLED and ends the partition', async () => {
    hv = hypervisor();
    const { p } = await reactor();
    const spinning = p.call('spin', '', { timeoutMs: 10_000 });
    const queued = p.call('count');
    const exit = await p.stop();
    expect(exit).toMatchObject({ state: 'killed', reason: 'ERR_KILLED' });
    await expect(spinning).rejects.toMatchObject({ code: 'ERR_KILLED' });
    await expect(queued).rejects.toMatchObject({ code: 'ERR_KILLED' });
  });
});

describe('fuel per call', () => {
  it('each call gets the partition budget or its own; running out poisons only that instance', async () => {
    hv = hypervisor();
    const { p, restarts } = await reactor('transform', { limits: { fuel: 50_000_000 } });
    expect(text(await p.call('upper', 'fuel'))).toBe('FUEL');
    // A spinning call ends by fuel, long before its wall-clock budget.
    const t0 = performance.now();
    await expect(p.call('spin', '', { fuel: 100_000, timeoutMs: 20_000 })).rejects.toMatchObject({ code: 'ERR_LIMIT_CPU', message: expect.stringContaining('fuel') });
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(restarts.map((r) => r.reason)).toEqual(['ERR_LIMIT_CPU']);
    // The budget is per call: many small calls together spend more than one call may.
    for (let i = 0; i < 5; i++) await p.call('fill', u32(4096), { fuel: 20_000 });
    await expect(p.call('fill', u32(1 << 20), { fuel: 20_000 })).rejects.toMatchObject({ code: 'ERR_LIMIT_CPU' });
    expect(text(await p.call('count'))).toBe('1');
  });

  it('refuses a call budget for a partition without fuel metering, and a malformed one', async () => {
    hv = hypervisor();
    const { p } = await reactor();
    await expect(p.call('echo', '', { fuel: 1000 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('limits.fuel') });
    const { p: metered } = await reactor('transform', { limits: { fuel: 1_000_000 } });
    await expect(metered.call('echo', '', { fuel: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(metered.call('echo', '', { fuel: 1.5 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});

describe('a hostile plugin cannot read the previous caller’s input after a restart', () => {
  it('finds the secret while the instance lives, and zeros after a restart', async () => {
    hv = hypervisor();
    const { p } = await reactor('attack-plugin-snoop');
    const secret = 'CALLER-A-SECRET-' + Math.random().toString(36).slice(2);
    await p.call('remember', secret);
    // Positive control: the same instance still holds it (its own memory, its own business).
    expect(text((await p.call('peek')).subarray(0, secret.length))).toBe(secret);
    expect(Number(text(await p.call('scan', secret)))).toBeGreaterThan(0);
    await expect(p.call('crash')).rejects.toMatchObject({ code: 'ERR_GUEST_TRAP' });
    const after = await p.call('peek');
    expect(after.every((b) => b === 0)).toBe(true);
    expect(text(await p.call('scan', secret))).toBe('0');
  });
});

describe('partition pools', () => {
  it('spread concurrent calls over their partitions', async () => {
    hv = hypervisor();
    const pool = await hv.createPool({ name: 'pool', module: guest('transform') }, { size: 3 });
    expect(pool.size).toBe(3);
    const outs = await Promise.all(Array.from({ length: 30 }, () => pool.call('count')));
    // Each partition counts its own calls: every one of the three took a share of the 30.
    const counts = outs.map((o) => Number(text(o)));
    expect(counts.filter((c) => c === 1)).toHaveLength(3);
    const perPartition = pool.partitions.map((p) => p.metrics().hypercallsByCall.OUTPUT_WRITE ?? 0);
    expect(perPartition.reduce((a, b) => a + b, 0)).toBe(30);
    for (const n of perPartition) expect(n).toBeGreaterThanOrEqual(5);
    await pool.destroy();
    await expect(pool.call('count')).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
    expect(hv.partitions()).toEqual([]);
  });

  it("refuse up front, naming the pool's name, a name whose derived partition names would pass the name limit", async () => {
    hv = hypervisor();
    expect(MAX_NAME_LENGTH).toBe(64);
    // size 2: `<name>-0`, `<name>-1`; the longest name that fits leaves two characters.
    const longest = 'p'.repeat(MAX_NAME_LENGTH - 2);
    const pool = await hv.createPool({ name: longest, module: guest('transform') }, { size: 2 });
    expect(pool.partitions.map((p) => p.name)).toEqual([`${longest}-0`, `${longest}-1`]);
    expect(pool.partitions.every((p) => p.name.length === MAX_NAME_LENGTH)).toBe(true);
    await pool.destroy();
    const over = `${longest}q`;
    await expect(hv.createPool({ name: over, module: guest('transform') }, { size: 2 })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: `pool spec: name: "${over}" has ${MAX_NAME_LENGTH - 1} characters; a pool of 2 names its partitions up to "${over}-1", and a partition name has at most ${MAX_NAME_LENGTH}: the pool's name may have at most ${MAX_NAME_LENGTH - 2}`,
    });
    // The suffix's width counts: at size 11 the last is `-10`, so the name that fit above does not.
    await expect(hv.createPool({ name: longest, module: guest('transform') }, { size: 11 })).rejects.toThrow(/the pool's name may have at most 61$/);
    // A spec not given at all is refused naming it, not a TypeError from reading its name.
    await expect(hv.createPool(undefined as never, { size: 1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'pool spec: (root): expected an object, got nothing' });
    // Nothing was created by a refused pool.
    expect(hv.partitions()).toEqual([]);
  });
});

describe('call input is copied at the call (issue #10.4)', () => {
  const inputs: [string, () => Uint8Array][] = [
    ['a Buffer', () => Buffer.from('abcdef')],
    ['a Buffer from the pool (a view of a larger ArrayBuffer)', () => Buffer.from('abcdef', 'latin1')],
    ['a subarray view', () => new TextEncoder().encode('xxabcdefxx').subarray(2, 8)],
    ['a Uint8Array', () => new TextEncoder().encode('abcdef')],
  ];

  for (const [kind, make] of inputs) {
    it(`${kind}: never zeroed by the call, and changes after call() never reach the guest`, async () => {
      hv = new Hypervisor();
      const { p } = await reactor();
      // A slow call first, so the next one waits in the queue while the caller changes its buffer.
      const slow = p.call('upper', 'x'.repeat(100_000));
      const input = make();
      const before = Uint8Array.from(input);
      const answer = p.call('upper', input);
      input.set(new TextEncoder().encode('ZZZZZZ'));
      input.set(before); // and back: only the bytes at the call count
      input.fill(0x71); // 'q'
      await slow;
      expect(text(await answer)).toBe('ABCDEF');
      // The caller's buffer holds what the caller last wrote, not zeros.
      expect([...input]).toEqual(new Array(6).fill(0x71));
      // And a buffer nobody touches after the call is intact once the call is done.
      const kept = make();
      await p.call('upper', kept);
      expect([...kept]).toEqual([...before]);
    });
  }

  it('a string: its bytes at the call are what the guest sees', async () => {
    hv = new Hypervisor();
    const { p } = await reactor();
    expect(text(await p.call('upper', 'abcdef'))).toBe('ABCDEF');
  });
});
