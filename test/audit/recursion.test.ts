/**
 * "No recursion on guest-shaped data": the host's call graph has no cycle, except the ones
 * listed below with their reason (re-entered from a timer or an event, on a fresh stack; or
 * walking a structure the host itself wrote). Built with the TypeScript checker over host/**: every call whose target resolves
 * to a function, method or function-valued variable of host/ is an edge, and so is handing a
 * function literal to a call that may run it at once (forEach, map, a helper; not then/catch/
 * finally, timers or event listeners, which run it later on a fresh stack). A cycle (a function
 * that can reach itself on one stack) fails the test, so a recursive walk over a guest's tree,
 * module or input cannot come back unnoticed. Calls through an interface resolve to the interface,
 * not to its implementations: recursion through one would not be seen here (the WASI backends'
 * walks are iterative and have their own deep-tree test in test/wasi/hostile.test.ts).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const hostDir = path.join(root, 'host') + path.sep;

/**
 * Cycles that are not recursion on guest-shaped data, each with its reason. Anything else found
 * fails the test: make it iterative, or add it here with the reason it is bounded.
 */
const ALLOWED = new Map([
  // Timer/event re-entries: a fresh stack each time.
  ['host/net/forward.ts PortForward.flush', 'a stalled connection retries its flush from a setTimeout'],
  ['host/partition/partition.ts Partition.onEnd | host/partition/partition.ts Partition.spawn', 'a failed reactor is spawned again from a setTimeout; onEnd comes from the worker exit event'],
  [
    'host/mgmt/host.ts ManagedHost.instantiate | host/mgmt/host.ts ManagedHost.onExit | host/mgmt/host.ts ManagedHost.scheduleRestart',
    'a managed partition is restarted from a setTimeout; onExit comes from the partition exit event',
  ],
  // State machines that re-enter once: the state set before the call ends the cycle.
  [
    'host/partition/run.ts WorkerRun.drain | host/partition/run.ts WorkerRun.fail | host/partition/run.ts WorkerRun.finish',
    'a drain that fails sets drainFailed before fail(); finish() sets ended first, so the drain it runs returns at once (depth 2)',
  ],
  [
    'host/worker/context.ts PartitionContext.advance | host/worker/context.ts PartitionContext.advanceRare | host/worker/context.ts PartitionContext.end',
    'end() sets the phase to CLOSING before advance(), which calls end() (itself or through advanceRare) only from IDLE, CALL, MAIN or INIT (depth 2)',
  ],
  ['host/security/audit.ts AuditLog.syncSoon | host/security/audit.ts AuditLog.syncSoon.<anonymous:417>', "the audit log's next fdatasync is started from the previous one's completion callback (libuv), on a fresh stack"],
  // Host-written, bounded structures.
  ['host/security/canonical.ts write', 'canonical JSON of host-built or schema-checked values; depth capped at MAX_DEPTH (32), deeper is ERR_INVALID_ARGUMENT'],
  ['host/schema/check.ts expects', 'walks a schema written in host/schema (its depth is ours), never a checked value'],
  ['host/schema/json.ts convert | host/schema/json.ts convert.<anonymous:37> | host/schema/json.ts convertEach', 'converts the host-written schemas to JSON Schema, never caller data'],
]);

function functionLike(node: ts.Node): node is ts.FunctionLikeDeclaration {
  return ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) || ts.isArrowFunction(node) || ts.isFunctionExpression(node) || ts.isGetAccessor(node) || ts.isSetAccessor(node) || ts.isConstructorDeclaration(node);
}

/** A name for a function: by its declaration, or for an anonymous one, its enclosing function's and its line. */
function nameOf(node: ts.Node): string {
  const sf = node.getSourceFile();
  const file = path.relative(root, sf.fileName);
  const parts: string[] = [];
  for (let n: ts.Node | undefined = node; n !== undefined && !ts.isSourceFile(n); n = n.parent) {
    if ((ts.isFunctionDeclaration(n) || ts.isMethodDeclaration(n) || ts.isClassDeclaration(n) || ts.isGetAccessor(n)) && n.name) parts.unshift(n.name.getText());
    else if (ts.isConstructorDeclaration(n)) parts.unshift('constructor');
    else if (ts.isVariableDeclaration(n) || ts.isPropertyAssignment(n) || ts.isPropertyDeclaration(n)) parts.unshift(n.name.getText());
    else if ((ts.isArrowFunction(n) || ts.isFunctionExpression(n)) && !ts.isVariableDeclaration(n.parent) && !ts.isPropertyAssignment(n.parent) && !ts.isPropertyDeclaration(n.parent)) {
      parts.unshift(`<anonymous:${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1}>`);
    }
  }
  return `${file} ${parts.join('.')}`;
}

