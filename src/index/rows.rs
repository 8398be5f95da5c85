//! One layer's features in memory, compactly: ids, positions and properties
//! in flat columns addressed by a row slot, a packed Hilbert R-tree over the
//! slots, and a small list of slots written since the tree was packed.
//!
//! A point costs its id, its position twice (WGS84 for distances and the
//! API, Web Mercator for tiles) and a few bytes a property; lines and areas
//! keep their geometries whole (they are few and large). Writes touch the
//! columns in place and put the slot on the recent list, which is searched
//! one by one; when that list grows past a fraction of the layer the tree
//! is packed again (one sort), and when removed rows pile up the columns
//! are rebuilt without them.

use std::{borrow::Cow, collections::HashMap, sync::Arc};

use geo::BoundingRect;
use serde_json::Value;

use super::{
    columns::{Columns, Scalar},
    label_point, mercator,
    packed::{meets, Box2, Packed},
    pyramid::{self, Pyramid},
    Entry,
};
use crate::layers::{Feature, LayerDef};

/// The id of a removed row's slot.
const DEAD: i64 = i64::MIN;

/// Where a geometry goes in the columns: a point as its two positions; a
/// line or an area as a shape, with its anchor (the label point of a named
/// area, else the middle of its WGS84 box, as before the compact rows) as
/// its positions. `None` for an empty geometry.
fn place(g: &geo::Geometry<f64>, named: bool) -> Option<(Option<Shape>, [f64; 2], [f64; 2])> {
    if let geo::Geometry::Point(p) = g {
        let (x, y) = mercator::lonlat_to_mercator(p.x(), p.y());
        return Some((None, [x, y], [p.x(), p.y()]));
    }
    let m = mercator::project(g);
    let r = m.bounding_rect()?;
    let label = named.then(|| label_point(&m)).flatten();
    let lonlat = match label {
        Some(l) => {
            let (lon, lat) = mercator::mercator_to_lonlat(l.x(), l.y());
            [lon, lat]
        }
        None => {
            let w = g.bounding_rect()?;
            [w.center().x, w.center().y]
        }
    };
    let (x, y) = mercator::lonlat_to_mercator(lonlat[0], lonlat[1]);
    let shape = Shape {
        bbox: [r.min().x, r.min().y, r.max().x, r.max().y],
        label,
        mercator: Arc::new(m),
        wgs84: Arc::new(g.clone()),
    };
    Some((Some(shape), [x, y], lonlat))
}

/// A line or an area: its geometry whole, in both projections.
#[derive(Debug)]
struct Shape {
    wgs84: Arc<geo::Geometry<f64>>,
    mercator: Arc<geo::Geometry<f64>>,
    label: Option<geo::Point<f64>>,
    /// Web Mercator box.
    bbox: Box2,
}

