/**
 * Waiting on a baseline (non-guest) worker of the benches: the next event a worker is to emit,
 * settled by its death too. A bare `worker.once('message', resolve)` is settled only by the
 * message: a worker that threw or exited first left the bench awaiting for ever (Node exited 13,
 * "unsettled top-level await", with no message).
 */

/**
 * The next `event` of `worker` ('message' by default, or 'online'), its value. Rejects at once,
 * naming the worker, when it emits 'error' or 'exit' first, or when one of `peers` (workers it
 * depends on, with their names) emits 'error' or exits with a code other than 0 (a peer that did
 * its part may end by itself). Every listener it adds is removed when it settles, so waits in a
 * loop add nothing, and a later `terminate()` is nobody's rejection.
 *
 * @param {import('node:worker_threads').Worker} worker
 * @param {string} name  e.g. 'the MessageChannel echo worker'
 * @param {{ event?: string, peers?: Array<[import('node:worker_threads').Worker, string]> }} [options]
 * @returns {Promise<unknown>}
 */
export function workerEvent(worker, name, { event = 'message', peers = [] } = {}) {
  return new Promise((resolve, reject) => {
    const listeners = [];
    const listen = (w, ev, fn) => {
      w.on(ev, fn);
      listeners.push([w, ev, fn]);
    };
    const settle = (fn, value) => {
      for (const [w, ev, f] of listeners) w.off(ev, f);
      fn(value);
    };
    listen(worker, event, (value) => settle(resolve, value));
    for (const [w, n] of [[worker, name], ...peers]) {
      const awaited = w === worker ? `its '${event}'` : `${name}'s '${event}'`;
      listen(w, 'error', (error) => settle(reject, new Error(`bench: ${n} failed before ${awaited}: ${error instanceof Error ? error.message : String(error)}`, { cause: error })));
      listen(w, 'exit', (code) => {
        // A peer that did its part may end by itself (code 0): only its failure fails the wait.
        if (w === worker || code !== 0) settle(reject, new Error(`bench: ${n} exited with code ${code} before ${awaited}`));
      });
    }
  });
}
