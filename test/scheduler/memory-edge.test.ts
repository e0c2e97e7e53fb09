/**
 * V8 reserves address space for every WebAssembly.Memory (10 GiB on 64-bit Linux: 8 GiB plus
 * guard regions) and refuses new ones once the process's address space is spent: about 13,000
 * per 64-bit process (measured: 13,074 instances, then the RangeError below). A partition whose
 * instantiation meets that edge must end with a typed ERR_LIMIT_MEMORY (issue #15, item 3),
 * never take down the host or its neighbours; `node bench/density.mjs --edge` reaches the real
 * edge with real partitions (minutes). Here the edge is brought near: a child process lowers
 * its own address-space limit (RLIMIT_AS, with util-linux's `prlimit`) to what it uses plus
 * room for three more memories, so V8 meets the very same refusal (an mmap of the reservation
 * failing) at the fourth partition, in seconds.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { classify } from '../../host/worker/outcome.ts';
import { guest } from '../helpers.ts';

const hasPrlimit = process.platform === 'linux' && spawnSync('prlimit', ['--version']).status === 0;

describe('the WebAssembly.Memory edge of a process', () => {
  it('maps V8’s refusal to ERR_LIMIT_MEMORY', () => {
    const refusal = new RangeError('WebAssembly.Instance(): Out of memory: Cannot allocate Wasm memory for new instance');
    expect(classify(refusal)).toMatchObject({ kind: 'error', error: 'ERR_LIMIT_MEMORY' });
  });

  it.skipIf(!hasPrlimit)('a partition past the edge ends with ERR_LIMIT_MEMORY; the host and the partitions before it go on (dedicated and shared)', () => {
    const index = fileURLToPath(new URL('../../dist/index.js', import.meta.url));
    const script = `
      import { execFileSync } from 'node:child_process';
      import { readFileSync } from 'node:fs';
      const { Hypervisor } = await import(${JSON.stringify(index)});
      const GiB = 2 ** 30;
      const reserved = () => Number(/VmSize:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      const placement = process.argv[1];
      const hv = new Hypervisor({ placement, memoryBudgetBytes: 2 ** 50, warmWorkers: 0 });
      const start = async (i) => {
        const p = await hv.createPartition({ name: 'p' + i, module: ${JSON.stringify(guest('transform'))}, kind: 'reactor', restart: 'never', limits: { memoryPages: 2 } });
        await p.start();
        return p;
      };
      const live = [await start(0)];
      await live[0].call('echo', 'x');
      // Room for three more memories (10 GiB each), and 5 GiB for everything else.
      execFileSync('prlimit', ['--pid', String(process.pid), '--as=' + (reserved() + 35 * GiB)]);
      let refused = null;
      for (let i = 1; i < 8 && refused === null; i++) {
        const p = await start(i);
        if (p.state === 'running') live.push(p);
        else refused = await p.exited;
      }
      console.log('live', live.length);
      console.log('refused', refused?.reason, refused?.error?.message);
      for (const p of live) console.log(p.name, new TextDecoder().decode(await p.call('upper', 'ok')));
      await hv.close();
      console.log('closed');`;
    for (const placement of ['dedicated', 'shared']) {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, placement], { encoding: 'utf8', timeout: 90_000 });
      expect(r.stderr, placement).toBe('');
      const lines = r.stdout.trim().split('\n');
      const live = Number(lines[0]!.split(' ')[1]);
      // The partitions that fit (about three: other allocations take some of the room too).
      expect(live, placement).toBeGreaterThanOrEqual(2);
      expect(lines[1], placement).toMatch(/^refused ERR_LIMIT_MEMORY .*(Cannot allocate Wasm memory|Out of memory)/);
      // Every partition before the edge still answers; the hypervisor closes; the process ends well.
      expect(lines.slice(2), placement).toEqual([...Array.from({ length: live }, (_, i) => `p${i} OK`), 'closed']);
      expect(r.status, placement).toBe(0);
    }
  }, 200_000);
});
