//! `GET /api/nearest`: the features of a layer nearest a point, ranked by
//! travel time, with the filters a dispatcher needs per layer.

use std::{ops::ControlFlow, sync::Arc};

use axum::{
    extract::{RawQuery, State},
    Json,
};
use serde::Serialize;
use serde_json::{json, Value};

use super::{
    feature_json,
    input::{self, Params},
    strings, text,
    travel::Travel,
    DispatchError, TEAMS,
};
use crate::{
    error::AppError,
    index::SpatialIndex,
    layers::{Feature, LayerDef},
    AppState,
};

pub const DEFAULT_LIMIT: u64 = 10;
pub const MAX_LIMIT: u64 = 100;
/// The farthest a search reaches: a province is about 700 km across.
pub const MAX_RADIUS_M: f64 = 2_000_000.0;

/// One feature found, with its distance and travel time.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub id: i64,
    pub name: Option<String>,
    /// Great-circle metres.
    pub distance_m: f64,
    pub eta_min: f64,
    #[serde(skip)]
    pub feature: Arc<Feature>,
}

/// The `limit` features of `layer` that `keep` accepts, within
/// `radius_m` of `p`, ranked by ETA (then distance, then id). Exact: the
/// walk visits features in increasing distance and stops only once no
/// feature further away could have a smaller ETA than the last one kept.
pub fn nearest(
    index: &SpatialIndex,
    travel: &Travel<'_>,
    layer: &str,
    p: [f64; 2],
    limit: usize,
    radius_m: f64,
    keep: impl Fn(&Feature) -> bool,
) -> Vec<Found> {
    let mut ranking = Ranking::new(travel, layer, limit, keep);
    if limit > 0 {
        index.nearest(layer, p, radius_m, |e, d| ranking.offer(e, d));
    }
    ranking.best
}

/// [`nearest`] over a layer held or served by the store (a layer too big
/// to hold is searched in the database, ring by ring).
pub async fn nearest_in(
    state: &AppState,
    travel: &Travel<'_>,
    layer: &LayerDef,
    p: [f64; 2],
    limit: usize,
    radius_m: f64,
    keep: impl Fn(&Feature) -> bool,
) -> Result<Vec<Found>, AppError> {
    let mut ranking = Ranking::new(travel, &layer.name, limit, keep);
    if limit > 0 {
        state
            .index
            .nearest_from(state.store.as_ref(), layer, p, radius_m, |e, d| {
                ranking.offer(e, d)
            })
            .await?;
    }
    Ok(ranking.best)
}

/// The best `limit` features offered so far, in rank order.
struct Ranking<'a, K> {
    travel: &'a Travel<'a>,
    limit: usize,
    by_type: bool,
    keep: K,
    best: Vec<Found>,
}

impl<'a, K: Fn(&Feature) -> bool> Ranking<'a, K> {
    fn new(travel: &'a Travel<'a>, layer: &str, limit: usize, keep: K) -> Self {
        Self {
            travel,
            limit,
            by_type: layer == TEAMS,
            keep,
            best: Vec::with_capacity(limit + 1),
        }
    }

    /// Take the feature `e`, `d` metres away (offered in increasing `d`);
    /// breaks once nothing further could rank among the best.
    fn offer(&mut self, e: crate::index::Row<'_>, d: f64) -> ControlFlow<()> {
        if self.best.len() == self.limit
            && self
                .best
                .last()
                .is_some_and(|worst| worst.eta_min < self.travel.least_eta_min(d))
        {
            return ControlFlow::Break(());
        }
        let feature = e.feature();
        if !(self.keep)(&feature) {
            return ControlFlow::Continue(());
        }
        let team_type = if self.by_type {
            text(&feature, "team_type")
        } else {
            None
        };
        let found = Found {
            id: e.id(),
            name: feature.name().map(str::to_owned),
            distance_m: d,
            eta_min: self.travel.eta_min(d, team_type),
            feature: Arc::new(feature),
        };
        let at = self.best.partition_point(|b| rank(b) <= rank(&found));
        self.best.insert(at, found);
        self.best.truncate(self.limit);
        ControlFlow::Continue(())
    }
}

fn rank(f: &Found) -> (f64, f64, i64) {
    (f.eta_min, f.distance_m, f.id)
}

