/**
 * Reads a V8 CPU profile (a .cpuprofile of `node --cpu-prof` or the inspector's Profiler) and
 * splits its self time into categories (bench/block.mjs --profile). No dependency: the format is
 * JSON (nodes with a call frame and their children; samples with the time since the previous one,
 * in µs).
 *
 * Code bundled by esbuild (dist/*.js, or a bench's own bundle) is mapped back to its source module
 * by the `// host/...ts` comment esbuild writes before each module, so a frame of a bundle is known
 * to be the block engine (host/storage/image.ts) or the dispatcher, not just "worker.js".
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Source module of each line of a bundle: [first line (0-based), module] sorted by line. */
function bundleModules(url) {
  let text;
  try {
    text = readFileSync(url.startsWith('file:') ? fileURLToPath(url) : url, 'utf8');
  } catch {
    return [];
  }
  const starts = [];
  text.split('\n').forEach((line, i) => {
    const m = /^\/\/ ((?:host|guests|sdk)\/\S+\.ts)$/.exec(line);
    if (m) starts.push([i, m[1]]);
  });
  return starts;
}

/** A profile with, per node, its frame's module and its parent. */
export function loadProfile(file) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const bundles = new Map();
  const byId = new Map();
  for (const n of p.nodes) byId.set(n.id, n);
  for (const n of p.nodes) for (const c of n.children ?? []) byId.get(c).parent = n;
  for (const n of p.nodes) {
    const { url, lineNumber } = n.callFrame;
    let module = url;
    if (/\.m?js$/.test(url) && !url.startsWith('node:')) {
      if (!bundles.has(url)) bundles.set(url, bundleModules(url));
      const starts = bundles.get(url);
      let lo = 0;
      for (let i = 0; i < starts.length && starts[i][0] <= lineNumber; i++) lo = i;
      if (starts.length > 0) module = starts[lo][1];
    }
    n.module = module;
  }
  return { profile: p, byId };
}

/** The frames of a sample, leaf first. */
function stackOf(node) {
  const frames = [];
  for (let n = node; n !== undefined; n = n.parent) frames.push(n);
  return frames;
}

/**
 * Self time (µs) per category of a profile's samples, and the leading frames of each category.
 * `classify(frames)` gets a sample's frames leaf first and returns a category name, or null to
 * leave the sample out.
 */
export function summarize(loaded, classify) {
  const { profile, byId } = loaded;
  const totals = new Map();
  const frames = new Map();
  let all = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    // A sample's weight is the interval since the previous one. A thread blocked in a system call
    // (an fsync) takes the profiler's signal only when the call returns: the sample that ends the
    // gap is the one still inside the call, so the gap is its time.
    const dt = profile.timeDeltas[i];
    const stack = stackOf(byId.get(profile.samples[i]));
    const category = classify(stack);
    if (category === null) continue;
    totals.set(category, (totals.get(category) ?? 0) + dt);
    const leaf = stack[0].callFrame;
    const key = `${category}\t${leaf.functionName || '(anonymous)'} ${stack[0].module.replace(/^node:internal\//, '')}`;
    frames.set(key, (frames.get(key) ?? 0) + dt);
    all += dt;
  }
  return { total: all, totals, frames };
}
