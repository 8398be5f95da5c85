//! Nearest features on the sphere: a best-first walk of a layer's R-tree
//! ordered by great-circle distance, so "the k nearest" is exact (no
//! candidate closer than the last one returned is ever left out) however
//! the features are spread, with no guessed search box.
//!
//! The tree is in Web Mercator, whose boxes map to longitude/latitude boxes
//! (both axes are monotonic). Each node is keyed by the least great-circle
//! distance from the query point to its box, each feature by its exact
//! distance; popping the smallest key first visits features in increasing
//! distance (Hjaltason & Samet, "Distance browsing in spatial databases",
//! 1999).

use std::{cmp::Ordering, collections::BinaryHeap, f64::consts::FRAC_PI_2, ops::ControlFlow};

use super::{
    mercator_to_lonlat,
    packed::{Box2, Children, NodeRef},
    Row, Rows, SpatialIndex,
};
use crate::{
    layers::LayerDef,
    store::{Query, Store, StoreError},
};

/// The mean Earth radius (IUGG), for great-circle distances.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres between two `[lon, lat]` points
/// (haversine: accurate at every distance, unlike the law of cosines at
/// a few metres).
pub fn haversine_m(a: [f64; 2], b: [f64; 2]) -> f64 {
    let (phi1, phi2) = (a[1].to_radians(), b[1].to_radians());
    let dphi = phi2 - phi1;
    let dlambda = (b[0] - a[0]).to_radians();
    let h = (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// Signed longitude difference `a − b` in radians, in (−π, π].
fn lon_delta(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(360.0);
    let d = if d > 180.0 { d - 360.0 } else { d };
    d.to_radians()
}

/// The least great-circle distance in metres from `p` to any point of the
/// longitude/latitude box `min`–`max` (0 inside it).
///
/// Inside the box's longitudes the nearest point is on `p`'s own meridian.
/// Outside, it lies on the nearer side meridian: along a meridian at
/// longitude offset Δλ the distance is least at latitude
/// atan(tan φ / cos Δλ) and grows away from it, so that latitude clamped to
/// the box is the nearest point (the box's parallels are no nearer: along a
/// parallel the distance grows with |Δλ|). Past a quarter turn of longitude
/// the bound is 0, which is safe (a node is only visited early).
pub fn distance_to_box_m(p: [f64; 2], min: [f64; 2], max: [f64; 2]) -> f64 {
    let (lon, lat) = (p[0], p[1]);
    let inside_lon = lon_delta(lon, min[0]) >= 0.0 && lon_delta(max[0], lon) >= 0.0;
    if inside_lon {
        let nearest = lat.clamp(min[1], max[1]);
        return EARTH_RADIUS_M * (lat - nearest).abs().to_radians();
    }
    let (to_min, to_max) = (lon_delta(lon, min[0]).abs(), lon_delta(lon, max[0]).abs());
    let (edge, dl) = if to_min <= to_max {
        (min[0], to_min)
    } else {
        (max[0], to_max)
    };
    if dl >= FRAC_PI_2 {
        return 0.0;
    }
    let best = (lat.to_radians().tan() / dl.cos()).atan().to_degrees();
    haversine_m(p, [edge, best.clamp(min[1], max[1])])
}

/// A step of the walk: a node by its distance bound, or a feature by its
/// exact distance.
enum Step<'a> {
    Node(NodeRef),
    Feature(Row<'a>),
}

struct Queued<'a> {
    distance: f64,
    step: Step<'a>,
}

impl PartialEq for Queued<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.distance.total_cmp(&other.distance) == Ordering::Equal
    }
}
impl Eq for Queued<'_> {}
impl PartialOrd for Queued<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued<'_> {
    /// Reversed, for a min-heap; at equal keys a feature before a node, so
    /// a feature on a node's boundary is not held back.
    fn cmp(&self, other: &Self) -> Ordering {
        other.distance.total_cmp(&self.distance).then_with(|| {
            let rank = |s: &Step<'_>| matches!(s, Step::Feature(_)) as u8;
            rank(&self.step).cmp(&rank(&other.step))
        })
    }
}

