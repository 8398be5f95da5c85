// The dispatch console in a real browser against a real onemap server with
// the demo: a dispatcher signs in, reports a flood by clicking the map, sees
// the recommended teams, assigns one and reserves sandbags; a second
// dispatcher's console (another browser context, never reloaded) sees the
// new incident, the team turn dispatched and the reservation. No console
// error, no request leaving 127.0.0.1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { webDir, tempDatabase, dispatcherToken, startServer, stopAll, launchBrowser } from './harness.mjs';
const artifacts = join(webDir, 'tests', 'artifacts');

let base;
let browser;
let secret;

before(async () => {
  const database = tempDatabase('dispatch');
  // The token exists before the server starts, as an operator would make it.
  secret = dispatcherToken(database, 'web-test');
  ({ base } = await startServer(database));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  stopAll();
});

/** A console page in its own browser context (its own sessionStorage),
 * recording console errors, failed responses and outside requests. */
async function openConsole(path, { live = true } = {}) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  if (!live) await context.route('**/api/events*', (route) => route.abort());
  const page = await context.newPage();
  const problems = [];
  const outside = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`); });
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith('http://127.0.0.1') && !url.startsWith('data:') && !url.startsWith('blob:')) outside.push(url);
  });
  await page.goto(`${base}${path}`);
  await page.waitForFunction(() => window.onemap?.loaded() && window.onemap.areTilesLoaded(), null, { timeout: 30_000 });
  if (live) await page.waitForSelector('#live:not(.off)', { timeout: 10_000 });
  return { context, page, problems, outside };
}

/** A point of the map with no point feature within 12 px: a click there
 * reports an incident (a click on a team or a depot opens its popup). */
async function emptySpot(page) {
  return page.evaluate(() => {
    const map = window.onemap;
    const circles = map.getStyle().layers.filter((l) => l.type === 'circle').map((l) => l.id);
    const { width, height } = map.getCanvas().getBoundingClientRect();
    for (let dy = 0; dy < height / 3; dy += 17) {
      for (let dx = 0; dx < width / 3; dx += 23) {
        const x = width / 2 + dx;
        const y = height / 2 + dy;
        if (!map.queryRenderedFeatures([[x - 12, y - 12], [x + 12, y + 12]], { layers: circles }).length) {
          const r = map.getCanvas().getBoundingClientRect();
          return { x: r.left + x, y: r.top + y };
        }
      }
    }
    return null;
  });
}

test('a dispatcher reports a flood, assigns a team and reserves sandbags; another console sees it live', async () => {
  const a = await openConsole('/dispatch/#12.5/34.99/118.30');
  // The second console opens /dispatch without the slash (redirected).
  const b = await openConsole('/dispatch#12.5/34.99/118.30');
  assert.ok(b.page.url().includes('/dispatch/'), `redirected to the folder: ${b.page.url()}`);
  assert.equal(await a.page.textContent('#live'), '实时', 'the console says it is live');

  // Writes are refused in the page until a token is entered.
  assert.equal(await a.page.isVisible('#login'), true, 'the token form is shown');
  await a.page.fill('#token-input', secret);
  await a.page.click('#login button[type=submit]');
  await a.page.waitForSelector('#signed-in', { state: 'visible' });
  await a.page.waitForSelector('#login', { state: 'hidden' });
  assert.equal(await a.page.evaluate(() => sessionStorage.getItem('onemap.token')), secret, 'kept in sessionStorage');
  assert.equal(await a.page.evaluate(() => localStorage.getItem('onemap.token')), null, 'not in localStorage');

  // Click the map: the report form opens there.
  const spot = await emptySpot(a.page);
  assert.ok(spot, 'an empty spot of the map exists');
  await a.page.mouse.click(spot.x, spot.y);
  await a.page.waitForSelector('#report[open]');
  await a.page.selectOption('#report-form select[name=type]', 'flood');
  await a.page.selectOption('#report-form select[name=severity]', 'major');
  await a.page.fill('#report-form textarea[name=description]', '河水漫堤，村庄进水');
  await a.page.check('#report-form input[name=capability][value=water_rescue]');
  await a.page.selectOption('#supply-rows .supply-row select[name=item]', 'sandbags');
  await a.page.fill('#supply-rows .supply-row input[name=quantity]', '500');
  // The form speaks Chinese from the catalog, not raw keys.
  const typeLabel = await a.page.textContent('#report-form select[name=type] option[value=flood]');
  assert.equal(typeLabel, '洪水');
  await a.page.click('#report-submit');
  await a.page.waitForSelector('#report', { state: 'hidden' });

  // The new incident is selected, with its recommendation.
  await a.page.waitForSelector('#detail .incident-head h2');
  const incidentId = Number(await a.page.getAttribute('#incident-list li.selected', 'data-id'));
  assert.ok(incidentId > 0, 'the new incident is listed and selected');
  const head = await a.page.textContent('#detail .incident-head');
  assert.match(head, /洪水/);
  assert.match(head, /重大/);
  assert.match(head, /已报告/);
  assert.ok(await a.page.isVisible(`#incident-list li.sev-major[data-id="${incidentId}"]`), 'listed in the colour of its severity');
  await a.page.waitForSelector('#recommended li.team');
  const recommended = await a.page.$$eval('#recommended li.team', (items) => items.map((li) => ({
    id: Number(li.dataset.team), text: li.textContent })));
  assert.ok(recommended.length >= 1, 'teams are recommended');
  assert.match(recommended[0].text, /水上救援/, `the first covers water rescue, in Chinese: ${recommended[0].text}`);
  assert.match(recommended[0].text, /分钟/, 'with its ETA');
  assert.ok(await a.page.isVisible('#nearest-teams li.team button.assign'), 'the nearest teams can be assigned');
  assert.ok(await a.page.isVisible('#supply-plans li[data-item="sandbags"] button.reserve'), 'a supply plan for the sandbags');

  // The other console sees the incident appear, without reloading.
  await b.page.waitForSelector(`#incident-list li[data-id="${incidentId}"]`, { timeout: 5_000 });
  await b.page.click(`#incident-list li[data-id="${incidentId}"] button`);
  await b.page.waitForSelector('#detail .incident-head h2');
  assert.equal(await b.page.isDisabled('#recommended li.team button.assign'), true, 'read-only without a token');

  // Assign the first recommended team.
  const team = recommended[0].id;
  await a.page.click(`#recommended li.team[data-team="${team}"] button.assign`);
  await a.page.waitForSelector(`#assignments li.active[data-team="${team}"] .team-status[data-status="dispatched"]`, { timeout: 5_000 });
  assert.match(await a.page.textContent(`#assignments li.active[data-team="${team}"]`), /已派遣/);

  // … the other console sees the team turn dispatched, in its panel and on its map.
  await b.page.waitForSelector(`#assignments li.active[data-team="${team}"] .team-status[data-status="dispatched"]`, { timeout: 5_000 });
  await b.page.waitForFunction((id) => window.onemap.querySourceFeatures('onemap', { sourceLayer: 'rescue_teams' })
    .some((f) => f.properties.id === id && f.properties.status === 'dispatched'), team, { timeout: 5_000 });

  // Reserve the sandbags along the plan.
  await a.page.click('#supply-plans li[data-item="sandbags"] button.reserve');
  await a.page.waitForSelector('#reservations li.active');
  await a.page.waitForSelector('#supply-plans li.covered[data-item="sandbags"]');
  assert.match(await a.page.textContent('#reservations li.active'), /沙袋/);
  await b.page.waitForSelector('#reservations li.active', { timeout: 5_000 });

  // Nothing went wrong on either console.
  for (const side of [a, b]) {
    assert.deepEqual(await side.page.$$eval('#messages .message.error', (m) => m.map((x) => x.textContent)), [], 'no error message shown');
  }
  mkdirSync(artifacts, { recursive: true });
  await a.page.evaluate(() => { document.getElementById('console').scrollTop = 0; });
  await a.page.screenshot({ path: join(artifacts, 'dispatch.png') });
  assert.deepEqual(a.problems, [], 'no console errors on the first console');
  assert.deepEqual(b.problems, [], 'no console errors on the second console');
  assert.deepEqual([...a.outside, ...b.outside], [], 'no request leaves 127.0.0.1');
  await a.context.close();
  await b.context.close();
});

