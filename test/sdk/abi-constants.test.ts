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
import { CALL_DEVICE } from '../../host/abi/dispatcher.ts';
import { DEFAULT_MODULE_LIMITS } from '../../host/loader/bounds.ts';
import { ABI_DOC, callTable } from '../abi/abi-doc.ts';

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

/**
 * docs/ABI.md's tables say what codes.ts defines: each call's code, name, device and the version
 * it came in, each status and device id, both ways. A call's, status's or device's version is the
 * one its comment in codes.ts states ("Since X.Y", or a trailing "(X.Y)"); none means 1.0. The
 * docs mark every addition since 1.0 with "(X.Y)" and nothing of 1.0.
 */
describe('docs/ABI.md lists what host/abi/codes.ts defines', () => {
  const doc = ABI_DOC;
  const source = readFileSync(new URL('../../host/abi/codes.ts', import.meta.url), 'utf8');
  /** The version the doc comment right before `key:` in the table `table` of codes.ts states. */
  function since(table: string, key: string): string {
    const body = new RegExp(`export const ${table} = \\{([\\s\\S]*?)\\n\\} as const;`).exec(source)?.[1];
    expect(body, `codes.ts defines ${table}`).toBeDefined();
    const m = new RegExp(`(?:/\\*\\*((?:(?!\\*/)[\\s\\S])*)\\*/\\s*)?\\n\\s*${key}: `).exec(body!);
    expect(m, `${table}.${key} in codes.ts`).not.toBeNull();
    const comment = m![1] ?? '';
    return /Since (\d+\.\d+)/.exec(comment)?.[1] ?? /\((\d+\.\d+)\)\.?\s*$/.exec(comment.trim())?.[1] ?? '1.0';
  }
  const marked = (v: string | undefined) => v ?? '1.0';

  it('the call table: every call with its code, its device and the version it came in', () => {
    const rows = callTable(doc);
    expect(rows.map((r) => r.name).sort()).toEqual(Object.keys(HvCall).sort());
    for (const { hex, name, version, device } of rows) {
      const code = HvCall[name];
      expect(hex, `HV_CALL_${name}`).toBe(`0x${code.toString(16).padStart(4, '0')}`);
      expect(device, `HV_CALL_${name}'s device`).toBe(CALL_DEVICE.get(code) ?? '—');
      expect(marked(version), `HV_CALL_${name} is marked with the version it came in`).toBe(since('HvCall', name));
    }
  });

  it('the status table: every status with its value and version', () => {
    const rows = [...doc.matchAll(/^\| (\d+) \| `HV_STATUS_(\w+)` \| (?:\((\d+\.\d+)\) )?/gm)];
    expect(rows.map((r) => r[2]).sort()).toEqual(Object.keys(HvStatus).sort());
    for (const [, value, name, version] of rows) {
      expect(Number(value), `HV_STATUS_${name}`).toBe(HvStatus[name as keyof typeof HvStatus]);
      expect(marked(version), `HV_STATUS_${name} is marked with the version it came in`).toBe(since('HvStatus', name!));
    }
  });

  it('the module bounds table: every bound of DEFAULT_MODULE_LIMITS with its default', () => {
    const section = doc.slice(doc.indexOf('## Module bounds'), doc.indexOf('The module size cap'));
    const documented = new Map<string, number>();
    for (const m of section.matchAll(/^\| ((?:`\w+`(?:, )?)+)[^|]* \| ([\d,]+)( MiB)?(?: each)? \|/gm)) {
      const value = Number(m[2]!.replace(/,/g, '')) * (m[3] ? 1 << 20 : 1);
      for (const name of m[1]!.matchAll(/`(\w+)`/g)) documented.set(name[1]!, value);
    }
    expect(Object.fromEntries(documented)).toEqual({ ...DEFAULT_MODULE_LIMITS });
  });

  it('the device record table: every device with its id and version', () => {
    const section = doc.slice(doc.indexOf('### Device records'), doc.indexOf('### Console'));
    const rows = [...section.matchAll(/^\| ([a-z]+)(?: \((\d+\.\d+)\))? \| (\d+) \|/gm)];
    expect(rows.map((r) => r[1]!.toUpperCase()).sort()).toEqual(Object.keys(HvDevice).sort());
    for (const [, name, version, id] of rows) {
      const key = name!.toUpperCase() as keyof typeof HvDevice;
      expect(Number(id), `device ${name}`).toBe(HvDevice[key]);
      expect(marked(version), `device ${name} is marked with the version it came in`).toBe(since('HvDevice', key));
    }
  });
});
