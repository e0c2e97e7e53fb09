/**
 * A lab run's end ends its waits. A run that is stopped (the dashboard's session closing, a
 * SIGTERM to `wasmvisor lab`) or times out goes on in the background until its next await; a
 * `waitForLine` or `sleep` still pending then must not keep a timer (up to WAIT_FOR_LINE_MS, a
 * minute) that holds the process: `close()` rejects each with ERR_KILLED and clears it, and a
 * wait asked for after the end is refused at once.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LabContext, WAIT_FOR_LINE_MS } from '../../host/labs/context.ts';

const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

function context(): LabContext {
  return new LabContext({ labId: 'test', mode: 'defence', runLabel: 'test', emit: () => {}, audit: () => {} });
}

describe('LabContext: the run\'s end ends its waits', () => {
  it('a line awaited from a partition that never prints: close() rejects it with ERR_KILLED and detaches the listener', async () => {
    const ctx = context();
    const hv = ctx.hypervisor();
    const p = await ctx.create(hv, { name: 'quiet', module: ctx.guest('hello') });
    const before = p.listenerCount('console');
    const waiting = ctx.waitForLine(p, () => true);
    expect(p.listenerCount('console')).toBe(before + 1);
    const outcome = waiting.then(
      () => 'resolved',
      (e: { code?: string }) => e.code,
    );
    await ctx.close();
    expect(await outcome).toBe('ERR_KILLED');
    expect(p.listenerCount('console')).toBe(before);
  });

  it('a sleep is cut short by close(), and waits asked for after the end are refused at once', async () => {
    const ctx = context();
    const hv = ctx.hypervisor();
    const p = await ctx.create(hv, { name: 'quiet', module: ctx.guest('hello') });
    const sleeping = ctx.sleep(WAIT_FOR_LINE_MS).then(
      () => 'resolved',
      (e: { code?: string }) => e.code,
    );
    await ctx.close();
    expect(await sleeping).toBe('ERR_KILLED');
    await expect(ctx.sleep(1)).rejects.toMatchObject({ code: 'ERR_KILLED' });
    const before = p.listenerCount('console');
    await expect(ctx.waitForLine(p, () => true)).rejects.toMatchObject({ code: 'ERR_KILLED' });
    expect(p.listenerCount('console')).toBe(before);
  });

  it('a wait nobody awaits any more (the step before it threw, or the run ended) ends without an unhandled rejection', async () => {
    const ctx = context();
    const hv = ctx.hypervisor();
    const p = await ctx.create(hv, { name: 'quiet', module: ctx.guest('hello') });
    // Started and then abandoned, as a lab does when the step between throws: vitest fails the
    // run on an unhandled rejection, as Node would end `wasmvisor lab`'s process.
    void ctx.waitForLine(p, () => true);
    void ctx.sleep(WAIT_FOR_LINE_MS);
    await ctx.close();
    await new Promise((r) => setTimeout(r, 50));
    void ctx.sleep(1);
    await new Promise((r) => setTimeout(r, 50));
  });

  it('a wait that sees its line resolves with it and detaches; a short sleep elapses', async () => {
    const ctx = context();
    try {
      const hv = ctx.hypervisor();
      const p = await ctx.create(hv, { name: 'hello', module: ctx.guest('hello'), devices: { console: true } });
      const before = p.listenerCount('console');
      const line = ctx.waitForLine(p, (l) => l.length > 0);
      await p.start();
      expect((await line).length).toBeGreaterThan(0);
      expect(p.listenerCount('console')).toBe(before);
      await expect(ctx.sleep(5)).resolves.toBeUndefined();
    } finally {
      await ctx.close();
    }
  });

  it('wasmvisor lab stopped in the middle of a run exits at once, not when the run\'s wait for a line would have timed out', async () => {
    const child = spawn(process.execPath, [cli, 'lab', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout!.on('data', (d) => {
          out += d;
          const m = /dashboard at (http:\/\/127\.0\.0\.1:\d+\/dashboard\/)#token=(\S+)/.exec(out);
          if (m) resolve(`${m[1]}\n${m[2]}`);
        });
        child.once('exit', (code) => reject(new Error(`wasmvisor lab exited (${code})`)));
      });
      const [base, token] = url.split('\n') as [string, string];
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      // The network lab's attacker runs for 1.5 s while the lab waits for its summary line:
      // stop the lab in that window (seen on the dashboard's event stream).
      const events = await fetch(`${base}api/events`, { headers });
      const reader = events.body!.getReader();
      const res = await fetch(`${base}api/labs/network/run`, { method: 'POST', headers, body: JSON.stringify({ mode: 'defence' }) });
      expect(res.status).toBe(202);
      const decoder = new TextDecoder();
      let seen = '';
      while (!seen.includes('"text":"The attacker')) {
        const chunk = await reader.read();
        if (chunk.done) throw new Error('the event stream ended before the attacker started');
        seen += decoder.decode(chunk.value, { stream: true });
      }
      await reader.cancel();
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      // Before, the run's pending wait held the process for WAIT_FOR_LINE_MS (60 s) after its
      // "shutting down"; a bound of a third of that tells the two apart under any load.
      const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running'), WAIT_FOR_LINE_MS / 3))]);
      expect(code, stderr).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);
});
