/** Types for test/loader/bombs.mjs (shared by the loader tests and bench/loader-memory.mjs). */
export function leb(n: number): number[];
export function section(id: number, payload: ArrayLike<number>): Uint8Array;
export function concat(parts: readonly ArrayLike<number>[]): Uint8Array;
export function customSection(name: string, payload: ArrayLike<number>): Uint8Array;
export function guestWithBodies(bodies: readonly Uint8Array[], extra?: readonly Uint8Array[]): Uint8Array;
export function localsBomb(functions: number, locals: number): Uint8Array;
export function nestingBomb(depth: number): Uint8Array;
export function constBlockBomb(depth: number): Uint8Array;
export function straightBody(pairs: number): Uint8Array;
