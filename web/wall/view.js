// The wall display (`/wall`): the whole district on one dark map, the
// command centre's figures, the open incidents newest first, a live clock
// and a legend, running unattended for weeks. It never lies about being
// live: when the change stream or a request fails, the banner turns red and
// says how old the figures are, and the figures stay as last known.
//
// `/wall?at=<RFC 3339>` (or the replay control) shows a past moment from
// `/api/replay` instead, marked "回放 …", with no live update.
//
// The address holds the state (`#zoom/lat/lon`, `?lang=`, `?at=`,
// `?hide=layer,…`), so the last-resort reload when the heap outgrows its
// bound, or when a lost WebGL context does not come back, shows the same.
import { createMap } from '../lib/map.js';
import { el } from '../lib/dom.js';
import { matchColours, scaleSize } from '../lib/style.js';
import { replayLayers, isReplay, REPLAY_PREFIX } from '../lib/replay.js';
import { follow } from '../lib/live.js';
import { get } from '../lib/api.js';
import * as catalog from '../lib/catalog.js';
import { figures, reloader } from '../lib/summary.js';
import { t, translatePage, onLangChange, formatClock, formatDate, formatTime, formatNumber, formatDuration } from '../lib/i18n.js';

/** Open incidents listed at most (the rest is counted). */
const MAX_TICKER = 12;
/** Changes held for the next frame; beyond, every tile is reloaded. */
const MAX_PENDING = 500;
/** Events within this long are one batch (a storm of positions costs a
 * few tile reloads a second, not one per event). */
const COALESCE_MS = 250;
/** Summary and incident list reloads at most this often while events pour in. */
const RELOAD_GAP_MS = 1_000;
/** A failed summary or incident list is retried this often. */
const RETRY_MS = 10_000;
/** The JS heap, in MB, beyond which the page reloads itself (`?heap_mb=`). */
const HEAP_LIMIT_MB = 768;
const HEAP_CHECK_MS = 60_000;
/** Self-reloads at most this often (a heap already too big after a
 * reload must not reload in a loop). */
const RELOAD_GUARD_MS = 15 * 60_000;
/** A lost WebGL context not restored by then is answered by a reload. */
const RESTORE_TIMEOUT_MS = 30_000;
/** Incident statuses that count as open. */
const OPEN = ['reported', 'active'];

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

translatePage();

// ------------------------------------------------------------------ state

const wall = {
  mode: params.get('at') ? 'replay' : 'live',
  /** Bumped on every switch between live and replay: an answer of the
   * other mode, arriving late, is dropped. */
  generation: 0,
  feed: null,
  feedState: null,
  summaryAt: null,
  summaryError: null,
  incidentsError: null,
  incidents: null,
  incidentsNow: () => Date.now(),
  replayAt: null,
  contextLost: false,
};

// ------------------------------------------------------------- the banner

const oldest = (...dates) => dates.filter(Boolean).sort((a, b) => a - b)[0] ?? null;

function showBanner() {
  const banner = $('banner');
  const marker = $('replay-marker');
  banner.classList.remove('stale', 'replay');
  if (wall.mode === 'replay') {
    // The marker replaces the live banner: nothing here is live.
    marker.hidden = false;
    marker.textContent = t('wall.replay', { time: wall.replayAt ? formatTime(wall.replayAt) : '—' });
    banner.hidden = true;
    document.body.classList.remove('stale-figures');
    return;
  }
  banner.hidden = false;
  marker.hidden = true;
  const feed = wall.feedState;
  const failed = wall.summaryError ?? wall.incidentsError;
  const stale = !feed?.live || failed;
  document.body.classList.toggle('stale-figures', Boolean(stale && wall.summaryAt));
  if (!feed && !failed) { banner.textContent = t('status.loading'); return; }
  if (!stale) { banner.textContent = t('status.live'); return; }
  banner.classList.add('stale');
  const since = oldest(feed?.since, failed ? wall.summaryAt : null);
  const time = since ? formatClock(since) : '—';
  banner.textContent = feed?.live && failed
    ? t('wall.stale_request', { time, message: failed.message })
    : t('wall.stale', { time });
}