fn box_distance(p: [f64; 2], b: &Box2) -> f64 {
    let (min_lon, min_lat) = mercator_to_lonlat(b[0], b[1]);
    let (max_lon, max_lat) = mercator_to_lonlat(b[2], b[3]);
    // The projection round trip is not exact to the last bit: widen the
    // bound's slack by a millimetre so a node is never ranked past a
    // feature inside it.
    (distance_to_box_m(p, [min_lon, min_lat], [max_lon, max_lat]) - 1e-3).max(0.0)
}

impl SpatialIndex {
    /// Call `visit` with the features of `layer` in increasing great-circle
    /// distance (metres) from `p` (`[lon, lat]`), up to `max_distance_m`,
    /// until it breaks. Runs under the layer's read lock: keep `visit`
    /// short (filter and collect).
    pub fn nearest<B>(
        &self,
        layer: &str,
        p: [f64; 2],
        max_distance_m: f64,
        mut visit: impl FnMut(Row<'_>, f64) -> ControlFlow<B>,
    ) -> Option<B> {
        let slot = self.layers.get(layer)?;
        let rows = slot.read();
        let tree = rows.tree();
        let mut heap = BinaryHeap::new();
        if let Some(root) = tree.root() {
            heap.push(Queued {
                distance: 0.0,
                step: Step::Node(root),
            });
        }
        // Rows written since the tree was packed are not in it: each goes
        // in by its own distance.
        for r in rows.recent() {
            heap.push(Queued {
                distance: haversine_m(p, r.anchor()),
                step: Step::Feature(r),
            });
        }
        while let Some(Queued { distance, step }) = heap.pop() {
            if distance > max_distance_m {
                break;
            }
            match step {
                Step::Feature(r) => {
                    if let ControlFlow::Break(b) = visit(r, distance) {
                        return Some(b);
                    }
                }
                Step::Node(node) => match tree.children(node) {
                    Children::Rows(slots) => {
                        for r in slots.iter().filter_map(|s| rows.packed_row(*s)) {
                            heap.push(Queued {
                                distance: haversine_m(p, r.anchor()),
                                step: Step::Feature(r),
                            });
                        }
                    }
                    Children::Nodes { level, nodes } => {
                        for node in nodes {
                            let n = NodeRef { level, node };
                            heap.push(Queued {
                                distance: box_distance(p, &tree.node_box(n)),
                                step: Step::Node(n),
                            });
                        }
                    }
                },
            }
        }
        None
    }
}

/// The first ring a walk over a layer the store serves reads, in metres:
/// a dispatcher's "nearest ten" is usually found inside it.
const FIRST_RING_M: f64 = 2_000.0;
/// The most features one ring of such a walk reads: past it the search
/// is refused (narrow it) rather than hold a province's worth of rows.
pub const STORE_RING_LIMIT: u64 = 200_000;
/// Half the Earth's circumference: every point lies within it.
const HALF_EARTH_M: f64 = std::f64::consts::PI * EARTH_RADIUS_M;

impl SpatialIndex {
    /// [`SpatialIndex::nearest`] for any layer, held or not. A layer the
    /// store serves (too big to hold) is read ring by ring, each ring's
    /// radius twice the last, from the database's spatial index: the
    /// features of one ring come in increasing distance after the ring
    /// before, so `visit` sees the same order as on a held layer and a
    /// walk that breaks early reads only the rings it needed. A line or an
    /// area is placed, as in the held rows, by its anchor.
    pub async fn nearest_from<B>(
        &self,
        store: &dyn Store,
        layer: &LayerDef,
        p: [f64; 2],
        max_distance_m: f64,
        mut visit: impl FnMut(Row<'_>, f64) -> ControlFlow<B>,
    ) -> Result<Option<B>, StoreError> {
        if !self.in_store(&layer.name) {
            return Ok(self.nearest(&layer.name, p, max_distance_m, visit));
        }
        let last = max_distance_m.min(HALF_EARTH_M);
        let (mut inner, mut outer) = (0.0, FIRST_RING_M.min(last));
        loop {
            let query = Query::bbox(box_around(p, outer));
            // Counted first, so a ring too full is refused without reading
            // it (the count of a box is one index query).
            if store.count(layer, &query).await? > STORE_RING_LIMIT {
                return Err(too_many(layer, outer));
            }
            // Bounded again: rows may have come between the two reads.
            let bounded = Query {
                limit: Some(STORE_RING_LIMIT + 1),
                ..query
            };
            let found = store.features(layer, &bounded).await?;
            if found.len() as u64 > STORE_RING_LIMIT {
                return Err(too_many(layer, outer));
            }
            let closing = outer >= last;
            // Up to a ring's limit of rows placed and sorted: off the async
            // workers.
            let def = layer.clone();
            let (rows, ring) = tokio::task::spawn_blocking(move || {
                let (rows, _) = Rows::load(&def, found);
                let mut ring: Vec<(f64, i64)> = rows
                    .iter()
                    .map(|r| (haversine_m(p, r.anchor()), r.id()))
                    .filter(|(d, _)| *d >= inner && (*d < outer || (closing && *d <= outer)))
                    .collect();
                ring.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                (rows, ring)
            })
            .await
            .map_err(|e| StoreError::Interrupted {
                context: format!("searching {} ({e})", layer.name),
            })?;
            for (d, id) in ring {
                let Some(r) = rows.get(id) else { continue };
                if let ControlFlow::Break(b) = visit(r, d) {
                    return Ok(Some(b));
                }
            }
            if closing {
                return Ok(None);
            }
            (inner, outer) = (outer, (outer * 2.0).min(last));
        }
    }
}

fn too_many(layer: &LayerDef, outer: f64) -> StoreError {
    StoreError::TooMuch {
        what: format!(
            "more than {STORE_RING_LIMIT} features of `{}` lie within {outer:.0} m of the point: narrow the search (a smaller radius or limit)",
            layer.name
        ),
    }
}

/// A WGS84 `[west, south, east, north]` holding every point within `r`
/// metres of `p`: the whole span of longitudes when the circle reaches a
/// pole or the antimeridian.
fn box_around(p: [f64; 2], r: f64) -> [f64; 4] {
    let dlat = (r / EARTH_RADIUS_M).to_degrees();
    let (south, north) = (p[1] - dlat, p[1] + dlat);
    if south <= -90.0 || north >= 90.0 {
        return [-180.0, south.max(-90.0), 180.0, north.min(90.0)];
    }
    // A cap of angular radius δ about latitude φ spans asin(sin δ / cos φ)
    // of longitude each side; taking φ at the cap's poleward edge widens
    // that a little, so rounding never leaves a point outside.
    let farthest = south.abs().max(north.abs()).to_radians();
    let s = (r / EARTH_RADIUS_M).sin() / farthest.cos();
    if s >= 1.0 {
        return [-180.0, south, 180.0, north];
    }
    let dlon = s.asin().to_degrees() + 1e-9;
    let (west, east) = (p[0] - dlon, p[0] + dlon);
    if west < -180.0 || east > 180.0 {
        return [-180.0, south, 180.0, north];
    }
    [west, south, east, north]
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn haversine_matches_known_distances() {
        // One degree of latitude: πR/180.
        let d = haversine_m([118.3, 35.0], [118.3, 36.0]);
        assert!((d - EARTH_RADIUS_M.to_radians()).abs() < 1e-6, "{d}");
        assert_eq!(haversine_m([118.3, 35.0], [118.3, 35.0]), 0.0);
        // Linyi → Jinan, about 220 km as the crow flies.
        let d = haversine_m([118.356, 35.104], [117.000, 36.651]);
        assert!((200_000.0..230_000.0).contains(&d), "{d}");
    }

    #[test]
    fn the_box_around_a_circle_holds_every_point_of_it() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..5_000 {
            let p = [
                rng.random_range(-179.0..179.0),
                rng.random_range(-85.0..85.0),
            ];
            let r = 10f64.powf(rng.random_range(1.0..7.3));
            let [w, s, e, n] = box_around(p, r);
            assert!(w <= e && s <= n && (-180.0..=180.0).contains(&w) && e <= 180.0);
            // Points on the circle (and just inside it) in every direction.
            for k in 0..72 {
                let bearing = f64::from(k) * 5f64.to_radians();
                let q = destination(p, bearing, r * 0.999_999);
                assert!(
                    q[0] >= w && q[0] <= e && q[1] >= s && q[1] <= n,
                    "{q:?} ({r} m from {p:?}) outside {:?}",
                    [w, s, e, n]
                );
            }
        }
        // Near the antimeridian or a pole the box spans every longitude.
        assert_eq!(box_around([179.9, 0.0], 50_000.0)[0], -180.0);
        assert_eq!(box_around([10.0, 89.9], 50_000.0)[3], 90.0);
    }

