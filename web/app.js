// The layer list of the one map, read from /api/layers. The map itself
// (MapLibre over onemap's own vector tiles) replaces this page's table when
// the tiles land.
const status = document.getElementById('status');
const body = document.querySelector('#layers tbody');

async function load() {
  const response = await fetch('/api/layers');
  if (!response.ok) throw new Error(`/api/layers answered ${response.status}`);
  const { layers } = await response.json();
  body.replaceChildren(
    ...layers.map((layer) => {
      const row = document.createElement('tr');
      for (const text of [layer.title_zh, layer.title_en, String(layer.count)]) {
        const cell = document.createElement('td');
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    }),
  );
  status.textContent = `${layers.length} 个图层`;
}

load().catch((error) => {
  status.textContent = `加载失败：${error.message}`;
});
