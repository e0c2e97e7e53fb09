/**
 * `--wasi-quota` as the command line parses it (host/cli/partition-options.ts): its size units,
 * one table that the parser, its error and `run --help` read, and the flag given more than once
 * (README, "Command line").
 * In-process: the parser and the help text, no guest.
 */
import { describe, expect, it } from 'vitest';
import { helpText, parse } from '../../host/cli/options.ts';
import { buildSpec, wasiQuotaOption } from '../../host/cli/partition-options.ts';
import { runCommand } from '../../host/cli/run.ts';
import { callCommand } from '../../host/cli/call.ts';

const quota = (raw: string) => wasiQuotaOption(raw, '--wasi-quota');

describe('--wasi-quota sizes', () => {
  it('K, M, G and T are powers of 1024, in any case, also written KiB or KB; a plain number or B is bytes', () => {
    expect(quota('bytes=1T')).toEqual({ maxBytes: 2 ** 40 });
    for (const t of ['1t', '1TiB', '1tb', '1TB']) expect(quota(`bytes=${t}`), t).toEqual({ maxBytes: 2 ** 40 });
    expect(quota('bytes=3G,inodes=1M,fds=64K,path=4096B')).toEqual({ maxBytes: 3 * 2 ** 30, maxInodes: 2 ** 20, maxFds: 2 ** 16, maxPathBytes: 4096 });
    expect(quota('bytes=0')).toEqual({ maxBytes: 0 });
  });

  it('past the largest byte quota (1T) is refused, naming the quota', () => {
    expect(() => quota('bytes=2T')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/^--wasi-quota bytes: expected .*, got "2199023255552"$/) }));
    expect(() => quota('bytes=1025G')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });

  it('a suffix that is no unit is refused, naming the item and the units, not taken as bytes', () => {
    for (const bad of ['64i', '64ib', '64Ki', '64P', '64 M', 'M', '64MM']) {
      expect(() => quota(`bytes=${bad}`), bad).toThrow(
        expect.objectContaining({
          code: 'ERR_INVALID_ARGUMENT',
          message: `--wasi-quota: expected <name>=<number>[K|M|G|T] for names bytes, inodes, fds, path (e.g. bytes=64M,inodes=10000), got "bytes=${bad}"`,
        }),
      );
    }
  });

  it('run --help and call --help list the units the parser takes', () => {
    for (const help of [helpText(runCommand), helpText(callCommand)].map((h) => h.replace(/\s+/g, ' '))) {
      expect(help).toContain('sizes take K, M, G, T (powers of 1024)');
    }
  });
});

/** The quotas `run` would give the guest for `argv` (a plain module, no manifest). */
function quotasOf(argv: string[]) {
  const { values } = parse(runCommand, [...argv, 'x.wasm']);
  return buildSpec(values, { manifest: null, file: 'x.wasm', shape: null }, 'run', []).wasi?.quotas;
}

describe('--wasi-quota given more than once', () => {
  it('adds its names, as --dir and --env add theirs: none is dropped', () => {
    expect(quotasOf(['--wasi-quota', 'bytes=1M', '--wasi-quota', 'fds=8'])).toEqual({ maxBytes: 2 ** 20, maxFds: 8 });
    expect(quotasOf(['--wasi-quota=bytes=1M,inodes=10', '--wasi-quota', 'fds=8', '--wasi-quota', 'path=64'])).toEqual({ maxBytes: 2 ** 20, maxInodes: 10, maxFds: 8, maxPathBytes: 64 });
  });

  it('a name given in two of them is refused, naming it, as within one', () => {
    for (const [argv, name, values] of [
      [['--wasi-quota', 'bytes=64M', '--wasi-quota', 'bytes=1M'], 'bytes', '67108864 and 1048576'],
      [['--wasi-quota', 'fds=8,inodes=10', '--wasi-quota', 'path=64', '--wasi-quota', 'FDS=8'], 'fds', '8 and 8'],
    ] as const) {
      expect(() => quotasOf([...argv]), argv.join(' ')).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: `--wasi-quota: ${name} is given in two --wasi-quota options (${values}); give each name at most once` }),
      );
    }
  });

  it('--help says it is repeatable', () => {
    const help = helpText(runCommand).replace(/\s+/g, ' ');
    expect(help).toContain('--wasi-quota <k=v,...> ...');
    expect(help).toContain('repeatable, each name at most once in all');
  });
});
