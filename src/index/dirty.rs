//! Which tiles of a layer a change made stale: tile cache keys carry a
//! version per tile, not per layer, so one team moving on the map leaves
//! every other cached tile of its layer warm.
//!
//! Why: with one version per layer, each write made the whole layer's
//! cache cold, and under a steady stream of writes (teams reporting their
//! positions) every wall display's tile request became a cold build.

use foldhash::HashMap;

use super::{packed::Box2, EARTH_HALF_CIRCUMFERENCE};

/// The deepest zoom tracked tile by tile; deeper tiles take the version of
/// their ancestor at this zoom (a change there is in the ancestor too).
pub const DEEPEST: u8 = 22;
/// Past this many tiles at one zoom, a change bumps the whole zoom.
const TILES_PER_ZOOM: u64 = 64;
/// Past this many remembered tiles, the layer starts over from one version.
const MAX_TILES: usize = 200_000;
/// What a tile's features may reach beyond it (the cut's buffer, 64 of
/// 4,096 units), with room to spare: a change this near may show in it.
const MARGIN: f64 = 2.0 * 64.0 / 4096.0;

/// Versions of one layer's tiles.
#[derive(Debug)]
pub struct Dirty {
    /// The version every tile has at least.
    base: u64,
    /// Per zoom, the version every tile of that zoom has at least.
    zooms: [u64; DEEPEST as usize + 1],
    /// Tiles changed since `base`.
    tiles: HashMap<(u8, u32, u32), u64>,
    /// The last version handed out.
    last: u64,
}

impl Default for Dirty {
    fn default() -> Self {
        Self {
            base: 1,
            zooms: [0; DEEPEST as usize + 1],
            tiles: HashMap::default(),
            last: 1,
        }
    }
}

impl Dirty {
    /// The version of tile z/x/y.
    pub fn version(&self, z: u8, x: u32, y: u32) -> u64 {
        let (z, x, y) = if z > DEEPEST {
            let up = z - DEEPEST;
            (DEEPEST, x >> up, y >> up)
        } else {
            (z, x, y)
        };
        let tile = self.tiles.get(&(z, x, y)).copied().unwrap_or(0);
        self.base.max(self.zooms[usize::from(z)]).max(tile)
    }

    /// Every tile changed at once (a reload of the layer).
    pub fn all(&mut self) {
        self.last += 1;
        self.base = self.last;
        self.zooms = [0; DEEPEST as usize + 1];
        self.tiles.clear();
    }

    /// The tiles whose buffered area meets any of `boxes` (Web Mercator)
    /// changed. Called after the rows changed: a tile built from the new
    /// rows under the old version is only built once more.
    pub fn changed(&mut self, boxes: &[Box2]) {
        if boxes.is_empty() {
            return;
        }
        self.last += 1;
        let version = self.last;
        for z in 0..=DEEPEST {
            let mut spans = Vec::with_capacity(boxes.len());
            let mut count = 0u64;
            for b in boxes {
                let span = tile_span(z, b);
                count = count.saturating_add(span.count());
                spans.push(span);
                if count > TILES_PER_ZOOM {
                    break;
                }
            }
            if count > TILES_PER_ZOOM {
                self.zooms[usize::from(z)] = version;
                continue;
            }
            for s in spans {
                for x in s.x0..=s.x1 {
                    for y in s.y0..=s.y1 {
                        self.tiles.insert((z, x, y), version);
                    }
                }
            }
        }
        if self.tiles.len() > MAX_TILES {
            self.all();
        }
    }
}

/// Tiles `x0..=x1` × `y0..=y1` of one zoom.
#[derive(Debug, Clone, Copy)]
struct Span {
    x0: u32,
    x1: u32,
    y0: u32,
    y1: u32,
}

impl Span {
    fn count(&self) -> u64 {
        u64::from(self.x1 - self.x0 + 1) * u64::from(self.y1 - self.y0 + 1)
    }
}

/// The tiles of zoom `z` whose buffered area meets `b`.
fn tile_span(z: u8, b: &Box2) -> Span {
    let n = 1u64 << z;
    let size = 2.0 * EARTH_HALF_CIRCUMFERENCE / n as f64;
    let pad = MARGIN * size;
    let max = (n - 1) as f64;
    let col = |x: f64| {
        ((x + EARTH_HALF_CIRCUMFERENCE) / size)
            .floor()
            .clamp(0.0, max) as u32
    };
    let row = |y: f64| {
        ((EARTH_HALF_CIRCUMFERENCE - y) / size)
            .floor()
            .clamp(0.0, max) as u32
    };
    Span {
        x0: col(b[0] - pad),
        x1: col(b[2] + pad),
        // Rows count down from the north.
        y0: row(b[3] + pad),
        y1: row(b[1] - pad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{lonlat_to_mercator, mercator::tile_bounds};

    fn point(lon: f64, lat: f64) -> Box2 {
        let (x, y) = lonlat_to_mercator(lon, lat);
        [x, y, x, y]
    }

    #[test]
    fn a_point_stales_its_tile_and_neighbours_it_is_buffered_into_only() {
        let mut d = Dirty::default();
        let (x, y) = crate::tiles::tile_of(118.35, 35.05, 16);
        let far = d.version(16, x + 10, y);
        let mine = d.version(16, x, y);
        d.changed(&[point(118.35, 35.05)]);
        assert!(d.version(16, x, y) > mine, "its own tile");
        assert_eq!(d.version(16, x + 10, y), far, "a tile far away");
        // At every zoom, the tile holding the point is stale.
        for z in 0..=DEEPEST {
            let (tx, ty) = crate::tiles::tile_of(118.35, 35.05, z);
            assert!(d.version(z, tx, ty) > 1, "z{z}");
        }
        // Deeper than tracked: the ancestor's version.
        let (tx, ty) = crate::tiles::tile_of(118.35, 35.05, 24);
        assert_eq!(d.version(24, tx, ty), d.version(22, tx >> 2, ty >> 2));

        // A point just inside a tile's buffer stales that tile too.
        let (min, max) = tile_bounds(16, x + 3, y);
        let size = max[0] - min[0];
        let near = min[0] - 0.01 * size;
        let v = d.version(16, x + 3, y);
        d.changed(&[[near, min[1] + size / 2.0, near, min[1] + size / 2.0]]);
        assert!(d.version(16, x + 3, y) > v, "buffered into");
    }

    #[test]
    fn a_wide_change_stales_whole_zooms_and_memory_stays_bounded() {
        let mut d = Dirty::default();
        let (a, b) = (point(117.0, 34.0), point(119.5, 36.5));
        let wide = [a[0], a[1], b[2], b[3]];
        let (x, y) = crate::tiles::tile_of(118.3, 35.0, 18);
        let v = d.version(18, x, y);
        d.changed(&[wide]);
        assert!(d.version(18, x, y) > v);
        assert!(d.tiles.len() < 1000, "{} tiles remembered", d.tiles.len());
        for i in 0..(MAX_TILES as u32) {
            d.changed(&[point(100.0 + f64::from(i % 60_000) * 0.001, 30.0)]);
            assert!(d.tiles.len() <= MAX_TILES + 64);
        }
        let v = d.version(10, 5, 5);
        assert!(v >= 2, "every tile has moved on at least once: {v}");
    }
}
