/**
 * Measured boot (event log, registers, replay) and attestation (host reports, guest reports through
 * ABI 1.3), verified by the library functions a remote verifier would use.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor } from '../../host/hypervisor.ts';
import { HvCall, HvStatus } from '../../host/abi/codes.ts';
import { IntegrityError, InvalidArgumentError, WasmvisorError } from '../../host/errors.ts';
import { ATTESTATION_CHECKS, AttestationCheckError, GUEST_REPORT_BYTES, issueCertificate, verifyGuestReport, verifyReport, type AttestationCheck, type AttestationReport } from '../../host/security/attestation.ts';
import { eventDigest, EventLog, extendRegister, MAX_PENDING_EVENTS, replayEventLog, runtimeCodeMeasurements } from '../../host/security/measured-boot.ts';
import { generateKeyPair, parsePublicKey } from '../../host/security/keys.ts';
import { signModule } from '../../host/security/signature.ts';
import { AttestationDevice } from '../../host/devices/attestation.ts';
import { Dispatcher } from '../../host/abi/dispatcher.ts';
import { GuestMemory } from '../../host/abi/guest-memory.ts';
import { allocateStats } from '../../host/channel/stats.ts';
import { fromHex, toHex } from '../../host/security/wire.ts';
import { collect, guest, runToExit } from '../helpers.ts';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'wv-attest-'));
const hvs: Hypervisor[] = [];
function hypervisor(options: ConstructorParameters<typeof Hypervisor>[0] = {}): Hypervisor {
  const hv = new Hypervisor({ dataDir: tmp(), ...options });
  hvs.push(hv);
  return hv;
}
afterEach(async () => {
  await Promise.all(hvs.splice(0).map((h) => h.close()));
});

describe('measured boot', () => {
  it('pcr = SHA-256(pcr ‖ SHA-256(event)) from 32 zero bytes', () => {
    const log = new EventLog();
    log.extend('runtime', 'x', { a: 1 });
    log.extend('partitions', 'y', { b: 'c' });
    log.extend('runtime', 'z', { d: true });
    const zero = new Uint8Array(32);
    const r0 = extendRegister(extendRegister(zero, eventDigest('runtime', 'x', { a: 1 })), eventDigest('runtime', 'z', { d: true }));
    const r1 = extendRegister(zero, eventDigest('partitions', 'y', { b: 'c' }));
    expect(log.registers()).toEqual({ runtime: toHex(r0), partitions: toHex(r1) });
    expect(toHex(eventDigest('runtime', 'x', { a: 1 }))).toBe(createHash('sha256').update('{"data":{"a":1},"register":"runtime","type":"x"}').digest('hex'));
    // The extension, against a Hash object fed the two parts (the register computes it one-shot).
    const d = eventDigest('partitions', 'y', { b: 'c' });
    expect(toHex(extendRegister(zero, d))).toBe(createHash('sha256').update(zero).update(d).digest('hex'));
    expect(toHex(r1)).toBe(createHash('sha256').update(zero).update(d).digest('hex'));
    expect(replayEventLog(log.events())).toEqual(log.registers());
  });

  it('hashes after appending (next turn, or when read) and shows exactly what an eager log would, in order', async () => {
    const log = new EventLog();
    const zero = new Uint8Array(32);
    const pcr: Record<'runtime' | 'partitions', Uint8Array> = { runtime: zero, partitions: zero };
    const expectSame = (count: number): void => {
      const events = log.events();
      expect(events.length).toBe(count);
      expect(log.registers()).toEqual({ runtime: toHex(pcr.runtime), partitions: toHex(pcr.partitions) });
      expect(events.map((e) => e.seq)).toEqual([...Array(count).keys()]);
      expect(replayEventLog(events)).toEqual(log.registers());
      expect(log.dropped).toBe(0);
    };
    let n = 0;
    const append = (k: number): void => {
      for (let i = 0; i < k; i++, n++) {
        const register = n % 3 ? 'partitions' : 'runtime';
        const data = { i: n, s: `e${n}` };
        log.extend(register, 'e', data);
        // The caller's object is copied when appended: changing it afterwards changes nothing.
        data.s = 'changed';
        pcr[register] = extendRegister(pcr[register], eventDigest(register, 'e', { i: n, s: `e${n}` }));
      }
    };
    // Read at once, past the pending bound without a read, and after a turn of the event loop.
    append(3);
    expectSame(3);
    append(MAX_PENDING_EVENTS * 2 + 5);
    expectSame(n);
    append(7);
    await new Promise((resolve) => setImmediate(resolve));
    expectSame(n);
    // What has no canonical form is refused when appended, not later, and takes no place in the log.
    expect(() => log.extend('runtime', 'bad', { v: Number.NaN })).toThrow(InvalidArgumentError);
    expectSame(n);
  });

  it('a hypervisor measures its version, its code files, the policy, each partition and device', async () => {
    const hv = hypervisor();
    const p = await hv.createPartition({ name: 'm', module: guest('hello'), devices: { console: true, attestation: true } });
    const { registers, events } = hv.eventLog();
    expect(replayEventLog(events)).toEqual(registers);
    const types = events.map((e) => `${e.register}:${e.type}`);
    expect(types[0]).toBe('runtime:runtime.version');
    expect(types.filter((t) => t === 'runtime:runtime.code').length).toBe(runtimeCodeMeasurements().length);
    expect(runtimeCodeMeasurements().some((f) => f.path === 'dist/worker.js')).toBe(true);
    expect(types).toContain('runtime:policy.load');
    const create = events.find((e) => e.type === 'partition.create')!;
    expect(create.data).toMatchObject({ partition: 'm', measurement: p.measurement, admittedBy: 'no-policy' });
    expect(events.filter((e) => e.type === 'device.attach').map((e) => e.data['device'])).toEqual(['console', 'attestation']);
    // A different spec of the same module has another spec hash.
    const q = await hv.createPartition({ name: 'n', module: guest('hello'), devices: { console: true }, args: ['x'] });
    const hashes = hv.eventLog().events.filter((e) => e.type === 'partition.create').map((e) => e.data['specHash']);
    expect(new Set(hashes).size).toBe(2);
    await Promise.all([p.destroy(), q.destroy()]);
  });

  it('replay of an edited, reordered, truncated or renumbered log does not reproduce the registers', () => {
    const log = new EventLog();
    for (let i = 0; i < 6; i++) log.extend(i % 2 ? 'partitions' : 'runtime', 'e', { i });
    const good = log.events();
    const registers = log.registers();
    const edited = structuredClone(good);
    edited[2]!.data['i'] = 99;
    expect(() => replayEventLog(edited)).toThrow(/event 2 \(e\) does not match its digest/);
    const reordered = structuredClone(good);
    [reordered[1], reordered[3]] = [reordered[3]!, reordered[1]!];
    reordered.forEach((e, i) => (e.seq = i));
    expect(replayEventLog(reordered)).not.toEqual(registers);
    expect(replayEventLog(good.slice(0, 5))).not.toEqual(registers);
    const renumbered = structuredClone(good);
    renumbered.splice(1, 1);
    expect(() => replayEventLog(renumbered)).toThrow(/event 1 has sequence number 2/);
    expect(() => replayEventLog([{ seq: 0 }])).toThrow(/event log: \[0\].register: is required/);
    expect(() => replayEventLog('nope')).toThrow(WasmvisorError);
  });
});

describe('host reports', () => {
  async function report(nonce = 'a1b2c3') {
    const hv = hypervisor();
    const k = generateKeyPair();
    const p = await hv.createPartition({ name: 'r', module: signModule(new Uint8Array(readFileSync(guest('hello'))), k).module, devices: { console: true } });
    const r = await hv.attest({ nonce });
    return { hv, p, r, key: parsePublicKey(hv.attestationPublicKey(), 'host.pub') };
  }

  it('verifies with the host key alone: signature, nonce, log, partitions, expectations', async () => {
    const { r, key, p, hv } = await report();
    expect(verifyReport(r, key, { nonce: 'a1b2c3', measurements: [p.measurement] })).toEqual(r);
    expect(verifyReport(JSON.stringify(r), hv.attestationPublicKey(), { nonce: fromHex('a1b2c3')!, maxAgeMs: 60_000 })).toEqual(r);
    expect(r.partitions).toEqual([expect.objectContaining({ name: 'r', measurement: p.measurement, admittedBy: 'no-policy', state: 'created' })]);
    const keyFile = path.join(hv.dataDir, 'keys', 'host.key');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(hv.dataDir, 'keys', 'host.pub'))).toEqual(Buffer.from(hv.attestationPublicKey()));
  });

  it('names the check that fails: wrong nonce, other key, missing field, expectations, edited log', async () => {
    const { r, key, p } = await report();
    const check = (fn: () => unknown): string => {
      try {
        fn();
      } catch (error) {
        expect(error).toBeInstanceOf(AttestationCheckError);
        return (error as AttestationCheckError).check;
      }
      return 'passed';
    };
    expect(check(() => verifyReport(r, key, { nonce: 'a1b2c4' }))).toBe('nonce');
    expect(check(() => verifyReport(r, generateKeyPair().publicKey))).toBe('key');
    const { nonce: _n, ...missing } = r;
    expect(check(() => verifyReport(missing, key))).toBe('format');
    expect(() => verifyReport(missing, key)).toThrow(/report is malformed: nonce: is required/);
    expect(check(() => verifyReport('{"format":', key))).toBe('format');
    expect(check(() => verifyReport(r, key, { measurements: ['0'.repeat(64)] }))).toBe('expectations');
    expect(check(() => verifyReport(r, key, { maxAgeMs: 1, now: Date.parse(r.time) + 1000 }))).toBe('freshness');
    // An edited log re-signed by someone else fails the key or signature; one re-signed by the host
    // (impossible without its key) would still fail the replay: simulate with our own signer.
    const edited = structuredClone(r);
    edited.events[1]!.data['sha256'] = '0'.repeat(64);
    expect(check(() => verifyReport(edited, key))).toBe('signature');
    void p;
  });

  it('a misspelt or unknown expectation is ERR_INVALID_ARGUMENT naming it, never ignored (a nonse left a replay unchecked)', async () => {
    const { r, key } = await report();
    const bad = (fn: () => unknown, message: string): void => {
      expect(fn).toThrow(InvalidArgumentError);
      expect(fn).toThrow(message);
    };
    bad(() => verifyReport(r, key, { nonse: 'a1b2c4' } as never), 'verifyReport expectations: nonse: unknown key; did you mean nonce?');
    bad(() => verifyReport(r, key, { measurement: ['0'.repeat(64)] } as never), 'verifyReport expectations: measurement: unknown key; did you mean measurements?');
    bad(() => verifyReport(r, key, 'a1b2c3' as never), 'verifyReport expectations: expected an object, got the string "a1b2c3"');
    bad(() => verifyReport(r, key, null as never), 'verifyReport expectations: expected an object, got null');
    // Checked before the evidence: the same refusal for a report that would fail.
    bad(() => verifyReport('{', key, { bogus: 1 } as never), 'verifyReport expectations: bogus: unknown key');
    bad(() => verifyGuestReport(new Uint8Array(GUEST_REPORT_BYTES), key, { nonse: '00' } as never), 'verifyGuestReport expectations: nonse: unknown key; did you mean nonce?');
    bad(() => verifyGuestReport(new Uint8Array(GUEST_REPORT_BYTES), key, { measurements: [] } as never), 'verifyGuestReport expectations: measurements: unknown key; did you mean measurement?');
    // Every documented key is still taken.
    expect(verifyReport(r, key, { nonce: 'a1b2c3', measurements: [], maxAgeMs: 60_000, now: Date.parse(r.time) })).toEqual(r);
  });

  it('an expectation of the wrong kind is ERR_INVALID_ARGUMENT naming it, before the evidence (not a failed check, not a TypeError)', async () => {
    const { r, key, p } = await report();
    const guest = new Uint8Array(GUEST_REPORT_BYTES);
    const cases: [() => unknown, string][] = [
      [() => verifyReport(r, key, { nonce: 'zz' }), 'verifyReport expectations: nonce: expected hex of at most 64 bytes or a Uint8Array, got the string "zz"'],
      [() => verifyReport(r, key, { nonce: new Uint8Array(65) }), 'verifyReport expectations: nonce: expected hex of at most 64 bytes'],
      // One measurement given as a string was taken character by character.
      [() => verifyReport(r, key, { measurements: p.measurement as never }), 'verifyReport expectations: measurements: expected an array of SHA-256s in hex (64 digits each)'],
      [() => verifyReport(r, key, { measurements: [5] as never }), 'verifyReport expectations: measurements: expected an array of SHA-256s'],
      [() => verifyReport(r, key, { maxAgeMs: -1 }), 'verifyReport expectations: maxAgeMs: expected a finite number of ms, at least 0, got the number -1'],
      [() => verifyReport(r, key, { maxAgeMs: Number.NaN }), 'verifyReport expectations: maxAgeMs: expected a finite number of ms'],
      [() => verifyReport(r, key, { maxAgeMs: '1000' as never }), 'verifyReport expectations: maxAgeMs: expected a finite number of ms'],
      [() => verifyReport(r, key, { maxAgeMs: 1000, now: 'x' as never }), 'verifyReport expectations: now: expected a time in ms since the epoch'],
      [() => verifyGuestReport(guest, key, { nonce: 'abc' }), 'verifyGuestReport expectations: nonce: expected hex of at most 64 bytes'],
      [() => verifyGuestReport(guest, key, { measurement: 5 as never }), 'verifyGuestReport expectations: measurement: expected a SHA-256 in hex (64 digits), got the number 5'],
      [() => verifyGuestReport(guest, key, { specHash: 'ab' }), 'verifyGuestReport expectations: specHash: expected a SHA-256 in hex (64 digits)'],
      [() => verifyGuestReport(guest, key, { reportData: new Uint8Array(3) }), 'verifyGuestReport expectations: reportData: expected a Uint8Array of 64 bytes'],
      [() => verifyGuestReport(guest, key, { maxAgeMs: Infinity }), 'verifyGuestReport expectations: maxAgeMs: expected a finite number of ms'],
    ];
    for (const [fn, message] of cases) {
      expect(fn).toThrow(InvalidArgumentError);
      expect(fn).toThrow(message);
    }
    // Upper-case hex is still taken, as before.
    expect(verifyReport(r, key, { nonce: 'A1B2C3', measurements: [p.measurement.toUpperCase()], maxAgeMs: 0, now: Date.parse(r.time) })).toEqual(r);
  });

  it('a host key that is not a key is ERR_INVALID_ARGUMENT naming hostKey, and a guest report that is not bytes a format failure (never a TypeError)', async () => {
    const { r, hv } = await report();
    const raw = hv.attestationPublicKey();
    const guest = new Uint8Array(GUEST_REPORT_BYTES);
    for (const k of [null, undefined, 'abc', 5, {}, { raw: new Uint8Array(32) }]) {
      for (const [fn, what] of [[() => verifyReport(r, k as never), 'verifyReport'], [() => verifyGuestReport(guest, k as never), 'verifyGuestReport']] as const) {
        expect(fn).toThrow(InvalidArgumentError);
        expect(fn).toThrow(`${what}: hostKey: expected the host's public key`);
      }
    }
    expect(() => verifyReport(r, new Uint8Array(3))).toThrow(InvalidArgumentError);
    for (const bytes of [null, 'x', [1, 2]]) {
      expect(() => verifyGuestReport(bytes as never, raw)).toThrow(expect.objectContaining({ code: 'ERR_INTEGRITY', check: 'format' }));
    }
    // The raw bytes and a parsed key are both still taken.
    expect(verifyReport(r, raw)).toEqual(r);
    expect(verifyReport(r, parsePublicKey(raw, 'host.pub'))).toEqual(r);
  });

  it('fails on one changed character anywhere in the report', async () => {
    const { r, key } = await report();
    const text = JSON.stringify(r);
    let checked = 0;
    // Every position of the JSON text would take minutes (each costs a verification); take every
    // 29th plus every position in the last 300 characters (the partitions, host key and signature).
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      const inHot = /[0-9a-f]/.test(c) && (i % 29 === 0 || i > text.length - 300);
      if (!inHot) continue;
      const swapped = text.slice(0, i) + (c === '0' ? '1' : '0') + text.slice(i + 1);
      let verdict = 'VALID';
      try {
        verifyReport(swapped, key, { nonce: 'a1b2c3' });
      } catch (error) {
        expect(error).toBeInstanceOf(IntegrityError);
        verdict = 'refused';
      }
      expect(verdict, `position ${i}`).toBe('refused');
      checked++;
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('a log the host signed but that does not replay is caught by the log check', () => {
    // Signed by a host key over an inconsistent body: the signature check passes, the log does not.
    const hostKey = generateKeyPair();
    const log = new EventLog();
    log.extend('runtime', 'runtime.version', { version: 'x' });
    const registers = { ...log.registers(), runtime: '1'.repeat(64) };
    const signed = signReportFor(hostKey, { registers, events: log.events() });
    expect(() => verifyReport(signed, hostKey.publicKey)).toThrow(/attestation log check failed: replaying the event log gives register runtime/);
    const dropped = signReportFor(hostKey, { registers: log.registers(), events: log.events(), eventsDropped: 3 });
    expect(() => verifyReport(dropped, hostKey.publicKey)).toThrow(/dropped 3 events/);
    const ghost = signReportFor(hostKey, {
      registers: log.registers(),
      events: log.events(),
      partitions: [{ name: 'ghost', measurement: 'a'.repeat(64), specHash: 'b'.repeat(64), admittedBy: 'pin', signers: [], state: 'running' }],
    });
    expect(() => verifyReport(ghost, hostKey.publicKey)).toThrow(/attestation partitions check failed: partition "ghost"/);
  });
});

import { signReport } from '../../host/security/attestation.ts';
function signReportFor(key: ReturnType<typeof generateKeyPair>, body: Partial<AttestationReport>): AttestationReport {
  return signReport(key, { version: '0', time: new Date().toISOString(), nonce: '', registers: { runtime: '0'.repeat(64), partitions: '0'.repeat(64) }, events: [], eventsDropped: 0, partitions: [], ...body });
}

describe('guest reports (ABI 1.3, device 6)', () => {
  it('a guest granted attestation gets its measurement and a report that verifies with host.pub', async () => {
    const hv = hypervisor();
    const p = await hv.createPartition({ name: 'att', module: guest('attest'), args: ['00112233', 'my key hash'], devices: { console: true, attestation: true } });
    const out = collect(p);
    expect((await runToExit(p)).code).toBe(0);
    const info = fromHex(out.stdout.find((l) => l.startsWith('info '))!.slice(5))!;
    expect(toHex(info.subarray(0, 32))).toBe(p.measurement);
    const create = hv.eventLog().events.find((e) => e.type === 'partition.create' && e.data['partition'] === 'att')!;
    expect(toHex(info.subarray(32))).toBe(create.data['specHash']);
    const bytes = fromHex(out.stdout.find((l) => l.startsWith('report '))!.slice(7))!;
    expect(bytes.length).toBe(GUEST_REPORT_BYTES);
    const data = new Uint8Array(64);
    data.set(new TextEncoder().encode('my key hash'));
    const r = verifyGuestReport(bytes, hv.attestationPublicKey(), { nonce: '00112233', measurement: p.measurement, specHash: String(create.data['specHash']), reportData: data });
    expect(r).toMatchObject({ name: 'att', measurement: p.measurement, signerHash: null, runtimeRegister: hv.eventLog().registers.runtime });
    // One changed byte anywhere in the report: refused.
    for (let i = 0; i < bytes.length; i++) {
      const t = Uint8Array.from(bytes);
      t[i]! ^= 0x01;
      expect(() => verifyGuestReport(t, hv.attestationPublicKey()), `byte ${i}`).toThrow(AttestationCheckError);
    }
    expect(() => verifyGuestReport(bytes, hv.attestationPublicKey(), { nonce: '00112234' })).toThrow(/nonce check failed/);
    expect(() => verifyGuestReport(bytes, generateKeyPair().publicKey)).toThrow(/certificate check failed/);
    expect(() => verifyGuestReport(bytes.subarray(0, 511), hv.attestationPublicKey())).toThrow(/format check failed/);
    // Freshness, as for a host report: by the time the report says it was made (`--max-age`).
    expect(verifyGuestReport(bytes, hv.attestationPublicKey(), { maxAgeMs: 0, now: r.timeMs }).timeMs).toBe(r.timeMs);
    expect(() => verifyGuestReport(bytes, hv.attestationPublicKey(), { maxAgeMs: 1000, now: r.timeMs + 1001 })).toThrow(/^attestation freshness check failed: the report is 1001 ms old, more than 1000 ms$/);
    // Counted, and audited per second when auditing is on (see audit tests).
    expect((await p.exited).metrics.hypercallsByCall['ATTEST_REPORT']).toBe(1);
    await p.destroy();
  });

  it('without the grant the device is invisible to DEVICE_LIST', async () => {
    const hv = hypervisor();
    const p = await hv.createPartition({ name: 'noatt', module: guest('attest'), devices: { console: true } });
    const out = collect(p);
    const exit = await runToExit(p);
    expect(exit.code).toBe(3);
    expect(out.stdout).toEqual(['no attestation device']);
    await p.destroy();
  });

  it('hostile arguments at the boundary: lengths, windows, too-small output', () => {
    const host = generateKeyPair();
    const cert = issueCertificate(host, { name: 'u', measurement: 'a'.repeat(64), specHash: 'b'.repeat(64), signerHash: null, runtimeRegister: 'c'.repeat(64), issuedMs: 1 });
    const device = new AttestationDevice({ seed: cert.seed, certificate: cert.certificate }, () => 42);
    expect(cert.seed.every((b) => b === 0)).toBe(true); // the worker's copy of the seed is dropped
    const info = device.handlers.get(HvCall.ATTEST_INFO)!;
    const report = device.handlers.get(HvCall.ATTEST_REPORT)!;
    const out = new Uint8Array(1024);
    const input = new Uint8Array(256);
    expect(info(input, 0, out, 63)).toBe(-HvStatus.BUFFER_TOO_SMALL);
    expect(info(input, 0, out, 64)).toBe(64);
    expect(toHex(out.subarray(0, 64))).toBe('a'.repeat(64) + 'b'.repeat(64));
    for (const [inLen, outCap, want] of [
      [63, 512, -HvStatus.INVALID_ARGUMENT],
      [129, 512, -HvStatus.INVALID_ARGUMENT],
      [64, 511, -HvStatus.BUFFER_TOO_SMALL],
      [64, 512, 512],
      [128, 512, 512],
      [0xffffffff, 512, -HvStatus.INVALID_ARGUMENT],
    ] as const) {
      expect(report(input, inLen, out, outCap), `in ${inLen} out ${outCap}`).toBe(want);
    }
    input.fill(7, 64, 128);
    expect(report(input, 128, out, 512)).toBe(512);
    expect(toHex(verifyGuestReport(out.subarray(0, 512), host.publicKey).nonce)).toBe('07'.repeat(64));
  });

  it('through the dispatcher: ungranted calls are ACCESS_DENIED violations; bad windows touch nothing', () => {
    const host = generateKeyPair();
    const make = (granted: boolean) => {
      const memory = new WebAssembly.Memory({ initial: 1 });
      const gm = new GuestMemory();
      gm.bind(memory);
      const violations: string[] = [];
      const cert = issueCertificate(host, { name: 'd', measurement: 'a'.repeat(64), specHash: 'b'.repeat(64), signerHash: null, runtimeRegister: 'c'.repeat(64), issuedMs: 1 });
      const devices = granted ? [new AttestationDevice({ seed: cert.seed, certificate: cert.certificate })] : [];
      const d = new Dispatcher({ memory: gm, devices, args: [], stats: new Float64Array(allocateStats()), onViolation: (v) => violations.push(`${v.call} ${v.status}`), now: () => 0 });
      return { memory, d, violations };
    };
    const off = make(false);
    expect(off.d.hypercall(HvCall.ATTEST_REPORT, 0, 64, 1024, 512)).toBe(-HvStatus.ACCESS_DENIED);
    expect(off.d.hypercall(HvCall.ATTEST_INFO, 0, 0, 1024, 64)).toBe(-HvStatus.ACCESS_DENIED);
    expect(off.violations).toEqual(['ATTEST_REPORT HV_STATUS_ACCESS_DENIED', 'ATTEST_INFO HV_STATUS_ACCESS_DENIED']);
    const on = make(true);
    const before = new Uint8Array(on.memory.buffer).slice();
    const size = before.length;
    for (const [ip, il, op, oc, st] of [
      [0, 64, size - 100, 512, HvStatus.INVALID_ADDRESS],
      [size - 10, 64, 0, 512, HvStatus.INVALID_ADDRESS],
      [0, 64, 0xfffffff0, 0x20, HvStatus.INVALID_ADDRESS],
      [0, 64, 0, 511, HvStatus.BUFFER_TOO_SMALL],
      [0, 65, 0, -1, HvStatus.TOO_LARGE],
    ] as const) {
      expect(on.d.hypercall(HvCall.ATTEST_REPORT, ip, il, op | 0, oc | 0)).toBe(-st);
      expect(Buffer.compare(new Uint8Array(on.memory.buffer), before)).toBe(0);
    }
    expect(on.d.hypercall(HvCall.ATTEST_REPORT, 0, 64, 1024, 600)).toBe(512);
    const mem = new Uint8Array(on.memory.buffer);
    expect(mem.subarray(1024 + 512, 1024 + 600).every((b) => b === 0)).toBe(true);
    expect(verifyGuestReport(mem.slice(1024, 1024 + 512), host.publicKey).name).toBe('d');
  });
});

describe('the names of the checks', () => {
  it('every check a verification can fail is in ATTESTATION_CHECKS, and the README and docs/SECURITY.md name each', () => {
    const root = new URL('../../', import.meta.url);
    const thrown = new Set<string>();
    for (const file of ['host/security/attestation.ts', 'host/security/guest-report.ts']) {
      for (const m of readFileSync(new URL(file, root), 'utf8').matchAll(/new AttestationCheckError\('([a-z]+)'/g)) thrown.add(m[1]!);
    }
    expect([...thrown].sort()).toEqual([...ATTESTATION_CHECKS].sort());
    const check: AttestationCheck = new AttestationCheckError('nonce', 'x').check;
    expect(check).toBe('nonce');
    const readme = readFileSync(new URL('README.md', root), 'utf8');
    const bullet = readme.slice(readme.indexOf('- **Attestation**'), readme.indexOf('- **Audit**'));
    const security = readFileSync(new URL('docs/SECURITY.md', root), 'utf8');
    for (const name of ATTESTATION_CHECKS) {
      expect(bullet, `README's Attestation names the ${name} check`).toContain(`\`${name}\``);
      expect(security, `docs/SECURITY.md names the ${name} check`).toContain(`\`${name}\``);
    }
  });
});
