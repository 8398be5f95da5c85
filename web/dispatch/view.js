// The dispatch console (`/dispatch`): report incidents on the map, see what
// each needs (recommended and nearest teams, a supply plan, hazards and
// facilities around it) and act on it (assign, recall, reserve, return,
// change statuses). Every other dispatcher's action arrives on the change
// stream and is shown without reloading.
import { createMap } from '../lib/map.js';
import { el } from '../lib/dom.js';
import { follow } from '../lib/live.js';
import { get, post, patch, del, query, token, ApiError } from '../lib/api.js';
import * as catalog from '../lib/catalog.js';
import { t, translatePage, langToggle, onLangChange, formatClock, formatTime, formatNumber, formatDistance, formatEta } from '../lib/i18n.js';

/** Open incidents listed at most (the rest is counted, not drawn). */
const MAX_LISTED = 50;
/** Messages kept on screen. */
const MAX_MESSAGES = 5;
/** Nearest teams, and facilities of each kind, shown for an incident. */
const NEAREST_TEAMS = 5;
const NEARBY = 3;
/** Records (assignments, reservations) listed per incident at most. */
const MAX_RECORDS = 30;
const TEAM_STATUSES = ['on_scene', 'returning', 'standby', 'off_duty'];
const NEARBY_LAYERS = ['shelters', 'cameras', 'enterprises'];

const $ = (id) => document.getElementById(id);

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

/** A failed action's message: the server's detail, with what a busy
 * team is doing when the problem says so. */
function fail(error) {
  let text = error.message;
  const p = error.problem;
  if (p?.team_status) {
    text += ` ${t('error.team_busy', {
      status: catalog.valueTitle('rescue_teams', 'status', p.team_status),
      incident: p.team_incident_id ?? '—',
    })}`;
  }
  if (error instanceof ApiError && error.status === 401) {
    token.clear();
    showLogin();
    text += ` ${t('login.again')}`;
  }
  say(text, 'error');
}

/** Run a write, report its outcome, then refresh what it changed. The
 * change stream refreshes other consoles; this one refreshes at once. */
async function act(button, work, done) {
  if (!token.get()) { say(t('login.needed'), 'error'); showLogin(); return; }
  if (button) button.disabled = true;
  try {
    const answer = await work();
    if (done) say(done(answer));
    await Promise.all([loadList(), selected ? loadDetail() : null]);
  } catch (error) {
    fail(error);
  } finally {
    if (button) button.disabled = false;
  }
}

// ------------------------------------------------------------------ login

function showLogin() {
  const signedIn = Boolean(token.get());
  $('login').hidden = signedIn;
  $('signed-in').hidden = !signedIn;
  document.body.classList.toggle('read-only', !signedIn);
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  const value = $('token-input').value.trim();
  if (!value) return;
  token.set(value);
  $('token-input').value = '';
  showLogin();
  render();
});
$('logout').addEventListener('click', () => { token.clear(); showLogin(); render(); });

// ------------------------------------------------------------------- map

let liveState = null;
const showLive = () => {
  const live = $('live');
  live.classList.toggle('off', !liveState?.live);
  if (!liveState) live.textContent = t('status.loading');
  else live.textContent = liveState.live ? t('status.live') : t('status.stale', { time: liveState.since ? formatClock(liveState.since) : '—' });
};

const shell = createMap({
  layerList: $('layers'),
  onStatus: (text) => say(text, 'error'),
  // A click on a point (a team, a depot, an incident) is about that point;
  // anywhere else, areas included (districts cover the whole map), reports
  // an incident there.
  onClick: (event, hits) => {
    const hit = hits.find((h) => h.layer.type === 'circle') ?? null;
    const layer = hit?.layer.metadata?.['onemap:layer'];
    if (layer === 'incidents' && hit.properties.id !== undefined && !hit.properties.point_count) {
      select(Number(hit.properties.id));
    } else if (hit) {
      const { popup, body } = shell.popup(hit, event.lngLat);
      body.append(el('button', { type: 'button', class: 'report-here', onclick: () => { popup.remove(); openReport(event.lngLat); } }, t('report.here')));
    } else {
      openReport(event.lngLat);
    }
  },
});

// ------------------------------------------------------- incident report

