/**
 * The options `run` and `call` share (everything that shapes a partition), and how they become a
 * partition spec. Each value is checked against the spec's own schema when it is parsed, so the
 * command line accepts exactly what the library accepts, and says so naming the flag.
 * A flag given on the command line overrides the same setting from a manifest.
 */
import { stderr } from './stderr.ts';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.ts';
import type { Partition } from '../partition/partition.ts';
import { cliActor } from '../security/monitor.ts';
import { MAX_POLICY_BYTES, Policy } from '../security/policy.ts';
import {
  BlockSchema,
  ClockSchema,
  CpuLimitSchema,
  NetSchema,
  PartitionLimitsSchema,
  PartitionSpecSchema,
  PlacementSchema,
  IsolationSchema,
  RateLimitSchema,
  WasiQuotasSchema,
  type DevicesSpec,
  type HypervisorOptions,
  type PartitionSpec,
  type PreopenMode,
  type PreopenSpec,
  type WasiQuotas,
} from '../schema/index.ts';
import { readManifest, readManifestFields, type ManifestFields } from '../schema/manifest.ts';
import { moduleShape, type ModuleShape } from './module.ts';
import type { Placement } from '../limits/sizes.ts';
import { flag, list, needsName, nonEmpty, numberIn, seeHelp, stringIn, folder, filePath, value, type Values } from './options.ts';
import { quoted } from '../escape.ts';

export const DEVICE_NAMES = ['console', 'clock', 'entropy', 'net', 'attestation'] as const;
export type DeviceName = (typeof DEVICE_NAMES)[number];

/**
 * `--devices a,b` (or `none`), checked against the devices the CLI can grant. No device is
 * granted only by `none`: an empty list or name (`--devices ""`, `--devices "$UNSET"`,
 * `console,,clock`) is refused, as is `none` beside a device, rather than read as no devices.
 */
export function deviceList(raw: string, name: string): Set<DeviceName> {
  const grant = new Set<DeviceName>();
  if (raw.trim() === 'none') return grant;
  const known = `(known: ${DEVICE_NAMES.join(', ')}; or none)`;
  for (const d of raw.split(',').map((s) => s.trim())) {
    if (d === '') throw new InvalidArgumentError(`${name}: expected a comma-separated list of devices ${known}, got ${quoted(raw)}`);
    if (d === 'none') throw new InvalidArgumentError(`${name}: none grants no device and goes alone, got ${quoted(raw)}`);
    if (!(DEVICE_NAMES as readonly string[]).includes(d)) throw new InvalidArgumentError(`${name}: unknown device ${quoted(d)} ${known}`);
    grant.add(d as DeviceName);
  }
  return grant;
}

/**
 * `--dir <host>[::<guest>][:ro|:rw|:copy]`: Wasmtime's spelling plus a mode suffix (default ro).
 * A folder whose name itself ends in `:rw` is written with an explicit mode: `x:rw::x:rw:ro`.
 */
export function dirOption(raw: string, name: string): PreopenSpec {
  const mode = /:(ro|rw|copy)$/.exec(raw);
  const rest = mode ? raw.slice(0, mode.index) : raw;
  const at = rest.indexOf('::');
  const hostPath = at < 0 ? rest : rest.slice(0, at);
  const guestPath = at < 0 ? rest : rest.slice(at + 2);
  if (hostPath === '' || guestPath === '') throw new InvalidArgumentError(`${name}: expected <host-folder>[::<guest-path>][:ro|:rw|:copy], got ${quoted(raw)}`);
  return { hostPath, guestPath, mode: (mode?.[1] ?? 'ro') as PreopenMode };
}

const QUOTA_KEYS: Record<string, keyof WasiQuotas> = { bytes: 'maxBytes', inodes: 'maxInodes', fds: 'maxFds', path: 'maxPathBytes' };
/**
 * The units a size on the command line takes, powers of 1024 (`64M`, also written `64MiB` or
 * `64MB`; a plain number, or `4096B`, is bytes): the one table the parser, its error and the
 * help text read. T is there because `bytes`' largest value, 2^40, is `1T`.
 */
const SIZE_UNITS: Readonly<Record<string, number>> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
const UNIT_LETTERS = Object.keys(SIZE_UNITS).map((u) => u.toUpperCase());
/** `<number>[K|M|G|T][iB|B]` or `<number>B`, any case. */
const SIZE = new RegExp(`^(\\d+)(?:([${Object.keys(SIZE_UNITS).join('')}])(?:i?b)?|b)?$`, 'i');
/** The units as the help and the errors name them: `K, M, G, T`. */
const SIZE_UNITS_TEXT = `${UNIT_LETTERS.join(', ')} (powers of 1024)`;

