/**
 * A real Chromium for the browser tests: the binary shipped inside the @sparticuz/chromium npm
 * package (so `npm ci && npm test` runs these tests on a fresh machine with nothing else
 * installed), driven by playwright-core. Playwright gives every launch a fresh temporary
 * profile (user data directory). Some of the package's default flags (made for a serverless
 * sandbox) are left out: --disable-web-security and --allow-running-insecure-content would
 * weaken what the tests check (same-origin policy, CSP), and with --single-process (and
 * --no-zygote) closing one page takes the whole browser down.
 */
import { chromium, type Browser, type Page } from 'playwright-core';
import sparticuz from '@sparticuz/chromium';

const UNWANTED = /^--(disable-web-security|allow-running-insecure-content|single-process|no-zygote)$/;

export async function launchChromium(): Promise<Browser> {
  const executablePath = await sparticuz.executablePath();
  const args = [
    ...sparticuz.args.filter((a) => !UNWANTED.test(a)),
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-quic',
  ];
  if (process.getuid?.() === 0 && !args.includes('--no-sandbox')) args.push('--no-sandbox');
  return chromium.launch({ executablePath, args, headless: true });
}

/** A 1280x720 page that records console errors and uncaught page errors (CSP violations show up as console errors). */
export async function openPage(browser: Browser): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 }, locale: 'en-GB', timezoneId: 'UTC' });
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  return { page, errors };
}
