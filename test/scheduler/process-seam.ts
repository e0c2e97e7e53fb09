/** What the partition-process suites share: the scheduler's test seam and a liveness probe. */
import type { Hypervisor } from '../../host/index.ts';

/**
 * The scheduler's test seam: this hypervisor's partition processes run `child` (a stand-in that
 * is started exactly as the real child is) instead of the real child's code.
 */
export function useProcessCode(hv: Hypervisor, child: URL): void {
  (hv as unknown as { sched: { options: { processCode?: URL } } }).sched.options.processCode = child;
}

/** Whether a process with this pid exists (signal 0 probes without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
