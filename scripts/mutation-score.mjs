// The mutation score of a StrykerJS report and the floor check of `npm run mutate -- --check`.
// Kept apart from scripts/mutate.mjs (which runs Stryker) so the arithmetic is tested in npm test.
import { readFileSync } from 'node:fs';

/** Statuses that count: a mutant the tests detected, and one they did not. Others (Ignored, CompileError, RuntimeError) are left out, as Stryker does. */
const DETECTED = new Set(['Killed', 'Timeout']);
const UNDETECTED = new Set(['Survived', 'NoCoverage']);

/**
 * Counts the mutants of a Stryker JSON report (mutation-testing-report-schema) by status and
 * computes Stryker's mutation score: detected / (detected + undetected), in percent.
 * A report with no valid mutant has the score null: there is nothing to measure, which is not 100 %.
 * A mutant still Pending means an unfinished run: an error, never a score.
 */
export function scoreReport(report) {
  if (report === null || typeof report !== 'object' || typeof report.files !== 'object' || report.files === null) {
    throw new Error('not a Stryker mutation report: no "files" object');
  }
  const counts = { Killed: 0, Timeout: 0, Survived: 0, NoCoverage: 0, Ignored: 0, CompileError: 0, RuntimeError: 0 };
  for (const [file, { mutants }] of Object.entries(report.files)) {
    if (!Array.isArray(mutants)) throw new Error(`not a Stryker mutation report: ${file} has no "mutants" array`);
    for (const { status } of mutants) {
      if (!(status in counts)) throw new Error(`${file}: a mutant has status ${JSON.stringify(status)}: the run did not finish`);
      counts[status]++;
    }
  }
  let detected = 0;
  let undetected = 0;
  for (const [status, n] of Object.entries(counts)) {
    if (DETECTED.has(status)) detected += n;
    else if (UNDETECTED.has(status)) undetected += n;
  }
  const valid = detected + undetected;
  return { counts, detected, undetected, score: valid === 0 ? null : (100 * detected) / valid };
}

/**
 * Reads a floors file: `{ "floors": { "<folder>": <percent 0..100> | null, ... } }`. null is a
 * folder not yet measured in full: its score is printed, and a floor is to be recorded from it.
 */
export function readFloors(file) {
  const data = JSON.parse(readFileSync(file, 'utf8'));
  const floors = data?.floors;
  if (floors === null || typeof floors !== 'object' || Array.isArray(floors)) throw new Error(`${file}: expected { "floors": { "<folder>": percent } }`);
  for (const [folder, floor] of Object.entries(floors)) {
    if (floor !== null && (typeof floor !== 'number' || !(floor >= 0 && floor <= 100))) {
      throw new Error(`${file}: floors.${folder} must be a percentage from 0 to 100 (or null: not measured yet), got ${JSON.stringify(floor)}`);
    }
  }
  return floors;
}

/**
 * One line for a folder's score and its verdict against `floor`: undefined (the folder is missing
 * from the floors file) fails; null (recorded as not measured yet) passes and asks for a floor.
 */
export function verdict(folder, result, floor) {
  const { counts, score } = result;
  const pct = score === null ? 'no mutants' : `${score.toFixed(2)} %`;
  const detail = `killed ${counts.Killed}, timeout ${counts.Timeout}, survived ${counts.Survived}, no coverage ${counts.NoCoverage}, ignored ${counts.Ignored}`;
  if (floor === undefined) return { ok: false, line: `${folder}: ${pct} (${detail}); no floor recorded for ${folder}` };
  if (floor === null) return { ok: true, line: `${folder}: ${pct} (${detail}); no floor yet: record one in mutation-floors.json` };
  const ok = score !== null && score >= floor;
  return { ok, line: `${folder}: ${pct} (${detail}); floor ${floor} %: ${ok ? 'ok' : 'BELOW THE FLOOR'}` };
}
