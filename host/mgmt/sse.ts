/**
 * Reading Server-Sent Events as the management API writes them (event-stream.ts): events end
 * with a blank line; `event:` names one, `data:` carries one line of JSON. Shared by the CLI's
 * client and the dashboard's page (it has no Node dependency).
 */

/** Takes the complete events off the front of `buffer`: calls `onEvent` for each with data, returns what is left. */
export function takeEvents(buffer: string, onEvent: (name: string, data: string) => void): string {
  let end: number;
  while ((end = buffer.indexOf('\n\n')) >= 0) {
    const block = buffer.slice(0, end);
    buffer = buffer.slice(end + 2);
    let name = 'message';
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) name = line.slice(7);
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
    if (data !== '') onEvent(name, data);
  }
  return buffer;
}
