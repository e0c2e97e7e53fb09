#!/usr/bin/env node
// Generates include/hv.h, the hypercall ABI as a C header, from host/abi/codes.ts (the single
// source of truth): every constant with its doc comment, the import declaration, and a few
// inline helpers. test/sdk/c-header.test.ts regenerates it and fails when the committed file
// differs, so the header cannot drift from the code: after changing codes.ts, run
//   node scripts/gen-hv-header.mjs
// Names follow the SDK's rule (assembly/abi.ts): HvCall.X -> HV_CALL_X, HvStatus.X ->
// HV_STATUS_X, any table HvFooBar.X -> HV_FOO_BAR_X, plain constants keep their name.
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const CODES = `${root}host/abi/codes.ts`;
export const HEADER = `${root}include/hv.h`;

/** HvFooBar -> HV_FOO_BAR */
function tablePrefix(name) {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** Doc comments of codes.ts, by the C name each constant gets, and the exports in source order. */
function docComments(source) {
  const docs = new Map();
  const order = [];
  let table = null;
  let pending = null;
  const lines = source.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line.startsWith('/**')) {
      let text = line;
      while (!text.includes('*/') && i + 1 < lines.length) text += ' ' + lines[++i].trim();
      pending = text.replace(/^\/\*\*|\*\/$/g, '').replace(/\s*\*\s+/g, ' ').trim();
      continue;
    }
    const tableStart = /^export const (\w+) = \{$/.exec(line);
    if (tableStart) {
      order.push(tableStart[1]);
      table = tablePrefix(tableStart[1]);
      pending = null;
      continue;
    }
    if (table !== null && line.startsWith('}')) {
      table = null;
      continue;
    }
    const entry = table !== null ? /^(\w+):/.exec(line) : /^export const (\w+)\b/.exec(line);
    if (entry && table === null) order.push(entry[1]);
    if (entry) {
      if (pending) docs.set(table !== null ? `${table}_${entry[1]}` : entry[1], pending);
      pending = null;
    } else if (line !== '') pending = null;
  }
  return { docs, order };
}

/** The constants codes.ts exports, evaluated (bundled with esbuild, imported from memory). */
async function loadCodes() {
  const out = await build({ entryPoints: [CODES], bundle: true, format: 'esm', platform: 'neutral', write: false, logLevel: 'silent' });
  return import(`data:text/javascript;base64,${Buffer.from(out.outputFiles[0].text).toString('base64')}`);
}

const hex = (n, width = 4) => `0x${n.toString(16).padStart(width, '0')}`;

/** A C literal for a number: hex where the ABI spells it so, unsigned past INT32_MAX. */
function literal(name, value) {
  if (value > 0x7fffffff) return `${hex(value, 8)}u`;
  if (name === 'HV_ABI_VERSION') return hex(value, 8);
  if (name.startsWith('HV_CALL_')) return hex(value);
  return value < 0 ? `(${value})` : String(value);
}

/** The header text. */
export async function renderHeader() {
  const codes = await loadCodes();
  const { docs, order } = docComments(await readFile(CODES, 'utf8'));
  const out = [];
  const define = (name, value) => {
    const doc = docs.get(name);
    if (doc) out.push(`/** ${doc} */`);
    out.push(`#define ${name} ${typeof value === 'string' ? JSON.stringify(value) : literal(name, value)}`);
  };
  const names = [...order, ...Object.keys(codes).filter((n) => !order.includes(n))];
  for (const name of names) {
    const value = codes[name];
    if (typeof value === 'number' || typeof value === 'string') {
      define(name, value);
    } else if (value !== null && typeof value === 'object') {
      const prefix = tablePrefix(name);
      out.push('', `/* ${name} (host/abi/codes.ts) */`);
      for (const [key, v] of Object.entries(value)) define(`${prefix}_${key}`, v);
      out.push('');
    }
  }
  const major = codes.HV_ABI_MAJOR;
  const minor = codes.HV_ABI_MINOR;
  return `/*
 * hv.h: the Wasmvisor hypercall ABI ${major}.${minor} for guests written in C (or anything that can
 * use a C header). Generated from host/abi/codes.ts by scripts/gen-hv-header.mjs: do not edit.
 * The contract is docs/ABI.md; docs/GUESTS.md shows a complete guest and how to build it:
 *
 *   clang --target=wasm32 -nostdlib -O2 -I node_modules/wasmvisor/include \\
 *         -Wl,--no-entry -Wl,--export=_start -o hello.wasm hello.c
 *
 * A guest imports exactly one function, hv.hypercall, and exports its memory and _start (a
 * command) or the functions a host calls (a reactor: each () -> int32_t).
 */
#ifndef WASMVISOR_HV_H
#define WASMVISOR_HV_H

#include <stdint.h>

${out.join('\n').replace(/\n{3,}/g, '\n\n').trim()}

/**
 * The one import. \`call\` is an HV_CALL_* code; the input window is (in_ptr, in_len) and the
 * output window (out_ptr, out_cap), both inside the guest's memory and at most HV_MAX_TRANSFER
 * bytes. Returns a value >= 0 on success (its meaning depends on the call), or -HV_STATUS_*.
 */
__attribute__((import_module("hv"), import_name("hypercall")))
int32_t hv_hypercall(int32_t call, const void *in_ptr, int32_t in_len, void *out_ptr, int32_t out_cap);

/** Writes len bytes to the console's stdout stream (HV_CALL_CONSOLE_WRITE); returns len or -status. */
static inline int32_t hv_console_write(const void *bytes, int32_t len) {
  return hv_hypercall(HV_CALL_CONSOLE_WRITE, bytes, len, 0, 0);
}

/** Ends the partition with an exit code (HV_CALL_EXIT); does not return. */
static inline _Noreturn void hv_exit(int32_t code) {
  hv_hypercall(HV_CALL_EXIT, &code, (int32_t)sizeof code, 0, 0);
  __builtin_unreachable();
}

/** Ends the partition as trapped with a message (HV_CALL_ABORT); does not return. */
static inline _Noreturn void hv_abort(const char *message, int32_t len) {
  hv_hypercall(HV_CALL_ABORT, message, len, 0, 0);
  __builtin_unreachable();
}

#endif /* WASMVISOR_HV_H */
`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(HEADER, await renderHeader());
  console.log(`wrote ${HEADER}`);
}
