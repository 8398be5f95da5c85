//! Filter geometries prepared once per request, so that testing each of many
//! features against one (possibly large) filter polygon stays cheap.
//!
//! `geo`'s `Relate` builds a full topology graph of both geometries on every
//! call: a 4,000-vertex filter polygon cost seconds of CPU per request over
//! the demo layers. `geo::PreparedGeometry` caches that graph but holds `Rc`s
//! (not `Send`), so it cannot live in an [`Expr`](super::Expr) that crosses
//! threads. Here the filter's edges go into R-trees once; a feature then
//! costs a bounding-box test and a few logarithmic look-ups per vertex.
//!
//! Two closed sets meet iff an edge of one meets an edge of the other, or a
//! lone point of one lies in the other, or, failing both, some connected
//! part of one lies wholly inside the other's area: then the first vertex of
//! that part's line or ring (its *probe*) is inside. So the test checks edges
//! against edges, points against everything, and probes against areas.

use std::{borrow::Cow, fmt, sync::Arc};

use geo::{BoundingRect, Coord, Geometry, Intersects, Line, LineString, Polygon, Rect};
use rstar::{
    primitives::{GeomWithData, Rectangle},
    RTree, AABB,
};

/// An edge's envelope in an R-tree, with its index in the edge list.
type Edge = GeomWithData<Rectangle<[f64; 2]>, usize>;

fn envelope(l: &Line<f64>) -> AABB<[f64; 2]> {
    AABB::from_corners(
        [l.start.x.min(l.end.x), l.start.y.min(l.end.y)],
        [l.start.x.max(l.end.x), l.start.y.max(l.end.y)],
    )
}

fn point_envelope(c: Coord<f64>) -> AABB<[f64; 2]> {
    AABB::from_point([c.x, c.y])
}

/// Edges with an R-tree over their envelopes.
struct Edges {
    lines: Vec<Line<f64>>,
    tree: RTree<Edge>,
}

impl Edges {
    fn new(lines: Vec<Line<f64>>) -> Self {
        let boxes = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let e = envelope(l);
                GeomWithData::new(Rectangle::from_corners(e.lower(), e.upper()), i)
            })
            .collect();
        Edges {
            lines,
            tree: RTree::bulk_load(boxes),
        }
    }

    /// The edges whose envelopes meet `area`.
    fn near<'a>(&'a self, area: &AABB<[f64; 2]>) -> impl Iterator<Item = &'a Line<f64>> + 'a {
        self.tree
            .locate_in_envelope_intersecting(area)
            .map(|e| &self.lines[e.data])
    }

    fn meets_line(&self, l: &Line<f64>) -> bool {
        self.near(&envelope(l)).any(|e| e.intersects(l))
    }

    fn meets_point(&self, c: Coord<f64>) -> bool {
        self.near(&point_envelope(c)).any(|e| e.intersects(&c))
    }
}

/// One polygon of the filter, its rings' edges indexed for point tests.
struct Area {
    bounds: Rect<f64>,
    edges: Edges,
}

impl Area {
    fn new(p: &Polygon<f64>) -> Option<Self> {
        let bounds = p.bounding_rect()?;
        let lines = std::iter::once(p.exterior())
            .chain(p.interiors())
            .flat_map(LineString::lines)
            .collect();
        Some(Area {
            bounds,
            edges: Edges::new(lines),
        })
    }

    /// Whether `c` is inside the polygon or on its boundary (even–odd rule
    /// over all rings, so holes are outside).
    fn covers(&self, c: Coord<f64>) -> bool {
        if !self.bounds.intersects(&c) {
            return false;
        }
        if self.edges.meets_point(c) {
            return true;
        }
        // Cast a ray towards +x and count the edges it crosses; an edge's
        // lower end counts and its upper end does not, so a vertex on the
        // ray is counted once.
        let ray = AABB::from_corners([c.x, c.y], [self.bounds.max().x, c.y]);
        let crossings = self
            .edges
            .near(&ray)
            .filter(|e| {
                let (a, b) = (e.start, e.end);
                (a.y > c.y) != (b.y > c.y) && {
                    let x = a.x + (c.y - a.y) * (b.x - a.x) / (b.y - a.y);
                    c.x < x
                }
            })
            .count();
        crossings % 2 == 1
    }
}

