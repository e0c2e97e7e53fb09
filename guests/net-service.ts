// A tiny request/response service behind a forwarded TCP port. Stream framing (docs/ABI.md,
// "Forwarded ports"): 8-byte header u8 type (1 OPEN, 2 DATA, 3 CLOSE), u8 flags, u16 port,
// u32 connection id, then data. Each DATA frame is one request; the reply is "OK " followed by
// the request in upper case. "quit" closes the connection and ends the service. A client's CLOSE
// (it sent its FIN: `printf req | nc -N`) is answered with CLOSE once its requests are answered
// (they came before it), which ends the connection.
// Its loop lasts as long as its input, so what each round allocates must be reclaimed:
// wasmvisor:runtime incremental
import { console, exit, net } from "../assembly/index";

const OPEN: u8 = 1;
const DATA: u8 = 2;
const CLOSE: u8 = 3;
const buf = new Uint8Array(65536);
let requests = 0;
console.log("service: listening on " + net.formatAddress(net.address()));
while (true) {
  const n = net.recvInto(buf, -1);
  if (n < 0) break;
  if (n < net.HEADER_SIZE + 8) continue;
  const src = load<u32>(buf.dataStart);
  const h = buf.dataStart + <usize>net.HEADER_SIZE;
  const type = load<u8>(h);
  if (type == OPEN) continue;
  if (type == CLOSE) {
    net.send(src, buf.subarray(net.HEADER_SIZE, net.HEADER_SIZE + 8)); // same header: CLOSE, port, id
    continue;
  }
  if (type != DATA) continue;
  let text = String.UTF8.decodeUnsafe(h + 8, <usize>(n - net.HEADER_SIZE - 8)).trim();
  const quit = text == "quit";
  const reply = Uint8Array.wrap(String.UTF8.encode(quit ? "BYE\n" : "OK " + text.toUpperCase() + "\n"));
  const out = new Uint8Array(8 + reply.length);
  memory.copy(out.dataStart, h, 8); // same port and connection id
  out.set(reply, 8);
  net.send(src, out);
  requests++;
  if (quit) {
    store<u8>(out.dataStart, CLOSE);
    net.send(src, out.subarray(0, 8));
    break;
  }
}
console.log("service: served " + requests.toString() + " requests");
exit(0);
