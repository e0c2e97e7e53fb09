/**
 * The management commands (serve, token, cert, lab and the remote client) refuse bad usage as
 * every other command does (README, "Command line": "An unknown option names the nearest known
 * one"): ERR_INVALID_ARGUMENT, exit 2, one line naming the command, the option and its nearest
 * known one, and where the help is; an argument a command does not take is refused, not ignored.
 * They used to print node:util's bare "Unknown option '--confg'", and `token list extra` listed.
 * Through the real CLI process; no host is reached (the remote usage is checked before a request).
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cli } from './harness.ts';

vi.setConfig({ testTimeout: 90_000 });

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wv-mgmt-usage-'));
const config = path.join(tmp, 'host');
const tokenFile = path.join(tmp, 'admin.token');
/** A remote client that would verify a host it never reaches: usage is refused before that. */
const remote = ['--host', 'https://127.0.0.1:1', '--token-file', tokenFile, '--fingerprint', 'AA'.repeat(32)];

beforeAll(async () => {
  const r = await cli(['token', 'create', '--config', config, '--name', 'admin', '--role', 'Owner', '--scope', '/']);
  expect(r.code, r.stderr).toBe(0);
  writeFileSync(tokenFile, r.stdout);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const refusals: [string[], string][] = [
  [['serve', '--confg', config], 'serve: unknown option --confg; did you mean --config?; see wasmvisor serve --help'],
  [['serve', 'extra'], 'serve takes no arguments, got an extra argument "extra"; see wasmvisor serve --help'],
  [['serve', '--port'], '--port needs a value; see wasmvisor serve --help'],
  [['serve', '--dashboard=yes'], '--dashboard takes no value, got "yes"; see wasmvisor serve --help'],
  // A value is taken as given, even when it starts with '-' (as for run, host/cli/options.ts):
  // a bad port, not node:util's "Option '--port' argument is ambiguous".
  [['serve', '--port', '-1'], '--port: expected an integer from 0 to 65535, got "-1"'],
  [['serve', '--port=-1'], '--port: expected an integer from 0 to 65535, got "-1"'],
  [['lab', '--port', '-1'], '--port: expected an integer from 0 to 65535, got "-1"'],
  // Without --tls-self-signed the names were ignored and the host served plain HTTP.
  [['serve', '--config', config, '--port', '0', '--tls-name', 'host.example'], '--tls-name goes with --tls-self-signed (the names of the certificate it makes)'],
  [['serve', '--config', config, '--port', '0', '--tls-name', 'host.example', '--tls-cert', 'c.pem', '--tls-key', 'k.pem'], '--tls-name goes with --tls-self-signed (the names of the certificate it makes)'],
  // An empty --bind listened on every interface (an unset "$ADDR"), with TLS; without, the refusal named no address.
  [['serve', '--config', config, '--port', '0', '--tls-self-signed', '--bind', ''], '--bind: expected an address to listen on (an IP address or a host name), got ""'],
  [['serve', '--config', config, '--port', '0', '--dashboard', '--bind', ' 127.0.0.1'], '--bind: expected an address to listen on (an IP address or a host name), got " 127.0.0.1"'],
  // Each --tls-name is a subjectAltName of the certificate made: '' gave it an empty 'DNS:' entry.
  [['serve', '--config', config, '--port', '0', '--tls-self-signed', '--tls-name', ''], `--tls-name: expected a host name (letters, digits and '-' in dot-separated labels, the first may be '*') or an IP address, got ""`],
  [['serve', '--config', config, '--port', '0', '--tls-self-signed', '--tls-name', 'ok.example', '--tls-name', 'bad name'], `--tls-name: expected a host name (letters, digits and '-' in dot-separated labels, the first may be '*') or an IP address, got "bad name"`],
  [['lab', '--lst'], 'lab: unknown option --lst; did you mean --list?; see wasmvisor lab --help'],
  [['lab', 'memory-isolation', 'x'], 'lab takes [<name>], got an extra argument "x"; see wasmvisor lab --help'],
  // An option of another subcommand is unknown to this one, not ignored (token list --role listed every token).
  [['token', 'list', '--config', config, '--role', 'Owner'], 'token list: unknown option --role; see wasmvisor token --help'],
  [['token', 'revoke', '--config', config, '--json', 'x'], 'token revoke: unknown option --json; see wasmvisor token --help'],
  // cert: the name and --out checked by their flags, before anything is looked at or made.
  [['cert', 'create', '--name', '', '--config', config], `--name: expected 1-64 letters, digits, '.', '_', '-' or spaces (starting with a letter or digit), got ""`],
  [['cert', 'create', '--name', 'a/b', '--config', config], `--name: expected 1-64 letters, digits, '.', '_', '-' or spaces (starting with a letter or digit), got "a/b"`],
  [['cert', 'create', '--name', 'alice', '--config', config, '--out', ''], '--out: expected a directory, got ""'],
  [['token', 'list', '--confg', config], 'token list: unknown option --confg; did you mean --config?; see wasmvisor token --help'],
  [['token', 'list', '--config', config, 'extra'], 'token list takes no arguments, got an extra argument "extra"; see wasmvisor token --help'],
  [['cert', 'create', '--nme', 'alice', '--config', config], 'cert create: unknown option --nme; did you mean --name?; see wasmvisor cert --help'],
  [['cert', 'create', '--name', 'alice', '--config', config, 'extra'], 'cert create takes no arguments, got an extra argument "extra"; see wasmvisor cert --help'],
  [['demo', 'extra'], 'demo takes no arguments, got an extra argument "extra"; see wasmvisor demo --help'],
  [['disks', 'extra'], 'disks takes no arguments, got an extra argument "extra"; see wasmvisor disks --help'],
  [[...remote, 'ps', '--jsn'], 'ps: unknown option --jsn; did you mean --json?; see wasmvisor --help'],
  [[...remote, 'logs', '--tial', '3', 'web'], 'logs: unknown option --tial; did you mean --tail?; see wasmvisor --help'],
  [[...remote, 'logs', '--tail', '-3', 'web'], '--tail: expected an integer from 0 to 1000, got "-3"'],
  [[...remote, 'run', '--nme', 'web', 'g.wasm'], 'run: unknown option --nme; did you mean --name? (to pass it to the guest, put it after --); see wasmvisor --help'],
  [[...remote, 'token', 'list', '--jsn'], 'token list: unknown option --jsn; did you mean --json?; see wasmvisor --help'],
  [[...remote, 'token', 'list', 'extra'], 'token list takes no arguments, got an extra argument "extra"; see wasmvisor --help'],
  // start and stop go through the parser: `stop -f web` stopped a partition named "-f".
  [[...remote, 'stop', '-f', 'web'], 'stop: unknown option -f; see wasmvisor --help'],
  [[...remote, 'start', 'a', 'b'], 'start takes <name>, got an extra argument "b"; see wasmvisor --help'],
  [[...remote, 'whoami', 'extra'], 'whoami takes no arguments, got an extra argument "extra"; see wasmvisor --help'],
  [[...remote, 'token', 'revoke', 'a', 'b'], 'token revoke takes <id>, got an extra argument "b"; see wasmvisor --help'],
  [[...remote, 'token', 'list', '--role', 'Owner'], 'token list: unknown option --role; see wasmvisor --help'],
  [[...remote, 'whoamii'], 'the remote client takes ps, run, start, stop, rm, logs, call, metrics, audit, attest, whoami or token, got "whoamii"; did you mean whoami?; see wasmvisor --help'],
  [['--host', 'https://127.0.0.1:1', '--token-file', path.join(tmp, 'missing'), 'frob'], 'the remote client takes ps, run, start, stop, rm, logs, call, metrics, audit, attest, whoami or token, got "frob"; see wasmvisor --help'],
  // The remote attest's nonce is checked before the request, by its flag, as the host's API bounds it.
  [[...remote, 'attest', '--nonce', ''], '--nonce: expected 8 to 64 bytes in hex, got ""'],
  [[...remote, 'attest', '--nonce', '00'], '--nonce: expected 8 to 64 bytes in hex, got "00"'],
  [[...remote, 'attest'], 'attest needs --nonce <hex>; see wasmvisor --help'],
  // An empty value before the command (an unset "$HOST") is refused by its flag.
  [['--host', '', '--token-file', tokenFile, 'ps'], '--host: expected a URL (https://<host>:<port>), got ""'],
  [['--host', 'https://127.0.0.1:1', '--token-file=', 'ps'], '--token-file: expected a file, got ""'],
  [['--token-file', tokenFile, 'ps'], 'the remote client needs --host <url>; see wasmvisor --help'],
  [[...remote, 'metrics', 'a', 'b'], 'metrics takes [<name>], got an extra argument "b"; see wasmvisor --help'],
  // Checked before the request, named by the flag (the host answered 'body: restartPolicy: …' / 'body: spec.limits.timeoutMs: …').
  [[...remote, 'run', 'g.wasm', '--restart', 'bogus'], '--restart: expected never, on-failure or always, got "bogus"'],
  [[...remote, 'run', 'g.wasm', '--timeout', '2147483648'], '--timeout: expected an integer from 0 to 2147483647, got "2147483648"'],
  // The remote run reads --devices as run does: none only by `none` (its '' and 'none,console' were read as no devices and console).
  [[...remote, 'run', 'g.wasm', '--devices', ''], '--devices: expected a comma-separated list of devices (known: console, clock, entropy, net, attestation; or none), got ""'],
  [[...remote, 'run', 'g.wasm', '--devices', 'none,console'], '--devices: none grants no device and goes alone, got "none,console"'],
  // An option that takes one value, given twice: refused, not the first silently dropped.
  [['lab', '--port', '1', '--port=2'], '--port is given twice ("1" and "2"); give it once; see wasmvisor lab --help'],
  [['token', 'list', '--config', config, '--config', 'other'], `--config is given twice (${JSON.stringify(config)} and "other"); give it once; see wasmvisor token --help`],
  [[...remote, 'logs', '--tail', '1', '--tail', '2', 'web'], '--tail is given twice ("1" and "2"); give it once; see wasmvisor --help'],
  [['--host', 'https://127.0.0.1:1', '--host=https://127.0.0.1:2', '--token-file', tokenFile, 'ps'], '--host is given twice ("https://127.0.0.1:1" and "https://127.0.0.1:2"); give it once; see wasmvisor --help'],
  [
    ['--host', 'https://127.0.0.1:1', '--tokn-file', tokenFile, 'ps'],
    'unknown option --tokn-file; did you mean --token-file? (before the command: --host, --token-file, --fingerprint, --ca, --cert, --key); see wasmvisor --help',
  ],
];

/**
 * The same mistake reads the same in both parsers (host/cli/options.ts for the option tables,
 * host/cli/mgmt-args.ts for the management commands): each pair is one mistake, made in a table
 * command and in a management command, and the two verdicts differ only in the names of the
 * command, the flag and the value. They used to differ in their wording (`--port must be a whole
 * number` / `--memory: expected an integer`, `takes no value` with and without the value, …).
 */
const pairs: [string, [string[], string], [string[], string]][] = [
  ['a value missing at the end', [['run', 'g.wasm', '--timeout'], '--timeout needs a value; see wasmvisor run --help'], [['serve', '--port'], '--port needs a value; see wasmvisor serve --help']],
  ['a flag given a value', [['run', '--stats=yes', 'g.wasm'], '--stats takes no value, got "yes"; see wasmvisor run --help'], [['serve', '--dashboard=yes'], '--dashboard takes no value, got "yes"; see wasmvisor serve --help']],
  ['a number out of range', [['run', '--memory', '65537', 'g.wasm'], '--memory: expected an integer from 1 to 65536, got "65537"'], [['cert', 'create', '--name', 'a', '--days', '3651'], '--days: expected an integer from 1 to 3650, got "3651"']],
  ['not a number', [['run', '--memory', 'x', 'g.wasm'], '--memory: expected an integer from 1 to 65536, got "x"'], [['lab', '--port', 'x'], '--port: expected an integer from 0 to 65535, got "x"']],
  ['a value not among the choices', [['audit', 'show', '--outcome', 'won'], '--outcome: expected success, denied or failure, got "won"'], [[...remote, 'run', 'g.wasm', '--restart', 'bogus'], '--restart: expected never, on-failure or always, got "bogus"']],
  ['an unknown subcommand', [['audit', 'verfy'], 'audit takes verify or show, got "verfy"; did you mean verify?; see wasmvisor audit --help'], [['token', 'lsit'], 'token takes create, list or revoke, got "lsit"; did you mean list?; see wasmvisor token --help']],
  ['no subcommand', [['attest'], 'attest takes verify or key, got ""; see wasmvisor attest --help'], [['cert'], 'cert takes create, got ""; see wasmvisor cert --help']],
  ['a required option missing', [['attest', 'verify', 'r.json'], 'attest verify needs --key <host public key file>; see wasmvisor attest verify --help'], [['token', 'create', '--config', config, '--name', 'a', '--role', 'Owner'], 'token create needs --scope <scope>; see wasmvisor token --help']],
  ['a positional missing', [['call', 'g.wasm'], 'call needs <export>; see wasmvisor call --help'], [['token', 'revoke', '--config', config], 'token revoke needs <id>; see wasmvisor token --help']],
  ['an extra positional', [['inspect', 'a.wasm', 'b'], 'inspect takes <guest.wasm | app.json>, got an extra argument "b"; see wasmvisor inspect --help'], [[...remote, 'logs', 'a', 'b'], 'logs takes <name>, got an extra argument "b"; see wasmvisor --help']],
  ['an empty positional', [['audit', 'verify', ''], 'audit verify: expected <dir>, got ""; see wasmvisor audit verify --help'], [[...remote, 'rm', ''], 'rm: expected <name>, got ""; see wasmvisor --help']],
];

describe.concurrent('one wording per mistake, in both parsers', () => {
  for (const [mistake, [tableArgs, tableVerdict], [mgmtArgs, mgmtVerdict]] of pairs) {
    it(mistake, async () => {
      const [a, b] = await Promise.all([cli(tableArgs, { cwd: tmp }), cli(mgmtArgs, { cwd: tmp })]);
      expect(a).toMatchObject({ code: 2, stdout: '', stderr: `ERR_INVALID_ARGUMENT: ${tableVerdict}\n` });
      expect(b).toMatchObject({ code: 2, stdout: '', stderr: `ERR_INVALID_ARGUMENT: ${mgmtVerdict}\n` });
    });
  }
});

describe.concurrent('management commands: bad usage is named as for every command', () => {
  for (const [args, verdict] of refusals) {
    it(args.map((a) => (a === tokenFile ? 't' : a === config ? 'host' : a.length === 64 ? '<fp>' : a)).join(' '), async () => {
      const r = await cli(args, { cwd: tmp });
      expect(r).toMatchObject({ code: 2, stdout: '', stderr: `ERR_INVALID_ARGUMENT: ${verdict}\n` });
    });
  }

  it('an empty --config or --data-dir is refused naming it, and nothing is made in the working directory', async () => {
    const cwd = mkdtempSync(path.join(tmp, 'empty-'));
    for (const args of [['token', 'list', '--config', ''], ['token', 'create', '--config', '', '--name', 'a', '--role', 'Owner', '--scope', '/'], ['cert', 'create', '--config', '', '--name', 'a'], ['serve', '--config', '', '--port', '0']]) {
      // token list made data/, modules/, partitions/, tls/ and tokens/ in the folder it ran in.
      expect(await cli(args, { cwd }), args.join(' ')).toMatchObject({ code: 2, stdout: '', stderr: 'ERR_INVALID_ARGUMENT: --config: expected a host config directory, got ""\n' });
    }
    for (const args of [['disks', '--data-dir', ''], ['delete', '--data-dir', '', 'x'], ['attest', 'key', '--data-dir', ''], ['audit', 'show', '--data-dir', '']]) {
      expect(await cli(args, { cwd }), args.join(' ')).toMatchObject({ code: 2, stdout: '', stderr: 'ERR_INVALID_ARGUMENT: --data-dir: expected a directory, got ""\n' });
    }
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('a port in use is ERR_INVALID_STATE (exit 1) and an address not of this host a bad --bind (exit 2), named: they were ERR_INTERNAL, "a bug"', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const cwd = mkdtempSync(path.join(tmp, 'listen-'));
      const inUse = `ERR_INVALID_STATE: --port ${port}: 127.0.0.1:${port} is already in use (another process listens there; --port 0 picks a free port)\n`;
      expect(await cli(['serve', '--config', 'h', '--port', String(port)], { cwd })).toMatchObject({ code: 1, stdout: '', stderr: inUse });
      expect(await cli(['lab', '--port', String(port)], { cwd })).toMatchObject({ code: 1, stdout: '', stderr: inUse });
      const elsewhere = await cli(['serve', '--config', 'h', '--port', '0', '--tls-self-signed', '--bind', '192.0.2.1'], { cwd });
      expect(elsewhere).toMatchObject({ code: 2, stdout: '', stderr: 'ERR_INVALID_ARGUMENT: --bind "192.0.2.1": not an address of this host (EADDRNOTAVAIL)\n' });
      // A failed start leaves nothing behind.
      expect(readdirSync(cwd)).toEqual([]);
    } finally {
      taken.close();
    }
  });

  it('a newline in an unknown option or an extra argument stays on the one verdict line, escaped', async () => {
    expect((await cli(['serve', '--a\nb'], { cwd: tmp })).stderr).toBe('ERR_INVALID_ARGUMENT: serve: unknown option --a\\nb; see wasmvisor serve --help\n');
    expect((await cli(['serve', 'x\ny'], { cwd: tmp })).stderr).toBe('ERR_INVALID_ARGUMENT: serve takes no arguments, got an extra argument "x\\ny"; see wasmvisor serve --help\n');
  });

  it('a remote command --help prints the remote usage, exit 0, before any file is read or host reached', async () => {
    for (const args of [['--host', 'https://127.0.0.1:1', 'ps', '--help'], ['--host', 'https://127.0.0.1:1', '--token-file', path.join(tmp, 'none'), 'token', 'list', '-h'], ['--host', 'x', '--help']]) {
      const r = await cli(args, { cwd: tmp });
      expect(r, args.join(' ')).toMatchObject({ code: 0, stderr: '' });
      expect(r.stdout).toMatch(/^Usage:\n {2}wasmvisor --host <url> --token-file <file>/);
      expect(r.stdout).toContain('token list [--json]');
    }
    // After a remote run's `--`, --help is the guest's: not taken as a request for help.
    expect((await cli(['--host', 'x', 'run', 'g.wasm', '--', '--help'], { cwd: tmp })).code).toBe(2);
  });

  it('the forms that are right still work: token list prints the table', async () => {
    const r = await cli(['token', 'list', '--config', config], { cwd: tmp });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ID {15}NAME/);
  });
});
