import type { GuestMemory } from '../abi/guest-memory.ts';
import { threadBlocker, type Blocker } from '../channel/blocker.ts';
import type { ResolvedWasi } from './config.ts';
import { ALL_RIGHTS, DIR_RIGHTS, FILE_RIGHTS, Filetype, Rights, WRITE_RIGHTS, WASI_MODULE } from './errno.ts';
import { BytesInFd, ConsoleInFd, ConsoleOutFd, DirFd, Fd, type ConsolePort } from './fd.ts';
import { QuotaAccount, type Dir, type Mount } from './fs.ts';
import { HostDir, type HostContext } from './hostfs.ts';
import { Vfs, seedMount } from './vfs.ts';
import { createWasiImports, type WasiContext } from './wasi.ts';

const STDIN_RIGHTS = Rights.FD_READ | Rights.FD_FDSTAT_SET_FLAGS | Rights.POLL_FD_READWRITE | Rights.FD_FILESTAT_GET;
const STDOUT_RIGHTS = Rights.FD_WRITE | Rights.FD_FDSTAT_SET_FLAGS | Rights.POLL_FD_READWRITE | Rights.FD_FILESTAT_GET | Rights.FD_SYNC | Rights.FD_DATASYNC;

/** What the worker hands over: its memory, devices (null when not granted) and exit path. */
export interface WasiWiring {
  memory: GuestMemory;
  console: ConsolePort | null;
  clock: WasiContext['clock'];
  /** The clock device runs in deterministic mode (host timestamps are then hidden). */
  deterministicClock?: boolean;
  entropy: WasiContext['entropy'];
  exit(code: number): never;
  checkEnding(): void;
  onCall(name: string): void;
  onFault(name: string): void;
  /** How poll_oneoff waits (a dedicated worker blocks, a shared one suspends the guest). Default: block the thread. */
  blocker?: Blocker;
  /** The hypercall rate limit (see WasiContext.admit). */
  admit(bytes: number): boolean;
}

/** A partition's WASI instance: the import object, and what to close when the run ends. */
export interface WasiInstance {
  readonly module: string;
  readonly imports: Record<string, (...args: never[]) => number | void>;
  readonly vfs: Vfs;
  readonly quota: QuotaAccount;
  /** Closes every fd (host fds included) and scrubs the in-memory trees. Idempotent. */
  close(): void;
}

/**
 * Opens stdio (console, or fixed bytes / EOF for stdin) and the preopens (fd 3, 4, ... in spec
 * order: in-memory trees built from their seeds, host folders from the root's fds) and returns
 * the import table. A read-only preopen has every write right stripped from it and from what
 * may be opened through it.
 */
export function createWasi(config: ResolvedWasi, wiring: WasiWiring): WasiInstance {
  const quota = new QuotaAccount(config.quotas);
  const vfs = new Vfs(quota, () => (wiring.clock === null ? 0n : (wiring.clock.read(1) ?? 0n)));
  const fds: (Fd | undefined)[] = [];
  const c = wiring.console;
  if (config.stdin.kind === 'bytes') fds.push(new BytesInFd(config.stdin.bytes, STDIN_RIGHTS));
  else if (config.stdin.kind === 'console' && c !== null) fds.push(new ConsoleInFd(c, STDIN_RIGHTS));
  else fds.push(new BytesInFd(new Uint8Array(0), STDIN_RIGHTS));
  // Without a console device, stdout/stderr exist and refuse writes with EBADF (docs/ABI.md): they
  // keep the write rights, so the rights check passes and the default-deny Fd answers. Two
  // objects: flags set on one (fd_fdstat_set_flags) are not the other's.
  const noConsole = (): Fd => new Fd(Filetype.UNKNOWN, STDOUT_RIGHTS, 0);
  fds.push(c !== null ? new ConsoleOutFd(c, 'stdout', STDOUT_RIGHTS) : noConsole(), c !== null ? new ConsoleOutFd(c, 'stderr', STDOUT_RIGHTS) : noConsole());
  const host: HostContext = { quota, stamp: timeStamper(wiring.clock, wiring.deterministicClock === true) };
  for (const p of config.preopens) {
    let dir: Dir;
    let readonly: boolean;
    if (p.kind === 'virtual') {
      const root = vfs.mount(p.guestPath, p.readonly);
      if (root === null) throw new RangeError(`the entry quota is too small for preopen ${p.guestPath}`);
      const errno = seedMount(root, p.entries);
      if (errno !== 0) throw new RangeError(`seeding preopen ${p.guestPath} failed with errno ${errno}`);
      dir = root;
      readonly = p.readonly;
    } else {
      readonly = p.mode === 'ro';
      const mount: Mount = { guestPath: p.guestPath, mode: p.mode, readonly };
      dir = new HostDir(host, mount, p.fd, true, true);
    }
    const strip = readonly ? ~WRITE_RIGHTS & ALL_RIGHTS : ALL_RIGHTS;
    fds.push(new DirFd(dir, DIR_RIGHTS & strip, (DIR_RIGHTS | FILE_RIGHTS) & strip, p.guestPath));
  }
  const ctx: WasiContext = {
    memory: wiring.memory,
    maxPathBytes: config.quotas.maxPathBytes,
    args: config.args,
    env: config.env,
    fds,
    maxFds: config.quotas.maxFds,
    clock: wiring.clock,
    entropy: wiring.entropy,
    exit: wiring.exit,
    checkEnding: wiring.checkEnding,
    onCall: wiring.onCall,
    onFault: wiring.onFault,
    blocker: wiring.blocker ?? threadBlocker,
    admit: wiring.admit,
  };
  let closed = false;
  return {
    module: WASI_MODULE,
    imports: createWasiImports(ctx),
    vfs,
    quota,
    close() {
      if (closed) return;
      closed = true;
      try {
        for (let i = 0; i < fds.length; i++) {
          const fd = fds[i];
          fds[i] = undefined;
          fd?.close();
        }
      } finally {
        vfs.scrub();
      }
    },
  };
}

/**
 * Host timestamps as the partition may see them: rounded down to the clock device's resolution,
 * and 0 without a clock or with a deterministic one (a file's mtime must not be a finer, or a
 * non-reproducible, clock).
 */
function timeStamper(clock: WasiWiring['clock'], deterministic: boolean): (ns: bigint) => bigint {
  if (clock === null || deterministic) return () => 0n;
  const step = BigInt(Math.max(1, clock.resolutionNs));
  return (ns) => ns - (ns % step);
}