/**
 * `--wasi-quota bytes=64M,inodes=10000,fds=256,path=4096` (sizes take SIZE_UNITS), each checked
 * against the spec's schema. A name given twice (in any case) is refused: which of two values was
 * meant is the user's to say, not the parser's.
 */
export function wasiQuotaOption(raw: string, name: string): WasiQuotas {
  const quotas: WasiQuotas = {};
  for (const item of raw.split(',')) {
    const m = /^(\w+)=(.*)$/.exec(item.trim());
    const key = m ? QUOTA_KEYS[m[1]!.toLowerCase()] : undefined;
    const size = m ? SIZE.exec(m[2]!) : null;
    if (!m || key === undefined || size === null) {
      throw new InvalidArgumentError(`${name}: expected <name>=<number>[${UNIT_LETTERS.join('|')}] for names ${Object.keys(QUOTA_KEYS).join(', ')} (e.g. bytes=64M,inodes=10000), got ${quoted(item)}${item !== raw ? ` in ${quoted(raw)}` : ''}`);
    }
    if (quotas[key] !== undefined) throw new InvalidArgumentError(`${name}: ${m[1]!.toLowerCase()} is given twice in ${quoted(raw)}; give each name at most once`);
    const unit = size[2] === undefined ? 1 : SIZE_UNITS[size[2].toLowerCase()]!;
    quotas[key] = numberIn(WasiQuotasSchema.properties[key])(String(Number(size[1]) * unit), `${name} ${m[1]}`);
  }
  return quotas;
}

/**
 * The quotas of every `--wasi-quota` given, as one: like `--dir` and `--env`, the flag may be
 * given again, and each occurrence adds its names. A name given in two of them is refused as it
 * is within one: which value was meant is the user's to say.
 */
function mergeWasiQuotas(occurrences: readonly WasiQuotas[]): WasiQuotas {
  const merged: WasiQuotas = {};
  for (const quotas of occurrences) {
    for (const [key, n] of Object.entries(quotas) as [keyof WasiQuotas, number][]) {
      if (merged[key] !== undefined) {
        const shown = Object.keys(QUOTA_KEYS).find((k) => QUOTA_KEYS[k] === key)!;
        throw new InvalidArgumentError(`--wasi-quota: ${shown} is given in two --wasi-quota options (${merged[key]} and ${n}); give each name at most once`);
      }
      merged[key] = n;
    }
  }
  return merged;
}

function envOption(raw: string, name: string): string {
  if (!/^[^=\0]+=[^\0]*$/.test(raw)) throw new InvalidArgumentError(`${name}: expected KEY=VALUE, got ${quoted(raw)}`);
  return raw;
}

const L = PartitionLimitsSchema.properties;