/// A bit per slot.
#[derive(Debug, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn get(&self, i: u32) -> bool {
        self.0
            .get(i as usize / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    fn set(&mut self, i: u32) {
        let w = i as usize / 64;
        if w >= self.0.len() {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << (i % 64);
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

/// One layer's rows.
#[derive(Debug)]
pub struct Rows {
    labels_areas: bool,
    ids: Vec<i64>,
    /// A point's position, or a shape's anchor (its label point, else the
    /// middle of its box), in Web Mercator metres…
    mercator: Vec<[f64; 2]>,
    /// …and in WGS84 degrees.
    lonlat: Vec<[f64; 2]>,
    shapes: HashMap<u32, Shape>,
    columns: Columns,
    /// Hashed with foldhash, not SipHash: ten million inserts at start
    /// were a fifth of a snapshot start (ids are the store's own, and the
    /// hasher is seeded at random).
    by_id: HashMap<i64, u32, foldhash::fast::RandomState>,
    tree: Packed,
    /// Slots written since the tree was packed.
    recent: Vec<u32>,
    /// Slots on `recent` (the tree skips them: their place in it is stale).
    in_recent: Bits,
    dead: usize,
    /// Point counts for low-zoom tiles, once the layer is big (see
    /// `pyramid`).
    pyramid: Option<Pyramid>,
}

/// The slots written since packing that make the tree be packed again:
/// past this many the one-by-one search of them costs more than a repack
/// amortised over the writes.
fn repack_after(live: usize) -> usize {
    (live / 64).max(1024)
}

impl Rows {
    pub fn new(layer: &LayerDef) -> Self {
        Self::with(layer.labels_areas(), Columns::new(layer))
    }

    /// No rows, over these (empty) columns.
    fn with(labels_areas: bool, columns: Columns) -> Self {
        Self {
            labels_areas,
            ids: Vec::new(),
            mercator: Vec::new(),
            lonlat: Vec::new(),
            shapes: HashMap::new(),
            columns,
            by_id: HashMap::default(),
            tree: Packed::default(),
            recent: Vec::new(),
            in_recent: Bits::default(),
            dead: 0,
            pyramid: None,
        }
    }

    /// The rows of `features` (those with an id and a geometry), packed.
    /// Features without either are returned in the second list.
    pub fn load(layer: &LayerDef, features: Vec<Feature>) -> (Self, Vec<(i64, String)>) {
        let mut rows = Self::new(layer);
        let mut refused = Vec::new();
        rows.reserve(features.len());
        for f in features {
            let fid = f.id.unwrap_or_default();
            if !rows.add(f) {
                refused.push((fid, "the geometry is empty".to_owned()));
            }
        }
        rows.pack();
        rows.lay_out();
        (rows, refused)
    }

    /// Add a feature while loading: not on the recent list, not searchable
    /// until [`Rows::pack`].
    pub fn add(&mut self, f: Feature) -> bool {
        self.write(f, false)
    }

    pub fn reserve(&mut self, n: usize) {
        self.ids.reserve(n);
        self.mercator.reserve(n);
        self.lonlat.reserve(n);
        self.by_id.reserve(n);
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Give back what growing the columns reserved beyond their rows.
    pub fn shrink(&mut self) {
        self.ids.shrink_to_fit();
        self.mercator.shrink_to_fit();
        self.lonlat.shrink_to_fit();
        self.by_id.shrink_to_fit();
        self.columns.shrink();
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn live(&self, slot: u32) -> bool {
        self.ids.get(slot as usize).is_some_and(|id| *id != DEAD)
    }

    fn bbox(&self, slot: u32) -> Box2 {
        if let Some(s) = self.shape(slot) {
            return s.bbox;
        }
        let [x, y] = self.mercator[slot as usize];
        [x, y, x, y]
    }

    fn shape(&self, slot: u32) -> Option<&Shape> {
        if self.shapes.is_empty() {
            None
        } else {
            self.shapes.get(&slot)
        }
    }

    /// Add or replace a feature; `false` (and nothing changed) when it has
    /// no id or an empty geometry.
    pub fn put(&mut self, f: Feature) -> bool {
        self.write(f, true)
    }

    fn write(&mut self, f: Feature, searchable: bool) -> bool {
        let Some(id) = f.id else {
            return false;
        };
        let named = self.labels_areas && f.name().is_some_and(|n| !n.trim().is_empty());
        let Some((shape, merc, lonlat)) = place(&f.geometry, named) else {
            return false;
        };
        if !merc[0].is_finite() || !merc[1].is_finite() {
            return false;
        }
        let slot = match self.by_id.get(&id) {
            Some(&s) => {
                self.uncount(s);
                s
            }
            None => {
                let s = self.ids.len() as u32;
                self.ids.push(id);
                self.mercator.push(merc);
                self.lonlat.push(lonlat);
                self.by_id.insert(id, s);
                s
            }
        };
        let i = slot as usize;
        self.mercator[i] = merc;
        self.lonlat[i] = lonlat;
        match shape {
            Some(s) => {
                self.shapes.insert(slot, s);
            }
            None => {
                self.shapes.remove(&slot);
            }
        }
        self.columns.set(slot, &f.properties);
        if let (Some(p), None) = (&mut self.pyramid, self.shapes.get(&slot)) {
            p.add(merc, 1);
        }
        if searchable {
            self.touched(slot);
        }
        true
    }

    /// Remove a feature (nothing when it is not here).
    pub fn remove(&mut self, id: i64) {
        let Some(slot) = self.by_id.remove(&id) else {
            return;
        };
        self.uncount(slot);
        self.ids[slot as usize] = DEAD;
        self.shapes.remove(&slot);
        self.columns.clear(slot);
        self.dead += 1;
        if self.dead > (self.len() / 4).max(1024) {
            self.compact();
        }
    }

    fn touched(&mut self, slot: u32) {
        if !self.in_recent.get(slot) {
            self.in_recent.set(slot);
            self.recent.push(slot);
        }
        if self.recent.len() > repack_after(self.len()) {
            self.pack();
        }
    }

    /// Take a point out of the counts (before it moves or goes).
    fn uncount(&mut self, slot: u32) {
        if self.shapes.contains_key(&slot) {
            return;
        }
        if let Some(p) = &mut self.pyramid {
            p.add(self.mercator[slot as usize], -1);
        }
    }

    /// The low-zoom counts, when the layer has them and holds only points
    /// (a line or an area among them is drawn, not counted).
    pub fn pyramid(&self) -> Option<&Pyramid> {
        self.pyramid.as_ref().filter(|_| self.shapes.is_empty())
    }

    /// Count every point, once the layer is big enough to gain from it.
    fn count_points(&mut self) {
        if self.pyramid.is_some() || self.len() < pyramid::MIN_POINTS {
            return;
        }
        let mut p = Pyramid::new();
        for slot in 0..self.ids.len() as u32 {
            if self.live(slot) && !self.shapes.contains_key(&slot) {
                p.add(self.mercator[slot as usize], 1);
            }
        }
        self.pyramid = Some(p);
    }

    /// Pack every live slot into a new tree.
    pub fn pack(&mut self) {
        let live: Vec<u32> = (0..self.ids.len() as u32)
            .filter(|s| self.live(*s))
            .collect();
        self.tree = Packed::build(live, |s| self.bbox(s));
        self.recent.clear();
        self.in_recent.clear();
        self.count_points();
    }

    /// Lay the rows out in the packed tree's (Hilbert) order, so the rows
    /// of one tile are neighbours in every column: a cold z16 tile spent
    /// most of its time waiting on memory for values scattered in id
    /// order. Only for a freshly packed layer (nothing removed, nothing
    /// recent); the tree's order becomes the slots themselves.
    pub fn lay_out(&mut self) {
        let n = self.ids.len();
        if self.dead > 0 || !self.recent.is_empty() || self.tree.slots().len() != n {
            return;
        }
        let order: Vec<u32> = self.tree.slots().to_vec();
        let mut new_of = vec![0u32; n];
        for (new, &old) in order.iter().enumerate() {
            new_of[old as usize] = new as u32;
        }
        self.ids = order.iter().map(|&o| self.ids[o as usize]).collect();
        self.mercator = order.iter().map(|&o| self.mercator[o as usize]).collect();
        self.lonlat = order.iter().map(|&o| self.lonlat[o as usize]).collect();
        self.shapes = std::mem::take(&mut self.shapes)
            .into_iter()
            .map(|(slot, s)| (new_of[slot as usize], s))
            .collect();
        self.columns = self.columns.permuted(&order, &new_of);
        for (slot, id) in self.ids.iter().enumerate() {
            self.by_id.insert(*id, slot as u32);
        }
        self.tree.renumber(&new_of);
    }

    /// Rebuild the columns without removed rows.
    fn compact(&mut self) {
        let mut fresh = Rows::new_like(self);
        fresh.reserve(self.len());
        for slot in 0..self.ids.len() as u32 {
            if self.live(slot) {
                let row = Row { rows: self, slot };
                fresh.add(row.feature());
            }
        }
        fresh.pack();
        fresh.lay_out();
        *self = fresh;
    }

    fn new_like(other: &Rows) -> Rows {
        Rows::with(other.labels_areas, other.columns.empty_like())
    }

    /// The rows whose box meets the Web Mercator box `q`.
    pub fn search(&self, q: &Box2) -> Vec<Row<'_>> {
        let mut out = Vec::new();
        self.tree.search(
            q,
            |s| self.bbox(s),
            |s| {
                if self.live(s) && !self.in_recent.get(s) {
                    out.push(Row {
                        rows: self,
                        slot: s,
                    });
                }
            },
        );
        for &s in &self.recent {
            if self.live(s) && meets(&self.bbox(s), q) {
                out.push(Row {
                    rows: self,
                    slot: s,
                });
            }
        }
        out
    }

    /// Every live row, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        (0..self.ids.len() as u32)
            .filter(|s| self.live(*s))
            .map(|slot| Row { rows: self, slot })
    }

    pub fn get(&self, id: i64) -> Option<Row<'_>> {
        self.by_id.get(&id).map(|&slot| Row { rows: self, slot })
    }

    /// The Web Mercator box of every row.
    pub fn bounds(&self) -> Option<Box2> {
        let mut b = self.tree.bounds();
        for &s in &self.recent {
            if self.live(s) {
                let r = self.bbox(s);
                b = Some(b.map_or(r, |a| {
                    [
                        a[0].min(r[0]),
                        a[1].min(r[1]),
                        a[2].max(r[2]),
                        a[3].max(r[3]),
                    ]
                }));
            }
        }
        b
    }

    pub(super) fn tree(&self) -> &Packed {
        &self.tree
    }

    pub(super) fn recent(&self) -> impl Iterator<Item = Row<'_>> {
        self.recent
            .iter()
            .filter(|s| self.live(**s))
            .map(|&slot| Row { rows: self, slot })
    }

    /// A slot of the tree, unless it was removed or moved to the recent list.
    pub(super) fn packed_row(&self, slot: u32) -> Option<Row<'_>> {
        (self.live(slot) && !self.in_recent.get(slot)).then_some(Row { rows: self, slot })
    }

    pub(super) fn encode(&self, out: &mut super::snapshot::Out) {
        out.i64s(&self.ids);
        let flat = |v: &[[f64; 2]]| -> Vec<f64> { v.iter().flatten().copied().collect() };
        out.f64s(&flat(&self.mercator));
        out.f64s(&flat(&self.lonlat));
        // Shapes as GeoJSON (they are few); their projections and label
        // points are made again on reading.
        let shapes: Vec<(u32, geojson::Geometry)> = self
            .shapes
            .iter()
            .map(|(slot, s)| {
                (
                    *slot,
                    geojson::Geometry::new(geojson::Value::from(&*s.wgs84)),
                )
            })
            .collect();
        out.json(&shapes);
        self.columns.encode(out);
        self.tree.encode(out);
        out.u32s(&self.recent);
        out.len(self.dead);
    }

    /// The rows [`Rows::encode`] wrote, checked: every slot the tree and the
    /// recent list name exists, every id is unique.
    pub(super) fn decode(
        layer: &LayerDef,
        input: &mut super::snapshot::In,
    ) -> super::snapshot::Decoded<Self> {
        let pairs = |v: Vec<f64>| -> super::snapshot::Decoded<Vec<[f64; 2]>> {
            if !v.len().is_multiple_of(2) {
                return Err("a position cut short".into());
            }
            Ok(v.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
        };
        let mut rows = Rows::new(layer);
        rows.ids = input.i64s()?;
        let n = rows.ids.len();
        rows.mercator = pairs(input.f64s()?)?;
        rows.lonlat = pairs(input.f64s()?)?;
        if rows.mercator.len() != n || rows.lonlat.len() != n {
            return Err("positions do not match the ids".into());
        }
        let shapes: Vec<(u32, geojson::Geometry)> = input.json()?;
        rows.columns = Columns::decode(layer, n, input)?;
        rows.tree = Packed::decode(input)?;
        rows.recent = input.u32s()?;
        rows.dead = input.len(0)?;
        let within = |s: &u32| (*s as usize) < n;
        if !rows.tree.slots().iter().all(within) || !rows.recent.iter().all(within) {
            return Err("the tree names a row that is not there".into());
        }
        for &s in &rows.recent {
            rows.in_recent.set(s);
        }
        rows.by_id.reserve(n);
        for (slot, &id) in rows.ids.iter().enumerate() {
            if id != DEAD && rows.by_id.insert(id, slot as u32).is_some() {
                return Err(format!("id {id} twice"));
            }
        }
        for (slot, g) in shapes {
            if !within(&slot) {
                return Err("a shape of a row that is not there".into());
            }
            let g = geo::Geometry::<f64>::try_from(g.value).map_err(|e| e.to_string())?;
            let named = rows.labels_areas
                && Row { rows: &rows, slot }
                    .name()
                    .is_some_and(|n| !n.trim().is_empty());
            let (Some(shape), _, _) = place(&g, named).ok_or("an empty shape")? else {
                return Err("a point stored as a shape".into());
            };
            rows.shapes.insert(slot, shape);
        }
        rows.count_points();
        Ok(rows)
    }
}

/// One row of a layer, borrowed from the index under its read lock.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    rows: &'a Rows,
    slot: u32,
}