/// What `/api/nearest` may filter on, per layer.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    pub capability: Option<String>,
    pub team_type: Option<String>,
    pub status: Option<String>,
    pub specialty: Option<String>,
    pub min_free: Option<i64>,
}

impl Filters {
    /// Whether a feature passes every filter given.
    pub fn keep(&self, layer: &LayerDef, f: &Feature) -> bool {
        let status_key = if layer.name == "experts" {
            "availability"
        } else {
            "status"
        };
        self.capability
            .as_deref()
            .is_none_or(|c| strings(f, "capabilities").contains(&c))
            && self
                .team_type
                .as_deref()
                .is_none_or(|t| text(f, "team_type") == Some(t))
            && self
                .status
                .as_deref()
                .is_none_or(|s| text(f, status_key) == Some(s))
            && self.specialty.as_deref().is_none_or(|s| {
                strings(f, "specialties")
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(s))
            })
            && self.min_free.is_none_or(|n| free_places(f) >= n)
    }
}

/// A shelter's free places: capacity − occupancy (0 when unknown).
pub fn free_places(f: &Feature) -> i64 {
    let get = |k: &str| f.properties.get(k).and_then(Value::as_i64).unwrap_or(0);
    (get("capacity") - get("occupancy")).max(0)
}

const PARAMS: &[&str] = &[
    "layer",
    "lon",
    "lat",
    "crs",
    "limit",
    "radius_m",
    "capability",
    "team_type",
    "status",
    "specialty",
    "min_free",
];

/// The filters of a request, each checked against the layer's schema.
fn filters(layer: &LayerDef, q: &Params) -> Result<Filters, DispatchError> {
    let values_of = |prop: &str| {
        layer
            .property(prop)
            .and_then(|p| p.values.clone())
            .unwrap_or_default()
    };
    let enum_param = |param: &str, prop: &str| -> Result<Option<String>, DispatchError> {
        let Some(v) = q.get(param) else {
            return Ok(None);
        };
        let values = values_of(prop);
        if layer.property(prop).is_none() {
            return Err(DispatchError::invalid(
                param,
                format!("does not apply to layer `{}`", layer.name),
            ));
        }
        super::input::choice(param, v, &values).map(Some)
    };
    let status_prop = if layer.name == "experts" {
        "availability"
    } else {
        "status"
    };
    let specialty = match q.get("specialty") {
        Some(_) if layer.property("specialties").is_none() => {
            return Err(DispatchError::invalid(
                "specialty",
                format!("does not apply to layer `{}`", layer.name),
            ))
        }
        s => s.map(str::to_owned),
    };
    let min_free = match q.count("min_free", 0..=10_000_000)? {
        Some(_) if layer.property("capacity").is_none() => {
            return Err(DispatchError::invalid(
                "min_free",
                format!("does not apply to layer `{}`", layer.name),
            ))
        }
        n => n.map(|n| n as i64),
    };
    Ok(Filters {
        capability: enum_param("capability", "capabilities")?,
        team_type: enum_param("team_type", "team_type")?,
        status: enum_param("status", status_prop)?,
        specialty,
        min_free,
    })
}