/** The shared table. `kind` says whose: `--timeout` is the whole run's budget for run, each call's for call. */
export function partitionOptions(kind: 'run' | 'call') {
  return {
    memory: value('<pages>', 'linear memory limit in 64 KiB pages', numberIn(L.memoryPages), { default: '256' }),
    timeout: value(
      '<ms>',
      kind === 'run' ? 'wall-clock budget of the run, ms; 0 for none (at most 2147483647, about 24.8 days)' : "the call's wall-clock budget, ms; 0 for none (at most 2147483647)",
      numberIn(L.timeoutMs),
      { default: kind === 'run' ? '30000' : '5000' },
    ),
    fuel: value('<n>', 'fuel budget: the guest ends with ERR_LIMIT_CPU once it has done n units of work (deterministic; docs/ABI.md)', numberIn(L.fuel), { default: 'none' }),
    'cpu-percent': value('<p>', 'CPU cap: at most p% (1..100) of one core per 100 ms period; over it the guest is paused, not killed', numberIn(CpuLimitSchema.properties.maxPercent), {
      default: 'none',
    }),
    devices: value('<list>', `devices to grant, comma-separated (${DEVICE_NAMES.join(', ')}) or none`, deviceList, {
      default: kind === 'run' ? 'console,clock,entropy' : 'none',
      grants: 'the listed virtual devices',
    }),
    'clock-resolution': value('<ms>', 'clock resolution', numberIn(ClockSchema.properties.resolutionMs), { default: '1' }),
    // A mode, not a device setting: taken with neither clock nor entropy granted (README says why).
    deterministic: flag('fixed clocks and a fixed entropy seed, for whichever of clock and entropy are granted (for teaching and tests)'),
    seed: value('<string>', 'seed the entropy device (a reproducible stream)', nonEmpty),
    segment: value('<name>', 'the virtual switch segment the net device plugs into (refused without net)', stringIn(NetSchema.properties.segment), { default: 'cli' }),
    sha256: value('<hex>', 'refuse the module unless its SHA-256 is this (ERR_INTEGRITY)', stringIn(PartitionSpecSchema.properties.sha256)),
    disk: value('<MiB>', 'grant a persistent, encrypted block device of this size (1..4096)', numberIn(BlockSchema.properties.sizeMiB), {
      grants: 'a persistent block device',
    }),
    name: value('<name>', "the partition's name: its disk is kept under this name", stringIn(PartitionSpecSchema.properties.name), {
      default: kind === 'run' ? 'guest' : 'plugin',
    }),
    'data-dir': value('<dir>', `where disks and their keystore, the audit log and the host key live; refused when the ${kind} keeps none of them there`, folder, { default: './.wasmvisor' }),
    wasi: flag('enable WASI preview1 (automatic when the module imports wasi_snapshot_preview1, or with --dir/--env/--wasi-quota)', { grants: 'the WASI preview1 surface' }),
    dir: list(
      '<host>[::<guest>][:ro|:rw|:copy]',
      'WASI: give the guest a host folder at <guest> (default: <host>). ro (the default) reads it in place, lazily, and nothing can change; rw reads and writes it in place, never anything outside it; copy gives a private in-memory copy (the folder is never written)',
      dirOption,
      { grants: 'a host folder (read-only unless :rw)' },
    ),
    'wasi-quota': list(
      '<k=v,...>',
      `WASI limits: bytes (contents, names and symlink targets the guest may hold in memory or add to rw folders; a copy counts), inodes (files, directories, symlinks and hard links), fds (open at once), path (longest path); sizes take ${SIZE_UNITS_TEXT} (e.g. bytes=512M,inodes=100000); repeatable, each name at most once in all`,
      wasiQuotaOption,
      { default: 'bytes=16M,inodes=4096,fds=128,path=4096' },
    ),
    env: list('<KEY=VALUE>', 'WASI: an environment variable', envOption, { grants: 'an environment variable' }),
    policy: value('<file>', `security policy (JSON, docs/SECURITY.md), a file or a pipe of at most ${MAX_POLICY_BYTES} bytes: the module must be signed by a trusted publisher or pinned (ERR_INTEGRITY) and the spec within its grants (ERR_POLICY_DENIED); turns on --audit`, filePath),
    signature: value('<file>', 'a detached signature for the module (checked against the policy\'s publisher keys)', filePath),
    audit: flag('record to the audit log in the data directory (<data-dir>/audit; keys in <data-dir>/keys)'),
    stats: flag("print the partition's metrics to stderr when it ends"),
    placement: value(
      '<where>',
      'dedicated (a worker thread of its own) or shared (a worker thread that time-slices partitions; README, "Placement")',
      (raw, name) => stringIn(PlacementSchema)(raw, name) as Placement,
      { default: 'dedicated' },
    ),
    isolate: value(
      '<walls>',
      'thread (a worker thread of this process) or process (an OS process of its own, sandboxed: Node\'s permission model, nobody when run as root, resource limits; README, "Process isolation")',
      (raw, name) => stringIn(IsolationSchema)(raw, name) as 'thread' | 'process',
      { default: 'thread' },
    ),
    'output-rate': value(
      '<bytes/s>',
      "cap the guest's console output: writes over it are refused (the guest sees EAGAIN / RATE_LIMITED) and counted, and a warning at the end says how many bytes (the bucket holds a second's worth, at least 64 KiB, the largest write, so up to 64 KiB pass at once); without it a guest writing faster than its reader waits and nothing is lost",
      numberIn(RateLimitSchema.properties.bytesPerSecond),
      { default: 'none' },
    ),
    json: flag(kind === 'run' ? 'end stderr with a JSON report: state, full exit code, error, metrics' : 'print a JSON document instead of the raw output: status, output, error, metrics'),
  };
}

export type PartitionValues = Values<ReturnType<typeof partitionOptions>>;

/** Where the module comes from: a .wasm file, or a manifest naming one (`M`: its spec, named or as written). */
export interface Source<M extends ManifestFields = PartitionSpec> {
  /** The spec from the manifest, or null for a plain module. */
  manifest: M | null;
  /** The module's path (a manifest's is resolved against the manifest). */
  file: string;
  shape: ModuleShape | null;
}