impl std::fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Row({})", self.id())
    }
}

impl<'a> Row<'a> {
    pub fn id(&self) -> i64 {
        self.rows.ids[self.slot as usize]
    }

    /// A point's Web Mercator position (`None` for lines and areas).
    pub fn point(&self) -> Option<[f64; 2]> {
        match self.rows.shape(self.slot) {
            None => Some(self.rows.mercator[self.slot as usize]),
            Some(_) => None,
        }
    }

    /// A point's `[lon, lat]` (`None` for lines and areas).
    pub fn lonlat(&self) -> Option<[f64; 2]> {
        match self.rows.shape(self.slot) {
            None => Some(self.rows.lonlat[self.slot as usize]),
            Some(_) => None,
        }
    }

    /// Where the feature is for distances (`[lon, lat]`): a point is
    /// itself; a line or an area its label point, else its box's middle.
    pub fn anchor(&self) -> [f64; 2] {
        self.rows.lonlat[self.slot as usize]
    }

    /// Where a named area's label goes (Web Mercator).
    pub fn label(&self) -> Option<geo::Point<f64>> {
        self.rows.shape(self.slot).and_then(|s| s.label)
    }

    /// The Web Mercator box.
    pub fn bbox(&self) -> Box2 {
        self.rows.bbox(self.slot)
    }

