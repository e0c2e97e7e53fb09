/**
 * API tokens: bearer secrets for principals `token:<name>`, each carrying one role assignment.
 *
 * A token is `wvt_<id>_<secret>`: `id` is 16 hex digits (it names the record, and is not secret),
 * `secret` is 256 random bits in base64url (43 characters). It is shown once, when created; the
 * store keeps only SHA-256(secret), one file per token (`<config>/tokens/<id>.json`, mode 0600,
 * written by rename so a reader never sees half a file). Verification looks the record up by id
 * and compares digests with `crypto.timingSafeEqual`, so the time taken does not depend on how
 * much of a guessed secret is right. Expiry and revocation are checked on every use, and the
 * store tells its listeners at once when a token is revoked (by this process, or by another one
 * writing the directory: it watches it), so open streams can be cut.
 */
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { readdir, rename, writeFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import { check, refuseDuplicateKeys } from '../schema/check.ts';
import { InvalidArgumentError, NotFoundError, UnauthenticatedError } from '../errors.ts';
import { isMissingFile, makeDirsSync, readRegularFile } from '../files.ts';
import { checkScope } from './rbac.ts';
import { quoted } from '../escape.ts';
import { MAX_NAME_LENGTH, NAME_PATTERN } from '../schema/patterns.ts';

/** The token's shape; anything else is refused before a file is read. */
export const TOKEN_PATTERN = /^wvt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
/** Longest value of an Authorization header we look at (a token is 68 characters). */
export const MAX_CREDENTIAL_LENGTH = 256;
/** The longest lifetime a token may be given: 10 years. */
export const MAX_TOKEN_LIFETIME_MS = 3650 * 86_400_000;
/** Largest token file read (one is about 400 bytes). */
export const MAX_TOKEN_FILE_BYTES = 4096;
/** Tokens kept in one store (revoked and expired ones count until removed). */
export const MAX_TOKENS = 10_000;

const ID = /^[0-9a-f]{16}$/;
/** A token's name and a role's name: a partition's pattern (schema/patterns.ts). */
const NAME = new RegExp(NAME_PATTERN);

/**
 * A token file as read back. `role` and `scope` are looser than what `create` writes (a role name,
 * a scope), so a file written before those checks, or by hand, still loads: a role no RBAC
 * configuration defines grants nothing, and `token list` prints such values escaped.
 */
const TokenFile = Type.Object(
  {
    id: Type.String({ pattern: '^[0-9a-f]{16}$' }),
    name: Type.String({ pattern: NAME_PATTERN }),
    role: Type.String({ minLength: 1, maxLength: MAX_NAME_LENGTH }),
    scope: Type.String({ maxLength: 80 }),
    createdAt: Type.String({ maxLength: 40 }),
    expiresAt: Type.Union([Type.String({ maxLength: 40 }), Type.Null()]),
    revokedAt: Type.Union([Type.String({ maxLength: 40 }), Type.Null()]),
    createdBy: Type.String({ maxLength: 200 }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  },
  { additionalProperties: false },
);

/** A stored token, without its secret. */
export interface TokenRecord {
  id: string;
  /** The principal is `token:<name>`; several tokens may share a name (rotation). */
  name: string;
  role: string;
  scope: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  createdBy: string;
  /** SHA-256 (hex) of the secret part. */
  sha256: string;
}

/** What `list` shows: the record without its digest. */
export type TokenInfo = Omit<TokenRecord, 'sha256'> & { status: 'active' | 'expired' | 'revoked' };

export interface CreateTokenOptions {
  name: string;
  role: string;
  scope: string;
  /** Lifetime in ms, or null for a token that does not expire. */
  lifetimeMs: number | null;
  createdBy: string;
}

/** `7d`, `12h`, `30m`, `90s` or `never` → ms (null for never). Bounded by MAX_TOKEN_LIFETIME_MS. */
export function parseLifetime(text: string, where = '--expires'): number | null {
  if (text === 'never') return null;
  const m = /^([1-9][0-9]{0,6})([smhd])$/.exec(text);
  if (!m) throw new InvalidArgumentError(`${where} ${quoted(text)}: expected a duration like 7d, 12h, 30m, 90s, or never`);
  const ms = Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
  if (ms > MAX_TOKEN_LIFETIME_MS) throw new InvalidArgumentError(`${where} ${text} is longer than the most a token may live (3650d)`);
  return ms;
}

/** One-shot `crypto.hash` where node has it (20.12+: about twice as fast), else a Hash object. */
const oneShot = (crypto as { hash?: (alg: string, data: string, encoding: 'buffer') => Buffer }).hash;

function digest(secret: string): Buffer {
  return oneShot ? oneShot('sha256', secret, 'buffer') : crypto.createHash('sha256').update(secret, 'utf8').digest();
}

/** What verification needs of a record, parsed once: its digest's bytes and its expiry in ms. */
interface Parsed {
  digest: Buffer;
  expiresMs: number;
}

/** Compared against when the id is unknown (no record can have it: it is not a SHA-256 of anything we issued). */
const UNKNOWN = crypto.randomBytes(32);

interface TokenStoreEvents {
  /** A token stopped being usable: revoked or removed (expiry is the holder's own timer). */
  revoked: [id: string];
}

/**
 * A token file's text as a record, or ERR_INVALID_ARGUMENT saying why not: not JSON, not the
 * schema, a file name that is not `<id>.json`, or a time that is not a date. A time is checked
 * here because an expiry `Date.parse` cannot read would compare as never reached (NaN): the
 * token would never expire.
 */
export function parseTokenFile(text: string, file: string): TokenRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError(`token file ${file} is not JSON: ${(error as Error).message}`);
  }
  refuseDuplicateKeys(text, `token file ${file}`);
  const record = check(TokenFile, value, `token file ${file}`);
  if (`${record.id}.json` !== file) throw new InvalidArgumentError(`token file ${file} holds token ${record.id}`);
  for (const key of ['createdAt', 'expiresAt', 'revokedAt'] as const) {
    const time = record[key];
    if (time !== null && !Number.isFinite(Date.parse(time))) throw new InvalidArgumentError(`token file ${file}: ${key}: ${quoted(time)} is not a date`);
  }
  return record;
}

