// The structural bounds count what a module imports as well as what it defines: a module whose
// imports alone pass a bound is refused as soon as its import section is read, at the edge (the
// bound equal to the count: admitted) and one past it, with a message naming the count and bound.
import { describe, expect, it } from 'vitest';
import { LimitModuleError } from '../../host/errors.ts';
import { resolveModuleLimits, type ModuleLimits } from '../../host/loader/bounds.ts';
import { readSections } from '../../host/loader/sections.ts';
import { thrownBy, wat } from './wat.ts';

const twice = (decl: (i: number) => string): string => `(module ${decl(0)} ${decl(1)})`;

const cases: [keyof ModuleLimits, string, string][] = [
  ['functions', 'functions', twice((i) => `(import "m" "f${i}" (func))`)],
  ['globals', 'globals', twice((i) => `(import "m" "g${i}" (global i32))`)],
  ['tables', 'tables', twice((i) => `(import "m" "t${i}" (table 1 funcref))`)],
  ['tags', 'tags', twice((i) => `(import "m" "e${i}" (tag))`)],
  ['memories', 'memories', twice((i) => `(import "m" "m${i}" (memory 1))`)],
];

describe('bounds on imported entities', () => {
  it.each(cases)('moduleLimits.%s counts two imported %s', (key, noun, source) => {
    const bytes = wat(source);
    expect(() => readSections(bytes, resolveModuleLimits({ [key]: 2 }))).not.toThrow();
    const error = thrownBy(() => readSections(bytes, resolveModuleLimits({ [key]: 1 })), LimitModuleError);
    expect(error.message).toBe(`the module imports 2 ${noun}, over the limit of 1 (moduleLimits.${key})`);
  });
});

/** One imported and one defined of each kind: the bound counts both. */
const mixed: [keyof ModuleLimits, string, string][] = [
  ['functions', 'functions', '(module (import "m" "f" (func)) (func))'],
  ['globals', 'globals', '(module (import "m" "g" (global i32)) (global i32 (i32.const 0)))'],
  ['tables', 'tables', '(module (import "m" "t" (table 1 funcref)) (table 1 funcref))'],
  ['tags', 'tags', '(module (import "m" "e" (tag)) (tag))'],
  ['memories', 'memories', '(module (import "m" "m" (memory 1)) (memory 1))'],
];

describe('bounds on imported and defined entities together', () => {
  it.each(mixed)('moduleLimits.%s counts one imported and one defined (%s)', (key, noun, source) => {
    const bytes = wat(source);
    expect(() => readSections(bytes, resolveModuleLimits({ [key]: 2 }))).not.toThrow();
    const error = thrownBy(() => readSections(bytes, resolveModuleLimits({ [key]: 1 })), LimitModuleError);
    expect(error.message).toMatch(new RegExp(`^the module has 2 ${noun}\\b.*, over the limit of 1 \\(moduleLimits\\.${key}\\)$`));
  });
});
