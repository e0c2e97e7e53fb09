/**
 * The guest SDK's assembly/abi.ts repeats the numbers of host/abi/codes.ts (the source of truth).
 * This test parses abi.ts as text and checks every constant, both ways, with the naming rule
 * HvCall.X -> HV_CALL_X, HvStatus.X -> HV_STATUS_X, HvDevice.X -> HV_DEVICE_X, HvClock.X ->
 * HV_CLOCK_X (any other exported table HvFooBar.X -> HV_FOO_BAR_X), plain constants same name.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as codes from '../../host/abi/codes.ts';
import { HvCall, HvStatus, HvDevice, HvClock, HV_ABI_VERSION, HV_MAX_TRANSFER } from '../../host/abi/codes.ts';

const abiText = readFileSync(new URL('../../assembly/abi.ts', import.meta.url), 'utf8');

/** `export const NAME: type = literal;` lines of abi.ts, as name -> value. */
function parseAbiConstants(text: string): Map<string, number | string> {
  const constants = new Map<string, number | string>();
  const declarations = text.match(/^export const .*$/gm) ?? [];
  for (const line of declarations) {
    const m = /^export const (\w+)\s*:\s*(\w+)\s*=\s*(.+?);\s*(\/\/.*)?$/.exec(line);
    if (!m) throw new Error(`assembly/abi.ts: cannot parse declaration: ${line}`);
    const [, name, type, raw] = m as unknown as [string, string, string, string];
    let value: number | string;
    if (/^-?(0x[0-9a-f]+|\d+)$/i.test(raw)) {
      value = Number(raw);
      expect(['i32', 'u32'], `${name} should be i32 or u32`).toContain(type);
    } else if (/^"[^"\\]*"$/.test(raw)) {
      value = raw.slice(1, -1);
      expect(type, `${name} should be a string`).toBe('string');
    } else {
      throw new Error(`assembly/abi.ts: ${name} must have a plain literal value, got: ${raw}`);
    }
    if (constants.has(name)) throw new Error(`assembly/abi.ts: ${name} declared twice`);
    constants.set(name, value);
  }
  return constants;
}

/** HvFooBar -> HV_FOO_BAR */
function tablePrefix(exportName: string): string {
  return exportName.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** Every constant codes.ts exports, as the name abi.ts must use -> value. */
function expectedConstants(): Map<string, number | string> {
  const expected = new Map<string, number | string>();
  for (const [exportName, value] of Object.entries(codes)) {
    if (typeof value === 'number' || typeof value === 'string') {
      expected.set(exportName, value);
    } else if (value !== null && typeof value === 'object') {
      for (const [key, v] of Object.entries(value)) {
        if (typeof v !== 'number') throw new Error(`codes.ts: ${exportName}.${key} is not a number`);
        const name = `${tablePrefix(exportName)}_${key}`;
        if (expected.has(name)) throw new Error(`codes.ts: ${exportName}.${key} maps to ${name}, which is already taken`);
        expected.set(name, v);
      }
    }
    // functions (callName, statusName) are host-side helpers, not ABI values
  }
  return expected;
}

const actual = parseAbiConstants(abiText);
const expected = expectedConstants();

describe('assembly/abi.ts matches host/abi/codes.ts', () => {
  const tables = { HV_CALL: HvCall, HV_STATUS: HvStatus, HV_DEVICE: HvDevice, HV_CLOCK: HvClock };
  for (const [prefix, table] of Object.entries(tables)) {
    it(`has every ${prefix}_* value`, () => {
      for (const [key, value] of Object.entries(table)) {
        expect(actual.get(`${prefix}_${key}`), `${prefix}_${key}`).toBe(value);
      }
    });
  }

  it('has the version and transfer limit', () => {
    expect(actual.get('HV_ABI_VERSION')).toBe(HV_ABI_VERSION);
    expect(actual.get('HV_MAX_TRANSFER')).toBe(HV_MAX_TRANSFER);
  });

  it('has every constant codes.ts exports, with the same value', () => {
    const missing = [...expected.keys()].filter((name) => !actual.has(name));
    expect(missing, 'missing from assembly/abi.ts').toEqual([]);
    for (const [name, value] of expected) expect(actual.get(name), name).toBe(value);
  });

  it('has nothing that codes.ts does not define', () => {
    const extra = [...actual.keys()].filter((name) => !expected.has(name));
    expect(extra, 'in assembly/abi.ts but not in codes.ts').toEqual([]);
  });

  it('declares the hypercall import as hv.hypercall(i32 x5) -> i32', () => {
    const m = /@external\("(\w+)",\s*"(\w+)"\)\s*export declare function hypercall\(([^)]*)\)\s*:\s*(\w+)/.exec(abiText);
    expect(m, 'hypercall declaration').not.toBeNull();
    const [, module, name, params, result] = m as unknown as [string, string, string, string, string];
    expect([module, name]).toEqual([codes.HV_MODULE, codes.HV_HYPERCALL]);
    expect(params.split(',').map((p) => p.split(':')[1]?.trim())).toEqual(['i32', 'i32', 'i32', 'i32', 'i32']);
    expect(result).toBe('i32');
  });
});
