import { MessageSender } from '../channel/message.ts';
import { Suspend } from '../channel/blocker.ts';
import type { SharedRing } from '../channel/ring.ts';
import type { OutputSink } from '../devices/console.ts';

const EMPTY = new Uint8Array(0);

/**
 * A partition's outgoing messages on their way into its event ring, in order: call results
 * always, and in a shared worker its console output too (a shared worker never blocks on one
 * partition's ring; the scheduler flushes the outbox when the root frees room).
 *
 * Bounded: a console write that finds more than `limitBytes` queued waits (suspends) *before*
 * it takes a byte, so the outbox exceeds its bound by at most one write (a hypercall moves at
 * most 64 KiB; a WASI fd_write's bytes, already in the guest's memory, are copied once).
 */
export class Outbox {
  private readonly queue: { sender: MessageSender; bytes: number; owned: Uint8Array | null }[] = [];
  private queued = 0;
  /** The two parts of a message pushPair writes at once. */
  private readonly pair: Uint8Array[] = [EMPTY, EMPTY];

  constructor(
    readonly ring: SharedRing,
    private readonly limitBytes: number,
  ) {}

  /** Queues one message; `owned` (a buffer only this message uses) is zeroed once it is sent. */
  push(kind: number, parts: Uint8Array[], owned: Uint8Array | null): void {
    const bytes = parts.reduce((n, p) => n + p.length, 0);
    this.queue.push({ sender: new MessageSender(this.ring, kind, parts), bytes, owned });
    this.queued += bytes;
    this.flush();
  }

  /**
   * push() of a message of two parts. When nothing is queued and it fits the ring now, it goes
   * straight in as one record: no sender, no queue entry. Either way the caller may reuse
   * `first` at once (it is copied when the message must wait).
   */
  pushPair(kind: number, first: Uint8Array, second: Uint8Array, owned: Uint8Array | null): void {
    // One look at the ring (tryWriteParts says whether there is room now), not two: a record
    // that can never fit one record goes chunked through the queue.
    if (this.queue.length === 0 && first.length + second.length <= this.ring.maxRecord) {
      const parts = this.pair;
      parts[0] = first;
      parts[1] = second;
      const written = this.ring.tryWriteParts(kind, parts);
      parts[0] = parts[1] = EMPTY;
      if (written) {
        owned?.fill(0);
        return;
      }
    }
    this.push(kind, [first.slice(), second], owned);
  }

  /**
   * Queues a message that must never make its sender wait (a violation report): false, and
   * nothing queued, when the outbox is over its bound.
   */
  offer(kind: number, bytes: Uint8Array): boolean {
    if (this.queued + bytes.length > this.limitBytes) return false;
    this.push(kind, [bytes], null);
    return true;
  }

  /** Moves what fits into the ring. True when nothing is left. */
  flush(): boolean {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (!head.sender.pump()) return false;
      this.queue.shift();
      this.queued -= head.bytes;
      head.owned?.fill(0);
    }
    return true;
  }

  get empty(): boolean {
    return this.queue.length === 0;
  }

  /** Drops what is queued (the run ended and its ring is closed), zeroing it. */
  discard(): void {
    for (const m of this.queue.splice(0)) {
      m.sender.discard();
      m.owned?.fill(0);
    }
    this.queued = 0;
  }

  /** The console's output in a shared worker. */
  sink(): OutputSink {
    return {
      admit: (mayWait) => {
        const seq = this.ring.readSeq;
        if (this.flush() || this.queued <= this.limitBytes) return true;
        if (!mayWait) return false;
        throw new Suspend({ what: 'writable', ring: this.ring, seq, deadline: Infinity });
      },
      send: (kind, bytes, length) => {
        const copy = bytes.slice(0, length);
        this.push(kind, [copy], copy);
      },
      // Copied: the console reuses its record buffer.
      offer: (kind, bytes) => this.offer(kind, bytes.slice()),
    };
  }
}
