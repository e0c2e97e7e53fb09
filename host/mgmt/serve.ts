/**
 * `wasmvisor serve`: the daemon. Takes the config directory's lock, opens the audit sink, brings
 * back the declared partitions, and serves the API until SIGTERM or SIGINT, then shuts down in
 * order: stop listening (streams end) → stop partitions (disks flushed and closed) → close the
 * audit log → release the lock.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors.ts';
import { MemoryAuditLog, type AuditSink } from './audit.ts';
import { ConfigDir } from './config.ts';
import { ManagedHost } from './host.ts';
import { Rbac } from './rbac.ts';
import { ManagementServer, type AttestationProvider, type ServerLimits } from './server.ts';
import { ensureSelfSigned, fingerprint } from './tls.ts';
import { TokenStore } from './tokens.ts';
import type { HypervisorOptions } from '../hypervisor.ts';

export interface ServeOptions {
  /** The config directory (created if missing). */
  config: string;
  /** Address to bind. Default 127.0.0.1. Anything but loopback needs TLS. */
  bind?: string;
  /** Port; 0 picks a free one. Default 8443. */
  port?: number;
  /** TLS from files (PEM). */
  tlsCert?: string;
  tlsKey?: string;
  /** Create (or reuse) a local CA and a server certificate in `<config>/tls`. */
  tlsSelfSigned?: boolean;
  /** Extra DNS names or addresses for the self-signed certificate. */
  tlsNames?: string[];
  /** CA (PEM file) whose client certificates are accepted (mutual TLS). With --tls-self-signed: the local CA by default. */
  clientCa?: string;
  limits?: Partial<ServerLimits>;
  hypervisor?: Omit<HypervisorOptions, 'dataDir'>;
  /** The audit sink; default: host/security's log when available, else an in-memory log. */
  audit?: AuditSink;
  attestation?: AttestationProvider | null;
  /** Where the daemon reports (default: stderr). */
  log?: (line: string) => void;
  /** Only for the bench's baseline: see ServerOptions.auth. */
  auth?: boolean;
}

export interface RunningHost {
  url: string;
  /** SHA-256 fingerprints: the server certificate's and (self-signed) the local CA's. */
  fingerprint: string | null;
  caFingerprint: string | null;
  /** The CA file a client can verify with (self-signed), or null. */
  caFile: string | null;
  host: ManagedHost;
  server: ManagementServer;
  tokens: TokenStore;
  audit: AuditSink;
  /** Shuts down in order (see the file comment). Idempotent. */
  close(): Promise<void>;
}

export function isLoopback(address: string): boolean {
  if (address === 'localhost') return true;
  if (isIP(address) === 4) return address.startsWith('127.');
  return address === '::1' || address === '0:0:0:0:0:0:0:1';
}

/** Starts a host; see RunningHost. */
export async function serve(options: ServeOptions): Promise<RunningHost> {
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const bind = options.bind ?? '127.0.0.1';
  const port = options.port ?? 8443;
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) throw new InvalidArgumentError('--tls-cert and --tls-key go together');
  if (options.tlsSelfSigned && options.tlsCert !== undefined) throw new InvalidArgumentError('--tls-self-signed and --tls-cert are exclusive');
  const tlsWanted = options.tlsSelfSigned === true || options.tlsCert !== undefined;
  if (!tlsWanted && !isLoopback(bind)) throw new InvalidArgumentError(`refusing to serve on ${bind} without TLS: give --tls-cert/--tls-key or --tls-self-signed, or bind a loopback address`);
  if (!tlsWanted && options.clientCa !== undefined) throw new InvalidArgumentError('--client-ca needs TLS');

  const config = new ConfigDir(options.config);
  config.ensure();
  config.lock();
  const cleanup: (() => Promise<void> | void)[] = [() => config.unlock()];
  const unwind = async () => {
    for (const f of cleanup.reverse()) await Promise.resolve(f()).catch(() => {});
  };
  try {
    let tls: { cert: string; key: string; clientCa: string | null } | null = null;
    let caFingerprint: string | null = null;
    let caFile: string | null = null;
    if (options.tlsSelfSigned) {
      const made = await ensureSelfSigned(config.tlsDir, options.tlsNames ?? (isLoopback(bind) || bind === '0.0.0.0' || bind === '::' ? [] : [bind]));
      const clientCa = options.clientCa !== undefined ? await readFile(options.clientCa, 'utf8') : made.ca;
      tls = { cert: made.cert, key: made.key, clientCa };
      caFingerprint = fingerprint(made.ca);
      caFile = config.path('tls', 'ca.crt');
    } else if (options.tlsCert !== undefined) {
      const [cert, key, clientCa] = await Promise.all([
        readFile(options.tlsCert, 'utf8'),
        readFile(options.tlsKey!, 'utf8'),
        options.clientCa !== undefined ? readFile(options.clientCa, 'utf8') : Promise.resolve(null),
      ]).catch((error: Error) => {
        throw new InvalidArgumentError(`cannot read the TLS files: ${error.message}`);
      });
      tls = { cert, key, clientCa };
    }

    const audit = options.audit ?? new MemoryAuditLog();
    cleanup.push(() => audit.close());
    const rbac = new Rbac(await config.readRbac());
    const tokens = new TokenStore(config.tokensDir);
    await tokens.load((file, why) => log(`wasmvisor serve: token file ${file} ignored: ${why}`));
    tokens.watch((file, why) => log(`wasmvisor serve: token file ${file} ignored: ${why}`));
    cleanup.push(() => tokens.close());
    await audit.record({ actor: 'host', action: 'host.start', target: '/', outcome: 'success', reason: `pid ${process.pid}, config ${config.root}` });
    const host = await ManagedHost.open({ config, audit, log, ...(options.hypervisor ? { hypervisor: options.hypervisor } : {}) });
    cleanup.push(() => host.close());
    const server = new ManagementServer({
      host,
      tokens,
      rbac,
      audit,
      tls,
      log,
      ...(options.limits ? { limits: options.limits } : {}),
      attestation: options.attestation ?? null,
      ...(options.auth === false ? { auth: false } : {}),
    });
    cleanup.push(() => server.close());
    await server.listen(bind, port);
    let closing: Promise<void> | null = null;
    return {
      url: server.url,
      fingerprint: tls ? fingerprint(tls.cert) : null,
      caFingerprint,
      caFile,
      host,
      server,
      tokens,
      audit,
      close() {
        closing ??= (async () => {
          await audit.record({ actor: 'host', action: 'host.stop', target: '/', outcome: 'success', reason: 'shutdown' });
          await unwind();
        })();
        return closing;
      },
    };
  } catch (error) {
    await unwind();
    throw error;
  }
}
