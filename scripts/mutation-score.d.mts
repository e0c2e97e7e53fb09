export type MutantStatus = 'Killed' | 'Timeout' | 'Survived' | 'NoCoverage' | 'Ignored' | 'CompileError' | 'RuntimeError';
export interface ScoreResult {
  counts: Record<MutantStatus, number>;
  detected: number;
  undetected: number;
  /** Percent, or null when the report holds no valid mutant. */
  score: number | null;
}
export function scoreReport(report: unknown): ScoreResult;
export function readFloors(file: string): Record<string, number | null>;
export function verdict(folder: string, result: ScoreResult, floor: number | null | undefined): { ok: boolean; line: string };
