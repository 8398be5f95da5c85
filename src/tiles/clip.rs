//! Clipping areas to the buffered tile in one pass per ring
//! (Sutherland–Hodgman against the four sides of the box).
//!
//! A general boolean intersection costs O(n log n) with a large constant on
//! every 10,000-vertex district ring, for every tile the district meets. The
//! clip box is convex, so clipping each ring against its four half-planes is
//! exact in area and linear in time. Where a concave ring leaves and
//! re-enters the box, the result runs along the box's edge: a zero-area
//! seam that lies in the tile's buffer, outside the drawn tile, as in every
//! vector tiler that clips this way.

use geo::{Coord, LineString, MultiPolygon, Polygon, Rect};

/// The part of `polys` inside `rect`; `None` when nothing is left.
pub fn clip_polygons(polys: &MultiPolygon<f64>, rect: &Rect<f64>) -> Option<MultiPolygon<f64>> {
    let out: Vec<Polygon<f64>> = polys.iter().filter_map(|p| clip_polygon(p, rect)).collect();
    (!out.is_empty()).then(|| MultiPolygon::new(out))
}

fn clip_polygon(p: &Polygon<f64>, rect: &Rect<f64>) -> Option<Polygon<f64>> {
    let exterior = clip_ring(p.exterior(), rect)?;
    let holes = p
        .interiors()
        .iter()
        .filter_map(|h| clip_ring(h, rect))
        .collect();
    Some(Polygon::new(exterior, holes))
}

/// One closed ring clipped to the box, closed again; `None` when fewer than
/// three positions are left.
fn clip_ring(ring: &LineString<f64>, rect: &Rect<f64>) -> Option<LineString<f64>> {
    let (min, max) = (rect.min(), rect.max());
    // Open ring (no repeated closing position) in, open ring out.
    let mut points: Vec<Coord<f64>> = ring.0.clone();
    if points.len() > 1 && points.first() == points.last() {
        points.pop();
    }
    type Side = (
        fn(Coord<f64>, f64) -> bool,
        fn(Coord<f64>, Coord<f64>, f64) -> Coord<f64>,
        f64,
    );
    let sides: [Side; 4] = [
        (|c, v| c.x >= v, at_x, min.x),
        (|c, v| c.x <= v, at_x, max.x),
        (|c, v| c.y >= v, at_y, min.y),
        (|c, v| c.y <= v, at_y, max.y),
    ];
    for (inside, cross, v) in sides {
        if points.is_empty() {
            return None;
        }
        let mut next = Vec::with_capacity(points.len() + 4);
        let mut prev = points[points.len() - 1];
        for &cur in &points {
            match (inside(cur, v), inside(prev, v)) {
                (true, true) => next.push(cur),
                (true, false) => {
                    next.push(cross(prev, cur, v));
                    next.push(cur);
                }
                (false, true) => next.push(cross(prev, cur, v)),
                (false, false) => {}
            }
            prev = cur;
        }
        points = next;
    }
    points.dedup();
    if points.len() > 1 && points.first() == points.last() {
        points.pop();
    }
    if points.len() < 3 {
        return None;
    }
    points.push(points[0]);
    Some(LineString::new(points))
}

/// Where segment a–b crosses the vertical line x = v.
fn at_x(a: Coord<f64>, b: Coord<f64>, v: f64) -> Coord<f64> {
    let t = (v - a.x) / (b.x - a.x);
    Coord {
        x: v,
        y: a.y + t * (b.y - a.y),
    }
}

/// Where segment a–b crosses the horizontal line y = v.
fn at_y(a: Coord<f64>, b: Coord<f64>, v: f64) -> Coord<f64> {
    let t = (v - a.y) / (b.y - a.y);
    Coord {
        x: a.x + t * (b.x - a.x),
        y: v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Area, BooleanOps};

    fn rect() -> Rect<f64> {
        Rect::new(Coord { x: 0.0, y: 0.0 }, Coord { x: 10.0, y: 10.0 })
    }

    fn exact(p: &MultiPolygon<f64>) -> f64 {
        p.intersection(&rect().to_polygon()).unsigned_area()
    }

    #[test]
    fn area_matches_the_exact_intersection() {
        let shapes = [
            // overlapping a corner
            geo::wkt! { POLYGON((5. 5., 15. 5., 15. 15., 5. 15., 5. 5.)) },
            // a U whose arms leave and re-enter through the top
            geo::wkt! { POLYGON((2. 2., 8. 2., 8. 14., 6. 14., 6. 4., 4. 4., 4. 14., 2. 14., 2. 2.)) },
            // a star-ish concave ring around the box
            geo::wkt! { POLYGON((-5. -5., 5. 2., 15. -5., 8. 5., 15. 15., 5. 8., -5. 15., 2. 5., -5. -5.)) },
            // with a hole crossing the edge
            geo::wkt! { POLYGON((-2. -2., 12. -2., 12. 12., -2. 12., -2. -2.), (8. 3., 14. 3., 14. 6., 8. 6., 8. 3.)) },
        ];
        for shape in shapes {
            let mp = MultiPolygon::new(vec![shape]);
            let clipped = clip_polygons(&mp, &rect()).expect("something inside");
            assert!(
                (clipped.unsigned_area() - exact(&mp)).abs() < 1e-6 * exact(&mp),
                "{} vs {}",
                clipped.unsigned_area(),
                exact(&mp)
            );
            for p in &clipped {
                for c in p.exterior().coords() {
                    assert!((0.0..=10.0).contains(&c.x) && (0.0..=10.0).contains(&c.y));
                }
            }
        }
    }

    #[test]
    fn a_box_inside_a_large_area_is_the_box_and_an_area_outside_is_nothing() {
        let around = MultiPolygon::new(vec![
            geo::wkt! { POLYGON((-100. -100., 100. -100., 100. 100., -100. 100., -100. -100.)) },
        ]);
        let clipped = clip_polygons(&around, &rect()).expect("the box");
        assert!((clipped.unsigned_area() - 100.0).abs() < 1e-9);
        let away = MultiPolygon::new(vec![
            geo::wkt! { POLYGON((20. 20., 30. 20., 30. 30., 20. 20.)) },
        ]);
        assert!(clip_polygons(&away, &rect()).is_none());
    }
}
