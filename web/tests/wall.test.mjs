// The wall display in a real Chromium against a real onemap server with
// the demo (heartbeat 2 s): one wall page lives through the tests as a wall
// does. It loads without console errors and draws every operational layer
// with the figures of /api/summary; a team's new position shows within
// 2 s; a killed server turns the banner red within two heartbeats with the
// figures kept, and the server restarted on the same port and database
// brings the wall back, without reload, with every change made meanwhile;
// ~5,000 events leave the JS heap flat; a lost WebGL context comes back
// with the same view and layers; the heap guard reloads to the same view;
// /wall?at= shows a replayed moment, and a moment before the log is a
// visible error. Screenshots at 1920×1080 and 3840×2160 go to
// tests/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  webDir, tempDatabase, dispatcherToken, startServer as startOne, stopServer, stopAll, launchBrowser,
} from './harness.mjs';
const artifacts = join(webDir, 'tests', 'artifacts');
const HEARTBEAT_S = 2;
/** Events of the soak, and the time it may take at most (a debug server
 * on a busy machine writes fewer: the count reached is reported). */
const SOAK_EVENTS = Number(process.env.WALL_SOAK_EVENTS ?? 5_000);
const SOAK_BUDGET_MS = Number(process.env.WALL_SOAK_MS ?? 65_000);
/** Heap growth allowed after warm-up, per 1,000 events, after a GC. */
const SLOPE_BOUND = 1024 * 1024;

let database;
let server;
let base;
let port;
let browser;
let secret;
let wall; // { page, problems, outside }
let replayAt; // a moment after the wall loaded, before any change of the tests
let operational; // the names of the operational layers

/** Start onemap on `bind` over the test database, heartbeat 2 s. */
function startServer(bind = '127.0.0.1:0') {
  return startOne(database, { bind, args: ['--events-heartbeat', String(HEARTBEAT_S)] });
}

before(async () => {
  database = tempDatabase('wall');
  secret = dispatcherToken(database, 'wall-test');
  server = await startServer();
  ({ base, port } = server);
  browser = await launchBrowser();
  const layers = await (await fetch(`${base}/api/layers`)).json();
  operational = layers.layers.filter((l) => l.group === 'operational').map((l) => l.name);
  mkdirSync(artifacts, { recursive: true });
});

after(async () => {
  await browser?.close();
  stopAll();
});

/** A page recording console errors and warnings, failed answers and
 * requests leaving 127.0.0.1. */