export class TokenStore extends EventEmitter<TokenStoreEvents> {
  readonly dir: string;
  private readonly now: () => number;
  private records = new Map<string, TokenRecord>();
  private readonly parsed = new WeakMap<TokenRecord, Parsed>();
  private watcher: FSWatcher | null = null;
  private poll: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> | null = null;
  private again = false;
  /** Loads and writes run one at a time, so a reload never undoes a write made while it read. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(dir: string, options: { now?: () => number } = {}) {
    super();
    this.dir = dir;
    this.now = options.now ?? Date.now;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => {});
    return run;
  }

  /** Reads every token file. Files that do not parse are skipped and reported to `onBadFile`. */
  load(onBadFile: (file: string, why: string) => void = () => {}): Promise<void> {
    return this.exclusive(() => this.loadNow(onBadFile));
  }

  private async loadNow(onBadFile: (file: string, why: string) => void): Promise<void> {
    makeDirsSync(this.dir, 0o700);
    const next = new Map<string, TokenRecord>();
    const files = (await readdir(this.dir)).filter((f) => f.endsWith('.json'));
    for (const file of files.slice(0, MAX_TOKENS)) {
      try {
        // Bounded, and never waiting on a FIFO: the store reloads every second and on each change.
        const text = (await readRegularFile(path.join(this.dir, file), { maxBytes: MAX_TOKEN_FILE_BYTES, what: 'token file', noFollow: true })).toString('utf8');
        const record = parseTokenFile(text, file);
        next.set(record.id, record);
      } catch (error) {
        // A file being replaced by rename may vanish between readdir and the read.
        if (isMissingFile(error)) continue;
        onBadFile(file, error instanceof Error ? error.message : String(error));
      }
    }
    const before = this.records;
    this.records = next;
    for (const [id, old] of before) {
      const now = next.get(id);
      if (old.revokedAt === null && (now === undefined || now.revokedAt !== null)) this.emit('revoked', id);
    }
  }

