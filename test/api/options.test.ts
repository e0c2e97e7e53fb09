/**
 * Optional options arguments of the embedder API, all alike (README, "Specs: one schema"): left
 * out or `undefined` is "no options"; `null` is not, and is ERR_INVALID_ARGUMENT naming the
 * argument (`<what>: (root): expected an object, got null`), before anything is done.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hypervisor, type Partition, type PartitionPool } from '../../host/index.ts';
import { guest } from '../helpers.ts';

let dir: string;
let hv: Hypervisor;
let reactor: Partition;
let pool: PartitionPool;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-options-'));
  hv = new Hypervisor({ dataDir: dir });
  reactor = await hv.createPartition({ name: 'r', module: guest('transform'), kind: 'reactor' });
  await reactor.start();
  pool = await hv.createPool({ name: 'pool', module: guest('transform') }, { size: 1 });
});

afterAll(async () => {
  await hv?.close();
  rmSync(dir, { recursive: true, force: true });
});

const NULL = null as never;

/** Each optional-options method: with `undefined` (must be taken) and with `null` (must be refused), and the refusal's prefix. */
function methods(): { name: string; given: (options: undefined | null) => Promise<unknown>; where: string }[] {
  const module = guest('hello');
  return [
    { name: 'new Hypervisor', given: async (o) => void (await new Hypervisor(o as never).close()), where: 'Hypervisor options' },
    { name: 'hv.inspect limits', given: (o) => hv.inspect(module, o as never), where: 'inspect limits' },
    { name: 'hv.inspect options', given: (o) => hv.inspect(module, undefined, o as never), where: 'inspect options' },
    { name: 'hv.attest', given: (o) => hv.attest(o as never), where: 'attest options' },
    { name: 'hv.setPolicy', given: (o) => hv.setPolicy(null, o as never), where: 'setPolicy options' },
    { name: 'hv.wipeStorage', given: (o) => hv.wipeStorage('nobody', o as never), where: 'wipeStorage options' },
    { name: 'partition.call', given: (o) => reactor.call('upper', 'x', o as never), where: 'call options of upper' },
    { name: 'pool.call', given: (o) => pool.call('upper', 'x', o as never), where: 'call options of upper' },
  ];
}

describe('an optional options argument', () => {
  it('is taken when undefined, and refused naming it when null', async () => {
    for (const m of methods()) {
      await expect(m.given(undefined), m.name).resolves.not.toThrow();
      await expect(m.given(NULL), m.name).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: `${m.where}: (root): expected an object, got null` });
    }
  });

  it('destroy: undefined destroys, null is refused and the partition stays', async () => {
    const p = await hv.createPartition({ name: 'd', module: guest('hello') });
    await expect(p.destroy(NULL)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'destroy options of partition d: (root): expected an object, got null' });
    expect(p.state).toBe('created');
    await p.destroy(undefined);
    expect(p.state).toBe('destroyed');
  });

  it("a call's optional input: undefined is no input, null is refused naming the call", async () => {
    await expect(reactor.call('upper', undefined, undefined)).resolves.toEqual(new Uint8Array(0));
    await expect(reactor.call('upper', NULL)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'call input of upper: expected a Uint8Array or a string, got null' });
  });

  it('attachNet names its argument as a spec names devices.net.segment', () => {
    for (const bad of [null, 5, '', 'a/b']) {
      expect(() => hv.attachNet(bad as never), String(bad)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/^attachNet: segment: expected 1-64 letters, digits, '\.', '_' or '-' \(starting with a letter or digit\), got /) }),
      );
    }
    hv.attachNet('blue').close();
  });

  it('a bad module source says what was given; a call fuel without metering is named as its option', async () => {
    await expect(hv.inspect(null as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'module source must be a Uint8Array, an ArrayBuffer, a path or a file: URL, got null' });
    await expect(hv.inspect(5 as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'module source must be a Uint8Array, an ArrayBuffer, a path or a file: URL, got the number 5' });
    await expect(reactor.call('upper', 'x', { fuel: 1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'call options of upper: fuel: needs a fuel-metered partition (create r with limits.fuel)' });
  });

  it('createPool: size one past each edge is refused naming it, before any partition is made', async () => {
    const before = hv.partitions().length;
    for (const size of [0, 1025, 1.5]) {
      await expect(hv.createPool({ name: 'edge', module: guest('transform') }, { size }), String(size)).rejects.toMatchObject({
        code: 'ERR_INVALID_ARGUMENT',
        message: `pool options: size: expected an integer from 1 to 1024, got the number ${size}`,
      });
    }
    await expect(hv.createPool({ name: 'edge', module: guest('transform') }, { size: 1, sise: 2 } as never)).rejects.toMatchObject({ message: 'pool options: sise: unknown key; did you mean size?' });
    expect(hv.partitions().length).toBe(before);
  });
});
