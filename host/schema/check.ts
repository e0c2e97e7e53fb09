/**
 * One way to check any value that comes from outside (a spec, options, a manifest, a policy
 * file, an API body) against a TypeBox schema, and one way to say what is wrong with it.
 *
 * Invariant: a value that passes `check` has exactly the schema's shape — every object in it
 * declares `additionalProperties: false` unless the schema says otherwise, so a typo is an
 * error, never a silently ignored key. The message names the path (`devices.console.linesPerSec`),
 * what was expected, and what was given (its type, and its value when short), with a "did you
 * mean" for a near-miss key. Checking never recurses on the value itself: TypeBox's compiled
 * checker walks the schema's (bounded, host-written) shape, and the formatter below walks errors.
 */
import { Kind, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { InvalidArgumentError } from '../errors.ts';
import { escapeText, quoted } from '../escape.ts';

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

function compile<T extends TSchema>(schema: T): TypeCheck<T> {
  let c = compiled.get(schema) as TypeCheck<T> | undefined;
  if (c === undefined) {
    c = TypeCompiler.Compile(schema);
    compiled.set(schema, c as TypeCheck<TSchema>);
  }
  return c;
}

/** Most problems listed in one error message; the rest are counted. */
const MAX_PROBLEMS = 5;

/**
 * Returns `value` typed as the schema's static type, or throws ERR_INVALID_ARGUMENT listing
 * what is wrong. `where` names the thing checked (e.g. `partition spec`, `policy file p.json`).
 */
export function check<T extends TSchema>(schema: T, value: unknown, where: string): Static<T> {
  const checker = compile(schema);
  if (checker.Check(value)) return value as Static<T>;
  throw new InvalidArgumentError(`${where}: ${problems(checker, value).join('; ')}`);
}

/** The problems with `value`, one human sentence each (empty when it is valid). */
export function explain(schema: TSchema, value: unknown): string[] {
  const checker = compile(schema);
  return checker.Check(value) ? [] : problems(checker, value);
}

function problems(checker: TypeCheck<TSchema>, value: unknown): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  let more = 0;
  for (const error of checker.Errors(value)) {
    // A missing required key is also reported as "expected …, got nothing": the first says it.
    // The root itself missing (an argument not given) has only that report: it is kept.
    if (error.value === undefined && error.path !== '' && error.type !== ValueErrorType.ObjectRequiredProperty) continue;
    for (const line of describe(error)) {
      if (seen.has(line)) continue;
      seen.add(line);
      if (out.length < MAX_PROBLEMS) out.push(line);
      else more++;
    }
  }
  if (out.length === 0) out.push('does not match its schema');
  if (more > 0) out.push(`and ${more} more problem${more === 1 ? '' : 's'}`);
  return out;
}

