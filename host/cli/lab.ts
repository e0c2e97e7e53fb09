/**
 * `wasmvisor lab [--port n] | --list | <name> [--no-compare] | --all [--no-compare]`: the
 * isolation labs (host/labs/). The labs' bundle loads only for this command.
 */
import { adopt, loadLabs } from './mgmt-loader.ts';

export const LAB_USAGE = `  wasmvisor lab [--port <n>]                  the dashboard and the labs, in a browser on 127.0.0.1
  wasmvisor lab --list                        the labs, live or coming
  wasmvisor lab <name> [--no-compare]         one lab in this terminal: the attack, then the defence off
  wasmvisor lab --all [--no-compare]          every live lab, in order`;

export function labCommand(argv: string[]): Promise<number> {
  return adopt(async () => (await loadLabs()).labMain(argv));
}
