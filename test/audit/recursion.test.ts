/**
 * "No recursion on guest-shaped data": the host's call graph has no cycle, except the ones
 * listed below with their reason (re-entered from a timer or an event, on a fresh stack; or
 * walking a structure the host itself wrote). Built with the TypeScript checker over host/**: every call whose target resolves
 * to a function, method or function-valued variable of host/ is an edge; a cycle (a function that
 * can reach itself on one stack) fails the test, so a recursive walk over a guest's tree, module
 * or input cannot come back unnoticed. Calls through an interface resolve to the interface, not to
 * its implementations: recursion through one would not be seen here (the WASI backends' walks are
 * iterative and have their own deep-tree test in test/wasi/hostile.test.ts).
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
  // Host-written, bounded structures.
  ['host/schema/check.ts expects', 'walks a schema written in host/schema (its depth is ours), never a checked value'],
]);

function functionLike(node: ts.Node): node is ts.FunctionLikeDeclaration {
  return ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) || ts.isArrowFunction(node) || ts.isFunctionExpression(node) || ts.isGetAccessor(node) || ts.isSetAccessor(node) || ts.isConstructorDeclaration(node);
}

function nameOf(node: ts.Node): string {
  const file = path.relative(root, node.getSourceFile().fileName);
  const parts: string[] = [];
  for (let n: ts.Node | undefined = node; n !== undefined && !ts.isSourceFile(n); n = n.parent) {
    if ((ts.isFunctionDeclaration(n) || ts.isMethodDeclaration(n) || ts.isClassDeclaration(n) || ts.isGetAccessor(n)) && n.name) parts.unshift(n.name.getText());
    else if (ts.isConstructorDeclaration(n)) parts.unshift('constructor');
    else if (ts.isVariableDeclaration(n) || ts.isPropertyAssignment(n) || ts.isPropertyDeclaration(n)) parts.unshift(n.name.getText());
  }
  return `${file} ${parts.join('.')}`;
}

function hostCallGraph(): Map<string, Set<string>> {
  const config = ts.getParsedCommandLineOfConfigFile(path.join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })!;
  const program = ts.createProgram(config.fileNames.filter((f) => f.startsWith(hostDir)), config.options);
  const checker = program.getTypeChecker();
  const graph = new Map<string, Set<string>>();
  for (const sf of program.getSourceFiles()) {
    if (!sf.fileName.startsWith(hostDir)) continue;
    const visit = (node: ts.Node, current: string | null): void => {
      const here = functionLike(node) ? nameOf(node) : current;
      if (ts.isCallExpression(node) && here !== null) {
        const decl = checker.getResolvedSignature(node)?.getDeclaration();
        if (decl && decl.getSourceFile().fileName.startsWith(hostDir) && functionLike(decl)) {
          const target = nameOf(decl);
          if (!graph.has(here)) graph.set(here, new Set());
          graph.get(here)!.add(target);
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
  }, 180_000);
});