let items = []; // supply items: {item, name, unit, total}
let reportAt = null;

async function loadItems() {
  try {
    items = (await get('/api/supplies/items')).items;
  } catch (error) {
    items = [];
    fail(error);
  }
}

function supplyRow() {
  const row = el('div', { class: 'supply-row' },
    el('select', { name: 'item', 'aria-label': t('report.item') },
      el('option', { value: '' }, t('report.item_pick')),
      items.map((i) => el('option', { value: i.item }, `${i.name ?? i.item}${i.unit ? ` (${i.unit})` : ''}`))),
    el('input', { name: 'quantity', type: 'number', min: '1', step: '1', 'aria-label': t('report.quantity'), placeholder: t('report.quantity') }),
    el('button', { type: 'button', class: 'remove', 'aria-label': t('report.remove_supply'), onclick: () => row.remove() }, '×'));
  return row;
}

function fillReportForm() {
  const form = $('report-form');
  const options = (layer, name) => catalog.choices(layer, name).map(([v, title]) => el('option', { value: v }, title));
  form.elements.type.replaceChildren(...options('incidents', 'type'));
  form.elements.severity.replaceChildren(...options('incidents', 'severity'));
  $('report-capabilities').replaceChildren(
    el('legend', {}, t('report.capabilities')),
    ...catalog.choices('incidents', 'required_capabilities').map(([v, title]) =>
      el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'capability', value: v }), ` ${title}`)));
  $('supply-rows').replaceChildren(supplyRow());
}

function openReport(lngLat) {
  reportAt = lngLat;
  fillReportForm();
  $('report-form').reset();
  $('report-error').hidden = true;
  $('report-where').textContent = t('report.where', { lon: lngLat.lng.toFixed(5), lat: lngLat.lat.toFixed(5) });
  shell.mark('pending', lngLat, 'marker pending');
  $('report').showModal();
}

$('add-supply').addEventListener('click', () => $('supply-rows').append(supplyRow()));
$('report-cancel').addEventListener('click', () => $('report').close());
$('report').addEventListener('close', () => shell.mark('pending', null));
$('report-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  const supplies = [...$('supply-rows').querySelectorAll('.supply-row')]
    .map((row) => ({ item: row.querySelector('[name=item]').value, quantity: Number(row.querySelector('[name=quantity]').value) }))
    .filter((s) => s.item && s.quantity > 0);
  const body = {
    type: form.elements.type.value,
    severity: form.elements.severity.value,
    lon: reportAt.lng,
    lat: reportAt.lat,
    required_capabilities: [...form.querySelectorAll('[name=capability]:checked')].map((c) => c.value),
    required_supplies: supplies,
  };
  const name = form.elements.name.value.trim();
  if (name) body.name = name;
  const description = form.elements.description.value.trim();
  if (description) body.description = description;
  if (!token.get()) { $('report-error').textContent = t('login.needed'); $('report-error').hidden = false; return; }
  $('report-submit').disabled = true;
  try {
    const created = await post('/api/incidents', body);
    $('report').close();
    say(t('report.created', { name: created.properties.name }));
    await loadList();
    await select(created.id);
  } catch (error) {
    $('report-error').textContent = error.message;
    $('report-error').hidden = false;
    if (error.status === 401) { token.clear(); showLogin(); }
  } finally {
    $('report-submit').disabled = false;
  }
});

// ---------------------------------------------------------- incident list

let open = []; // open incidents, newest first
let listError = null;

async function loadList() {
  try {
    open = (await get(query('/api/incidents', { status: 'reported,active' }))).features;
    listError = null;
  } catch (error) {
    listError = error;
  }
  renderList();
}

const sevClass = (s) => `sev-${s ?? 'none'}`;
const value = (layer, name, v) => catalog.valueTitle(layer, name, v);