/** `/devices/console/0` → `devices.console[0]`; the root is `(root)`. */
export function formatPath(pointer: string): string {
  if (pointer === '') return '(root)';
  let out = '';
  for (const raw of pointer.slice(1).split('/')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^(0|[1-9][0-9]*)$/.test(part)) out += `[${part}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

function lastSegment(pointer: string): string {
  return pointer.slice(pointer.lastIndexOf('/') + 1).replace(/~1/g, '/').replace(/~0/g, '~');
}

function describe(error: ValueError): string[] {
  const at = formatPath(error.path);
  const s = error.schema;
  switch (error.type) {
    case ValueErrorType.ObjectAdditionalProperties: {
      // TypeBox reports one error per unknown key, with the key as the path's last segment.
      const known = Object.keys((s as { properties?: Record<string, unknown> }).properties ?? {});
      // A record (names → values) refuses a name that does not match its key pattern: say the pattern.
      const patterns = Object.keys((s as { patternProperties?: Record<string, unknown> }).patternProperties ?? {});
      if (known.length === 0 && patterns.length === 1) return [`${at}: unknown key (a key here must match ${patterns[0]})`];
      const key = lastSegment(error.path);
      const near = nearest(key, known);
      return [`${at}: unknown key${near ? `; did you mean ${near}?` : known.length > 0 ? ` (known: ${known.join(', ')})` : ''}`];
    }
    case ValueErrorType.ObjectRequiredProperty:
      return [`${at}: is required`];
    case ValueErrorType.ObjectMaxProperties:
      return [`${at}: expected ${expects(s)}, got an object of ${isPlainObject(error.value) ? Object.keys(error.value).length : 'more'} keys`];
    case ValueErrorType.Union: {
      // A union of an object shape and something else (`true | { ... }`): when an object was
      // given, what is wrong inside it says more than "expected boolean or object".
      const branches = (s as { anyOf?: TSchema[] }).anyOf ?? [];
      const v = error.value;
      // An object (or an array) given to a union with one object (array) branch: what is wrong
      // inside it says more than "expected a boolean or an object".
      const shape = isPlainObject(v) ? 'Object' : Array.isArray(v) ? 'Array' : null;
      if (shape !== null) {
        const matching = error.errors.filter((_, i) => branches[i] !== undefined && (branches[i]![Kind] === shape || (shape === 'Object' && branches[i]![Kind] === 'Record')));
        if (matching.length === 1) {
          const inner = [...matching[0]!].filter((e) => e.value !== undefined || e.type === ValueErrorType.ObjectRequiredProperty).flatMap(describe);
          if (inner.length > 0) return inner;
        }
      }
      return [`${at}: expected ${expects(s)}, got ${given(v)}`];
    }
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.IntegerExclusiveMinimum:
    case ValueErrorType.IntegerExclusiveMaximum:
    case ValueErrorType.NumberExclusiveMinimum:
    case ValueErrorType.NumberExclusiveMaximum:
    case ValueErrorType.Integer:
    case ValueErrorType.Number:
      return [`${at}: expected ${expects(s)}, got ${given(error.value)}`];
    case ValueErrorType.StringMinLength:
    case ValueErrorType.StringMaxLength:
    case ValueErrorType.StringPattern:
    case ValueErrorType.StringFormat:
    case ValueErrorType.ArrayMinItems:
    case ValueErrorType.ArrayMaxItems:
      return [`${at}: expected ${expects(s)}, got ${given(error.value)}`];
    default:
      return [`${at}: expected ${expects(s)}, got ${given(error.value)}`];
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) && !(v instanceof ArrayBuffer);
}

/** What a schema accepts, in words: `an integer from 1 to 65536`, `'never' or 'on-failure'`. */
export function expects(schema: TSchema): string {
  // A schema may say what it expects in words: `description: 'expects: …'` (host/mgmt uses this).
  if (typeof schema.description === 'string' && schema.description.startsWith('expects: ')) return schema.description.slice(9);
  const k = schema[Kind] as string | undefined;
  // A title says what a pattern or a union means better than the pattern does.
  if (typeof schema.title === 'string' && (k === 'String' || k === 'Union' || k === 'Integer' || k === 'Number')) return schema.title;
  const range = (unit: string): string => {
    const lo = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? `more than ${schema.exclusiveMinimum}` : undefined);
    const hi = schema.maximum ?? (schema.exclusiveMaximum !== undefined ? `less than ${schema.exclusiveMaximum}` : undefined);
    if (typeof lo === 'number' && typeof hi === 'number') return `${unit} from ${lo} to ${hi}`;
    if (typeof lo === 'number') return `${unit} of at least ${lo}`;
    if (typeof hi === 'number') return `${unit} of at most ${hi}`;
    if (lo !== undefined && hi !== undefined) return `${unit} ${lo} and ${hi}`;
    return unit + (lo !== undefined ? ` ${lo}` : hi !== undefined ? ` ${hi}` : '');
  };
  switch (k) {
    case 'Integer':
      return range('an integer');
    case 'Number':
      return range('a number');
    case 'Boolean':
      return 'a boolean';
    case 'Null':
      return 'null';
    case 'Literal':
      return JSON.stringify(schema.const);
    case 'String': {
      if (typeof schema.pattern === 'string') return `a string matching ${schema.pattern}`;
      const lo = schema.minLength as number | undefined;
      const hi = schema.maxLength as number | undefined;
      if (lo !== undefined && hi !== undefined) return `a string of ${lo} to ${hi} characters`;
      if (lo !== undefined) return lo === 1 ? 'a non-empty string' : `a string of at least ${lo} characters`;
      if (hi !== undefined) return `a string of at most ${hi} characters`;
      return 'a string';
    }
    case 'Array': {
      const hi = schema.maxItems as number | undefined;
      const item = schema.items ? expects(schema.items as TSchema) : 'anything';
      const simple: Record<string, string> = { 'a string': 'strings', 'a number': 'numbers', 'an integer': 'integers', 'a boolean': 'booleans', 'an object': 'objects' };
      const items = simple[item] !== undefined ? ` of ${simple[item]}` : `, each item ${item}`;
      const lo = typeof schema.minItems === 'number' && schema.minItems > 0 ? (schema.minItems as number) : undefined;
      const count = lo !== undefined && hi !== undefined ? `${lo} to ${hi}` : lo !== undefined ? `at least ${lo}` : hi !== undefined ? `at most ${hi}` : null;
      return count !== null ? `an array of ${count} items${items.replace(/^ of/, ':')}` : `an array${items}`;
    }
    case 'Object':
    case 'Record': {
      const hi = schema.maxProperties as number | undefined;
      return hi !== undefined ? `an object of at most ${hi} keys` : 'an object';
    }
    case 'Uint8Array': {
      const lo = schema.minByteLength as number | undefined;
      const hi = schema.maxByteLength as number | undefined;
      if (lo !== undefined && lo === hi) return `a Uint8Array of ${lo} bytes`;
      if (lo !== undefined && hi !== undefined) return `a Uint8Array of ${lo} to ${hi} bytes`;
      return 'a Uint8Array';
    }
    case 'Union': {
      const parts = ((schema.anyOf ?? []) as TSchema[]).map(expects);
      return parts.length <= 2 ? parts.join(' or ') : `${parts.slice(0, -1).join(', ')} or ${parts.at(-1)}`;
    }
    default:
      return typeof schema.title === 'string' ? schema.title : 'a valid value';
  }
}

/**
 * A path argument of a public entry point that reads or opens something: a non-empty string (with
 * `url`, a URL too). Anything else is ERR_INVALID_ARGUMENT naming the argument and what was given
 * (`loadManifest: file: expected a path (a non-empty string) or a URL, got the number 5`): Node
 * took 5 as the file '5' (ENOENT) or threw its own untyped TypeError.
 */
export function checkPathArgument(v: unknown, what: string, options: { url?: boolean } = {}): void {
  if (typeof v === 'string' && v.length > 0) return;
  if (options.url === true && v instanceof URL) return;
  throw new InvalidArgumentError(`${what}: expected a path (a non-empty string)${options.url === true ? ' or a URL' : ''}, got ${given(v)}`);
}

/** A bytes argument of a public entry point: a Uint8Array (a Buffer is one), else ERR_INVALID_ARGUMENT naming it. */
export function checkBytesArgument(v: unknown, what: string): void {
  if (!(v instanceof Uint8Array)) throw new InvalidArgumentError(`${what}: expected a Uint8Array, got ${given(v)}`);
}

/** The given value in words: its type (so `'16'` shows it was a string) and its value when short. */
export function given(v: unknown): string {
  return typeof v === 'string' ? `the string ${quoted(v, 40)}` : quoted(v);
}

/**
 * For an option object checked by hand rather than by a schema: a key of `value` that is not in
 * `known` is ERR_INVALID_ARGUMENT worded as the schema words one (`<where>: <key>: unknown key;
 * did you mean <nearest>?`). A misspelt option must not leave its default in force unnoticed.
 */
export function refuseUnknownKeys(value: object, known: readonly string[], where: string): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const near = nearest(key, known);
    throw new InvalidArgumentError(`${where}: ${escapeText(key)}: unknown key${near !== null ? `; did you mean ${near}?` : ''}`);
  }
}

/** The known key closest to `key` by edit distance, if it is close enough to be a likely typo. */
export function nearest(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  const lower = key.toLowerCase();
  for (const k of known) {
    const d = k.toLowerCase() === lower ? 0 : distance(lower, k.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = k;
    }
  }
  // A prefix or suffix (linesPerSec → linesPerSecond) is also a near miss.
  if (best !== null && bestDistance <= Math.max(2, Math.floor(key.length / 3))) return best;
  const affix = known.find((k) => k.length > 3 && key.length > 3 && (k.toLowerCase().startsWith(lower) || lower.startsWith(k.toLowerCase())));
  return affix ?? null;
}

/** Levenshtein distance, iterative with two rows; keys are short (bounded by the caller's input). */
function distance(a: string, b: string): number {
  if (a.length > 256 || b.length > 256) return Infinity;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * Refuses a JSON text (already parsed: valid JSON) with a key given twice in one object:
 * ERR_INVALID_ARGUMENT `<where>: <object>: key "<key>" is given twice`. Every JSON document the
 * host takes from outside goes through it: the policy file, the management API's bodies, the
 * host's config files (rbac.json, policy.json, declarations) and token files.
 */
export function refuseDuplicateKeys(text: string, where: string): void {
  const twice = duplicateJsonKey(text);
  if (twice !== null) throw new InvalidArgumentError(`${where}: ${twice.path === '' ? '' : `${formatPath(twice.path)}: `}key ${quoted(twice.key)} is given twice`);
}

/**
 * The first key given twice in one object of a JSON text (`JSON.parse` silently keeps the last,
 * so a reader of the file and the program would see different values): the JSON pointer of its
 * object (`formatPath` prints it) and the key; null when there is none. `text` must already be valid JSON. One pass with an explicit stack, never
 * recursion: the nesting of the text is the caller's.
 */
export function duplicateJsonKey(text: string): { path: string; key: string } | null {
  // Per open container: the keys seen (null for an array), its path, and the array index.
  const frames: { keys: Set<string> | null; path: string; index: number; last: string }[] = [];
  let expectKey = false;
  const childPath = (): string => {
    const top = frames[frames.length - 1];
    if (top === undefined) return '';
    return `${top.path}/${top.keys === null ? top.index : top.last.replace(/~/g, '~0').replace(/\//g, '~1')}`;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      // The closing quote: the next one after an even run of backslashes (indexOf, not a loop per
      // character: a management API body may hold a module of tens of MiB in one string).
      let j = i;
      for (;;) {
        j = text.indexOf('"', j + 1);
        if (j < 0) return null; // not JSON (the caller's to refuse): no endless loop
        let k = j - 1;
        while (text.charCodeAt(k) === 0x5c /* \ */) k--;
        if ((j - k) % 2 === 1) break;
      }
      const top = frames[frames.length - 1];
      if (expectKey && top !== undefined && top.keys !== null) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return { path: top.path, key };
        top.keys.add(key);
        top.last = key;
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const path = childPath();
      frames.push({ keys: c === 0x7b ? new Set() : null, path, index: 0, last: '' });
      expectKey = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      frames.pop();
    } else if (c === 0x2c /* , */) {
      const top = frames[frames.length - 1]!;
      if (top.keys === null) top.index++;
      else expectKey = true;
    }
  }
  return null;
}
