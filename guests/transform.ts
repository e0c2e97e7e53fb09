// wasmvisor:reactor
// A plugin-style guest: the host calls its exports (each `() -> i32`) with bytes in and bytes out.
//   upper   ASCII upper-case of the input
//   render  a markdown-ish subset to HTML: "# ", "## ", "- " lists, blank-line paragraphs,
//           **bold**; <, >, & and " are escaped
//   echo    the input, unchanged (the no-op used by the benchmarks)
//   count   a counter kept in the instance: 1, 2, 3, ... (state lives until a restart)
//   fill    input: u32 n (LE); outputs n bytes of 'x' (returns 1 if the host refused the size)
//   fail    returns status 7 with the output "bad input" (a guest-level error, not a fault)
//   trap    executes unreachable
//   spin    never returns
import { input, inputString, output, outputString } from "../assembly/index";

let calls: i32 = 0;

export function upper(): i32 {
  const data = input();
  for (let i = 0; i < data.length; i++) {
    const c = data[i];
    if (c >= 0x61 && c <= 0x7a) data[i] = c - 0x20;
  }
  return output(data);
}

export function echo(): i32 {
  return output(input());
}

export function count(): i32 {
  calls++;
  return outputString(calls.toString());
}

export function fill(): i32 {
  const data = input();
  if (data.length != 4) return 2;
  const n = load<u32>(changetype<usize>(data.buffer));
  const chunk = new Uint8Array(4096);
  chunk.fill(0x78);
  let left = n;
  while (left > 0) {
    const take = min<u32>(left, 4096);
    if (output(chunk.subarray(0, <i32>take)) < 0) return 1;
    left -= take;
  }
  return 0;
}

export function fail(): i32 {
  outputString("bad input");
  return 7;
}

export function trap(): i32 {
  unreachable();
  return 0;
}

export function spin(): i32 {
  let i: i32 = 0;
  while (true) {
    i++;
    store<i32>(0, i); // a side effect, so the loop is not optimized away
  }
  return 0;
}

function escape(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}

/** **bold** → <strong>bold</strong>, on already-escaped text. */
function inline(s: string): string {
  let out = "";
  let open = false;
  let i = 0;
  while (i < s.length) {
    if (i + 1 < s.length && s.charAt(i) == "*" && s.charAt(i + 1) == "*") {
      out += open ? "</strong>" : "<strong>";
      open = !open;
      i += 2;
    } else {
      out += s.charAt(i);
      i++;
    }
  }
  if (open) out += "</strong>";
  return out;
}

export function render(): i32 {
  const lines = inputString().split("\n");
  let html = "";
  let inList = false;
  let para = "";
  for (let i = 0; i <= lines.length; i++) {
    const line = i < lines.length ? lines[i] : "";
    const isItem = line.startsWith("- ");
    const isHeading = line.startsWith("# ") || line.startsWith("## ");
    if ((isItem || isHeading || line.length == 0) && para.length > 0) {
      html += "<p>" + inline(escape(para)) + "</p>\n";
      para = "";
    }
    if (!isItem && inList) {
      html += "</ul>\n";
      inList = false;
    }
    if (line.startsWith("## ")) {
      html += "<h2>" + inline(escape(line.substring(3))) + "</h2>\n";
    } else if (line.startsWith("# ")) {
      html += "<h1>" + inline(escape(line.substring(2))) + "</h1>\n";
    } else if (isItem) {
      if (!inList) {
        html += "<ul>\n";
        inList = true;
      }
      html += "<li>" + inline(escape(line.substring(2))) + "</li>\n";
    } else if (line.length > 0) {
      para = para.length > 0 ? para + " " + line : line;
    }
  }
  return outputString(html);
}