test('a team another dispatcher took first is refused with the server’s reason shown', async () => {
  // This console misses the other dispatcher's action: its change stream is cut.
  const a = await openConsole('/dispatch/#12.5/34.99/118.30', { live: false });
  await a.page.fill('#token-input', secret);
  await a.page.click('#login button[type=submit]');
  await a.page.click('#incident-list li.incident button');
  await a.page.waitForSelector('#nearest-teams li.team button.assign');
  const team = Number(await a.page.getAttribute('#nearest-teams li.team', 'data-team'));

  // Meanwhile another dispatcher sends that team to another incident.
  const auth = { authorization: `Bearer ${secret}`, 'content-type': 'application/json' };
  const other = await fetch(`${base}/api/incidents`, { method: 'POST', headers: auth,
    body: JSON.stringify({ type: 'fire', severity: 'general', lon: 118.33, lat: 35.02 }) });
  assert.equal(other.status, 201, await other.clone().text());
  const otherId = (await other.json()).id;
  const taken = await fetch(`${base}/api/incidents/${otherId}/assignments`, { method: 'POST', headers: auth, body: JSON.stringify({ team_id: team }) });
  assert.equal(taken.status, 201, await taken.text());

  await a.page.click(`#nearest-teams li.team[data-team="${team}"] button.assign`);
  const message = await a.page.waitForSelector('#messages .message.error');
  const text = await message.textContent();
  assert.match(text, /409/, text);
  assert.match(text, /已派遣/, `names the team’s status in Chinese: ${text}`);
  assert.match(text, new RegExp(`#${otherId}`), `names the incident that has it: ${text}`);
  assert.deepEqual(a.outside, [], 'no request leaves 127.0.0.1');
  await a.context.close();
});

test('?lang=en shows the console in English, catalog names included, and the toggle turns it Chinese', async () => {
  const a = await openConsole('/dispatch/?lang=en#12.5/34.99/118.30');
  assert.equal(await a.page.textContent('#live'), 'Live');
  assert.equal(await a.page.textContent('#console h1'), 'Dispatch console');
  assert.equal(await a.page.textContent('#incidents h2'), 'Open incidents');
  await a.page.waitForSelector('#incident-list li.incident');
  const listed = await a.page.textContent('#incident-list');
  assert.match(listed, /Flood|Waterlogging|Levee breach/, `incident types by their English names: ${listed}`);
  await a.page.click('.lang-toggle');
  assert.equal(await a.page.textContent('#console h1'), '应急指挥调度台');
  assert.match(await a.page.textContent('#incident-list'), /洪水|城市内涝|堤防险情/);
  assert.ok(!a.page.url().includes('lang=en'), 'the address follows the language');
  assert.deepEqual(a.problems, [], 'no console errors');
  await a.context.close();
});
