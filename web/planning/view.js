// The planning view (`/planning`): who the shelters of a category cover
// today and who they leave out (`/api/planning/coverage`), where k new
// shelters should go (`/api/planning/siting`), and the plan saved as a
// scenario with its report (`/api/planning/scenarios`). Coverage is
// recomputed when the change stream says a shelter, a population cell, a
// flood zone or a hazard changed; a siting answer is then marked out of
// date rather than silently redrawn.
import { createMap } from '../lib/map.js';
import { el } from '../lib/dom.js';
import { follow } from '../lib/live.js';
import { get, post, query, token, ApiError } from '../lib/api.js';
import * as catalog from '../lib/catalog.js';
import { reloader } from '../lib/summary.js';
import { t, translatePage, langToggle, onLangChange, formatClock, formatTime, formatNumber, formatPercent } from '../lib/i18n.js';

const CATEGORIES = ['emergency', 'fixed', 'central'];
/** Layers whose changes change the coverage. */
const WATCHED = ['shelters', 'population_grid', 'flood_zones', 'hazard_sources'];
/** Layers never offered as candidate sources (the grid is its own choice). */
const NOT_CANDIDATES = ['population_grid', 'districts', 'flood_zones', 'incidents'];
const MAX_MESSAGES = 5;
const MAX_PINS = 100;
/** Candidates held as kept, and as excluded, at most each. */
const MAX_MARKS = 50;
const MAX_RULED_OUT = 30;
const MAX_SCENARIOS = 20;
/** Quiet time after a change to the watched layers before coverage is recomputed. */
const CHANGE_SETTLE_MS = 1_000;
/** Shelter load classes, in legend order, with their colours. */
const STATES = [['ok', '#43a047'], ['near', '#fb8c00'], ['over', '#e53935'], ['excluded', '#9e9e9e'], ['unknown', '#5c6bc0']];
/** Uncovered people per cell → fill colour. */
const UNCOVERED_RAMP = [0, '#fff3e0', 200, '#ffcc80', 1000, '#ff7043', 3000, '#d84315', 8000, '#7f0000'];
const ZONES = [['flood_zone', '#1565c0'], ['hazard', '#c62828']];
const SITE_COLOUR = '#6a1b9a';
const EMPTY = { type: 'FeatureCollection', features: [] };

/** The map layers of each overlay the view adds (toggled together). */
const OVERLAYS = {
  uncovered: ['planning-uncovered-fill', 'planning-uncovered-line'],
  exclusions: ['planning-zones-fill', 'planning-zones-line'],
  shelters: ['planning-shelters'],
  sites: ['planning-reach-fill', 'planning-reach-line'],
};

const $ = (id) => document.getElementById(id);

const state = {
  coverage: null,
  coverageAt: null,
  coverageLoading: false,
  /** The radius follows the category's standard until the planner edits it. */
  radiusFromStandard: true,
  result: null,
  resultBody: null,
  resultStale: false,
  /** The saved scenario shown, when the result is one. */
  scenario: null,
  keep: new Map(),
  exclude: new Map(),
  pins: [],
  pinSeq: 0,
  scenarios: null,
  scenariosError: null,
  feed: null,
  hidden: new Set(),
  /** category → its standards, as the server names their values and sources. */
  standards: new Map(),
};

// ---------------------------------------------------------------- messages