function renderList() {
  const list = $('incident-list');
  if (listError) {
    list.replaceChildren(el('li', { class: 'message error' }, listError.message));
    $('incident-more').textContent = '';
    return;
  }
  const shown = open.slice(0, MAX_LISTED);
  list.replaceChildren(...shown.map((f) => {
    const p = f.properties;
    return el('li', { class: `incident ${sevClass(p.severity)}${f.id === selected ? ' selected' : ''}`, dataset: { id: f.id } },
      el('button', { type: 'button', onclick: () => select(f.id) },
        el('strong', {}, p.name),
        el('span', { class: 'meta' },
          [value('incidents', 'type', p.type), p.severity ? value('incidents', 'severity', p.severity) : null,
            value('incidents', 'status', p.status), formatTime(p.reported_at)].filter(Boolean).join(' · '))));
  }));
  if (!shown.length) list.replaceChildren(el('li', { class: 'hint' }, t('incidents.none')));
  $('incident-more').textContent = open.length > MAX_LISTED ? t('incidents.more', { n: open.length - MAX_LISTED }) : '';
}

// -------------------------------------------------------- selected incident

let selected = null; // incident id
let detail = null; // what the panel shows, by section
let generation = 0; // answers of an older selection are dropped

async function select(id) {
  selected = id;
  detail = null;
  renderList();
  await loadDetail({ fly: true });
}

const settled = (promise) => promise.then((value) => ({ value }), (error) => ({ error }));

/** Read everything the panel shows for the selected incident. */
async function loadDetail({ fly = false } = {}) {
  const id = selected;
  const mine = ++generation;
  const incident = await settled(get(`/api/incidents/${id}`));
  if (mine !== generation) return;
  if (incident.error) { detail = { id, error: incident.error }; render(); return; }
  const f = incident.value;
  const [lon, lat] = f.geometry.coordinates;
  const p = f.properties;
  const active = (p.assignments ?? []).filter((a) => !a.released_at);
  const reserved = {};
  for (const r of p.reservations ?? []) if (!r.released_at) reserved[r.item] = (reserved[r.item] ?? 0) + r.quantity;
  const supplies = p.required_supplies ?? [];
  const [recommendation, nearest, hazards, plans, teams, ...nearby] = await Promise.all([
    settled(get(`/api/incidents/${id}/recommendation`)),
    settled(get(query('/api/nearest', { layer: 'rescue_teams', lon, lat, limit: NEAREST_TEAMS, status: 'standby' }))),
    settled(get(query('/api/hazards/near', { lon, lat }))),
    Promise.all(supplies.map((s) => {
      const remaining = s.quantity - (reserved[s.item] ?? 0);
      return remaining > 0
        ? settled(get(query('/api/supplies/plan', { lon, lat, item: s.item, quantity: remaining })))
        : Promise.resolve({ value: null });
    })),
    Promise.all(active.map((a) => settled(get(`/ogc/collections/rescue_teams/items/${a.team_id}`)))),
    ...NEARBY_LAYERS.map((layer) => settled(get(query('/api/nearest', { layer, lon, lat, limit: NEARBY })))),
  ]);
  if (mine !== generation) return;
  detail = { id, feature: f, reserved, recommendation, nearest, hazards, plans, teams: Object.fromEntries(active.map((a, i) => [a.team_id, teams[i]])), nearby };
  if (fly) shell.map.flyTo({ center: [lon, lat], zoom: Math.max(shell.map.getZoom(), 12.5), duration: 0 });
  shell.mark('selected', [lon, lat], `marker selected ${sevClass(p.severity)}`);
  render();
}

/** A section: heading, then its content or its error (never silently empty). */
function section(key, result, body, extra = null) {
  const content = result?.error
    ? el('p', { class: 'message error' }, result.error.message)
    : body(result?.value ?? result);
  return el('section', { class: 'part', dataset: { part: key } }, el('h3', {}, t(`detail.${key}`), extra), content);
}

const needsToken = () => (token.get() ? null : t('login.needed'));
const button = (label, onclick, attrs = {}) =>
  el('button', { type: 'button', onclick, title: needsToken(), disabled: !token.get(), ...attrs }, label);
const caps = (list, layer = 'rescue_teams', name = 'capabilities') =>
  (list ?? []).map((c) => value(layer, name, c)).join(t('list.sep'));

function assign(teamId, teamName) {
  return (event) => act(event.target,
    () => post(`/api/incidents/${selected}/assignments`, { team_id: teamId }),
    () => t('done.assigned', { team: teamName }));
}

