export interface MergeSummary {
  /** For each source file, the part its mutants come from ("(current source)" when that copy is the current file). */
  files: Record<string, string>;
  /** For each test file, the part whose copy is kept, and whether it is the current source. */
  testFiles: Record<string, { from: string; current: boolean }>;
  /** For each part, the test files whose tests were dropped (its copy is not the kept one). */
  droppedTests: Record<string, string[]>;
}
export function mergeIncrementalReports(
  parts: Array<{ name: string; report: unknown }>,
  current: (path: string) => string | undefined,
): { report: unknown; summary: MergeSummary };
