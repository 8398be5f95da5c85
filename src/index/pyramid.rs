//! Point counts per zoom for the low zooms of big point layers: for each
//! zoom up to [`MAX_ZOOM`], the points of a layer summed in cells of 1/64 of
//! a tile (the tile buffer's width), each with the sum of its points'
//! positions. A clustered tile adds up the 66 × 66 cells of its buffered
//! extent instead of visiting every point in it, so a z8 tile of ten
//! million points costs what one of ten thousand does. Kept in step with
//! every write (positions in centimetres, so adding and taking away is
//! exact).

use std::collections::HashMap;

use super::EARTH_HALF_CIRCUMFERENCE;

/// The highest zoom with counts: above it a tile holds few enough points
/// to visit.
pub const MAX_ZOOM: u8 = 12;
/// Cells across a tile: 64, so one cell is the 64-unit tile buffer.
pub const PER_TILE: u32 = 64;
/// Layers below this many points visit their points (counting would cost
/// more memory than it saves time).
pub const MIN_POINTS: usize = 50_000;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cell {
    pub n: u64,
    /// Sums of the members' Web Mercator x and y, in centimetres.
    pub sx: i64,
    pub sy: i64,
}

#[derive(Debug, Default)]
pub struct Pyramid {
    /// foldhash: a tile reads 66 × 66 cells, a write touches 13.
    levels: Vec<HashMap<u64, Cell, foldhash::fast::RandomState>>,
}

/// Centimetres of a Mercator coordinate.
fn cm(v: f64) -> i64 {
    (v * 100.0).round() as i64
}

/// The cell of a Mercator point at zoom `z` (x from the west, y from the
/// north, as tiles count).
pub fn cell_of(z: u8, p: [f64; 2]) -> Option<(u32, u32)> {
    let cells = f64::from(PER_TILE) * f64::from(1u32 << z);
    let size = 2.0 * EARTH_HALF_CIRCUMFERENCE / cells;
    let cx = ((p[0] + EARTH_HALF_CIRCUMFERENCE) / size).floor();
    let cy = ((EARTH_HALF_CIRCUMFERENCE - p[1]) / size).floor();
    let top = cells - 1.0;
    (cx.is_finite() && cy.is_finite())
        .then(|| (cx.clamp(0.0, top) as u32, cy.clamp(0.0, top) as u32))
}

fn key(cx: u32, cy: u32) -> u64 {
    (u64::from(cx) << 32) | u64::from(cy)
}

impl Pyramid {
    pub fn new() -> Self {
        Self {
            levels: (0..=MAX_ZOOM).map(|_| HashMap::default()).collect(),
        }
    }

    /// Count a point in (`sign` 1) or out (`sign` -1).
    pub fn add(&mut self, p: [f64; 2], sign: i64) {
        let (x, y) = (cm(p[0]), cm(p[1]));
        for (z, level) in self.levels.iter_mut().enumerate() {
            let Some((cx, cy)) = cell_of(z as u8, p) else {
                return;
            };
            let k = key(cx, cy);
            let c = level.entry(k).or_default();
            c.n = c.n.saturating_add_signed(sign);
            c.sx += sign * x;
            c.sy += sign * y;
            if c.n == 0 {
                level.remove(&k);
            }
        }
    }

    /// The cell `(cx, cy)` at zoom `z` (empty when no point is there).
    pub fn cell(&self, z: u8, cx: i64, cy: i64) -> Cell {
        let (Ok(cx), Ok(cy)) = (u32::try_from(cx), u32::try_from(cy)) else {
            return Cell::default();
        };
        self.levels
            .get(usize::from(z))
            .and_then(|l| l.get(&key(cx, cy)))
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn counts_follow_adds_and_removals_exactly() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let points: Vec<[f64; 2]> = (0..5000)
            .map(|_| {
                let (x, y) = super::super::lonlat_to_mercator(
                    rng.random_range(117.9..118.6),
                    rng.random_range(34.7..35.3),
                );
                [x, y]
            })
            .collect();
        let mut p = Pyramid::new();
        for q in &points {
            p.add(*q, 1);
        }
        for q in points.iter().step_by(2) {
            p.add(*q, -1);
        }
        let kept: Vec<&[f64; 2]> = points.iter().skip(1).step_by(2).collect();
        for z in [0u8, 5, 9, 12] {
            let total: u64 = p.levels[usize::from(z)].values().map(|c| c.n).sum();
            assert_eq!(total, kept.len() as u64, "zoom {z}");
            // One cell's sums are its members' sums, exactly.
            let (cx, cy) = cell_of(z, *kept[0]).expect("a cell");
            let members: Vec<&&[f64; 2]> = kept
                .iter()
                .filter(|q| cell_of(z, ***q) == Some((cx, cy)))
                .collect();
            let c = p.cell(z, i64::from(cx), i64::from(cy));
            assert_eq!(c.n, members.len() as u64);
            assert_eq!(c.sx, members.iter().map(|q| cm(q[0])).sum::<i64>());
        }
        for q in kept {
            p.add(*q, -1);
        }
        assert!(p.levels.iter().all(HashMap::is_empty));
    }
}
