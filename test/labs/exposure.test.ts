/**
 * What the dashboard must never do: show guest memory contents, or listen beyond loopback.
 *
 * A canary string lives in guests' memory (a partition holding it), on a guest's disk, in frames
 * crossing the switch and in a plugin's call input, while the dashboard watches them. Everything
 * the dashboard sends (its event stream, its lab list) and everything the page renders (the DOM
 * in Chromium) is collected and searched for the canary, raw, hex and base64. A positive control
 * proves the collection sees what the dashboard shows: the partitions' names, which it does show.
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hypervisor, type PartitionSpec } from '../../host/index.ts';
import { serve, type RunningHost } from '../../host/mgmt/serve.ts';
import { Dashboard } from '../../host/labs/dashboard.ts';
import { guest } from '../helpers.ts';
import { launchChromium, openPage } from './chromium.ts';

const canary = `CANARY-${randomBytes(12).toString('hex')}`;
const marker = `marker-${randomBytes(4).toString('hex')}`;
const forms = [canary, Buffer.from(canary).toString('hex'), Buffer.from(canary).toString('base64'), Buffer.from(canary).toString('base64url')];

let dir: string;
let running: RunningHost;
let dashboard: Dashboard;
let hv: Hypervisor;
let token: string;
let browser: Browser;

async function readStream(url: string, ms: number): Promise<string> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(ms) });
  let text = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true });
  } catch {
    // The timeout ends the stream.
  }
  return text;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'wv-exposure-'));
  dashboard = new Dashboard({ labs: true });
  running = await serve({ config: path.join(dir, 'host'), bind: '127.0.0.1', port: 0, extension: dashboard, log: () => {} });
  token = (await running.tokens.create({ name: 'viewer', role: 'Reader', scope: '/', lifetimeMs: 600_000, createdBy: 'test' })).token;
  hv = new Hypervisor({ dataDir: path.join(dir, 'data') });
  const specs = new Map<string, PartitionSpec>();
  dashboard.telemetry.watch(hv, 'canary', (name) => specs.get(name));
  const make = async (spec: PartitionSpec) => {
    specs.set(spec.name, spec);
    return hv.createPartition(spec);
  };
  // In memory, 1024 times.
  const holder = await make({ name: `${marker}-holder`, module: guest('secret'), args: [canary], devices: { console: true } });
  const stored = new Promise<void>((r) => holder.on('console', (l) => l === 'stored' && r()));
  await holder.start();
  await stored;
  // On a disk.
  const disk = await make({ name: 'disk', module: guest('disk'), args: ['fill', canary], devices: { console: true, block: { sizeMiB: 1 } } });
  await disk.start();
  await disk.exited;
  // In a plugin's call input, kept in its memory.
  const plugin = await make({ name: 'plugin', module: guest('attack-plugin-snoop'), kind: 'reactor' });
  await plugin.start();
  await plugin.call('remember', canary);
  // In frames both ways across the switch.
  const pong = await make({ name: 'pong', module: guest('net-pong'), args: ['quiet'], devices: { net: { segment: 'c', host: true } } });
  await pong.start();
  const ep = hv.attachNet('c');
  let answers = 0;
  ep.on('frame', (f) => {
    if (Buffer.from(f.payload).toString().includes(canary)) answers++;
  });
  for (let i = 0; i < 20; i++) ep.send(pong.netAddress!, `ping ${canary}`);
  while (answers < 5) await new Promise((r) => setTimeout(r, 20));
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await hv?.close();
  await running?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the dashboard never shows guest memory contents', () => {
  it('not in its event stream, its lab list or its rendered page', async () => {
    const base = `${running.url}/dashboard/`;
    const streamed = readStream(`${base}api/events`, 3000);
    const list = await (await fetch(`${base}api/labs`, { headers: { authorization: `Bearer ${token}` } })).text();
    const { page, errors } = await openPage(browser);
    await page.goto(`${base}#token=${token}`);
    await page.goto(`${base}#/dashboard`);
    // Every watched partition has its box, and the attestation panel has the API's answer (a
    // Reader may not ask for reports: ERR_ACCESS_DENIED, shown as it is).
    for (const name of [`${marker}-holder`, 'disk', 'plugin', 'pong']) await page.locator('[data-test=partition] .name span:first-child').getByText(name, { exact: true }).waitFor({ timeout: 30_000 });
    expect(await page.locator('[data-test=attestation-error] code').innerText({ timeout: 30_000 })).toBe('ERR_ACCESS_DENIED');
    const rendered = `${await page.content()}\n${await page.locator('body').innerText()}`;
    await page.close();
    const sent = await streamed;
    // Positive control: what the dashboard does show (names, addresses) is in what was collected.
    expect(sent).toContain(`${marker}-holder`);
    expect(rendered).toContain(`${marker}-holder`);
    expect(sent).toMatch(/"outcome":"delivered"/); // the frames were seen, as metadata
    for (const form of forms) {
      expect(sent.includes(form), `event stream contains ${form}`).toBe(false);
      expect(list.includes(form), `lab list contains ${form}`).toBe(false);
      expect(rendered.includes(form), `page contains ${form}`).toBe(false);
    }
    // Chromium logs the refused report request itself; nothing else may fail.
    expect(errors.filter((e) => !e.startsWith('Failed to load resource: the server responded with a status of 403'))).toEqual([]);
  }, 60_000);
});

describe('the dashboard listens on loopback only', () => {
  it('is bound to 127.0.0.1', () => {
    const address = running.server.app.server.address();
    expect(typeof address === 'object' && address !== null ? address.address : address).toBe('127.0.0.1');
  });

  it('cannot be reached on any other interface of this machine', async () => {
    const port = Number(new URL(running.url).port);
    const others = Object.values(os.networkInterfaces()).flat().filter((i) => i && !i.internal && i.family === 'IPv4').map((i) => i!.address);
    for (const address of others) {
      const outcome = await new Promise<string>((resolve) => {
        const req = http.get({ host: address, port, path: '/dashboard/', timeout: 2000 }, (res) => resolve(`answered ${res.statusCode}`));
        req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        req.on('timeout', () => req.destroy(new Error('timeout')));
      });
      expect(outcome, `${address}:${port}`).toBe('ECONNREFUSED');
    }
  });

  it('answers only requests addressed to its loopback name (no DNS rebinding)', async () => {
    const port = Number(new URL(running.url).port);
    const status = (host: string) =>
      new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: '/dashboard/', headers: { host } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject);
      });
    expect(await status(`127.0.0.1:${port}`)).toBe(200);
    expect(await status(`localhost:${port}`)).toBe(200);
    expect(await status(`attacker.example:${port}`)).toBe(403);
    expect(await status(`127.0.0.1.attacker.example:${port}`)).toBe(403);
  });

  it('its data needs a credential, and running labs needs partitions/write', async () => {
    const base = `${running.url}/dashboard/api`;
    expect((await fetch(`${base}/labs`)).status).toBe(401);
    expect((await fetch(`${base}/events`)).status).toBe(401);
    const r = await fetch(`${base}/labs/network/run`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
    expect(r.status).toBe(403);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('ERR_ACCESS_DENIED');
  });
});
