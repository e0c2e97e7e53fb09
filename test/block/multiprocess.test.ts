/**
 * Two processes, one data directory (issue #10 item 5): two Hypervisors in two processes create
 * disks at the same moment, some under the same names. Every create that succeeds leaves an image
 * that opens with its key; a name both want goes to one of them, and the other is refused with
 * ERR_INVALID_STATE naming the holder; no temporary or lock file is left once both are done.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Hypervisor } from '../../host/index.ts';
import { budget, guest } from '../helpers.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'wv-race-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Report {
  pid: number;
  outcomes: { name: string; ok: boolean; code?: string; message?: string }[];
}

function child(tag: string, own: number, shared: number): { proc: ChildProcessWithoutNullStreams; report: Promise<Report>; ready: Promise<void> } {
  const proc = spawn(process.execPath, [fileURLToPath(new URL('./race-child.mjs', import.meta.url)), dir, tag, String(own), String(shared)], { stdio: 'pipe' });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: proc.stdout });
  const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`child ${tag} exited (${code}) early: ${stderr}`))));
  exited.catch(() => undefined);
  const ready = Promise.race([new Promise<void>((resolve) => lines.once('line', () => resolve())), exited]);
  const report = ready.then(() => Promise.race([new Promise<Report>((resolve) => lines.once('line', (line) => resolve(JSON.parse(line) as Report))), exited]));
  return { proc, report, ready };
}

describe('two processes on one data directory', () => {
  it('racing creates: each disk has its key, each shared name has one owner, refusals name the holder', async () => {
    guest('counter');
    const a = child('a', 8, 4);
    const b = child('b', 8, 4);
    await Promise.all([a.ready, b.ready]);
    a.proc.stdin.write('go\n');
    b.proc.stdin.write('go\n');
    const [ra, rb] = await Promise.all([a.report, b.report]);
    for (const r of [ra, rb]) {
      for (const o of r.outcomes.filter((x) => !x.name.startsWith('shared'))) expect(o, `${o.name} in ${r.pid}`).toMatchObject({ ok: true });
    }
    for (let i = 0; i < 4; i++) {
      const name = `shared-${i}`;
      const both = [ra, rb].map((r) => ({ pid: r.pid, o: r.outcomes.find((x) => x.name === name)! }));
      const winners = both.filter((x) => x.o.ok);
      expect(winners.length, name).toBe(1);
      const loser = both.find((x) => !x.o.ok)!;
      expect(loser.o.code).toBe('ERR_INVALID_STATE');
      expect(loser.o.message).toContain(`process ${winners[0]!.pid} on host`);
    }
    a.proc.stdin.end();
    b.proc.stdin.end();
    await Promise.all([a.proc, b.proc].map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))));
    // Every disk opens with its key, from a third process's point of view (this one).
    const hv = new Hypervisor({ dataDir: dir });
    try {
      const names = [...Array.from({ length: 8 }, (_, i) => [`a-${i}`, `b-${i}`]).flat(), 'shared-0', 'shared-1', 'shared-2', 'shared-3'];
      for (const name of names) {
        const p = await hv.createPartition({ name, module: guest('counter'), devices: { block: { sizeMiB: 1 } } });
        await p.destroy();
      }
      const disks = await hv.listStorage();
      expect(disks).toHaveLength(20);
      expect(disks.every((d) => d.key === 'keystore' && d.problem === null && d.inUse === null)).toBe(true);
    } finally {
      await hv.close();
    }
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp') || f.endsWith('.lock'))).toEqual([]);
    expect(readdirSync(path.join(dir, 'images')).filter((f) => !f.endsWith('.img'))).toEqual([]);
  }, budget(60_000));
});
