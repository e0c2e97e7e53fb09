/** Runs the built CLI (dist/cli.js) as a real process and collects what it printed. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

const root = new URL('../../', import.meta.url);
export const CLI = fileURLToPath(new URL('dist/cli.js', root));

export interface CliResult {
  /** The exit status (null if the process died of a signal, e.g. our own safety timeout). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall-clock time from spawn to exit, in ms. */
  ms: number;
}

export interface CliOptions {
  /** Working directory. Default: the package root. */
  cwd?: string;
  /** Written to stdin, which is then closed. Default: stdin is closed at once (empty input). */
  input?: string;
  /** Leave stdin open (like an idle terminal) instead of closing it. */
  keepStdinOpen?: boolean;
  /** Safety net: the child is killed (SIGKILL) after this many ms. */
  killAfterMs?: number;
}

/** Runs `node dist/cli.js ...args` from the package root and collects everything it printed. */
export function cli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd ?? fileURLToPath(root),
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.killAfterMs ?? 60_000,
      killSignal: 'SIGKILL',
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    // The CLI may exit (and close its stdin) before reading everything we write.
    child.stdin.on('error', () => {});
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: performance.now() - started }));
    if (!opts.keepStdinOpen) child.stdin.end(opts.input ?? '');
    else if (opts.input !== undefined) child.stdin.write(opts.input);
  });
}

/**
 * Runs a bash command line (for its pipes and process substitution: `cat k | …`, `<(cmd)`) and
 * collects what it printed; `$NODE` and `$CLI` name node and the built CLI. Stdin is closed.
 */
export function shell(line: string, opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('bash', ['-c', line], {
      cwd: opts.cwd ?? fileURLToPath(root),
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
      killSignal: 'SIGKILL',
      env: { ...process.env, NODE_OPTIONS: '', NODE: process.execPath, CLI, ...opts.env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: performance.now() - started }));
  });
}

/** The lines of a stream's output; the output must end with a newline (or be empty). */
export function lines(text: string): string[] {
  if (text === '') return [];
  expect(text.endsWith('\n'), `output ends with a newline: ${JSON.stringify(text)}`).toBe(true);
  return text.slice(0, -1).split('\n');
}

