/**
 * `wasmvisor serve`: the daemon. Takes the config directory's lock, opens the audit log (once:
 * the API and the Hypervisor write the same chain), brings back the declared partitions, and
 * serves the API until SIGTERM or SIGINT, then shuts down in order: stop listening (streams end)
 * → stop partitions (disks flushed and closed) → close the audit log → release the lock.
 */
import { isIP } from 'node:net';
import { InvalidArgumentError, InvalidStateError } from '../errors.ts';
import { quoted } from '../escape.ts';
import { readRegularFile } from '../files.ts';
import { newestAuditRecords } from '../security/audit.ts';
import { openAuditLog } from '../security/monitor.ts';
import { durableSink, type AuditSink } from './audit.ts';
import { ConfigDir, removeDirs } from './config.ts';
import { ManagedHost } from './host.ts';
import { Rbac } from './rbac.ts';
import { ManagementServer, type ServerLimits } from './server.ts';
import type { RouteDef } from './routes.ts';
import { MAX_TLS_FILE_BYTES } from '../limits/sizes.ts';
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
  /**
   * The audit sink, given to the Hypervisor too. Default: host/security's durable log in
   * `<config>/data/audit` (keys in `<config>/data/keys`; `wasmvisor audit verify` checks it).
   */
  audit?: AuditSink;
  /** Where the daemon reports (default: stderr). */
  log?: (line: string) => void;
  /** Only for the bench's baseline: see ServerOptions.auth. */
  auth?: boolean;
  /** More routes beside the API's (the dashboard: host/labs/dashboard.ts). */
  extension?: ServeExtension;
}

/**
 * What a feature served beside the API brings (the dashboard): a wrapper over the audit sink
 * (to see every record as it is written), routes built once the host is open, and its own
 * shutdown (the first step of the host's).
 */
