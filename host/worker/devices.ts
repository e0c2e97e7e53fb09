import type { SharedRing } from '../channel/ring.ts';
import type { WorkerInit } from '../channel/protocol.ts';
import { BlockDevice } from '../devices/block.ts';
import { ClockDevice } from '../devices/clock.ts';
import { ConsoleDevice, type OutputSink } from '../devices/console.ts';
import type { Device } from '../devices/device.ts';
import { EntropyDevice } from '../devices/entropy.ts';
import { NetDevice } from '../devices/net.ts';
import { AttestationDevice } from '../devices/attestation.ts';
import { BlockImage } from '../storage/image.ts';
import type { Blocker } from '../channel/blocker.ts';

/** A partition's device front-ends, as its spec granted them (and nothing else). */
export interface DeviceSet {
  /** Every granted device, in DEVICE_LIST order. */
  all: Device[];
  console: ConsoleDevice | null;
  clock: ClockDevice | null;
  entropy: EntropyDevice | null;
}

/**
 * Builds the front-ends of the devices a partition was granted, on its channels and counters.
 * `blocker` is how their blocking operations wait (see blocker.ts): the same devices run in a
 * dedicated worker (they block the thread) and in a shared one (they suspend the guest).
 */
export function wireDevices(
  init: WorkerInit,
  rings: { events: SharedRing; input: SharedRing },
  stats: Float64Array,
  blocker: Blocker,
  sink: OutputSink | null,
): DeviceSet {
  const all: Device[] = [];
  const sleep = (ms: number): void => blocker.sleep(performance.now() + ms);
  const console = init.devices.console
    ? new ConsoleDevice(init.devices.console, rings.events, rings.input, stats, undefined, sleep, new Int32Array(init.stdio), { blocker, ...(sink ? { sink } : {}) })
    : null;
  const clock = init.devices.clock ? new ClockDevice(init.devices.clock) : null;
  const entropy = init.devices.entropy ? new EntropyDevice(init.devices.entropy, stats) : null;
  if (console) all.push(console);
  if (clock) all.push(clock);
  if (entropy) all.push(entropy);
  if (init.devices.block && init.block) {
    const image = new BlockImage(init.block);
    init.block.dataKey.fill(0); // BlockImage keeps its own copy, dropped when the device closes
    all.push(new BlockDevice(init.devices.block, image, stats, { sleep }));
  }
  if (init.devices.net && init.net) all.push(new NetDevice(init.net, { blocker }));
  if (init.devices.attestation && init.attestation) all.push(new AttestationDevice(init.attestation));
  return { all, console, clock, entropy };
}
