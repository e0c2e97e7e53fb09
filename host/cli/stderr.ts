import { escapeText } from '../escape.ts';

/**
 * The CLI's stderr, shared by a guest and the host. The rule (README, "Command line"; `--help`):
 *
 * - The **verdict** of a run that did not end with the guest's own exit is the **last** line of
 *   stderr and starts with its error code: `ERR_<CODE>: <message>`, the message escaped to one
 *   line (host/escape.ts). It always starts on a line of its own.
 * - Host notes (violations, dropped input) start with `wasmvisor: ` and are escaped likewise.
 * - A guest's own stderr lines pass through as they are (they are its stream), with one
 *   exception: a guest line that would read as a verdict or a host note — one that starts with
 *   `ERR_` or `wasmvisor`, also after the last carriage return, which is where a terminal would
 *   show it starting — is printed as `[guest] ` followed by the line, escaped.
 *
 * So a line that starts with `ERR_` is the CLI's verdict and nothing else, and a script that
 * reads the last line of stderr together with the exit status cannot be misled by a guest.
 * What a guest's bytes look like on a terminal (colours, cursor movement) is its own business
 * on stdout and stderr alike; everything the host prints about it is escaped.
 */
export class Stderr {
  /** True when the last byte written was a newline (or nothing was written). */
  private atLineStart = true;

  constructor(private readonly out: NodeJS.WritableStream = process.stderr) {}

  /** One line of the guest's stderr (without its newline). */
  guestLine(line: string): void {
    this.write(looksReserved(line) ? `[guest] ${escapeText(line)}\n` : `${line}\n`);
  }

  /** A host note: `wasmvisor: <text>`, escaped. */
  note(text: string): void {
    this.write(`wasmvisor: ${escapeText(text)}\n`);
  }

  /** A block of host text printed as is (e.g. `--stats`): only numbers and host names. */
  block(text: string): void {
    this.write(text);
  }

  /** The verdict line, `CODE: message`; call it last. */
  verdict(code: string, message: string): void {
    this.write(`${code}: ${escapeText(message)}\n`);
  }

  private write(text: string): void {
    if (text === '') return;
    // A verdict or note after a guest's unfinished line still starts a line of its own.
    const prefix = !this.atLineStart && !text.startsWith('\n') ? '\n' : '';
    this.out.write(prefix + text);
    this.atLineStart = text.endsWith('\n');
  }
}

/** The command's stderr: every subcommand writes guest lines, notes and its verdict through it. */
export const stderr = new Stderr();

/** True when a guest line would read as the CLI's own: it starts (after its last `\r`) with `ERR_` or `wasmvisor`. */
function looksReserved(line: string): boolean {
  const shown = line.slice(line.lastIndexOf('\r') + 1);
  return /^\s*(ERR_|wasmvisor)/i.test(line) || /^\s*(ERR_|wasmvisor)/i.test(shown);
}