export interface ServeExtension {
  wrapAudit?(sink: AuditSink): AuditSink;
  routes(deps: { host: ManagedHost; server: ManagementServer; audit: AuditSink }): RouteDef[];
  close?(): Promise<void> | void;
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

/** A TLS file named on the command line: ERR_INVALID_ARGUMENT naming it when it is not a readable regular file within the bound. */
async function readTlsFile(file: string): Promise<string> {
  return (await readRegularFile(file, { maxBytes: MAX_TLS_FILE_BYTES, what: 'TLS file' })).toString('utf8');
}

export function isLoopback(address: string): boolean {
  if (address === 'localhost') return true;
  if (isIP(address) === 4) return address.startsWith('127.');
  return address === '::1' || address === '0:0:0:0:0:0:0:1';
}

/** A DNS name for a certificate: dot-separated labels of 1-63 letters, digits and inner '-', the first possibly '*'; at most 253 characters. */
const DNS_NAME = /^(?=.{1,253}$)(\*(?=\.)|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * Listens, a refusal of the address named by the option that gave it: a port in use is the
 * state of the machine (ERR_INVALID_STATE, exit 1, as a second serve on a config directory), an
 * address that is not this host's or does not resolve is a bad --bind (ERR_INVALID_ARGUMENT).
 * They were ERR_INTERNAL, "a bug: please report it".
 */
async function listenOn(server: ManagementServer, bind: string, port: number): Promise<void> {
  try {
    await server.listen(bind, port);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const at = `${isIP(bind) === 6 ? `[${bind}]` : bind}:${port}`;
    if (code === 'EADDRINUSE') throw new InvalidStateError(`--port ${port}: ${at} is already in use (another process listens there; --port 0 picks a free port)`);
    if (code === 'EACCES') throw new InvalidArgumentError(`--port ${port}: this process may not listen on ${at} (a port under 1024 needs privileges)`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_FAIL') {
      throw new InvalidArgumentError(`--bind ${quoted(bind)}: ${code === 'EADDRNOTAVAIL' ? 'not an address of this host' : 'the name does not resolve'} (${code})`);
    }
    throw error;
  }
}

/** Starts a host; see RunningHost. */
export async function serve(options: ServeOptions): Promise<RunningHost> {
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const bind = options.bind ?? '127.0.0.1';
  const port = options.port ?? 8443;
  // An empty address is not a default: listen('') takes every interface (an unset "$ADDR" would
  // put the API on all of them), and one with spaces is no address at all.
  if (typeof bind !== 'string' || bind === '' || bind.trim() !== bind) {
    throw new InvalidArgumentError(`--bind: expected an address to listen on (an IP address or a host name), got ${quoted(String(bind))}`);
  }
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) throw new InvalidArgumentError('--tls-cert and --tls-key go together');
  if (options.tlsSelfSigned && options.tlsCert !== undefined) throw new InvalidArgumentError('--tls-self-signed and --tls-cert are exclusive');
  const tlsWanted = options.tlsSelfSigned === true || options.tlsCert !== undefined;
  if (!tlsWanted && !isLoopback(bind)) throw new InvalidArgumentError(`refusing to serve on ${bind} without TLS: give --tls-cert/--tls-key or --tls-self-signed, or bind a loopback address`);
  if (!tlsWanted && options.clientCa !== undefined) throw new InvalidArgumentError('--client-ca needs TLS');
  // The names go into the certificate --tls-self-signed makes; without it they were ignored, and a
  // host meant to serve TLS for them served plain HTTP.
  if (options.tlsNames !== undefined && !options.tlsSelfSigned) throw new InvalidArgumentError('--tls-name goes with --tls-self-signed (the names of the certificate it makes)');
  // Each name becomes a subjectAltName of the certificate: an empty or malformed one made an
  // entry no client can match ('DNS:').
  for (const name of options.tlsNames ?? []) {
    if (typeof name !== 'string' || (isIP(name) === 0 && !DNS_NAME.test(name))) {
      throw new InvalidArgumentError(`--tls-name: expected a host name (letters, digits and '-' in dot-separated labels, the first may be '*') or an IP address, got ${quoted(String(name))}`);
    }
  }

  // The files named on the command line are read before the config directory is touched: a
  // missing or unreadable one is refused with nothing made.
  const [givenCert, givenKey, givenClientCa] = await Promise.all([
    options.tlsCert !== undefined ? readTlsFile(options.tlsCert) : null,
    options.tlsKey !== undefined ? readTlsFile(options.tlsKey) : null,
    options.clientCa !== undefined ? readTlsFile(options.clientCa) : null,
  ]);

  const config = new ConfigDir(options.config);
  // The folders this call made: removed if serve fails.
  const made = config.ensure();
  const cleanup: (() => Promise<void> | void)[] = [];
  const unwind = async () => {
    for (const f of cleanup.reverse()) await Promise.resolve(f()).catch(() => {});
  };
  try {
    config.lock();
    let tls: { cert: string; key: string; clientCa: string | null } | null = null;
    let caFingerprint: string | null = null;
    let caFile: string | null = null;
    if (options.tlsSelfSigned) {
      const own = await ensureSelfSigned(config.tlsDir, options.tlsNames ?? (isLoopback(bind) || bind === '0.0.0.0' || bind === '::' ? [] : [bind]));
      tls = { cert: own.cert, key: own.key, clientCa: givenClientCa ?? own.ca };
      caFingerprint = fingerprint(own.ca);
      caFile = config.path('tls', 'ca.crt');
    } else if (givenCert !== null && givenKey !== null) {
      tls = { cert: givenCert, key: givenKey, clientCa: givenClientCa };
    }

    // One log for the API and the Hypervisor: both write the same chain, never the directory separately.
    let sink: AuditSink;
    let created: string[] = [];
    if (options.audit !== undefined) {
      sink = options.audit;
    } else {
      const opened = openAuditLog({ dataDir: config.dataDir, actor: 'host' });
      sink = durableSink(opened.log, (match, limit, since) => newestAuditRecords(opened.dir, match, limit, since));
      created = opened.created;
    }
    // An extension (the labs dashboard) may watch what is written; the chain stays the sink's.
    const audit = options.extension?.wrapAudit ? options.extension.wrapAudit(sink) : sink;
    cleanup.push(() => audit.close());
    for (const file of created) audit.note({ actor: 'host', action: 'key.create', target: file, outcome: 'success', reason: 'created on first use' });
    const rbac = new Rbac(await config.readRbac());
    const tokens = new TokenStore(config.tokensDir);
    await tokens.load((file, why) => log(`wasmvisor serve: token file ${file} ignored: ${why}`));
    tokens.watch((file, why) => log(`wasmvisor serve: token file ${file} ignored: ${why}`));
    cleanup.push(() => tokens.close());
    await audit.record({ actor: 'host', action: 'host.start', target: '/', outcome: 'success', reason: `pid ${process.pid}, config ${config.root}` });
    const host = await ManagedHost.open({ config, audit, log, hypervisor: { ...options.hypervisor, audit, actor: 'host' } });
    cleanup.push(() => host.close());
    const server = new ManagementServer({
      host,
      tokens,
      rbac,
      audit,
      tls,
      log,
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.auth === false ? { auth: false } : {}),
    });
    cleanup.push(() => server.close());
    if (options.extension) {
      server.addRoutes(options.extension.routes({ host, server, audit }));
      const ext = options.extension;
      if (ext.close) cleanup.push(() => ext.close!());
    }
    await listenOn(server, bind, port);
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
          config.unlock();
        })();
        return closing;
      },
    };
  } catch (error) {
    await unwind();
    // Nothing of a failed start is left behind. Only while this call holds the lock: a folder it
    // made but another serve took first (both started on a new path) is that one's now.
    if (config.locked) removeDirs(made);
    config.unlock();
    throw error;
  }
}
