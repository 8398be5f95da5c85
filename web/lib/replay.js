// A replayed moment (`GET /api/replay`) drawn on the page's one map: one
// GeoJSON source per replayed layer and a copy of each of the style's
// layers of it on that source, in its place, while the tile layers (the
// present) are hidden. Layers the replay does not hold (the reference
// districts) stay as they are. Removing the replay puts everything back.

/** Ids of the replay's sources and layer copies start with this. */
export const REPLAY_PREFIX = 'replay:';
export const isReplay = (id) => id.startsWith(REPLAY_PREFIX);

export function replayLayers(map) {
  /** `[tile layer id, its visibility before]` for each layer hidden. */
  let hidden = [];

  const clear = () => {
    if (!map.style) return;
    for (const l of map.getStyle().layers) if (isReplay(l.id)) map.removeLayer(l.id);
    for (const id of Object.keys(map.getStyle().sources)) if (isReplay(id)) map.removeSource(id);
    for (const [id, visibility] of hidden) if (map.getLayer(id)) map.setLayoutProperty(id, 'visibility', visibility);
    hidden = [];
  };

  /** Draw `collections` ({layer: FeatureCollection}), replacing any replay drawn. */
  const draw = (collections) => {
    clear();
    for (const [name, fc] of Object.entries(collections)) {
      // The id as tiles carry it, a property (what popups and tests read).
      const features = (fc.features ?? []).map((f) => ({ ...f, properties: { ...f.properties, id: f.id } }));
      map.addSource(`${REPLAY_PREFIX}${name}`, { type: 'geojson', data: { type: 'FeatureCollection', features } });
    }
    for (const l of map.getStyle().layers) {
      const name = l.metadata?.['onemap:layer'];
      if (l.source !== 'onemap' || !name || !collections[name]) continue;
      const visibility = l.layout?.visibility ?? 'visible';
      const copy = { ...l, id: `${REPLAY_PREFIX}${l.id}`, source: `${REPLAY_PREFIX}${name}`, layout: { ...l.layout, visibility } };
      delete copy['source-layer'];
      // Tiles carry polygon labels in their own `<layer>_label` points; on
      // the replayed polygons themselves MapLibre places them.
      if (l['source-layer'] !== name) copy.filter = ['==', ['geometry-type'], 'Polygon'];
      map.addLayer(copy, l.id);
      hidden.push([l.id, visibility]);
      map.setLayoutProperty(l.id, 'visibility', 'none');
    }
  };

  return {
    draw,
    clear,
    /** The visibility tile layer `id` had before the replay hid it. */
    visibilityBefore: (id) => hidden.find(([x]) => x === id)?.[1],
  };
}