    /// The geometry in Web Mercator.
    pub fn mercator(&self) -> Cow<'a, geo::Geometry<f64>> {
        match self.rows.shape(self.slot) {
            Some(s) => Cow::Borrowed(&*s.mercator),
            None => {
                let [x, y] = self.rows.mercator[self.slot as usize];
                Cow::Owned(geo::Geometry::Point(geo::Point::new(x, y)))
            }
        }
    }

    /// The geometry in WGS84, as stored.
    pub fn geometry(&self) -> Cow<'a, geo::Geometry<f64>> {
        match self.rows.shape(self.slot) {
            Some(s) => Cow::Borrowed(&*s.wgs84),
            None => {
                let [x, y] = self.rows.lonlat[self.slot as usize];
                Cow::Owned(geo::Geometry::Point(geo::Point::new(x, y)))
            }
        }
    }

    /// The WGS84 box `[west, south, east, north]`.
    pub fn wgs84_bbox(&self) -> Option<[f64; 4]> {
        match self.rows.shape(self.slot) {
            Some(s) => s
                .wgs84
                .bounding_rect()
                .map(|r| [r.min().x, r.min().y, r.max().x, r.max().y]),
            None => {
                let [x, y] = self.rows.lonlat[self.slot as usize];
                Some([x, y, x, y])
            }
        }
    }

    /// A property as a scalar (a string, number or boolean).
    pub fn scalar(&self, name: &str) -> Option<Scalar<'a>> {
        let c = &self.rows.columns;
        match c.position(name) {
            Some(i) => c.scalar(i, self.slot),
            None => c.extra(self.slot, name).and_then(super::columns::scalar),
        }
    }

    /// Column `i` (the schema's `i`-th property) as a scalar.
    pub fn scalar_at(&self, column: usize) -> Option<Scalar<'a>> {
        self.rows.columns.scalar(column, self.slot)
    }

    /// A property as JSON.
    pub fn value(&self, name: &str) -> Option<Value> {
        let c = &self.rows.columns;
        match c.position(name) {
            Some(i) => c.value(i, self.slot),
            None => c.extra(self.slot, name).cloned(),
        }
    }

    /// An array or record property, borrowed.
    pub fn json(&self, name: &str) -> Option<&'a Value> {
        let c = &self.rows.columns;
        match c.position(name) {
            Some(i) => c.json(i, self.slot),
            None => c.extra(self.slot, name),
        }
    }

    pub fn text(&self, name: &str) -> Option<&'a str> {
        match self.scalar(name)? {
            Scalar::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn number(&self, name: &str) -> Option<f64> {
        match self.scalar(name)? {
            Scalar::Integer(i) => Some(i as f64),
            Scalar::Number(n) => Some(n),
            _ => None,
        }
    }

    pub fn name(&self) -> Option<&'a str> {
        self.text(crate::layers::NAME)
    }

    /// The feature as the store holds it.
    pub fn feature(&self) -> Feature {
        Feature {
            id: Some(self.id()),
            geometry: self.geometry().into_owned(),
            properties: self.rows.columns.properties(self.slot),
        }
    }

    /// The row as an owned entry (for what outlives the index's lock).
    pub fn entry(&self) -> Entry {
        let mercator = match self.rows.shape(self.slot) {
            Some(s) => Arc::clone(&s.mercator),
            None => Arc::new(self.mercator().into_owned()),
        };
        Entry {
            id: self.id(),
            point: self.point(),
            label: self.label(),
            mercator,
            feature: Arc::new(self.feature()),
        }
    }
}

