/**
 * The published package works (issue 11): the project is packed as `npm publish` would pack it,
 * installed with `npm i <tarball>` into an empty app (dependencies from npm's cache, as CI has
 * it after `npm ci`; the registry only if the cache lacks one), and from there:
 * - every example of README.md (each code block marked `<!-- example: name -->`) runs as written,
 *   including the CommonJS one;
 * - the CLI: --version, run --help, run with --fuel (binaryen at run time), demo;
 * - the types: a TypeScript consumer type-checks against the shipped declarations, and a typo in
 *   a spec is a type error;
 * - the AssemblyScript recipe of docs/GUESTS.md builds guests against the installed SDK;
 * - only the runtime dependencies are installed, and everything the shipped code imports is one;
 * - the install is --engine-strict: every installed package accepts the Node running the test.
 * A file missing from `files` or a dependency missing from `dependencies` fails here.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { HV_ABI_MAJOR, HV_ABI_MINOR } from '../../host/abi/codes.ts';
import { LABS } from '../../host/labs/catalog.ts';

/** What the hello guest prints about the ABI it runs on. */
const ABI_LINE = `ABI version ${HV_ABI_MAJOR}.${HV_ABI_MINOR}`;

// Packing (with declarations) and installing take tens of seconds on a loaded 2-core machine.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 600_000 });

const root = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  scripts: Record<string, string>;
  engines: { node: string };
};
const work = mkdtempSync(path.join(os.tmpdir(), 'wv-pack-'));
const app = path.join(work, 'app');
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** `npm ls --json`'s tree. */
interface Tree {
  version?: string;
  dependencies?: Record<string, Tree>;
}

const run = promisify(execFile);
/** Runs a command in the app; resolves with its output, whatever its exit status. */
async function inApp(file: string, args: string[], options: { input?: string; cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = run(file, args, { cwd: options.cwd ?? app, timeout: 120_000, maxBuffer: 1 << 24, env: { ...process.env, NODE_OPTIONS: '' } });
  if (options.input !== undefined) child.child.stdin?.end(options.input);
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(error) };
  }
}
const cli = (...args: string[]) => inApp(process.execPath, [path.join(app, 'node_modules/wasmvisor/dist/cli.js'), ...args]);

/** The code blocks marked `<!-- example: name -->` in a markdown file. */
function examples(file: string): Map<string, string> {
  const text = readFileSync(path.join(root, file), 'utf8');
  const found = new Map<string, string>();
  for (const m of text.matchAll(/<!-- example: ([\w.-]+) -->\n```\w*\n([\s\S]*?)\n```/g)) found.set(m[1]!, m[2]! + '\n');
  return found;
}

beforeAll(async () => {
  // What `prepack` does, but without rebuilding the bundle and the guests other test files are
  // running against (npm test built them a moment ago): only the declarations are new here.
  expect(pkg.scripts.prepack).toBe('node scripts/build.mjs --host --guests --types');
  execFileSync(process.execPath, [path.join(root, 'scripts/build.mjs'), '--types'], { cwd: root, stdio: 'pipe' });
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
  ) as { filename: string; files: { path: string }[] }[];
  const tarball = path.join(work, packed[0]!.filename);
  mkdirSync(app);
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  // --engine-strict: every package installed must accept the Node that runs this (the README
  // promises 20.19 and later): a dependency of a dependency that wants Node 22 fails here.
  execFileSync('npm', ['install', '--engine-strict', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: app, stdio: 'pipe' });
});

