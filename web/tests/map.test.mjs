// The web map in a real browser: Debian's Chromium driven by playwright-core
// loads `/` from a real onemap server with the demo, with no console error
// and no request leaving 127.0.0.1, draws features and labels of several
// layers from onemap's own glyphs, and shows an edit by reloading only the
// tiles that hold it; as the landing page it shows the summary and the
// links to the other views.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tempDatabase, dispatcherToken, startServer, stopAll, launchBrowser } from './harness.mjs';

let base;
let browser;
let database;

before(async () => {
  database = tempDatabase('web');
  ({ base } = await startServer(database));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  stopAll();
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
  const labels = await page.evaluate(() => window.onemap.queryRenderedFeatures()
    .filter((f) => f.layer.type === 'symbol' && f.properties.name).map((f) => f.layer.id));
  assert.ok(labels.includes('districts-area-label'), `the district is named: ${labels}`);
  assert.ok(labels.length >= 3, `several labels are printed: ${labels}`);
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

/** Whether tile z/x/y holds lon/lat within its buffer (64/4096 of a tile). */
function holds({ z, x, y }, lon, lat) {
  const n = 2 ** z;
  const fx = ((lon + 180) / 360) * n;
  const r = (lat * Math.PI) / 180;
  const fy = ((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2) * n;
  const pad = 64 / 4096;
  return fx >= x - pad && fx <= x + 1 + pad && fy >= y - pad && fy <= y + 1 + pad;
}

test('an edit shows within moments, reloading only the tiles that hold it', async (t) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(e.message));
  const glyphs = [];
  page.on('response', (r) => { if (r.url().includes('/fonts/')) glyphs.push(`${r.status()} ${decodeURI(r.url())}`); });
  await page.goto(`${base}/#12/34.99/118.29`);
  await page.waitForFunction(() => window.onemap?.loaded() && window.onemap.areTilesLoaded(), null, { timeout: 60_000 });
  // The change stream is open before the edit.
  await page.waitForFunction(() => document.getElementById('status').textContent === '实时', null, { timeout: 10_000 });
  const tiles = [];
  page.on('request', (r) => {
    const m = r.url().match(/\/tiles\/onemap\/(\d+)\/(\d+)\/(\d+)\.mvt/);
    if (m) tiles.push({ z: +m[1], x: +m[2], y: +m[3] });
  });

  const token = dispatcherToken(database, 'web-test');
  const [lon, lat] = [118.2912, 34.9893];
  const posted = Date.now();
  const r = await fetch(`${base}/ogc/collections/incidents/items`, {
    method: 'POST',
    headers: { 'content-type': 'application/geo+json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ type: 'Feature', geometry: { type: 'Point', coordinates: [lon, lat] },
      properties: { name: 'LIVE-1', type: 'waterlogging', status: 'reported', reported_at: new Date().toISOString() } }),
  });
  assert.equal(r.status, 201, await r.text());
  await page.waitForFunction(() => window.onemap.queryRenderedFeatures({ layers: ['incidents'] })
    .some((f) => f.properties.name === 'LIVE-1'), null, { timeout: 5_000 });
  const shown = Date.now() - posted;
  // Its Latin name is printed with onemap's own glyphs.
  await page.waitForFunction(() => window.onemap.queryRenderedFeatures({ layers: ['incidents-label'] })
    .some((f) => f.properties.name === 'LIVE-1'), null, { timeout: 5_000 });
  assert.ok(glyphs.some((g) => g.endsWith('/0-255.pbf')) && glyphs.every((g) => g.startsWith('200 ')),
    `Latin glyphs come from onemap: ${glyphs}`);
  assert.ok(tiles.length > 0, 'tiles were reloaded');
  const others = tiles.filter((t) => !holds(t, lon, lat));
  assert.deepEqual(others, [], `only tiles holding the edit are reloaded (${tiles.length} reloaded)`);
  assert.ok(shown < 3_000, `the edit showed after ${shown} ms`);
  t.diagnostic(`edit shown after ${shown} ms; ${tiles.length} tiles reloaded: ${tiles.map((x) => `${x.z}/${x.x}/${x.y}`).join(' ')}`);
  assert.deepEqual(errors, [], 'no console errors or warnings');
  await page.close();
});

test('a dense layer is drawn as clusters that print their counts', async () => {
  const token = dispatcherToken(database, 'web-dense');
  // 600 GENERATED cameras within a few hundred metres: more than a tile's
  // point budget, so below z15 they are clustered.
  const features = Array.from({ length: 600 }, (_, i) => ({
    type: 'Feature',
    geometry: { type: 'Point', coordinates: [118.36 + (i % 30) * 0.0002, 35.06 + Math.floor(i / 30) * 0.0002] },
    properties: { name: `dense-${i}`, channels: 4 },
  }));
  const r = await fetch(`${base}/api/import/cameras`, {
    method: 'POST',
    headers: { 'content-type': 'application/geo+json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ type: 'FeatureCollection', features }),
  });
  assert.equal(r.status, 201, await r.text());

  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${base}/#12/35.062/118.363`);
  await page.waitForFunction(() => window.onemap?.loaded() && window.onemap.areTilesLoaded(), null, { timeout: 60_000 });
  await page.waitForTimeout(500);
  const counts = await page.evaluate(() => window.onemap.queryRenderedFeatures({ layers: ['cameras-count'] })
    .map((f) => f.properties.point_count));
  await page.screenshot({ path: join(tmpdir(), 'onemap-clusters.png') });
  assert.ok(counts.length > 0, 'cluster counts are printed');
  assert.ok(counts.every((n) => n >= 2), `each count is a cluster's: ${counts}`);
  // Nothing disappears: the dense block (inside one tile here) is counted
  // whole, in circles that stand apart.
  const single = await page.evaluate(() => window.onemap.queryRenderedFeatures({ layers: ['cameras'] })
    .filter((f) => String(f.properties.name).startsWith('dense-')).length);
  assert.equal(counts.reduce((a, b) => a + b, 0) + single, 600, `counted ${counts} + ${single} drawn`);
  assert.deepEqual(errors, [], 'no console errors or warnings');
  await page.close();
});

test('the landing page shows the figures of /api/summary and leads to the wall, the console and planning', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${base}/`);
  await page.waitForSelector('#summary dt');
  const summary = await (await fetch(`${base}/api/summary`)).json();
  const text = await page.textContent('#summary');
  const standby = summary.teams.by_status.standby ?? 0;
  assert.ok(text.includes(`待命 ${standby}`), `teams on standby: ${text}`);
  assert.ok(text.includes(`未结事件 ${summary.incidents.open}`), `open incidents: ${text}`);
  assert.ok(text.includes('编织袋'), `depot stock: ${text}`);
  const links = await page.$$eval('#panel .views a', (as) => as.map((a) => [a.getAttribute('href'), a.textContent]));
  assert.deepEqual(links, [['/wall/', '值班大屏'], ['/dispatch/', '调度台'], ['/planning/', '规划研判']]);
  assert.deepEqual(errors, [], 'no console errors or warnings');
  await page.close();
});
