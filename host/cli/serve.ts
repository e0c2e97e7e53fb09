/**
 * `wasmvisor serve [--config dir] [--bind addr] [--port n] [--tls-self-signed | --tls-cert f --tls-key f]
 * [--tls-name name]... [--client-ca f]`: runs a host until SIGTERM or SIGINT (then shuts down in
 * order and exits 0). The first line on stdout is `wasmvisor serve: listening on <url>`.
 */
import { InvalidArgumentError } from '../errors.ts';
import { adopt, loadLabs, loadMgmt } from './mgmt-loader.ts';
import { intOption, usage } from './mgmt-args.ts';
import { badValue } from './options.ts';

export const SERVE_USAGE = `  wasmvisor serve [--config <dir>] [--bind <addr>] [--port <n>] [--tls-self-signed [--tls-name <name>]...]
                  [--tls-cert <file> --tls-key <file>] [--client-ca <file>] [--dashboard]

Run a host: partitions declared in the config directory, managed over an authenticated HTTPS
API (docs/MANAGEMENT.md). Defaults: --config ./wasmvisor-host, --bind 127.0.0.1, --port 8443
(0 picks a free one). Without TLS only a loopback address is served; --dashboard only on loopback.

Exit status: 0 after a graceful shutdown (SIGTERM or SIGINT); 2 bad usage (ERR_INVALID_ARGUMENT);
1 another serve is using the config directory, or --port is in use (ERR_INVALID_STATE); 74 ERR_STORAGE;
70 ERR_INTERNAL.`;

export function serveCommand(argv: string[]): Promise<number> {
  return adopt(() => run(argv));
}

async function run(argv: string[]): Promise<number> {
  const { values } = usage('serve', {
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        config: { type: 'string' },
        bind: { type: 'string' },
        port: { type: 'string' },
        'tls-self-signed': { type: 'boolean' },
        'tls-name': { type: 'string', multiple: true },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'client-ca': { type: 'string' },
        dashboard: { type: 'boolean' },
      },
    },
  );
  // An empty file name (an unset "$CERT") is refused by its flag, as every command's file option
  // is; it read as `cannot read TLS file : ENOENT`, naming neither the flag nor a file.
  for (const flag of ['tls-cert', 'tls-key', 'client-ca'] as const) if (values[flag] === '') throw badValue(`--${flag}`, 'a file', '');
  const labs = values.dashboard ? await loadLabs() : null;
  // The dashboard is a page for this machine: it is served on loopback only (docs/LABS.md).
  // (An empty or padded --bind is serve()'s to refuse, as no address at all.)
  if (labs && values.bind !== undefined && values.bind !== '' && values.bind.trim() === values.bind && !labs.isLoopback(values.bind)) {
    throw new InvalidArgumentError(`--dashboard serves a page on loopback only; --bind ${values.bind} is not a loopback address (reach a remote host's dashboard through an SSH tunnel)`);
  }
  const mgmt = labs ?? (await loadMgmt());
  const running = await mgmt.serve({
    ...(labs ? { extension: new labs.Dashboard({ labs: false }) } : {}),
    config: values.config ?? 'wasmvisor-host',
    ...(values.bind !== undefined ? { bind: values.bind } : {}),
    port: intOption(values.port, 'port', 0, 65535) ?? 8443,
    ...(values['tls-self-signed'] ? { tlsSelfSigned: true } : {}),
    ...(values['tls-name'] ? { tlsNames: values['tls-name'] } : {}),
    ...(values['tls-cert'] !== undefined ? { tlsCert: values['tls-cert'] } : {}),
    ...(values['tls-key'] !== undefined ? { tlsKey: values['tls-key'] } : {}),
    ...(values['client-ca'] !== undefined ? { clientCa: values['client-ca'] } : {}),
  });
  const out: string[] = [`wasmvisor serve: listening on ${running.url}`, `  config       ${running.host.config.root}`];
  if (running.fingerprint) out.push(`  certificate  SHA-256 ${running.fingerprint}  (clients: --fingerprint <this>)`);
  if (running.caFile) out.push(`  local CA     ${running.caFile}  SHA-256 ${running.caFingerprint}  (clients: --ca <this file>)`);
  else if (!running.fingerprint) out.push('  no TLS: plain HTTP on loopback only');
  if (labs) out.push(`  dashboard    ${running.url}/dashboard/  (sign in with a token that has metrics/read at /)`);
  if (running.tokens.list().length === 0) {
    out.push(`  no tokens yet: wasmvisor token create --config ${running.host.config.root} --name admin --role Owner --scope /`);
  }
  if (!running.audit.durable) out.push('  audit: in memory only (this build has no tamper-evident audit log yet)');
  process.stdout.write(out.join('\n') + '\n');
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  process.stderr.write('wasmvisor serve: shutting down\n');
  await running.close();
  process.stderr.write('wasmvisor serve: stopped\n');
  return 0;
}
