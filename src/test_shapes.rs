//! Shapes the unit tests of several modules share.

use geo::{Coord, LineString};

/// A closed star ring of `spikes` outer and as many inner corners: simple,
/// but with many near-radial edges, the worst case for checks and
/// generalisations that recurse or compare edge boxes.
pub fn star(spikes: usize, outer: f64, inner: f64) -> LineString<f64> {
    let n = spikes * 2;
    LineString::new(
        (0..=n)
            .map(|i| {
                let a = (i % n) as f64 * std::f64::consts::PI / spikes as f64;
                let r = if i % 2 == 0 { outer } else { inner };
                Coord {
                    x: r * a.cos(),
                    y: r * a.sin(),
                }
            })
            .collect(),
    )
}
