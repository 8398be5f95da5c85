//! The one map's layers as planning's plain data: population cells as
//! demand points, shelters, flood zones and hazard radii, read from the
//! index at the moment of a request (sorted by id so that one state of
//! the map gives one answer).

use geo::Centroid;

use super::{
    coverage::Shelter,
    demand::Demand,
    exclusions::{Exclusions, Hazard, Zone},
    standards::Category,
};
use crate::index::{Row, SpatialIndex};

pub const FLOOD_ZONES: &str = "flood_zones";
pub const HAZARDS: &str = "hazard_sources";
/// Evacuation radii beyond this are taken as typos (a major hazard
/// installation's planning zone is a few km).
const MAX_HAZARD_RADIUS_M: f64 = 50_000.0;

fn number(r: &Row, key: &str) -> Option<f64> {
    r.number(key).filter(|v| v.is_finite())
}

fn label(r: &Row) -> String {
    r.name()
        .map_or_else(|| format!("#{}", r.id()), str::to_owned)
}

/// Where a feature's people are counted or walk to: a recorded
/// population-weighted centroid (`centroid_lon`, `centroid_lat`), else
/// the point itself or the centroid of the area.
pub fn point_of(r: &Row) -> Option<[f64; 2]> {
    if let (Some(lon), Some(lat)) = (number(r, "centroid_lon"), number(r, "centroid_lat")) {
        return Some([lon, lat]);
    }
    match r.lonlat() {
        Some(p) => Some(p),
        None => r.geometry().centroid().map(|c| [c.x(), c.y()]),
    }
}

/// The cells of `layer` with their `population` (cells without one, or
/// with a negative one, count as empty).
pub fn demand(index: &SpatialIndex, layer: &str) -> Demand {
    let mut cells: Vec<(i64, [f64; 2], f64, Option<String>)> = index.each(layer, |it| {
        it.filter_map(|e| {
            let p = point_of(&e)?;
            let w = number(&e, "population").unwrap_or(0.0).max(0.0);
            let town = e.text("town").map(str::to_owned);
            Some((e.id(), p, w, town))
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
            let category = e.text("category").and_then(Category::parse)?;
            let point = point_of(&e).unwrap_or_else(|| e.anchor());
            Some(Shelter {
                id: e.id(),
                name: label(&e),
                category,
                point,
                recorded_capacity: number(&e, "capacity").filter(|c| *c >= 0.0),
                area_m2: number(&e, "effective_area_m2").filter(|a| *a >= 0.0),
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
        it.map(|e| Zone::new(e.id(), label(&e), e.geometry().into_owned()))
            .collect()
    });
    zones.sort_unstable_by_key(|z| z.id);
    let mut hazards: Vec<Hazard> = index.each(HAZARDS, |it| {
        it.filter_map(|e| {
            let radius_m = number(&e, "evacuation_radius_m")?.clamp(0.0, MAX_HAZARD_RADIUS_M);
            Some(Hazard {
                id: e.id(),
                name: label(&e),
                point: e.anchor(),
                radius_m,
            })
        })
        .collect()
    });
    hazards.sort_unstable_by_key(|h| h.id);
    Exclusions { zones, hazards }
}