describe('the installed package', () => {
  it('installs its runtime dependencies, and none of its devDependencies', () => {
    const tree = JSON.parse(execFileSync('npm', ['ls', '--all', '--json'], { cwd: app, encoding: 'utf8' })) as Tree;
    const wasmvisor = tree.dependencies?.wasmvisor;
    // npm ls also lists the optional peer (assemblyscript) as an empty entry when it is absent.
    const installedDeps = Object.entries(wasmvisor?.dependencies ?? {}).filter(([, d]) => d.version !== undefined);
    expect(installedDeps.map(([name]) => name).sort()).toEqual(Object.keys(pkg.dependencies).sort());
    for (const [name, version] of Object.entries(pkg.dependencies)) {
      expect(version, `${name} is pinned exactly`).toMatch(/^\d+\.\d+\.\d+$/);
      expect(wasmvisor?.dependencies?.[name]?.version, name).toBe(version);
    }
    // A devDependency may be present only as some runtime dependency's own dependency.
    const runtime = new Set<string>();
    const walk = (deps: Record<string, Tree> | undefined) => {
      for (const [name, sub] of Object.entries(deps ?? {})) {
        if (runtime.has(`${name}@${sub.version}`)) continue;
        runtime.add(name);
        runtime.add(`${name}@${sub.version}`);
        walk(sub.dependencies);
      }
    };
    walk(Object.fromEntries(installedDeps));
    const installed = readdirSync(path.join(app, 'node_modules')).flatMap((n) => (n.startsWith('@') ? readdirSync(path.join(app, 'node_modules', n)).map((s) => `${n}/${s}`) : [n]));
    for (const dev of Object.keys(pkg.devDependencies)) if (!runtime.has(dev)) expect(installed, `devDependency ${dev} is installed`).not.toContain(dev);
  });

  it('imports at run time only what it declares as dependencies (or Node built-ins)', () => {
    const dist = path.join(app, 'node_modules/wasmvisor/dist');
    const imported = new Set<string>();
    for (const file of readdirSync(dist).filter((f) => f.endsWith('.js'))) {
      const text = readFileSync(path.join(dist, file), 'utf8');
      for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["']([^"'./][^"']*)["']/g)) imported.add(m[1]!);
    }
    const packages = [...imported].filter((s) => !s.startsWith('node:')).map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!));
    expect(packages.length).toBeGreaterThan(0);
    for (const name of packages) expect(Object.keys(pkg.dependencies), `${name} is imported by the shipped code`).toContain(name);
  });

  it("README.md's table of what the package installs names every dependency and the optional peer, and nothing else", () => {
    const text = readFileSync(path.join(root, 'README.md'), 'utf8');
    const at = text.indexOf('| package | kind | why |');
    expect(at, 'README.md has the table').toBeGreaterThanOrEqual(0);
    const rows = text.slice(at).split('\n').slice(2);
    const named = rows.slice(0, rows.findIndex((l) => !l.startsWith('|'))).flatMap((l) => [...l.split('|')[1]!.matchAll(/`(@?[\w./-]+)`/g)].map((m) => m[1]!));
    const peers = Object.keys((JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { peerDependencies: Record<string, string> }).peerDependencies);
    expect(named.sort()).toEqual([...Object.keys(pkg.dependencies), ...peers].sort());
  });

  it("states the Node versions it needs: 20.19 for require(esm)", () => {
    expect(pkg.engines.node).toBe('>=20.19.0');
  });
});

describe("README.md's examples, run from the app", () => {
  const readme = examples('README.md');
  // What each example must print (substrings, in order), besides exiting 0.
  const expected: Record<string, string[]> = {
    'embedding.mjs': ['[hello] Hello from a Wasmvisor partition!', '[hello] arg[0]=from', 'exited 0'],
    'schema.mjs': ['Wasmvisor manifest', 'limits', 'true'],
    'manifest.mjs': ['Hello from a Wasmvisor partition!', 'arg[2]=manifest', 'exited'],
    'plugin.mjs': ['<h1>Hello</h1>', 'SPREAD OVER FOUR WORKERS'],
    'storage.mjs': ['boot 1:', 'boot 2:'],
    'network.mjs': ['pong is 10.0.0.', 'delivered', 'app got pong app'],
    'wasi.mjs': ['a note from the host', 'exit code 0'],
    'commonjs.cjs': ['true ERR_INVALID_ARGUMENT partition spec "x": limits.timeout: unknown key; did you mean timeoutMs?'],
  };

  it('every marked example has an expectation here, and every expectation an example', () => {
    expect([...readme.keys()].sort()).toEqual(Object.keys(expected).sort());
  });

  for (const [name, wants] of Object.entries(expected)) {
    it(name, async () => {
      const source = readme.get(name);
      expect(source, `README.md has <!-- example: ${name} -->`).toBeDefined();
      const dir = mkdtempSync(path.join(app, 'example-'));
      writeFileSync(path.join(dir, name), source!);
      const r = await inApp(process.execPath, [name], { cwd: dir });
      expect(r.stderr, `${name} wrote to stderr`).not.toMatch(/Error|ERR_/);
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
      let at = 0;
      for (const want of wants) {
        const found = r.stdout.indexOf(want, at);
        expect(found, `${name} prints ${JSON.stringify(want)}; it printed:\n${r.stdout}`).toBeGreaterThanOrEqual(0);
        at = found + want.length;
      }
      if (name === 'storage.mjs') {
        const counts = [...r.stdout.matchAll(/boot (\d): .*?(\d+)/g)].map((m) => Number(m[2]));
        expect(counts[1], 'the second boot sees the first boot\'s count').toBe(counts[0]! + 1);
      }
    });
  }
});

