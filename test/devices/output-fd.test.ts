/**
 * `devices.console.outputFd`, as README.md states it: "Only a regular file or a non-terminal
 * character device is accepted (a pipe or a terminal could keep the worker waiting past its
 * watchdog)". A pipe is refused with a message that says what is accepted (it said "a regular
 * file or /dev/null", while /dev/zero or /dev/full were accepted too); a fd that is not open is
 * named as such.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Hypervisor } from '../../host/index.ts';
import { guest } from '../helpers.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wv-outputfd-'));
const hv = new Hypervisor({ dataDir: tmp });
const fds: number[] = [];
afterAll(async () => {
  await hv.close();
  for (const fd of fds) closeSync(fd);
  rmSync(tmp, { recursive: true, force: true });
});
const open = (file: string, flags: string) => {
  const fd = openSync(file, flags);
  fds.push(fd);
  return fd;
};

describe('devices.console.outputFd', () => {
  it('takes a regular file and a character device that is not a terminal', async () => {
    for (const [name, fd] of [
      ['file', open(path.join(tmp, 'out.txt'), 'w')],
      ['null', open('/dev/null', 'w')],
      ['zero', open('/dev/zero', 'w')],
    ] as const) {
      const p = await hv.createPartition({ name, module: guest('hello'), devices: { console: { outputFd: { stdout: fd } } } });
      await p.destroy();
    }
  });

  it('refuses a pipe, saying what it takes and why, and names a fd that is not open', async () => {
    const fifo = path.join(tmp, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const fd = open(fifo, 'r+'); // read and write: opening does not wait for a reader
    await expect(hv.createPartition({ name: 'pipe', module: guest('hello'), devices: { console: { outputFd: { stderr: fd } } } })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: `devices.console.outputFd.stderr: fd ${fd} must be a regular file or a character device that is not a terminal, such as /dev/null (a pipe or a terminal could make the partition wait past its watchdog: use partition.stderr)`,
    });
    const closed = 0x7ffffff0; // within the schema's range, above any fd this process has open (a closed one could be reused meanwhile)
    await expect(hv.createPartition({ name: 'closed', module: guest('hello'), devices: { console: { outputFd: { stdout: closed } } } })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: `devices.console.outputFd.stdout: fd ${closed} is not open`,
    });
  });
});
