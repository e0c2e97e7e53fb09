/**
 * V8 reserves address space for every WebAssembly.Memory and refuses new ones past about 13,000
 * per 64-bit process (measured here: 13,074 instances, then a RangeError with the message below).
 * A partition whose instantiation meets that edge ends with a typed ERR_LIMIT_MEMORY (issue #15,
 * item 3); `node bench/density.mjs --edge` reaches it with real partitions.
 */
import { describe, expect, it } from 'vitest';
import { classify } from '../../host/worker/outcome.ts';

describe('the WebAssembly.Memory edge of a process', () => {
  it('maps V8’s refusal to ERR_LIMIT_MEMORY', () => {
    const refusal = new RangeError('WebAssembly.Instance(): Out of memory: Cannot allocate Wasm memory for new instance');
    expect(classify(refusal)).toMatchObject({ kind: 'error', error: 'ERR_LIMIT_MEMORY' });
  });
});