/**
 * Calls that run a function given to them later, on a fresh stack (promise reactions, timers,
 * events, node:fs's callback calls such as fdatasync): a function literal passed to one is not
 * called by the function that passes it. A literal passed to anything else (forEach, map, a
 * helper) may be called at once, so it counts as called by the function that passes it.
 */
const DEFERRED = new Set(['then', 'catch', 'finally', 'setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask', 'nextTick', 'on', 'once', 'addListener', 'addEventListener', 'watch', 'fdatasync', 'fsync']);

function calleeName(call: ts.CallExpression): string | null {
  const e = call.expression;
  if (ts.isIdentifier(e)) return e.text;
  if (ts.isPropertyAccessExpression(e)) return e.name.text;
  return null;
}

function hostCallGraph(): Map<string, Set<string>> {
  const config = ts.getParsedCommandLineOfConfigFile(path.join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })!;
  // Only host/ is read: the standard library and the dependencies' types are empty stubs. A call
  // whose receiver's type comes from a dependency is then not followed (about 3% of the calls
  // that resolve into host/ with the full types), for a check three to four times faster.
  const options: ts.CompilerOptions = { ...config.options, noLib: true, types: [] };
  const compilerHost = ts.createCompilerHost(options);
  const read = compilerHost.getSourceFile.bind(compilerHost);
  compilerHost.getSourceFile = (name, language, ...rest) => (name.startsWith(hostDir) ? read(name, language, ...rest) : ts.createSourceFile(name, '', language));
  const program = ts.createProgram(config.fileNames.filter((f) => f.startsWith(hostDir)), options, compilerHost);
  const checker = program.getTypeChecker();
  const graph = new Map<string, Set<string>>();
  for (const sf of program.getSourceFiles()) {
    if (!sf.fileName.startsWith(hostDir)) continue;
    const edge = (from: string, to: string): void => {
      if (!graph.has(from)) graph.set(from, new Set());
      graph.get(from)!.add(to);
    };
    const visit = (node: ts.Node, current: string | null): void => {
      const here = functionLike(node) ? nameOf(node) : current;
      if (ts.isCallExpression(node) && here !== null) {
        const decl = checker.getResolvedSignature(node)?.getDeclaration();
        if (decl && decl.getSourceFile().fileName.startsWith(hostDir) && functionLike(decl)) edge(here, nameOf(decl));
        // An immediately called function literal, or one handed to a call that may run it now.
        if (ts.isArrowFunction(node.expression) || ts.isFunctionExpression(node.expression)) edge(here, nameOf(node.expression));
        else if (!DEFERRED.has(calleeName(node) ?? '')) {
          for (const arg of node.arguments) if (ts.isArrowFunction(arg) || ts.isFunctionExpression(arg)) edge(here, nameOf(arg));
        }
      }
      ts.forEachChild(node, (child) => visit(child, here));
    };
    visit(sf, null);
  }
  return graph;
}

/** Strongly connected components with a cycle (Tarjan, iterative). */
function cycles(graph: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const out: string[][] = [];
  let next = 0;
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const work: { v: string; it: Iterator<string> }[] = [];
    const open = (v: string): void => {
      index.set(v, next);
      low.set(v, next++);
      stack.push(v);
      onStack.add(v);
      work.push({ v, it: (graph.get(v) ?? new Set()).values() });
    };
    open(start);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const step = top.it.next();
      if (!step.done) {
        const w = step.value;
        if (!index.has(w)) open(w);
        else if (onStack.has(w)) low.set(top.v, Math.min(low.get(top.v)!, index.get(w)!));
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1]!.v;
        low.set(parent, Math.min(low.get(parent)!, low.get(top.v)!));
      }
      if (low.get(top.v) === index.get(top.v)) {
        const scc: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          scc.push(w);
        } while (w !== top.v);
        if (scc.length > 1 || graph.get(top.v)?.has(top.v)) out.push(scc.sort());
      }
    }
  }
  return out;
}

describe('the host never recurses', () => {
  it('has no call cycle in host/ beyond the listed, bounded ones', () => {
    const found = cycles(hostCallGraph()).map((c) => c.join(' | '));
    expect(found.filter((c) => !ALLOWED.has(c))).toEqual([]);
  }, 120_000);
});
