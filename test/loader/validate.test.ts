import { describe, expect, it } from 'vitest';
import { ModuleInvalidError } from '../../host/errors.ts';
import { readSections } from '../../host/loader/sections.ts';
import { validateModule } from '../../host/loader/validate.ts';
import { guest, wat } from './wat.ts';

describe('validateModule', () => {
  it('accepts a valid module', () => {
    expect(() => validateModule(guest())).not.toThrow();
  });

  it("refuses an invalid module with the engine's reason", () => {
    // Structurally fine (our reader accepts it), refused by the engine: a function typed
    // () -> i32 whose body returns nothing. wabt writes it without type-checking.
    const bytes = wat('(module (func (result i32)))');
    expect(() => readSections(bytes)).not.toThrow();
    const error = (() => {
      try {
        validateModule(bytes);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(ModuleInvalidError);
    expect((error as ModuleInvalidError).code).toBe('ERR_MODULE_INVALID');
    expect((error as ModuleInvalidError).message).toMatch(/^not a valid WebAssembly module: .+/);
    expect((error as ModuleInvalidError).message).not.toContain('no reason available');
  });

  it('refuses garbage', () => {
    expect(() => validateModule(Uint8Array.from([1, 2, 3]))).toThrow(ModuleInvalidError);
    expect(() => validateModule(new Uint8Array(0))).toThrow(ModuleInvalidError);
  });

  it('throws ModuleInvalidError at every truncation except section boundaries', () => {
    const bytes = guest({ extra: '(table 1 funcref) (func $f (result i32) (i32.const 42)) (elem (i32.const 0) $f) (data (i32.const 16) "abc")' });
    const boundaries = new Set([8, ...readSections(bytes).sections.map((s) => s.end)]);
    for (let cut = 0; cut < bytes.length; cut++) {
      const truncated = bytes.slice(0, cut);
      // A cut at a section boundary can still be a valid module when it drops only trailing
      // sections the earlier ones do not depend on; anywhere else it must be refused.
      try {
        validateModule(truncated);
        expect(boundaries.has(cut), `cut at ${cut} validated`).toBe(true);
      } catch (error) {
        expect(error, `cut at ${cut}`).toBeInstanceOf(ModuleInvalidError);
      }
    }
  });
});
