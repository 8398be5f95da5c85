// The web map in a real browser: Debian's Chromium driven by playwright-core
// loads `/` from a real onemap server with the demo, with no console error
// and no request leaving 127.0.0.1, and draws features of several layers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const webDir = resolve(import.meta.dirname, '..');
const bin = process.env.ONEMAP_BIN ?? resolve(webDir, '../target/debug/onemap');
const browserPath = process.env.CHROMIUM ?? '/usr/bin/chromium';

let server;
let base;
let browser;

before(async () => {
  assert.ok(existsSync(bin), `the onemap binary is built at ${bin}`);
  assert.ok(existsSync(browserPath), `Chromium is installed at ${browserPath}`);
  const dir = mkdtempSync(join(tmpdir(), 'onemap-web-'));
  server = spawn(bin, ['--database', `sqlite://${join(dir, 'web.gpkg')}`, 'serve', '--demo',
    '--bind', '127.0.0.1:0', '--web-dir', webDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  base = await new Promise((ok, fail) => {
    let log = '';
    const timer = setTimeout(() => fail(new Error(`the server did not start:\n${log}`)), 60_000);
    server.stderr.on('data', (chunk) => {
      log += chunk;
      const m = log.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) { clearTimeout(timer); ok(m[1]); }
    });
    server.on('exit', (code) => fail(new Error(`the server exited (${code}):\n${log}`)));
  });
  browser = await chromium.launch({
    executablePath: browserPath,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update',
      '--enable-unsafe-swiftshader', '--use-angle=swiftshader', '--ignore-gpu-blocklist'],
  });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
});

test('the map loads offline, without errors or warnings, and draws several layers', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  const outside = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('response', (r) => { if (r.status() >= 400) errors.push(`${r.status()} ${r.url()}`); });
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith('http://127.0.0.1') && !url.startsWith('data:') && !url.startsWith('blob:')) outside.push(url);
  });
  await page.goto(`${base}/#11/34.99/118.29`);
  await page.waitForFunction(() => window.onemap?.loaded() && window.onemap.areTilesLoaded(), null, { timeout: 60_000 });
  await page.waitForTimeout(500);
  const drawn = await page.evaluate(() => {
    const counts = {};
    for (const f of window.onemap.queryRenderedFeatures()) {
      const name = f.layer.metadata?.['onemap:layer'];
      if (name) counts[name] = (counts[name] ?? 0) + 1;
    }
    return counts;
  });
  await page.screenshot({ path: join(tmpdir(), 'onemap-map.png') });
  const layers = Object.keys(drawn).filter((k) => drawn[k] > 0);
  assert.ok(layers.length >= 5, `features of several layers are drawn: ${JSON.stringify(drawn)}`);
  for (const name of ['districts', 'rescue_teams', 'hazard_sources', 'shelters']) {
    assert.ok(drawn[name] > 0, `${name} is drawn: ${JSON.stringify(drawn)}`);
  }
  assert.deepEqual(errors, [], 'no console errors or warnings');
  assert.deepEqual(outside, [], 'no request leaves 127.0.0.1');

  // The layer list toggles layers.
  await page.click('input[data-layer="rescue_teams"]');
  await page.waitForTimeout(300);
  const after = await page.evaluate(() => window.onemap.queryRenderedFeatures()
    .filter((f) => f.layer.metadata?.['onemap:layer'] === 'rescue_teams').length);
  assert.equal(after, 0, 'unchecking a layer hides it');
  await page.close();
});