describe('the CLI, from the app', () => {
  it('--version is the package version; run --help is run\'s help', async () => {
    expect((await cli('--version')).stdout).toBe(`wasmvisor ${pkg.version}\n`);
    const help = await cli('run', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout.startsWith('Usage:\n  wasmvisor run')).toBe(true);
  });

  it('npx wasmvisor run with --fuel: binaryen loads from the installed dependencies', async () => {
    const r = await inApp('npx', ['--no-install', 'wasmvisor', 'run', '--fuel', '50000000', 'node_modules/wasmvisor/build/guests/hello.wasm', 'a']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`Hello from a Wasmvisor partition!\n${ABI_LINE}\narg[0]=a\n`);
    expect(r.code).toBe(0);
  });

  it('npx wasmvisor demo', async () => {
    const r = await inApp('npx', ['--no-install', 'wasmvisor', 'demo']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('[hello] Hello from a Wasmvisor partition!');
    expect(r.stdout).toContain('network: pong received');
  });

  it('npx wasmvisor lab: the labs, their guests and the dashboard ship', async () => {
    const list = await inApp('npx', ['--no-install', 'wasmvisor', 'lab', '--list']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^\s*1\s+memory-isolation\s+live/m);
    const r = await inApp('npx', ['--no-install', 'wasmvisor', 'lab', 'narrow-interface']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^RESULT: HELD/m);
    for (const f of ['index.html', 'app.js', 'app.css']) expect(readdirSync(path.join(app, 'node_modules/wasmvisor/dist/labs/web'))).toContain(f);
  });

  it("the JSON Schemas the README names ship, and the manifest example's $schema path is a file of the package", () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const named = [...new Set([...readme.matchAll(/`wasmvisor\/schema\/([\w-]+\.json)`/g)].map((m) => m[1]!))].sort();
    const dir = path.join(app, 'node_modules/wasmvisor/dist/schema');
    expect(named).toEqual(readdirSync(dir).sort());
    const schemaPath = /\$schema: '\.\/(node_modules\/wasmvisor\/[^']+)'/.exec(readme)?.[1];
    expect(schemaPath, "README's manifest example sets $schema").toBeDefined();
    // An editor resolves $schema as a path from the manifest (in the app's folder), not through the package's exports.
    expect(readFileSync(path.join(app, schemaPath!), 'utf8')).toBe(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  });

  it("the guests the README names ship under the names it gives, and it names every one that ships", () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const paragraph = readme.slice(readme.indexOf('The built demo guests ship'), readme.indexOf('## Embedding'));
    const names = (after: string, before: string) => {
      const part = paragraph.slice(paragraph.indexOf(after), paragraph.indexOf(before, paragraph.indexOf(after)));
      return [...part.matchAll(/`([a-z-]+)`/g)].map((m) => m[1]!).sort();
    };
    const shipped = (dir: string) => readdirSync(path.join(app, 'node_modules/wasmvisor', dir)).filter((f) => f.endsWith('.wasm')).map((f) => f.slice(0, -5)).sort();
    // Besides the demo guests the README names, the package ships the guests the labs run (docs/LABS.md).
    const demo = names('(AssemblyScript guests:', ')');
    expect([...new Set([...demo, ...LABS.flatMap((lab) => lab.guests)])].sort()).toEqual(shipped('build/guests'));
    expect(names('(WASI C programs:', ')')).toEqual(shipped('guests/c'));
    expect(shipped('guests/rust')).toEqual(['wc']);
  });

  it('the C and Rust examples and the C header ship, and run', async () => {
    expect(readFileSync(path.join(app, 'node_modules/wasmvisor/include/hv.h'), 'utf8')).toBe(readFileSync(path.join(root, 'include/hv.h'), 'utf8'));
    const c = await cli('run', 'node_modules/wasmvisor/examples/c/hello.wasm', 'npm');
    expect(c.stdout).toContain('Hello, npm!');
    const rust = await cli('call', 'node_modules/wasmvisor/examples/rust/upper.wasm', 'upper', '--input', 'from the package');
    expect(rust.stdout).toBe('FROM THE PACKAGE');
  });
});

