//! Douglas–Peucker generalisation of lines and rings for tiles, with an
//! explicit stack instead of recursion: geo's recursive version overflowed
//! a worker's stack on a 24,000-vertex star (the process aborted on one tile
//! request), since its depth grows with the vertices a shape keeps.

use geo::{Coord, LineString, MultiLineString, MultiPolygon, Polygon};

/// The coordinates of `line` that Douglas–Peucker keeps at tolerance
/// `epsilon`: the ends, and every vertex farther than `epsilon` from the
/// chord of the span it splits.
pub fn line(coords: &[Coord<f64>], epsilon: f64) -> Vec<Coord<f64>> {
    let n = coords.len();
    if n < 3 {
        return coords.to_vec();
    }
    let mut keep = vec![false; n];
    keep[0] = true;
    keep[n - 1] = true;
    let mut spans = vec![(0usize, n - 1)];
    while let Some((a, b)) = spans.pop() {
        if b <= a + 1 {
            continue;
        }
        let (mut far, mut far_d) = (a, -1.0f64);
        for (i, c) in coords.iter().enumerate().take(b).skip(a + 1) {
            let d = segment_distance(*c, coords[a], coords[b]);
            if d > far_d {
                (far, far_d) = (i, d);
            }
        }
        if far_d > epsilon {
            keep[far] = true;
            spans.push((a, far));
            spans.push((far, b));
        }
    }
    coords
        .iter()
        .zip(keep)
        .filter_map(|(c, k)| k.then_some(*c))
        .collect()
}

pub fn lines(m: &MultiLineString<f64>, epsilon: f64) -> MultiLineString<f64> {
    MultiLineString::new(
        m.iter()
            .map(|l| LineString::new(line(&l.0, epsilon)))
            .collect(),
    )
}

/// Each ring generalised; a ring left with fewer than four positions is no
/// area at this zoom and is dropped (a polygon whose exterior goes, whole).
pub fn polygons(m: &MultiPolygon<f64>, epsilon: f64) -> MultiPolygon<f64> {
    let ring = |r: &LineString<f64>| {
        let kept = line(&r.0, epsilon);
        (kept.len() >= 4).then(|| LineString::new(kept))
    };
    MultiPolygon::new(
        m.iter()
            .filter_map(|p| {
                let exterior = ring(p.exterior())?;
                Some(Polygon::new(
                    exterior,
                    p.interiors().iter().filter_map(ring).collect(),
                ))
            })
            .collect(),
    )
}

/// Distance from `p` to the segment `a`–`b` (to `a` when they coincide).
fn segment_distance(p: Coord<f64>, a: Coord<f64>, b: Coord<f64>) -> f64 {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.x - a.x) * dx + (p.y - a.y) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (cx, cy) = (a.x + t * dx - p.x, a.y + t * dy - p.y);
    (cx * cx + cy * cy).sqrt()
}

#[cfg(test)]
mod tests {
    use geo::Simplify;

    use super::*;

    #[test]
    fn keeps_what_geos_recursive_version_keeps() {
        let zigzag: Vec<Coord<f64>> = (0..500)
            .map(|i| Coord {
                x: i as f64,
                y: ((i * 37) % 11) as f64 * if i % 3 == 0 { 0.1 } else { 1.0 },
            })
            .collect();
        for eps in [0.05, 0.5, 2.0] {
            let ours = line(&zigzag, eps);
            let theirs = LineString::new(zigzag.clone()).simplify(eps);
            assert_eq!(ours, theirs.0, "epsilon {eps}");
        }
    }

    #[test]
    fn a_star_of_24000_vertices_does_not_exhaust_the_stack() {
        let ring = crate::test_shapes::star(12_000, 1000.0, 400.0);
        let star = MultiPolygon::new(vec![Polygon::new(ring, vec![])]);
        // On a small stack, as a worker thread has: no overflow, and the
        // star keeps its points at a fine tolerance and loses them at a
        // coarse one.
        let (fine, coarse) = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || (polygons(&star, 0.01), polygons(&star, 2000.0)))
            .expect("a thread")
            .join()
            .expect("no overflow");
        assert_eq!(fine.0[0].exterior().0.len(), 24_001);
        assert!(
            coarse.0.is_empty(),
            "a star smaller than the tolerance is no area"
        );
    }
}