function showError(text) {
  const box = $('error');
  box.hidden = !text;
  box.textContent = text ?? '';
}

// ----------------------------------------------------------------- clock

function tick() {
  const now = new Date();
  $('clock').textContent = `${formatDate(now)} ${formatClock(now)}`;
  $('clock').setAttribute('datetime', now.toISOString());
}

// ------------------------------------------------------------------ KPIs

function showFigures(summary) {
  const groups = summary ? figures(summary) : figures({});
  const value = (v) => (v === null || v === undefined ? t('kpi.unknown') : formatNumber(v));
  const sections = groups.map((g) => el('section', { class: 'kpi', dataset: { group: g.key } },
    el('h2', {}, g.title, g.total === null ? null
      : el('span', { class: 'total', dataset: { kpi: `${g.key}.total`, value: summary ? g.total : undefined } }, value(summary ? g.total : null))),
    el('dl', {}, g.rows.map((r) => {
      const known = summary && r.value !== null;
      return el('div', { class: `cell ${r.className ?? ''}` },
        el('dt', {}, r.label),
        el('dd', { dataset: { kpi: `${g.key}.${r.key}`, value: known ? r.value : undefined } },
          value(known ? r.value : null),
          known && r.unit ? el('span', { class: 'unit' }, r.unit) : null,
          known && r.reserved ? el('span', { class: 'reserved' }, t('kpi.reserved', { n: formatNumber(r.reserved) })) : null));
    }))));
  $('kpis').replaceChildren(...sections);
}

let lastSummary = null;
function setSummary(summary) {
  lastSummary = summary;
  showFigures(summary);
}

// ---------------------------------------------------------------- ticker

function showTicker() {
  const list = wall.incidents;
  if (!list) { $('ticker').replaceChildren(); $('ticker-more').textContent = ''; return; }
  const now = wall.incidentsNow();
  const shown = list.slice(0, MAX_TICKER);
  $('ticker').replaceChildren(...shown.map((f) => {
    const p = f.properties;
    const reported = Date.parse(p.reported_at);
    return el('li', { class: `sev-${p.severity ?? 'none'}`, dataset: { id: f.id ?? p.id, severity: p.severity ?? '' } },
      el('span', { class: 'name' }, p.name ?? `#${f.id}`),
      el('span', { class: 'meta' },
        el('span', { class: 'sev' }, catalog.valueTitle('incidents', 'severity', p.severity)),
        el('span', {}, catalog.valueTitle('incidents', 'type', p.type)),
        el('span', {}, catalog.valueTitle('incidents', 'status', p.status)),
        Number.isFinite(reported)
          ? el('span', { class: 'open-for' }, t('ticker.open_for', { d: formatDuration(now - reported) }))
          : null));
  }));
  const more = list.length - shown.length;
  $('ticker-more').textContent = list.length === 0 ? t('incidents.none') : more > 0 ? t('incidents.more', { n: more }) : '';
}

/** Open incidents, newest first (the order of `/api/incidents`). */
function openIncidents(features) {
  return features
    .filter((f) => OPEN.includes(f.properties?.status))
    .sort((a, b) => String(b.properties.reported_at ?? '').localeCompare(String(a.properties.reported_at ?? '')) || (b.id - a.id));
}

// ------------------------------------------------------------ live loads

const loadSummary = reloader(async () => {
  const generation = wall.generation;
  try {
    const summary = await get('/api/summary');
    if (generation !== wall.generation || wall.mode !== 'live') return;
    wall.summaryError = null;
    wall.summaryAt = new Date();
    wall.summarySeq = summary.seq;
    setSummary(summary);
  } catch (error) {
    if (generation !== wall.generation) return;
    // The figures shown stay: they are the last known, now marked stale.
    wall.summaryError = error;
  } finally {
    showBanner();
  }
}, { minGapMs: RELOAD_GAP_MS });

const loadIncidents = reloader(async () => {
  const generation = wall.generation;
  try {
    const answer = await get(`/api/incidents?status=${OPEN.join(',')}`);
    if (generation !== wall.generation || wall.mode !== 'live') return;
    wall.incidentsError = null;
    wall.incidents = openIncidents(answer.features ?? []);
    wall.incidentsNow = () => Date.now();
    showTicker();
  } catch (error) {
    if (generation !== wall.generation) return;
    wall.incidentsError = error;
  } finally {
    showBanner();
  }
}, { minGapMs: RELOAD_GAP_MS });

