/**
 * docs/THREAT-MODEL.md's STRIDE tables name the test that proves each mitigation: every one of
 * them must exist, so a renamed or deleted test cannot leave a claim without its proof.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../fuzz/framework.ts';

const doc = readFileSync(path.join(REPO_ROOT, 'docs', 'THREAT-MODEL.md'), 'utf8');
const stride = doc.slice(doc.indexOf('## STRIDE by boundary'), doc.indexOf('\n## ', doc.indexOf('## STRIDE by boundary') + 1));

/** The boundaries and their rows: `### name` then `| S | threat | mitigation | test |` lines. */
function tables(): Map<string, { letter: string; tests: string }[]> {
  const out = new Map<string, { letter: string; tests: string }[]>();
  let current: { letter: string; tests: string }[] | null = null;
  for (const line of stride.split('\n')) {
    const heading = line.match(/^### (.+)$/);
    if (heading) out.set(heading[1]!, (current = []));
    const row = line.match(/^\| ([STRIDE]) \|.*\| ([^|]*) \|$/);
    if (row && current) current.push({ letter: row[1]!, tests: row[2]! });
  }
  return out;
}

/** `file` › name references in a cell (a bare `file` names the whole suite). */
function references(cell: string): { file: string; name: string | null }[] {
  return cell.split(/;\s*(?=`)/).filter((r) => r.trim() !== '').map((r) => {
    const m = r.trim().match(/^`([^`]+)`(?: › (.+))?$/);
    if (!m) throw new Error(`unreadable test reference: ${r}`);
    return { file: m[1]!, name: m[2]?.trim() ?? null };
  });
}

describe('docs/THREAT-MODEL.md STRIDE tables', () => {
  const boundaries = tables();

  it('has a table for each boundary, each with all six categories', () => {
    expect([...boundaries.keys()]).toEqual(['Guest ↔ host', 'Guest ↔ guest', 'App ↔ runtime', 'Network ↔ host', 'Management ↔ host', 'Disk ↔ host']);
    for (const [name, rows] of boundaries) expect(rows.map((r) => r.letter), name).toEqual(['S', 'T', 'R', 'I', 'D', 'E']);
  });

  it('names only tests that exist', () => {
    const missing: string[] = [];
    for (const [boundary, rows] of boundaries) {
      for (const row of rows) {
        const refs = references(row.tests);
        if (refs.length === 0) missing.push(`${boundary} ${row.letter}: no test named`);
        for (const { file, name } of refs) {
          const full = path.join(REPO_ROOT, file);
          if (!existsSync(full)) {
            missing.push(`${boundary} ${row.letter}: ${file} does not exist`);
            continue;
          }
          const text = readFileSync(full, 'utf8');
          const quoted = name !== null && ["'", '"', '`'].some((q) => text.includes(`${q}${name}${q}`));
          if (name !== null && !quoted) missing.push(`${boundary} ${row.letter}: ${file} has no test named "${name}"`);
        }
      }
    }
    expect(missing).toEqual([]);
  });
});