describe('TypeScript consumers', () => {
  it('type-check against the shipped declarations; a misspelt spec key is a type error', async () => {
    writeFileSync(
      path.join(app, 'consumer.ts'),
      `import { Hypervisor, type PartitionSpec, type PartitionExit, schemas } from 'wasmvisor';
const spec: PartitionSpec = { name: 'a', module: 'x.wasm', limits: { timeoutMs: 0 }, devices: { console: { linesPerSecond: 5 } } };
// @ts-expect-error: linesPerSec is not a console option
const typo: PartitionSpec = { name: 'a', module: 'x.wasm', devices: { console: { linesPerSec: 5 } } };
const hv = new Hypervisor({ dataDir: '.' });
const exit: Promise<PartitionExit> = hv.createPartition(spec).then((p) => p.exited);
void typo; void exit; void schemas.PartitionSpecSchema;
`,
    );
    const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
    const r = await inApp(process.execPath, [tsc, '--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--typeRoots', path.join(root, 'node_modules/@types'), 'consumer.ts']);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  // A reader pastes README.md's examples into a TypeScript project as often as into a .mjs file:
  // every js and ts block must type-check under strict against the shipped declarations, in one
  // tsc program (seconds, not one per block). Errors are reported at the README's own lines.
  it("README.md's code blocks type-check under strict, module nodenext, against the shipped declarations", async () => {
    const blocks = readmeCodeBlocks();
    const dir = path.join(app, 'readme-types');
    mkdirSync(dir, { recursive: true });
    const files = new Map<string, number>();
    for (const b of blocks) {
      // AssemblyScript (the SDK's i32, `wasmvisor/assembly`) is built by asc in the GUESTS.md tests below.
      if (b.source.includes("from 'wasmvisor/assembly'")) continue;
      // An ES module example is pasted into a .mts file; a CommonJS one stays JavaScript, checked
      // with checkJs (TypeScript types a bare require() only in a JS file). A fragment (an
      // unmarked ts block) takes as given the names around it in the README, on one first line
      // so that lines map one to one: `Hypervisor`, a guest `module`, a `hv` and an `audit` sink.
      const file = b.name?.endsWith('.cjs') ? b.name : `${(b.name ?? `readme-line-${b.line}`).replace(/\.mjs$/, '')}.mts`;
      const declares = (id: string) => new RegExp(`\\b(?:const|let|var|function|class)\\s+${id}\\b|\\bimport\\b[^;\\n]*\\b${id}\\b[^;\\n]*\\bfrom\\b`).test(b.source);
      const given =
        b.name === undefined
          ? [
              declares('Hypervisor') ? '' : "import { Hypervisor } from 'wasmvisor';",
              declares('module') ? '' : 'declare const module: URL;',
              declares('hv') ? '' : 'declare const hv: Hypervisor;',
              declares('audit') ? '' : 'declare function audit(event: unknown): void;',
            ].join(' ')
          : '';
      writeFileSync(path.join(dir, file), `${given}\n${b.source}`);
      files.set(file, b.line);
    }
    expect(files.size, 'the README shows examples to type-check').toBeGreaterThanOrEqual(8);
    writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          noEmit: true,
          allowJs: true,
          checkJs: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [path.join(root, 'node_modules/@types')],
        },
        files: [...files.keys()],
      }),
    );
    const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
    const r = await inApp(process.execPath, [tsc, '-p', 'tsconfig.json', '--pretty', 'false'], { cwd: dir });
    // file(line,col): error → README.md:line:col, the first line of each file being the given names.
    const located = (r.stdout + r.stderr).replace(/^([\w.-]+)\((\d+),(\d+)\)/gm, (whole, file: string, line: string, col: string) =>
      files.has(file) ? `README.md:${files.get(file)! + Number(line) - 2}:${col} (${file})` : whole,
    );
    expect(located).toBe('');
    expect(r.code).toBe(0);
  });
});