const touches = (change, layer) => change.layer === layer || (change.also ?? []).some((a) => a.layer === layer);
/** Whether a change can alter the figures: a team's new position alone
 * cannot (no status, no count, no stock changes with it). */
const countsChange = (change) => change.action?.kind !== 'team.position';

// ------------------------------------------------------------------- map

const hadView = /^#[\d.]+\/[-\d.]+\/[-\d.]+/.test(location.hash);
// Map errors (a tile that failed while the server was away) are logged by
// the shell; the banner already says the wall is not live.
const shell = createMap({ controls: false, onStatus: () => {} });
const { map, ready, refresh } = shell;
// Whether the view is set up: the catalog read and the address's hidden
// layers applied (MapLibre's own `loaded()` can come first).
let shellReady = false;

// Changes are drawn at most once per animation frame; a wall left in a
// hidden tab (no frames) holds a bounded list and then reloads everything.
let pending = [];
let everything = false;
let frame = 0;
function draw(changes) {
  if (!changes) { everything = true; pending = []; } else if (!everything) {
    if (pending.length + changes.length > MAX_PENDING) { everything = true; pending = []; } else pending.push(...changes);
  }
  frame ||= requestAnimationFrame(() => {
    frame = 0;
    const batch = everything ? null : pending;
    pending = [];
    everything = false;
    if (wall.mode === 'live' && !wall.contextLost) refresh(batch);
  });
}

/** Paint and size properties scaled with the screen, from their values
 * in the style (kept once, so a resize or a restored context never
 * compounds the factor). */
const SCALED = { paint: ['circle-radius', 'circle-stroke-width', 'line-width', 'text-halo-width'], layout: ['text-size'] };
const originals = new Map();
const screenFactor = () => Math.max(1, Math.min(innerWidth / 1920, innerHeight / 1080));

function fitToScreen() {
  if (!map.style) return;
  const k = screenFactor();
  for (const l of map.getStyle().layers) {
    const own = isReplay(l.id) ? l.id.slice(REPLAY_PREFIX.length) : l.id;
    if (!originals.has(own)) {
      if (l.id !== own) continue;
      const o = { paint: {}, layout: {} };
      for (const p of SCALED.paint) if (l.paint?.[p] !== undefined) o.paint[p] = l.paint[p];
      for (const p of SCALED.layout) if (l.layout?.[p] !== undefined) o.layout[p] = l.layout[p];
      originals.set(own, o);
    }
    const o = originals.get(own);
    for (const [p, v] of Object.entries(o.paint)) map.setPaintProperty(l.id, p, scaleSize(v, k));
    for (const [p, v] of Object.entries(o.layout)) map.setLayoutProperty(l.id, p, scaleSize(v, k));
  }
}

/** The style's colours turned for a dark room: the background and the
 * districts dark, labels light on a dark halo. */
function darken() {
  const set = (id, p, v) => { if (map.getLayer(id)) map.setPaintProperty(id, p, v); };
  set('background', 'background-color', '#0b1622');
  const fill = map.getPaintProperty('districts-fill', 'fill-color');
  const m = matchColours(fill);
  if (m) {
    set('districts-fill', 'fill-color', ['match', ['get', m.property], ...[...m.colours.keys()].flatMap((v) => [v, '#13263b']), '#0d1a2a']);
  }
  const line = matchColours(map.getPaintProperty('districts-line', 'line-color'));
  if (line) {
    set('districts-line', 'line-color', ['match', ['get', line.property], ...[...line.colours.keys()].flatMap((v) => [v, '#ff5252']), '#37506b']);
  }
  for (const l of map.getStyle().layers) {
    if (l.type === 'symbol') {
      set(l.id, 'text-color', '#e8eef7');
      set(l.id, 'text-halo-color', 'rgba(7, 13, 22, 0.92)');
    }
  }
}

/** Layers the address hides or shows against the style's choice
 * (`?hide=a,b&show=c`, catalog names). */
