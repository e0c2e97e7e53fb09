/**
 * `npm run fuzz -- [--minutes N] [--seed S] [--target NAME]... [--guided] [--save-corpus] [--no-stats]`
 *
 * Runs every target (or the named ones) for N minutes in all (default 1), from seed S (default:
 * the clock), and prints iterations per target and per second. A finding is shrunk, saved as a
 * reproducer in test/fuzz/crashes/<target>/ (it then runs in every CI run until fixed and
 * stays as a regression test), and the run goes on with the next target. `--guided` fuzzes the
 * byte targets with the coverage-guided mutator (guided.ts) instead; `--save-corpus` keeps the
 * inputs that found new coverage in test/fuzz/corpus/<target>/. Each target's iterations are
 * added to test/fuzz/stats.json (stats.ts) with the commit they ran on, unless `--no-stats`.
 */
import { parseArgs } from 'node:util';
import { fuzz, saveCorpus, saveReproducer, stringify, type Outcome } from './framework.ts';
import { guided } from './guided.ts';
import { PARSERS } from './targets/bytes.ts';
import { TARGETS } from './targets/index.ts';
import { stats as moduleStats } from './targets/modules.ts';
import { currentCommit, recordRun, STATS_FILE } from './stats.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '1' },
    seed: { type: 'string' },
    target: { type: 'string', multiple: true },
    guided: { type: 'boolean', default: false },
    'save-corpus': { type: 'boolean', default: false },
    'no-stats': { type: 'boolean', default: false },
  },
});
const minutes = Number(values.minutes);
if (!(minutes > 0)) throw new Error(`--minutes must be a positive number, got ${values.minutes}`);
const seed = values.seed !== undefined ? Number(values.seed) | 0 : Date.now() | 0;
const chosen = values.target ?? [];
const targets = TARGETS.filter((t) => chosen.length === 0 || chosen.includes(t.name));
if (targets.length === 0) throw new Error(`no target named ${chosen.join(', ')} (known: ${TARGETS.map((t) => t.name).join(', ')})`);
const each = (minutes * 60_000) / targets.length;

const { commit, dirty } = currentCommit();
const started = new Date().toISOString();
/** Adds a target's run to stats.json (unless --no-stats). */
const record = (target: string, iterations: number, inputs: number, millis: number, findings: number): void => {
  if (values['no-stats']) return;
  recordRun({ target, commit, dirty, started, seed, iterations, inputs, seconds: Math.round(millis / 100) / 10, findings });
};
console.log(`fuzz: ${targets.length} targets, ${minutes} min in all, seed ${seed}${values.guided ? ', guided byte targets' : ''}`);
let findings = 0;
for (const target of targets) {
  const parser = PARSERS.find((p) => `parse:${p.name}` === target.name);
  if (values.guided && parser !== undefined) {
    const g = guided(parser, each, seed);
    console.log(`${target.name.padEnd(16)} ${String(g.iterations).padStart(10)} inputs ${(g.iterations / (each / 1000)).toFixed(0).padStart(8)}/s  guided: ${g.corpus.length} in corpus, ${g.blocks} blocks covered`);
    // The corpus is committed: only small finds (the largest real bases are tens of KiB), at most 200.
    if (values['save-corpus']) for (const bytes of g.corpus.slice(parser.bases().length).filter((b) => b.length <= 4096).slice(0, 200)) saveCorpus(target.name, { bytes });
    record(target.name, g.iterations, g.iterations, each, g.failure ? 1 : 0);
    if (g.failure) {
      findings++;
      console.log(`  FINDING: ${g.failure.error}\n  bytes: ${stringify(g.failure.bytes)}`);
    }
    continue;
  }
  await target.setup?.();
  let outcome: Outcome;
  try {
    outcome = await fuzz(target, { seed, millis: each });
  } finally {
    await target.teardown?.();
  }
  console.log(`${target.name.padEnd(16)} ${String(outcome.iterations).padStart(12)} iterations ${(outcome.iterations / (outcome.millis / 1000)).toFixed(0).padStart(8)}/s  (${outcome.inputs} inputs)  ${target.surface}`);
  record(target.name, outcome.iterations, outcome.inputs, outcome.millis, outcome.failure === null ? 0 : 1);
  if (outcome.failure !== null) {
    findings++;
    console.log(`  FINDING (seed ${outcome.failure.seed}): ${outcome.failure.error.split('\n')[0]}\n  reproducer: ${saveReproducer(outcome)}`);
  }
}
if (targets.some((t) => t.name === 'modules')) {
  const refused = [...moduleStats.refused].map(([k, v]) => `${k} ${v}`).join(', ');
  console.log(`modules: ${moduleStats.loads} loads, slowest ${moduleStats.slowestLoadMs.toFixed(0)} ms, peak RSS ${moduleStats.peakRssMiB.toFixed(0)} MiB, admitted ${moduleStats.admitted}, refused: ${refused || 'none'}; differential: ${moduleStats.compared} compared, ${moduleStats.inconclusive} inconclusive (stack exhausted)`);
}
if (!values['no-stats']) console.log(`fuzz: iterations recorded in ${STATS_FILE} (commit ${commit.slice(0, 12)}${dirty ? ', uncommitted changes' : ''})`);
console.log(findings === 0 ? 'fuzz: no findings' : `fuzz: ${findings} finding(s)`);
process.exitCode = findings === 0 ? 0 : 1;
