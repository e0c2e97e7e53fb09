/**
 * ConsoleOutput.settleDrops, the root's last `dropped` event of a run: what the counters hold
 * beyond what the worker reported, per stream, so the events add up to metrics.console however
 * the run ended (test/partition/dropped.test.ts ends real partitions every way).
 */
import { describe, expect, it } from 'vitest';
import { EventKind, STDIO_SLOTS } from '../../host/channel/protocol.ts';
import { Stat, STAT_SLOTS } from '../../host/channel/stats.ts';
import { ConsoleOutput, DROP_RECORD_BYTES, type DropCounts } from '../../host/devices/console.ts';

function rig() {
  const events: [string, DropCounts][] = [];
  const out = new ConsoleOutput(new SharedArrayBuffer(STDIO_SLOTS * 4), 4096, {
    output() {},
    wantsLines: () => false,
    line() {},
    dropped: (stream, counts) => events.push([stream, counts]),
    resume() {},
  });
  /** A worker's drop report, as the ring carries it. */
  const report = (kind: number, bytes: number, lines: number, truncated: number) => {
    const rec = new Uint8Array(DROP_RECORD_BYTES);
    const view = new DataView(rec.buffer);
    rec[0] = kind;
    view.setFloat64(4, bytes, true);
    view.setFloat64(12, lines, true);
    view.setFloat64(20, truncated, true);
    out.deliver(EventKind.DROPPED, rec);
  };
  return { out, events, report, stats: new Float64Array(STAT_SLOTS) };
}

const counts = (bytes: number, lines: number, bytesTruncated: number): DropCounts => ({ bytes, lines, bytesTruncated });

describe('settleDrops', () => {
  it('reports nothing when the worker reported everything, or nothing was dropped', () => {
    const r = rig();
    r.out.settleDrops(r.stats);
    expect(r.events).toEqual([]);
    r.stats[Stat.CONSOLE_BYTES_DROPPED] = 300;
    r.stats[Stat.CONSOLE_STDERR_BYTES_DROPPED] = 100;
    r.report(EventKind.STDOUT, 200, 0, 0);
    r.report(EventKind.STDERR, 100, 0, 0);
    r.out.settleDrops(r.stats);
    expect(r.events).toHaveLength(2);
  });

  it('reports the rest of each stream once: stderr its part, stdout the total less it', () => {
    const r = rig();
    r.stats[Stat.CONSOLE_BYTES_DROPPED] = 1000;
    r.stats[Stat.CONSOLE_LINES_DROPPED] = 7;
    r.stats[Stat.CONSOLE_BYTES_TRUNCATED] = 50;
    r.stats[Stat.CONSOLE_STDERR_BYTES_DROPPED] = 400;
    r.stats[Stat.CONSOLE_STDERR_LINES_DROPPED] = 2;
    r.report(EventKind.STDOUT, 500, 3, 50);
    r.report(EventKind.STDERR, 100, 0, 0);
    r.out.settleDrops(r.stats);
    expect(r.events.slice(2)).toEqual([
      ['stdout', counts(100, 2, 0)],
      ['stderr', counts(300, 2, 0)],
    ]);
    // A second end (a restarted reactor's next run) reports only what came since.
    r.stats[Stat.CONSOLE_STDERR_LINES_DROPPED] = 3;
    r.stats[Stat.CONSOLE_LINES_DROPPED] = 8;
    r.out.settleDrops(r.stats);
    expect(r.events.slice(4)).toEqual([['stderr', counts(0, 1, 0)]]);
    r.out.settleDrops(r.stats);
    expect(r.events).toHaveLength(5);
    const sum = (k: keyof DropCounts) => r.events.reduce((n, [, c]) => n + c[k], 0);
    expect([sum('bytes'), sum('lines'), sum('bytesTruncated')]).toEqual([1000, 8, 50]);
  });

  it("raises a counter behind what was reported (a partition process's snapshot) to it, so the two still agree", () => {
    const r = rig();
    r.stats[Stat.CONSOLE_BYTES_DROPPED] = 100;
    r.stats[Stat.CONSOLE_STDERR_BYTES_DROPPED] = 0;
    r.report(EventKind.STDOUT, 100, 0, 0);
    r.report(EventKind.STDERR, 250, 0, 0);
    r.out.settleDrops(r.stats);
    expect(r.events).toHaveLength(2);
    expect(r.stats[Stat.CONSOLE_BYTES_DROPPED]).toBe(350);
    expect(r.stats[Stat.CONSOLE_STDERR_BYTES_DROPPED]).toBe(250);
    r.report(EventKind.STDOUT, 40, 0, 0);
    r.out.settleDrops(r.stats);
    expect(r.stats[Stat.CONSOLE_BYTES_DROPPED]).toBe(390);
    expect(r.events).toHaveLength(3);
  });
});
