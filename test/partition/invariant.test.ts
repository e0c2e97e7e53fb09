/**
 * The invariant of issue #10 (item 1), tested on its own: no exception caused by a partition's
 * traffic reaches the host's event loop. Every root-side entry point that handles partition
 * traffic (the event pump, worker events, watchdog and restart timers, the call sender) turns a
 * failure into a typed end of that partition. Hostile guests, hostile traffic forged into the
 * channels (as a compromised worker could write it) and careless embedders run here under a
 * process-level detector of uncaught exceptions and unhandled rejections.
 */
import { describe, expect, it } from 'vitest';
import { SharedRing } from '../../host/channel/ring.ts';
import { Hypervisor, type Partition, type PartitionExit } from '../../host/index.ts';
import { EventKind } from '../../host/channel/protocol.ts';
import { captureEscapes, guest, hypervisor } from '../helpers.ts';

const escaped = captureEscapes();

/** The root's private handle on a partition's current run, as a compromised worker could reach it. */
interface RunInternals {
  events: SharedRing;
  host: { placement: 'dedicated' | 'shared' | 'process'; worker: { emit(event: string, value: unknown): boolean } | null; events: { message(m: unknown): void } | null };
}
/**
 * Delivers `message` to the root as if the partition's worker had sent it (a partition process's
 * lifecycle message as its host decoded it; test/scheduler/process-channel.test.ts forges frames).
 */
function forge(run: RunInternals, message: unknown): void {
  if (run.host.placement !== 'dedicated') run.host.events!.message(message);
  else run.host.worker!.emit('message', message);
}
function runOf(p: Partition): RunInternals {
  const run = (p as unknown as { run: RunInternals | null }).run;
  if (run === null) throw new Error('no run');
  return run;
}

/** Lets every pending event, timer and microtask of the root run. */
const settle = (ms = 100) => new Promise((r) => setTimeout(r, ms));

async function reactor(hv: Hypervisor, name: string, spec: Record<string, unknown> = {}): Promise<Partition> {
  const p = await hv.createPartition({ name, module: guest('limits'), kind: 'reactor', restart: 'never', ...spec });
  await p.start();
  return p;
}

