import { describe, expect, it } from 'vitest';
import { ModuleInvalidError } from '../../host/errors.ts';
import { readSections } from '../../host/loader/sections.ts';
import { validateModule } from '../../host/loader/validate.ts';
import { guest, rawModule, wat } from './wat.ts';

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

/** A module whose only function, named `name` in its name section, returns nothing where it promises an i32. */
function badFunctionNamed(name: string): Uint8Array {
  const text = [...new TextEncoder().encode(name)];
  const names = [0x01, 0x00, text.length, ...text]; // one function name: index 0, then the name
  return rawModule(
    [1, [0x01, 0x60, 0x00, 0x01, 0x7f]], // type 0: () -> i32
    [3, [0x01, 0x00]], // function 0 has type 0
    [10, [0x01, 0x02, 0x00, 0x0b]], // its body: no locals, end
    [0, [0x04, ...new TextEncoder().encode('name'), 0x01, names.length, ...names]],
  );
}

function reasonOf(bytes: Uint8Array): string {
  try {
    validateModule(bytes);
  } catch (error) {
    expect(error).toBeInstanceOf(ModuleInvalidError);
    return (error as ModuleInvalidError).message;
  }
  throw new Error('the module was accepted');
}

describe("validateModule: the engine's reason, as the message quotes it", () => {
  it('names the function and the place, without the engine API’s own prefix', () => {
    const message = reasonOf(badFunctionNamed('main'));
    expect(message).toMatch(/^not a valid WebAssembly module: Compiling function #0:"main" failed: .+ @\+\d+$/);
    expect(message).not.toContain('WebAssembly.Module()');
  });

  it('escapes control characters of a name the module gives its function', () => {
    const message = reasonOf(badFunctionNamed('\u001b[31mevil\nline'));
    expect(message).toContain('Compiling function #0:"\\x1b[31mevil\\nline" failed');
    expect(message).not.toMatch(/[\u0000-\u001f]/);
  });
});