  /** Re-reads the directory on every change to it (another process creating or revoking tokens), and every second as a backstop. */
  watch(onBadFile?: (file: string, why: string) => void): void {
    if (this.watcher !== null) return;
    const refresh = () => {
      if (this.refreshing) {
        this.again = true;
        return;
      }
      this.refreshing = this.load(onBadFile)
        .catch(() => {})
        .finally(() => {
          this.refreshing = null;
          if (this.again) {
            this.again = false;
            refresh();
          }
        });
    };
    try {
      this.watcher = watch(this.dir, { persistent: false }, refresh);
      this.watcher.on('error', () => {});
    } catch {
      // No inotify: the poll below still notices within a second.
    }
    this.poll = setInterval(refresh, 1000);
    this.poll.unref();
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.poll) clearInterval(this.poll);
    this.poll = null;
  }

  /** Creates a token and returns its secret (shown once) with its record. */
  create(options: CreateTokenOptions): Promise<{ token: string; record: TokenRecord }> {
    return this.exclusive(() => this.createNow(options));
  }

  private async createNow(options: CreateTokenOptions): Promise<{ token: string; record: TokenRecord }> {
    if (!NAME.test(options.name)) {
      throw new InvalidArgumentError(`token name ${quoted(options.name)} is not valid: use 1-${MAX_NAME_LENGTH} letters, digits, '.', '_' or '-'`);
    }
    // A role is a role's name (rbac.json's roles have the same pattern), so never a space or a
    // control character: `token list` prints one per column, and audit reasons embed it.
    if (!NAME.test(options.role)) {
      throw new InvalidArgumentError(`token role ${quoted(options.role)} is not valid: a role name is 1-${MAX_NAME_LENGTH} letters, digits, '.', '_' or '-'`);
    }
    checkScope(options.scope);
    if (this.records.size >= MAX_TOKENS) throw new InvalidArgumentError(`the store holds ${MAX_TOKENS} tokens, the most it may; remove revoked ones first`);
    const id = crypto.randomBytes(8).toString('hex');
    const secret = crypto.randomBytes(32).toString('base64url');
    const now = this.now();
    const record: TokenRecord = {
      id,
      name: options.name,
      role: options.role,
      scope: options.scope,
      createdAt: new Date(now).toISOString(),
      expiresAt: options.lifetimeMs === null ? null : new Date(now + options.lifetimeMs).toISOString(),
      revokedAt: null,
      createdBy: options.createdBy,
      sha256: digest(secret).toString('hex'),
    };
    await this.write(record);
    this.records.set(id, record);
    return { token: `wvt_${id}_${secret}`, record };
  }

  /** Revokes a token by id: it fails from now on, everywhere. Idempotent. */
  async revoke(id: string): Promise<TokenRecord> {
    return (await this.revokeOnce(id)).record;
  }

  /**
   * Revokes a token by id, and says whether this call revoked it (`changed`) or it was revoked
   * already (its `revokedAt` is then the earlier time): decided in the store's turn, so of two
   * revocations of one token exactly one is the one that changed it.
   */
  revokeOnce(id: string): Promise<{ record: TokenRecord; changed: boolean }> {
    return this.exclusive(() => this.revokeNow(id));
  }

  private async revokeNow(id: string): Promise<{ record: TokenRecord; changed: boolean }> {
    const record = this.get(id);
    if (record.revokedAt !== null) return { record, changed: false };
    const revoked = { ...record, revokedAt: new Date(this.now()).toISOString() };
    await this.write(revoked);
    this.records.set(id, revoked);
    this.emit('revoked', id);
    return { record: revoked, changed: true };
  }

  /** Removes a revoked or expired token's file. */
  remove(id: string): Promise<void> {
    return this.exclusive(() => this.removeNow(id));
  }

  private async removeNow(id: string): Promise<void> {
    const record = this.get(id);
    if (this.status(record) === 'active') throw new InvalidArgumentError(`token ${id} is active: revoke it first`);
    await unlink(path.join(this.dir, `${id}.json`)).catch(() => {});
    this.records.delete(id);
  }

  get(id: string): TokenRecord {
    const record = ID.test(id) ? this.records.get(id) : undefined;
    if (record === undefined) throw new NotFoundError(`no token with id ${quoted(id)}`);
    return record;
  }

  status(record: TokenRecord): TokenInfo['status'] {
    if (record.revokedAt !== null) return 'revoked';
    if (record.expiresAt !== null && Date.parse(record.expiresAt) <= this.now()) return 'expired';
    return 'active';
  }

  list(): TokenInfo[] {
    return [...this.records.values()]
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
      .map(({ sha256: _, ...rest }) => ({ ...rest, status: this.status(rest as TokenRecord) }));
  }

  /**
   * The record of a presented token, or ERR_UNAUTHENTICATED saying why not (malformed, unknown,
   * wrong secret, expired, revoked). The digest comparison is constant-time.
   */
  verify(token: string): TokenRecord {
    const m = token.length <= MAX_CREDENTIAL_LENGTH ? TOKEN_PATTERN.exec(token) : null;
    if (m === null) throw new UnauthenticatedError('the token is malformed (expected wvt_<16 hex>_<43 base64url>)');
    const record = this.records.get(m[1]!);
    // An unknown id still costs one digest and one comparison, so both failures take about as long.
    const presented = digest(m[2]!);
    let p = record ? this.parsed.get(record) : undefined;
    if (record && p === undefined) {
      p = { digest: Buffer.from(record.sha256, 'hex'), expiresMs: record.expiresAt === null ? Infinity : Date.parse(record.expiresAt) };
      this.parsed.set(record, p);
    }
    if (!crypto.timingSafeEqual(presented, p ? p.digest : UNKNOWN) || record === undefined) throw new UnauthenticatedError('the token is not valid');
    if (record.revokedAt !== null) throw new UnauthenticatedError('the token is revoked');
    if (p!.expiresMs <= this.now()) throw new UnauthenticatedError('the token is expired');
    return record;
  }

  private async write(record: TokenRecord): Promise<void> {
    makeDirsSync(this.dir, 0o700);
    const file = path.join(this.dir, `${record.id}.json`);
    const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, JSON.stringify(record, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
    await rename(tmp, file);
  }
}
