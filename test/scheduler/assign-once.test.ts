/**
 * A dedicated worker serves one partition (issue #15: a worker that has run a guest is never
 * handed to another). The root never assigns twice; the worker refuses a second assignment even
 * if it were told to: two assignments posted back to back give one run, one 'done', and the
 * thread ends by itself. With reuse (the embedder's opt-in) the same worker serves both, one
 * after the other. The warm pool's first message to a worker (`warm`) is no assignment.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { Worker } from 'node:worker_threads';
import { spawnWorker, workerScript } from '../../host/paths.ts';
import { SpinBudget } from '../../host/channel/spin.ts';
import type { AssignMessage, WarmMessage, WorkerBoot, WorkerInit } from '../../host/channel/protocol.ts';
import { guest } from '../helpers.ts';
import { workerInit } from './worker-init.ts';

const module = new WebAssembly.Module(readFileSync(guest('exit')));

/** A command run of exit.wasm with args ['0'], on rings of its own. */
function init(name: string): WorkerInit {
  return workerInit(name, module, { args: ['0'] });
}

let worker: Worker | null = null;
afterEach(async () => {
  await worker?.terminate();
  worker = null;
});

/**
 * Posts `posted` at once; resolves with the messages the worker sent until it ended (or, with
 * reuse, sent `dones` 'done' messages).
 */
async function post(reuse: boolean, posted: (AssignMessage | WarmMessage)[], dones: number): Promise<{ messages: { type: string }[]; exitCode: number | null }> {
  const w = spawnWorker(workerScript, { workerData: { role: 'dedicated', reuse, warmUp: false, spin: SpinBudget.allocate(0) } satisfies WorkerBoot, stdout: false, stderr: false });
  worker = w;
  const messages: { type: string }[] = [];
  const ended = new Promise<{ messages: { type: string }[]; exitCode: number | null }>((resolve, reject) => {
    w.on('error', reject);
    w.on('message', (m: { type: string }) => {
      messages.push(m);
      if (reuse && messages.filter((x) => x.type === 'done').length === dones) resolve({ messages, exitCode: null });
    });
    w.once('exit', (code) => resolve({ messages, exitCode: code }));
  });
  for (const m of posted) w.postMessage(m);
  return ended;
}

/** Two assignments back to back. */
function assignTwice(reuse: boolean): Promise<{ messages: { type: string }[]; exitCode: number | null }> {
  return post(reuse, [{ type: 'assign', init: init('first') }, { type: 'assign', init: init('second') }], 2);
}

describe('a dedicated worker and its one partition', () => {
  it('refuses a second assignment: one run, one done, and the thread ends on its own (exit code 0)', async () => {
    const { messages, exitCode } = await assignTwice(false);
    expect(messages.map((m) => m.type)).toEqual(['running', 'done']);
    expect(exitCode).toBe(0);
  }, 30_000);

  it('with reuse, serves the second assignment after the first ended', async () => {
    const { messages } = await assignTwice(true);
    expect(messages.map((m) => m.type)).toEqual(['running', 'done', 'running', 'done']);
  }, 30_000);

  it("takes the warm pool's first message (warm) as nothing: no answer, and the assignment after it is its one run", async () => {
    const { messages, exitCode } = await post(false, [{ type: 'warm' }, { type: 'assign', init: init('first') }, { type: 'warm' }], 1);
    expect(messages.map((m) => m.type)).toEqual(['running', 'done']);
    expect(exitCode).toBe(0);
  }, 30_000);
});