async function open(path, viewport = { width: 1920, height: 1080 }) {
  const page = await browser.newPage({ viewport });
  const problems = [];
  const outside = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`); });
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith('http://127.0.0.1') && !url.startsWith('data:') && !url.startsWith('blob:')) outside.push(url);
  });
  await page.goto(`${base}${path}`);
  await page.waitForFunction(() => window.onemap?.loaded() && window.onemap.areTilesLoaded() && window.onemapWall, null, { timeout: 60_000 });
  return { page, problems, outside };
}

const auth = () => ({ authorization: `Bearer ${secret}`, 'content-type': 'application/json' });
const json = async (path, at = base) => (await fetch(`${at}${path}`)).json();

async function moveTeam(id, lon, lat, at = base) {
  const r = await fetch(`${at}/api/teams/${id}/position`, { method: 'PATCH', headers: auth(), body: JSON.stringify({ lon, lat }) });
  const text = await r.text();
  assert.equal(r.status, 200, text);
}

/** Features drawn per source layer (tile layers and replay copies). */
function drawnLayers(page) {
  return page.evaluate(() => {
    const counts = {};
    for (const f of window.onemap.queryRenderedFeatures()) {
      const name = f.layer.metadata?.['onemap:layer'];
      if (name) counts[name] = (counts[name] ?? 0) + 1;
    }
    return counts;
  });
}

/** The figures the wall shows, by `data-kpi` key; `null` when shown as unknown. */
function shownFigures(page) {
  return page.$$eval('[data-kpi]', (els) => Object.fromEntries(els.map((e) => [e.dataset.kpi,
    e.dataset.value === undefined ? null : Number(e.dataset.value)])));
}

/** What each wall figure must be, from a summary. */
function expectedFigures(summary, shown) {
  const out = {};
  for (const key of Object.keys(shown)) {
    const [group, k] = key.split('.');
    const byStatus = summary.teams.by_status;
    out[key] = {
      teams: () => (k === 'total' ? Object.values(byStatus).reduce((a, b) => a + b, 0) : byStatus[k] ?? 0),
      incidents: () => (k === 'total' ? summary.incidents.open : summary.incidents.open_by_severity[k] ?? 0),
      shelters: () => (k === 'total' ? summary.shelters.count : summary.shelters[k]),
      supplies: () => summary.supplies[k]?.available ?? null,
    }[group]();
  }
  return out;
}

/** Where the wall draws team `id` (its own circle, not a cluster). */
function teamOnWall(page, id) {
  return page.evaluate((team) => {
    const f = window.onemap.queryRenderedFeatures({ layers: ['rescue_teams'] }).find((x) => x.properties.id === team);
    return f ? f.geometry.coordinates : null;
  }, id);
}

/** Through `other` (a second server on the same database): move team 2,
 * take a standby team off duty, report an incident. */
async function changeMeanwhile(other) {
  const team2 = (await json('/ogc/collections/rescue_teams/items/2', other.base)).geometry.coordinates;
  const to = [team2[0] - 0.003, team2[1] + 0.003];
  await moveTeam(2, ...to, other.base);
  const standby = (await json('/ogc/collections/rescue_teams/items?status=standby&limit=1', other.base)).features[0].id;
  let r = await fetch(`${other.base}/api/teams/${standby}/status`, { method: 'PATCH', headers: auth(), body: JSON.stringify({ status: 'off_duty' }) });
  assert.equal(r.status, 200, await r.text());
  r = await fetch(`${other.base}/api/incidents`, { method: 'POST', headers: auth(),
    body: JSON.stringify({ type: 'fire', severity: 'especially_major', name: '停机期间的火情', lon: 118.31, lat: 34.98 }) });
  const text = await r.text();
  assert.equal(r.status, 201, text);
  return { incident: JSON.parse(text).id, to };
}

const metres = ([a, b], [c, d]) => Math.hypot((a - c) * 111_320 * Math.cos((b * Math.PI) / 180), (b - d) * 110_540);

/** The JS heap after a forced GC, in bytes (CDP Performance.getMetrics). */
async function heap(cdp) {
  return (await metrics(cdp)).JSHeapUsedSize;
}

/** Chromium's page metrics after a forced GC: JSHeapUsedSize, Nodes,
 * JSEventListeners, … */
async function metrics(cdp) {
  await cdp.send('HeapProfiler.collectGarbage');
  const { metrics: list } = await cdp.send('Performance.getMetrics');
  return Object.fromEntries(list.map((m) => [m.name, m.value]));
}

/** Resident memory of every Chromium process this test started (RSS and
 * PSS, which shares out the pages they have in common), in MB. */
function chromiumMemory() {
  const parent = new Map();
  const names = new Map();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      names.set(pid, stat.slice(stat.indexOf('(') + 1, close));
      parent.set(pid, stat.slice(close + 2).split(' ')[1]);
    } catch { /* gone meanwhile */ }
  }
  const mine = (pid) => { for (let p = pid; p && p !== '0'; p = parent.get(p)) if (p === String(process.pid)) return true; return false; };
  let rss = 0;
  let pss = 0;
  for (const [pid, name] of names) {
    if (!/chrom/i.test(name) || !mine(pid)) continue;
    try {
      const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      rss += Number(text.match(/^Rss:\s+(\d+)/m)?.[1] ?? 0);
      pss += Number(text.match(/^Pss:\s+(\d+)/m)?.[1] ?? 0);
    } catch { /* gone meanwhile */ }
  }
  return { rss: Math.round(rss / 1024), pss: Math.round(pss / 1024) };
}

test('/wall loads offline without errors, draws every operational layer, and shows the figures of /api/summary', async (t) => {
  // Without the slash: redirected to the folder.
  wall = await open('/wall');
  const { page } = wall;
  assert.ok(page.url().includes('/wall/'), page.url());
  await page.waitForFunction(() => window.onemapWall.live && document.getElementById('banner').textContent === '实时', null, { timeout: 10_000 });
  await page.waitForTimeout(500);
  replayAt = new Date().toISOString();
  const drawn = await drawnLayers(page);
  for (const name of operational) assert.ok(drawn[name] > 0, `${name} is drawn: ${JSON.stringify(drawn)}`);

  const summary = await json('/api/summary');
  await page.waitForFunction(() => document.querySelector('[data-kpi="teams.total"]')?.dataset.value !== undefined);
  const shown = await shownFigures(page);
  assert.ok(Object.keys(shown).length >= 15, `figures shown: ${JSON.stringify(shown)}`);
  for (const item of ['sandbags', 'life_jackets', 'assault_boats', 'pumps', 'tents']) {
    assert.ok(shown[`supplies.${item}`] > 0, `the stock of ${item} is shown: ${JSON.stringify(shown)}`);
  }
  assert.deepEqual(shown, expectedFigures(summary, shown), 'the figures are /api/summary’s');

  // The ticker lists the open incidents newest first, in Chinese.
  const openNow = (await json('/api/incidents?status=reported,active')).features;
  const ticker = await page.$$eval('#ticker li', (items) => items.map((li) => ({ id: Number(li.dataset.id), text: li.textContent })));
  assert.deepEqual(ticker.map((x) => x.id), openNow.slice(0, 12).map((f) => f.id), 'newest first');
  assert.match(ticker[0].text, /已持续/);
  const legend = await page.textContent('#legend');
  for (const word of ['重大风险', '较大风险', '待命', '已派遣', '特别重大']) assert.ok(legend.includes(word), `the legend names ${word}: ${legend}`);
  assert.match(await page.textContent('#clock'), /\d{2}:\d{2}:\d{2}/);
  assert.equal(await page.evaluate(() => window.onemapWall.heartbeatMs), HEARTBEAT_S * 1000, 'the page follows the server’s heartbeat');

  await page.screenshot({ path: join(artifacts, 'wall-1920x1080.png') });
  assert.deepEqual(wall.problems, [], 'no console errors or warnings');
  assert.deepEqual(wall.outside, [], 'no request leaves 127.0.0.1');
  t.diagnostic(`drawn per layer: ${JSON.stringify(drawn)}`);
});

test('a team’s new position shows on the wall within 2 s', async (t) => {
  const { page } = wall;
  const team = (await json('/ogc/collections/rescue_teams/items/1')).geometry.coordinates;
  const before = await teamOnWall(page, 1);
  assert.ok(before, 'team 1 is drawn on its own');
  const to = [team[0] + 0.004, team[1] + 0.002]; // ~420 m away
  const sent = Date.now();
  await moveTeam(1, ...to);
  await page.waitForFunction(([target]) => {
    const f = window.onemap.queryRenderedFeatures({ layers: ['rescue_teams'] }).find((x) => x.properties.id === 1);
    if (!f) return false;
    const [lon, lat] = f.geometry.coordinates;
    return Math.abs(lon - target[0]) < 2e-4 && Math.abs(lat - target[1]) < 2e-4;
  }, [to], { timeout: 2_000, polling: 50 });
  const took = Date.now() - sent;
  const now = await teamOnWall(page, 1);
  assert.ok(metres(now, to) < 25, `drawn at the new position: ${now} vs ${to}`);
  t.diagnostic(`team 1 moved ${Math.round(metres(before, now))} m on the wall ${took} ms after the PATCH`);
});

test('a killed server turns the banner red within two heartbeats with the figures kept; restarted, the wall catches up without reload', async (t) => {
  const { page } = wall;
  await page.evaluate(() => { window.__sameDocument = true; });
  const figuresBefore = await shownFigures(page);
  const killed = Date.now();
  await stopServer(server, 'SIGKILL');
  await page.waitForFunction(() => document.getElementById('banner').classList.contains('stale'), null,
    { timeout: 2 * HEARTBEAT_S * 1000, polling: 50 });
  const red = Date.now() - killed;
  const banner = await page.textContent('#banner');
  assert.match(banner, /数据截至 \d{2}:\d{2}:\d{2}/, banner);
  // Every failed retry leaves the figures as they were: never 0, never "—".
  await page.waitForTimeout(1_500);
  assert.deepEqual(await shownFigures(page), figuresBefore, 'the figures stay as last known');
  assert.equal(await page.evaluate(() => window.onemapWall.live), false);

  // Meanwhile another server on the same database changes things.
  const other = await startServer();
  let incident;
  let to;
  try {
    ({ incident, to } = await changeMeanwhile(other));
  } finally {
    await stopServer(other);
  }
  const figuresDown = await shownFigures(page);
  assert.deepEqual(figuresDown, figuresBefore, 'still the last known figures');

  server = await startServer(`127.0.0.1:${port}`);
  const restarted = Date.now();
  await page.waitForFunction(() => window.onemapWall.live && !document.getElementById('banner').classList.contains('stale'), null,
    { timeout: 40_000, polling: 50 });
  const reconnect = Date.now() - restarted;
  const summary = await json('/api/summary');
  await page.waitForFunction((seq) => window.onemapWall.lastEventId === String(seq) && window.onemapWall.summarySeq === seq,
    summary.seq, { timeout: 5_000 });
  assert.ok(await page.evaluate(() => window.__sameDocument), 'the page was not reloaded');
  await page.waitForFunction((id) => document.querySelector(`#ticker li[data-id="${id}"]`), incident, { timeout: 5_000 });
  const shown = await shownFigures(page);
  assert.deepEqual(shown, expectedFigures(summary, shown), 'the figures are the new /api/summary’s');
  assert.notDeepEqual(shown, figuresBefore, 'and they changed');
  await page.waitForFunction(([target]) => {
    const f = window.onemap.queryRenderedFeatures({ layers: ['rescue_teams'] }).find((x) => x.properties.id === 2);
    return f && Math.abs(f.geometry.coordinates[0] - target[0]) < 2e-4 && Math.abs(f.geometry.coordinates[1] - target[1]) < 2e-4;
  }, [to], { timeout: 5_000 });
  t.diagnostic(`banner red ${red} ms after the kill; live again ${reconnect} ms after the restart; last event ${summary.seq}`);
});

