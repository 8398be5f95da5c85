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

// Live: each committed write names the tiles it touched; reload the tiles.
function listen() {
  const source = new EventSource('/api/events');
  let pending = null;
  source.addEventListener('change', () => {
    clearTimeout(pending);
    pending = setTimeout(() => {
      const tiles = map.getSource('onemap');
      if (tiles?.setTiles && tiles.tiles) tiles.setTiles(tiles.tiles.map((t) => t.replace(/([?&])v=\d+/, '') + (t.includes('?') ? '&' : '?') + `v=${Date.now()}`));
      status.textContent = `已更新 ${new Date().toLocaleTimeString('zh-CN')}`;
    }, 200);
  });
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
