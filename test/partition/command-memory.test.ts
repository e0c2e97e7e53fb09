import { afterEach, describe, expect, it } from 'vitest';
import type { Hypervisor, NetFrame, Partition } from '../../host/index.ts';
import { budget, collect, guest, hypervisor } from '../helpers.ts';

// A command whose loop lasts as long as its input (console lines, bytes, frames, requests) must
// reclaim what each round allocates, as a reactor must between calls (reactor-memory.test.ts).
// Built with the stub runtime (no collector), echo trapped (ERR_GUEST_TRAP, unreachable) after
// 570 lines of 64 bytes in 4 pages (about 43,000 at the default 256); net-pong after a few
// hundred pings. These guests are now built with `// wasmvisor:runtime incremental`
// (scripts/build-guests.mjs); each runs here for many times what its stub build survived, in 4
// pages, and must end as it should, not trapped.
let hv: Hypervisor | undefined;
afterEach(async () => {
  await hv?.close();
  hv = undefined;
});

const PAGES = 4;
/** Console output at any pace: the test counts lines, the rate limit must not drop them. */
const CONSOLE = { linesPerSecond: 1_000_000, burstLines: 1_000_000 };
/** The NIC's limits lifted (as bench/net.mjs does): a frame is never dropped for its rate. */
const NIC = { segment: 'm', host: true, sendBytesPerSecond: 2 ** 40, sendFramesPerSecond: 1e9, recvBytesPerSecond: 2 ** 40, recvFramesPerSecond: 1e9, rxQueueBytes: 1 << 20 };

/** A line of `n` bytes that names its number. */
const line = (i: number, n = 63) => `line ${String(i).padStart(6, '0')} `.padEnd(n, '.');

/** `wait`, or a failure as soon as `p` ends first (a trapped guest answers nothing more). */
function unlessEnded<T>(p: Partition, wait: Promise<T>): Promise<T> {
  return Promise.race([wait, p.exited.then((e) => Promise.reject(new Error(`the guest ended first: ${e.state}, ${e.error?.code ?? e.code}: ${e.error?.message ?? ''}`)))]);
}

/** Sends `payload` from `ep` to `p` and resolves with the next frame that comes back. */
function exchange(ep: ReturnType<Hypervisor['attachNet']>, p: Partition, payload: Uint8Array | string): Promise<NetFrame> {
  return unlessEnded(
    p,
    new Promise((resolve, reject) => {
      ep.once('frame', resolve);
      const r = ep.send(p.netAddress!, payload);
      if (r !== 'delivered') reject(new Error(`send: ${r}`));
    }),
  );
}