test('a soak of position events leaves the JS heap flat', async (t) => {
  const { page } = wall;
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const teams = (await json('/ogc/collections/rescue_teams/items?limit=100')).features.map((f) => ({ id: f.id, at: f.geometry.coordinates }));
  const startSeq = (await json('/api/summary')).seq;
  const memoryStart = chromiumMemory();
  const atStart = await metrics(cdp);
  const heapStart = atStart.JSHeapUsedSize;
  let sent = 0;
  let failed = 0;
  const started = Date.now();
  /** Send `n` more position PATCHes, 12 at a time. */
  const burst = async (n) => {
    const end = Math.min(SOAK_EVENTS, sent + n);
    await Promise.all(Array.from({ length: 12 }, async () => {
      while (sent < end && Date.now() - started < SOAK_BUDGET_MS) {
        const k = sent++;
        const team = teams[k % teams.length];
        const r = await fetch(`${base}/api/teams/${team.id}/position`, { method: 'PATCH', headers: auth(),
          body: JSON.stringify({ lon: team.at[0] + ((k % 17) - 8) * 0.0004, lat: team.at[1] + ((k % 13) - 6) * 0.0004 }) });
        if (r.status !== 200) failed += 1;
        await r.arrayBuffer();
      }
    }));
  };
  const warmUp = Math.round(SOAK_EVENTS / 10);
  await burst(warmUp);
  const samples = [[sent, await heap(cdp)]];
  while (sent < SOAK_EVENTS && Date.now() - started < SOAK_BUDGET_MS) {
    await burst(Math.round(SOAK_EVENTS / 20));
    samples.push([sent, await heap(cdp)]);
  }
  const took = Date.now() - started;
  // The wall has seen every event.
  const endSeq = (await json('/api/summary')).seq;
  await page.waitForFunction((seq) => window.onemapWall.lastEventId === String(seq), endSeq, { timeout: 20_000 });
  const atEnd = await metrics(cdp);
  const heapEnd = atEnd.JSHeapUsedSize;
  const memoryEnd = chromiumMemory();
  // Least-squares slope of the heap over the events after warm-up.
  const n = samples.length;
  const mx = samples.reduce((a, [x]) => a + x, 0) / n;
  const my = samples.reduce((a, [, y]) => a + y, 0) / n;
  const slope = samples.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / samples.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  const perThousand = slope * 1000;
  const mb = (b) => (b / 1024 / 1024).toFixed(1);
  t.diagnostic(`${endSeq - startSeq} events (${sent} PATCHes, ${failed} failed) in ${(took / 1000).toFixed(1)} s = ${Math.round(sent / (took / 1000))}/s`);
  t.diagnostic(`JS heap after GC: ${mb(heapStart)} MB at start, ${mb(heapEnd)} MB after the soak; slope after warm-up ${(perThousand / 1024).toFixed(1)} KB per 1,000 events`);
  t.diagnostic(`heap samples (events: MB): ${samples.map(([x, y]) => `${x}: ${mb(y)}`).join(', ')}`);
  t.diagnostic(`DOM nodes ${atStart.Nodes} → ${atEnd.Nodes}, event listeners ${atStart.JSEventListeners} → ${atEnd.JSEventListeners}`);
  t.diagnostic(`Chromium RSS ${memoryStart.rss} MB → ${memoryEnd.rss} MB, PSS ${memoryStart.pss} MB → ${memoryEnd.pss} MB (every process)`);
  assert.equal(failed, 0, 'every PATCH succeeded');
  assert.ok(sent >= 1_000, `at least 1,000 events were sent in the time allowed (${sent})`);
  assert.ok(samples.length >= 4, `enough heap samples: ${samples.length}`);
  assert.ok(perThousand < SLOPE_BOUND, `the heap grows by ${(perThousand / 1024).toFixed(1)} KB per 1,000 events (bound ${SLOPE_BOUND / 1024} KB)`);
  // Nothing is added per event: the page's DOM and listeners stay put
  // (the ticker and figures are redrawn, not appended to).
  assert.ok(atEnd.JSEventListeners <= atStart.JSEventListeners + 20, `listeners ${atStart.JSEventListeners} → ${atEnd.JSEventListeners}`);
  assert.ok(atEnd.Nodes <= atStart.Nodes + 300, `DOM nodes ${atStart.Nodes} → ${atEnd.Nodes}`);
  assert.ok(await page.evaluate(() => window.onemapWall.live), 'still live');
  await cdp.detach();
});

