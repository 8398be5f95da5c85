//! Chinese web-map datums: GCJ-02 (AMap, Tencent) and BD-09 (Baidu) to and
//! from WGS84.
//!
//! onemap stores WGS84 (EPSG:4326; CGCS2000 is treated as equal, the two
//! differ by centimetres). GCJ-02 is the obfuscated datum that Chinese web
//! maps must publish; its forward transform is the public algorithm, the
//! inverse has no closed form and is solved by fixed-point iteration to well
//! under a millimetre. Outside China's rough bounding box both are identity,
//! as every published implementation does.

use std::{f64::consts::PI, fmt, str::FromStr};

use geo::MapCoords;
use serde::{Deserialize, Serialize};

/// Krasovsky 1940 semi-major axis and eccentricity², as the GCJ-02 algorithm uses.
const A: f64 = 6_378_245.0;
const EE: f64 = 0.006_693_421_622_965_943;
/// BD-09's own rotation constant (x_pi = π·3000/180).
const X_PI: f64 = PI * 3000.0 / 180.0;

/// A coordinate reference system a client may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Crs {
    /// WGS84 / CGCS2000 longitude, latitude: what onemap stores.
    #[default]
    Wgs84,
    /// GCJ-02, the datum of AMap and Tencent maps.
    Gcj02,
    /// BD-09, the datum of Baidu maps.
    Bd09,
}

impl Crs {
    /// Turn one coordinate in this CRS into WGS84.
    pub fn to_wgs84(self, lon: f64, lat: f64) -> (f64, f64) {
        match self {
            Crs::Wgs84 => (lon, lat),
            Crs::Gcj02 => gcj02_to_wgs84(lon, lat),
            Crs::Bd09 => {
                // Baidu's published inverse is good to ~1e-6°; refine it.
                let start = bd09_to_gcj02(lon, lat);
                let (x, y) = invert(gcj02_to_bd09, (lon, lat), start);
                gcj02_to_wgs84(x, y)
            }
        }
    }

    /// Turn one WGS84 coordinate into this CRS.
    pub fn from_wgs84(self, lon: f64, lat: f64) -> (f64, f64) {
        match self {
            Crs::Wgs84 => (lon, lat),
            Crs::Gcj02 => wgs84_to_gcj02(lon, lat),
            Crs::Bd09 => {
                let (x, y) = wgs84_to_gcj02(lon, lat);
                gcj02_to_bd09(x, y)
            }
        }
    }

    /// Every coordinate of `geometry` from this CRS into WGS84.
    pub fn geometry_to_wgs84(self, geometry: &geo::Geometry<f64>) -> geo::Geometry<f64> {
        if self == Crs::Wgs84 {
            return geometry.clone();
        }
        geometry.map_coords(|c| {
            let (x, y) = self.to_wgs84(c.x, c.y);
            geo::coord! { x: x, y: y }
        })
    }

    /// Every coordinate of a WGS84 `geometry` into this CRS.
    pub fn geometry_from_wgs84(self, geometry: &geo::Geometry<f64>) -> geo::Geometry<f64> {
        if self == Crs::Wgs84 {
            return geometry.clone();
        }
        geometry.map_coords(|c| {
            let (x, y) = self.from_wgs84(c.x, c.y);
            geo::coord! { x: x, y: y }
        })
    }
}

impl fmt::Display for Crs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Crs::Wgs84 => "wgs84",
            Crs::Gcj02 => "gcj02",
            Crs::Bd09 => "bd09",
        })
    }
}

impl FromStr for Crs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "wgs84" | "epsg:4326" | "cgcs2000" | "epsg:4490" => Ok(Crs::Wgs84),
            "gcj02" | "gcj-02" => Ok(Crs::Gcj02),
            "bd09" | "bd-09" | "bd09ll" => Ok(Crs::Bd09),
            other => Err(format!(
                "unknown crs `{other}`: expected wgs84, gcj02 or bd09"
            )),
        }
    }
}

/// The rough box every published GCJ-02 implementation uses to decide
/// whether a point is shifted at all.
pub fn out_of_china(lon: f64, lat: f64) -> bool {
    !(72.004..=137.8347).contains(&lon) || !(0.8293..=55.8271).contains(&lat)
}

fn delta(lon: f64, lat: f64) -> (f64, f64) {
    let x = lon - 105.0;
    let y = lat - 35.0;
    let mut dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    dlat += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    dlat += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    dlat += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    let mut dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    dlon += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    dlon += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    dlon += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;

    let rad_lat = lat / 180.0 * PI;
    let magic = 1.0 - EE * rad_lat.sin() * rad_lat.sin();
    let sqrt_magic = magic.sqrt();
    let dlat = (dlat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrt_magic) * PI);
    let dlon = (dlon * 180.0) / (A / sqrt_magic * rad_lat.cos() * PI);
    (dlon, dlat)
}