    /// The point `d` metres from `p` on the initial bearing `b` (radians).
    fn destination(p: [f64; 2], b: f64, d: f64) -> [f64; 2] {
        let (phi, lambda) = (p[1].to_radians(), p[0].to_radians());
        let delta = d / EARTH_RADIUS_M;
        let phi2 = (phi.sin() * delta.cos() + phi.cos() * delta.sin() * b.cos()).asin();
        let lambda2 = lambda
            + (b.sin() * delta.sin() * phi.cos()).atan2(delta.cos() - phi.sin() * phi2.sin());
        let lon = (lambda2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
        [lon, phi2.to_degrees()]
    }

    #[test]
    fn the_box_bound_is_never_more_than_any_point_of_the_box() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let p = [
                rng.random_range(100.0..130.0),
                rng.random_range(-60.0..60.0),
            ];
            let a: [f64; 2] = [
                rng.random_range(100.0..130.0),
                rng.random_range(-60.0..60.0),
            ];
            let b: [f64; 2] = [
                rng.random_range(100.0..130.0),
                rng.random_range(-60.0..60.0),
            ];
            let min = [a[0].min(b[0]), a[1].min(b[1])];
            let max = [a[0].max(b[0]), a[1].max(b[1])];
            let bound = distance_to_box_m(p, min, max);
            // Sample the box densely, its edges included.
            let mut least = f64::INFINITY;
            for i in 0..=40 {
                for j in 0..=40 {
                    let q = [
                        min[0] + (max[0] - min[0]) * f64::from(i) / 40.0,
                        min[1] + (max[1] - min[1]) * f64::from(j) / 40.0,
                    ];
                    least = least.min(haversine_m(p, q));
                }
            }
            assert!(
                bound <= least + 1e-6,
                "bound {bound} > {least} for {p:?} {min:?} {max:?}"
            );
            // …and tight: the sampled minimum is within the grid's spacing.
            let spacing = haversine_m(min, max) / 40.0;
            assert!(
                least - bound <= spacing + 1.0,
                "bound {bound} loose against {least}"
            );
        }
    }
}

