/**
 * The dashboard in a real browser (Chromium, see chromium.ts), against the real CLI:
 * `wasmvisor lab` runs as a child process on 127.0.0.1 and the page is opened at the address it
 * prints. Every live lab runs from its page (three at a time, in one browser): the verdict, the
 * error code, the violation and the audit record must appear, and a screenshot of each lab page
 * (attack, then the defence off) is saved under test-artifacts/labs/. Coming labs show their
 * concept and no run button; the dashboard shows partitions, charts, violations and the audit
 * stream; the page is keyboard-usable and raises no CSP or script error.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, openPage } from './chromium.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const ARTIFACTS = `${root}test-artifacts/labs`;
/** Labs run at once from the page (the session allows 4). */
const PARALLEL = 3;

interface LabInfo {
  id: string;
  title: string;
  live: boolean;
  concept: string[];
  expect: { code: string; violation?: { status: string; call?: string }; audit: { action: string; outcome: string; code?: string } };
  defenceOff: { title: string } | null;
}

let child: ChildProcess;
let browser: Browser;
let url: string;
let base: string;
let token: string;
let labs: LabInfo[];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  child = spawn(process.execPath, [`${root}dist/cli.js`, 'lab', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /dashboard at (http:\/\/127\.0\.0\.1:\d+\/dashboard\/#token=(\S+))/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`wasmvisor lab exited (${code}): ${stderr}`)));
  });
  base = url.split('#')[0]!;
  token = url.split('#token=')[1]!;
  const [b, list] = await Promise.all([
    launchChromium(),
    fetch(`${base}api/labs`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json() as Promise<{ labs: LabInfo[] }>),
  ]);
  browser = b;
  labs = list.labs;
}, 120_000);

afterAll(async () => {
  await browser?.close();
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
});

async function runLabPage(lab: LabInfo): Promise<void> {
  const { page, errors } = await openPage(browser);
  try {
    await page.goto(`${url}`);
    await page.waitForSelector('[data-lab]');
    await page.goto(`${base}#/labs/${lab.id}`);
    await page.waitForSelector(`[data-lab="${lab.id}"]`);
    await page.click('#run-defence');
    const result = page.locator('[data-test=result]');
    await result.waitFor({ timeout: 150_000 });
    expect(await result.getAttribute('data-verdict'), `${lab.id}: ${await result.innerText()}`).toBe('held');
    expect(await page.locator('[data-test=code] code').innerText()).toBe(lab.expect.code);
    const audit = JSON.parse(await page.locator('[data-test=audit]').innerText()) as Record<string, unknown>;
    expect(audit).toMatchObject({ action: lab.expect.audit.action, outcome: lab.expect.audit.outcome, ...(lab.expect.audit.code ? { code: lab.expect.audit.code } : {}) });
    if (lab.expect.violation) expect(await page.locator('[data-test=violation] code').innerText()).toContain(lab.expect.violation.status);
    await page.screenshot({ path: `${ARTIFACTS}/${lab.id}.png` });
    if (lab.defenceOff) {
      await page.click('#run-off');
      const off = page.locator('[data-test=result]:not([data-verdict=held])');
      await off.waitFor({ timeout: 150_000 });
      expect(await off.getAttribute('data-verdict'), `${lab.id} with the defence off: ${await off.innerText()}`).toBe('breached');
      await page.screenshot({ path: `${ARTIFACTS}/${lab.id}-defence-off.png` });
    }
    expect(errors).toEqual([]);
  } finally {
    await page.close();
  }
}

