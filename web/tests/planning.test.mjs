// The planning view in a real browser against a real onemap server with the
// demo: the coverage of the emergency shelters is drawn with the API's own
// figures, three new sites are proposed (numbered on the map and listed
// with their gains), one is excluded and the siting rerun without it, the
// plan is saved as a scenario by a planner and its reports download; in
// English on the toggle. No console error, no request leaving 127.0.0.1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { webDir, tempDatabase, plannerToken, startServer, stopAll, launchBrowser } from './harness.mjs';

const artifacts = join(webDir, 'tests', 'artifacts');
const AT = '#10.8/34.97/118.31';

let base;
let browser;
let secret;

before(async () => {
  const database = tempDatabase('planning');
  secret = plannerToken(database, 'web-test');
  ({ base } = await startServer(database));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  stopAll();
});

/** The planning page in its own context, recording console errors, failed
 * responses and requests that leave 127.0.0.1. */
async function openPlanning(path = `/planning/${AT}`, { allowStatus = [] } = {}) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const problems = [];
  const outside = [];
  page.on('console', (m) => {
    // A refused request is logged by Chromium too; the response check below judges it.
    if ((m.type() === 'error' || m.type() === 'warning') && !/Failed to load resource/.test(m.text())) problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('response', (r) => { if (r.status() >= 400 && !allowStatus.includes(r.status())) problems.push(`${r.status()} ${r.url()}`); });
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith('http://127.0.0.1') && !url.startsWith('data:') && !url.startsWith('blob:')) outside.push(url);
  });
  await page.goto(`${base}${path}`);
  await page.waitForFunction(() => window.onemap?.loaded() && window.onemap.areTilesLoaded(), null, { timeout: 30_000 });
  await page.waitForSelector('#total-population:not([data-value=""])', { timeout: 30_000 });
  return { context, page, problems, outside };
}

const api = async (path, init) => {
  const r = await fetch(`${base}${path}`, init);
  assert.ok(r.ok, `${path}: ${r.status} ${await r.clone().text()}`);
  return r.json();
};

/** The proposed sites listed, or the error the page shows instead. */
async function siteList(page) {
  const shown = await page.waitForSelector('#sites li.site, #messages .message.error', { timeout: 60_000 });
  if (await shown.evaluate((n) => n.classList.contains('message'))) assert.fail(`the siting failed: ${await shown.textContent()}`);
}

const figure = (page, id) => page.$eval(`#${id}`, (dd) => ({ value: Number(dd.dataset.value), text: dd.textContent }));
const zhNumber = (n) => Number(n).toLocaleString('zh-CN', { maximumFractionDigits: 2 });

test('the coverage of the emergency shelters is drawn with the API’s figures and the standard’s source', async () => {
  const { context, page, problems, outside } = await openPlanning();
  const coverage = await api('/api/planning/coverage?category=emergency');
  assert.ok(coverage.total_population > 0, 'the demo has people');
  assert.equal(coverage.covered_population + coverage.uncovered_population, coverage.total_population, 'the API’s covered + uncovered = total');

  // The totals are the API's, in Chinese number format.
  const total = await figure(page, 'total-population');
  const covered = await figure(page, 'covered-population');
  const uncovered = await figure(page, 'uncovered-population');
  const ratio = await figure(page, 'coverage-ratio');
  assert.equal(total.value, coverage.total_population);
  assert.equal(covered.value, coverage.covered_population);
  assert.equal(uncovered.value, coverage.uncovered_population);
  assert.equal(covered.value + uncovered.value, total.value, 'covered + uncovered = total on the page');
  assert.equal(total.text, `${zhNumber(coverage.total_population)} 人`);
  assert.equal(uncovered.text, `${zhNumber(coverage.uncovered_population)} 人`);
  assert.ok(Math.abs(ratio.value - coverage.coverage_ratio) < 1e-9);
  assert.match(ratio.text, /%$/);

  // The radius is the standard's, with its source.
  assert.equal(Number(await page.inputValue('#radius')), coverage.standards.radius_m.value);
  assert.equal(coverage.standards.radius_m.value, 500, 'the emergency shelters’ standard radius');
  const standard = await page.textContent('#standard-radius');
  assert.ok(standard.includes(coverage.standards.radius_m.source), `the standard’s source is shown: ${standard}`);
  assert.equal(await page.$eval('#category option:checked', (o) => o.textContent), '紧急避难场所');

  // The uncovered cells are drawn, from the API's collection.
  const uncoveredCells = coverage.uncovered.features.filter((f) => f.properties.uncovered > 0);
  assert.ok(uncoveredCells.length > 0, 'some people are not covered in the demo');
  await page.waitForFunction(() => window.onemap.queryRenderedFeatures({ layers: ['planning-uncovered-fill'] }).length > 0, null, { timeout: 10_000 });
  const drawnCells = await page.evaluate(() => new Set(window.onemap.queryRenderedFeatures({ layers: ['planning-uncovered-fill'] })
    .map((f) => f.properties.id)).size);
  assert.ok(drawnCells > 0 && drawnCells <= uncoveredCells.length, `uncovered cells on the map: ${drawnCells} of ${uncoveredCells.length}`);

  // Shelters coloured by their load: the legend counts are the API's shelters.
  const expected = { ok: 0, near: 0, over: 0, excluded: 0, unknown: 0 };
  for (const s of coverage.shelters) {
    if (s.excluded) expected.excluded += 1;
    else if (s.over_capacity || (s.load_ratio ?? 0) > 1) expected.over += 1;
    else if (s.load_ratio === null || s.load_ratio === undefined) expected.unknown += 1;
    else expected[s.load_ratio < 0.8 ? 'ok' : 'near'] += 1;
  }
  const legend = await page.$$eval('#shelter-legend li', (items) => Object.fromEntries(items.map((li) => [li.dataset.state, Number(li.querySelector('.n').textContent.replace(/\D/g, ''))])));
  assert.deepEqual(legend, expected);
  const drawnShelters = await page.evaluate(() => window.onemap.queryRenderedFeatures({ layers: ['planning-shelters'] }).map((f) => f.properties.state));
  assert.ok(drawnShelters.length > 0, 'shelters are drawn');
  if (coverage.exclusion_zones.features.length) {
    assert.equal(await page.evaluate(() => window.onemap.hasImage('planning-hatch-flood_zone')), true, 'the hatch is made on a canvas');
  }

  assert.deepEqual(await page.$$eval('#messages .message.error', (m) => m.map((x) => x.textContent)), [], 'no error message shown');
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, 'planning.png') });
  assert.deepEqual(problems, [], 'no console errors');
  assert.deepEqual(outside, [], 'no request leaves 127.0.0.1');
  await context.close();
});

