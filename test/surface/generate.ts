/**
 * Generates docs/attack-surface.json: every way in, read from the code that defines it, so the
 * surface cannot grow without the file changing (test/surface/attack-surface.test.ts fails until
 * the change is reviewed and recorded). Each surface is one entry of SURFACES; a new one is one
 * more entry reading its own source of truth.
 *
 * Sources of truth: host/abi/codes.ts (call codes, their doc comments, statuses, devices),
 * host/abi/dispatcher.ts (which device owns each call), host/devices/*.ts (the statuses each
 * device returns), host/loader/policy.ts and host/wasi/imports.ts (the imports the loader
 * admits), host/loader/instrument.ts (the imports instrumentation adds), host/cli/*.ts (every
 * command's options, parsed from its parseArgs tables), host/mgmt/routes.ts (the management
 * API's route table: method, path, authentication, permission, body limit).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { HV_HYPERCALL, HV_MAX_TRANSFER, HV_MODULE, HvCall, HvStatus, type HvCallName } from '../../host/abi/codes.ts';
import { CALL_DEVICE } from '../../host/abi/dispatcher.ts';
import { FUEL_BUDGET, FUEL_EXHAUSTED, FUEL_GLOBAL, FUEL_MODULE, START_EXPORT } from '../../host/loader/instrument.ts';
import { HYPERCALL_SIG, formatSig } from '../../host/loader/policy.ts';
import { Errno, WASI_MODULE } from '../../host/wasi/errno.ts';
import { WASI_SIGNATURES } from '../../host/wasi/imports.ts';
import { buildRoutes } from '../../host/mgmt/routes.ts';
import { Hypervisor } from '../../host/hypervisor.ts';
import { Dashboard } from '../../host/labs/dashboard.ts';
import { REPO_ROOT } from '../fuzz/framework.ts';

const read = (rel: string): string => readFileSync(path.join(REPO_ROOT, rel), 'utf8');
const parse = (rel: string): ts.SourceFile => ts.createSourceFile(rel, read(rel), ts.ScriptTarget.ES2022, true);

/** The doc comment of each property of the object literal assigned to `name` in `file`. */
function docComments(file: string, name: string): Map<string, string> {
  const source = parse(file);
  const out = new Map<string, string>();
  const visit = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && node.name.getText() === name && node.initializer) {
      let init: ts.Expression = node.initializer;
      while (ts.isAsExpression(init) || ts.isSatisfiesExpression(init)) init = init.expression;
      if (ts.isObjectLiteralExpression(init)) {
        for (const prop of init.properties) {
          const docs = ts.getJSDocCommentsAndTags(prop).map((d) => (typeof d.comment === 'string' ? d.comment : ''));
          out.set(prop.name?.getText() ?? '', docs.join(' ').replace(/\s+/g, ' ').trim());
        }
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** The HvStatus names a source file uses. */
/** Where a device's statuses come from besides its own file: the engine it hands requests to. */
const DEVICE_ENGINES: Readonly<Record<string, readonly string[]>> = { 'host/devices/block.ts': ['host/storage/image.ts'] };

function statusesIn(file: string): string[] {
  const text = [file, ...(DEVICE_ENGINES[file] ?? [])].map(read).join('\n');
  return [...new Set([...text.matchAll(/HvStatus\.([A-Z_]+)/g)].map((m) => m[1]!))].filter((s) => s !== 'SUCCESS').sort();
}

/**
 * Every `wasmvisor <command> [<subcommand>]` and its options. Two sources in host/cli/: a
 * command's option table (an exported `fooCommand: CommandSpec`, whose `options` drive its
 * parsing and help), and, for commands that parse by hand, their parseArgs tables (read with
 * the TypeScript parser, given to parseArgs or to mgmt-args.ts's usage: a table belongs to the command its file exports, `fooCommand(...)` →
 * foo, and inside a switch on subcommands to its `case`) and a `GLOBAL` set of flags.
 */
export async function cliOptions(): Promise<Map<string, Map<string, string>>> {
  const dir = path.join(REPO_ROOT, 'host', 'cli');
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts')).sort();
  const byCommand = new Map<string, Map<string, string>>();
  const add = (command: string, options: Iterable<[string, string]>): void => {
    const own = byCommand.get(command) ?? new Map<string, string>();
    for (const [k, v] of options) own.set(k, v);
    byCommand.set(command, own);
  };
  for (const f of files) {
    const text = read(`host/cli/${f}`);
    // Option tables: import the module and read its spec (main.ts runs the CLI when imported).
    for (const m of text.matchAll(/export const (\w+Command) = \{/g)) {
      const mod = (await import(pathToFileURL(path.join(dir, f)).href)) as Record<string, { name: string; options: Record<string, { kind: string }> }>;
      const spec = mod[m[1]!]!;
      add(spec.name, Object.entries(spec.options).map(([k, o]) => [k, o.kind]));
    }
    const source = parse(`host/cli/${f}`);
    const exported = source.text.match(/export (?:async )?function (\w+)Command\(/)?.[1] ?? null;
    if (exported === null) continue;
    const visit = (node: ts.Node, sub: string | null): void => {
      if (ts.isCaseClause(node) && ts.isStringLiteral(node.expression)) sub = node.expression.text;
      if (ts.isVariableDeclaration(node) && node.name.getText() === 'GLOBAL' && node.initializer && ts.isNewExpression(node.initializer)) {
        add(exported, (node.initializer.getText().match(/'--[\w-]+'/g) ?? []).map((flag) => [flag.slice(3, -1), 'value']));
      }
      // parseArgs(config), or mgmt-args.ts's usage(command, config) that wraps it.
      const callee = ts.isCallExpression(node) ? node.expression.getText() : null;
      if (ts.isCallExpression(node) && (callee === 'parseArgs' || callee === 'usage')) {
        const arg = node.arguments[callee === 'usage' ? 1 : 0];
        const table = arg && ts.isObjectLiteralExpression(arg) ? arg.properties.find((p) => p.name?.getText() === 'options') : undefined;
        if (table && ts.isPropertyAssignment(table) && ts.isObjectLiteralExpression(table.initializer)) {
          add(sub === null ? exported : `${exported} ${sub}`, table.initializer.properties.map((p) => [p.name?.getText().replace(/^'|'$/g, '') ?? '', 'parseArgs'] as [string, string]));
        }
      }
      ts.forEachChild(node, (child) => visit(child, sub));
    };
    visit(source, null);
  }
  return byCommand;
}

/**
 * Every CLI option, classified: a reason when it widens what a guest may reach or use, null when
 * it does not. An option missing here fails the generation: adding one is a decision to record.
 */
export const CLI_ACCESS: Readonly<Record<string, string | null>> = {
  // integrity (host/security/) and labs: admission, attestation, audit, offline key tools.
  'run --policy': 'chooses the security policy: which publishers and pins admit a module, and the grants each gets',
  'call --policy': 'chooses the security policy: which publishers and pins admit a module, and the grants each gets',
  'inspect --policy': null,
  'run --signature': "a detached signature by a trusted publisher admits the module, with that publisher's grants",
  'call --signature': "a detached signature by a trusted publisher admits the module, with that publisher's grants",
  'inspect --signature': null,
  'run --attest': "signs a report of the host's measured state (runtime, partitions' measurements and spec hashes) with the host key, written to a file the caller names",
  'run --nonce': null,
  'run --audit': 'chooses where the audit log (and its key) is written',
  'call --audit': 'chooses where the audit log (and its key) is written',
  'serve --dashboard': 'serves the labs dashboard and its endpoints (loopback only), which run lab partitions',
  'keygen --secret-key': null,
  'keygen --public-key': null,
  'sign --key': null,
  'sign --out': null,
  'sign --detached': null,
  'sign --key-id': null,
  'sign --delimit': null,
  'verify --key': null,
  'verify --signature': null,
  'verify --allow-partial': null,
  'attest verify --key': null,
  'attest verify --nonce': null,
  'attest verify --expect-measurement': null,
  'attest verify --max-age': null,
  'attest key --data-dir': null,
  'attest key --out': null,
  'audit verify --data-dir': null,
  'audit verify --key-dir': null,
  'audit verify --allow-empty': null,
  'audit show --data-dir': null,
  'audit show --json': null,
  'audit show --partition': null,
  'audit show --action': null,
  'audit show --outcome': null,
  'audit show --since': null,
  'audit show --until': null,
  'run --devices': 'grants devices (console, clock, entropy) to the guest',
  'run --disk': 'grants a persistent block device',
  'run --name': 'chooses which persisted disk the guest gets',
  'run --data-dir': 'chooses where disks and the keystore are read and written',
  'run --dir': 'grants WASI access to a copy of a host folder',
  'run --env': 'passes environment variables to a WASI guest',
  'run --memory': 'raises (or lowers) the linear memory limit',
  'run --timeout': 'raises the wall-clock budget; 0 removes it',
  'run --clock-resolution': 'a finer clock is a better timer for side channels',
  'run --deterministic': null,
  'run --seed': null,
  'run --sha256': null,
  'run --stats': null,
  'run --fuel': null,
  'run --cpu-percent': null,
  'call --input': null,
  'call --wasi-quota': 'raises (or lowers) what a WASI guest may hold: bytes, inodes, open fds, path length',
  'call --output-rate': null,
  'call --memory': 'raises (or lowers) the linear memory limit',
  'call --timeout': "raises the call's wall-clock budget; 0 removes it",
  'call --devices': 'grants devices to the reactor',
  'call --sha256': null,
  'run --segment': 'chooses which network segment the partition joins (with --devices net)',
  'run --wasi': 'admits WASI preview1 imports',
  'run --json': null,
  'disks --data-dir': 'chooses where disks and the keystore are read and written',
  'disks --json': null,
  'run --wasi-quota': 'raises (or lowers) what a WASI guest may hold: bytes, inodes, open fds, path length',
  'run --output-rate': null,
  'run --placement': null,
  'call --placement': null,
  // Narrows: the partition runs in a sandboxed process of its own (README, "Process isolation").
  'run --isolate': null,
  'call --isolate': null,
  'call --input-file': null,
  'call --fuel': null,
  'call --cpu-percent': null,
  'call --clock-resolution': 'a finer clock is a better timer for side channels',
  'call --deterministic': null,
  'call --seed': null,
  'call --segment': 'chooses which network segment the partition joins (with --devices net)',
  'call --disk': 'grants a persistent block device',
  'call --name': 'chooses which persisted disk the guest gets',
  'call --data-dir': 'chooses where disks and the keystore are read and written',
  'call --wasi': 'admits WASI preview1 imports',
  'call --dir': 'grants WASI access to a copy of a host folder',
  'call --env': 'passes environment variables to a WASI guest',
  'call --stats': null,
  'call --json': null,
  'inspect --reactor': null,
  'inspect --sha256': null,
  'inspect --memory': null,
  'inspect --json': null,
  'inspect --wasi': null,
  'delete --data-dir': 'chooses which data directory a disk is deleted from',
  'serve --config': 'chooses the host configuration: its roles, assignments, token store and partitions',
  'serve --bind': 'exposes the management API on an address other than loopback (refused without TLS)',
  'serve --port': null,
  'serve --tls-self-signed': null,
  'serve --tls-name': null,
  'serve --tls-cert': null,
  'serve --tls-key': null,
  'serve --client-ca': 'admits clients holding a certificate from this CA as principals',
  'token --config': 'chooses which host configuration the token is written to',
  'token --name': null,
  'token --role': 'grants a role to the new token',
  'token --scope': 'sets where the new token’s role applies',
  'token --expires': 'sets how long the new token works (at most 3650 days)',
  'token --json': null,
  'cert --config': 'chooses which host CA signs',
  'cert --name': 'names the principal the certificate authenticates as',
  'cert --out': null,
  'cert --days': 'sets how long the certificate works',
  'remote --host': 'chooses which host the commands manage',
  'remote --token-file': 'the credential the commands act with',
  'remote --fingerprint': null,
  'remote --ca': null,
  'remote --cert': 'a client certificate the commands act with',
  'remote --key': null,
  'remote ps --json': null,
  'remote run --name': null,
  'remote run --reactor': null,
  'remote run --restart': null,
  'remote run --disk': 'grants the remote partition a persistent block device',
  'remote run --memory': 'raises (or lowers) the remote partition’s memory limit',
  'remote run --timeout': 'raises the remote partition’s wall-clock budget',
  'remote run --devices': 'grants devices to the remote partition',
  'remote run --no-start': null,
  'remote rm --wipe': null,
  'remote logs --follow': null,
  'remote logs --tail': null,
  'remote call --input': null,
  'remote call --input-file': null,
  'remote call --timeout': "raises the remote call's budget",
  'remote metrics --prometheus': null,
  'remote audit --partition': null,
  'remote audit --action': null,
  'remote audit --actor': null,
  'remote audit --outcome': null,
  'remote audit --since': null,
  'remote audit --until': null,
  'remote audit --limit': null,
  'remote audit --json': null,
  'remote attest --nonce': null,
  'remote token --name': null,
  'remote token --role': 'grants a role to the new token (never more than the caller holds)',
  'remote token --scope': 'sets where the new token’s role applies',
  'remote token --expires': 'sets how long the new token works',
  'remote token --json': null,
};

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One surface: its name in the JSON and how to read it from the code. */
interface Surface {
  readonly name: string;
  readonly read: () => Json | Promise<Json>;
}

const SURFACES: readonly Surface[] = [
  {
    name: 'imports',
    read: () => ({
      admitted: [
        { module: HV_MODULE, name: HV_HYPERCALL, kind: 'function', signature: formatSig(HYPERCALL_SIG), when: 'always' },
        ...[...WASI_SIGNATURES].map(([name, sig]) => ({ module: WASI_MODULE, name, kind: 'function', signature: formatSig(sig), when: 'the partition spec enables wasi' })),
      ],
      addedByInstrumentation: [
        { module: FUEL_MODULE, name: FUEL_BUDGET, kind: 'global', signature: 'i64 (immutable)', when: 'limits.fuel or limits.cpu' },
        { module: FUEL_MODULE, name: FUEL_EXHAUSTED, kind: 'function', signature: '() -> ()', when: 'limits.fuel or limits.cpu' },
      ],
      exportsAddedByInstrumentation: [FUEL_GLOBAL, START_EXPORT],
      anyOther: 'refused at load: ERR_IMPORT_DENIED',
    }),
  },
  {
    name: 'hypercalls',
    read: () => {
      const docs = docComments('host/abi/codes.ts', 'HvCall');
      const generic = statusesIn('host/abi/guest-memory.ts').concat(['INVALID_CALL', 'ACCESS_DENIED', 'RATE_LIMITED', 'INVALID_ADDRESS', 'TOO_LARGE']);
      return {
        maxTransferBytes: HV_MAX_TRANSFER,
        statuses: Object.fromEntries(Object.entries(HvStatus).map(([k, v]) => [k, v])),
        everyCall: [...new Set(generic)].sort(),
        calls: (Object.entries(HvCall) as [HvCallName, number][]).map(([name, code]) => {
          const device = CALL_DEVICE.get(code) ?? 'core';
          const file = device === 'core' ? 'host/abi/dispatcher.ts' : `host/devices/${device}.ts`;
          return { code: `0x${code.toString(16).padStart(4, '0')}`, name, device, shape: docs.get(name) ?? '', statuses: statusesIn(file) };
        }),
        unassignedCodes: 'HV_STATUS_INVALID_CALL, reported as a violation',
      };
    },
  },
  {
    name: 'wasi',
    read: () => ({
      module: WASI_MODULE,
      functions: [...WASI_SIGNATURES].map(([name, sig]) => ({ name, signature: formatSig(sig) })),
      errno: Object.fromEntries(Object.entries(Errno)),
    }),
  },
  {
    name: 'cli',
    read: async () => {
      const widening: { command: string; option: string; widens: string }[] = [];
      const unclassified: string[] = [];
      for (const [command, table] of await cliOptions()) {
        for (const option of [...table.keys()].sort()) {
          const key = `${command} --${option}`;
          if (!(key in CLI_ACCESS)) unclassified.push(key);
          else if (CLI_ACCESS[key] !== null) widening.push({ command, option: `--${option}`, widens: CLI_ACCESS[key]! });
        }
      }
      const found = new Set([...(await cliOptions())].flatMap(([command, table]) => [...table.keys()].map((o) => `${command} --${o}`)));
      const stale = Object.keys(CLI_ACCESS).filter((key) => !found.has(key));
      if (stale.length > 0) throw new Error(`CLI_ACCESS in test/surface/generate.ts classifies options that no longer exist: ${stale.join(', ')}`);
      if (unclassified.length > 0) {
        throw new Error(`CLI options not classified in test/surface/generate.ts (CLI_ACCESS): ${unclassified.join(', ')}; say whether each widens access`);
      }
      return { wideningOptions: widening };
    },
  },
  {
    name: 'management',
    read: async () => {
      // The route table needs its dependencies only to handle requests: listing it touches none.
      const routes = buildRoutes({} as Parameters<typeof buildRoutes>[0]);
      // `serve --dashboard` adds the dashboard's routes (host/labs/dashboard.ts): listing them
      // watches a hypervisor's events, so a real (empty) one is given and closed after.
      const hv = new Hypervisor();
      const dashboard = new Dashboard({ labs: true });
      let dashboardRoutes: typeof routes;
      try {
        dashboardRoutes = dashboard.routes({ host: { hv, get: () => { throw new Error('no partitions'); } } as never, server: {} as never });
      } finally {
        await dashboard.close();
        await hv.close();
      }
      const row = (r: (typeof routes)[number]) => ({
        method: r.method,
        url: r.url,
        auth: r.auth,
        permission: r.permission,
        ...(r.bodyLimit !== undefined ? { bodyLimitBytes: r.bodyLimit } : {}),
      });
      return { routes: routes.map(row), dashboardRoutes: dashboardRoutes.map(row) };
    },
  },
];

/** The whole surface, as the JSON text docs/attack-surface.json holds. */
export async function generateAttackSurface(): Promise<string> {
  const out: Record<string, Json> = {
    $comment:
      'Generated by test/surface/generate.ts from the code; npm test fails when it differs. Review a change against docs/THREAT-MODEL.md before recording it (npm run attack-surface). A call\'s statuses are those its device\'s source (the dispatcher\'s for core calls) can return; everyCall lists those any call can return.',
  };
  for (const surface of SURFACES) out[surface.name] = await surface.read();
  return `${JSON.stringify(out, null, 2)}\n`;
}

/** docs/attack-surface.json. */
export const SURFACE_FILE = path.join(REPO_ROOT, 'docs', 'attack-surface.json');