/// A geometry taken apart into what the intersection test walks.
#[derive(Default)]
struct Parts<'a> {
    /// Lone points (and lines of a single position).
    points: Vec<Coord<f64>>,
    /// Every edge of every line and ring.
    lines: Vec<Line<f64>>,
    /// The first vertex of every line and ring.
    probes: Vec<Coord<f64>>,
    /// The polygons, whose areas count as well as their rings.
    areas: Vec<Cow<'a, Polygon<f64>>>,
}

impl<'a> Parts<'a> {
    /// Walk `g` with an explicit stack: stored geometries may nest
    /// collections more deeply than a thread's stack allows recursion.
    fn of(g: &'a Geometry<f64>) -> Self {
        let mut parts = Parts::default();
        let mut todo = vec![g];
        while let Some(g) = todo.pop() {
            match g {
                Geometry::Point(p) => parts.points.push(p.0),
                Geometry::MultiPoint(mp) => parts.points.extend(mp.iter().map(|p| p.0)),
                Geometry::Line(l) => {
                    parts.lines.push(*l);
                    parts.probes.push(l.start);
                }
                Geometry::LineString(ls) => parts.line(ls),
                Geometry::MultiLineString(mls) => mls.iter().for_each(|ls| parts.line(ls)),
                Geometry::Polygon(p) => parts.polygon(Cow::Borrowed(p)),
                Geometry::MultiPolygon(mp) => {
                    mp.iter().for_each(|p| parts.polygon(Cow::Borrowed(p)))
                }
                Geometry::Rect(r) => parts.polygon(Cow::Owned(r.to_polygon())),
                Geometry::Triangle(t) => parts.polygon(Cow::Owned(t.to_polygon())),
                Geometry::GeometryCollection(gc) => todo.extend(gc.iter()),
            }
        }
        parts
    }

    /// The bounding box of every vertex (each is a point or an edge's end),
    /// found without `geo`'s recursion into nested collections.
    fn bounds(&self) -> Option<Rect<f64>> {
        let ends = self.lines.iter().flat_map(|l| [l.start, l.end]);
        let mut all = self.points.iter().copied().chain(ends);
        let first = all.next()?;
        let (lo, hi) = all.fold((first, first), |(lo, hi), c| {
            (
                geo::coord! { x: lo.x.min(c.x), y: lo.y.min(c.y) },
                geo::coord! { x: hi.x.max(c.x), y: hi.y.max(c.y) },
            )
        });
        Some(Rect::new(lo, hi))
    }

    fn line(&mut self, ls: &LineString<f64>) {
        match ls.0.as_slice() {
            [] => {}
            [only] => self.points.push(*only),
            [first, ..] => {
                self.lines.extend(ls.lines());
                self.probes.push(*first);
            }
        }
    }

    fn polygon(&mut self, p: Cow<'a, Polygon<f64>>) {
        if p.exterior().0.is_empty() {
            return;
        }
        for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
            self.line(ring);
        }
        self.areas.push(p);
    }
}

struct Prepared {
    geometry: Geometry<f64>,
    bounds: Option<Rect<f64>>,
    /// Set when the shape is an axis-aligned rectangle (every `bbox=`
    /// query): a point then meets it iff its box holds it, which is most
    /// of an items request's tests.
    rect: Option<Rect<f64>>,
    points: Vec<Coord<f64>>,
    edges: Edges,
    probes: Vec<Coord<f64>>,
    areas: Vec<Area>,
}

/// A filter geometry (WGS84) with its edges indexed once; cheap to clone
/// and shared between the threads that test features against it.
#[derive(Clone)]
pub struct Shape(Arc<Prepared>);

impl Shape {
    pub fn new(geometry: Geometry<f64>) -> Self {
        let parts = Parts::of(&geometry);
        let areas = parts.areas.iter().filter_map(|p| Area::new(p)).collect();
        let (points, lines, probes) = (parts.points, parts.lines, parts.probes);
        Shape(Arc::new(Prepared {
            bounds: geometry.bounding_rect(),
            rect: as_rectangle(&geometry),
            points,
            edges: Edges::new(lines),
            probes,
            areas,
            geometry,
        }))
    }

    pub fn geometry(&self) -> &Geometry<f64> {
        &self.0.geometry
    }

    pub fn bounding_rect(&self) -> Option<Rect<f64>> {
        self.0.bounds
    }

