import type { SharedRing } from './ring.ts';

/**
 * A ring mirrored between two processes (host/channel/frames.ts): each side has a SharedRing of
 * the same capacity, so every component on either side (devices, the context, the root's run and
 * switch) reads and writes a ring exactly as it does with a worker thread.
 *
 * Invariant: the producer's copy keeps every record until the far consumer has taken it. The
 * receiver's copy therefore holds a subset of the producer's records, and a forwarded record
 * always fits it (same capacity); both copies agree on how full the channel is (a guest waiting
 * for room, ConsoleInput's buffer bound), and the channel's bound is the ring's, end to end: no
 * side buffers more than a ring's worth of records per channel, however slow the other side is.
 *
 * - The producer side's RingForwarder sends records past its cursor, and on an acknowledgement
 *   consumes (discards) that many bytes of records from its copy.
 * - The receiver side's RingReceiver puts forwarded records into its copy, and reports how many
 *   bytes its consumer took since the last report (to acknowledge).
 */

/** Bytes a record of `length` takes in a ring (SharedRing's header and padding). */
export function recordSize(length: number): number {
  return 4 + ((length + 3) & ~3);
}

export class RingForwarder {
  /** Position of the next record to forward. */
  private cursor: number;
  private closeSent = false;

  constructor(
    readonly ring: SharedRing,
    private readonly send: (kind: number, bytes: Uint8Array) => void,
    private readonly sendClose: () => void,
  ) {
    this.cursor = ring.tailPosition;
  }

  /** Bytes forwarded and not yet acknowledged. */
  get outstanding(): number {
    return (this.cursor - this.ring.tailPosition) >>> 0;
  }

  /** Forwards every record not yet sent; once the ring is closed and all is sent, the close. */
  pump(): void {
    for (let r = this.ring.recordAt(this.cursor); r !== null; r = this.ring.recordAt(this.cursor)) {
      this.send(r.kind, r.bytes);
      r.bytes.fill(0);
      this.cursor = r.next;
    }
    if (!this.closeSent && this.ring.closed && this.cursor === this.ring.headPosition) {
      this.closeSent = true;
      this.sendClose();
    }
  }

  /**
   * The far consumer took `bytes`: consumes them here. False (nothing consumed) when that is more
   * than was forwarded, or does not end on a record boundary: a protocol violation.
   */
  ack(bytes: number): boolean {
    if (bytes > this.outstanding) return false;
    return this.ring.discard(bytes);
  }
}

export class RingReceiver {
  /** Bytes put into the copy, and bytes of them its consumer took as of the last report. */
  private put = 0;
  private reported = 0;
  private closed = false;

  constructor(readonly ring: SharedRing) {}

  /** Puts a forwarded record into the copy. False when it does not fit or the copy is closed: the producer broke the invariant. */
  record(kind: number, bytes: Uint8Array): boolean {
    if (this.closed || bytes.length > this.ring.maxRecord || kind < 0 || kind > 255) return false;
    // The consumer closed the copy (e.g. the switch unplugged a NIC): the record is dropped, as a
    // write to a closed ring is; not the producer's fault.
    if (this.ring.closed) return true;
    if (!this.ring.tryWrite(kind, bytes)) return false;
    this.put += recordSize(bytes.length);
    return true;
  }

  /** The producer closed the ring. False when it was closed already. */
  close(): boolean {
    if (this.closed) return false;
    this.closed = true;
    this.ring.close();
    return true;
  }

  /** Bytes the consumer took since the last call (0: nothing to acknowledge). */
  consumed(): number {
    const taken = this.put - this.ring.used;
    const n = taken - this.reported;
    this.reported = taken;
    return n;
  }
}
