import { randomBytes } from 'node:crypto';
import { WasmvisorError } from '../../errors.ts';
import type { LabContext } from '../context.ts';
import type { LabDefinition } from '../lab.ts';
import { AttestationCheckError, verifyReport, type ReportExpectations } from '../../security/index.ts';

/** Verifies `text` as a verifier would; records the refusal's code and says which check failed. */
function check(ctx: LabContext, text: string, key: Uint8Array, expect: ReportExpectations, what: string): boolean {
  try {
    verifyReport(text, key, expect);
    ctx.evidence(what, 'verifies: signature, nonce, event log replayed to the registers, measurements');
    return true;
  } catch (error) {
    if (!(error instanceof WasmvisorError)) throw error;
    ctx.code(error.code, error.message, 'verifyReport');
    ctx.evidence(what, `refused by the ${error instanceof AttestationCheckError ? `${error.check} check` : 'verifier'}`);
    return false;
  }
}

export const attestation: LabDefinition = {
  id: 'attestation',
  title: 'Attestation',
  order: 12,
  minutes: 15,
  goal: 'platform integrity',
  concept: [
    'Code integrity protects the host from bad code; attestation lets someone else check what the host is running. Wasmvisor keeps a measured-boot event log: every module, policy and configuration it loads is measured and extended into registers (register = SHA-256(register ‖ digest), as a TPM does). An attestation report carries the registers, the event log and a verifier\'s nonce, signed with the host\'s key; a verifier replays the log, checks the signature and the nonce, and compares the measurements with the ones it expects.',
    'Remote attestation is how a customer can trust a confidential-computing host, how a fleet manager keeps tampered machines out, and how a secrets service decides whether to release a key to a workload. Without it, a compromised host simply reports whatever the verifier wants to hear.',
    'The lab asks the host for a report over a fresh nonce and verifies it, then changes one byte of the report and verifies again: the verification fails and says which check failed. A report replayed to a verifier that sent another nonce fails too.',
  ],
  feature: 'attestation',
  guests: ['hello'],
  expect: {
    code: 'ERR_INTEGRITY',
    audit: { action: 'attestation.request', outcome: 'success' },
  },
  async run(ctx) {
    const hv = ctx.hypervisor();
    ctx.step('The host runs a partition: its module is measured into the "partitions" register');
    const p = await ctx.create(hv, { name: 'workload', module: ctx.guest('hello'), devices: { console: true } });
    await ctx.run(p);
    const nonce = randomBytes(16).toString('hex');
    ctx.step(`A verifier sends the nonce ${nonce} and asks for a report`);
    const report = await hv.attest({ nonce });
    const key = hv.attestationPublicKey();
    for (const [name, value] of Object.entries(report.registers)) ctx.evidence(`register ${name}`, value);
    ctx.evidence('report', `${report.events.length} measured events, ${report.partitions.length} partition(s), signed ${report.signature.slice(0, 16)}…`);
    const text = JSON.stringify(report);
    const expect = { nonce, measurements: [p.measurement], maxAgeMs: 10 * 60_000 };
    if (!check(ctx, text, key, expect, 'the report as sent')) ctx.problem('the genuine report did not verify');

    ctx.step('Someone on the way changes one hex digit of the "partitions" register, to hide a module');
    const at = text.indexOf(report.registers.partitions);
    const digit = text[at]!;
    const altered = `${text.slice(0, at)}${digit === '0' ? '1' : '0'}${text.slice(at + 1)}`;
    if (check(ctx, altered, key, expect, 'the altered report')) ctx.problem('the altered report verified');

    ctx.step('Someone replays the genuine report to a verifier that sent another nonce');
    if (check(ctx, text, key, { ...expect, nonce: randomBytes(16).toString('hex') }, 'the replayed report')) ctx.problem('the replayed report verified');
  },
};
