/**
 * `/metrics` in the Prometheus text exposition format (version 0.0.4): one `# HELP` and one
 * `# TYPE` line per family, then its samples. Label values are escaped as the format requires
 * (backslash, double quote, newline), so no partition name or state can break a line.
 */
import type { PartitionMetrics } from '../channel/stats.ts';

export interface HostSample {
  uptimeSeconds: number;
  memory: { budgetBytes: number; reservedBytes: number };
  partitions: { name: string; state: string; restarts: number; metrics: PartitionMetrics | null }[];
  api: { requests: number; denied: number; unauthenticated: number; rateLimited: number; openStreams: number };
}

export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

type Family = { name: string; help: string; type: 'gauge' | 'counter'; samples: [labels: Record<string, string>, value: number][] };

function render(families: Family[]): string {
  let out = '';
  for (const f of families) {
    out += `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}\n`;
    for (const [labels, value] of f.samples) {
      const l = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
      out += `${f.name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}\n`;
    }
  }
  return out;
}

const PARTITION_FAMILIES: [name: string, help: string, type: 'gauge' | 'counter', get: (m: PartitionMetrics) => number][] = [
  ['wasmvisor_partition_hypercalls_total', 'Hypercalls made by the partition.', 'counter', (m) => m.hypercalls],
  ['wasmvisor_partition_memory_bytes', 'Linear memory of the partition.', 'gauge', (m) => m.memoryBytes],
  ['wasmvisor_partition_memory_peak_bytes', 'Peak linear memory of the partition.', 'gauge', (m) => m.peakMemoryBytes],
  ['wasmvisor_partition_console_lines_out_total', 'Console lines the guest printed.', 'counter', (m) => m.console.linesOut],
  ['wasmvisor_partition_console_lines_dropped_total', 'Console lines dropped by the rate limit or the ring.', 'counter', (m) => m.console.linesDropped],
  ['wasmvisor_partition_violations_total', 'Denied or malformed hypercalls.', 'counter', (m) => m.violations],
  ['wasmvisor_partition_faults_total', 'Hypercalls refused for a bad address, length or argument.', 'counter', (m) => m.faults],
  ['wasmvisor_partition_cpu_seconds_total', 'Time the partition ran guest code.', 'counter', (m) => m.cpu.timeMs / 1000],
  ['wasmvisor_partition_cpu_paused_seconds_total', 'Time the CPU cap paused the partition.', 'counter', (m) => m.cpu.pausedMs / 1000],
  ['wasmvisor_partition_block_read_bytes_total', 'Bytes read from the partition\'s disk.', 'counter', (m) => m.block.readBytes],
  ['wasmvisor_partition_block_written_bytes_total', 'Bytes written to the partition\'s disk.', 'counter', (m) => m.block.writeBytes],
  ['wasmvisor_partition_net_tx_frames_total', 'Frames the partition sent.', 'counter', (m) => m.net?.txFrames ?? 0],
  ['wasmvisor_partition_net_rx_frames_total', 'Frames delivered to the partition.', 'counter', (m) => m.net?.rxFrames ?? 0],
];

export function renderPrometheus(s: HostSample): string {
  const families: Family[] = [
    { name: 'wasmvisor_up', help: 'The host is serving.', type: 'gauge', samples: [[{}, 1]] },
    { name: 'wasmvisor_uptime_seconds', help: 'Seconds since the host started.', type: 'gauge', samples: [[{}, s.uptimeSeconds]] },
    { name: 'wasmvisor_memory_budget_bytes', help: 'Memory the hypervisor may promise to partitions.', type: 'gauge', samples: [[{}, s.memory.budgetBytes]] },
    { name: 'wasmvisor_memory_reserved_bytes', help: 'Memory reserved by live partitions.', type: 'gauge', samples: [[{}, s.memory.reservedBytes]] },
    { name: 'wasmvisor_api_requests_total', help: 'API requests received.', type: 'counter', samples: [[{}, s.api.requests]] },
    { name: 'wasmvisor_api_denied_total', help: 'API requests denied by RBAC.', type: 'counter', samples: [[{}, s.api.denied]] },
    { name: 'wasmvisor_api_unauthenticated_total', help: 'API requests without a valid credential.', type: 'counter', samples: [[{}, s.api.unauthenticated]] },
    { name: 'wasmvisor_api_rate_limited_total', help: 'API requests refused by a rate limit.', type: 'counter', samples: [[{}, s.api.rateLimited]] },
    { name: 'wasmvisor_api_open_streams', help: 'Console streams open.', type: 'gauge', samples: [[{}, s.api.openStreams]] },
    {
      name: 'wasmvisor_partition_up',
      help: 'One per declared partition, labelled with its state; 1 while running.',
      type: 'gauge',
      samples: s.partitions.map((p) => [{ partition: p.name, state: p.state }, p.state === 'running' ? 1 : 0]),
    },
    { name: 'wasmvisor_partition_restarts_total', help: 'Runs started by the restart policy.', type: 'counter', samples: s.partitions.map((p) => [{ partition: p.name }, p.restarts]) },
  ];
  for (const [name, help, type, get] of PARTITION_FAMILIES) {
    families.push({ name, help, type, samples: s.partitions.filter((p) => p.metrics !== null).map((p) => [{ partition: p.name }, get(p.metrics!)]) });
  }
  return render(families);
}
