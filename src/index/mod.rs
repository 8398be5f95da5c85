//! The in-memory spatial index: every feature of every layer in compact
//! columns (see `rows`) under a packed R-tree, with positions already
//! projected to Web Mercator. Loaded from the store at start and kept in
//! step with every committed write; tiles are cut from it, and nearest
//! searches and planning read it, without touching the store.

mod columns;
pub mod dirty;
mod mercator;
mod nearest;
mod packed;
pub mod pyramid;
mod rows;
pub mod snapshot;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, RwLock},
};

use futures_util::StreamExt;
use serde::Serialize;

use crate::{
    filter::{Expr, Literal, ID},
    layers::{Catalog, Feature, LayerDef},
    store::{Query, Store, StoreError},
};

pub use columns::{scalar, Scalar};
pub use mercator::{lonlat_to_mercator, mercator_to_lonlat, tile_bounds, EARTH_HALF_CIRCUMFERENCE};
pub use nearest::STORE_RING_LIMIT;
pub use nearest::{distance_to_box_m, haversine_m, EARTH_RADIUS_M};
pub use rows::{Row, Rows};

/// One feature as the index holds it, owned: for what outlives the layer's
/// read lock (a dispatch answer, a tile on another datum's grid).
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: i64,
    /// The geometry in Web Mercator metres.
    pub mercator: Arc<geo::Geometry<f64>>,
    /// The stored feature (WGS84), for properties and filters.
    pub feature: Arc<Feature>,
    /// Where a named area's label goes (Web Mercator).
    pub label: Option<geo::Point<f64>>,
    /// The position of a point feature (Web Mercator).
    pub point: Option<[f64; 2]>,
}

/// A point inside an area (none for points and lines: they label
/// themselves).
fn label_point(g: &geo::Geometry<f64>) -> Option<geo::Point<f64>> {
    use geo::Area;
    match g {
        geo::Geometry::Polygon(p) => interior_point(p),
        // The largest part: a district's label belongs on its main body,
        // not on an enclave.
        geo::Geometry::MultiPolygon(m) => m
            .iter()
            .max_by(|a, b| a.unsigned_area().total_cmp(&b.unsigned_area()))
            .and_then(interior_point),
        _ => None,
    }
}

/// Horizontal lines tried across an area's box for its label.
const LABEL_SCANLINES: usize = 9;

/// A point inside a polygon, in time linear in its vertices: the middle of
/// the widest inside span on a few horizontal lines across its box (even-odd
/// rule, holes included). geo's `InteriorPoint` is far costlier on rings of
/// many vertices: a 24,000-vertex star took 73 s, with the index locked.
fn interior_point(p: &geo::Polygon<f64>) -> Option<geo::Point<f64>> {
    use geo::BoundingRect;
    let r = p.bounding_rect()?;
    let (min_y, height) = (r.min().y, r.height());
    if height.is_nan() || height <= 0.0 {
        return None;
    }
    let rings: Vec<&geo::LineString<f64>> =
        std::iter::once(p.exterior()).chain(p.interiors()).collect();
    let mut best: Option<(f64, geo::Point<f64>)> = None;
    let mut xs = Vec::new();
    for k in 0..LABEL_SCANLINES {
        // Off the exact fractions, so a line rarely runs through a vertex.
        let y = min_y + height * ((k as f64 + 0.5) / LABEL_SCANLINES as f64 + 1e-7);
        xs.clear();
        for ring in &rings {
            for l in ring.lines() {
                let (a, b) = (l.start, l.end);
                // Half-open in y: a vertex on the line is counted once.
                if (a.y <= y) != (b.y <= y) {
                    xs.push(a.x + (y - a.y) * (b.x - a.x) / (b.y - a.y));
                }
            }
        }
        xs.sort_by(f64::total_cmp);
        for span in xs.chunks_exact(2) {
            let width = span[1] - span[0];
            if width > best.map_or(0.0, |(w, _)| w) {
                best = Some((width, geo::Point::new((span[0] + span[1]) / 2.0, y)));
            }
        }
    }
    best.map(|(_, point)| point)
}

