/**
 * Watches the files host code opens through fs.promises (for vi.mock('node:fs/promises')): a test
 * then checks that every one was closed. A handle left open is closed only when the garbage
 * collector finds it, so counting the process's descriptors would not tell.
 */
import type * as fsp from 'node:fs/promises';

/** Files opened through the wrapped open and not closed yet. */
export const openHandles = new Set<unknown>();

/** fs.promises.open that records each handle in openHandles until it is closed. */
export function trackedOpen(real: typeof fsp): typeof fsp.open {
  return (async (...args: Parameters<typeof fsp.open>) => {
    const handle = await real.open(...args);
    openHandles.add(handle);
    const close = handle.close.bind(handle);
    handle.close = () => {
      openHandles.delete(handle);
      return close();
    };
    return handle;
  }) as typeof fsp.open;
}