const listed = (key) => new Set((params.get(key) ?? '').split(',').map((s) => s.trim()).filter(Boolean));
const hiddenLayers = listed('hide');
const shownLayers = listed('show');
/** The catalog layers the style itself hides (the population grid). */
let styleHidden = null;

function applyHidden() {
  const layers = map.getStyle().layers;
  styleHidden ??= new Set(layers.filter((l) => l.layout?.visibility === 'none').map((l) => l.metadata?.['onemap:layer']).filter(Boolean));
  for (const l of layers) {
    const name = l.metadata?.['onemap:layer'];
    if (!name || isReplay(l.id)) continue;
    if (hiddenLayers.has(name)) map.setLayoutProperty(l.id, 'visibility', 'none');
    else if (shownLayers.has(name)) map.setLayoutProperty(l.id, 'visibility', 'visible');
  }
}

/** The bounds of every layer but the reference ones (the district the
 * data covers, not the whole city around it). */
async function districtBounds() {
  const answer = await get('/ogc/collections');
  let box = null;
  for (const c of answer.collections ?? []) {
    if (c['x-onemap']?.group === 'reference') continue;
    const b = c.extent?.spatial?.bbox?.[0];
    if (!Array.isArray(b) || b.length < 4 || !b.every(Number.isFinite)) continue;
    box = box ? [Math.min(box[0], b[0]), Math.min(box[1], b[1]), Math.max(box[2], b[2]), Math.max(box[3], b[3])] : b.slice(0, 4);
  }
  return box;
}

let bounds = null;
function fitDistrict() {
  if (!bounds || hadView) return;
  const side = $('kpis').getBoundingClientRect().width;
  const top = $('top').getBoundingClientRect().height;
  const pad = Math.round(innerHeight * 0.03);
  const legend = $('legend').getBoundingClientRect().height;
  map.fitBounds([[bounds[0], bounds[1]], [bounds[2], bounds[3]]], {
    padding: { left: side + 2 * pad, right: side + 2 * pad, top: top + pad, bottom: legend + 2 * pad },
    animate: false,
  });
}

// ---------------------------------------------------------------- legend

function showLegend() {
  if (!map.style) return;
  const style = map.getStyle();
  const groups = [];
  const risk = style.metadata?.['onemap:risk_colours'] ?? [];
  if (risk.length) {
    groups.push([t('legend.risk'), risk.map((r) => [catalog.valueTitle('hazard_sources', 'risk_level', r.risk_level), r.colour])]);
  }
  const paint = (id, p) => style.layers.find((l) => l.id === id)?.paint?.[p];
  const teams = matchColours(paint('rescue_teams', 'circle-color'));
  if (teams) {
    const values = catalog.property('rescue_teams', teams.property)?.values ?? [...teams.colours.keys()];
    groups.push([t('legend.teams'), values.map((v) => [catalog.valueTitle('rescue_teams', teams.property, v), teams.colours.get(v) ?? teams.fallback])]);
  }
  const incidents = matchColours(paint('incidents', 'circle-color'));
  if (incidents) {
    groups.push([t('legend.incidents'), OPEN.map((v) => [catalog.valueTitle('incidents', incidents.property, v), incidents.colours.get(v) ?? incidents.fallback])]);
  }
  groups.push([t('legend.severity'), ['especially_major', 'major', 'large', 'general'].map((v) => [catalog.valueTitle('incidents', 'severity', v), null, `sev-${v}`])]);
  $('legend').replaceChildren(...groups.map(([title, entries]) => el('div', {},
    el('h3', {}, title),
    el('ul', {}, entries.map(([label, colour, className]) => el('li', { class: className },
      el('span', { class: 'swatch', style: colour ? `--c: ${colour}` : undefined }), label))))));
}

// ---------------------------------------------------------------- replay

const replay = replayLayers(map);