test('three sites are proposed, one excluded and rerun, saved as a planner’s scenario whose reports download', async () => {
  const { context, page, problems, outside } = await openPlanning();
  const coverage = await api('/api/planning/coverage?category=emergency');

  // Siting k = 3 on the population grid.
  assert.equal(await page.inputValue('#k'), '3');
  await page.click('#run');
  await siteList(page);
  const listed = await page.$$eval('#sites li.site', (items) => items.map((li) => ({
    rank: Number(li.dataset.rank), candidate: li.dataset.candidate, gain: Number(li.querySelector('.gain').dataset.gain), text: li.textContent })));
  assert.equal(listed.length, 3, 'three sites listed');
  assert.deepEqual(listed.map((s) => s.rank), [1, 2, 3]);
  for (const s of listed) {
    assert.ok(s.gain > 0, `site ${s.rank} covers someone new: ${s.text}`);
    assert.match(s.text, /新增覆盖 [\d,]+ 人/);
  }
  const markers = await page.$$eval('.site-marker', (m) => m.map((x) => x.textContent).sort());
  assert.deepEqual(markers, ['1', '2', '3'], 'three numbered markers on the map');
  const fig = (row, col) => page.$eval(`#before-after tr[data-figure="${row}"] td.${col}`, (td) => Number(td.dataset.value));
  const beforeCovered = await fig('covered_population', 'before');
  const afterCovered = await fig('covered_population', 'after');
  assert.equal(beforeCovered, coverage.covered_population, 'before = today’s coverage');
  assert.ok(afterCovered > beforeCovered, `more people covered after: ${beforeCovered} → ${afterCovered}`);
  assert.ok(await fig('uncovered_population', 'after') < await fig('uncovered_population', 'before'));
  const gains = listed.reduce((sum, s) => sum + s.gain, 0);
  assert.ok(Math.abs(afterCovered - beforeCovered - gains) < 1, `the gains add up to the change: ${gains} vs ${afterCovered - beforeCovered}`);
  const optimality = await page.textContent('#optimality');
  assert.match(optimality, /已证明最优|未证明最优/, optimality);

  // Exclude the first site and run again: it is gone, and said why.
  const first = listed[0].candidate;
  await page.click(`#sites li.site[data-candidate="${first}"] button.exclude`);
  assert.equal(await page.$$eval('#pinned .chips[data-kind="exclude"] .chip', (c) => c.length), 1, 'the exclusion is shown');
  assert.match(await page.textContent('#run-note'), /请重新计算/);
  await page.click('#run');
  await page.waitForFunction((c) => document.querySelectorAll('#sites li.site').length === 3
    && ![...document.querySelectorAll('#sites li.site')].some((li) => li.dataset.candidate === c), first, { timeout: 60_000 });
  assert.ok(await page.isVisible(`#ruled-out li[data-candidate="${first}"][data-reason="excluded"]`), 'the excluded candidate is listed as ruled out');
  assert.match(await page.textContent(`#ruled-out li[data-candidate="${first}"]`), /已手动排除/);
  const rerun = await page.$$eval('#sites li.site', (items) => items.map((li) => li.dataset.candidate));

  // Save it as a planner's scenario.
  await page.fill('#token-input', secret);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#signed-in', { state: 'visible' });
  const name = '城区紧急避难场所补点方案';
  await page.fill('#scenario-name', name);
  await page.click('#scenario-save');
  await page.waitForSelector('#messages .message.ok');
  assert.match(await page.textContent('#messages'), new RegExp(name));
  const row = await page.waitForSelector('#scenarios li.scenario');
  assert.match(await row.textContent(), new RegExp(name));
  const id = await row.getAttribute('data-id');

  // The reports download: Markdown with the sites and the standards' sources, CSV, GeoJSON.
  const download = async (selector) => {
    const [file] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
    return readFileSync(await file.path(), 'utf8');
  };
  const md = await download(`#scenarios li[data-id="${id}"] a.report-md`);
  assert.ok(md.includes(name), 'the report names the scenario');
  rerun.forEach((c, i) => assert.ok(md.includes(`| ${i + 1} | ${c} |`), `the report lists site ${i + 1}, candidate ${c}:\n${md}`));
  assert.ok(md.includes(coverage.standards.radius_m.source), 'the report cites the radius standard');
  assert.ok(md.includes(coverage.standards.area_per_person_m2.source), 'the report cites the area standard');
  const csv = await download(`#scenarios li[data-id="${id}"] a.report-csv`);
  const csvRows = csv.trim().split('\n').slice(1);
  assert.equal(csvRows.length, 3, 'one CSV row per site');
  rerun.forEach((c, i) => assert.ok(csvRows[i].startsWith(`${name},${i + 1},${c},`), `CSV row ${i + 1}: ${csvRows[i]}`));
  const geojson = JSON.parse(await download(`#scenarios li[data-id="${id}"] a.sites-geojson`));
  assert.deepEqual(geojson.features.map((f) => String(f.properties.candidate)), rerun, 'the three sites in the GeoJSON');

  // Shown again from the saved scenario.
  await page.click(`#scenarios li[data-id="${id}"] button.show`);
  await page.waitForSelector('#scenario-shown:not([hidden])');
  assert.deepEqual(await page.$$eval('#sites li.site', (items) => items.map((li) => li.dataset.candidate)), rerun);

  assert.deepEqual(await page.$$eval('#messages .message.error', (m) => m.map((x) => x.textContent)), [], 'no error message shown');
  mkdirSync(artifacts, { recursive: true });
  await page.evaluate(() => { document.getElementById('siting').scrollIntoView(); });
  await page.screenshot({ path: join(artifacts, 'planning-siting.png') });
  assert.deepEqual(problems, [], 'no console errors');
  assert.deepEqual(outside, [], 'no request leaves 127.0.0.1');
  await context.close();
});

