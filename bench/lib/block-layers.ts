/**
 * The layers of a guest's block I/O below the guest, in one thread: BLOCK_READ / BLOCK_WRITE /
 * BLOCK_FLUSH hypercalls through the real Dispatcher and GuestMemory into the real BlockDevice and
 * BlockImage on a real file (AES-256-GCM, every sector its own authenticated message), as a
 * partition's worker builds them. Shared by the block bench guard in `npm test`
 * (test/bench/block-guard.test.ts) and `bench/block.mjs --profile` (which bundles this file with
 * esbuild): in one thread the cost of each layer can be timed and profiled, where the partition's
 * worker (a wasm guest calling in) can only be timed as a whole.
 */
import { HV_BLOCK_HEADER_SIZE, HV_BLOCK_SECTOR_SIZE, HvCall } from '../../host/abi/codes.ts';
import { Dispatcher } from '../../host/abi/dispatcher.ts';
import { GuestMemory } from '../../host/abi/guest-memory.ts';
import { allocateStats } from '../../host/channel/stats.ts';
import { BlockDevice } from '../../host/devices/block.ts';
import { resolveDevices } from '../../host/devices/config.ts';
import { BlockImage, fdIo, type BlockIo } from '../../host/storage/image.ts';
import { Storage } from '../../host/storage/storage.ts';

export { Storage, fdIo };

export interface BlockLayers {
  /** A write of `count` sectors (at most HV_BLOCK_MAX_WRITE_SECTORS) from sector `sector`. */
  write(sector: number, count: number): void;
  /** A read of `count` sectors (at most HV_BLOCK_MAX_READ_SECTORS) from sector `sector`. */
  read(sector: number, count: number): void;
  flush(): void;
  close(): Promise<void>;
}

/**
 * A partition's boundary in-thread over a `mib` MiB disk named `name` of `storage`, rate limits
 * lifted. `io` replaces the image's file operations (the profile times them through it).
 */
export async function blockLayers(storage: Storage, name: string, mib: number, io?: (fd: number) => BlockIo): Promise<BlockLayers> {
  const S = HV_BLOCK_SECTOR_SIZE;
  const memory = new WebAssembly.Memory({ initial: 4, maximum: 4 });
  const gm = new GuestMemory();
  gm.bind(memory);
  const stats = new Float64Array(allocateStats());
  const resolved = resolveDevices({ block: { sizeMiB: mib, bytesPerSecond: 2 ** 40, opsPerSecond: 1e9 } });
  const attachment = await storage.attach(name, mib);
  const image = new BlockImage({
    fd: attachment.fd,
    ...(io === undefined ? {} : { io: io(attachment.fd) }),
    sectorCount: attachment.sectorCount,
    imageId: attachment.imageId,
    dataKey: attachment.dataKey,
  });
  const device = new BlockDevice(resolved.block!, image, stats);
  const d = new Dispatcher({ memory: gm, devices: [device], args: [], stats, onViolation: () => undefined });
  const dv = new DataView(memory.buffer);
  new Uint8Array(memory.buffer).fill(7, 0x10000 + HV_BLOCK_HEADER_SIZE, 0x20000);
  const header = (at: number, sector: number, count: number) => {
    dv.setUint32(at, sector, true);
    dv.setUint32(at + 4, 0, true);
    dv.setUint32(at + 8, count, true);
    dv.setUint32(at + 12, 0, true);
  };
  const ok = (r: number) => {
    if (r < 0) throw new Error(`block call failed: ${-r}`);
  };
  return {
    // The header at 0x10000, the data after it.
    write(sector, count) {
      header(0x10000, sector, count);
      ok(d.hypercall(HvCall.BLOCK_WRITE, 0x10000, HV_BLOCK_HEADER_SIZE + count * S, 0, 0));
    },
    read(sector, count) {
      header(0, sector, count);
      ok(d.hypercall(HvCall.BLOCK_READ, 0, HV_BLOCK_HEADER_SIZE, 0x20000, count * S));
    },
    flush() {
      ok(d.hypercall(HvCall.BLOCK_FLUSH, 0, 0, 0, 0));
    },
    async close() {
      device.close();
      await storage.detach(attachment);
    },
  };
}
