/**
 * The CLI as a client of a running host:
 *   wasmvisor --host https://127.0.0.1:8443 --token-file t [--fingerprint <sha256> | --ca <file>]
 *             [--cert <file> --key <file>] <command> ...
 * Commands: ps, run, start, stop, rm, logs [-f], call, metrics, audit, attest, whoami, token.
 * The host's certificate is verified before the token is sent (host/mgmt/client.ts). Errors
 * print as `CODE: message` like every other command; exit statuses as in main.ts, plus 77 for
 * ERR_UNAUTHENTICATED / ERR_ACCESS_DENIED and 69 for ERR_CONNECTION.
 */
import { escapeText, quoted } from '../escape.ts';
import { createReadStream } from 'node:fs';
import { ConnectionError, GuestCallError, InvalidArgumentError } from '../errors.ts';
import { checkClientOptions, Client, errorOf } from '../mgmt/client.ts';
import { MAX_CALL_BYTES } from '../limits/sizes.ts';
import { readRegularFile } from '../files.ts';
import { MAX_MODULE_BYTES, RestartPolicy } from '../mgmt/schemas.ts';
import { MAX_TIMER_MS } from '../schema/kinds.ts';
import { failJson, readAll } from './common.ts';
import { intOption, readOptionFile, usage } from './mgmt-args.ts';
import { badValue, checkPositionals, choice, givenTwice, nameFromFile, needsOption, needsValue, nonEmpty, stringIn, unknownSubcommand } from './options.ts';
import { PartitionSpecSchema } from '../schema/index.ts';
import { AttestQuery } from '../mgmt/schemas.ts';
import { deviceList } from './partition-options.ts';
import { stderr } from './stderr.ts';
import { mgmtAsksJson, TOKEN_SUBCOMMANDS, writeTokenList, type TokenValues } from './token.ts';
import type { TokenInfo } from '../mgmt/tokens.ts';
import { nearest } from '../schema/check.ts';

export const REMOTE_USAGE = `  wasmvisor --host <url> --token-file <file> [--fingerprint <sha256> | --ca <file>] [--cert <file> --key <file>] <command>
    ps [--json]                          the partitions you may read
    run <guest.wasm> [--name <name>] [--reactor] [--restart never|on-failure|always] [--disk <MiB>]
        [--memory <pages>] [--timeout <ms>] [--devices <list>] [--no-start] [-- args]
    start|stop <name>    rm <name> [--wipe]    logs [-f|--follow] [--tail <n>] <name>
    call <name> <export> [--input-file <file>]   (or --input <file>; stdin if neither or '-'; output on stdout)
    metrics [<name>] [--prometheus]    audit [--partition <p>] [--action <a>] [--actor <a>]
        [--outcome <o>] [--since <time>] [--until <time>] [--limit <n>] [--json]
    attest --nonce <hex> (8 to 64 bytes)    whoami
    token create --name <n> --role <r> --scope <s> [--expires <d>] | token list [--json] | token revoke <id>`;

/** The remote run's --restart values: the API's schema's, checked before the request so the refusal names the flag. */
const RESTART_POLICIES: readonly string[] = RestartPolicy.anyOf.map((t) => String(t.const));

/** The remote commands, as the usage lists them. */
const REMOTE_COMMANDS = ['ps', 'run', 'start', 'stop', 'rm', 'logs', 'call', 'metrics', 'audit', 'attest', 'whoami', 'token'];

const GLOBAL = new Set(['--host', '--token-file', '--fingerprint', '--ca', '--cert', '--key']);

/**
 * A remote call's input: the file `--input-file` names (as the local `call` reads it), or the file
 * `--input` names (the remote form documented first, kept: a remote call's input is always a file
 * or stdin, never the flag's text), `-` or neither for stdin. Not both: the caller refuses that
 * with the rest of the command line, before anything is read.
 */