/// WGS84 → GCJ-02 (the public forward algorithm).
pub fn wgs84_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    if out_of_china(lon, lat) {
        return (lon, lat);
    }
    let (dlon, dlat) = delta(lon, lat);
    (lon + dlon, lat + dlat)
}

/// GCJ-02 → WGS84 by fixed-point iteration on the forward transform.
///
/// The shift varies by less than 1e-5 of itself per metre, so each step gains
/// about five decimal digits; a few steps reach 1e-10° (≈ 0.01 mm).
pub fn gcj02_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    if out_of_china(lon, lat) {
        return (lon, lat);
    }
    invert(wgs84_to_gcj02, (lon, lat), (lon, lat))
}

/// Solve `forward(p) = target` for p, starting at `start`, for transforms
/// that are the identity plus a small, slowly varying shift.
fn invert(
    forward: fn(f64, f64) -> (f64, f64),
    target: (f64, f64),
    start: (f64, f64),
) -> (f64, f64) {
    let (mut x, mut y) = start;
    for _ in 0..10 {
        let (fx, fy) = forward(x, y);
        let (ex, ey) = (fx - target.0, fy - target.1);
        x -= ex;
        y -= ey;
        if ex.abs() < 1e-11 && ey.abs() < 1e-11 {
            break;
        }
    }
    (x, y)
}

/// GCJ-02 → BD-09.
pub fn gcj02_to_bd09(lon: f64, lat: f64) -> (f64, f64) {
    let z = (lon * lon + lat * lat).sqrt() + 0.00002 * (lat * X_PI).sin();
    let theta = lat.atan2(lon) + 0.000003 * (lon * X_PI).cos();
    (z * theta.cos() + 0.0065, z * theta.sin() + 0.006)
}

/// BD-09 → GCJ-02 (Baidu's published inverse).
pub fn bd09_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    let x = lon - 0.0065;
    let y = lat - 0.006;
    let z = (x * x + y * y).sqrt() - 0.00002 * (y * X_PI).sin();
    let theta = y.atan2(x) - 0.000003 * (x * X_PI).cos();
    (z * theta.cos(), z * theta.sin())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: (f64, f64), b: (f64, f64), tol: f64) -> bool {
        (a.0 - b.0).abs() <= tol && (a.1 - b.1).abs() <= tol
    }

    // Reference values published with wandergis/coordtransform (test/app.js),
    // the implementation most Chinese GIS code is checked against.
    #[test]
    fn forward_transforms_match_published_reference_points() {
        assert!(close(
            wgs84_to_gcj02(116.404, 39.915),
            (116.41024449916938, 39.91640428150164),
            1e-12
        ));
        assert!(close(
            gcj02_to_bd09(116.404, 39.915),
            (116.41036949371029, 39.92133699351021),
            1e-12
        ));
        assert!(close(
            bd09_to_gcj02(116.404, 39.915),
            (116.39762729119315, 39.90865673957631),
            1e-12
        ));
    }

    #[test]
    fn inverse_is_close_to_the_published_one_step_approximation() {
        // coordtransform's gcj02towgs84 is a single subtraction, good to a
        // few metres; the iterative inverse must agree to that level.
        let ours = gcj02_to_wgs84(116.404, 39.915);
        assert!(close(ours, (116.39775550083061, 39.91359571849836), 5e-5));
    }

    #[test]
    fn luozhuang_seat_matches_the_shared_data_conversion() {
        // shared/data/SOURCE.md: Luozhuang's `cp` 118.284786, 34.996741 in
        // GCJ-02 becomes 118.279171, 34.997384 in WGS84.
        let (x, y) = gcj02_to_wgs84(118.284786, 34.996741);
        assert!(close((x, y), (118.279171, 34.997384), 1e-6), "{x} {y}");
    }

    #[test]
    fn round_trips_are_sub_millimetre_across_china() {
        for lon in (74..=134).step_by(5) {
            for lat in (19..=53).step_by(4) {
                let p = (lon as f64 + 0.123_456, lat as f64 + 0.654_321);
                for crs in [Crs::Gcj02, Crs::Bd09] {
                    let shifted = crs.from_wgs84(p.0, p.1);
                    assert!(!close(shifted, p, 1e-4), "{crs} must shift {p:?}");
                    let back = crs.to_wgs84(shifted.0, shifted.1);
                    assert!(close(back, p, 1e-8), "{crs} {p:?} -> {back:?}");
                }
            }
        }
    }

    #[test]
    fn points_outside_china_are_not_shifted() {
        assert_eq!(wgs84_to_gcj02(2.35, 48.85), (2.35, 48.85));
        assert_eq!(gcj02_to_wgs84(-74.0, 40.7), (-74.0, 40.7));
    }

    #[test]
    fn crs_names_parse() {
        assert_eq!("GCJ02".parse::<Crs>(), Ok(Crs::Gcj02));
        assert_eq!("bd09".parse::<Crs>(), Ok(Crs::Bd09));
        assert_eq!("epsg:4326".parse::<Crs>(), Ok(Crs::Wgs84));
        assert!("utm".parse::<Crs>().is_err());
    }
}