async function enterReplay(at) {
  wall.generation += 1;
  const generation = wall.generation;
  wall.mode = 'replay';
  wall.replayAt = at;
  $('replay-at').value = localInput(at);
  wall.feed?.stop();
  wall.feed = null;
  wall.feedState = null;
  pending = [];
  setAddress({ at: at.toISOString() });
  $('back-live').hidden = false;
  showBanner();
  showError(t('wall.replay_loading', { time: formatTime(at) }));
  // No figure of the present under a replay marker: unknown until it loads.
  setSummary(null);
  wall.incidents = null;
  showTicker();
  try {
    const answer = await get(`/api/replay?at=${encodeURIComponent(at.toISOString())}`);
    await ready;
    if (generation !== wall.generation) return;
    showError(null);
    wall.replayAt = new Date(answer.at);
    setSummary(answer.summary);
    wall.replaySeq = answer.seq;
    wall.incidents = openIncidents(answer.layers?.incidents?.features ?? []);
    wall.incidentsNow = () => wall.replayAt.getTime();
    showTicker();
    showBanner();
    whenStyle(() => { if (generation === wall.generation) { replay.draw(answer.layers ?? {}); fitToScreen(); } });
  } catch (error) {
    if (generation !== wall.generation) return;
    showError(t('wall.replay_error', { message: error.message }));
  }
}

function leaveReplay() {
  wall.generation += 1;
  wall.mode = 'live';
  wall.replayAt = null;
  setAddress({ at: null });
  $('back-live').hidden = true;
  showError(null);
  // The present's tiles were not refreshed while replaying: all reloaded.
  whenStyle(() => { replay.clear(); draw(null); });
  setSummary(null);
  wall.incidents = null;
  showTicker();
  startLive();
}

/** Run `fn` now when the map has a loaded style, else once it has one
 * again (after a lost context is restored). */
function whenStyle(fn) {
  if (map.style && map.isStyleLoaded()) fn();
  else map.once('idle', () => whenStyle(fn));
}

/** Change query parameters of the address, keeping its hash (the view). */
function setAddress(changes) {
  const url = new URL(location.href);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === '') url.searchParams.delete(k); else url.searchParams.set(k, v);
  }
  history.replaceState(history.state, '', url);
}

// The replay control: a moment within the last day by the slider, or any
// moment typed in.
const localInput = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
function showSliderValue() {
  const minutes = -Number($('replay-slider').value);
  $('replay-ago').textContent = t('wall.replay_ago', { n: minutes });
}
$('replay-slider').addEventListener('input', () => {
  showSliderValue();
  $('replay-at').value = localInput(new Date(Date.now() + Number($('replay-slider').value) * 60_000));
});
$('replay-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const value = $('replay-at').value;
  const at = value ? new Date(value) : new Date(Date.now() + Number($('replay-slider').value) * 60_000);
  if (!Number.isNaN(at.getTime())) enterReplay(at);
});
$('back-live').addEventListener('click', (event) => { event.preventDefault(); if (wall.mode === 'replay') leaveReplay(); });

// ------------------------------------------------------------------ live

function startLive() {
  wall.feed?.stop();
  loadSummary();
  loadIncidents();
  wall.feed = follow({
    coalesceMs: COALESCE_MS,
    onChange: (changes) => {
      draw(changes);
      if (changes.some(countsChange)) loadSummary();
      if (changes.some((c) => touches(c, 'incidents'))) loadIncidents();
    },
    onReset: () => { draw(null); loadSummary(); loadIncidents(); },
    // Every (re)connection reloads what is not event-driven; the missed
    // changes themselves arrive as events (Last-Event-ID).
    onOpen: ({ resumed }) => { if (resumed) { loadSummary(); loadIncidents(); } },
    onState: (state) => { wall.feedState = state; showBanner(); },
  });
}

// ------------------------------------------------- context loss, heap

let restoreTimer = null;
let lostView = null;

function viewState() {
  return { center: map.getCenter(), zoom: map.getZoom(), bearing: map.getBearing(), pitch: map.getPitch() };
}

map.on('webglcontextlost', () => {
  wall.contextLost = true;
  lostView = viewState();
  $('restoring').hidden = false;
  clearTimeout(restoreTimer);
  restoreTimer = setTimeout(() => reloadPreserving('webgl'), RESTORE_TIMEOUT_MS);
});
map.on('webglcontextrestored', () => {
  clearTimeout(restoreTimer);
  // MapLibre rebuilds the style from its snapshot (layers, visibility,
  // the replay's sources); the view is put back for certain, and the
  // tiles of the present reload with the new style.
  if (lostView) map.jumpTo(lostView);
  whenStyle(() => {
    wall.contextLost = false;
    $('restoring').hidden = true;
    applyHidden();
    fitToScreen();
  });
});