function say(text, kind = 'ok') {
  const box = $('messages');
  const item = el('p', { class: `message ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    el('span', {}, text), ' ',
    el('button', { type: 'button', class: 'close', 'aria-label': t('message.close'), onclick: () => item.remove() }, '×'));
  box.prepend(item);
  while (box.children.length > MAX_MESSAGES) box.lastElementChild.remove();
  if (kind !== 'error') setTimeout(() => item.remove(), 8_000);
}

function fail(error) {
  let text = error.message;
  if (error instanceof ApiError && error.status === 401) {
    token.clear();
    showLogin();
    text += ` ${t('login.again')}`;
  }
  say(text, 'error');
}

// ------------------------------------------------------------------ login

function showLogin() {
  const signedIn = Boolean(token.get());
  $('login').hidden = signedIn;
  $('signed-in').hidden = !signedIn;
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  const value = $('token-input').value.trim();
  if (!value) return;
  token.set(value);
  $('token-input').value = '';
  showLogin();
  loadScenarios();
});
$('logout').addEventListener('click', () => { token.clear(); showLogin(); });

// ------------------------------------------------------------------- map

let openPopup = null;
const popup = (lngLat, node) => {
  openPopup?.remove();
  openPopup = shell.popupAt(lngLat, node);
  return openPopup;
};

const shell = createMap({
  layerList: $('layers'),
  onStatus: (text) => say(text, 'error'),
  onClick: (event, hits) => clicked(event, hits),
  // The planner's map: the planning layers and the districts (hazards show
  // as their hatched evacuation areas); teams, cameras, hazard points and
  // the like are a toggle away.
  hide: (name, def) => def?.group === 'operational',
});
const { map } = shell;

/** A diagonal hatch of `colour` on a transparent tile, drawn on a canvas
 * (no image file): the fill pattern of the exclusion zones. */
function hatch(colour, size = 16) {
  const canvas = document.createElement('canvas');
  canvas.width = size;
  canvas.height = size;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = `${colour}22`;
  ctx.fillRect(0, 0, size, size);
  ctx.strokeStyle = colour;
  ctx.lineWidth = 2;
  ctx.beginPath();
  // Three strokes so the lines run on across tile edges.
  for (const o of [-size, 0, size]) { ctx.moveTo(o, size); ctx.lineTo(o + size, 0); }
  ctx.stroke();
  return canvas;
}

const hatchUrls = {};

function addOverlays() {
  const before = map.getStyle().layers.find((l) => l.type === 'circle' || l.type === 'symbol')?.id;
  for (const [reason, colour] of ZONES) {
    const canvas = hatch(colour);
    hatchUrls[reason] = canvas.toDataURL();
    map.addImage(`planning-hatch-${reason}`, canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height));
  }
  for (const id of ['planning-uncovered', 'planning-zones', 'planning-shelters', 'planning-reach']) {
    map.addSource(id, { type: 'geojson', data: EMPTY });
  }
  map.addLayer({ id: 'planning-uncovered-fill', type: 'fill', source: 'planning-uncovered',
    filter: ['>', ['to-number', ['get', 'uncovered']], 0],
    paint: { 'fill-color': ['interpolate', ['linear'], ['to-number', ['get', 'uncovered']], ...UNCOVERED_RAMP], 'fill-opacity': 0.62 } }, before);
  map.addLayer({ id: 'planning-uncovered-line', type: 'line', source: 'planning-uncovered',
    filter: ['>', ['to-number', ['get', 'uncovered']], 0],
    paint: { 'line-color': '#bf360c', 'line-width': 0.6, 'line-opacity': 0.6 } }, before);
  map.addLayer({ id: 'planning-zones-fill', type: 'fill', source: 'planning-zones',
    paint: { 'fill-pattern': ['match', ['get', 'reason'], 'flood_zone', 'planning-hatch-flood_zone', 'planning-hatch-hazard'] } }, before);
  map.addLayer({ id: 'planning-zones-line', type: 'line', source: 'planning-zones',
    paint: { 'line-color': ['match', ['get', 'reason'], 'flood_zone', ZONES[0][1], ZONES[1][1]], 'line-width': 1.4, 'line-dasharray': [3, 2] } }, before);
  map.addLayer({ id: 'planning-reach-fill', type: 'fill', source: 'planning-reach',
    paint: { 'fill-color': SITE_COLOUR, 'fill-opacity': 0.08 } }, before);
  map.addLayer({ id: 'planning-reach-line', type: 'line', source: 'planning-reach',
    paint: { 'line-color': SITE_COLOUR, 'line-width': 2, 'line-dasharray': [2, 1.5] } }, before);
  map.addLayer({ id: 'planning-shelters', type: 'circle', source: 'planning-shelters',
    paint: {
      'circle-color': ['match', ['get', 'state'], ...STATES.flat(), '#5c6bc0'],
      'circle-radius': ['interpolate', ['linear'], ['zoom'], 8, 5, 14, 10],
      'circle-stroke-color': '#ffffff', 'circle-stroke-width': 2 } });
}

function setData(source, data) {
  map.getSource(source)?.setData(data ?? EMPTY);
}

function showOverlay(name, visible) {
  if (visible) state.hidden.delete(name); else state.hidden.add(name);
  for (const id of OVERLAYS[name]) if (map.getLayer(id)) map.setLayoutProperty(id, 'visibility', visible ? 'visible' : 'none');
  document.body.classList.toggle(`hide-${name}`, !visible);
}

// --------------------------------------------------------------- coverage

const category = () => $('category').value || 'emergency';

function radiusInput() {
  const r = Number($('radius').value);
  return Number.isFinite(r) && r > 0 ? r : null;
}

/** The radius the analysis runs with: the standard's, or the planner's. */
const radius = () => (state.radiusFromStandard ? state.coverage?.radius_m ?? radiusInput() : radiusInput());

function shelterState(s) {
  if (s.excluded) return 'excluded';
  if (s.over_capacity || (s.load_ratio ?? 0) > 1) return 'over';
  if (s.load_ratio === null || s.load_ratio === undefined) return 'unknown';
  return s.load_ratio < 0.8 ? 'ok' : 'near';
}

const loadCoverage = reloader(async () => {
  const asked = { category: category(), capacity_aware: $('capacity-aware').checked };
  if (!state.radiusFromStandard) {
    const r = radiusInput();
    if (!r) { say(t('error.http', { status: 400, detail: t('planning.radius') }), 'error'); return; }
    asked.radius_m = r;
  }
  state.coverageLoading = true;
  renderCoverage();
  try {
    const c = await get(query('/api/planning/coverage', asked));
    // An answer for inputs changed meanwhile is dropped; the rerun follows.
    if (c.category && c.category !== category()) return;
    state.coverage = c;
    state.coverageAt = new Date();
    // The standard of a category, kept from its answer without a radius of
    // the planner's (which names the request as the radius's source).
    if (!asked.radius_m && c.standards) state.standards.set(asked.category, c.standards);
    if (state.radiusFromStandard) $('radius').value = c.radius_m ?? c.standards?.radius_m?.value ?? '';
    drawCoverage();
  } catch (error) {
    fail(error);
  } finally {
    state.coverageLoading = false;
    renderCoverage();
  }
});

function drawCoverage() {
  const c = state.coverage;
  if (!c || !map.getSource('planning-uncovered')) return;
  setData('planning-uncovered', c.uncovered);
  setData('planning-zones', c.exclusion_zones);
  setData('planning-shelters', { type: 'FeatureCollection', features: (c.shelters ?? [])
    .filter((s) => Number.isFinite(s.lon) && Number.isFinite(s.lat))
    .map((s) => ({ type: 'Feature', id: s.id, geometry: { type: 'Point', coordinates: [s.lon, s.lat] },
      properties: { id: s.id, name: s.name, state: shelterState(s) } })) });
}

function renderCoverage() {
  const c = state.coverage;
  const figure = (id, value, text) => {
    const dd = $(id);
    dd.dataset.value = value ?? '';
    dd.textContent = value === null || value === undefined ? t('kpi.unknown') : text;
  };
  figure('total-population', c?.total_population, t('planning.persons', { n: formatNumber(c?.total_population) }));
  figure('covered-population', c?.covered_population, t('planning.persons', { n: formatNumber(c?.covered_population) }));
  figure('uncovered-population', c?.uncovered_population, t('planning.persons', { n: formatNumber(c?.uncovered_population) }));
  figure('coverage-ratio', c?.coverage_ratio, formatPercent(c?.coverage_ratio));
  const std = (c && state.standards.get(c.category)) ?? c?.standards ?? {};
  const custom = c && !state.radiusFromStandard && std.radius_m && c.radius_m !== std.radius_m.value;
  $('standard-radius').textContent = std.radius_m
    ? `${t('planning.standard_radius', { value: formatNumber(std.radius_m.value), source: sourceText(std.radius_m.source) })}${
      custom ? ` ${t('planning.radius_custom', { value: formatNumber(c.radius_m) })}` : ''}` : '';
  $('standard-area').textContent = std.area_per_person_m2
    ? t('planning.standard_area', { value: formatNumber(std.area_per_person_m2.value), source: sourceText(std.area_per_person_m2.source) }) : '';
  $('uncovered-truncated').hidden = !c?.uncovered_truncated;
  $('uncovered-truncated').textContent = c?.uncovered_truncated
    ? t('planning.uncovered_truncated', { shown: formatNumber(c.uncovered?.features?.length ?? 0), n: formatNumber(c.uncovered_cells) }) : '';
  $('computed-at').textContent = state.coverageLoading ? t('status.loading')
    : state.coverageAt ? t('planning.computed_at', { time: formatClock(state.coverageAt) }) : '';
  const counts = Object.fromEntries(STATES.map(([s]) => [s, 0]));
  for (const s of c?.shelters ?? []) counts[shelterState(s)] += 1;
  $('shelters-heading').textContent = t('planning.shelters_state', { n: formatNumber(c?.shelters?.length ?? 0) });
  $('shelter-legend').replaceChildren(...STATES.map(([s, colour]) => el('li', { dataset: { state: s } },
    el('span', { class: 'swatch', style: `background:${colour}` }), t(`planning.state.${s}`),
    el('span', { class: 'n' }, `(${formatNumber(counts[s])})`))));
}

/** A standard's source as the server words it; the request itself named. */
const sourceText = (source) => (source === 'set by the request' ? t('planning.source_request') : source ?? '—');

/** Why a candidate or a shelter is ruled out, from the structured fields
 * (the server's `detail` is its English sentence, kept as the fallback). */
function exclusionText(x) {
  const reason = t(`planning.reason.${x.reason}`, {}, x.reason);
  let detail = x.detail ?? '';
  if (x.reason === 'flood_zone' && x.name) detail = t('planning.detail.flood_zone', { name: x.name });
  else if (x.reason === 'hazard' && x.name) {
    detail = t('planning.detail.hazard', { name: x.name, d: formatNumber(Math.round(x.distance_m ?? 0)), r: formatNumber(x.radius_m ?? 0) });
  } else if (x.reason === 'excluded') detail = '';
  return { reason, detail };
}

function renderCategories() {
  const chosen = category();
  $('category').replaceChildren(...CATEGORIES.map((v) => el('option', { value: v, selected: v === chosen },
    catalog.valueTitle('shelters', 'category', v))));
}

$('category').addEventListener('change', () => {
  state.radiusFromStandard = true;
  inputsChanged();
  loadCoverage();
});
$('radius').addEventListener('change', () => {
  state.radiusFromStandard = false;
  inputsChanged();
  loadCoverage();
});
$('capacity-aware').addEventListener('change', () => loadCoverage());
$('coverage-form').addEventListener('submit', (event) => event.preventDefault());

// ----------------------------------------------------------------- siting

const candidateMode = () => {
  const v = $('candidates').value || 'grid';
  return v === 'grid' || v === 'pins' ? v : 'layer';
};

function renderCandidateChoices() {
  const chosen = $('candidates').value || 'grid';
  const layers = candidateLayers();
  $('candidates').replaceChildren(
    el('option', { value: 'grid', selected: chosen === 'grid' }, t('planning.candidates.grid')),
    ...layers.map((name) => el('option', { value: name, selected: chosen === name }, t('planning.candidates.layer', { layer: catalog.layerTitle(name) }))),
    el('option', { value: 'pins', selected: chosen === 'pins' }, t('planning.candidates.pins')));
}

/** Catalog layers a planner may take candidate sites from. */
function candidateLayers() {
  const names = [];
  for (const l of map.getStyle()?.layers ?? []) {
    const name = l.metadata?.['onemap:layer'];
    if (name && !names.includes(name) && !NOT_CANDIDATES.includes(name) && catalog.layer(name)) names.push(name);
  }
  return names;
}

/** How a candidate is named: its feature's name, else by its source (the
 * shown result's, or the form's). */
function candidateLabel(id, props = {}, source = state.resultBody?.candidates ?? candidateMode()) {
  if (props.name) return `${props.name}`;
  if (Array.isArray(source) || source === 'pins') return t('planning.pin', { id: `P${id}` });
  if (source === 'grid') return t('planning.cell', { id });
  return t('planning.candidate', { id });
}

/** The siting request the form describes, or null (with a message). */
function sitingBody() {
  const k = Number($('k').value);
  if (!Number.isInteger(k) || k < 1) { say(t('error.http', { status: 400, detail: t('planning.k') }), 'error'); return null; }
  const mode = candidateMode();
  let candidates = $('candidates').value || 'grid';
  if (mode === 'pins') {
    if (!state.pins.length) { say(t('planning.pins_hint', { max: MAX_PINS }), 'error'); return null; }
    candidates = state.pins.map(({ id, lon, lat }) => ({ id, lon, lat }));
  }
  const capacityAware = $('site-capacity-aware').checked;
  const exact = $('exact').value;
  const body = {
    k, category: category(), candidates,
    keep: [...state.keep.values()].map((m) => m.id),
    exclude: [...state.exclude.values()].map((m) => m.id),
    capacity_aware: capacityAware,
    exact: exact === 'auto' ? 'auto' : exact === 'true',
  };
  // Following the standard, the radius is left to the server: a radius
  // sent is one "set by the request", and the report cites no standard.
  if (!state.radiusFromStandard) {
    body.radius_m = radiusInput();
    if (!body.radius_m) { say(t('error.http', { status: 400, detail: t('planning.radius') }), 'error'); return null; }
  }
  if (capacityAware) body.capacity = Number($('site-capacity').value) || undefined;
  return body;
}

let sitingGeneration = 0;

$('siting-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = sitingBody();
  if (!body) return;
  const mine = ++sitingGeneration;
  const run = $('run');
  run.disabled = true;
  run.textContent = t('planning.running');
  try {
    const answer = await post('/api/planning/siting', body);
    if (mine !== sitingGeneration) return;
    state.result = answer;
    state.resultBody = body;
    state.resultStale = false;
    state.scenario = null;
    $('run-note').textContent = '';
    renderResult();
    drawSites();
  } catch (error) {
    if (mine === sitingGeneration) fail(error);
  } finally {
    if (mine === sitingGeneration) { run.disabled = false; run.textContent = t('planning.run'); }
  }
});

function inputsChanged() {
  if (state.result) $('run-note').textContent = t('planning.changed');
}

// Kept and excluded ids name candidates of one source: a new source starts afresh.
$('candidates').addEventListener('change', () => {
  state.keep.clear();
  state.exclude.clear();
  renderPinned();
  renderPins();
  drawPins();
  drawSites();
  renderSites();
  inputsChanged();
});
$('site-capacity-aware').addEventListener('change', () => {
  $('site-capacity').disabled = !$('site-capacity-aware').checked;
  inputsChanged();
});
for (const id of ['k', 'site-capacity', 'exact']) $(id).addEventListener('change', inputsChanged);

// ---------------------------------------------------- keep, exclude, pins

/** Whether a candidate is kept, excluded or neither. */
const markOf = (id) => (state.keep.has(String(id)) ? 'keep' : state.exclude.has(String(id)) ? 'exclude' : null);

function setMark(id, kind, label) {
  const key = String(id);
  state.keep.delete(key);
  state.exclude.delete(key);
  if (kind) {
    const set = state[kind];
    if (set.size >= MAX_MARKS) { say(t('error.http', { status: 400, detail: `${t(`planning.${kind}_list`)} ≤ ${MAX_MARKS}` }), 'error'); return; }
    set.set(key, { id, label });
  }
  inputsChanged();
  renderPinned();
  drawSites();
  drawPins();
  renderSites();
}

/** Keep → exclude → neither, as a click on a site or pin cycles it. */
const nextMark = (id) => ({ null: 'keep', keep: 'exclude', exclude: null })[markOf(id)];

/** Keep and exclude buttons for a candidate (a site row, a popup). */
function markButtons(id, label, after = () => {}) {
  const current = markOf(id);
  return el('div', { class: 'buttons' },
    ['keep', 'exclude'].map((kind) => el('button', { type: 'button', class: kind, 'aria-pressed': String(current === kind),
      onclick: () => { setMark(id, current === kind ? null : kind, label); after(); } }, t(`planning.${kind}`))));
}

function renderPinned() {
  const chips = (kind) => {
    const items = [...state[kind].values()];
    if (!items.length) return null;
    return el('div', {}, el('span', { class: 'hint' }, t(`planning.${kind}_list`)),
      el('div', { class: 'chips', dataset: { kind } }, items.map((m) => el('span', { class: `chip ${kind}`, dataset: { id: m.id } }, m.label,
        el('button', { type: 'button', 'aria-label': t('planning.unpin'), title: t('planning.unpin'), onclick: () => setMark(m.id, null) }, '×')))));
  };
  $('pinned').replaceChildren(...[chips('keep'), chips('exclude')].filter(Boolean));
}

function renderPins() {
  const on = candidateMode() === 'pins';
  $('pins').hidden = !on;
  $('pins-hint').textContent = t('planning.pins_hint', { max: MAX_PINS });
  $('pins-count').textContent = t('planning.pins_count', { n: state.pins.length });
}

function drawPins() {
  const on = candidateMode() === 'pins';
  const wanted = new Set(on ? state.pins.map((p) => `pin-${p.id}`) : []);
  for (const key of shell.marked()) if (key.startsWith('pin-') && !wanted.has(key)) shell.mark(key, null);
  if (!on) return;
  for (const pin of state.pins) {
    const label = candidateLabel(pin.id, {}, 'pins');
    shell.mark(`pin-${pin.id}`, [pin.lon, pin.lat], `pin-marker ${markOf(pin.id) ?? ''}`, {
      title: label,
      onClick: () => {
        const body = el('div', { class: 'onemap-popup' }, el('strong', {}, label));
        const shown = popup([pin.lon, pin.lat], body);
        body.append(markButtons(pin.id, label, () => shown.remove()),
          el('button', { type: 'button', onclick: () => { removePin(pin.id); shown.remove(); } }, t('planning.pin_remove')));
      },
    });
  }
}

function addPin(lngLat) {
  if (state.pins.length >= MAX_PINS) { say(t('planning.pins_full', { max: MAX_PINS }), 'error'); return; }
  const round = (x) => Math.round(x * 1e6) / 1e6;
  state.pins.push({ id: ++state.pinSeq, lon: round(lngLat.lng), lat: round(lngLat.lat) });
  inputsChanged();
  renderPins();
  drawPins();
}

function removePin(id) {
  state.pins = state.pins.filter((p) => p.id !== id);
  setMark(id, null);
  renderPins();
  drawPins();
}

$('pins-clear').addEventListener('click', () => {
  for (const p of state.pins) { state.keep.delete(String(p.id)); state.exclude.delete(String(p.id)); }
  state.pins = [];
  inputsChanged();
  renderPinned();
  renderPins();
  drawPins();
});

// ------------------------------------------------------------------ clicks

function clicked(event, hits) {
  const own = ['planning-shelters', 'planning-uncovered-fill', 'planning-zones-fill'].filter((id) => map.getLayer(id)
    && map.getLayoutProperty(id, 'visibility') !== 'none');
  const mine = own.length ? map.queryRenderedFeatures(event.point, { layers: own }) : [];
  const shelter = mine.find((f) => f.layer.id === 'planning-shelters');
  if (shelter) { shelterPopup(shelter.properties.id, event.lngLat); return; }
  const point = hits.find((h) => h.layer.type === 'circle' && !h.properties.point_count);
  const mode = candidateMode();
  if (mode === 'pins' && !point) { addPin(event.lngLat); return; }
  const layerName = $('candidates').value;
  const candidate = mode === 'layer' ? hits.find((h) => h.layer.metadata?.['onemap:layer'] === layerName && !h.properties.point_count) : null;
  if (candidate && candidate.properties.id !== undefined) {
    const { popup: shown, body } = shell.popup(candidate, event.lngLat);
    const id = Number(candidate.properties.id);
    body.append(markButtons(id, candidateLabel(id, candidate.properties, layerName), () => shown.remove()));
    return;
  }
  const cell = mine.find((f) => f.layer.id === 'planning-uncovered-fill');
  if (cell && !point) { cellPopup(cell, event.lngLat, mode === 'grid'); return; }
  const zone = mine.find((f) => f.layer.id === 'planning-zones-fill');
  if (zone && !point) {
    const p = zone.properties;
    popup(event.lngLat, el('div', { class: 'onemap-popup' }, el('strong', {}, p.name ?? t(`planning.zone.${p.reason}`, {}, p.reason)),
      el('p', {}, t(`planning.zone.${p.reason}`, {}, p.reason))));
    return;
  }
  if (hits[0]) shell.popup(hits[0], event.lngLat);
}

function cellPopup(cell, lngLat, asCandidate) {
  const p = cell.properties;
  const id = Number(p.id ?? cell.id);
  const label = candidateLabel(id, p, 'grid');
  const body = el('div', { class: 'onemap-popup' }, el('strong', {}, label),
    el('p', {}, t('planning.cell_people', { population: formatNumber(p.population), uncovered: formatNumber(p.uncovered) })));
  const shown = popup(lngLat, body);
  if (asCandidate && Number.isFinite(id)) body.append(markButtons(id, label, () => shown.remove()));
}

function shelterPopup(id, lngLat) {
  const s = state.coverage?.shelters?.find((x) => String(x.id) === String(id));
  if (!s) return;
  const lines = [
    catalog.valueTitle('shelters', 'category', s.category),
    s.capacity === null || s.capacity === undefined ? t('planning.state.unknown')
      : t('planning.shelter_load', { load: formatNumber(s.load), capacity: formatNumber(s.capacity), ratio: formatPercent(s.load_ratio) }),
    s.capacity_source ? t(`planning.capacity_source.${s.capacity_source}`, {}, s.capacity_source) : null,
    s.area_per_person_m2 === null || s.area_per_person_m2 === undefined ? null
      : `${t('planning.area_per_person', { n: formatNumber(s.area_per_person_m2) })}${s.meets_standard === null || s.meets_standard === undefined ? ''
        : ` · ${t(s.meets_standard ? 'planning.meets_standard' : 'planning.below_standard')}`}`,
    s.excluded ? t('planning.excluded', exclusionText(s.excluded)) : null,
  ].filter(Boolean);
  popup(lngLat, el('div', { class: 'onemap-popup', dataset: { shelter: s.id } },
    el('strong', {}, s.name ?? t('planning.candidate', { id: s.id })),
    el('p', { class: `state-${shelterState(s)}` }, t(`planning.state.${shelterState(s)}`)),
    lines.map((line) => el('p', {}, line))));
}

// ----------------------------------------------------------------- result

const sites = () => [...(state.result?.sites?.features ?? [])]
  .sort((a, b) => (a.properties.rank ?? 0) - (b.properties.rank ?? 0));

/** A circle of `radiusM` metres around a point, as a polygon ring. */
function circle([lon, lat], radiusM, steps = 64) {
  const ring = [];
  const dLat = radiusM / 111_320;
  const dLon = radiusM / (111_320 * Math.cos((lat * Math.PI) / 180));
  for (let i = 0; i <= steps; i++) {
    const a = (i / steps) * 2 * Math.PI;
    ring.push([lon + dLon * Math.cos(a), lat + dLat * Math.sin(a)]);
  }
  return { type: 'Polygon', coordinates: [ring] };
}

function drawSites() {
  const list = sites();
  const wanted = new Set(list.map((f) => `site-${f.properties.rank}`));
  for (const key of shell.marked()) if (key.startsWith('site-') && !wanted.has(key)) shell.mark(key, null);
  const r = state.result?.standards?.radius_m?.value ?? state.resultBody?.radius_m ?? radius();
  for (const f of list) {
    const p = f.properties;
    const label = candidateLabel(p.candidate, p);
    shell.mark(`site-${p.rank}`, f.geometry.coordinates, `site-marker ${markOf(p.candidate) ?? ''}`, {
      text: String(p.rank),
      title: `${t('planning.site_rank', { n: p.rank })} · ${label} · ${t('planning.gain', { n: formatNumber(p.marginal_gain) })}`,
      onClick: () => setMark(p.candidate, nextMark(p.candidate), label),
    });
  }
  setData('planning-reach', { type: 'FeatureCollection', features: r ? list.map((f) => ({ type: 'Feature',
    geometry: circle(f.geometry.coordinates, r), properties: { rank: f.properties.rank } })) : [] });
}

function renderSites() {
  const list = sites();
  $('sites').replaceChildren(...(list.length ? list.map((f) => {
    const p = f.properties;
    const label = candidateLabel(p.candidate, p);
    const mark = markOf(p.candidate);
    return el('li', { class: `site ${mark ?? ''}`, dataset: { rank: p.rank, candidate: p.candidate } },
      el('span', { class: 'rank', title: t('planning.site_rank', { n: p.rank }),
        onclick: () => map.flyTo({ center: f.geometry.coordinates, zoom: Math.max(map.getZoom(), 13) }) }, String(p.rank)),
      el('span', { class: 'name' }, label),
      el('span', { class: 'gain', dataset: { gain: p.marginal_gain } }, t('planning.gain', { n: formatNumber(p.marginal_gain) })),
      p.capacity !== null && p.capacity !== undefined
        ? el('p', { class: 'meta' }, t('planning.site_load', { load: formatNumber(p.load ?? 0), capacity: formatNumber(p.capacity) })) : null,
      markButtons(p.candidate, label));
  }) : [el('li', { class: 'hint' }, t('planning.no_sites'))]));
}

function renderResult() {
  const r = state.result;
  $('result').hidden = !r;
  if (!r) return;
  $('result-stale').hidden = !state.resultStale;
  $('scenario-shown').hidden = !state.scenario;
  if (state.scenario) $('scenario-shown').textContent = t('planning.scenario_shown', { name: state.scenario.name, time: formatTime(state.scenario.created_at) });
  renderSites();

  const opt = $('optimality');
  opt.className = `meta ${r.optimal ? 'optimal' : 'gap'}`;
  const method = r.method ? t(`planning.method.${r.method}`, {}, r.method) : '—';
  opt.textContent = `${r.optimal ? t('planning.optimal') : t('planning.gap', { gap: formatPercent(r.gap), bound: formatNumber(r.bound) })} · ${
    t('planning.method', { method, ms: formatNumber(r.elapsed_ms ?? '—') })}`;

  const before = r.before ?? {};
  const after = r.after ?? {};
  const ratio = (x) => (x.total_population ? x.covered_population / x.total_population : null);
  const rows = [
    ['total', 'total_population', (x) => x.total_population, formatNumber],
    ['covered', 'covered_population', (x) => x.covered_population, formatNumber],
    ['uncovered', 'uncovered_population', (x) => x.uncovered_population, formatNumber],
    ['ratio', 'ratio', ratio, formatPercent],
  ];
  const change = (a, b, fmt, key) => {
    if (!Number.isFinite(a) || !Number.isFinite(b)) return el('td', {}, t('kpi.unknown'));
    const d = b - a;
    const good = key === 'uncovered_population' ? d < 0 : d > 0;
    const sign = d > 0 ? '+' : '';
    const text = key === 'ratio' ? t('planning.points', { n: `${sign}${formatNumber(Math.round(d * 1000) / 10)}` }) : `${sign}${fmt(d)}`;
    return el('td', { class: d === 0 ? '' : good ? 'up' : 'down' }, text);
  };
  $('before-after').replaceChildren(
    el('thead', {}, el('tr', {}, el('th', {}, ''), el('th', {}, t('planning.before')), el('th', {}, t('planning.after')), el('th', {}, t('planning.change')))),
    el('tbody', {}, rows.map(([label, key, pick, fmt]) => el('tr', { dataset: { figure: key } },
      el('th', {}, t(`planning.${label}`)),
      el('td', { class: 'before', dataset: { value: pick(before) ?? '' } }, fmt(pick(before))),
      el('td', { class: 'after', dataset: { value: pick(after) ?? '' } }, fmt(pick(after))),
      change(pick(before), pick(after), fmt, key)))));

  // The planner's own exclusions first: the zones and radii rule out many.
  const ruled = [...(r.ruled_out ?? [])].sort((a, b) => (b.reason === 'excluded') - (a.reason === 'excluded'));
  $('ruled-out-heading').textContent = t('planning.ruled_out', { n: formatNumber(ruled.length) });
  $('ruled-out').replaceChildren(...ruled.slice(0, MAX_RULED_OUT).map((x) => {
    const why = exclusionText(x);
    return el('li', { dataset: { candidate: x.candidate, reason: x.reason } },
      el('div', { class: 'row' }, el('strong', {}, candidateLabel(x.candidate)), el('span', { class: 'reason' }, why.reason)),
      why.detail ? el('div', { class: 'meta' }, why.detail) : null);
  }));
  $('ruled-out-more').textContent = ruled.length > MAX_RULED_OUT ? t('planning.ruled_out_more', { n: formatNumber(ruled.length - MAX_RULED_OUT) }) : '';
}

// -------------------------------------------------------------- scenarios

const reportLinks = (id) => el('span', { class: 'downloads' },
  el('a', { class: 'report-md', href: `/api/planning/scenarios/${encodeURIComponent(id)}/report?f=md`, download: '' }, t('planning.report_md')),
  el('a', { class: 'report-csv', href: `/api/planning/scenarios/${encodeURIComponent(id)}/report?f=csv`, download: '' }, t('planning.report_csv')),
  el('a', { class: 'sites-geojson', href: `/api/planning/scenarios/${encodeURIComponent(id)}/sites.geojson`, download: '' }, t('planning.report_geojson')));

const loadScenarios = reloader(async () => {
  try {
    const answer = await get('/api/planning/scenarios');
    state.scenarios = answer.scenarios ?? [];
    state.scenariosError = null;
  } catch (error) {
    state.scenariosError = error;
  }
  renderScenarios();
});

function renderScenarios() {
  const box = $('scenarios');
  if (state.scenariosError) { box.replaceChildren(el('li', { class: 'message error' }, state.scenariosError.message)); return; }
  const list = [...(state.scenarios ?? [])].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
  if (!list.length) { box.replaceChildren(el('li', { class: 'hint' }, state.scenarios ? t('planning.scenarios_none') : t('status.loading'))); return; }
  box.replaceChildren(...list.slice(0, MAX_SCENARIOS).map((s) => el('li', { class: 'scenario', dataset: { id: s.id } },
    el('div', { class: 'row' }, el('strong', {}, s.name), el('span', { class: 'meta' }, formatTime(s.created_at)),
      el('button', { type: 'button', class: 'show', onclick: (event) => showScenario(s.id, event.target) }, t('planning.scenario_show'))),
    reportLinks(s.id))));
}

async function showScenario(id, button) {
  if (button) button.disabled = true;
  try {
    const s = await get(`/api/planning/scenarios/${encodeURIComponent(id)}`);
    // results: {siting: the siting answer, coverage_before, coverage_after, by_town, by_category}
    state.result = s.results?.siting ?? s.results;
    // inputs: the siting request as the server ran it, and the map's change sequence then.
    const { map_seq: _seq, ...inputs } = s.inputs?.siting ?? s.inputs ?? {};
    state.resultBody = Object.keys(inputs).length ? inputs : null;
    state.resultStale = false;
    state.scenario = { id: s.id, name: s.name, created_at: s.created_at };
    renderResult();
    drawSites();
  } catch (error) {
    fail(error);
  } finally {
    if (button) button.disabled = false;
  }
}

$('scenario-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (!token.get()) { say(t('login.needed'), 'error'); showLogin(); return; }
  if (!state.resultBody) { say(t('planning.scenario_needs_run'), 'error'); return; }
  const name = $('scenario-name').value.trim();
  if (!name) return;
  const button = $('scenario-save');
  button.disabled = true;
  try {
    const saved = await post('/api/planning/scenarios', { name, siting: state.resultBody });
    say(t('planning.scenario_saved', { name: saved.name ?? name }));
    state.scenarios = [{ id: saved.id, name: saved.name ?? name, created_at: saved.created_at },
      ...(state.scenarios ?? []).filter((s) => s.id !== saved.id)];
    renderScenarios();
    loadScenarios();
  } catch (error) {
    fail(error);
  } finally {
    button.disabled = false;
  }
});

// ----------------------------------------------------------- the overlays

function renderOverlays() {
  const ramp = UNCOVERED_RAMP.filter((_, i) => i % 2 === 1);
  const swatches = {
    uncovered: [el('span', { class: 'swatch ramp', style: `background:linear-gradient(90deg,${ramp.join(',')})` }),
      el('span', { class: 'n' }, `${t('planning.uncovered_scale')} 0–${formatNumber(UNCOVERED_RAMP[UNCOVERED_RAMP.length - 2])}+`)],
    exclusions: ZONES.map(([reason]) => el('span', {}, el('span', { class: 'swatch area', style: hatchUrls[reason] ? `background-image:url(${hatchUrls[reason]})` : '' }),
      el('span', { class: 'n' }, t(`planning.zone.${reason}`)), ' ')),
    shelters: STATES.map(([s, colour]) => el('span', { class: 'swatch', title: t(`planning.state.${s}`), style: `background:${colour}` })),
    sites: [el('span', { class: 'swatch', style: `background:${SITE_COLOUR}` }), el('span', { class: 'n' }, t('planning.sites_legend'))],
  };
  $('overlay-list').replaceChildren(...Object.keys(OVERLAYS).map((name) => el('li', { dataset: { overlay: name } },
    el('label', {}, el('input', { type: 'checkbox', checked: !state.hidden.has(name), onchange: (e) => showOverlay(name, e.target.checked) }),
      ` ${t(`planning.layer_${name}`)} `),
    el('div', { class: 'legend-line' }, swatches[name]))));
}

// ------------------------------------------------------------------- live

function showLive() {
  const live = $('live');
  live.classList.toggle('off', !state.feed?.live);
  if (!state.feed) live.textContent = t('status.loading');
  else live.textContent = state.feed.live ? t('status.live') : t('status.stale', { time: state.feed.since ? formatClock(state.feed.since) : '—' });
}

const touchesCoverage = (change) => [change, ...(change.also ?? [])].some((part) => WATCHED.includes(part.layer));

let changedTimer = null;
/** Edits to the watched layers come in bursts (an import, a drag): one
 * recomputation a moment after the last of them. */
function dataChanged() {
  if (state.result && !state.scenario) { state.resultStale = true; renderResult(); }
  $('computed-at').textContent = t('planning.recomputing');
  clearTimeout(changedTimer);
  changedTimer = setTimeout(loadCoverage, CHANGE_SETTLE_MS);
}

function render() {
  showLive();
  renderCategories();
  renderCandidateChoices();
  renderCoverage();
  renderPins();
  renderPinned();
  renderOverlays();
  renderResult();
  drawSites();
  renderScenarios();
  const run = $('run');
  if (!run.disabled) run.textContent = t('planning.run');
}

translatePage();
$('lang').replaceChildren(langToggle());
onLangChange(render);
showLogin();
render();

shell.ready.then(() => {
  addOverlays();
  render();
  loadCoverage();
  loadScenarios();
  follow({
    onChange: (changes) => {
      shell.refresh(changes);
      if (changes.some(touchesCoverage)) dataChanged();
    },
    onReset: () => { shell.refresh(null); dataChanged(); },
    onState: (feed) => { state.feed = feed; showLive(); },
  });
});