/// The rows against a plain list of features searched one by one (the
/// reference): same rows found for every box, same features read back,
/// same filter answers, through random writes that repack and compact.
#[cfg(test)]
mod differential {
    use std::collections::BTreeMap;

    use rand::{Rng, SeedableRng};
    use serde_json::{json, Map};

    use super::*;
    use crate::{filter::Expr, layers::Catalog};

    fn feature(rng: &mut impl Rng, id: i64) -> Feature {
        let (lon, lat) = (rng.random_range(117.9..118.5), rng.random_range(34.8..35.2));
        let geometry: geo::Geometry<f64> = if rng.random_bool(0.1) {
            let d = rng.random_range(0.001..0.05);
            geo::Geometry::Polygon(geo::Polygon::new(
                vec![
                    (lon, lat),
                    (lon + d, lat),
                    (lon + d, lat + d),
                    (lon, lat + d),
                    (lon, lat),
                ]
                .into(),
                vec![],
            ))
        } else {
            geo::Geometry::Point(geo::Point::new(lon, lat))
        };
        let mut p = Map::new();
        p.insert(
            "name".into(),
            json!(format!("点{}", rng.random_range(0..50_000))),
        );
        if rng.random_bool(0.8) {
            p.insert(
                "status".into(),
                json!(["open", "standby", "full"][rng.random_range(0..3)]),
            );
        }
        if rng.random_bool(0.7) {
            p.insert("capacity".into(), json!(rng.random_range(0..5000)));
        }
        if rng.random_bool(0.5) {
            p.insert(
                "effective_area_m2".into(),
                json!(rng.random_range(0.0..1e5)),
            );
        }
        let mut f = Feature::new(geometry, p);
        f.id = Some(id);
        f
    }

