import type { GuestMemory } from '../abi/guest-memory.ts';
import { threadBlocker, type Blocker } from '../channel/blocker.ts';
import type { ResolvedWasi } from './config.ts';
import { ALL_RIGHTS, DIR_RIGHTS, FILE_RIGHTS, Rights, WRITE_RIGHTS, WASI_MODULE } from './errno.ts';
import { BytesInFd, ConsoleInFd, ConsoleOutFd, DirFd, Fd, type ConsolePort } from './fd.ts';
import { Vfs, seedMount } from './vfs.ts';
import { createWasiImports, type WasiContext } from './wasi.ts';

const STDIN_RIGHTS = Rights.FD_READ | Rights.FD_FDSTAT_SET_FLAGS | Rights.POLL_FD_READWRITE | Rights.FD_FILESTAT_GET;
const STDOUT_RIGHTS = Rights.FD_WRITE | Rights.FD_FDSTAT_SET_FLAGS | Rights.POLL_FD_READWRITE | Rights.FD_FILESTAT_GET | Rights.FD_SYNC | Rights.FD_DATASYNC;

/** What the worker hands over: its memory, devices (null when not granted) and exit path. */
export interface WasiWiring {
  memory: GuestMemory;
  console: ConsolePort | null;
  clock: WasiContext['clock'];
  entropy: WasiContext['entropy'];
  exit(code: number): never;
  checkEnding(): void;
  onCall(name: string): void;
  onFault(name: string): void;
  /** How poll_oneoff waits (a dedicated worker blocks, a shared one suspends the guest). Default: block the thread. */
  blocker?: Blocker;
}

/** A partition's WASI instance: the import object, and the fds to close when the run ends. */
export interface WasiInstance {
  readonly module: string;
  readonly imports: Record<string, (...args: never[]) => number | void>;
  readonly vfs: Vfs;
  close(): void;
}

/**
 * Builds the VFS from the seeds, opens stdio (console, or fixed bytes / EOF for stdin) and the
 * preopens (fd 3, 4, ... in spec order) and returns the import table. A preopen marked
 * read-only has every write right stripped from it and from what may be opened through it.
 */
export function createWasi(config: ResolvedWasi, wiring: WasiWiring): WasiInstance {
  const vfs = new Vfs(config.quotas, () => (wiring.clock === null ? 0n : (wiring.clock.read(1) ?? 0n)));
  const fds: (Fd | undefined)[] = [];
  const none = new Fd(0, 0, 0);
  const c = wiring.console;
  if (config.stdin.kind === 'bytes') fds.push(new BytesInFd(config.stdin.bytes, STDIN_RIGHTS));
  else if (config.stdin.kind === 'console' && c !== null) fds.push(new ConsoleInFd(c, STDIN_RIGHTS));
  else fds.push(new BytesInFd(new Uint8Array(0), STDIN_RIGHTS));
  // Without a console device, stdout/stderr exist but refuse writes (default-deny Fd: EBADF).
  fds.push(c !== null ? new ConsoleOutFd(c, 'stdout', STDOUT_RIGHTS) : none, c !== null ? new ConsoleOutFd(c, 'stderr', STDOUT_RIGHTS) : none);
  for (const p of config.preopens) {
    const mount = vfs.mount(p.guestPath, p.readonly);
    const errno = seedMount(vfs, mount, p.entries);
    if (errno !== 0) throw new RangeError(`seeding preopen ${p.guestPath} failed with errno ${errno}`);
    const strip = p.readonly ? ~WRITE_RIGHTS & ALL_RIGHTS : ALL_RIGHTS;
    fds.push(new DirFd(vfs, mount.root, mount, DIR_RIGHTS & strip, (DIR_RIGHTS | FILE_RIGHTS) & strip, p.guestPath));
  }
  const ctx: WasiContext = {
    memory: wiring.memory,
    vfs,
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
  };
  return {
    module: WASI_MODULE,
    imports: createWasiImports(ctx),
    vfs,
    close() {
      for (let i = 0; i < fds.length; i++) {
        fds[i]?.close();
        fds[i] = undefined;
      }
      vfs.scrub();
    },
  };
}
