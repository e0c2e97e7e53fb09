/**
 * bench/lib/worker.mjs workerEvent: how the benches wait on their baseline (non-guest) workers
 * (bench/core.mjs's echo round trip, bench/net.mjs's ping baseline, bench/lib/net.mjs's
 * MessageChannel throughput). A worker that throws or exits before it answers fails the wait at
 * once, naming it; before, a bare `once('message')` left the bench awaiting for ever (Node exit
 * 13, no message). Real workers, no mocks.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { workerEvent } from '../../bench/lib/worker.mjs';

const ECHO = "const { parentPort } = require('node:worker_threads'); parentPort.on('message', (m) => parentPort.postMessage(m));";
const eval_ = (source: string) => new Worker(source, { eval: true });
const counts = (w: Worker) => ['message', 'online', 'error', 'exit'].map((e) => w.listenerCount(e));

describe('bench: waiting on a baseline worker', () => {
  it('resolves with the answer and leaves no listener behind, wait after wait', async () => {
    const w = eval_(ECHO);
    try {
      const before = counts(w);
      await workerEvent(w, 'the echo', { event: 'online' });
      for (let i = 0; i < 100; i++) {
        const reply = workerEvent(w, 'the echo');
        w.postMessage(i);
        expect(await reply).toBe(i);
      }
      expect(counts(w)).toEqual(before);
    } finally {
      await w.terminate();
    }
  });

  it('rejects at once, naming the worker, when it throws before answering', async () => {
    const w = eval_("require('node:worker_threads').parentPort.once('message', () => { throw new Error('boom'); });");
    const t0 = performance.now();
    const reply = workerEvent(w, 'the thrower');
    w.postMessage(1);
    await expect(reply).rejects.toThrow("bench: the thrower failed before its 'message': boom");
    expect(performance.now() - t0).toBeLessThan(5_000);
    await w.terminate();
  });

  it('rejects, naming the worker and its code, when it exits before answering (cleanly too)', async () => {
    for (const code of [0, 3]) {
      const w = eval_(`require('node:worker_threads').parentPort.once('message', () => process.exit(${code}));`);
      const reply = workerEvent(w, 'the quitter');
      w.postMessage(1);
      await expect(reply).rejects.toThrow(`bench: the quitter exited with code ${code} before its 'message'`);
    }
  });

  it("a peer's failure fails the wait; a peer that did its part and ended (code 0) does not", async () => {
    const quiet = eval_("require('node:worker_threads').parentPort.once('message', () => {});");
    const failing = eval_("setTimeout(() => { throw new Error('peer down'); }, 10);");
    try {
      await expect(workerEvent(quiet, 'the receiver', { peers: [[failing, 'the sender']] })).rejects.toThrow("bench: the sender failed before the receiver's 'message': peer down");
      const done = eval_(''); // ends by itself, code 0
      const echo = eval_(ECHO);
      try {
        const reply = workerEvent(echo, 'the echo', { peers: [[done, 'the finished peer']] });
        await new Promise((resolve) => done.once('exit', resolve));
        echo.postMessage('still here');
        expect(await reply).toBe('still here');
      } finally {
        await echo.terminate();
      }
    } finally {
      await Promise.all([quiet.terminate(), failing.terminate()]);
    }
  });
});
