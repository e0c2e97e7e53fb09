import { Transform } from 'node:stream';
import { escapeText } from '../escape.ts';

/**
 * The CLI's stderr, shared by a guest and the host. The rule (README, "Command line"; `--help`):
 *
 * - The **verdict** of a run that did not end with the guest's own exit is the **last** line of
 *   stderr and starts with its error code: `ERR_<CODE>: <message>`, the message escaped to one
 *   line (host/escape.ts). It always starts on a line of its own.
 * - Host notes (violations, dropped input) start with `wasmvisor: ` and are escaped likewise.
 * - A guest's own stderr bytes pass through as they are (they are its stream), with one
 *   exception: a guest line that would read as a verdict or a host note — one that starts with
 *   `ERR_` or `wasmvisor`, also after the last carriage return, which is where a terminal would
 *   show it starting — is printed as `[guest] ` followed by the line, escaped. A line is held
 *   until its newline to decide, up to MAX_HELD bytes: a longer one is decided on those, and
 *   the rest of it, if unmarked, passes with its carriage returns shown as `\r`.
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

  /** The guards over a guest's streams written through guestBytes (call's output events), one per stream. */
  private readonly guestLines = { stdout: new GuestLines(), stderr: new GuestLines() };

  /** One line of the guest's stderr (without its newline). */
  guestLine(line: string): void {
    this.write(looksReserved(line) ? `[guest] ${escapeText(line)}\n` : `${line}\n`);
  }

  /** Bytes of one of the guest's streams, printed here through the guard (lines complete at their newline; end with guestEnd). */
  guestBytes(chunk: Uint8Array, stream: 'stdout' | 'stderr' = 'stderr'): void {
    for (const piece of this.guestLines[stream].push(chunk)) this.raw(piece);
  }

  /** The end of the guest's streams: held unfinished lines go out. */
  guestEnd(): void {
    for (const lines of [this.guestLines.stdout, this.guestLines.stderr]) for (const piece of lines.end()) this.raw(piece);
  }

  /**
   * The guard as a stream, for a guest's stderr piped to ours with backpressure:
   * `partition.stderr.pipe(stderr.guestStream()).pipe(process.stderr)`. Its 'end' comes after
   * its last bytes were handed on, so what this object writes after it follows them.
   */
  guestStream(): Transform {
    const lines = new GuestLines();
    const pass = (t: Transform, pieces: Uint8Array[]) => {
      for (const piece of pieces) {
        this.track(piece);
        t.push(piece);
      }
    };
    return new Transform({
      transform(chunk: Uint8Array, _encoding, done) {
        pass(this, lines.push(chunk));
        done();
      },
      flush(done) {
        pass(this, lines.end());
        done();
      },
    });
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

  /** Guest bytes as they are: no line of their own (they continue the guest's line). */
  private raw(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.out.write(bytes);
    this.track(bytes);
  }

  private track(bytes: Uint8Array): void {
    if (bytes.length > 0) this.atLineStart = bytes[bytes.length - 1] === 0x0a;
  }

  private write(text: string): void {
    if (text === '') return;
    // A verdict or note after a guest's unfinished line still starts a line of its own.
    const prefix = !this.atLineStart && !text.startsWith('\n') ? '\n' : '';
    this.out.write(prefix + text);
    this.atLineStart = text.endsWith('\n');
  }
}


/** True when a guest line would read as the CLI's own: it starts (after its last `\r`) with `ERR_` or `wasmvisor`. */
function looksReserved(line: string): boolean {
  const shown = line.slice(line.lastIndexOf('\r') + 1);
  return /^\s*(ERR_|wasmvisor)/i.test(line) || /^\s*(ERR_|wasmvisor)/i.test(shown);
}

/** Most bytes of one guest line held back to decide how to print it (see the rule above). */
export const MAX_HELD = 64 * 1024;

const NL = 0x0a;
const CR = 0x0d;
const utf8 = new TextDecoder();
const encoder = new TextEncoder();

/**
 * The guest-stderr half of the rule, on bytes: lines are held until their newline (at most
 * MAX_HELD bytes), then passed on as they are, or marked and escaped when they would read as
 * the host's. Never recursive, never more than MAX_HELD bytes held.
 */
export class GuestLines {
  private held: Uint8Array[] = [];
  private heldBytes = 0;
  /** `start`: at a line's start; `raw` or `marked`: in the rest of a line longer than MAX_HELD, decided so. */
  private mode: 'start' | 'raw' | 'marked' = 'start';

  /** The bytes to print for `chunk` (which is copied where held). */
  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let at = 0;
    while (at < chunk.length) {
      const nl = chunk.indexOf(NL, at);
      const end = nl < 0 ? chunk.length : nl + 1;
      const room = MAX_HELD - this.heldBytes;
      if (end - at > room) {
        // The line goes on past what may be held: decide on its first MAX_HELD bytes.
        this.hold(chunk.subarray(at, at + room));
        this.decide(false, out);
        at += room;
        continue;
      }
      this.hold(chunk.subarray(at, end));
      if (nl >= 0) this.decide(true, out);
      at = end;
    }
    return out;
  }

  /** The bytes to print at the end of the stream (an unfinished line). */
  end(): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (this.heldBytes > 0) this.decide(false, out);
    this.mode = 'start';
    return out;
  }

  private hold(piece: Uint8Array): void {
    if (piece.length === 0) return;
    this.held.push(Uint8Array.from(piece)); // a copy (a Buffer's slice would be a view)
    this.heldBytes += piece.length;
  }

  private decide(complete: boolean, out: Uint8Array[]): void {
    const line = this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held);
    this.held = [];
    this.heldBytes = 0;
    const body = complete ? line.subarray(0, line.length - 1) : line;
    const continuing = this.mode !== 'start';
    if (!continuing) this.mode = looksReserved(Buffer.from(body.buffer, body.byteOffset, body.length).toString('latin1')) ? 'marked' : 'raw';
    if (this.mode === 'marked') {
      out.push(encoder.encode(`${continuing ? '' : '[guest] '}${escapeText(utf8.decode(body))}${complete ? '\n' : ''}`));
    } else if (continuing && body.includes(CR)) {
      // The rest of a long unmarked line: a carriage return there could show a forged line start.
      out.push(showCarriageReturns(line));
    } else {
      out.push(line);
    }
    if (complete) this.mode = 'start';
  }
}

/** `bytes` with every carriage return shown as the two characters `\\r`. */
function showCarriageReturns(bytes: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (let cr = bytes.indexOf(CR); cr >= 0; cr = bytes.indexOf(CR, at)) {
    parts.push(bytes.subarray(at, cr), SHOWN_CR);
    at = cr + 1;
  }
  parts.push(bytes.subarray(at));
  return Buffer.concat(parts);
}
const SHOWN_CR = encoder.encode('\\r');

/** The command's stderr: every subcommand writes guest lines, notes and its verdict through it. */
export const stderr = new Stderr();