/** Reload with the same view, layers, language and moment: the address
 * carries them (the hash follows the view; `hide` lists hidden layers). */
function reloadPreserving(reason) {
  const last = Number(sessionStorage.getItem('onemap.wall.reloaded') ?? 0);
  if (Date.now() - last < RELOAD_GUARD_MS) return false;
  sessionStorage.setItem('onemap.wall.reloaded', String(Date.now()));
  sessionStorage.setItem('onemap.wall.reload_reason', reason);
  if (map.style && styleHidden) {
    // What the wall shows now, against the style's own choice.
    const off = new Set();
    const on = new Set();
    for (const l of map.getStyle().layers) {
      const name = l.metadata?.['onemap:layer'];
      if (!name || isReplay(l.id)) continue;
      const visible = (replay.visibilityBefore(l.id) ?? l.layout?.visibility ?? 'visible') !== 'none';
      if (!visible && !styleHidden.has(name)) off.add(name);
      if (visible && styleHidden.has(name)) on.add(name);
    }
    setAddress({ hide: [...off].join(',') || null, show: [...on].join(',') || null });
  }
  const url = new URL(location.href);
  if (!/^#[\d.]+\//.test(url.hash) && lostView) {
    url.hash = `${lostView.zoom.toFixed(2)}/${lostView.center.lat.toFixed(5)}/${lostView.center.lng.toFixed(5)}`;
    history.replaceState(history.state, '', url);
  }
  location.reload();
  return true;
}

/** The last line of defence against a leak nobody found: reload when the
 * JS heap (Chromium's `performance.memory`) passes its bound. */
function checkHeap(limitMb = Number(params.get('heap_mb')) || HEAP_LIMIT_MB) {
  const used = performance.memory?.usedJSHeapSize;
  if (!used || used < limitMb * 1024 * 1024) return false;
  return reloadPreserving('heap');
}

// ----------------------------------------------------------------- start

tick();
setInterval(tick, 1_000);
// Open-for durations move on; failed loads are retried.
setInterval(() => {
  showTicker();
  if (wall.mode === 'live' && wall.summaryError) loadSummary();
  if (wall.mode === 'live' && wall.incidentsError) loadIncidents();
}, RETRY_MS);
setInterval(() => checkHeap(), HEAP_CHECK_MS);
showSliderValue();
if (wall.mode === 'live') $('replay-at').value = localInput(new Date());
showFigures(null);
showBanner();

onLangChange(() => { showFigures(lastSummary); showTicker(); showLegend(); showBanner(); tick(); });

ready.then(async () => {
  darken();
  applyHidden();
  shellReady = true;
  fitToScreen();
  showLegend();
  // The catalog (value names) is loaded now: name what was drawn before.
  showFigures(lastSummary);
  showTicker();
  bounds = await districtBounds().catch(() => null);
  fitDistrict();
});

let resizeTimer = null;
addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { fitToScreen(); fitDistrict(); }, 250);
});

if (wall.mode === 'replay') {
  const at = new Date(params.get('at'));
  if (Number.isNaN(at.getTime())) {
    wall.replayAt = null;
    showBanner();
    showError(t('wall.replay_error', { message: params.get('at') }));
  } else {
    enterReplay(at);
  }
} else {
  startLive();
}

/** For the operators' console and the browser tests. */
window.onemapWall = {
  get mode() { return wall.mode; },
  get lastEventId() { return wall.feed?.lastEventId ?? null; },
  get heartbeatMs() { return wall.feed?.heartbeatMs ?? null; },
  get live() { return Boolean(wall.feedState?.live); },
  get summarySeq() { return wall.summarySeq ?? null; },
  get replaySeq() { return wall.replaySeq ?? null; },
  get ready() { return shellReady; },
  checkHeap,
  view: viewState,
};
