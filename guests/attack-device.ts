// Attacks device capabilities: run with only the console granted. Entropy and clock calls must
// be refused with ACCESS_DENIED and DEVICE_LIST must show the console alone.
import {
  call, console, devices, exit, statusName,
  HV_CALL_CLOCK_GET, HV_CALL_ENTROPY_GET, HV_CLOCK_MONOTONIC, HV_DEVICE_CONSOLE, HV_STATUS_ACCESS_DENIED,
} from "../assembly/index";

function describe(r: i32): string {
  return r < 0 ? "-" + statusName(r) : r.toString() + " (success)";
}

const buf = new Uint8Array(16);
const bufPtr = buf.dataStart;
const problems = new Array<string>();

let denied = "denied:";
const e = call(HV_CALL_ENTROPY_GET, 0, 0, bufPtr, 4);
if (e == -HV_STATUS_ACCESS_DENIED) denied += " entropy";
else problems.push("ENTROPY_GET returned " + describe(e) + ", expected -HV_STATUS_ACCESS_DENIED");

store<u32>(bufPtr, HV_CLOCK_MONOTONIC);
const c = call(HV_CALL_CLOCK_GET, bufPtr, 4, bufPtr + 8, 8);
if (c == -HV_STATUS_ACCESS_DENIED) denied += " clock";
else problems.push("CLOCK_GET returned " + describe(c) + ", expected -HV_STATUS_ACCESS_DENIED");

const list = devices();
for (let i = 0; i < list.length; i++) {
  if (list[i].id != HV_DEVICE_CONSOLE) problems.push("DEVICE_LIST lists device " + list[i].id.toString() + ", expected only the console (1)");
}
if (list.length != 1) problems.push("DEVICE_LIST has " + list.length.toString() + " records, expected 1");

console.log(denied);
console.log("devices: " + list.length.toString());
for (let i = 0; i < problems.length; i++) console.log("unexpected: " + problems[i]);
exit(problems.length == 0 ? 0 : 1);