    fn merc_box(f: &Feature) -> Box2 {
        let r = mercator::project(&f.geometry)
            .bounding_rect()
            .expect("a box");
        [r.min().x, r.min().y, r.max().x, r.max().y]
    }

    #[test]
    fn rows_answer_as_a_scan_of_the_features_through_writes() {
        let catalog = Catalog::builtin().expect("catalog");
        let layer = catalog.get("shelters").expect("shelters");
        let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
        let mut reference: BTreeMap<i64, Feature> = BTreeMap::new();
        for id in 1..=6000 {
            reference.insert(id, feature(&mut rng, id));
        }
        let (mut rows, refused) = Rows::load(layer, reference.values().cloned().collect());
        assert!(refused.is_empty());
        let filters = [
            Expr::Const(true),
            crate::filter::parse_cql2("capacity > 2500 AND status = 'open'", layer)
                .expect("a filter"),
            crate::filter::parse_cql2("status IS NULL OR name LIKE '点1%'", layer)
                .expect("a filter"),
        ];
        let mut next_id = 6001;
        for round in 0..30 {
            // Writes: new rows, rewritten rows (moved, retyped), removals;
            // enough over the rounds to repack and compact.
            for _ in 0..400 {
                match rng.random_range(0..3) {
                    0 => {
                        let f = feature(&mut rng, next_id);
                        next_id += 1;
                        assert!(rows.put(f.clone()));
                        reference.insert(f.id.unwrap_or_default(), f);
                    }
                    1 => {
                        let id = rng.random_range(1..next_id);
                        let f = feature(&mut rng, id);
                        assert!(rows.put(f.clone()));
                        reference.insert(id, f);
                    }
                    _ => {
                        let id = rng.random_range(1..next_id);
                        rows.remove(id);
                        reference.remove(&id);
                    }
                }
            }
            assert_eq!(rows.len(), reference.len(), "round {round}");
            for _ in 0..20 {
                let (x, y) = mercator::lonlat_to_mercator(
                    rng.random_range(117.8..118.5),
                    rng.random_range(34.7..35.2),
                );
                let q = [
                    x,
                    y,
                    x + rng.random_range(0.0..20_000.0),
                    y + rng.random_range(0.0..20_000.0),
                ];
                let filter = &filters[rng.random_range(0..filters.len())];
                let mut found: Vec<i64> = rows
                    .search(&q)
                    .into_iter()
                    .filter(|r| filter.matches(r))
                    .map(|r| r.id())
                    .collect();
                found.sort_unstable();
                let expected: Vec<i64> = reference
                    .values()
                    .filter(|f| meets(&merc_box(f), &q) && filter.matches(*f))
                    .filter_map(|f| f.id)
                    .collect();
                assert_eq!(found, expected, "round {round}, box {q:?}, {filter}");
            }
        }
        // Every feature reads back as it went in.
        for (id, f) in &reference {
            let row = rows.get(*id).expect("the row");
            assert_eq!(&row.feature(), f);
        }
        assert_eq!(rows.iter().count(), reference.len());
    }
}
