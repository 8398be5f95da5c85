//! Demand as plain data: population points (cell centroids) with their
//! weights, and a bucket grid that finds the points within a radius of a
//! site without a spatial index per request.

use crate::index::haversine_m;

/// Metres per degree of latitude (and of longitude at the equator).
const M_PER_DEG: f64 = 111_320.0;

/// Population points: one per cell of the population grid.
#[derive(Debug, Clone, Default)]
pub struct Demand {
    /// The cell's feature id.
    pub ids: Vec<i64>,
    /// [lon, lat] of the point people are counted at: the cell's
    /// population-weighted centroid where the grid records one, else its
    /// centroid.
    pub points: Vec<[f64; 2]>,
    /// People in the cell (≥ 0).
    pub weights: Vec<f64>,
    /// Index into `towns` of the cell's town (乡镇/街道), for the
    /// per-town figures of a scenario.
    pub town: Vec<u32>,
    /// Town names; entry 0 is "" (no town recorded).
    pub towns: Vec<String>,
}

impl Demand {
    pub fn new() -> Self {
        Self {
            towns: vec![String::new()],
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    pub fn push(&mut self, id: i64, point: [f64; 2], weight: f64, town: Option<&str>) {
        let t = match town {
            None | Some("") => 0,
            Some(name) => match self.towns.iter().position(|t| t == name) {
                Some(i) => i,
                None => {
                    self.towns.push(name.to_owned());
                    self.towns.len() - 1
                }
            },
        };
        self.ids.push(id);
        self.points.push(point);
        self.weights.push(weight);
        self.town.push(u32::try_from(t).unwrap_or(0));
    }

    pub fn total(&self) -> f64 {
        self.weights.iter().sum()
    }
}

/// Points bucketed on a lon/lat grid whose rows are `step` degrees of
/// latitude high: a radius query reads the few rows it spans with one
/// binary search each, then checks great-circle distances.
pub struct PointGrid {
    step: f64,
    /// Sorted (row, column) keys and the point each stands for.
    keys: Vec<(i32, i32, u32)>,
    points: Vec<[f64; 2]>,
}

impl PointGrid {
    /// A grid for queries of about `radius_m` (buckets of that size).
    pub fn new(points: &[[f64; 2]], radius_m: f64) -> Self {
        let step = (radius_m / M_PER_DEG).clamp(1e-4, 10.0);
        let mut keys: Vec<(i32, i32, u32)> = points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (r, c) = bucket(*p, step);
                (r, c, u32::try_from(i).unwrap_or(u32::MAX))
            })
            .collect();
        keys.sort_unstable();
        Self {
            step,
            keys,
            points: points.to_vec(),
        }
    }

    /// Every point within `radius_m` of `p`, with its distance, in no
    /// particular order.
    pub fn within(&self, p: [f64; 2], radius_m: f64, mut visit: impl FnMut(u32, f64)) {
        if self.keys.is_empty() || radius_m.is_nan() || radius_m < 0.0 {
            return;
        }
        let dlat = radius_m / M_PER_DEG;
        let lat_hi = (p[1].abs() + dlat).min(89.9);
        let dlon = (radius_m / (M_PER_DEG * lat_hi.to_radians().cos())).min(360.0);
        let (r0, c0) = bucket([p[0] - dlon, p[1] - dlat], self.step);
        let (r1, c1) = bucket([p[0] + dlon, p[1] + dlat], self.step);
        for r in r0..=r1 {
            let start = self.keys.partition_point(|k| (k.0, k.1) < (r, c0));
            for &(kr, kc, i) in &self.keys[start..] {
                if kr != r || kc > c1 {
                    break;
                }
                let q = self.points[i as usize];
                let d = haversine_m(p, q);
                if d <= radius_m {
                    visit(i, d);
                }
            }
        }
    }
}

fn bucket(p: [f64; 2], step: f64) -> (i32, i32) {
    // Saturating casts: a point far outside the world lands in an edge
    // bucket rather than wrapping.
    ((p[1] / step).floor() as i32, (p[0] / step).floor() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn the_grid_finds_exactly_the_points_a_scan_finds() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let points: Vec<[f64; 2]> = (0..2_000)
            .map(|_| {
                [
                    118.2 + rng.random::<f64>() * 0.2,
                    34.9 + rng.random::<f64>() * 0.2,
                ]
            })
            .collect();
        for radius in [50.0, 500.0, 2_000.0, 9_000.0] {
            let grid = PointGrid::new(&points, radius);
            for _ in 0..20 {
                let p = [
                    118.2 + rng.random::<f64>() * 0.2,
                    34.9 + rng.random::<f64>() * 0.2,
                ];
                let mut found = Vec::new();
                grid.within(p, radius, |i, _| found.push(i));
                found.sort_unstable();
                let scan: Vec<u32> = (0..points.len() as u32)
                    .filter(|&i| haversine_m(p, points[i as usize]) <= radius)
                    .collect();
                assert_eq!(found, scan, "radius {radius} around {p:?}");
            }
        }
    }

    #[test]
    fn towns_are_numbered_once() {
        let mut d = Demand::new();
        d.push(1, [0.0, 0.0], 5.0, Some("罗庄街道"));
        d.push(2, [0.0, 0.0], 5.0, None);
        d.push(3, [0.0, 0.0], 5.0, Some("罗庄街道"));
        assert_eq!(d.town, vec![1, 0, 1]);
        assert_eq!(d.total(), 15.0);
    }
}
