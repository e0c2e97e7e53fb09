/**
 * An embedder's listener that throws (or rejects) is its own bug: it is reported as a process
 * warning (WASMVISOR_LISTENER_THREW) and never stops the hypervisor's work — a restart is still
 * scheduled, a partition is not killed for a console line, every other listener still hears the
 * event (host/events.ts). Before GuardedEmitter: a throwing `restart` listener left the reactor
 * neither restarted nor ended (its next call never answered), a throwing `console` listener
 * killed the partition with ERR_INTERNAL, and a throwing `state` listener kept `exit` from being
 * emitted.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GuardedEmitter, LISTENER_WARNING, MAX_LISTENER_WARNINGS } from '../../host/events.ts';
import type { Hypervisor } from '../../host/index.ts';
import { guest, hypervisor } from '../helpers.ts';

let hv: Hypervisor | null = null;
let warnings: string[] = [];
const onWarning = (w: Error & { code?: string }): void => {
  if (w.code === LISTENER_WARNING) warnings.push(w.message);
};

/** Warnings are emitted on the next tick: wait until `n` have come (bounded by the test's timeout). */
async function warned(n: number): Promise<string[]> {
  while (warnings.length < n) await new Promise((r) => setTimeout(r, 5));
  return warnings;
}

beforeEach(() => {
  warnings = [];
  process.on('warning', onWarning);
});

afterEach(async () => {
  process.off('warning', onWarning);
  await hv?.close();
  hv = null;
});

const text = (b: Uint8Array): string => new TextDecoder().decode(b);

describe("an embedder's listener that throws", () => {
  it('a throwing restart listener: the reactor still restarts and answers the next call', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'plugin', module: guest('transform'), kind: 'reactor', restart: { mode: 'on-failure', backoffMs: 1 } });
    const heard: number[] = [];
    p.on('restart', () => {
      throw new Error('bug in the app\x1b[31m');
    });
    p.on('restart', (r) => heard.push(r.attempt));
    await p.start();
    await expect(p.call('trap')).rejects.toMatchObject({ code: 'ERR_GUEST_TRAP' });
    expect(text(await p.call('upper', 'still here'))).toBe('STILL HERE');
    expect(heard).toEqual([1]);
    expect(p.state).toBe('running');
    const [message] = await warned(1);
    // Named, and escaped: the listener's message may quote guest text.
    expect(message).toBe("a listener for 'restart' on partition plugin threw: bug in the app\\x1b[31m");
  });

  it('a throwing console listener: the partition runs to its own exit and the other listeners hear every line', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'hello', module: guest('hello'), devices: { console: true }, args: ['x'] });
    const lines: string[] = [];
    p.on('console', () => {
      throw new Error('no');
    });
    p.on('console', (line) => lines.push(line));
    await p.start();
    const exit = await p.exited;
    expect(exit).toMatchObject({ state: 'exited', code: 0 });
    expect(lines.length).toBeGreaterThan(0);
    expect(await warned(lines.length)).toHaveLength(lines.length);
  });

  it("a throwing state listener on the hypervisor: `exit` is still emitted on the partition and the hypervisor", async () => {
    hv = hypervisor();
    hv.on('state', () => {
      throw new Error('state bug');
    });
    const hvExits: string[] = [];
    hv.on('exit', (p, exit) => hvExits.push(`${p.name}:${exit.code}`));
    const p = await hv.createPartition({ name: 'e', module: guest('exit'), args: ['7'] });
    const exits: number[] = [];
    p.once('exit', (exit) => exits.push(exit.code ?? -1));
    await p.start();
    await p.exited;
    // The exit event is emitted after `exited` resolves: let it come.
    await warned(2);
    expect(exits).toEqual([7]);
    expect(hvExits).toEqual(['e:7']);
    expect(p.listenerCount('exit')).toBe(1); // the hypervisor's own; the `once` listener removed itself
  });

  it('a rejecting async listener is reported, never an unhandled rejection', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'a', module: guest('exit'), args: ['0'] });
    p.on('exit', async () => {
      await Promise.resolve();
      throw new Error('async bug');
    });
    await p.start();
    await p.exited;
    expect(await warned(1)).toEqual(["a listener for 'exit' on partition a threw: async bug"]);
  });

  it('a throwing data listener on stdout: the guest writes all it has and exits', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'h', module: guest('hello'), devices: { console: true } });
    let chunks = 0;
    p.stdout.on('data', () => {
      chunks++;
      throw new Error('data bug');
    });
    await p.start();
    expect(await p.exited).toMatchObject({ state: 'exited', code: 0 });
    expect(chunks).toBeGreaterThan(0);
    expect((await warned(1))[0]).toBe("a listener for 'data' on a partition's stdout stream threw: data bug");
  });
});

describe('warnings about a throwing listener are bounded', () => {
  it(`at most ${MAX_LISTENER_WARNINGS} per emitter and event, the last saying so; another event is counted apart`, async () => {
    class Box extends GuardedEmitter<{ line: [text: string]; other: [] }> {}
    const box = new Box();
    box.on('line', () => {
      throw new Error('bad');
    });
    box.on('other', () => {
      throw new Error('worse');
    });
    for (let i = 0; i < 3 * MAX_LISTENER_WARNINGS; i++) box.emit('line', `line ${i}`);
    box.emit('other');
    await warned(MAX_LISTENER_WARNINGS + 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(warnings).toHaveLength(MAX_LISTENER_WARNINGS + 1);
    expect(warnings.filter((w) => w.startsWith("a listener for 'line' on Box threw: bad"))).toHaveLength(MAX_LISTENER_WARNINGS);
    expect(warnings.filter((w) => w.endsWith("further failures of 'line' listeners on Box are not)"))).toHaveLength(1);
    expect(warnings).toContain("a listener for 'other' on Box threw: worse");
  });
});