/// `GET /api/nearest?layer=&lon=&lat=&limit=&radius_m=&…`
pub async fn find(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, AppError> {
    let q = Params::parse(raw.as_deref(), PARAMS)?;
    let name = q
        .get("layer")
        .ok_or_else(|| DispatchError::invalid("layer", "is required"))?;
    let layer = crate::request::layer_or_404(&state, name)?;
    let p = input::point(&q)?;
    let limit = q.count("limit", 1..=MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT) as usize;
    let radius_m = match q.number("radius_m")? {
        Some(r) if r > 0.0 && r <= MAX_RADIUS_M => r,
        Some(r) => {
            return Err(DispatchError::invalid(
                "radius_m",
                format!("must be in (0, {MAX_RADIUS_M}] metres, got {r}"),
            )
            .into())
        }
        None => f64::INFINITY,
    };
    let f = filters(&layer, &q)?;
    if state.index.in_store(&layer.name) {
        let travel = Travel::new(&state.settings.dispatch);
        let found = nearest_in(&state, &travel, &layer, p, limit, radius_m, |x| {
            f.keep(&layer, x)
        })
        .await?;
        return Ok(Json(json!({ "results": results(&found) })));
    }
    let results = super::off_workers(move || {
        let travel = Travel::new(&state.settings.dispatch);
        let found = nearest(
            &state.index,
            &travel,
            &layer.name,
            p,
            limit,
            radius_m,
            |x| f.keep(&layer, x),
        );
        results(&found)
    })
    .await?;
    Ok(Json(json!({ "results": results })))
}

/// Found features as the API answers them.
pub fn results(found: &[Found]) -> Vec<Value> {
    found
        .iter()
        .map(|f| {
            json!({
                "id": f.id,
                "name": f.name,
                "distance_m": round1(f.distance_m),
                "eta_min": round1(f.eta_min),
                "feature": feature_json(&f.feature),
            })
        })
        .collect()
}

/// To a tenth (metres, minutes): what a dispatcher reads.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    use super::*;
    use crate::{index::haversine_m, layers::Catalog, settings::DispatchSettings};

    fn teams(n: usize, seed: u64) -> (Arc<LayerDef>, Vec<Feature>) {
        let catalog = Catalog::builtin().expect("catalog");
        let layer = Arc::clone(catalog.get(TEAMS).expect("teams"));
        let types = layer
            .property("team_type")
            .and_then(|p| p.values.clone())
            .unwrap_or_default();
        let caps = layer
            .property("capabilities")
            .and_then(|p| p.values.clone())
            .unwrap_or_default();
        let statuses = layer
            .property("status")
            .and_then(|p| p.values.clone())
            .unwrap_or_default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let features = (0..n)
            .map(|i| {
                let mut c: Vec<&String> = caps.iter().filter(|_| rng.random_bool(0.2)).collect();
                c.dedup();
                let mut f = Feature::new(
                    geo::Point::new(rng.random_range(117.9..118.5), rng.random_range(34.8..35.2)),
                    json!({
                        "name": format!("队{i}"),
                        "team_type": types[rng.random_range(0..types.len())],
                        "capabilities": c,
                        "status": statuses[rng.random_range(0..statuses.len())],
                    })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                );
                f.id = Some(i as i64 + 1);
                f
            })
            .collect();
        (layer, features)
    }

    /// The same ranking by a scan of every team.
    fn brute(
        features: &[Feature],
        travel: &Travel<'_>,
        p: [f64; 2],
        limit: usize,
        radius: f64,
        keep: impl Fn(&Feature) -> bool,
    ) -> Vec<(i64, f64)> {
        let mut all: Vec<(f64, f64, i64)> = features
            .iter()
            .filter(|f| keep(f))
            .filter_map(|f| {
                let geo::Geometry::Point(q) = f.geometry else {
                    return None;
                };
                let d = haversine_m(p, [q.x(), q.y()]);
                (d <= radius).then(|| {
                    (
                        travel.eta_min(d, text(f, "team_type")),
                        d,
                        f.id.unwrap_or(0),
                    )
                })
            })
            .collect();
        all.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.cmp(&b.2))
        });
        all.into_iter()
            .take(limit)
            .map(|(e, _, id)| (id, e))
            .collect()
    }

    #[test]
    fn the_ranking_equals_a_brute_force_scan_of_100_000_teams() {
        let (layer, features) = teams(100_000, 3);
        let index = SpatialIndex::from_features(&layer, features.clone());
        let settings = DispatchSettings::default();
        let travel = Travel::new(&settings);
        let caps = layer
            .property("capabilities")
            .and_then(|p| p.values.clone())
            .unwrap_or_default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for round in 0..60 {
            let p = [rng.random_range(117.7..118.7), rng.random_range(34.6..35.4)];
            let limit = rng.random_range(1..=30);
            let radius = if round % 3 == 0 {
                rng.random_range(500.0..20_000.0)
            } else {
                f64::INFINITY
            };
            let f = Filters {
                capability: (round % 2 == 0).then(|| caps[rng.random_range(0..caps.len())].clone()),
                status: (round % 4 != 3).then(|| "standby".to_owned()),
                ..Filters::default()
            };
            let got: Vec<(i64, f64)> = nearest(&index, &travel, TEAMS, p, limit, radius, |x| {
                f.keep(&layer, x)
            })
            .iter()
            .map(|x| (x.id, x.eta_min))
            .collect();
            let want = brute(&features, &travel, p, limit, radius, |x| f.keep(&layer, x));
            assert_eq!(got.len(), want.len(), "round {round}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.0, w.0, "round {round}: {got:?} vs {want:?}");
                assert!((g.1 - w.1).abs() < 1e-9);
            }
        }
    }
}
