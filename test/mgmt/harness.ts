/**
 * A real management server for tests: `serve()` on 127.0.0.1, a free port, TLS with a fresh
 * local CA, a temporary config directory, and the host's own durable audit log, which the test
 * reads back (`records()`) as `/audit` does.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AuditRecord } from '../../host/mgmt/audit.ts';
import { Client } from '../../host/mgmt/client.ts';
import { serve, type RunningHost, type ServeOptions } from '../../host/mgmt/serve.ts';
import { guest } from '../helpers.ts';

export interface Harness {
  running: RunningHost;
  /** Every record of the host's audit log so far (the batch is flushed first), oldest first. */
  records(): Promise<AuditRecord[]>;
  config: string;
  /** A token with `role` at `scope` (made through the store, like `wasmvisor token create`). */
  token(role: string, scope: string, name?: string, lifetimeMs?: number | null): Promise<{ token: string; id: string }>;
  client(token?: string, extra?: Partial<ConstructorParameters<typeof Client>[0]>): Client;
  close(): Promise<void>;
}

export function tempDir(prefix = 'wv-mgmt-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function startHost(options: Partial<ServeOptions> & { rbac?: unknown } = {}): Promise<Harness> {
  const config = options.config ?? tempDir();
  if (options.rbac !== undefined) writeFileSync(path.join(config, 'rbac.json'), JSON.stringify(options.rbac));
  const running = await serve({ tlsSelfSigned: true, port: 0, log: () => {}, ...options, config });
  const ca = readFileSync(running.caFile!, 'utf8');
  return {
    running,
    records: () => running.audit.query({ limit: Number.MAX_SAFE_INTEGER }),
    config,
    async token(role, scope, name = `t-${role.toLowerCase()}`, lifetimeMs = 3_600_000) {
      const { token, record } = await running.tokens.create({ name, role, scope, lifetimeMs, createdBy: 'test' });
      return { token, id: record.id };
    },
    client(token, extra = {}) {
      return new Client({ url: running.url, ca, ...(token !== undefined ? { token } : {}), ...extra });
    },
    close: () => running.close(),
  };
}

/** A host with a token of the Owner role at `/` named `owner`: most test files' fixture (close `h` in afterAll). */
export async function startOwnedHost(): Promise<{ h: Harness; owner: string }> {
  const h = await startHost();
  return { h, owner: (await h.token('Owner', '/', 'owner')).token };
}

/** A create body for a built guest. */
export function createBody(name: string, guestName: string, extra: Record<string, unknown> = {}, spec: Record<string, unknown> = {}) {
  return { spec: { name, ...spec }, module: readFileSync(guest(guestName)).toString('base64'), ...extra };
}
