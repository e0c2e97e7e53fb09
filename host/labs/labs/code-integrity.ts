import { readFileSync } from 'node:fs';
import type { LabContext } from '../context.ts';
import type { LabDefinition } from '../lab.ts';
import { encodePublicKey, generateKeyPair, signModule } from '../../security/index.ts';

/** The guest's greeting as AssemblyScript stores it (UTF-16): the byte an attacker changes. */
const GREETING = Buffer.from('Hello', 'utf16le');

/** A copy of `bytes` with the greeting's first letter changed (H → J): still a valid module that runs, printing "Jello". */
function tamper(ctx: LabContext, bytes: Uint8Array): Uint8Array {
  const copy = Buffer.from(bytes);
  const at = copy.indexOf(GREETING);
  if (at < 0) throw new Error('the greeting is not in the module');
  copy[at] = 0x4a;
  ctx.evidence('the change', `one byte at offset ${at}: 0x48 ('H') becomes 0x4a ('J')`);
  return copy;
}

export const codeIntegrity: LabDefinition = {
  id: 'code-integrity',
  title: 'Code integrity',
  order: 11,
  minutes: 15,
  goal: 'platform integrity',
  concept: [
    'A hypervisor that runs whatever bytes it is given cannot promise anything about what runs. Wasmvisor measures every module (SHA-256 of its bytes) before anything else happens, and with a policy admits only modules signed by a trusted publisher (Ed25519, in the WebAssembly tool-conventions signature format) or pinned by their measurement. The check comes first in the module pipeline: an unsigned or altered module never reaches the compiler.',
    'Supply-chain attacks replace what you meant to run: a compromised build server, a package registry account taken over, a plugin swapped on disk or in transit. Code signing with a policy of trusted publishers is the defence operating systems, browsers and app stores use; measurement is what lets an attestation later say exactly which code ran.',
    'The lab signs a guest, then loads a copy with one byte changed and an unsigned copy under a policy that requires a signature: both are refused before they run, with the error code and the audit record that name why.',
  ],
  feature: 'signatures',
  guests: ['hello'],
  expect: {
    code: 'ERR_INTEGRITY',
    audit: { action: 'partition.create', outcome: 'denied', code: 'ERR_INTEGRITY' },
  },
  async run(ctx) {
    const original = new Uint8Array(readFileSync(ctx.guest('hello')));
    ctx.step('The publisher "acme" makes a key pair and signs the hello guest');
    const key = generateKeyPair();
    const signed = signModule(original, key).module;
    ctx.evidence('signed', `${original.length} bytes + a ${signed.length - original.length}-byte signature section`);
    const publicKey = Buffer.from(encodePublicKey(key.publicKey)).toString('hex');
    ctx.step('The host\'s policy trusts acme\'s public key, and nothing else');
    const hv = ctx.hypervisor({ policy: { publishers: { acme: { keys: [{ publicKey }], grants: { devices: ['console'] } } } } });
    const ok = await ctx.create(hv, { name: 'signed', module: signed, devices: { console: true } });
    ctx.evidence('signed module', `admitted; measurement ${ok.measurement.slice(0, 16)}…`);
    await ctx.run(ok);
    ctx.step('Someone changes one byte of the signed module on its way to the host');
    const altered = tamper(ctx, signed);
    const e1 = await ctx.refused(hv, { name: 'altered', module: altered, devices: { console: true } });
    if (e1 !== null && e1.code !== 'ERR_INTEGRITY') ctx.problem(`the altered module was refused with ${e1.code}, not ERR_INTEGRITY`);
    ctx.step('Someone offers the original module without any signature');
    const e2 = await ctx.refused(hv, { name: 'unsigned', module: original, devices: { console: true } });
    if (e2 !== null && e2.code !== 'ERR_INTEGRITY') ctx.problem(`the unsigned module was refused with ${e2.code}, not ERR_INTEGRITY`);
  },
  defenceOff: {
    title: 'The same altered module on a host without a policy',
    text: 'No policy: the host runs any module it is given. The altered module is the lab\'s own guest with one letter of its greeting changed, so running it harms nothing; it shows that without signatures nobody notices the change.',
    async run(ctx) {
      const original = new Uint8Array(readFileSync(ctx.guest('hello')));
      const signed = signModule(original, generateKeyPair()).module;
      ctx.step('Someone changes one byte of the signed module; the host has no policy');
      const altered = tamper(ctx, signed);
      const hv = ctx.hypervisor();
      const p = await ctx.create(hv, { name: 'altered', module: altered, devices: { console: true } });
      const said = ctx.waitForLine(p, (l) => l.startsWith('Jello'), 30_000).catch(() => null);
      await ctx.run(p);
      const line = await said;
      if (line !== null) ctx.breach(`the altered module ran and printed "${line}"`);
      else ctx.problem('the altered module did not print its altered greeting');
    },
  },
};