/**
 * `app.json` is a manifest; anything else is a module. `command` (run, call) takes `--name`: a
 * manifest that names no partition, with a file name that is none, is refused naming it.
 */
export async function readSource(positional: string, name: string | undefined, command: 'run' | 'call'): Promise<Source> {
  if (/\.json$/i.test(positional)) {
    // --name names the partition: the manifest's file name need not be a valid one then.
    const manifest = await readManifest(positional, name, (base) => needsName(command, base, command, positional));
    const file = typeof manifest.module === 'string' ? manifest.module : positional;
    return { manifest, file, shape: await moduleShape(file) };
  }
  return { manifest: null, file: positional, shape: await moduleShape(positional) };
}

/** readSource for what creates no partition (inspect): a manifest's name, or its lack, is not looked at. */
export async function readSourceUnnamed(positional: string): Promise<Source<ManifestFields>> {
  if (/\.json$/i.test(positional)) {
    const manifest = await readManifestFields(positional);
    const file = typeof manifest.module === 'string' ? manifest.module : positional;
    return { manifest, file, shape: await moduleShape(file) };
  }
  return { manifest: null, file: positional, shape: await moduleShape(positional) };
}

/** The Hypervisor options the flags ask for. One partition: no warm workers started ahead of it. A policy is audited: its refusals are on the record. */
export function hypervisorOptions(values: PartitionValues): HypervisorOptions {
  return {
    warmWorkers: 0,
    ...(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {}),
    // Read here, not by the library: a file named on the command line may be a pipe (files.ts).
    ...(values.policy !== undefined ? { policy: Policy.fromFile(values.policy, { pipes: true }) } : {}),
    ...(values.policy !== undefined || values.audit === true ? { audit: true, actor: cliActor() } : {}),
  };
}

/**
 * `--signature` is checked against the publisher keys of `--policy`: without one (run, call,
 * inspect) it is refused by its flag, as the library refuses a spec's signature without a policy
 * (inspect weighed nothing and admitted the module).
 */
export function signatureNeedsPolicy(values: { signature?: string | undefined; policy?: string | undefined }): void {
  if (values.signature !== undefined && values.policy === undefined) {
    throw new InvalidArgumentError("--signature goes with --policy <file>: a detached signature is checked against the policy's publisher keys");
  }
}

/**
 * The spec: the manifest's (or a default), with every given flag applied over it.
 * `guestArgs` replaces the manifest's args when there are any. What needs no manifest
 * (signatureNeedsPolicy) the caller checks before it reads the source.
 */
