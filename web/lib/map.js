// The one map of a page: MapLibre GL JS (served by onemap from web/node_modules)
// drawing /styles/onemap.json, a layer list with toggles and counts, popups
// in the user's language, and tiles reloaded where the change stream says
// something changed. A view creates it once and keeps it for its life.
import { Map as MapLibre, Marker, Popup, NavigationControl, ScaleControl } from '/node_modules/maplibre-gl/dist/maplibre-gl.mjs';
import * as catalog from './catalog.js';
import { t, onLangChange } from './i18n.js';
import { get } from './api.js';
import { touchedTiles, changeBoxes } from './tiles.js';

export { touchedTiles, changeBoxes } from './tiles.js';

/**
 * Create the page's map in `container`.
 *
 * - `layerList`: a `<ul>` to fill with the layer toggles and counts.
 * - `onStatus(text)`: map errors for the view's status line.
 * - `onClick(event, hits)`: a click, with the features under it, topmost
 *   first. Without it a click on a feature opens its popup.
 * - `controls`: the zoom buttons and the scale (a wall display has none).
 * - `hide(name, def)`: whether a catalog layer starts hidden (its toggle
 *   unticked), asked once the catalog is read (`def` is its entry).
 */
export function createMap({ container = 'map', layerList = null, onStatus = () => {}, onClick = null, hash = true,
  controls = true, hide = null } = {}) {
  const map = new MapLibre({
    container,
    style: '/styles/onemap.json',
    // Chinese labels are drawn with the browser's own fonts: no glyph download.
    localIdeographFontFamily: "'Noto Sans CJK SC', 'Microsoft YaHei', 'PingFang SC', sans-serif",
    attributionControl: { compact: true },
    hash,
  });
  if (controls) {
    map.addControl(new NavigationControl(), 'top-right');
    map.addControl(new ScaleControl({ unit: 'metric' }), 'bottom-right');
  }
  window.onemap = map; // for the wall display's operators and the browser tests

  /** Style layers grouped by the catalog layer they draw. */
  const groups = () => {
    const byLayer = new Map();
    for (const l of map.getStyle().layers) {
      const name = l.metadata?.['onemap:layer'];
      if (!name) continue;
      if (!byLayer.has(name)) byLayer.set(name, { meta: l.metadata, ids: [] });
      byLayer.get(name).ids.push(l.id);
    }
    return byLayer;
  };

  const renderList = () => {
    if (!layerList || !map.isStyleLoaded()) return;
    const items = [];
    for (const [name, group] of groups()) {
      const item = document.createElement('li');
      const label = document.createElement('label');
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.dataset.layer = name;
      box.checked = group.ids.some((id) => map.getLayoutProperty(id, 'visibility') !== 'none');
      box.addEventListener('change', () => {
        for (const id of group.ids) map.setLayoutProperty(id, 'visibility', box.checked ? 'visible' : 'none');
      });
      const title = catalog.layer(name) ? catalog.layerTitle(name) : group.meta['onemap:title_zh'];
      const n = catalog.count(name);
      label.append(box, ` ${title}${n === undefined ? '' : ` (${n})`}`);
      item.append(label);
      items.push(item);
    }
    layerList.replaceChildren(...items);
  };

  const clickable = () => map.getStyle().layers
    .filter((l) => l.metadata?.['onemap:layer'] && l.type !== 'line').map((l) => l.id);

  /** A popup of a feature's properties under their catalog names; the full
   * feature (lists and records, which tiles leave out) is read by id. */
  const popup = (hit, lngLat) => {
    const name = hit.layer.metadata?.['onemap:layer'];
    const body = document.createElement('div');
    body.className = 'onemap-popup';
    const heading = document.createElement('strong');
    const table = document.createElement('table');
    const fill = (props) => {
      heading.textContent = props.name ?? catalog.layerTitle(name);
      const rows = props.point_count
        ? [[t('map.cluster'), t('map.cluster_count', { n: props.point_count })]]
        : [[t('map.layer'), catalog.layerTitle(name)], ...catalog.rows(name, props)];
      table.replaceChildren(...rows.map(([k, v]) => {
        const tr = document.createElement('tr');
        const th = document.createElement('th');
        const td = document.createElement('td');
        th.textContent = k;
        td.textContent = v;
        tr.append(th, td);
        return tr;
      }));
    };
    fill(hit.properties);
    body.append(heading, table);
    const shown = new Popup({ maxWidth: '340px' }).setLngLat(lngLat).setDOMContent(body).addTo(map);
    const id = hit.properties.id;
    if (!hit.properties.point_count && id !== undefined && catalog.layer(name)) {
      get(`/ogc/collections/${name}/items/${id}`)
        .then((f) => { if (shown.isOpen()) fill({ ...f.properties }); })
        .catch((error) => onStatus(error.message));
    }
    return { popup: shown, body };
  };

  map.on('click', (event) => {
    const hits = map.getStyle() ? map.queryRenderedFeatures(event.point, { layers: clickable() }) : [];
    if (onClick) onClick(event, hits);
    else if (hits[0]) popup(hits[0], event.lngLat);
  });
  map.on('error', (event) => {
    onStatus(t('map.error', { message: event.error?.message ?? String(event) }));
    console.error(event.error ?? event);
  });

  let countsTimer = null;
  const refreshCounts = () => {
    clearTimeout(countsTimer);
    countsTimer = setTimeout(() => catalog.load({ fresh: true }).then(renderList).catch((e) => onStatus(e.message)), 1_000);
  };

  /** Reload the tiles the changes touched (everything when one of them
   * does not say where, or after a reset). */
  const refresh = (changes) => {
    // Without a style (a lost WebGL context) there is nothing to reload:
    // the style restored afterwards loads its tiles afresh.
    if (!map.style || !map.getSource('onemap')) return;
    const boxes = [];
    let everything = !changes;
    for (const change of changes ?? []) {
      const own = changeBoxes(change);
      if (own) boxes.push(...own); else everything = true;
    }
    if (everything) {
      map.refreshTiles('onemap');
    } else if (boxes.length) {
      const b = map.getBounds();
      const view = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
      map.refreshTiles('onemap', touchedTiles(boxes, view, Math.min(22, Math.ceil(map.getZoom()))));
    }
    if (everything || changes.some((c) => c.op === 'create' || c.op === 'delete')) refreshCounts();
  };

  // Without the catalog the list still toggles layers (titles from the
  // style, no counts) and the view says why.
  /** One marker per `key` (a DOM element with `className`) at `lngLat`;
   * `null` removes it. `text` is written in it (a site's rank), `title`
   * is its tooltip, and `onClick` receives a click on it instead of the
   * map. Returns the element (or null once removed). */
  const markers = new Map();
  const mark = (key, lngLat, className = key, { text = null, title = null, onClick = null } = {}) => {
    let m = markers.get(key);
    if (!lngLat) { m?.remove(); markers.delete(key); return null; }
    if (!m) {
      const element = document.createElement('div');
      element.addEventListener('click', (event) => {
        const handler = markers.get(key)?.onemapClick;
        if (!handler) return;
        event.stopPropagation();
        handler(event);
      });
      m = new Marker({ element }).setLngLat(lngLat).addTo(map);
      markers.set(key, m);
    } else {
      m.setLngLat(lngLat);
    }
    // MapLibre's own classes on the element (its placement) stay.
    const element = m.getElement();
    const own = className.split(/\s+/).filter(Boolean);
    element.classList.remove(...(m.onemapClasses ?? []));
    element.classList.add(...own);
    m.onemapClasses = own;
    if (text !== null) element.textContent = text;
    if (title) element.title = title; else element.removeAttribute('title');
    m.onemapClick = onClick;
    return element;
  };

  /** The keys of the markers shown. */
  const marked = () => [...markers.keys()];

  /** A popup of the view's own content (`node`) at `lngLat`. */
  const popupAt = (lngLat, node) => new Popup({ maxWidth: '340px' }).setLngLat(lngLat).setDOMContent(node).addTo(map);

  const ready = new Promise((ok) => map.on('load', ok))
    .then(() => catalog.load().catch((error) => onStatus(t('map.no_catalog', { message: error.message }))))
    .then(() => {
      if (hide) {
        for (const [name, group] of groups()) {
          if (hide(name, catalog.layer(name))) for (const id of group.ids) map.setLayoutProperty(id, 'visibility', 'none');
        }
      }
      renderList();
      return map;
    });
  onLangChange(renderList);
  return { map, ready, refresh, popup, popupAt, mark, marked };
}