test('a changed category reads its own standard; a refused token is said, not thrown', async () => {
  const { context, page, problems } = await openPlanning(`/planning/${AT}`, { allowStatus: [401] });
  const fixed = await api('/api/planning/coverage?category=fixed');
  await page.selectOption('#category', 'fixed');
  await page.waitForFunction((v) => document.getElementById('total-population').dataset.value !== ''
    && Number(document.getElementById('radius').value) === v, fixed.standards.radius_m.value, { timeout: 20_000 });
  assert.equal(fixed.standards.radius_m.value, 2000);
  await page.waitForFunction((n) => Number(document.getElementById('covered-population').dataset.value) === n, fixed.covered_population);

  // A planner's own radius is sent as asked.
  await page.fill('#radius', '3000');
  await page.dispatchEvent('#radius', 'change');
  const wider = await api('/api/planning/coverage?category=fixed&radius_m=3000');
  await page.waitForFunction((n) => Number(document.getElementById('covered-population').dataset.value) === n, wider.covered_population);

  await page.click('#run');
  await siteList(page);
  await page.fill('#token-input', 'not-a-token');
  await page.click('#login button[type=submit]');
  await page.fill('#scenario-name', 'x');
  await page.click('#scenario-save');
  const message = await page.waitForSelector('#messages .message.error');
  assert.match(await message.textContent(), /401/);
  await page.waitForSelector('#login', { state: 'visible' });
  assert.deepEqual(problems, [], 'no console errors');
  await context.close();
});

test('?lang=en shows the view in English and the toggle turns it Chinese', async () => {
  const { context, page, problems } = await openPlanning(`/planning/?lang=en${AT}`);
  assert.equal(await page.textContent('#console h1'), 'Shelter planning');
  assert.equal(await page.textContent('#coverage h2'), 'Coverage');
  assert.equal(await page.textContent('#totals div:first-child dt'), 'Population');
  assert.match(await page.textContent('#total-population'), /people$/);
  assert.equal(await page.$eval('#category option:checked', (o) => o.textContent), 'Emergency');
  assert.equal(await page.textContent('#run'), 'Find sites');
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, 'planning-en.png') });
  await page.click('.lang-toggle');
  assert.equal(await page.textContent('#console h1'), '避难场所规划研判');
  assert.equal(await page.textContent('#totals div:first-child dt'), '总人口');
  assert.match(await page.textContent('#total-population'), / 人$/);
  assert.equal(await page.textContent('#run'), '计算选址');
  assert.ok(!page.url().includes('lang=en'), 'the address follows the language');
  assert.deepEqual(problems, [], 'no console errors');
  await context.close();
});