test('a lost WebGL context comes back with the same view and layers, features drawn', async () => {
  const { page } = wall;
  const state = () => page.evaluate(() => {
    const m = window.onemap;
    const c = m.getCenter();
    return {
      view: [c.lng.toFixed(6), c.lat.toFixed(6), m.getZoom().toFixed(4)],
      layers: m.getStyle().layers.map((l) => `${l.id}:${l.layout?.visibility ?? 'visible'}`),
    };
  });
  const before = await state();
  await page.evaluate(() => {
    window.__lose = window.onemap.painter.context.gl.getExtension('WEBGL_lose_context');
    window.__lose.loseContext();
  });
  await page.waitForSelector('#restoring', { state: 'visible', timeout: 5_000 });
  await page.waitForTimeout(300);
  await page.evaluate(() => window.__lose.restoreContext());
  await page.waitForSelector('#restoring', { state: 'hidden', timeout: 20_000 });
  await page.waitForFunction(() => window.onemap.loaded() && window.onemap.areTilesLoaded(), null, { timeout: 30_000 });
  await page.waitForTimeout(300);
  assert.deepEqual(await state(), before, 'the same view and layers');
  const drawn = await drawnLayers(page);
  for (const name of operational) assert.ok(drawn[name] > 0, `${name} is drawn again: ${JSON.stringify(drawn)}`);
  assert.ok(await page.evaluate(() => window.__sameDocument), 'restored without a reload');
});