describe('no exception from partition traffic reaches the event loop', () => {
  it('hostile guests: a flood, a spinner under a watchdog, a trap, an abort, a 17 MiB call stopped mid-transfer', async () => {
    const hv = hypervisor();
    const flood = await hv.createPartition({ name: 'flood', module: guest('attack-flood'), devices: { console: true }, limits: { timeoutMs: 400 } });
    const trap = await hv.createPartition({ name: 'trap', module: guest('trap'), devices: { console: true } });
    const abort = await hv.createPartition({ name: 'abort', module: guest('abort'), devices: { console: true } });
    const spin = await reactor(hv, 'spin', { limits: { callTimeoutMs: 200 } });
    const big = await reactor(hv, 'big', { limits: { maxInputBytes: 17 << 20 } });
    await Promise.all([flood.start(), trap.start(), abort.start()]);
    const spun = spin.call('spin').catch((e: unknown) => e);
    // Stopped while its input is still being chunked into the ring: the sender must just stop.
    const bigCall = big.call('digest', new Uint8Array(17 << 20)).catch((e: unknown) => e);
    await new Promise((r) => setImmediate(r));
    const stopped = await big.stop();
    const exits = await Promise.all([flood.exited, trap.exited, abort.exited]);
    expect(exits.map((e) => e.reason)).toEqual(['ERR_LIMIT_CPU', 'ERR_GUEST_TRAP', 'ERR_GUEST_TRAP']);
    expect(await spun).toMatchObject({ code: 'ERR_LIMIT_CPU' });
    expect(stopped.reason).toBe('ERR_KILLED');
    expect(await bigCall).toMatchObject({ code: 'ERR_KILLED' });
    await hv.close();
    await settle();
    expect(escaped).toEqual([]);
  });

  it('a malformed record on the event ring (bad JSON, unknown kind, a header past the data) ends that partition with ERR_INTERNAL', async () => {
    const hv = hypervisor();
    const forged: [string, (ring: SharedRing) => void][] = [
      ['bad json', (r) => r.tryWrite(EventKind.VIOLATION, new TextEncoder().encode('{"call": 1'))],
      ['unknown kind', (r) => r.tryWrite(77, new Uint8Array(8))],
      ['short result', (r) => r.tryWrite(EventKind.RESULT, new Uint8Array(2))],
      [
        'corrupt header',
        (r) => {
          // A record header claiming 16 MiB with 4 bytes published.
          const ctl = new Int32Array(r.sab, 0, 8);
          const data = new Uint8Array(r.sab, 32);
          const head = Atomics.load(ctl, 0);
          data.set([0xff, 0xff, 0xff, 0x01], head & (r.capacity - 1));
          Atomics.store(ctl, 0, head + 4);
          Atomics.add(ctl, 3, 1);
          Atomics.notify(ctl, 3);
        },
      ],
    ];
    const exits: PartitionExit[] = [];
    for (const [name, forge] of forged) {
      const p = await reactor(hv, name.replace(' ', '-'));
      const healthy = await reactor(hv, `${name.replace(' ', '-')}-healthy`);
      forge(runOf(p).events);
      exits.push(await p.exited);
      // The neighbour never noticed.
      expect((await healthy.call('digest', new Uint8Array(10))).length).toBe(8);
    }
    expect(exits.map((e) => [e.state, e.reason])).toEqual(forged.map(() => ['killed', 'ERR_INTERNAL']));
    expect(exits[0]!.error!.message).toMatch(/channel failed/);
    await hv.close();
    await settle();
    expect(escaped).toEqual([]);
  });

  it('a corrupt event ring fails the call sent ahead as well: it may have run, so it is never sent again', async () => {
    const hv = hypervisor();
    const p = await hv.createPartition({ name: 'ahead', module: guest('transform'), kind: 'reactor' });
    await p.start();
    const running = p.call('spin', '', { timeoutMs: 10_000 }).catch((e: unknown) => e);
    const ahead = p.call('count').catch((e: unknown) => e);
    expect((p as unknown as { ahead: unknown }).ahead).toMatchObject({ name: 'count' });
    runOf(p).events.tryWrite(77, new Uint8Array(8));
    expect(await running).toMatchObject({ code: 'ERR_INTERNAL' });
    expect(await ahead).toMatchObject({ code: 'ERR_INTERNAL', message: expect.stringMatching(/channel failed/) });
    // The partition restarted: a fresh instance answers.
    expect(new TextDecoder().decode(await p.call('count'))).toBe('1');
    await hv.close();
    await settle();
    expect(escaped).toEqual([]);
  });

  it('a corrupt record on a NIC\'s tx ring unplugs that NIC and ends its partition with ERR_INTERNAL; the segment goes on', async () => {
    const hv = hypervisor();
    const net = { segment: 'inv', host: true };
    const bad = await hv.createPartition({ name: 'nic-bad', module: guest('net-pong'), args: ['quiet'], devices: { console: true, net } });
    const good = await hv.createPartition({ name: 'nic-good', module: guest('net-pong'), args: ['quiet'], devices: { console: true, net } });
    await Promise.all([bad.start(), good.start()]);
    // As a compromised worker could write it: a header claiming 16 MiB with 4 bytes published.
    const tx = (bad as unknown as { config: { net: { init: { tx: SharedArrayBuffer } } } }).config.net.init.tx;
    const ring = new SharedRing(tx);
    const ctl = new Int32Array(tx, 0, 8);
    const head = Atomics.load(ctl, 0);
    new Uint8Array(tx, 32).set([0xff, 0xff, 0xff, 0x01], head & (ring.capacity - 1));
    Atomics.store(ctl, 0, head + 4);
    Atomics.add(ctl, 3, 1);
    Atomics.notify(ctl, 3);
    const exit = await bad.exited;
    expect([exit.state, exit.reason]).toEqual(['killed', 'ERR_INTERNAL']);
    expect(exit.error!.message).toMatch(/channel failed: corrupt ring/);
    // The other NIC of the segment still answers.
    const ep = hv.attachNet('inv');
    const answered = new Promise<string>((resolve) => ep.on('frame', (f) => resolve(new TextDecoder().decode(f.payload))));
    expect(ep.send(good.netAddress!, 'ping 5')).toBe('delivered');
    expect(await answered).toBe('pong 5');
    await hv.close();
    await settle();
    expect(escaped).toEqual([]);
  });

  it('a guest that exits on its own after the root found its traffic corrupt still ends with ERR_INTERNAL', async () => {
    // The crossing CI once caught: the switch unplugs a NIC for a corrupt tx ring, which wakes the
    // guest's recv; the guest exits 0 and its `done` reaches the root before the kill lands.
    const hv = hypervisor();
    const p = await reactor(hv, 'crossed');
    const run = runOf(p) as RunInternals & { fail(error: unknown): void };
    run.fail(new RangeError('corrupt ring: a record of 16777215 bytes with 4 bytes in use'));
    forge(run, { type: 'done', outcome: { kind: 'exit', code: 0 } });
    const exit = await p.exited;
    expect([exit.state, exit.reason]).toEqual(['killed', 'ERR_INTERNAL']);
    expect(exit.error!.message).toMatch(/channel failed: corrupt ring/);
    await hv.close();
    await settle();
    expect(escaped).toEqual([]);
  });

  it('a forged worker message (unknown type, bad outcome) ends that partition with ERR_INTERNAL', async () => {
    const hv = hypervisor();
    for (const message of [{ type: 'bogus' }, { type: 'done', outcome: { kind: 'error', error: 'ERR_NOPE', message: 1 } }, null, 42]) {
      const p = await reactor(hv, `forged-${Math.random().toString(36).slice(2, 8)}`);
      forge(runOf(p), message);
      const exit = await p.exited;
      expect([exit.state, exit.reason]).toEqual(['killed', 'ERR_INTERNAL']);
    }
    await hv.close();
    await settle();
    expect(escaped).toEqual([]);
  });

  it('careless embedders: stop and destroy at every stage, calls with bad arguments, restarts torn down mid-backoff', async () => {
    const hv = hypervisor();
    const created = await hv.createPartition({ name: 'never-started', module: guest('limits'), kind: 'reactor' });
    await created.destroy();
    await created.destroy();
    const p = await hv.createPartition({ name: 'restarting', module: guest('limits'), kind: 'reactor', restart: { mode: 'on-failure', backoffMs: 50 }, limits: { callTimeoutMs: 50 } });
    const starting = p.start();
    void p.stop();
    await starting;
    const q = await reactor(hv, 'bad-args', { restart: { mode: 'on-failure', backoffMs: 200 }, limits: { callTimeoutMs: 50 } });
    await expect(q.call('nope')).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(q.call('digest', 42 as unknown as Uint8Array)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(q.call('spin')).rejects.toMatchObject({ code: 'ERR_LIMIT_CPU' });
    // Destroyed while its restart timer is pending.
    await q.destroy();
    await hv.close();
    await settle(300);
    expect(escaped).toEqual([]);
  });
});
