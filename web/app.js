// The one map: MapLibre GL JS (served by onemap from web/node_modules)
// drawing /styles/onemap.json, a layer list to toggle layers, popups on
// click, and live reloads from the change stream.
import { Map, Popup, NavigationControl, ScaleControl } from '/node_modules/maplibre-gl/dist/maplibre-gl.mjs';

const status = document.getElementById('status');
const list = document.getElementById('layers');

const map = new Map({
  container: 'map',
  style: '/styles/onemap.json',
  // Chinese labels are drawn with the browser's own fonts: no glyph download.
  localIdeographFontFamily: "'Noto Sans CJK SC', 'Microsoft YaHei', 'PingFang SC', sans-serif",
  attributionControl: { compact: true },
  hash: true,
});
map.addControl(new NavigationControl(), 'top-right');
map.addControl(new ScaleControl({ unit: 'metric' }), 'bottom-right');
window.onemap = map; // for the wall display's operators and the browser tests

/** Style layers grouped by the catalog layer they draw. */
function groups() {
  const byLayer = new globalThis.Map();
  for (const l of map.getStyle().layers) {
    const name = l.metadata?.['onemap:layer'];
    if (!name) continue;
    if (!byLayer.has(name)) byLayer.set(name, { title: l.metadata['onemap:title_zh'], ids: [] });
    byLayer.get(name).ids.push(l.id);
  }
  return byLayer;
}

async function buildList() {
  const counts = {};
  try {
    const response = await fetch('/api/layers');
    if (response.ok) for (const l of (await response.json()).layers) counts[l.name] = l.count;
  } catch (error) {
    status.textContent = `图层数量读取失败：${error.message}`;
  }
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
    const count = counts[name] === undefined ? '' : ` (${counts[name]})`;
    label.append(box, ` ${group.title}${count}`);
    item.append(label);
    items.push(item);
  }
  list.replaceChildren(...items);
}

function clickable() {
  return map.getStyle().layers.filter((l) => l.metadata?.['onemap:layer'] && l.type !== 'line').map((l) => l.id);
}

map.on('click', (event) => {
  const [hit] = map.queryRenderedFeatures(event.point, { layers: clickable() });
  if (!hit) return;
  const props = hit.properties;
  const table = document.createElement('table');
  const title = hit.layer.metadata?.['onemap:title_zh'] ?? hit.sourceLayer;
  const rows = props.point_count
    ? [['聚合', `${props.point_count} 个要素`]]
    : Object.entries(props).filter(([k]) => k !== 'cluster');
  for (const [key, value] of rows) {
    const tr = document.createElement('tr');
    const th = document.createElement('th');
    const td = document.createElement('td');
    th.textContent = key;
    td.textContent = String(value);
    tr.append(th, td);
    table.append(tr);
  }
  const body = document.createElement('div');
  const heading = document.createElement('strong');
  heading.textContent = props.name ?? title;
  body.append(heading, table);
  new Popup({ maxWidth: '320px' }).setLngLat(event.lngLat).setDOMContent(body).addTo(map);
});

// Live: each committed write names what it touched (bbox before ∪ after);
// reload just the tiles of the onemap source that hold it, at every zoom
// up to the one shown, within a moment of the edit.
const TILE_BUFFER = 64 / 4096; // the tiles' buffer, as a fraction of a tile

// Fractional XYZ tile coordinates of a position at zoom z.
function tileX(lon, z) { return ((lon + 180) / 360) * 2 ** z; }
function tileY(lat, z) {
  const r = (Math.max(-85.0511, Math.min(85.0511, lat)) * Math.PI) / 180;
  return ((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2) * 2 ** z;
}

/** The tiles from zoom 0 to `maxZoom` that hold any of `bbox` in their
 * buffer and meet the `view`, as MapLibre's refreshTiles takes them. */
export function touchedTiles([w, s, e, n], view, maxZoom) {
  const tiles = [];
  for (let z = 0; z <= maxZoom; z++) {
    const last = 2 ** z - 1;
    const x0 = Math.max(0, Math.floor(tileX(w, z) - TILE_BUFFER), Math.floor(tileX(view[0], z)));
    const x1 = Math.min(last, Math.floor(tileX(e, z) + TILE_BUFFER), Math.floor(tileX(view[2], z)));
    const y0 = Math.max(0, Math.floor(tileY(n, z) - TILE_BUFFER), Math.floor(tileY(view[3], z)));
    const y1 = Math.min(last, Math.floor(tileY(s, z) + TILE_BUFFER), Math.floor(tileY(view[1], z)));
    for (let x = x0; x <= x1; x++) for (let y = y0; y <= y1; y++) tiles.push({ z, x, y });
  }
  return tiles;
}

function listen() {
  const source = new EventSource('/api/events');
  let pending = null;
  let touched = null; // bbox union of the changes not yet reloaded
  let everything = false;
  const flush = () => {
    pending = null;
    if (!map.getSource('onemap')) return;
    if (everything || !touched) {
      map.refreshTiles('onemap');
    } else {
      const b = map.getBounds();
      const view = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
      map.refreshTiles('onemap', touchedTiles(touched, view, Math.min(22, Math.ceil(map.getZoom()))));
    }
    touched = null;
    everything = false;
    status.textContent = `已更新 ${new Date().toLocaleTimeString('zh-CN')}`;
  };
  source.addEventListener('change', (event) => {
    let change = null;
    try { change = JSON.parse(event.data); } catch { everything = true; }
    for (const bbox of [change?.bbox_before, change?.bbox_after]) {
      if (!Array.isArray(bbox)) continue;
      touched = touched
        ? [Math.min(touched[0], bbox[0]), Math.min(touched[1], bbox[1]), Math.max(touched[2], bbox[2]), Math.max(touched[3], bbox[3])]
        : [...bbox];
    }
    if (change && !change.bbox_before && !change.bbox_after) everything = true;
    // A burst of writes (an import, a dispatcher's quick edits) is one reload.
    pending ??= setTimeout(flush, 150);
  });
  // The server could not replay what we missed: reload everything.
  source.addEventListener('reset', () => { everything = true; pending ??= setTimeout(flush, 150); });
  source.onerror = () => { status.textContent = '实时连接中断，正在重连…'; };
}

map.on('load', async () => {
  await buildList();
  status.textContent = '实时';
  listen();
});
map.on('error', (event) => {
  status.textContent = `地图错误：${event.error?.message ?? event}`;
  console.error(event.error ?? event);
});
