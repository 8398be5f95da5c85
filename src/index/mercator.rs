//! Spherical Web Mercator (EPSG:3857) and the XYZ tile grid.

use std::f64::consts::PI;

use geo::MapCoords;

const RADIUS: f64 = 6_378_137.0;
/// Half the width of the projected world: x and y run over ±this.
pub const EARTH_HALF_CIRCUMFERENCE: f64 = PI * RADIUS;
/// The latitude where Web Mercator's square world ends.
const MAX_LAT: f64 = 85.051_128_779_806_59;

pub fn lonlat_to_mercator(lon: f64, lat: f64) -> (f64, f64) {
    let lat = lat.clamp(-MAX_LAT, MAX_LAT);
    let x = RADIUS * lon.to_radians();
    let y = RADIUS * (PI / 4.0 + lat.to_radians() / 2.0).tan().ln();
    (x, y)
}

pub fn mercator_to_lonlat(x: f64, y: f64) -> (f64, f64) {
    let lon = (x / RADIUS).to_degrees();
    let lat = (2.0 * (y / RADIUS).exp().atan() - PI / 2.0).to_degrees();
    (lon, lat)
}

pub fn project(g: &geo::Geometry<f64>) -> geo::Geometry<f64> {
    g.map_coords(|c| {
        let (x, y) = lonlat_to_mercator(c.x, c.y);
        geo::coord! { x: x, y: y }
    })
}

/// The Web Mercator box `(min, max)` of tile z/x/y.
pub fn tile_bounds(z: u8, x: u32, y: u32) -> ([f64; 2], [f64; 2]) {
    let size = 2.0 * EARTH_HALF_CIRCUMFERENCE / (1u64 << z.min(62)) as f64;
    let min_x = -EARTH_HALF_CIRCUMFERENCE + f64::from(x) * size;
    let max_y = EARTH_HALF_CIRCUMFERENCE - f64::from(y) * size;
    ([min_x, max_y - size], [min_x + size, max_y])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_round_trips_and_matches_known_values() {
        let (x, y) = lonlat_to_mercator(118.3, 35.0);
        let (lon, lat) = mercator_to_lonlat(x, y);
        assert!((lon - 118.3).abs() < 1e-9 && (lat - 35.0).abs() < 1e-9);
        // EPSG:3857 of 180°E is half the circumference.
        assert!((lonlat_to_mercator(180.0, 0.0).0 - 20_037_508.342_789_244).abs() < 1e-6);
    }

    #[test]
    fn tile_zero_is_the_whole_world_and_children_split_it() {
        let (min, max) = tile_bounds(0, 0, 0);
        assert!(
            (min[0] + EARTH_HALF_CIRCUMFERENCE).abs() < 1e-6
                && (max[1] - EARTH_HALF_CIRCUMFERENCE).abs() < 1e-6
        );
        let (cmin, cmax) = tile_bounds(1, 1, 1);
        assert!(
            cmin[0].abs() < 1e-6 && cmax[1].abs() < 1e-6,
            "tile 1/1/1 is the south-east quarter"
        );
    }
}