    /// The box this shape is, when it is an axis-aligned rectangle: a point
    /// meets it exactly when each coordinate lies within the box's range.
    pub fn rectangle(&self) -> Option<Rect<f64>> {
        self.0.rect
    }

    /// Whether `other` meets this shape, touching included (DE-9IM
    /// `intersects`).
    pub fn intersects(&self, other: &Geometry<f64>) -> bool {
        let me = &*self.0;
        if let (Some(r), Geometry::Point(p)) = (me.rect, other) {
            let (min, max) = (r.min(), r.max());
            return min.x <= p.x() && p.x() <= max.x && min.y <= p.y() && p.y() <= max.y;
        }
        let them = Parts::of(other);
        let (Some(mine), Some(theirs)) = (me.bounds, them.bounds()) else {
            return false;
        };
        if !mine.intersects(&theirs) {
            return false;
        }
        let covered = |c: Coord<f64>| me.areas.iter().any(|a| a.covers(c));
        if them.lines.iter().any(|l| me.edges.meets_line(l)) {
            return true;
        }
        if them
            .points
            .iter()
            .any(|&c| me.points.contains(&c) || me.edges.meets_point(c) || covered(c))
        {
            return true;
        }
        if them.probes.iter().any(|&c| covered(c)) {
            return true;
        }
        let near = |c: &&Coord<f64>| theirs.intersects(*c);
        if me.points.iter().filter(near).any(|c| other.intersects(c)) {
            return true;
        }
        me.probes
            .iter()
            .filter(near)
            .any(|c| them.areas.iter().any(|a| a.intersects(c)))
    }
}

/// The rectangle a geometry is, if it is one: a rectangle, or a polygon
/// without holes whose ring runs along its own bounding box's four sides.
fn as_rectangle(g: &Geometry<f64>) -> Option<Rect<f64>> {
    let p = match g {
        Geometry::Rect(r) => return Some(*r),
        Geometry::Polygon(p) => p,
        _ => return None,
    };
    if !p.interiors().is_empty() {
        return None;
    }
    let r = p.bounding_rect()?;
    let ring = &p.exterior().0;
    // Closed, four corners: each on the box's corners, consecutive ones
    // sharing an x or a y (so each side runs along the box).
    if ring.len() != 5 || ring.first() != ring.last() {
        return None;
    }
    let corner = |c: &Coord<f64>| {
        (c.x == r.min().x || c.x == r.max().x) && (c.y == r.min().y || c.y == r.max().y)
    };
    let sides = ring
        .windows(2)
        .all(|w| (w[0].x == w[1].x) != (w[0].y == w[1].y));
    let distinct = {
        let mut cs: Vec<(u64, u64)> = ring[..4]
            .iter()
            .map(|c| (c.x.to_bits(), c.y.to_bits()))
            .collect();
        cs.sort_unstable();
        cs.dedup();
        cs.len() == 4
    };
    (ring.iter().all(corner) && sides && distinct).then_some(r)
}

impl PartialEq for Shape {
    fn eq(&self, other: &Self) -> bool {
        self.0.geometry == other.0.geometry
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Shape").field(&self.0.geometry).finish()
    }
}

#[cfg(test)]
mod tests {
    use geo::{Relate, Translate};

    use super::*;

    #[test]
    fn a_bbox_answers_points_as_the_general_test_does() {
        let rect = Rect::new(
            geo::coord! { x: 118.2, y: 34.9 },
            geo::coord! { x: 118.4, y: 35.1 },
        );
        let fast = Shape::new(rect.to_polygon().into());
        assert_eq!(fast.0.rect, Some(rect), "a bbox polygon is seen as one");
        // The same area with a fifth vertex mid-side: the general path.
        let general = Shape::new(
            Polygon::new(
                LineString::from(vec![
                    (118.2, 34.9),
                    (118.3, 34.9),
                    (118.4, 34.9),
                    (118.4, 35.1),
                    (118.2, 35.1),
                    (118.2, 34.9),
                ]),
                vec![],
            )
            .into(),
        );
        assert!(general.0.rect.is_none());
        let xs = [118.1, 118.2, 118.25, 118.3, 118.4, 118.4000001, 118.5];
        let ys = [34.8, 34.9, 34.95, 35.0, 35.1, 35.1000001, 35.2];
        for x in xs {
            for y in ys {
                let p: Geometry<f64> = geo::Point::new(x, y).into();
                assert_eq!(fast.intersects(&p), general.intersects(&p), "({x}, {y})");
            }
        }
        // Not rectangles: a rotated square, a triangle, a polygon with a hole.
        let diamond = Polygon::new(
            LineString::from(vec![
                (0.0, 1.0),
                (1.0, 0.0),
                (0.0, -1.0),
                (-1.0, 0.0),
                (0.0, 1.0),
            ]),
            vec![],
        );
        assert!(as_rectangle(&diamond.into()).is_none());
        let holed = Polygon::new(
            rect.to_polygon().exterior().clone(),
            vec![LineString::from(vec![
                (118.25, 34.95),
                (118.3, 34.95),
                (118.3, 35.0),
                (118.25, 34.95),
            ])],
        );
        assert!(as_rectangle(&holed.into()).is_none());
    }

