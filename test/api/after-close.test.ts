/**
 * The embedder API once `hv.close()` is called (README, "Embedding"): every method that would act
 * refuses with ERR_INVALID_STATE naming itself, and does nothing (no file, key, record or policy
 * change); the views of the final state answer; close() again resolves. A sink the embedder gave
 * stays the embedder's.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor, readAuditRecords, type AuditEntry } from '../../host/index.ts';
import { guest } from '../helpers.ts';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'wv-closed-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const closedError = (method: string) => ({ code: 'ERR_INVALID_STATE', message: `${method}: this hypervisor is closed` });

describe('after close()', () => {
  it('every method that acts refuses with ERR_INVALID_STATE naming itself, and changes nothing', async () => {
    const dataDir = tmp();
    const hv = new Hypervisor({ dataDir, audit: true });
    // A disk left by a partition destroyed without a wipe: a wipe after close must not touch it.
    const disk = await hv.createPartition({ name: 'kept', module: guest('counter'), devices: { block: { sizeMiB: 1 } } });
    await disk.destroy();
    const image = path.join(dataDir, 'images', 'kept.img');
    const reactor = await hv.createPartition({ name: 'r', module: guest('transform'), kind: 'reactor' });
    await reactor.start();
    await hv.close();
    const records = readAuditRecords(path.join(dataDir, 'audit')).records.length;

    const rejected: [string, () => Promise<unknown>][] = [
      ['createPartition', () => hv.createPartition({ name: 'q', module: guest('hello') })],
      ['createPool', () => hv.createPool({ name: 'q', module: guest('transform') }, { size: 1 })],
      ['inspect', () => hv.inspect(guest('hello'))],
      ['setPolicy', () => hv.setPolicy({ requireSignature: true })],
      ['attest', () => hv.attest({ nonce: '01' })],
      ['wipeStorage', () => hv.wipeStorage('kept')],
      ['listStorage', () => hv.listStorage()],
      ['forwardPort', () => hv.forwardPort({ partition: 'r', guestPort: 1 })],
      ['audit.record', () => hv.audit!.record({ action: 'x.y', outcome: 'success' })],
    ];
    for (const [method, call] of rejected) await expect(call(), method).rejects.toMatchObject(closedError(method));
    const thrown: [string, () => unknown][] = [
      ['attestationPublicKey', () => hv.attestationPublicKey()],
      ['attachNet', () => hv.attachNet('blue')],
      ['observeNetwork', () => hv.observeNetwork(() => undefined)],
      ['audit.note', () => hv.audit!.note({ action: 'x.y', outcome: 'success' })],
    ];
    for (const [method, call] of thrown) expect(call, method).toThrow(expect.objectContaining(closedError(method)));

    // Nothing was done: the policy is unchanged, the disk is there, no record was added.
    expect(hv.policy).toBeNull();
    expect(existsSync(image)).toBe(true);
    expect(readAuditRecords(path.join(dataDir, 'audit')).records.length).toBe(records);
    // The views of the final state answer.
    expect(hv.partitions()).toEqual([]);
    expect(hv.partition('r')).toBeUndefined();
    expect(hv.memoryUsage().reservedBytes).toBe(0);
    expect(hv.scheduler().partitions).toEqual([]);
    expect(hv.eventLog().events.length).toBeGreaterThan(0);
    expect(hv.dataDir).toBe(dataDir);
    expect(hv.audit).not.toBeNull();
    await expect(hv.close()).resolves.toBeUndefined();
    // A destroyed partition: start and call refused; a wipe needs its (closed) hypervisor's storage.
    await expect(reactor.call('upper', 'x')).rejects.toMatchObject({ code: 'ERR_INVALID_STATE', message: 'partition r cannot take calls: it is destroyed' });
    await expect(reactor.start()).rejects.toMatchObject({ code: 'ERR_INVALID_STATE', message: 'partition r cannot start: it is destroyed' });
    await expect(disk.destroy({ wipe: true })).rejects.toMatchObject({ code: 'ERR_INVALID_STATE', message: 'the storage of this hypervisor is closed' });
    expect(existsSync(image)).toBe(true);
    expect((await reactor.stop()).state).toBe('killed');
    expect(reactor.writeLine('x')).toBe(false);
  });

  it('refuses from the moment close() is called, before it resolves', async () => {
    const dataDir = tmp();
    const hv = new Hypervisor({ dataDir });
    const closing = hv.close();
    await expect(hv.attest()).rejects.toMatchObject(closedError('attest'));
    expect(() => hv.attestationPublicKey()).toThrow(expect.objectContaining(closedError('attestationPublicKey')));
    await closing;
    // No host key was made for the refused calls.
    expect(existsSync(path.join(dataDir, 'keys'))).toBe(false);
  });

  it("leaves a sink the embedder gave its own: hv.audit is that sink, and it still records", async () => {
    const seen: AuditEntry[] = [];
    const sink = { record: async (e: AuditEntry) => void seen.push(e), note: (e: AuditEntry) => void seen.push(e) };
    const hv = new Hypervisor({ dataDir: tmp(), audit: sink });
    await hv.close();
    expect(hv.audit).toBe(sink);
    await hv.audit!.record({ action: 'app.after', outcome: 'success' });
    expect(seen.at(-1)).toMatchObject({ action: 'app.after' });
    expect(readdirSync(dirs.at(-1)!)).toEqual([]);
  });
});