#[cfg(test)]
mod walk_tests {
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    use super::*;
    use crate::layers::{Catalog, Feature};

    #[test]
    fn the_walk_yields_every_feature_in_increasing_exact_distance() {
        let catalog = Catalog::builtin().expect("the built-in catalog");
        let layer = catalog.get("cameras").expect("cameras");
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let points: Vec<[f64; 2]> = (0..5_000)
            .map(|_| [rng.random_range(117.8..118.6), rng.random_range(34.7..35.3)])
            .collect();
        let features = points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut f = Feature::new(
                    geo::Point::new(p[0], p[1]),
                    json!({"name": format!("c{i}")})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                );
                f.id = Some(i as i64 + 1);
                f
            })
            .collect();
        let index = SpatialIndex::from_features(layer, features);
        for _ in 0..50 {
            let q = [rng.random_range(117.5..118.9), rng.random_range(34.5..35.5)];
            let mut brute: Vec<(f64, i64)> = points
                .iter()
                .enumerate()
                .map(|(i, p)| (haversine_m(q, *p), i as i64 + 1))
                .collect();
            brute.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut walked = Vec::new();
            index.nearest("cameras", q, f64::INFINITY, |e, d| {
                walked.push((d, e.id()));
                if walked.len() == 200 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            assert_eq!(walked.len(), 200);
            for (w, b) in walked.iter().zip(&brute) {
                assert!((w.0 - b.0).abs() < 1e-6, "{w:?} against {b:?}");
            }
        }
    }
}