/** README.md's js and ts code blocks: their text, the README line of their first line, and their `<!-- example: name -->` if marked. */
function readmeCodeBlocks(): { name: string | undefined; line: number; source: string }[] {
  const text = readFileSync(path.join(root, 'README.md'), 'utf8');
  return [...text.matchAll(/(?:<!-- example: ([\w.-]+) -->\n)?```(?:js|ts)\n([\s\S]*?)\n```/g)].map((m) => ({
    name: m[1],
    line: text.slice(0, m.index + m[0].indexOf('\n', m[0].indexOf('```')) + 1).split('\n').length,
    source: m[2]! + '\n',
  }));
}

describe("docs/GUESTS.md's AssemblyScript recipe, against the installed SDK", () => {
  const guests = examples('docs/GUESTS.md');
  const asc = path.join(root, 'node_modules/assemblyscript/bin/asc.js');

  it('a command: import from wasmvisor, build with the shipped preset, run', async () => {
    writeFileSync(path.join(app, 'hello.ts'), guests.get('hello.ts')!);
    const built = await inApp(process.execPath, [asc, 'hello.ts', '--config', 'node_modules/wasmvisor/assembly/asconfig.json', '--outFile', 'hello.wasm']);
    expect(built.stderr).toBe('');
    expect(built.code).toBe(0);
    expect(await cli('run', 'hello.wasm', 'Ada')).toMatchObject({ code: 0, stdout: 'hello from Ada\n' });
  });

  it('the same without the preset: --runtime stub --use abort=__hv_abort --exportStart _start', async () => {
    writeFileSync(path.join(app, 'hello2.ts'), guests.get('hello.ts')!);
    const built = await inApp(process.execPath, [asc, 'hello2.ts', '--runtime', 'stub', '--use', 'abort=__hv_abort', '--exportStart', '_start', '-O3', '--outFile', 'hello2.wasm']);
    expect(built.code, built.stderr).toBe(0);
    expect(await cli('run', 'hello2.wasm', 'Grace')).toMatchObject({ code: 0, stdout: 'hello from Grace\n' });
  });

  it("the WASI section's command runs as written: a shipped C program reads a host folder given with --dir", async () => {
    const text = readFileSync(path.join(root, 'docs/GUESTS.md'), 'utf8');
    const line = /^npx wasmvisor run --dir \S+ node_modules\/wasmvisor\/guests\/c\/cat\.wasm .*$/m.exec(text.slice(text.indexOf('## WASI programs')))?.[0];
    expect(line, 'docs/GUESTS.md shows the command').toBeDefined();
    const dir = mkdtempSync(path.join(app, 'wasi-'));
    symlinkSync(path.join(app, 'node_modules'), path.join(dir, 'node_modules'));
    mkdirSync(path.join(dir, 'data'));
    writeFileSync(path.join(dir, 'data/note.txt'), 'a note from the host\n');
    const r = await inApp('bash', ['-c', line!], { cwd: dir });
    expect(r).toMatchObject({ code: 0, stdout: 'a note from the host\n', stderr: '' });
  });

  it('a reactor: --runtime incremental --exportStart _initialize, then call', async () => {
    writeFileSync(path.join(app, 'upper.ts'), guests.get('upper.ts')!);
    const built = await inApp(process.execPath, [asc, 'upper.ts', '--config', 'node_modules/wasmvisor/assembly/asconfig.json', '--runtime', 'incremental', '--exportStart', '_initialize', '--outFile', 'upper.wasm']);
    expect(built.code, built.stderr).toBe(0);
    expect(await cli('call', 'upper.wasm', 'upper', '--input', 'hello')).toMatchObject({ code: 0, stdout: 'HELLO' });
  });
});

