/**
 * The transform worker (dist/transform.js): runs the binaryen passes for host/loader/transform.ts
 * (fuel metering, then Asyncify for shared placement) off the root's thread. Each message is
 * answered by transform-jobs.ts; this entry only wires it to the parent port.
 */
import { parentPort } from 'node:worker_threads';
import { answerTransformRequest } from './transform-jobs.ts';

const port = parentPort;
if (port !== null) {
  port.on('message', (message: unknown) => {
    void answerTransformRequest(message).then(({ reply, transfer }) => port.postMessage(reply, transfer));
  });
}