describe('the dashboard in Chromium', () => {
  it('serves the page on loopback with a strict content security policy', async () => {
    const res = await fetch(base);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'self'/);
    expect(new URL(base).hostname).toBe('127.0.0.1');
  });

  it('runs every live lab: the block, the error code and the audit record appear', async () => {
    const live = labs.filter((l) => l.live);
    expect(live.length).toBeGreaterThanOrEqual(10);
    const queue = [...live];
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        for (let lab = queue.shift(); lab; lab = queue.shift()) {
          await runLabPage(lab).catch((e: Error) => failures.push(`${lab!.id}: ${e.message}`));
        }
      }),
    );
    expect(failures).toEqual([]);
  }, 600_000);

  it('coming labs show their concept and cannot be started', async () => {
    const { page, errors } = await openPage(browser);
    await page.goto(url);
    for (const lab of labs.filter((l) => !l.live)) {
      await page.goto(`${base}#/labs/${lab.id}`);
      await page.waitForSelector(`[data-lab="${lab.id}"]`);
      expect(await page.locator('[data-test=coming]').innerText()).toMatch(/^Coming: this lab needs/);
      expect(await page.locator(`[data-lab="${lab.id}"]`).innerText()).toContain(lab.concept[0]!.slice(0, 80));
      expect(await page.locator('#run-defence').isDisabled()).toBe(true);
      await page.screenshot({ path: `${ARTIFACTS}/${lab.id}-coming.png` });
    }
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('the dashboard shows partitions, plots, violations and the audit stream', async () => {
    const { page, errors } = await openPage(browser);
    await page.goto(url);
    await page.waitForSelector('[data-lab]');
    await page.goto(`${base}#/labs/network`);
    await page.waitForSelector('[data-lab="network"]');
    await page.click('#run-defence');
    await page.goto(`${base}#/dashboard`);
    await page.locator('[data-test=partition]').first().waitFor({ timeout: 60_000 });
    await page.locator('#violations li:not(.muted)').first().waitFor({ timeout: 60_000 });
    // Frames between partitions, and the dropped ones marked.
    await page.locator('svg.switch .drop').first().waitFor({ timeout: 60_000 });
    expect(await page.locator('svg.switch .x').count()).toBeGreaterThan(0);
    expect(await page.locator('svg.switch circle').count()).toBeGreaterThanOrEqual(2);
    expect(await page.locator('#audit li').count()).toBeGreaterThan(0);
    expect(await page.locator('.chart canvas').count()).toBeGreaterThanOrEqual(3);
    // The attestation panel shows what the management API answers: the registers of a report
    // over the page's nonce, or the API's refusal (a build without measured boot) with its code.
    const api = await fetch(`${new URL(base).origin}/attestation?nonce=${'5a'.repeat(16)}`, { headers: { authorization: `Bearer ${token}` } });
    const answer = (await api.json()) as { registers?: Record<string, string>; error?: { code: string } };
    if (api.ok) {
      const shown = page.locator('[data-test=registers] dt');
      await shown.first().waitFor({ timeout: 30_000 });
      expect(await shown.allInnerTexts()).toEqual(Object.keys(answer.registers!));
      for (const v of await page.locator('[data-test=registers] dd').allInnerTexts()) expect(v).toMatch(/^[0-9a-f]{64}$/);
    } else {
      const code = page.locator('[data-test=attestation-error] code');
      await code.waitFor({ timeout: 30_000 });
      expect(await code.innerText()).toBe(answer.error!.code);
    }
    await page.screenshot({ path: `${ARTIFACTS}/dashboard.png` });
    // Chromium logs the refused request itself (the page shows it); nothing else may fail.
    const refused = `Failed to load resource: the server responded with a status of ${api.status}`;
    expect(errors.filter((e) => api.ok || !e.startsWith(refused))).toEqual([]);
    await page.close();
  }, 120_000);

  it('is keyboard-usable: a lab is chosen and started without a mouse', async () => {
    const { page, errors } = await openPage(browser);
    await page.goto(url);
    await page.waitForSelector('[data-lab]');
    // Tab from the top of the page to the "narrow interface" lab's link, open it, tab to its run button.
    const link = page.locator('a[href="#/labs/narrow-interface"]');
    for (let i = 0; i < 40 && !(await link.evaluate((el) => el === document.activeElement)); i++) await page.keyboard.press('Tab');
    expect(await link.evaluate((el) => el === document.activeElement)).toBe(true);
    await page.keyboard.press('Enter');
    await page.waitForSelector('[data-lab="narrow-interface"]');
    const run = page.locator('#run-defence');
    for (let i = 0; i < 60 && !(await run.evaluate((el) => el === document.activeElement)); i++) await page.keyboard.press('Tab');
    expect(await run.evaluate((el) => el === document.activeElement)).toBe(true);
    await page.keyboard.press('Enter');
    await page.locator('[data-test=result][data-verdict=held]').waitFor({ timeout: 60_000 });
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);
});
