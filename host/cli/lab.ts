/**
 * `wasmvisor lab [--port n] | --list | <name> [--no-compare] | --all [--no-compare]`: the
 * isolation labs (host/labs/). The labs' bundle loads only for this command.
 */
import { adopt, loadLabs } from './mgmt-loader.ts';

export const LAB_USAGE = `  wasmvisor lab [--port <n>]                  the dashboard and the labs, in a browser on 127.0.0.1
  wasmvisor lab --list                        the labs, live or coming
  wasmvisor lab <name> [--no-compare]         one lab in this terminal: the attack, then the defence off
  wasmvisor lab --all [--no-compare]          every live lab, in order

--port defaults to 0 (a free port); the address printed ends in #token=..., the page's credential.
--no-compare skips the runs with the defence off. Teachers' guide: docs/LABS.md.

Exit status: 0 when every defence held (and every comparison showed the attack succeeding
without it), or when the dashboard is stopped (Ctrl-C); 1 when a defence did not hold or a lab
is marked coming (ERR_NOT_IMPLEMENTED), or the dashboard's --port is in use (ERR_INVALID_STATE);
2 bad usage (ERR_INVALID_ARGUMENT).`;

export function labCommand(argv: string[]): Promise<number> {
  return adopt(async () => (await loadLabs()).labMain(argv));
}
