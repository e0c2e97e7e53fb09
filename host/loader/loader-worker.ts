/**
 * The loader's thread (see offthread.ts): runs the module pipeline's byte-heavy steps for the
 * root. Each message is answered by loader-jobs.ts; this entry only wires it to the parent port.
 */
import { parentPort } from 'node:worker_threads';
import { answerLoaderRequest } from './loader-jobs.ts';

const port = parentPort;
if (port !== null) {
  port.on('message', (message: unknown) => {
    void answerLoaderRequest(message).then(({ response, transfer }) => port.postMessage(response, transfer));
  });
}
