// Asks for its own attestation: prints its measurement and spec hash (ATTEST_INFO) and a signed
// report (ATTEST_REPORT) binding args[0] (the verifier's nonce, hex) and args[1] (text, padded to
// the 64 bytes of report data), each as hex on one line. Without the device, says so.
import { args, attestation, console, exit, hasDevice, statusName, HV_DEVICE_ATTESTATION } from "../assembly/index";

function hex(b: Uint8Array): string {
  const digits = "0123456789abcdef";
  let s = "";
  for (let i = 0; i < b.length; i++) s += digits.charAt(b[i] >> 4) + digits.charAt(b[i] & 15);
  return s;
}

function unhex(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = <u8>parseInt(s.substr(i * 2, 2), 16);
  return out;
}

const a = args();
if (!hasDevice(HV_DEVICE_ATTESTATION)) {
  console.log("no attestation device");
  exit(3);
}
console.log("info " + hex(attestation.info()));
const nonce = a.length > 0 ? unhex(a[0]) : new Uint8Array(0);
const data = new Uint8Array(64);
if (a.length > 1) {
  const text = Uint8Array.wrap(String.UTF8.encode(a[1]));
  for (let i = 0; i < text.length && i < 64; i++) data[i] = text[i];
}
const report = attestation.report(data, nonce);
if (report === null) {
  console.log("report failed: " + statusName(attestation.lastStatus));
  exit(1);
}
console.log("report " + hex(report!));
exit(0);
