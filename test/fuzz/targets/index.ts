/** Every fuzz target, by name: the CI run, the long run and the guided run all take them from here. */
import type { Target } from '../framework.ts';
import { hypercall } from './hypercall.ts';
import { wasi } from './wasi.ts';
import { PARSERS, byteTarget } from './bytes.ts';
import { modules } from './modules.ts';

export const TARGETS: readonly Target<never>[] = [
  hypercall as Target<never>,
  wasi as Target<never>,
  ...PARSERS.map((parser) => byteTarget(parser) as Target<never>),
  modules as Target<never>,
];
