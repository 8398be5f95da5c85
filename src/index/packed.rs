//! A static R-tree packed in Hilbert order: the rows sorted along a Hilbert
//! curve over their box centres, then grouped sixteen to a node, level by
//! level, every node box in one flat array. It costs one row number per row
//! and a box per sixteen (a pointer tree costs a node per row), is built
//! in one sort, and keeps nearby rows in nearby memory.
//!
//! The rows' own boxes are not stored: the caller passes a function that
//! reads them from its columns (a point's box is the point).

/// Children per node.
pub const NODE: usize = 16;

/// `[min_x, min_y, max_x, max_y]`.
pub type Box2 = [f64; 4];

pub fn meets(a: &Box2, b: &Box2) -> bool {
    a[0] <= b[2] && a[2] >= b[0] && a[1] <= b[3] && a[3] >= b[1]
}

fn union(a: Box2, b: &Box2) -> Box2 {
    [
        a[0].min(b[0]),
        a[1].min(b[1]),
        a[2].max(b[2]),
        a[3].max(b[3]),
    ]
}

const EMPTY: Box2 = [
    f64::INFINITY,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NEG_INFINITY,
];

#[derive(Debug, Default)]
pub struct Packed {
    /// Row slots in Hilbert order.
    order: Vec<u32>,
    /// Node boxes, the lowest level first; `levels[l]` is where level `l`
    /// starts in `boxes`, with one more entry for the end.
    boxes: Vec<Box2>,
    levels: Vec<usize>,
}

/// The Hilbert index of `(x, y)` on a 2^16 grid (Warren, "Hacker's
/// Delight", 2nd ed., § 16-2).
fn hilbert(mut x: u32, mut y: u32) -> u64 {
    let mut d: u64 = 0;
    let mut s: u32 = 1 << 15;
    while s > 0 {
        let rx = u32::from(x & s > 0);
        let ry = u32::from(y & s > 0);
        d += u64::from(s) * u64::from(s) * u64::from((3 * rx) ^ ry);
        if ry == 0 {
            if rx == 1 {
                x = s.wrapping_mul(2).wrapping_sub(1).wrapping_sub(x) & 0xffff;
                y = s.wrapping_mul(2).wrapping_sub(1).wrapping_sub(y) & 0xffff;
            }
            std::mem::swap(&mut x, &mut y);
        }
        s >>= 1;
    }
    d
}