async function remoteCallInput(input: string | undefined, inputFile: string | undefined): Promise<Uint8Array> {
  const flag = inputFile !== undefined ? '--input-file' : '--input';
  const file = inputFile ?? input;
  let bytes: Uint8Array | null;
  try {
    // Read as a stream, bounded: a pipe or a FIFO as it comes, /dev/zero or `yes |` never whole.
    bytes = await readAll(file === undefined || file === '-' ? process.stdin : createReadStream(file), MAX_CALL_BYTES);
  } catch (error) {
    throw new InvalidArgumentError(`${flag}: cannot read ${file === undefined || file === '-' ? 'stdin' : quoted(file)}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (bytes === null) throw new InvalidArgumentError(`the call input is more than ${MAX_CALL_BYTES} bytes; a call takes at most ${MAX_CALL_BYTES}`);
  return bytes;
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
}

/** A verdict's code as the host sent it, when it is one (`ERR_` and capitals); anything else is not trusted as one. */
function verdictCode(code: unknown): string {
  return typeof code === 'string' && /^ERR_[A-Z_]{1,64}$/.test(code) ? code : 'ERR_INTERNAL';
}

function print(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/**
 * The remote commands whose `--json` prints the answer as JSON (ps, audit, token list): any
 * failure of one (a bad command line, a host that cannot be reached or refuses) ends with the
 * error document on stdout as well (common.ts failJson), as the local commands' --json does.
 */
export async function remoteCommand(argv: string[]): Promise<number> {
  try {
    return await remote(argv);
  } catch (error) {
    let i = 0;
    while (i < argv.length && GLOBAL.has(argv[i]!.split('=')[0]!)) i += argv[i]!.includes('=') ? 1 : 2;
    const [command, ...rest] = argv.slice(i);
    const label = command === 'ps' || command === 'audit' ? command : command === 'token' && rest[0] === 'list' ? 'token list' : null;
    if (label === null || !mgmtAsksJson(rest)) throw error;
    return failJson(label, error);
  }
}

async function remote(argv: string[]): Promise<number> {
  // Output piped into `head` and closed early is not an error of ours.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
  });
  const globals: Record<string, string> = {};
  let i = 0;
  while (i < argv.length && GLOBAL.has(argv[i]!.split('=')[0]!)) {
    const [flag, inline] = argv[i]!.includes('=') ? [argv[i]!.slice(0, argv[i]!.indexOf('=')), argv[i]!.slice(argv[i]!.indexOf('=') + 1)] : [argv[i]!, argv[i + 1]];
    if (inline === undefined) throw needsValue(flag, '');
    // An empty value (an unset "$HOST") names nothing: refused by its flag, as every option's.
    if (inline === '') throw badValue(flag, flag === '--host' ? 'a URL (https://<host>:<port>)' : flag === '--fingerprint' ? "a SHA-256 fingerprint (64 hex digits, ':' allowed)" : 'a file', '');
    // Each is given once, as every command's single-valued options (options.ts givenTwice).
    if (Object.hasOwn(globals, flag.slice(2))) throw givenTwice(flag, globals[flag.slice(2)]!, inline, '');
    globals[flag.slice(2)] = inline;
    i += argv[i]!.includes('=') ? 1 : 2;
  }
  const [command, ...rest] = argv.slice(i);
  // `--help` (or -h) as the command or among its options (before a run's `--`): the remote
  // commands' usage, as every other command answers its --help, before anything is read or sent.
  const split = rest.indexOf('--');
  if ([command, ...(split < 0 ? rest : rest.slice(0, split))].some((a) => a === '--help' || a === '-h')) {
    process.stdout.write(`Usage:\n${REMOTE_USAGE}\n\nThe remote commands and their options: docs/MANAGEMENT.md, "The CLI as a client".\n`);
    return 0;
  }
  // An option that is not one of the client's, before the command, is named (not taken for the
  // command, nor reported as the token file it was meant to be).
  if (command !== undefined && command.startsWith('-')) {
    const shown = command.split('=')[0]!;
    const near = nearest(shown.replace(/^-+/, ''), [...GLOBAL].map((g) => g.slice(2)));
    throw new InvalidArgumentError(`unknown option ${shown}${near !== null ? `; did you mean --${near}?` : ''} (before the command: ${[...GLOBAL].join(', ')}); see wasmvisor --help`);
  }
  if (globals.host === undefined) throw needsOption('the remote client', '--host <url>', '');
  if (command === undefined) throw new InvalidArgumentError('no command given after --host; see wasmvisor --help');
  // A command that is none of them is named before any file is read or host reached.
  if (!REMOTE_COMMANDS.includes(command)) throw unknownSubcommand('the remote client', REMOTE_COMMANDS, command, '');
  if ((globals.cert === undefined) !== (globals.key === undefined)) throw new InvalidArgumentError('--cert and --key go together');
  if (globals['token-file'] === undefined && globals.cert === undefined) throw new InvalidArgumentError('give --token-file <file> (or a client certificate with --cert and --key)');
  // The whole command line is checked before anything is read or a host reached: the client's
  // own options (the URL, how the host is verified), then the command's, then the files are read
  // (the token, the certificates; the module of a run, the input of a call), and only then the
  // request is made. A mistake on the line is named as it is (exit 2), never behind a file that
  // cannot be read or a host that cannot be reached.
  checkClientOptions({ url: globals.host, ...(globals.fingerprint !== undefined ? { fingerprint: globals.fingerprint } : {}), ...(globals.ca !== undefined ? { ca: globals.ca } : {}) });
  const action = parseCommand(command, rest);
  const token = globals['token-file'] !== undefined ? readOptionFile(globals['token-file'], 'token-file').trim() : undefined;
  const client = new Client({
    url: globals.host,
    ...(token !== undefined ? { token } : {}),
    ...(globals.fingerprint !== undefined ? { fingerprint: globals.fingerprint } : {}),
    ...(globals.ca !== undefined ? { ca: readOptionFile(globals.ca, 'ca') } : {}),
    ...(globals.cert !== undefined ? { cert: readOptionFile(globals.cert, 'cert'), key: readOptionFile(globals.key!, 'key') } : {}),
  });
  return await action(client);
}

/** What a remote command does once its command line has been checked: read its files, then ask the host. */
type Action = (client: Client) => Promise<number>;

/**
 * A remote command's own options and arguments, parsed and checked (ERR_INVALID_ARGUMENT, exit
 * 2) without reading a file or reaching the host; what it returns does those.
 */
function parseCommand(command: string, rest: string[]): Action {
  const enc = encodeURIComponent;
  switch (command) {
    case 'ps': {
      const { values } = usage(command, { args: rest, strict: true, options: { json: { type: 'boolean' } } }, { help: '' });
      return async (client) => {
        const { partitions } = await client.json<{ partitions: { name: string; kind: string; state: string; restartPolicy: string; restarts: number; measurement: string }[] }>('GET', '/partitions');
        if (values.json) print(partitions);
        else {
          process.stdout.write(`${'NAME'.padEnd(24)}${'KIND'.padEnd(9)}${'STATE'.padEnd(10)}${'RESTART'.padEnd(12)}${'RESTARTS'.padEnd(10)}MODULE\n`);
          // The host's text, escaped as every remote answer printed to a terminal is (a row stays one line).
          const cell = (v: unknown, width: number): string => escapeText(String(v)).padEnd(width);
          for (const p of partitions) {
            process.stdout.write(`${cell(p.name, 24)}${cell(p.kind, 9)}${cell(p.state, 10)}${cell(p.restartPolicy, 12)}${cell(p.restarts, 10)}${escapeText(String(p.measurement).slice(0, 12))}\n`);
          }
        }
        return 0;
      };
    }
    case 'run': {
      const split = rest.indexOf('--');
      const own = split < 0 ? rest : rest.slice(0, split);
      const args = split < 0 ? [] : rest.slice(split + 1);
      const { values, positionals } = usage(
        command,
        {
          args: own,
          allowPositionals: true,
          strict: true,
          options: {
            name: { type: 'string' },
            reactor: { type: 'boolean' },
            restart: { type: 'string' },
            disk: { type: 'string' },
            memory: { type: 'string' },
            timeout: { type: 'string' },
            devices: { type: 'string' },
            'no-start': { type: 'boolean' },
          },
        },
        { positionalHint: true, help: '' },
      );
      checkPositionals('run', positionals, ['guest.wasm'], 1, '');
      const file = positionals[0]!;
      // Checked here, by its flag, as the local run checks it (the host's refusal named its body: `body: spec.name: …`).
      const name = values.name !== undefined ? stringIn(PartitionSpecSchema.properties.name)(values.name, '--name') : nameFromFile('run', file, '.wasm', '');
      // The options first, then the module: a bad option is named before any file is read.
      const devices: Record<string, unknown> = {};
      for (const d of deviceList(values.devices ?? 'console,clock,entropy', '--devices')) devices[d] = true;
      const disk = intOption(values.disk, 'disk', 1, 4096);
      if (disk !== undefined) devices.block = { sizeMiB: disk };
      const memoryPages = intOption(values.memory, 'memory', 1, 65536);
      const timeoutMs = intOption(values.timeout, 'timeout', 0, MAX_TIMER_MS);
      if (values.restart !== undefined) choice(RESTART_POLICIES)(values.restart, '--restart');
      return async (client) => {
        // At most what the API takes; a pipe (`run /dev/stdin < guest.wasm`) as well as a file.
        const module = await readRegularFile(file, { maxBytes: MAX_MODULE_BYTES, what: 'module file', pipes: true });
        const info = await client.json('POST', '/partitions', {
          spec: {
            name,
            ...(values.reactor ? { kind: 'reactor' } : {}),
            ...(args.length > 0 ? { args } : {}),
            devices,
            ...(memoryPages !== undefined || timeoutMs !== undefined ? { limits: { ...(memoryPages !== undefined ? { memoryPages } : {}), ...(timeoutMs !== undefined ? { timeoutMs } : {}) } } : {}),
          },
          module: module.toString('base64'),
          ...(values.restart !== undefined ? { restartPolicy: values.restart } : {}),
          start: values['no-start'] !== true,
        });
        print(info);
        return 0;
      };
    }
    case 'start':
    case 'stop': {
      // Through the parser as every command: `stop -f web` is an unknown option, not a partition named "-f".
      const { positionals } = usage(command, { args: rest, allowPositionals: true, strict: true, options: {} }, { help: '' });
      checkPositionals(command, positionals, ['name'], 1, '');
      return async (client) => {
        print(await client.json('POST', `/partitions/${enc(positionals[0]!)}/${command}`));
        return 0;
      };
    }
    case 'rm': {
      const { values, positionals } = usage(command, { args: rest, allowPositionals: true, strict: true, options: { wipe: { type: 'boolean' } } }, { help: '' });
      checkPositionals('rm', positionals, ['name'], 1, '');
      return async (client) => {
        print(await client.json('DELETE', `/partitions/${enc(positionals[0]!)}${values.wipe ? '?wipe=true' : ''}`));
        return 0;
      };
    }
    case 'logs': {
      const { values, positionals } = usage(command, { args: rest, allowPositionals: true, strict: true, options: { follow: { type: 'boolean', short: 'f' }, tail: { type: 'string' } } }, { help: '' });
      checkPositionals('logs', positionals, ['name'], 1, '');
      const tail = intOption(values.tail, 'tail', 0, 1000) ?? 100;
      return async (client) => {
        let status = 0;
        const ac = new AbortController();
        const onSignal = () => ac.abort();
        process.once('SIGINT', onSignal);
        try {
          await client.stream(`/partitions/${enc(positionals[0]!)}/console?tail=${tail}&follow=${values.follow === true}`, (name, data) => {
            const d = data as { stream?: string; line?: string; state?: string; code?: string; message?: string; lines?: number };
            // Guest lines come escaped (a remote terminal is the reader's); on stderr, one that would read
            // as a verdict or note is marked as the guest's, and the end is a verdict: stderr.ts's rule.
            if (name === 'console') {
              if (d.stream === 'stderr') stderr.guestLine(escapeText(d.line ?? ''));
              else process.stdout.write(escapeText(d.line ?? '') + '\n');
            } else if (name === 'state') stderr.note(`${positionals[0]} is ${String(d.state)}`);
            else if (name === 'dropped') stderr.note(`${String(d.lines)} lines dropped (reading too slowly)`);
            else if (name === 'end') {
              stderr.verdict(verdictCode(d.code), String(d.message));
              status = d.code === 'ERR_UNAUTHENTICATED' ? 77 : d.code === 'ERR_NOT_FOUND' ? 0 : 1;
            }
          }, ac.signal);
        } finally {
          process.off('SIGINT', onSignal);
        }
        return status;
      };
    }
    case 'call': {
      const { values, positionals } = usage(command, { args: rest, allowPositionals: true, strict: true, options: { input: { type: 'string' }, 'input-file': { type: 'string' }, timeout: { type: 'string' } } }, { help: '' });
      checkPositionals('call', positionals, ['name', 'export'], 2, '');
      // The options first, then the input: a bad --timeout is named before stdin or a file is read.
      if (values.input !== undefined && values['input-file'] !== undefined) throw new InvalidArgumentError('--input and --input-file: give one of them, not both');
      const timeoutMs = intOption(values.timeout, 'timeout', 1, 600_000);
      return async (client) => {
        const input = await remoteCallInput(values.input, values['input-file']);
        try {
          const r = await client.json<{ output: string; encoding: 'utf8' | 'base64' }>('POST', `/partitions/${enc(positionals[0]!)}/call`, {
            export: positionals[1],
            input: Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('base64'),
            encoding: 'base64',
            ...(timeoutMs !== undefined ? { timeoutMs } : {}),
          });
          process.stdout.write(Buffer.from(r.output, 'base64'));
          return 0;
        } catch (error) {
          if (error instanceof GuestCallError) {
            // As the local call (README's exit-status table): the output still on stdout, the
            // export's status & 0xff (1 when that is 0) as the exit status.
            await new Promise<void>((resolve) => process.stdout.write(error.output, () => resolve()));
            stderr.verdict(error.code, error.message);
            return error.status & 0xff || 1;
          }
          throw error;
        }
      };
    }
    case 'metrics': {
      const { values, positionals } = usage(command, { args: rest, allowPositionals: true, strict: true, options: { prometheus: { type: 'boolean' } } }, { help: '' });
      checkPositionals('metrics', positionals, ['name'], 0, '');
      return async (client) => {
        if (values.prometheus) {
          const r = await client.request('GET', '/metrics');
          if (r.status !== 200) throw errorOf(r.status, parseJson(r.body));
          process.stdout.write(r.body);
        } else print(await client.json('GET', positionals.length > 0 ? `/partitions/${enc(positionals[0]!)}/metrics` : '/host/metrics'));
        return 0;
      };
    }
    case 'audit': {
      const { values } = usage(
        command,
        {
          args: rest,
          strict: true,
          options: {
            partition: { type: 'string' },
            action: { type: 'string' },
            actor: { type: 'string' },
            outcome: { type: 'string' },
            since: { type: 'string' },
            until: { type: 'string' },
            limit: { type: 'string' },
            json: { type: 'boolean' },
          },
        },
        { help: '' },
      );
      const q = new URLSearchParams();
      for (const k of ['partition', 'action', 'actor', 'outcome', 'since', 'until', 'limit'] as const) {
        // An empty filter (an unset "$PARTITION") is refused as the local audit show refuses it, not sent as a filter of nothing.
        if (values[k] !== undefined) q.set(k, nonEmpty(values[k]!, `--${k}`));
      }
      return async (client) => {
        const r = await client.json<{ durable: boolean; records: { seq: number; time: string; actor: string; action: string; target: string; outcome: string; reason: string; details?: { permission?: string } }[] }>('GET', `/audit${q.size ? `?${q}` : ''}`);
        if (values.json) print(r);
        else {
          if (!r.durable) stderr.note('this host keeps its audit log in memory only');
          for (const x of r.records) {
            const permission = x.details?.permission !== undefined ? `(${x.details.permission})` : '';
            process.stdout.write(`${escapeText(`${x.seq} ${x.time} ${x.actor} ${x.action}${permission} ${x.target} ${x.outcome} ${x.reason}`)}\n`);
          }
        }
        return 0;
      };
    }
    case 'attest': {
      const { values } = usage(command, { args: rest, strict: true, options: { nonce: { type: 'string' } } }, { help: '' });
      if (values.nonce === undefined) throw needsOption('attest', '--nonce <hex>', '');
      // Checked here, by its flag, as the local commands check theirs ('' was sent, and the host's refusal named its query).
      const nonce = stringIn(AttestQuery.properties.nonce)(values.nonce, '--nonce');
      return async (client) => {
        print(await client.json('GET', `/attestation?nonce=${enc(nonce)}`));
        return 0;
      };
    }
    case 'whoami':
      usage(command, { args: rest, strict: true, options: {} }, { help: '' });
      return async (client) => {
        print(await client.json('GET', '/whoami'));
        return 0;
      };
    case 'token': {
      const [sub, ...more] = rest;
      if (sub !== 'create' && sub !== 'list' && sub !== 'revoke') throw unknownSubcommand('token', TOKEN_SUBCOMMANDS, sub, '');
      // Each subcommand takes its own options, as the local token's (but --config: the host's directory is the host's).
      const parsed =
        sub === 'create'
          ? usage('token create', { args: more, allowPositionals: true, strict: true, options: { name: { type: 'string' }, role: { type: 'string' }, scope: { type: 'string' }, expires: { type: 'string' } } }, { help: '' })
          : sub === 'list'
            ? usage('token list', { args: more, allowPositionals: true, strict: true, options: { json: { type: 'boolean' } } }, { help: '' })
            : usage('token revoke', { args: more, allowPositionals: true, strict: true, options: {} }, { help: '' });
      const values: TokenValues = parsed.values;
      const positionals = parsed.positionals;
      checkPositionals(`token ${sub}`, positionals, sub === 'revoke' ? ['id'] : [], sub === 'revoke' ? 1 : 0, '');
      return async (client) => {
        if (sub === 'create') {
          const r = await client.json<{ token: string; id: string; expiresAt: string | null }>('POST', '/tokens', {
            name: values.name,
            role: values.role,
            scope: values.scope,
            ...(values.expires !== undefined ? { expires: values.expires } : {}),
          });
          process.stdout.write(`${r.token}\n`);
          process.stderr.write(`token ${escapeText(String(r.id))}, ${r.expiresAt ? `expires ${escapeText(String(r.expiresAt))}` : 'does not expire'}; shown only this once\n`);
        } else if (sub === 'list') {
          // As the local `token list` prints them: the table, or the array itself with --json.
          const r = await client.json<{ tokens?: unknown } | null>('GET', '/tokens');
          if (!Array.isArray(r?.tokens)) throw new ConnectionError("the host's answer to GET /tokens holds no list of tokens");
          writeTokenList(r.tokens as TokenInfo[], values.json === true);
        }
        else print(await client.json('DELETE', `/tokens/${enc(positionals[0]!)}`));
        return 0;
      };
    }
    default:
      throw unknownSubcommand('the remote client', REMOTE_COMMANDS, command, '');
  }
}