function teamRow(team, { showCovers = false } = {}) {
  const f = team.feature?.properties ?? {};
  const capsOf = team.capabilities ?? f.capabilities;
  const type = team.team_type ?? f.team_type;
  return el('li', { class: 'team', dataset: { team: team.id } },
    el('div', { class: 'row' },
      el('strong', {}, team.name),
      el('span', { class: 'eta' }, formatEta(team.eta_min), ' · ', formatDistance(team.distance_m)),
      button(t('action.assign'), assign(team.id, team.name), { class: 'assign' })),
    el('div', { class: 'meta' }, [type ? value('rescue_teams', 'team_type', type) : null, caps(capsOf)].filter(Boolean).join(' · ')),
    showCovers && team.reasons?.length ? el('div', { class: 'reasons' }, team.reasons.map(reasonText).join(t('list.sep'))) : null);
}

function reasonText(reason) {
  const m = /^covers:\s*(.+)$/.exec(reason);
  if (m) return t('reason.covers', { caps: caps(m[1].split(/\s*,\s*/)) });
  return t(`reason.${reason}`, {}, reason);
}

function renderDetail() {
  const box = $('detail');
  if (!selected) { box.hidden = true; box.replaceChildren(); return; }
  box.hidden = false;
  if (!detail) { box.replaceChildren(el('p', { class: 'hint' }, t('status.loading'))); return; }
  if (detail.error) { box.replaceChildren(el('p', { class: 'message error' }, detail.error.message)); return; }
  const f = detail.feature;
  const p = f.properties;
  const id = f.id;
  const statusButtons = {
    reported: [['active', 'action.activate'], ['cancelled', 'action.cancel']],
    active: [['resolved', 'action.resolve'], ['cancelled', 'action.cancel']],
  }[p.status] ?? [];
  const head = el('header', { class: `incident-head ${sevClass(p.severity)}` },
    el('h2', {}, p.name),
    el('p', { class: 'meta' }, [value('incidents', 'type', p.type), p.severity ? value('incidents', 'severity', p.severity) : null].filter(Boolean).join(' · '),
      ' · ', el('span', { class: 'status', dataset: { status: p.status } }, value('incidents', 'status', p.status))),
    el('p', { class: 'meta' }, t('detail.reported_at', { time: formatTime(p.reported_at) })),
    p.description ? el('p', {}, p.description) : null,
    p.required_capabilities?.length ? el('p', { class: 'meta' }, `${catalog.propertyTitle('incidents', 'required_capabilities')}: ${caps(p.required_capabilities, 'incidents', 'required_capabilities')}`) : null,
    el('div', { class: 'buttons' }, statusButtons.map(([status, label]) => button(t(label), (event) => act(event.target,
      () => patch(`/api/incidents/${id}`, { status }),
      (answer) => t('done.status', { status: value('incidents', 'status', status), n: answer.released_teams?.length ?? 0 })),
    { class: `status-${status}` }))));

  const recommendation = section('recommendation', detail.recommendation, (r) => el('div', {},
    el('ol', { class: 'teams', id: 'recommended' }, r.teams.slice(0, MAX_RECORDS).map((team) => teamRow(team, { showCovers: true }))),
    r.teams.length ? null : el('p', { class: 'hint' }, t('detail.no_teams')),
    r.uncovered?.length ? el('ul', { class: 'uncovered' }, r.uncovered.map((u) => el('li', { class: 'message warn' },
      `${value('incidents', 'required_capabilities', u.capability)}: ${t(`uncovered.${u.reason}`, {}, u.reason)}${u.detail ? ` (${u.detail})` : ''}`))) : null,
    r.worst_eta_min !== null && r.worst_eta_min !== undefined
      ? el('p', { class: 'meta' }, t('detail.worst_eta', { eta: formatEta(r.worst_eta_min), max: formatEta(r.max_eta_min) })) : null));

  const nearest = section('nearest', detail.nearest, (r) => el('ol', { class: 'teams', id: 'nearest-teams' },
    r.results.length ? r.results.map((team) => teamRow(team)) : el('li', { class: 'hint' }, t('detail.no_teams'))));

  const assignments = (p.assignments ?? []).slice(-MAX_RECORDS).reverse();
  const assigned = section('assignments', null, () => el('ul', { class: 'records', id: 'assignments' },
    assignments.length ? assignments.map((a) => {
      const team = detail.teams[a.team_id];
      const status = team?.value?.properties?.status;
      const row = el('li', { class: a.released_at ? 'released' : 'active', dataset: { team: a.team_id } },
        el('div', { class: 'row' },
          el('strong', {}, a.team_name ?? `#${a.team_id}`),
          status ? el('span', { class: 'team-status', dataset: { status } }, value('rescue_teams', 'status', status)) : null,
          a.released_at ? null : button(t('action.recall'), (event) => act(event.target,
            () => del(`/api/incidents/${id}/assignments/${a.team_id}`),
            () => t('done.recalled', { team: a.team_name ?? a.team_id })), { class: 'recall' })),
        el('div', { class: 'meta' }, a.released_at
          ? t('detail.released', { time: formatTime(a.released_at), why: a.released_because ?? '' })
          : t('detail.assigned', { time: formatTime(a.assigned_at), by: a.assigned_by ?? '' })),
        team?.error ? el('p', { class: 'message error' }, team.error.message) : null,
        a.released_at ? null : el('div', { class: 'buttons' }, TEAM_STATUSES.filter((s) => s !== status).map((s) =>
          button(value('rescue_teams', 'status', s), (event) => act(event.target,
            () => patch(`/api/teams/${a.team_id}/status`, { status: s }),
            () => t('done.team_status', { team: a.team_name ?? a.team_id, status: value('rescue_teams', 'status', s) })),
          { class: `team-${s}` }))));
      return row;
    }) : el('li', { class: 'hint' }, t('detail.none'))));

  const supplies = p.required_supplies ?? [];
  const itemName = (item) => items.find((i) => i.item === item)?.name ?? item;
  const itemUnit = (item) => items.find((i) => i.item === item)?.unit ?? '';
  const plans = section('supplies', null, () => el('ul', { class: 'records', id: 'supply-plans' },
    supplies.length ? supplies.map((s, i) => {
      const plan = detail.plans[i];
      const got = detail.reserved[s.item] ?? 0;
      const head = el('div', { class: 'row' }, el('strong', {}, itemName(s.item)),
        el('span', {}, t('detail.need', { need: formatNumber(s.quantity), got: formatNumber(got), unit: itemUnit(s.item) })));
      if (plan.error) return el('li', { dataset: { item: s.item } }, head, el('p', { class: 'message error' }, plan.error.message));
      if (!plan.value) return el('li', { class: 'covered', dataset: { item: s.item } }, head, el('p', { class: 'meta' }, t('detail.all_reserved')));
      const pv = plan.value;
      return el('li', { dataset: { item: s.item } }, head,
        el('ul', { class: 'lines' }, pv.lines.map((l) => el('li', {},
          `${l.name}: ${formatNumber(l.quantity)} ${itemUnit(s.item)} (${t('detail.available', { n: formatNumber(l.available) })}) · ${formatEta(l.eta_min)} · ${formatDistance(l.distance_m)}`))),
        pv.covered ? null : el('p', { class: 'message warn' }, t('detail.shortfall', { n: formatNumber(pv.shortfall), unit: itemUnit(s.item) })),
        pv.lines.length ? button(t('action.reserve'), (event) => act(event.target,
          () => post('/api/supplies/reservations', { incident_id: id, item: s.item, lines: pv.lines.map((l) => ({ depot_id: l.depot_id, quantity: l.quantity })) }),
          () => t('done.reserved', { item: itemName(s.item) })), { class: 'reserve' }) : null);
    }) : el('li', { class: 'hint' }, t('detail.none'))));

  const groups = new Map();
  for (const r of p.reservations ?? []) {
    if (!groups.has(r.id)) groups.set(r.id, []);
    groups.get(r.id).push(r);
  }
  const reservations = section('reservations', null, () => el('ul', { class: 'records', id: 'reservations' },
    groups.size ? [...groups].slice(-MAX_RECORDS).reverse().map(([rid, lines]) => {
      const returned = lines.every((l) => l.released_at);
      return el('li', { class: returned ? 'released' : 'active', dataset: { reservation: rid } },
        el('div', { class: 'row' }, el('strong', {}, itemName(lines[0].item)),
          el('span', { class: 'meta' }, returned ? t('detail.returned', { time: formatTime(lines[0].released_at) }) : formatTime(lines[0].reserved_at)),
          returned ? null : button(t('action.return'), (event) => act(event.target,
            () => del(`/api/supplies/reservations/${encodeURIComponent(rid)}`),
            () => t('done.returned', { item: itemName(lines[0].item) })), { class: 'return' })),
        el('ul', { class: 'lines' }, lines.map((l) => el('li', {}, `${l.depot_name ?? `#${l.depot_id}`}: ${formatNumber(l.quantity)} ${itemUnit(l.item)}`))));
    }) : el('li', { class: 'hint' }, t('detail.none'))));

  const [lon, lat] = f.geometry.coordinates;
  const hazards = section('hazards', detail.hazards, (r) => el('ul', { class: 'records', id: 'hazards' },
    r.results.length ? r.results.slice(0, MAX_RECORDS).map((h) => el('li', { class: `risk-${h.risk_level}` },
      el('div', { class: 'row' }, el('strong', {}, h.name), el('span', {}, formatDistance(h.distance_m))),
      el('div', { class: 'meta' }, [value('hazard_sources', 'class', h.class), value('hazard_sources', 'risk_level', h.risk_level),
        t('detail.radius', { d: formatDistance(h.evacuation_radius_m) })].join(' · '))))
      : el('li', { class: 'hint' }, t('detail.no_hazards'))));

  const nearby = NEARBY_LAYERS.map((layer, i) => section(`near_${layer}`, detail.nearby[i], (r) => el('ul', { class: 'records', dataset: { layer } },
    r.results.length ? r.results.map((x) => el('li', {}, el('div', { class: 'row' }, el('strong', {}, x.name),
      el('span', {}, formatDistance(x.distance_m))),
    facilityLine(layer, x.feature?.properties ?? {})))
      : el('li', { class: 'hint' }, t('detail.none')))));

  box.replaceChildren(head, recommendation, nearest, assigned, plans, reservations, hazards, ...nearby,
    el('p', { class: 'hint' }, t('detail.where', { lon: lon.toFixed(5), lat: lat.toFixed(5) })));
}

/** The one line that matters about a nearby facility. */
function facilityLine(layer, props) {
  const names = { shelters: ['category', 'capacity', 'occupancy', 'status'], cameras: ['channels', 'enterprise'], enterprises: ['industry', 'risk_level'] }[layer];
  const parts = names.map((n) => {
    const text = catalog.formatValue(layer, n, props[n]);
    return text ? `${catalog.propertyTitle(layer, n)} ${text}` : null;
  }).filter(Boolean);
  return parts.length ? el('div', { class: 'meta' }, parts.join(' · ')) : null;
}

function render() {
  showLive();
  renderList();
  renderDetail();
}

// ------------------------------------------------------------------- live

let detailBusy = false;
let detailAgain = false;
/** Re-read the selected incident, once at a time, again if asked meanwhile. */
async function refreshDetail() {
  if (detailBusy) { detailAgain = true; return; }
  detailBusy = true;
  try {
    do { detailAgain = false; await loadDetail(); } while (detailAgain && selected);
  } finally {
    detailBusy = false;
  }
}

const touched = (change) => [change, ...(change.also ?? [])];
function concernsSelected(change) {
  if (!selected) return false;
  if (change.action?.incident_id === selected) return true;
  return touched(change).some((part) => (part.layer === 'incidents' && part.ids?.includes(selected))
    // Team moves and stock changes change ETAs, recommendations and plans.
    || part.layer === 'rescue_teams' || part.layer === 'supply_depots');
}

translatePage();
$('lang').replaceChildren(langToggle());
onLangChange(render);
showLogin();
showLive();
renderList();

shell.ready.then(async () => {
  await Promise.all([loadItems(), loadList()]);
  follow({
    onChange: (changes) => {
      shell.refresh(changes);
      if (changes.some((c) => touched(c).some((part) => part.layer === 'incidents'))) loadList();
      if (changes.some(concernsSelected)) refreshDetail();
    },
    onReset: () => {
      shell.refresh(null);
      loadList();
      if (selected) refreshDetail();
    },
    onState: (state) => { liveState = state; showLive(); },
  });
});
