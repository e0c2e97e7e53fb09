/**
 * Generators of hostile modules for the loader's bounds and its thread: raw binary, because
 * the shapes (millions of nested blocks, tens of thousands of locals per function) are too
 * large for WAT. Every module is a well-formed guest: one type `() -> ()`, N functions, a
 * memory, and the exports `memory` and `_start` (function 0).
 */

/** Unsigned LEB128. */
export function leb(n) {
  const out = [];
  let v = n;
  do {
    let b = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) b |= 0x80;
    out.push(b);
  } while (v > 0);
  return out;
}

const PREAMBLE = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const utf8 = (s) => [...new TextEncoder().encode(s)];

export function section(id, payload) {
  const head = [id, ...leb(payload.length)];
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

export function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A custom section: name, then payload bytes. */
export function customSection(name, payload) {
  const n = utf8(name);
  return section(0, [...leb(n.length), ...n, ...Array.from(payload)]);
}

/** A guest whose code section holds `bodies` (each a function body without its size prefix). */
export function guestWithBodies(bodies, extra = []) {
  const n = bodies.length;
  const type = section(1, [1, 0x60, 0, 0]);
  const funcs = section(3, [...leb(n), ...new Array(n).fill(0)]);
  const memory = section(5, [1, 0, 1]);
  const exports = section(7, [2, ...leb(6), ...utf8('memory'), 2, 0, ...leb(6), ...utf8('_start'), 0, 0]);
  const sized = bodies.map((b) => concat([leb(b.length), b]));
  const codePayload = concat([leb(n), ...sized]);
  const code = concat([[10, ...leb(codePayload.length)], codePayload]);
  return concat([PREAMBLE, type, funcs, memory, exports, code, ...extra]);
}

/** `functions` functions, each declaring `locals` i32 locals (one declaration: six bytes a body). */
export function localsBomb(functions, locals) {
  const body = Uint8Array.from([1, ...leb(locals), 0x7f, 0x0b]);
  return guestWithBodies(new Array(functions).fill(body));
}

/** One function of `depth` nested empty blocks (three bytes per level). */
export function nestingBomb(depth) {
  const body = new Uint8Array(1 + depth * 3 + 1);
  let at = 1; // no locals
  for (let i = 0; i < depth; i++) {
    body[at++] = 0x02;
    body[at++] = 0x40;
  }
  body.fill(0x0b, at);
  return guestWithBodies([body]);
}

/**
 * A guest whose one function nests `depth` blocks, each after an `i32.const 0` whose value is
 * dropped after the block's end: past binaryen's stack when the nesting bound is raised far.
 */
export function constBlockBomb(depth) {
  const body = new Uint8Array(1 + depth * 4 + depth * 2 + 1);
  let at = 1;
  for (let i = 0; i < depth; i++) body.set([0x41, 0x00, 0x02, 0x40], (at += 4) - 4);
  for (let i = 0; i < depth; i++) body.set([0x0b, 0x1a], (at += 2) - 2);
  body[at] = 0x0b;
  return guestWithBodies([body]);
}

/** A body of `pairs` × (i32.const 0; drop): straight-line code of 3 bytes an instruction pair. */
export function straightBody(pairs) {
  const body = new Uint8Array(1 + pairs * 3 + 1);
  for (let i = 0; i < pairs; i++) body.set([0x41, 0x00, 0x1a], 1 + i * 3);
  body[body.length - 1] = 0x0b;
  return body;
}
