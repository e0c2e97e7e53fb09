/**
 * Tests of the fuzz harness itself: each invariant the hypercall and WASI targets check must
 * catch the fault it is there for. A fault is injected after every real call (the targets'
 * `inject`), and the run must fail naming it; without a fault the same input passes. A harness
 * that lost an invariant would pass every run while blind: these tests are what fail then.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HvCall } from '../../host/abi/codes.ts';
import { hypercall, inject as hvInject, type Input } from './targets/hypercall.ts';
import { inject as wasiInject, wasi } from './targets/wasi.ts';

const PAGE = 65536;
const ALL: Input = { grant: { console: true, clock: true, entropy: true, block: true, net: true, attestation: true }, consoleLine: 256, mtu: 1500, args: ['a', 'bc'], seed: 11, calls: 3000 };
const BYTE_COUNT = new Set<number>([HvCall.CLOCK_GET, HvCall.ENTROPY_GET, HvCall.DEVICE_LIST, HvCall.ARGS_GET, HvCall.BLOCK_INFO]);

describe('hypercall harness: every invariant catches its fault', () => {
  beforeAll(() => hypercall.setup!(), 60_000);
  afterAll(() => hypercall.teardown!());
  afterEach(() => {
    hvInject.fault = null;
  });

  it('passes without a fault, and counts the calls it made', async () => {
    expect(await hypercall.run(ALL)).toBe(ALL.calls);
  }, 60_000);

  const cases: [string, NonNullable<typeof hvInject.fault>, RegExp][] = [
    ['a write just outside the output window', (mem, st, ret) => {
      const from = st.outPtr >>> 0;
      if (ret >= 0 && from > 0 && from + (st.outCap >>> 0) <= PAGE) mem[from - 1]! ^= 0xff;
      return ret;
    }, /wrote outside its output window/],
    ['an undocumented status', (_mem, _st, ret) => (ret < 0 ? -9999 : ret), /undocumented status 9999/],
    ['a failed call that wrote guest memory', (mem, _st, ret) => {
      if (ret < 0) mem[100]! ^= 0x01;
      return ret;
    }, /failed with \d+ but wrote guest memory/],
    ["the other partition's canary in an output window", (mem, st, ret, canary) => {
      const from = st.outPtr >>> 0;
      // Inside what the call reports it wrote (a result of 16 bytes or more), so only the canary check can see it.
      if (ret >= 16 && ret <= st.outCap >>> 0 && from + 16 <= PAGE) mem.set(canary, from);
      return ret;
    }, /the other partition's canary appeared/],
    ['a window left dirty past the byte count', (mem, st, ret) => {
      const at = (st.outPtr >>> 0) + ret;
      if (BYTE_COUNT.has(st.code) && ret >= 0 && ret < st.outCap >>> 0 && at < PAGE) mem[at] = 0x55;
      return ret;
    }, /left byte \d+ of its window non-zero/],
  ];
  for (const [fault, fn, message] of cases) {
    it(`catches ${fault}`, async () => {
      hvInject.fault = fn;
      await expect(hypercall.run(ALL)).rejects.toThrow(message);
    }, 60_000);
  }
});

describe('wasi harness: every invariant catches its fault', () => {
  beforeAll(() => wasi.setup!(), 60_000);
  afterAll(() => wasi.teardown!());
  afterEach(() => {
    wasiInject.fault = null;
  });
  const input = { seed: 5, calls: 3000 };

  it('passes without a fault', async () => {
    expect(await wasi.run(input)).toBe(input.calls);
  }, 60_000);

  it('catches an undocumented errno', async () => {
    wasiInject.fault = (_mem, _c, ret) => (typeof ret === 'number' ? 999 : ret);
    await expect(wasi.run(input)).rejects.toThrow(/returned 999, not a documented errno/);
  }, 60_000);

  it("catches the other partition's file contents in this one's memory", async () => {
    wasiInject.fault = (mem, _c, ret, canary) => {
      mem.set(canary, 200);
      return ret;
    };
    await expect(wasi.run(input)).rejects.toThrow(/the other partition's file contents appeared/);
  }, 60_000);
});
