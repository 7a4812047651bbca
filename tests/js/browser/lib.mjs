// Shared pieces of the browser tests: Debian's chromium driven by
// playwright-core (a driver only, no browser download), console-error
// collection, axe-core accessibility checks, screenshots into docs/.

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Launches headless Chromium with no background traffic of its own. */
export async function launch(extraArgs = []) {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: run ./scripts/install-test-deps.sh`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
      ...extraArgs,
    ],
  });
}

/** A page that records console errors and uncaught exceptions. */
export async function openPage(context) {
  const page = await context.newPage();
  page.errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') page.errors.push(`console: ${m.text()} at ${page.url()}`);
  });
  page.on('pageerror', (e) => page.errors.push(`exception: ${e.message} at ${page.url()}`));
  return page;
}

/** Runs axe-core in the page; fails on serious or critical violations. */
export async function axeCheck(page, what) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `${what}: accessibility violations:\n${JSON.stringify(bad, null, 2)}`);
  return result;
}

/** Fails if the page logged errors so far. */
export function noErrors(page, what) {
  assert.deepEqual(page.errors, [], `${what}: errors in the page`);
}

/** Saves a screenshot under docs/screenshots when SCREENSHOT_DIR is set. */
export async function shot(page, name) {
  const dir = process.env.SCREENSHOT_DIR;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: false });
}

/** Polls `f` until it returns a truthy value (or throws after `ms`). */
export async function eventually(f, ms, what) {
  const until = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`${what}: not within ${ms} ms${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