/** Starts the app's `wasmvisor serve` with `args` in `cwd`; resolves once it listens, with its address and a stop that SIGTERMs it and waits for its exit. */
async function serveFromApp(args: string[], cwd: string): Promise<{ url: string; output: () => string; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [path.join(app, 'node_modules/wasmvisor/dist/cli.js'), 'serve', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    return exited;
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve did not listen within 60 s:\n${out}`)), 60_000);
      const look = () => {
        const m = /listening on (https:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      };
      child.stdout.on('data', look);
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`serve exited with ${code} before listening:\n${out}`));
      });
    });
    return { url, output: () => out, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

// README.md's "Run a host" and docs/MANAGEMENT.md's "The CLI as a client", from an app that has
// just run `npm i wasmvisor`. The README's block runs as written, line by line in one bash, with
// two changes only: serve takes a free port (--port 0) instead of 8443, which the lines after it
// then name, and `logs -f` (which follows for ever) is ended after a second. (`npx wasmvisor` is
// the app's own bin, called directly.)
describe('running a host, as README.md and docs/MANAGEMENT.md show it, from the app', () => {
  const readmeText = readFileSync(path.join(root, 'README.md'), 'utf8');
  const block = /\n## Run a host\n[\s\S]*?```sh\n([\s\S]*?)\n```/.exec(readmeText)?.[1] ?? '';
  const dir = path.join(app, 'run-a-host');
  let host: Awaited<ReturnType<typeof serveFromApp>> | undefined;
  afterAll(async () => {
    await host?.stop();
  });

  it("README.md's block: serve, two tokens, a remote run, call, ps, logs, metrics and audit", async () => {
    const lines = block.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
    const serveLine = lines.shift()!;
    expect(serveLine).toMatch(/^npx wasmvisor serve (.*?) &\s+#/);
    mkdirSync(dir);
    symlinkSync(path.join(app, 'node_modules'), path.join(dir, 'node_modules'));
    host = await serveFromApp([...serveLine.replace(/\s*&\s+#.*$/, '').split(/\s+/).slice(3), '--port', '0'], dir);
    const port = new URL(host.url).port;
    // Each line, then a marker with its exit status; `logs -f` ended by timeout after a second (status 124).
    const script = lines
      .map((l, i) => `${l.replaceAll('127.0.0.1:8443', `127.0.0.1:${port}`).replace(/^(\$W logs -f .*)$/, 'timeout 1 $1')}\nstatus=$?; printf '\\n@@ %s %s\\n' ${i} $status`)
      .join('\n');
    // `npx wasmvisor` is the app's bin (the tests above run npx itself): here it is that bin run
    // directly, which spares npm's start-up (about half a second) on each of the block's eight lines.
    const bin = path.join(app, 'node_modules/.bin/wasmvisor');
    const r = await inApp('bash', ['-c', `npx() { if [ "$1" = wasmvisor ]; then shift; ${JSON.stringify(bin)} "$@"; else command npx "$@"; fi; }\n${script}`], { cwd: dir });
    const results = r.stdout.split(/\n@@ (\d+) (\d+)\n/);
    // split gives [out0, i0, status0, out1, i1, status1, …, rest].
    const byLine = new Map<string, { out: string; status: number }>();
    for (let k = 0; k + 2 < results.length; k += 3) byLine.set(lines[Number(results[k + 1])]!, { out: results[k]!, status: Number(results[k + 2]) });
    expect(byLine.size, `every line ran; stderr:\n${r.stderr}`).toBe(lines.length);
    for (const [line, { status }] of byLine) expect(status, `${line}\n${r.stderr}`).toBe(/ logs -f /.test(line) ? 124 : 0);
    const out = (re: RegExp) => [...byLine].find(([line]) => re.test(line))![1].out;
    expect(readFileSync(path.join(dir, 'admin.token'), 'utf8')).toMatch(/^wvt_[0-9a-f]{16}_[\w-]{43}\n$/);
    expect(readFileSync(path.join(dir, 'ci.token'), 'utf8')).toMatch(/^wvt_[0-9a-f]{16}_[\w-]{43}\n$/);
    expect(out(/\$W run /)).toContain('"state": "running"');
    expect(out(/\| \$W call web upper/)).toBe('HELLO'); // the comment's promise
    expect(out(/^\$W ps$/)).toMatch(/^web +reactor +running +always /m);
    expect(out(/^curl /)).toMatch(/^wasmvisor_up 1$/m);
    expect(out(/^\$W audit --partition web$/)).toMatch(/ partition\.create \/partitions\/web success/);
  });

  it("docs/MANAGEMENT.md's client commands, each as the manual gives it, against that host", async () => {
    expect(host, 'the host of the test before').toBeDefined();
    // `wasmvisor` as a global install has it: the app's node_modules/.bin on PATH.
    const W = ['wasmvisor', '--host', host!.url, '--token-file', 'admin.token', '--ca', 'host/tls/ca.crt'];
    const env = `PATH=${path.join(app, 'node_modules/.bin')}:$PATH`;
    const remote = (...args: string[]) => inApp('bash', ['-c', `${env} "$@"`, 'bash', ...W, ...args], { cwd: dir });
    const ok = async (...args: string[]) => {
      const r = await remote(...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    expect(JSON.parse(await ok('ps', '--json'))).toMatchObject([{ name: 'web', state: 'running' }]);
    expect(JSON.parse(await ok('stop', 'web'))).toMatchObject({ desired: 'stopped' });
    expect(JSON.parse(await ok('start', 'web'))).toMatchObject({ state: 'running', desired: 'running' });
    expect(await ok('logs', '--tail', '100', 'web')).toBe('');
    writeFileSync(path.join(dir, 'in.txt'), 'from a file');
    expect(await ok('call', 'web', 'upper', '--input-file', 'in.txt')).toBe('FROM A FILE');
    expect(await ok('call', 'web', 'upper', '--input', 'in.txt')).toBe('FROM A FILE'); // remote --input names a file
    const failed = await remote('call', 'web', 'fail', '--input-file', 'in.txt');
    expect(failed).toMatchObject({ code: 7, stdout: 'bad input' }); // the export's status & 0xff, its output on stdout
    expect(failed.stderr).toMatch(/^ERR_GUEST_CALL: /m);
    expect(JSON.parse(await ok('metrics', 'web'))).toMatchObject({ name: 'web' });
    expect(await ok('metrics', '--prometheus')).toMatch(/^wasmvisor_up 1$/m);
    const audit = JSON.parse(await ok('audit', '--partition', 'web', '--action', 'partition.stop', '--actor', 'token:admin', '--json')) as { records: { action: string }[] };
    expect(audit.records.map((r) => r.action)).toEqual(['partition.stop']);
    expect(JSON.parse(await ok('attest', '--nonce', '00112233445566778899'))).toMatchObject({ nonce: '00112233445566778899' });
    expect(JSON.parse(await ok('whoami'))).toMatchObject({ principal: 'token:admin' });
    const token = (await ok('token', 'create', '--name', 'ro', '--role', 'Reader', '--scope', '/', '--expires', '1d')).trim();
    expect(token).toMatch(/^wvt_[0-9a-f]{16}_[\w-]{43}$/);
    const id = token.split('_')[1]!;
    expect(await ok('token', 'list')).toMatch(new RegExp(`^${id} ro +Reader +/ +active `, 'm'));
    await ok('token', 'revoke', id);
    // The ci token of the README's block: an Operator at /partitions/web, refused at / (77).
    const ci = await inApp('bash', ['-c', `${env} wasmvisor --host ${host!.url} --token-file ci.token --ca host/tls/ca.crt metrics`], { cwd: dir });
    expect(ci).toMatchObject({ code: 77, stdout: '' });
    expect(ci.stderr).toMatch(/^ERR_ACCESS_DENIED: token:ci may not metrics\/read at \/$/m);
    // web was run without --disk: `rm --wipe` deletes it and says nothing was wiped.
    expect(JSON.parse(await ok('rm', 'web', '--wipe'))).toEqual({ destroyed: 'web', wiped: false });
    expect(await ok('ps')).not.toMatch(/^web /m);
    // A graceful stop: SIGTERM, exit 0.
    expect(await host!.stop()).toBe(0);
    expect(host!.output()).toMatch(/wasmvisor serve: stopped/);
  });
});
