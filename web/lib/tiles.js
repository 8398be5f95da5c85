// Which tiles a change touched: plain functions, no map, so they are tested
// without a browser (tests/shell.test.mjs).

const TILE_BUFFER = 64 / 4096; // the tiles' buffer, as a fraction of a tile

// Fractional XYZ tile coordinates of a position at zoom z.
function tileX(lon, z) { return ((lon + 180) / 360) * 2 ** z; }
function tileY(lat, z) {
  const r = (Math.max(-85.0511, Math.min(85.0511, lat)) * Math.PI) / 180;
  return ((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2) * 2 ** z;
}

/** The tiles from zoom 0 to `maxZoom` that hold any of `boxes` (one
 * `[w, s, e, n]` or a list of them) in their buffer and meet the `view`,
 * each once, as MapLibre's refreshTiles takes them. */
export function touchedTiles(boxes, view, maxZoom) {
  const list = typeof boxes[0] === 'number' ? [boxes] : boxes;
  const seen = new Set();
  const tiles = [];
  for (const [w, s, e, n] of list) {
    for (let z = 0; z <= maxZoom; z++) {
      const last = 2 ** z - 1;
      const x0 = Math.max(0, Math.floor(tileX(w, z) - TILE_BUFFER), Math.floor(tileX(view[0], z)));
      const x1 = Math.min(last, Math.floor(tileX(e, z) + TILE_BUFFER), Math.floor(tileX(view[2], z)));
      const y0 = Math.max(0, Math.floor(tileY(n, z) - TILE_BUFFER), Math.floor(tileY(view[3], z)));
      const y1 = Math.min(last, Math.floor(tileY(s, z) + TILE_BUFFER), Math.floor(tileY(view[1], z)));
      for (let x = x0; x <= x1; x++) {
        for (let y = y0; y <= y1; y++) {
          const key = `${z}/${x}/${y}`;
          if (!seen.has(key)) { seen.add(key); tiles.push({ z, x, y }); }
        }
      }
    }
  }
  return tiles;
}

/** The boxes a change touched: its own layer's before and after, and those
 * of the other layers the same transaction wrote (`also`: an assignment
 * moves a team and edits its incident). `null` when the change does not
 * say where (reload everything). */
export function changeBoxes(change) {
  const boxes = [];
  let located = false;
  for (const part of [change, ...(change.also ?? [])]) {
    const own = [part.bbox_before, part.bbox_after].filter(Array.isArray);
    if (own.length) located = true;
    boxes.push(...own);
  }
  return located ? boxes : null;
}
