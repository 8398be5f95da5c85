//! The one map's layers as planning's plain data: population cells as
//! demand points, shelters, flood zones and hazard radii, read from the
//! index at the moment of a request (sorted by id so that one state of
//! the map gives one answer).

use geo::Centroid;
use serde_json::Value;

use super::{
    coverage::Shelter,
    demand::Demand,
    exclusions::{Exclusions, Hazard, Zone},
    standards::Category,
};
use crate::{
    index::{anchor, SpatialIndex},
    layers::Feature,
};

pub const FLOOD_ZONES: &str = "flood_zones";
pub const HAZARDS: &str = "hazard_sources";
/// Evacuation radii beyond this are taken as typos (a major hazard
/// installation's planning zone is a few km).
const MAX_HAZARD_RADIUS_M: f64 = 50_000.0;

fn number(f: &Feature, key: &str) -> Option<f64> {
    f.properties
        .get(key)
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite())
}

fn label(f: &Feature, id: i64) -> String {
    f.name().map_or_else(|| format!("#{id}"), str::to_owned)
}

/// Where a feature's people are counted or walk to: a recorded
/// population-weighted centroid (`centroid_lon`, `centroid_lat`), else
/// the point itself or the centroid of the area.
pub fn point_of(f: &Feature) -> Option<[f64; 2]> {
    if let (Some(lon), Some(lat)) = (number(f, "centroid_lon"), number(f, "centroid_lat")) {
        return Some([lon, lat]);
    }
    match &f.geometry {
        geo::Geometry::Point(p) => Some([p.x(), p.y()]),
        g => g.centroid().map(|c| [c.x(), c.y()]),
    }
}

/// The cells of `layer` with their `population` (cells without one, or
/// with a negative one, count as empty).
pub fn demand(index: &SpatialIndex, layer: &str) -> Demand {
    let mut cells: Vec<(i64, [f64; 2], f64, Option<String>)> = index.each(layer, |it| {
        it.filter_map(|e| {
            let p = point_of(&e.feature)?;
            let w = number(&e.feature, "population").unwrap_or(0.0).max(0.0);
            let town = e
                .feature
                .properties
                .get("town")
                .and_then(Value::as_str)
                .map(str::to_owned);
            Some((e.id, p, w, town))
        })
        .collect()
    });
    cells.sort_unstable_by_key(|c| c.0);
    let mut d = Demand::new();
    for (id, p, w, town) in cells {
        d.push(id, p, w, town.as_deref());
    }
    d
}

/// The shelters of `layer` (any category), sorted by id, each checked
/// against the exclusions.
pub fn shelters(index: &SpatialIndex, layer: &str, exclusions: &Exclusions) -> Vec<Shelter> {
    let mut out: Vec<Shelter> = index.each(layer, |it| {
        it.filter_map(|e| {
            let f = &e.feature;
            let category = f
                .properties
                .get("category")
                .and_then(Value::as_str)
                .and_then(Category::parse)?;
            let point = point_of(f).unwrap_or_else(|| anchor(e));
            Some(Shelter {
                id: e.id,
                name: label(f, e.id),
                category,
                point,
                recorded_capacity: number(f, "capacity").filter(|c| *c >= 0.0),
                area_m2: number(f, "effective_area_m2").filter(|a| *a >= 0.0),
                excluded: exclusions.check(point),
            })
        })
        .collect()
    });
    out.sort_unstable_by_key(|s| s.id);
    out
}

/// Flood zones and hazard radii as they stand in the one map.
pub fn exclusions(index: &SpatialIndex) -> Exclusions {
    let mut zones: Vec<Zone> = index.each(FLOOD_ZONES, |it| {
        it.map(|e| Zone::new(e.id, label(&e.feature, e.id), e.feature.geometry.clone()))
            .collect()
    });
    zones.sort_unstable_by_key(|z| z.id);
    let mut hazards: Vec<Hazard> = index.each(HAZARDS, |it| {
        it.filter_map(|e| {
            let radius_m =
                number(&e.feature, "evacuation_radius_m")?.clamp(0.0, MAX_HAZARD_RADIUS_M);
            Some(Hazard {
                id: e.id,
                name: label(&e.feature, e.id),
                point: anchor(e),
                radius_m,
            })
        })
        .collect()
    });
    hazards.sort_unstable_by_key(|h| h.id);
    Exclusions { zones, hazards }
}
