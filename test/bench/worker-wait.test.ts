/**
 * bench/lib/worker.mjs workerEvent: how the benches wait on their baseline (non-guest) workers
 * (bench/core.mjs's echo round trip and worker starts, bench/net.mjs's ping baseline,
 * bench/lib/net.mjs's MessageChannel throughput, the start of bench/lib/plugin.mjs's bare
 * workers, whose calls a worker's death also ends). A worker that throws or exits before it answers fails the wait at
 * once, naming it; before, a bare `once('message')` left the bench awaiting for ever (Node exit
 * 13, no message). Real workers, no mocks.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { bareWorkers, type BareWorker } from '../../bench/lib/plugin.mjs';
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

describe('bench: the bare workers (bench/lib/plugin.mjs bareWorkers)', () => {
  it('answer call after call, as before', async () => {
    const bare = await bareWorkers(2);
    try {
      for (let i = 0; i < 1000; i++) await bare.call(bare.workers[i % 2]!);
      expect(bare.workers.map((w) => w.dead)).toEqual([null, null]);
    } finally {
      await bare.close();
    }
  });

  it('a worker that died fails its next call at once, naming it; the others still answer', async () => {
    const bare = await bareWorkers(2);
    try {
      const [a, b] = bare.workers as [BareWorker, BareWorker];
      await bare.call(a);
      await a.worker.terminate();
      const t0 = performance.now();
      await expect(bare.call(a)).rejects.toThrow('bench: bare worker 0 exited with code 1 before its reply');
      expect(performance.now() - t0).toBeLessThan(5_000);
      await bare.call(b);
    } finally {
      await bare.close();
    }
  });

  it('a worker that dies while a call waits on it ends that call, naming it, not leaves it pending', async () => {
    // Terminated as the call is made: the worker stops before it replies, or replies first.
    let failed = 0;
    for (let i = 0; i < 10; i++) {
      const bare = await bareWorkers(1);
      try {
        const w = bare.workers[0]!;
        void w.worker.terminate();
        const outcome = await bare.call(w).then(
          () => 'answered',
          (error: Error) => error.message,
        );
        if (outcome !== 'answered') {
          expect(outcome).toBe('bench: bare worker 0 exited with code 1 before its reply');
          failed++;
        }
      } finally {
        await bare.close();
      }
    }
    expect(failed).toBeGreaterThan(0);
  });
});
