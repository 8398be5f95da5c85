//! Where a shelter must not be: inside a flood-risk zone, or within a
//! hazard source's evacuation radius (GB 51143-2015; the draft rules for
//! temporary shelters, art. 6, exclude floodways, spillways and flash-flood
//! zones and require safe distances from hazardous chemicals).

use geo::{BoundingRect, Contains, Point};
use serde_json::{json, Value};

use crate::index::haversine_m;

/// A flood-risk zone.
#[derive(Debug, Clone)]
pub struct Zone {
    pub id: i64,
    pub name: String,
    pub geometry: geo::Geometry<f64>,
    bbox: Option<geo::Rect<f64>>,
}

impl Zone {
    pub fn new(id: i64, name: String, geometry: geo::Geometry<f64>) -> Self {
        let bbox = geometry.bounding_rect();
        Self {
            id,
            name,
            geometry,
            bbox,
        }
    }
}

/// A hazard source with its evacuation radius.
#[derive(Debug, Clone)]
pub struct Hazard {
    pub id: i64,
    pub name: String,
    pub point: [f64; 2],
    pub radius_m: f64,
}

/// Why a site is ruled out.
#[derive(Debug, Clone, PartialEq)]
pub enum Exclusion {
    FloodZone {
        id: i64,
        name: String,
    },
    Hazard {
        id: i64,
        name: String,
        distance_m: f64,
        radius_m: f64,
    },
}

impl Exclusion {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::FloodZone { .. } => "flood_zone",
            Self::Hazard { .. } => "hazard",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Self::FloodZone { id, name } => format!("inside flood-risk zone {id} ({name})"),
            Self::Hazard {
                id,
                name,
                distance_m,
                radius_m,
            } => format!(
                "{distance_m:.0} m from hazard source {id} ({name}), inside its {radius_m:.0} m evacuation radius"
            ),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({ "reason": self.reason(), "detail": self.detail() });
        match self {
            Self::FloodZone { id, name } => {
                v["zone"] = json!(id);
                v["name"] = json!(name);
            }
            Self::Hazard {
                id,
                name,
                distance_m,
                radius_m,
            } => {
                v["hazard"] = json!(id);
                v["name"] = json!(name);
                v["distance_m"] = json!((distance_m * 10.0).round() / 10.0);
                v["radius_m"] = json!(radius_m);
            }
        }
        v
    }
}

/// The zones and radii a site must keep out of.
#[derive(Debug, Clone, Default)]
pub struct Exclusions {
    pub zones: Vec<Zone>,
    pub hazards: Vec<Hazard>,
}

impl Exclusions {
    /// The first rule `p` breaks: flood zones first (a flooded shelter
    /// fails everyone), then the nearest hazard whose radius covers it.
    pub fn check(&self, p: [f64; 2]) -> Option<Exclusion> {
        let point = Point::new(p[0], p[1]);
        for z in &self.zones {
            let in_box = z.bbox.is_some_and(|b| {
                p[0] >= b.min().x && p[0] <= b.max().x && p[1] >= b.min().y && p[1] <= b.max().y
            });
            if in_box && z.geometry.contains(&point) {
                return Some(Exclusion::FloodZone {
                    id: z.id,
                    name: z.name.clone(),
                });
            }
        }
        self.hazards
            .iter()
            .filter(|h| h.radius_m > 0.0)
            .map(|h| (haversine_m(p, h.point), h))
            .filter(|(d, h)| *d <= h.radius_m)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(d, h)| Exclusion::Hazard {
                id: h.id,
                name: h.name.clone(),
                distance_m: d,
                radius_m: h.radius_m,
            })
    }

    /// The zones as a FeatureCollection for the map: flood zones as they
    /// are, hazard radii as 64-sided polygons.
    pub fn to_geojson(&self) -> Value {
        let mut features: Vec<Value> = self
            .zones
            .iter()
            .map(|z| {
                json!({
                    "type": "Feature",
                    "geometry": geojson::Geometry::new(geojson::Value::from(&z.geometry)),
                    "properties": { "reason": "flood_zone", "id": z.id, "name": z.name },
                })
            })
            .collect();
        for h in self.hazards.iter().filter(|h| h.radius_m > 0.0) {
            features.push(json!({
                "type": "Feature",
                "geometry": { "type": "Polygon", "coordinates": [circle(h.point, h.radius_m, 64)] },
                "properties": { "reason": "hazard", "id": h.id, "name": h.name, "radius_m": h.radius_m },
            }));
        }
        json!({ "type": "FeatureCollection", "features": features })
    }
}

/// A closed ring of `n` points at `r` metres around `c` (spherical
/// destination formula; 1e-6° precision).
pub fn circle(c: [f64; 2], r: f64, n: usize) -> Vec<[f64; 2]> {
    const EARTH_M: f64 = 6_371_008.8;
    let (lon0, lat0) = (c[0].to_radians(), c[1].to_radians());
    let d = r / EARTH_M;
    let mut ring: Vec<[f64; 2]> = (0..n)
        .map(|k| {
            let b = 2.0 * std::f64::consts::PI * k as f64 / n as f64;
            let lat = (lat0.sin() * d.cos() + lat0.cos() * d.sin() * b.cos()).asin();
            let lon =
                lon0 + (b.sin() * d.sin() * lat0.cos()).atan2(d.cos() - lat0.sin() * lat.sin());
            let round = |v: f64| (v.to_degrees() * 1e6).round() / 1e6;
            [round(lon), round(lat)]
        })
        .collect();
    if let Some(first) = ring.first().copied() {
        ring.push(first);
    }
    ring
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x0: f64, y0: f64, side: f64) -> geo::Geometry<f64> {
        geo::Rect::new(
            geo::Coord { x: x0, y: y0 },
            geo::Coord {
                x: x0 + side,
                y: y0 + side,
            },
        )
        .to_polygon()
        .into()
    }

    #[test]
    fn flood_zones_come_before_hazards_and_the_nearest_hazard_is_named() {
        let ex = Exclusions {
            zones: vec![Zone::new(7, "沂河行洪区".into(), square(118.0, 35.0, 0.01))],
            hazards: vec![
                Hazard {
                    id: 1,
                    name: "far".into(),
                    point: [118.02, 35.005],
                    radius_m: 5_000.0,
                },
                Hazard {
                    id: 2,
                    name: "near".into(),
                    point: [118.021, 35.005],
                    radius_m: 1_000.0,
                },
            ],
        };
        assert_eq!(
            ex.check([118.005, 35.005]).map(|e| e.reason()),
            Some("flood_zone")
        );
        match ex.check([118.0208, 35.005]) {
            Some(Exclusion::Hazard { id, .. }) => assert_eq!(id, 2),
            other => panic!("expected hazard 2, got {other:?}"),
        }
        assert_eq!(ex.check([118.5, 35.5]), None);
    }

    #[test]
    fn a_circle_is_its_radius_away_from_the_centre() {
        let c = [118.3, 35.0];
        let ring = circle(c, 1_000.0, 64);
        assert_eq!(ring.len(), 65);
        assert_eq!(ring.first(), ring.last());
        for p in &ring {
            assert!((haversine_m(c, *p) - 1_000.0).abs() < 1.0);
        }
    }
}
