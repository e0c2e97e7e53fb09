/**
 * `--deterministic` is a mode, not a device setting (README, "Command line"): it fixes whichever
 * of the clock and entropy devices the partition is granted, and with neither it is taken and
 * changes nothing, unlike `--seed` or `--clock-resolution`, which name a value for one device and
 * are refused without it. In-process: the spec the flags build.
 */
import { describe, expect, it } from 'vitest';
import { parse } from '../../host/cli/options.ts';
import { buildSpec } from '../../host/cli/partition-options.ts';
import { callCommand } from '../../host/cli/call.ts';
import { runCommand } from '../../host/cli/run.ts';

const devicesOf = (argv: string[]) => buildSpec(parse(runCommand, [...argv, 'g.wasm']).values, { manifest: null, file: 'g.wasm', shape: null }, 'run', []).devices;

describe('--deterministic', () => {
  it('fixes the clock and the entropy seed of the devices granted, and grants neither', () => {
    expect(devicesOf(['--deterministic'])).toEqual({ console: true, clock: { deterministic: true }, entropy: { seed: 'wasmvisor' } });
    expect(devicesOf(['--devices', 'clock', '--deterministic'])).toEqual({ clock: { deterministic: true } });
    expect(devicesOf(['--devices', 'entropy', '--deterministic'])).toEqual({ entropy: { seed: 'wasmvisor' } });
    expect(devicesOf(['--devices', 'entropy', '--deterministic', '--seed', 's'])).toEqual({ entropy: { seed: 's' } });
  });

  it('with neither clock nor entropy granted it is taken and the spec is as without it', () => {
    for (const devices of ['none', 'console', 'console,net']) {
      expect(devicesOf(['--devices', devices, '--deterministic']), devices).toEqual(devicesOf(['--devices', devices]));
    }
    const { values } = parse(callCommand, ['--deterministic', 'g.wasm', 'f']);
    expect(buildSpec(values, { manifest: null, file: 'g.wasm', shape: null }, 'call', []).devices).toEqual({});
  });
});