export function buildSpec(values: PartitionValues, source: Source, kind: 'run' | 'call', guestArgs: string[]): PartitionSpec {
  const base = source.manifest;
  const spec: PartitionSpec = base !== null ? { ...base } : { name: kind === 'run' ? 'guest' : 'plugin', module: source.file };
  if (values.name !== undefined) spec.name = values.name;
  if (values.sha256 !== undefined) spec.sha256 = values.sha256;
  if (values.placement !== undefined) spec.placement = values.placement;
  if (values.isolate !== undefined) spec.isolation = values.isolate;
  if (values.signature !== undefined) spec.signature = values.signature;
  if (guestArgs.length > 0 || base === null) spec.args = guestArgs;

  const limits = { ...(spec.limits ?? {}) };
  if (values.memory !== undefined) limits.memoryPages = values.memory;
  if (values.timeout !== undefined) limits[kind === 'run' ? 'timeoutMs' : 'callTimeoutMs'] = values.timeout;
  if (values.fuel !== undefined) limits.fuel = values.fuel;
  if (values['cpu-percent'] !== undefined) limits.cpu = { maxPercent: values['cpu-percent'] };
  spec.limits = limits;

  // Devices: the flags' grant replaces the manifest's when --devices is given (or there is no manifest).
  let devices: DevicesSpec = { ...(spec.devices ?? {}) };
  if (values.devices !== undefined || base === null) {
    const grant = values.devices ?? new Set<DeviceName>(kind === 'run' ? ['console', 'clock', 'entropy'] : []);
    devices = {};
    if (grant.has('console')) devices.console = true;
    if (grant.has('clock')) devices.clock = true;
    if (grant.has('entropy')) devices.entropy = true;
    if (grant.has('net')) devices.net = { segment: values.segment ?? 'cli' };
    if (grant.has('attestation')) devices.attestation = true;
  }
  // A flag that configures a device the partition is not granted is refused, not ignored: the
  // user asked for a behaviour (a segment, a resolution, a seed, a rate limit) the run would not
  // have, and silence would let them believe it had. --deterministic is not one of them: it asks
  // for a reproducible run, which a partition with no clock and no entropy already is.
  const granted = (device: 'console' | 'clock' | 'entropy' | 'net'): boolean => devices[device] !== undefined && devices[device] !== false;
  const by = values.devices !== undefined ? 'by --devices' : base !== null ? 'by the manifest' : kind === 'run' ? "among run's default devices (console, clock, entropy)" : 'to call by default (no devices)';
  for (const [flag, device] of [['segment', 'net'], ['clock-resolution', 'clock'], ['seed', 'entropy'], ['output-rate', 'console']] as const) {
    if (values[flag] !== undefined && !granted(device)) {
      throw new InvalidArgumentError(`--${flag} configures the ${device} device, which is not granted ${by}: add ${device} to --devices, or drop --${flag}`);
    }
  }
  const clock = devices.clock;
  if (clock !== undefined && clock !== false && (values['clock-resolution'] !== undefined || values.deterministic)) {
    devices.clock = {
      ...(clock === true ? {} : clock),
      ...(values['clock-resolution'] !== undefined ? { resolutionMs: values['clock-resolution'] } : {}),
      ...(values.deterministic ? { deterministic: true } : {}),
    };
  }
  const seed = values.seed ?? (values.deterministic ? 'wasmvisor' : undefined);
  if (devices.entropy !== undefined && devices.entropy !== false && seed !== undefined) devices.entropy = { seed };
  if (devices.net !== undefined && devices.net !== false && values.segment !== undefined) devices.net = { ...devices.net, segment: values.segment };
  if (values.disk !== undefined) devices.block = { ...(devices.block || {}), sizeMiB: values.disk };
  if (values['output-rate'] !== undefined && devices.console !== undefined && devices.console !== false) {
    // --output-rate: the console's byte rate limit in reject mode (refused writes are counted and reported).
    devices.console = { ...(devices.console === true ? {} : devices.console), rateLimit: { bytesPerSecond: values['output-rate'], mode: 'reject' } };
  }
  spec.devices = devices;

  const dirs = values.dir ?? [];
  const envs = values.env ?? [];
  const quotas = values['wasi-quota'];
  if (spec.wasi !== undefined || values.wasi || dirs.length > 0 || envs.length > 0 || quotas !== undefined || source.shape?.importsWasi === true) {
    const wasi = { ...(spec.wasi ?? {}) };
    // argv[0] is the module's file name, as a shell would give it.
    if (wasi.args === undefined || guestArgs.length > 0) wasi.args = [path.basename(source.file), ...(spec.args ?? [])];
    if (envs.length > 0) wasi.env = [...(Array.isArray(wasi.env) ? wasi.env : Object.entries(wasi.env ?? {}).map(([k, v]) => `${k}=${v}`)), ...envs];
    if (dirs.length > 0) wasi.preopens = [...(wasi.preopens ?? []), ...dirs];
    if (quotas !== undefined) wasi.quotas = { ...(wasi.quotas ?? {}), ...mergeWasiQuotas(quotas) };
    spec.wasi = wasi;
  }
  if (kind === 'call') {
    spec.kind = 'reactor';
    spec.restart ??= 'never';
  }
  return spec;
}

/**
 * `--data-dir` is where a run keeps what outlives it: disks (a block device), the audit log
 * (`--audit`, `--policy`) and the host key (`run --attest`, the attestation device). Given to a
 * run that keeps none of them it was silently ignored, and a user believed their state went
 * there; it is refused instead, as a flag that configures a device not granted is (buildSpec).
 */
export function checkDataDirUsed(values: PartitionValues, spec: PartitionSpec, command: 'run' | 'call', attest: boolean): void {
  if (values['data-dir'] === undefined) return;
  const granted = (device: unknown): boolean => device !== undefined && device !== false;
  if (granted(spec.devices?.block) || granted(spec.devices?.attestation) || values.audit === true || values.policy !== undefined || attest) return;
  throw new InvalidArgumentError(
    `--data-dir is where ${command} keeps disks, the audit log and the host key, and this ${command} keeps none of them (no --disk or block device, no --audit or --policy, no ${command === 'run' ? '--attest or ' : ''}attestation device): drop --data-dir, or add what should use it${seeHelp(command)}`,
  );
}

/** Prints a partition's violations on stderr (the host's own line, never the guest's text raw). */
export function reportViolations(partition: Partition): void {
  partition.on('violation', (v) => stderr.note(`violation: ${v.call} ${v.status}: ${v.reason}`));
}