test('past its heap bound the wall reloads itself to the same view, language and layers', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(`${base}/wall/?lang=en&hide=cameras#11.5/34.95/118.30`);
  await page.waitForFunction(() => window.onemap?.loaded() && window.onemapWall?.ready, null, { timeout: 60_000 });
  const before = page.url();
  await page.evaluate(() => { window.__sameDocument = true; });
  // A bound of 1 MB: passed at once.
  const reloading = page.waitForEvent('load');
  assert.equal(await page.evaluate(() => window.onemapWall.checkHeap(1)), true, 'it reloads');
  await reloading;
  await page.waitForFunction(() => window.onemap?.loaded() && window.onemapWall?.ready, null, { timeout: 60_000 });
  assert.equal(await page.evaluate(() => window.__sameDocument), undefined, 'a new document');
  assert.equal(page.url(), before, 'the same address: view, language, hidden layers');
  assert.equal(await page.textContent('#top h1'), 'Emergency command “one map”');
  assert.equal(await page.evaluate(() => window.onemap.getLayoutProperty('cameras', 'visibility')), 'none');
  // A second time soon after is refused: no reload loop.
  assert.equal(await page.evaluate(() => window.onemapWall.checkHeap(1)), false, 'no second reload within the guard time');
  await page.close();
});

