/**
 * Schemas of a partition's limits: memory, tables, time, fuel, CPU share, rate limits, the
 * reactor's call limits, and the restart policy. Ranges are stated here once; the resolvers
 * (hypervisor.ts, limits/rate-limiter.ts) only fill in defaults and apply cross-field rules.
 */
import { CloneType, Type, type Static } from '@sinclair/typebox';
import { CLOSED, Timeout } from './kinds.ts';

const RATE_MODE = Type.Union([Type.Literal('reject'), Type.Literal('block')], {
  description: "Over the limit: 'reject' (the call returns HV_STATUS_RATE_LIMITED at once, having done nothing) or 'block' (the partition's worker waits for the refill).",
});

/**
 * A rate limit: a token bucket for bytes and one for operations (Firecracker's shape).
 * `minBurstBytes` is the largest single request of the device it limits, so a bucket can
 * always admit one eventually: the schema refuses a smaller `burstBytes`.
 */
export function rateLimitSchema(minBurstBytes: number, modeDefault: 'reject' | 'block' = 'reject') {
  return Type.Object(
    {
      bytesPerSecond: Type.Optional(Type.Number({ minimum: 1, maximum: 2 ** 40, description: 'Sustained bytes per second. Default: unlimited.' })),
      burstBytes: Type.Optional(
        Type.Number({ minimum: minBurstBytes, maximum: 2 ** 40, description: "Bytes that may pass at once after an idle period (the bucket's size). Needs bytesPerSecond. Default: one second's worth." }),
      ),
      opsPerSecond: Type.Optional(Type.Number({ minimum: 0.001, maximum: 1e9, description: 'Sustained operations (calls) per second. Default: unlimited.' })),
      burstOps: Type.Optional(Type.Number({ minimum: 1, maximum: 1e9, description: "Operations that may pass at once after an idle period. Needs opsPerSecond. Default: one second's worth." })),
      oneTimeBurstBytes: Type.Optional(Type.Number({ minimum: 0, maximum: 2 ** 40, description: 'Extra bytes available once, at the start. Needs bytesPerSecond. Default 0.' })),
      oneTimeBurstOps: Type.Optional(Type.Number({ minimum: 0, maximum: 1e9, description: 'Extra operations available once, at the start. Needs opsPerSecond. Default 0.' })),
      mode: Type.Optional(CloneType(RATE_MODE, { description: `${RATE_MODE.description} Default '${modeDefault}'.` })),
    },
    { ...CLOSED, description: 'A rate limit; every field is optional and an absent rate is unlimited.' },
  );
}

export const RateLimitSchema = rateLimitSchema(1);
/** A rate limit as an embedder writes it. */
export type RateLimitSpec = Static<typeof RateLimitSchema>;
export type RateLimitMode = 'reject' | 'block';

export const CpuLimitSchema = Type.Object(
  {
    maxPercent: Type.Integer({ minimum: 1, maximum: 100, description: 'Percent of one core.' }),
    periodMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, description: 'Period over which the share is measured, ms. Default 100.' })),
  },
  {
    ...CLOSED,
    description:
      'CPU cap: the partition may run at most maxPercent of each period of one core; once its share is used it is paused until the next period, never killed. The module is then instrumented as for fuel.',
  },
);
/** `limits.cpu`: a share of one core. */
export type CpuLimit = Static<typeof CpuLimitSchema>;

/** Largest reactor call input or output accepted, bytes. */
export { MAX_CALL_BYTES } from '../limits/sizes.ts';
import { MAX_CALL_BYTES } from '../limits/sizes.ts';

export const PartitionLimitsSchema = Type.Object(
  {
    memoryPages: Type.Optional(Type.Integer({ minimum: 1, maximum: 65536, description: "Most 64 KiB pages of linear memory; a module's maximum is clamped to it. Default 256 (16 MiB)." })),
    tableElements: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000, description: 'Most table elements. Default 10000.' })),
    timeoutMs: Type.Optional(
      Timeout("Wall-clock budget, ms. Default 30000. A command's budget covers the whole run; a reactor's covers its start-up (start function and _initialize)."),
    ),
    fuel: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: Number.MAX_SAFE_INTEGER,
        description: 'Fuel budget: the work the guest may do, counted by instrumentation (docs/ABI.md). Running out ends the run with ERR_LIMIT_CPU, at the same point every time. Default: none.',
      }),
    ),
    cpu: Type.Optional(CpuLimitSchema),
    hypercallRate: Type.Optional(
      CloneType(RateLimitSchema, {
        description: "Rate limit of the partition's hypercalls as a whole (EXIT and ABORT always pass). Counted in metrics.throttled.hypercalls. Default: none.",
      }),
    ),
    maxInputBytes: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_CALL_BYTES, description: 'Reactors: largest call input, bytes. Default 1 MiB.' })),
    maxOutputBytes: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_CALL_BYTES, description: 'Reactors: largest call output, bytes. Default 1 MiB.' })),
    maxQueuedCalls: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'Reactors: calls that may wait behind the running one; more fail with ERR_BUSY. Default 64.' })),
    callTimeoutMs: Type.Optional(Timeout('Reactors: default wall-clock budget of one call, ms. Default 5000.')),
  },
  { ...CLOSED, description: 'Limits of one partition. Every limit has a safe default.' },
);
/** Limits of one partition. Every limit has a safe default. */
export type PartitionLimits = Static<typeof PartitionLimitsSchema>;

const RESTART_MODE = Type.Union([Type.Literal('never'), Type.Literal('on-failure')], {
  description: "'never': a failed reactor ends the partition; 'on-failure': a fresh instance replaces it.",
});

export const RestartPolicySchema = Type.Object(
  {
    mode: Type.Optional(CloneType(RESTART_MODE, { description: `${RESTART_MODE.description} Default 'on-failure'.` })),
    maxRestarts: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'Restarts in a row (without a successful call between them) before the partition ends. Default 5.' })),
    backoffMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000, description: 'Delay before the first restart, doubled for each further one in a row, ms. Default 10.' })),
    maxBackoffMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000, description: 'Largest delay, ms. Default 1000.' })),
  },
  { ...CLOSED, description: 'What a reactor does when a call (or its start-up) fails.' },
);
/** What a reactor does when a call (or its start-up) fails. */
export type RestartPolicy = Static<typeof RestartPolicySchema>;
export type RestartMode = 'never' | 'on-failure';

export const RestartSchema = Type.Union([RESTART_MODE.anyOf[0]!, RESTART_MODE.anyOf[1]!, RestartPolicySchema], {
  description: "Reactors: 'never' or 'on-failure' (default), or the full policy.",
});