describe('command memory: a guest that loops over its input reclaims what each round allocates', () => {
  it(`echo: 20,000 lines of 64 bytes in ${PAGES} pages (its stub build trapped after 570)`, async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'echo', module: guest('echo'), limits: { memoryPages: PAGES, timeoutMs: budget(120_000) }, devices: { console: CONSOLE } });
    const out = collect(p);
    await p.start();
    for (let i = 0; i < 20_000; i++) if (!(await p.writeLineWhenReady(line(i)))) throw new Error(`line ${i} refused`);
    p.endInput();
    const exit = await p.exited;
    expect(exit, exit.error?.message).toMatchObject({ state: 'exited', code: 0 });
    expect(out.stdout).toHaveLength(20_001);
    expect(out.stdout[19_999]).toBe(`echo: ${line(19_999)}`);
    expect(out.stdout.at(-1)).toBe('bye (20000 lines)');
  }, budget(180_000));

  it(`cat: 1 MiB read 64 bytes at a time (16,384 reads) in ${PAGES} pages`, async () => {
    hv = hypervisor();
    // A 64-byte input buffer: no read returns more, so every 64 bytes are one round of the loop.
    const p = await hv.createPartition({ name: 'cat', module: guest('cat'), limits: { memoryPages: PAGES, timeoutMs: budget(120_000) }, devices: { console: { ...CONSOLE, inputBufferBytes: 64 } } });
    const out = collect(p);
    const chunks: Buffer[] = [];
    p.stdout.on('data', (c: Buffer) => chunks.push(c));
    await p.start();
    for (let i = 0; i < 16_384; i++) if (!(await p.writeLineWhenReady(line(i)))) throw new Error(`line ${i} refused`);
    p.endInput();
    const exit = await p.exited;
    expect(exit, exit.error?.message).toMatchObject({ state: 'exited', code: 0 });
    const copied = Buffer.concat(chunks);
    expect(copied.length).toBe(1 << 20);
    expect(copied.subarray(-64).toString()).toBe(`${line(16_383)}\n`);
    expect(out.stderr).toEqual([`copied ${1 << 20} bytes`]);
    // Every read returned at most 64 bytes: at least 16,384 rounds of the loop ran.
    expect(exit.metrics.hypercallsByCall.CONSOLE_STREAM_READ).toBeGreaterThanOrEqual(16_384);
  }, budget(180_000));

  it(`net-pong: 20,000 pings in ${PAGES} pages`, async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'pong', module: guest('net-pong'), args: ['quiet'], limits: { memoryPages: PAGES, timeoutMs: budget(120_000) }, devices: { net: NIC } });
    const ep = hv.attachNet('m');
    await p.start();
    const dec = new TextDecoder();
    for (let i = 0; i < 20_000; i++) {
      const f = await exchange(ep, p, `ping ${i}`);
      if (dec.decode(f.payload) !== `pong ${i}`) throw new Error(`ping ${i}: got ${dec.decode(f.payload)}`);
    }
    ep.send(p.netAddress!, 'bye');
    const exit = await p.exited;
    expect(exit, exit.error?.message).toMatchObject({ state: 'exited', code: 0 });
  }, budget(180_000));

  it(`net-service: 10,000 requests in ${PAGES} pages`, async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'svc', module: guest('net-service'), limits: { memoryPages: PAGES, timeoutMs: budget(120_000) }, devices: { console: CONSOLE, net: NIC } });
    const out = collect(p);
    const ep = hv.attachNet('m');
    await p.start();
    // Stream frames as the forwarder sends them (docs/ABI.md, "Forwarded ports"): DATA, port 80, connection 1.
    const frame = (text: string) => {
      const body = new TextEncoder().encode(text);
      const f = new Uint8Array(8 + body.length);
      new DataView(f.buffer).setUint8(0, 2);
      new DataView(f.buffer).setUint16(2, 80, true);
      new DataView(f.buffer).setUint32(4, 1, true);
      f.set(body, 8);
      return f;
    };
    const dec = new TextDecoder();
    for (let i = 0; i < 10_000; i++) {
      const r = await exchange(ep, p, frame(`request ${i}`));
      if (dec.decode(r.payload.subarray(8)) !== `OK REQUEST ${i}\n`) throw new Error(`request ${i}: got ${dec.decode(r.payload.subarray(8))}`);
    }
    // "quit": the guest answers BYE and CLOSE and ends (its exit may be seen before its last frames).
    expect(ep.send(p.netAddress!, frame('quit'))).toBe('delivered');
    const exit = await p.exited;
    expect(exit, exit.error?.message).toMatchObject({ state: 'exited', code: 0 });
    expect(out.stdout.at(-1)).toBe('service: served 10001 requests');
  }, budget(180_000));

  it(`net-log: 10,000 frames, each printed, in ${PAGES} pages`, async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'log', module: guest('net-log'), limits: { memoryPages: PAGES, timeoutMs: budget(120_000) }, devices: { console: CONSOLE, net: NIC } });
    const ep = hv.attachNet('m');
    let printed = 0;
    let waiting: (() => void) | null = null;
    p.on('console', () => {
      printed++;
      waiting?.();
    });
    const listening = new Promise<void>((resolve) => (waiting = resolve));
    await p.start();
    await listening;
    for (let i = 0; i < 10_000; i++) {
      const before = printed;
      await unlessEnded(
        p,
        new Promise<void>((resolve, reject) => {
          waiting = () => printed > before && resolve();
          const r = ep.send(p.netAddress!, line(i));
          if (r !== 'delivered') reject(new Error(`send ${i}: ${r}`));
        }),
      );
    }
    ep.send(p.netAddress!, 'bye');
    const exit = await p.exited;
    expect(exit, exit.error?.message).toMatchObject({ state: 'exited', code: 0 });
    expect(printed).toBe(10_001); // "listening", then one line a frame
  }, budget(180_000));
});
