import { randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Hypervisor } from '../../hypervisor.ts';
import type { LabContext } from '../context.ts';
import type { LabDefinition } from '../lab.ts';

/** docs/STORAGE.md: a 4096-byte header, then two slots of 4144 bytes per sector; a slot's ciphertext starts 48 bytes in. */
const HEADER = 4096;
const SLOT = 4144;
const CIPHERTEXT_AT = 48;
const DISK_MIB = 1;

function imageOf(hv: Hypervisor, name: string): string {
  return path.join(hv.dataDir, 'images', `${name}.img`);
}

function count(haystack: Buffer, needle: string): number {
  const n = Buffer.from(needle);
  let found = 0;
  for (let at = haystack.indexOf(n); at >= 0; at = haystack.indexOf(n, at + 1)) found++;
  return found;
}

const hex = (b: Buffer) => b.toString('hex').replace(/(..)/g, '$1 ').trim();

/** Fills a partition's disk with the secret; returns its image file. */
async function fill(ctx: LabContext, hv: Hypervisor, name: string, secret: string): Promise<string> {
  const p = await ctx.create(hv, { name, module: ctx.guest('disk'), args: ['fill', secret], devices: { console: true, block: { sizeMiB: DISK_MIB } } });
  await ctx.run(p);
  await p.destroy();
  return imageOf(hv, name);
}

export const storage: LabDefinition = {
  id: 'storage',
  title: 'Storage isolation and encryption at rest',
  order: 9,
  minutes: 15,
  goal: 'isolation',
  concept: [
    'A partition\'s disk is a file on the host, and files get copied, backed up, left behind and read by whoever has the host\'s disk. Wasmvisor gives each partition its own image and its own key; every sector is encrypted and authenticated with AES-256-GCM, with the image\'s random id and the sector number bound in, and the image header carries a MAC over the partition\'s name. The guest names sector numbers, never paths.',
    'Stolen disks and snapshots, backups on a shared share, a volume attached to the wrong tenant, a storage bug that hands one tenant\'s blocks to another: encryption at rest with per-tenant keys turns each of these into ciphertext. Authentication adds what encryption alone does not: a copied, swapped or altered image is refused instead of being read as someone else\'s data.',
    'Alice fills her disk with a secret. On the host\'s disk the image holds ciphertext only: the secret is not there. Mallory copies Alice\'s image into his own place and asks for his disk: the image does not authenticate as his, and his partition is refused with ERR_INTEGRITY. A byte changed in Alice\'s image is never read back as plaintext.',
  ],
  feature: 'encrypted-storage',
  guests: ['disk'],
  expect: {
    code: 'ERR_INTEGRITY',
    audit: { action: 'partition.create', outcome: 'denied', code: 'ERR_INTEGRITY' },
  },
  async run(ctx) {
    const hv = ctx.hypervisor();
    const secret = `ALICE-${randomBytes(6).toString('hex')}`;
    ctx.step(`Alice fills her ${DISK_MIB} MiB disk with "${secret}"`);
    const image = await fill(ctx, hv, 'alice', secret);
    const bytes = readFileSync(image);
    const gen = bytes.readBigUInt64LE(HEADER);
    const slot = HEADER + (gen > 0n ? 0 : SLOT);
    ctx.evidence('on the host', `${path.basename(image)}: ${bytes.length.toLocaleString('en')} bytes; the secret appears ${count(bytes, secret)} times`);
    ctx.evidence('sector 0 as stored', `${hex(bytes.subarray(slot + CIPHERTEXT_AT, slot + CIPHERTEXT_AT + 32))} …`);
    if (count(bytes, secret) !== 0) ctx.problem('the secret is in the image in plaintext');

    ctx.step('Mallory has a disk of his own; he copies Alice\'s image over it on the host and asks for his disk');
    await fill(ctx, hv, 'mallory', 'mallory was here');
    copyFileSync(image, imageOf(hv, 'mallory'));
    await ctx.refused(hv, { name: 'mallory', module: ctx.guest('disk'), args: ['scan', secret], devices: { console: true, block: { sizeMiB: DISK_MIB } } });

    ctx.step('Someone changes one byte of sector 0 in Alice\'s image; Alice reads her disk back');
    bytes[slot + CIPHERTEXT_AT + 100] = bytes[slot + CIPHERTEXT_AT + 100]! ^ 0x01;
    writeFileSync(image, bytes);
    const alice = await ctx.create(hv, { name: 'alice', module: ctx.guest('disk'), args: ['scan', secret], devices: { console: true, block: { sizeMiB: DISK_MIB } } });
    const exit = await ctx.run(alice);
    const b = exit.metrics.block;
    ctx.evidence('after the change', `the altered sector was not accepted: ${b.tornRecovered} sector read as its previous version (here: never written, so zeros), ${b.integrityFailures} integrity failures`);
    if (b.tornRecovered + b.integrityFailures === 0) ctx.problem('the altered sector was read as if nothing had happened');
  },
  defenceOff: {
    title: 'The same disk as a plain image file',
    text: 'Encryption off: the same sectors, with the same contents, written to a plain image file in the lab\'s temporary directory, as a hypervisor without encryption at rest keeps them. Then the same search of the host\'s file.',
    async run(ctx) {
      const secret = `ALICE-${randomBytes(6).toString('hex')}`;
      ctx.step(`Write ${DISK_MIB} MiB of sectors filled with "${secret}" to a plain image`);
      const sector = Buffer.alloc(4096);
      for (let at = 0; at + secret.length <= sector.length; at += secret.length) sector.write(secret, at);
      const file = path.join(ctx.workDir, 'plain.img');
      writeFileSync(file, Buffer.concat(Array.from({ length: (DISK_MIB * 1048576) / 4096 }, () => sector)));
      const bytes = readFileSync(file);
      const found = count(bytes, secret);
      ctx.evidence('on the host', `plain.img: the secret appears ${found.toLocaleString('en')} times`);
      ctx.evidence('sector 0 as stored', `${hex(bytes.subarray(0, 32))} … ("${bytes.subarray(0, 32).toString('latin1')}")`);
      if (found > 0) ctx.breach(`anyone who can read the host's disk reads the secret (${found.toLocaleString('en')} copies)`);
      else ctx.problem('the plain image does not hold the secret');
    },
  },
};