/// One layer's rows and its tiles' versions, the versions outside the
/// rows' lock: every tile request reads one, and a build of a big tile
/// holds the rows' read lock for milliseconds.
struct Slot {
    rows: RwLock<Rows>,
    /// Moved on for the tiles a change touched, after the rows changed
    /// (with their write lock held): tile cache keys carry the version, so
    /// whoever sees a new one builds from the new rows.
    dirty: RwLock<dirty::Dirty>,
    /// A layer too big to hold, served by the store itself (its tiles,
    /// items and filters): no rows here, only its tiles' versions.
    in_store: bool,
    /// Such a layer's feature count, while no change has touched it since
    /// it was counted (a count of tens of millions of rows is not paid per
    /// summary or scrape).
    stored_count: Mutex<StoredCount>,
}

/// A count and the number of changes seen when it was taken.
#[derive(Default)]
struct StoredCount {
    changes: u64,
    known: Option<u64>,
}

impl Slot {
    fn new(rows: Rows) -> Self {
        Self {
            rows: RwLock::new(rows),
            dirty: RwLock::default(),
            in_store: false,
            stored_count: Mutex::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Rows> {
        self.rows.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// A stored row the index could not load (another tool wrote a NULL, empty
/// or hostile geometry, or a value of the wrong type): logged, left out of
/// tiles and searches, and reported in `/healthz` and the metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SkippedRow {
    pub fid: i64,
    pub reason: String,
}

/// The rows of one layer skipped since start: all counted, the first
/// [`SKIPPED_DETAIL`] named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SkippedRows {
    pub count: u64,
    pub rows: Vec<SkippedRow>,
}

/// Rows a refresh writes under one hold of the layer's lock.
const APPLY_SLICE: usize = 2_000;

/// Skipped rows named (and logged one by one) per layer; past this they are
/// only counted, so a file of a million attribute-only rows costs neither
/// memory nor a flood of log lines.
pub const SKIPPED_DETAIL: usize = 20;

impl SkippedRows {
    fn record(&mut self, layer: &str, fid: i64, reason: String) {
        self.count += 1;
        if self.rows.len() < SKIPPED_DETAIL {
            tracing::warn!(layer, fid, reason = %reason, "skipping a stored row the index cannot load");
            self.rows.push(SkippedRow { fid, reason });
        }
    }
}

/// Every layer's R-tree.
#[derive(Default)]
pub struct SpatialIndex {
    layers: HashMap<String, Slot>,
    skipped: Mutex<BTreeMap<String, SkippedRows>>,
}

/// The features of a stream, each unreadable row recorded in `skipped`
/// instead of ending the read.
async fn read_rows(
    store: &dyn Store,
    layer: &Arc<LayerDef>,
    query: Query,
    skipped: &mut SkippedRows,
) -> Result<Vec<Feature>, StoreError> {
    let mut rows = store.stream(layer.clone(), query);
    let mut features = Vec::new();
    while let Some(row) = rows.next().await {
        match row {
            Ok(f) => features.push(f),
            Err(StoreError::Corrupt {
                id, column, reason, ..
            }) => skipped.record(&layer.name, id, format!("{column}: {reason}")),
            Err(e) => return Err(e),
        }
    }
    Ok(features)
}

impl SpatialIndex {
    /// Read every feature of every layer from the store. A row that cannot
    /// be loaded is skipped and reported ([`SpatialIndex::skipped`]), never
    /// fatal: one bad row must not keep the server from starting.
    pub async fn load(store: &dyn Store, catalog: &Catalog) -> Result<Self, StoreError> {
        Self::load_holding(store, catalog, None, &[]).await
    }

    /// [`SpatialIndex::load`], except that a layer of more than
    /// `hold_at_most` features is left to a store that can serve it
    /// ([`Store::serves_tiles`]): no rows of it are held. The layers
    /// `always_held` (those dispatch and planning read whole) are held
    /// whatever their size.
    pub async fn load_holding(
        store: &dyn Store,
        catalog: &Catalog,
        hold_at_most: Option<u64>,
        always_held: &[String],
    ) -> Result<Self, StoreError> {
        let mut layers = HashMap::new();
        let mut skipped = BTreeMap::new();
        for layer in catalog.layers() {
            let mut skips = SkippedRows::default();
            // Row by row into the columns: the features are never all held
            // at once (a million of them as JSON maps were 2 GB).
            let mut rows = Rows::new(layer);
            let expected = store.count(layer, &Query::default()).await?;
            let pinned = always_held.contains(&layer.name);
            if store.serves_tiles() && !pinned && hold_at_most.is_some_and(|most| expected > most) {
                tracing::info!(layer = %layer.name, features = expected, "layer served from the store, not held in memory");
                rows.pack();
                rows.lay_out();
                let mut slot = Slot::new(rows);
                slot.in_store = true;
                slot.stored_count = Mutex::new(StoredCount {
                    changes: 0,
                    known: Some(expected),
                });
                layers.insert(layer.name.clone(), slot);
                continue;
            }
            rows.reserve(usize::try_from(expected).unwrap_or(0));
            let mut stream = store.stream(layer.clone(), Query::default());
            while let Some(row) = stream.next().await {
                match row {
                    Ok(f) => {
                        let fid = f.id.unwrap_or_default();
                        if !rows.add(f) {
                            skips.record(&layer.name, fid, "the geometry is empty".into());
                        }
                    }
                    Err(StoreError::Corrupt {
                        id, column, reason, ..
                    }) => skips.record(&layer.name, id, format!("{column}: {reason}")),
                    Err(e) => return Err(e),
                }
            }
            rows.pack();
            rows.lay_out();
            rows.shrink();
            if skips.count > 0 {
                tracing::warn!(layer = %layer.name, skipped = skips.count, "rows left out of the index");
                skipped.insert(layer.name.clone(), skips);
            }
            layers.insert(layer.name.clone(), Slot::new(rows));
        }
        Ok(Self {
            layers,
            skipped: Mutex::new(skipped),
        })
    }

    /// An index of features already in memory (with ids), one layer:
    /// for benchmarks and tests of what reads the index.
    pub fn from_features(layer: &LayerDef, features: Vec<Feature>) -> Self {
        let (rows, _) = Rows::load(layer, features);
        let mut layers = HashMap::new();
        layers.insert(layer.name.clone(), Slot::new(rows));
        Self {
            layers,
            skipped: Mutex::default(),
        }
    }

    /// The rows left out since start, by layer (only layers with some).
    pub fn skipped(&self) -> BTreeMap<String, SkippedRows> {
        self.skipped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The current version of a layer's tile z/x/y (0 for an unknown
    /// layer): it moves on when a change comes near the tile.
    pub fn tile_version(&self, layer: &str, z: u8, x: u32, y: u32) -> u64 {
        self.layers
            .get(layer)
            .map(|l| {
                l.dirty
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .version(z, x, y)
            })
            .unwrap_or(0)
    }

    /// Whether `layer` is served by the store rather than held here (its
    /// tiles and items come from SQL).
    pub fn in_store(&self, layer: &str) -> bool {
        self.layers.get(layer).is_some_and(|l| l.in_store)
    }

    /// A change came near these WGS84 boxes of a layer served by the
    /// store: its tiles there get new versions.
    pub fn touch_in_store(&self, layer: &str, boxes: &[[f64; 4]]) {
        let Some(slot) = self.layers.get(layer).filter(|l| l.in_store) else {
            return;
        };
        let projected: Vec<[f64; 4]> = boxes
            .iter()
            .map(|b| {
                let (x0, y0) = lonlat_to_mercator(b[0], b[1]);
                let (x1, y1) = lonlat_to_mercator(b[2], b[3]);
                [x0, y0, x1, y1]
            })
            .collect();
        slot.dirty
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .changed(&projected);
        let mut count = slot.stored_count.lock().unwrap_or_else(|p| p.into_inner());
        count.changes += 1;
        count.known = None;
    }

    /// How many features a layer has: the held rows, or for a layer the
    /// store serves the store's count, taken again only after a change.
    pub async fn count_of(&self, store: &dyn Store, layer: &LayerDef) -> Result<u64, StoreError> {
        let Some(slot) = self.layers.get(&layer.name).filter(|l| l.in_store) else {
            return Ok(self.len(&layer.name) as u64);
        };
        let changes = {
            let count = slot.stored_count.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = count.known {
                return Ok(n);
            }
            count.changes
        };
        let n = store.count(layer, &Query::default()).await?;
        let mut count = slot.stored_count.lock().unwrap_or_else(|p| p.into_inner());
        // A change meanwhile may or may not be in `n`: not kept then.
        if count.changes == changes {
            count.known = Some(n);
        }
        Ok(n)
    }

    /// Features whose box meets the Web Mercator box, owned.
    pub fn query(&self, layer: &str, min: [f64; 2], max: [f64; 2]) -> Vec<Entry> {
        self.visit(layer, min, max, |rows| {
            rows.iter().map(Row::entry).collect()
        })
    }

    /// Call `f` with the rows whose box meets the Web Mercator box,
    /// borrowed under the layer's read lock: nothing is copied, which is
    /// most of the cost of a low-zoom tile of a dense layer.
    pub fn visit<R>(
        &self,
        layer: &str,
        min: [f64; 2],
        max: [f64; 2],
        f: impl FnOnce(Vec<Row<'_>>) -> R,
    ) -> R {
        let Some(l) = self.layers.get(layer) else {
            return f(Vec::new());
        };
        let l = l.read();
        f(l.search(&[min[0], min[1], max[0], max[1]]))
    }

    /// One feature of a layer as the index holds it, owned.
    pub fn get(&self, layer: &str, id: i64) -> Option<Entry> {
        self.row(layer, id, |r| r.map(|r| r.entry()))
    }

    /// Call `f` with a layer's rows, borrowed under its read lock (for
    /// what reads the low-zoom counts beside the rows).
    pub fn with_rows<R>(&self, layer: &str, f: impl FnOnce(Option<&Rows>) -> R) -> R {
        match self.layers.get(layer) {
            Some(l) => f(Some(&l.read())),
            None => f(None),
        }
    }

    /// Call `f` with one row of a layer, borrowed under its read lock.
    pub fn row<R>(&self, layer: &str, id: i64, f: impl FnOnce(Option<Row<'_>>) -> R) -> R {
        let Some(l) = self.layers.get(layer) else {
            return f(None);
        };
        let l = l.read();
        f(l.get(id))
    }

    /// Call `f` with every row of a layer, borrowed under its read lock.
    pub fn each<R>(
        &self,
        layer: &str,
        f: impl FnOnce(&mut dyn Iterator<Item = Row<'_>>) -> R,
    ) -> R {
        let Some(l) = self.layers.get(layer) else {
            return f(&mut std::iter::empty());
        };
        let l = l.read();
        let mut all = l.iter();
        // Bound first: the iterator borrows the guard, which a tail
        // expression would drop too early.
        #[allow(clippy::let_and_return)]
        let answer = f(&mut all);
        answer
    }

    /// The WGS84 `[west, south, east, north]` of a layer's features.
    pub fn extent(&self, layer: &str) -> Option<[f64; 4]> {
        let b = self.layers.get(layer)?.read().bounds()?;
        let (w, s) = mercator_to_lonlat(b[0], b[1]);
        let (e, n) = mercator_to_lonlat(b[2], b[3]);
        Some([w, s, e, n])
    }

    /// How many features a layer holds.
    pub fn len(&self, layer: &str) -> usize {
        self.layers.get(layer).map(|l| l.read().len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The WGS84 `[west, south, east, north]` of the features `ids` as the
    /// index holds them now (`None` when it holds none of them).
    pub fn bbox_of(&self, layer: &str, ids: &[i64]) -> Option<[f64; 4]> {
        let l = self.layers.get(layer)?.read();
        ids.iter()
            .filter_map(|id| l.get(*id))
            .filter_map(|r| r.wgs84_bbox())
            .reduce(|a, b| {
                [
                    a[0].min(b[0]),
                    a[1].min(b[1]),
                    a[2].max(b[2]),
                    a[3].max(b[3]),
                ]
            })
    }

    /// Apply the changes logged after `from` (each touched feature read
    /// again from the store): what a snapshot's start does before it
    /// serves. Returns the last change applied.
    pub async fn catch_up(
        &self,
        store: &dyn Store,
        catalog: &Catalog,
        mut from: i64,
    ) -> Result<i64, StoreError> {
        const PAGE: u64 = 1000;
        loop {
            let page = store.changes_since(from, PAGE).await?;
            let Some(last) = page.last().map(|c| c.seq) else {
                return Ok(from);
            };
            let mut by_layer: BTreeMap<&str, std::collections::BTreeSet<i64>> = BTreeMap::new();
            for c in &page {
                by_layer.entry(c.layer.as_str()).or_default().extend(&c.ids);
                for t in &c.also {
                    by_layer.entry(t.layer.as_str()).or_default().extend(&t.ids);
                }
            }
            for (name, ids) in by_layer {
                if let Some(layer) = catalog.get(name) {
                    let ids: Vec<i64> = ids.into_iter().collect();
                    self.refresh(store, layer, &ids).await?;
                }
            }
            from = last;
            if (page.len() as u64) < PAGE {
                return Ok(from);
            }
        }
    }

    /// Bring `ids` of `layer` up to date with the store after a commit:
    /// re-read each, replacing or removing its row.
    pub async fn refresh(
        &self,
        store: &dyn Store,
        layer: &Arc<LayerDef>,
        ids: &[i64],
    ) -> Result<(), StoreError> {
        // A layer the store serves has nothing here to refresh (the feed
        // moves its tiles' versions from the change's boxes).
        if self.in_store(&layer.name) {
            return Ok(());
        }
        // Read the written features back in chunks of ids (one query each),
        // not one by one: an import may write 100,000.
        let mut found: HashMap<i64, Feature> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let query = Query {
                filter: Some(Expr::In {
                    property: ID.into(),
                    values: chunk.iter().map(|i| Literal::Integer(*i)).collect(),
                }),
                ..Query::default()
            };
            let mut skips = SkippedRows::default();
            let features = read_rows(store, layer, query, &mut skips).await?;
            found.extend(features.into_iter().filter_map(|f| f.id.map(|id| (id, f))));
            if skips.count > 0 {
                let mut skipped = self.skipped.lock().unwrap_or_else(|p| p.into_inner());
                let all = skipped.entry(layer.name.clone()).or_default();
                all.count += skips.count;
                let room = SKIPPED_DETAIL.saturating_sub(all.rows.len());
                all.rows.extend(skips.rows.into_iter().take(room));
            }
        }
        let Some(slot) = self.layers.get(&layer.name) else {
            return Ok(());
        };
        // In slices, the lock released and the worker yielded between
        // them: the rows of an import of a million features are projected
        // and written here, and tiles of the layer must keep being cut.
        for slice in ids.chunks(APPLY_SLICE) {
            {
                let mut l = slot.rows.write().unwrap_or_else(|p| p.into_inner());
                // Where each feature was and is: the tiles to rebuild.
                let mut boxes = Vec::with_capacity(2 * slice.len());
                for id in slice {
                    boxes.extend(l.get(*id).map(|r| r.bbox()));
                    match found.remove(id) {
                        Some(f) => {
                            if !l.put(f) {
                                l.remove(*id);
                            }
                        }
                        None => l.remove(*id),
                    }
                    boxes.extend(l.get(*id).map(|r| r.bbox()));
                }
                slot.dirty
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .changed(&boxes);
            }
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod label_tests {
    use geo::{Contains, Polygon};

    use super::interior_point;

    fn star(points: usize) -> Polygon<f64> {
        Polygon::new(crate::test_shapes::star(points, 1000.0, 300.0), vec![])
    }

    #[test]
    fn label_points_lie_inside_stars_holes_and_concave_shapes() {
        let big = star(12_000);
        let p = interior_point(&big).expect("a point");
        assert!(big.contains(&p), "inside the 24,000-vertex star");
        // A square with a hole where the centre would be.
        let holed = Polygon::new(
            vec![
                (0.0, 0.0),
                (10.0, 0.0),
                (10.0, 10.0),
                (0.0, 10.0),
                (0.0, 0.0),
            ]
            .into(),
            vec![vec![(2.0, 2.0), (8.0, 2.0), (8.0, 8.0), (2.0, 8.0), (2.0, 2.0)].into()],
        );
        let p = interior_point(&holed).expect("a point");
        assert!(holed.contains(&p), "{p:?} outside the hole");
        // A U shape whose box centre is outside it.
        let u = Polygon::new(
            vec![
                (0.0, 0.0),
                (9.0, 0.0),
                (9.0, 9.0),
                (6.0, 9.0),
                (6.0, 3.0),
                (3.0, 3.0),
                (3.0, 9.0),
                (0.0, 9.0),
                (0.0, 0.0),
            ]
            .into(),
            vec![],
        );
        let p = interior_point(&u).expect("a point");
        assert!(u.contains(&p), "{p:?}");
        // Flat: no inside.
        let flat = Polygon::new(vec![(0.0, 0.0), (1.0, 0.0), (0.0, 0.0)].into(), vec![]);
        assert!(interior_point(&flat).is_none());
    }
}
