/**
 * The labs' bundle (dist/labs.js): the dashboard and the isolation labs. The CLI loads it only
 * for `wasmvisor lab` and `wasmvisor serve --dashboard`, so neither the library nor `run` loads it.
 */
export { labMain } from './cli.ts';
export { Dashboard, describeLabs } from './dashboard.ts';
export type { DashboardOptions } from './dashboard.ts';
export { serve, isLoopback } from '../mgmt/serve.ts';
export { LABS, findLab } from './catalog.ts';
export { runLab, isLive } from './runner.ts';
export { Telemetry } from './telemetry.ts';
export type { LabDefinition, LabEvent, LabResult, Expectation } from './lab.ts';