test('/wall?at= shows the moment replayed, with its figures and the REPLAY marker, and no live update', async (t) => {
  const answer = await json(`/api/replay?at=${encodeURIComponent(replayAt)}`);
  const present = await json('/api/summary');
  assert.notDeepEqual(answer.summary.teams, present.teams, 'the moment differs from the present');
  const replay = await open(`/wall/?at=${encodeURIComponent(replayAt)}`);
  const { page } = replay;
  await page.waitForSelector('#replay-marker:not([hidden])');
  await page.waitForFunction(() => document.querySelector('[data-kpi="teams.total"]')?.dataset.value !== undefined);
  await page.waitForFunction(() => window.onemap.getStyle().layers.some((l) => l.id.startsWith('replay:')));
  await page.waitForFunction(() => window.onemap.areTilesLoaded());
  await page.waitForTimeout(800);
  const marker = await page.textContent('#replay-marker');
  const hhmm = await page.evaluate((at) => new Date(at).toLocaleTimeString('zh-CN', { hour: '2-digit', minute: '2-digit', hour12: false }), answer.at);
  assert.ok(marker.startsWith('回放') && marker.includes(hhmm), `the marker names the moment: ${marker} (${hhmm})`);
  const shown = await shownFigures(page);
  assert.deepEqual(shown, expectedFigures(answer.summary, shown), 'the figures are those of the replay');
  // The map draws the replayed features, not the present's tiles (labels
  // placed before the switch may take a frame or two to go).
  const drawnNow = () => page.evaluate(() => {
    const counts = {};
    for (const f of window.onemap.queryRenderedFeatures()) {
      const key = f.layer.id.startsWith('replay:') ? 'replay' : f.layer.metadata?.['onemap:layer'] ?? 'other';
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  });
  const presentDrawn = (counts) => operational.filter((name) => counts[name] !== undefined);
  const deadline = Date.now() + 5_000;
  let drawn = await drawnNow();
  while (presentDrawn(drawn).length && Date.now() < deadline) { await page.waitForTimeout(200); drawn = await drawnNow(); }
  assert.ok(drawn.replay > 100, `replayed features are drawn: ${JSON.stringify(drawn)}`);
  assert.deepEqual(presentDrawn(drawn), [], `no tile of the present draws an operational layer: ${JSON.stringify(drawn)}`);
  const team1 = await page.evaluate(() => window.onemap.queryRenderedFeatures({ layers: ['replay:rescue_teams'] })
    .find((f) => f.properties.id === 1)?.geometry.coordinates);
  const then = answer.layers.rescue_teams.features.find((f) => f.id === 1).geometry.coordinates;
  assert.ok(team1 && metres(team1, then) < 5, `team 1 is where it was then: ${team1} vs ${then}`);
  const ticker = await page.$$eval('#ticker li', (items) => items.map((li) => Number(li.dataset.id)));
  const openThen = answer.layers.incidents.features.filter((f) => ['reported', 'active'].includes(f.properties.status));
  assert.equal(ticker.length, Math.min(12, openThen.length), 'the ticker lists the incidents open then');
  assert.equal(await page.evaluate(() => window.onemapWall.lastEventId), null, 'no change stream while replaying');
  assert.deepEqual(replay.problems, [], 'no console errors or warnings');

  // In English, the marker says REPLAY.
  await page.goto(`${base}/wall/?lang=en&at=${encodeURIComponent(replayAt)}`);
  await page.waitForSelector('#replay-marker:not([hidden])');
  assert.match(await page.textContent('#replay-marker'), /^REPLAY /);
  // Back to live in place (the same map), and into a replay by the control.
  await page.waitForFunction(() => window.onemap.getStyle().layers.some((l) => l.id.startsWith('replay:')));
  await page.click('#back-live');
  await page.waitForFunction(() => window.onemapWall.mode === 'live' && window.onemapWall.live, null, { timeout: 10_000 });
  await page.waitForFunction(() => document.querySelector('[data-kpi="teams.total"]')?.dataset.value !== undefined);
  assert.equal(await page.evaluate(() => window.onemap.getStyle().layers.filter((l) => l.id.startsWith('replay:')).length), 0, 'the replay is removed');
  assert.equal(await page.evaluate(() => window.onemap.getLayoutProperty('rescue_teams', 'visibility')), 'visible', 'the present is drawn again');
  assert.equal(await page.textContent('#banner'), 'Live');
  assert.ok(!page.url().includes('at='), page.url());
  const shownLive = await shownFigures(page);
  assert.deepEqual(shownLive, expectedFigures(await json('/api/summary'), shownLive), 'the figures of the present again');
  // The control takes whole minutes: wait for a minute that starts after
  // the log's first change (the demo's load, before `replayAt`), or the
  // replay is rightly refused as before the log (the test failed whenever
  // the server had started in the same minute).
  const first = new Date(replayAt).getTime();
  while (Math.floor(Date.now() / 60_000) * 60_000 < first) await page.waitForTimeout(500);
  const minute = await page.evaluate(() => { const d = new Date(); return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16); });
  await page.fill('#replay-at', minute);
  await page.click('#replay-form button[type=submit]');
  await page.waitForSelector('#replay-marker:not([hidden])');
  await page.waitForFunction(() => window.onemap.getStyle().layers.some((l) => l.id.startsWith('replay:')), null, { timeout: 10_000 });
  assert.ok(page.url().includes('at='), `the address holds the moment: ${page.url()}`);
  assert.equal(await page.evaluate(() => window.onemapWall.lastEventId), null, 'the change stream is closed again');
  await page.close();
  t.diagnostic(`replayed ${answer.at}: ${answer.changes_undone} changes undone`);
});