    /// A star with `n` spikes around (118.3, 35.0): concave, many vertices.
    fn star(n: usize) -> Polygon<f64> {
        let mut ring: Vec<Coord<f64>> = (0..2 * n)
            .map(|i| {
                let a = std::f64::consts::PI * i as f64 / n as f64;
                let r = if i % 2 == 0 { 0.2 } else { 0.05 };
                geo::coord! { x: 118.3 + r * a.cos(), y: 35.0 + r * a.sin() }
            })
            .collect();
        ring.push(ring[0]);
        Polygon::new(LineString::new(ring), vec![])
    }

    fn samples() -> Vec<Geometry<f64>> {
        let mut out: Vec<Geometry<f64>> = Vec::new();
        for i in 0..25 {
            for j in 0..25 {
                // Odd steps keep samples off the filters' own vertices and
                // edges, where rounding alone would decide.
                let x = 118.05 + 0.02137 * f64::from(i);
                let y = 34.75 + 0.01973 * f64::from(j);
                out.push(geo::Point::new(x, y).into());
                out.push(LineString::from(vec![(x, y), (x + 0.0311, y + 0.0117)]).into());
                let small = geo::Rect::new(
                    geo::coord! { x: x, y: y },
                    geo::coord! { x: x + 0.005, y: y + 0.005 },
                );
                out.push(small.to_polygon().into());
            }
        }
        // One feature holding the whole filter, and one with a hole around it.
        let big = geo::Rect::new(
            geo::coord! { x: 117.0, y: 34.0 },
            geo::coord! { x: 119.0, y: 36.0 },
        );
        out.push(big.to_polygon().into());
        let hole = geo::Rect::new(
            geo::coord! { x: 117.5, y: 34.5 },
            geo::coord! { x: 118.9, y: 35.5 },
        );
        out.push(
            Polygon::new(
                big.to_polygon().exterior().clone(),
                vec![hole.to_polygon().exterior().clone()],
            )
            .into(),
        );
        out
    }

    #[test]
    fn agrees_with_relate_on_points_lines_and_polygons() {
        let filters: Vec<Geometry<f64>> = vec![
            star(40).into(),
            geo::Point::new(118.31, 35.01).into(),
            LineString::from(vec![(118.0, 34.8), (118.6, 35.2), (118.1, 35.3)]).into(),
            geo::MultiPolygon::new(vec![star(7), star(7).translate(0.3, 0.1)]).into(),
        ];
        for f in filters {
            let shape = Shape::new(f.clone());
            for s in samples() {
                assert_eq!(
                    shape.intersects(&s),
                    f.relate(&s).is_intersects(),
                    "{f:?} vs {s:?}"
                );
            }
        }
    }

    #[test]
    fn touching_counts_and_collections_are_walked() {
        let square: Geometry<f64> = geo::Rect::new(
            geo::coord! { x: 0.0, y: 0.0 },
            geo::coord! { x: 1.0, y: 1.0 },
        )
        .to_polygon()
        .into();
        let shape = Shape::new(square);
        assert!(shape.intersects(&geo::Point::new(1.0, 0.5).into()));
        assert!(shape.intersects(&geo::Point::new(1.0, 1.0).into()));
        assert!(!shape.intersects(&geo::Point::new(1.000001, 0.5).into()));
        let mut nested: Geometry<f64> = geo::Point::new(0.5, 0.5).into();
        for _ in 0..1_000 {
            nested = Geometry::GeometryCollection(geo::GeometryCollection::new_from(vec![nested]));
        }
        assert!(shape.intersects(&nested));
    }
}