impl Packed {
    /// Pack `slots`, whose boxes `bbox` gives.
    pub fn build(slots: Vec<u32>, bbox: impl Fn(u32) -> Box2) -> Self {
        if slots.is_empty() {
            return Self::default();
        }
        let whole = slots.iter().fold(EMPTY, |a, s| union(a, &bbox(*s)));
        let (w, h) = (
            (whole[2] - whole[0]).max(f64::MIN_POSITIVE),
            (whole[3] - whole[1]).max(f64::MIN_POSITIVE),
        );
        let cell = |v: f64, lo: f64, span: f64| -> u32 {
            (((v - lo) / span) * 65535.0).clamp(0.0, 65535.0) as u32
        };
        let mut keyed: Vec<(u64, u32)> = slots
            .into_iter()
            .map(|s| {
                let b = bbox(s);
                let (cx, cy) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
                (hilbert(cell(cx, whole[0], w), cell(cy, whole[1], h)), s)
            })
            .collect();
        keyed.sort_unstable();
        let order: Vec<u32> = keyed.into_iter().map(|(_, s)| s).collect();

        let mut boxes: Vec<Box2> = order
            .chunks(NODE)
            .map(|c| c.iter().fold(EMPTY, |a, s| union(a, &bbox(*s))))
            .collect();
        let mut levels = vec![0, boxes.len()];
        while levels[levels.len() - 1] - levels[levels.len() - 2] > 1 {
            let (a, b) = (levels[levels.len() - 2], levels[levels.len() - 1]);
            let next: Vec<Box2> = boxes[a..b]
                .chunks(NODE)
                .map(|c| c.iter().fold(EMPTY, union))
                .collect();
            boxes.extend(next);
            levels.push(boxes.len());
        }
        Self {
            order,
            boxes,
            levels,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Rename every slot (`new_of[old]`): the rows were moved.
    pub fn renumber(&mut self, new_of: &[u32]) {
        for s in &mut self.order {
            *s = new_of.get(*s as usize).copied().unwrap_or(*s);
        }
    }

    /// The packed slots, in tree order.
    pub fn slots(&self) -> &[u32] {
        &self.order
    }

    /// The box of everything packed.
    pub fn bounds(&self) -> Option<Box2> {
        self.boxes.last().copied()
    }

    /// Call `visit` with every slot whose box (by `bbox`) meets `q`.
    pub fn search(&self, q: &Box2, bbox: impl Fn(u32) -> Box2, mut visit: impl FnMut(u32)) {
        if self.order.is_empty() {
            return;
        }
        let top = self.levels.len() - 2;
        let mut stack: Vec<(usize, usize)> = vec![(top, 0)];
        while let Some((level, node)) = stack.pop() {
            let at = self.levels[level] + node;
            if !meets(&self.boxes[at], q) {
                continue;
            }
            let first = node * NODE;
            if level == 0 {
                let end = (first + NODE).min(self.order.len());
                for &s in &self.order[first..end] {
                    if meets(&bbox(s), q) {
                        visit(s);
                    }
                }
            } else {
                let count = self.levels[level] - self.levels[level - 1];
                for child in first..(first + NODE).min(count) {
                    stack.push((level - 1, child));
                }
            }
        }
    }

    /// The root node, for walks that order nodes themselves (nearest).
    pub fn root(&self) -> Option<NodeRef> {
        (!self.order.is_empty()).then_some(NodeRef {
            level: self.levels.len() - 2,
            node: 0,
        })
    }

    pub fn node_box(&self, n: NodeRef) -> Box2 {
        self.boxes[self.levels[n.level] + n.node]
    }

    /// A node's children: nodes one level down, or (at the lowest level)
    /// row slots.
    pub fn children(&self, n: NodeRef) -> Children<'_> {
        let first = n.node * NODE;
        if n.level == 0 {
            let end = (first + NODE).min(self.order.len());
            Children::Rows(&self.order[first..end])
        } else {
            let count = self.levels[n.level] - self.levels[n.level - 1];
            Children::Nodes {
                level: n.level - 1,
                nodes: first..(first + NODE).min(count),
            }
        }
    }

    pub(super) fn encode(&self, out: &mut super::snapshot::Out) {
        out.u32s(&self.order);
        let flat: Vec<f64> = self.boxes.iter().flatten().copied().collect();
        out.f64s(&flat);
        let levels: Vec<u64> = self.levels.iter().map(|l| *l as u64).collect();
        out.u64s(&levels);
    }

    /// The tree [`Packed::encode`] wrote, checked for shape: every level in
    /// order and within the boxes, so a search cannot index out of bounds.
    pub(super) fn decode(input: &mut super::snapshot::In) -> super::snapshot::Decoded<Self> {
        let order = input.u32s()?;
        let flat = input.f64s()?;
        if !flat.len().is_multiple_of(4) {
            return Err("a box of the tree is cut short".into());
        }
        let boxes: Vec<Box2> = flat
            .chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect();
        let levels: Vec<usize> = input
            .u64s()?
            .into_iter()
            .map(|l| usize::try_from(l).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let tree = Self {
            order,
            boxes,
            levels,
        };
        let fresh = Self::build(Vec::new(), |_| EMPTY);
        if tree.order.is_empty() {
            return Ok(fresh);
        }
        let l = &tree.levels;
        let shaped = l.len() >= 2
            && l[0] == 0
            && l.windows(2).all(|w| w[0] < w[1])
            && l[l.len() - 1] == tree.boxes.len()
            && l[l.len() - 1] - l[l.len() - 2] == 1
            && l[1] == tree.order.len().div_ceil(NODE)
            && l.windows(3)
                .all(|w| w[2] - w[1] == (w[1] - w[0]).div_ceil(NODE));
        if !shaped {
            return Err("the tree's levels do not fit its rows".into());
        }
        Ok(tree)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRef {
    pub level: usize,
    pub node: usize,
}

pub enum Children<'a> {
    Rows(&'a [u32]),
    /// Nodes `nodes` of `level`.
    Nodes {
        level: usize,
        nodes: std::ops::Range<usize>,
    },
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn a_search_finds_exactly_the_boxes_a_scan_finds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for n in [0usize, 1, 15, 16, 17, 255, 257, 5000] {
            let boxes: Vec<Box2> = (0..n)
                .map(|_| {
                    let (x, y) = (rng.random_range(0.0..1000.0), rng.random_range(0.0..1000.0));
                    let (w, h) = if rng.random_bool(0.5) {
                        (0.0, 0.0)
                    } else {
                        (rng.random_range(0.0..50.0), rng.random_range(0.0..50.0))
                    };
                    [x, y, x + w, y + h]
                })
                .collect();
            let tree = Packed::build((0..n as u32).collect(), |s| boxes[s as usize]);
            assert_eq!(tree.len(), n);
            for _ in 0..50 {
                let (x, y) = (
                    rng.random_range(-50.0..1000.0),
                    rng.random_range(-50.0..1000.0),
                );
                let q = [
                    x,
                    y,
                    x + rng.random_range(0.0..300.0),
                    y + rng.random_range(0.0..300.0),
                ];
                let mut found = Vec::new();
                tree.search(&q, |s| boxes[s as usize], |s| found.push(s));
                found.sort_unstable();
                let scan: Vec<u32> = (0..n as u32)
                    .filter(|s| meets(&boxes[*s as usize], &q))
                    .collect();
                assert_eq!(found, scan, "n = {n}, q = {q:?}");
            }
        }
    }
}