test('a replay before the change log is a visible error, not an empty wall', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(`${base}/wall/?at=2000-01-01T00:00:00Z`);
  const error = await page.waitForSelector('#error:not([hidden])');
  await page.waitForFunction(() => /400/.test(document.getElementById('error').textContent));
  const text = await error.textContent();
  assert.match(text, /回放失败.*400.*first entry|回放失败.*400/, text);
  assert.match(text, /precedes/, `the server’s reason is shown: ${text}`);
  const shown = await shownFigures(page);
  assert.ok(Object.values(shown).every((v) => v === null), `no figure is claimed: ${JSON.stringify(shown)}`);
  await page.close();
});

test('the wall reads at 3840×2160 too', async () => {
  const big = await open('/wall/', { width: 3840, height: 2160 });
  await big.page.waitForFunction(() => document.querySelector('[data-kpi="teams.total"]')?.dataset.value !== undefined);
  await big.page.waitForTimeout(800);
  const sizes = await big.page.evaluate(() => ({
    figure: parseFloat(getComputedStyle(document.querySelector('.kpi dd')).fontSize),
    heading: parseFloat(getComputedStyle(document.querySelector('#top h1')).fontSize),
  }));
  assert.ok(sizes.figure >= 50, `figures are large on a 4K wall: ${JSON.stringify(sizes)}`);
  await big.page.screenshot({ path: join(artifacts, 'wall-3840x2160.png') });
  assert.deepEqual(big.problems, [], 'no console errors or warnings');
  await big.page.close();
});
