//! The heuristic core shared by coverage and p-median: an assignment state
//! (each class's nearest and second-nearest open site), greedy with lazy
//! gains, and best-improvement 1-swaps.
//!
//! Both objectives are one lexicographic value, (uncovered weight, cost),
//! minimised: coverage reads every cost as 0, p-median compares cost once
//! the coverage ties. Coverage is monotone submodular, and so is the pair
//! (a site's coverage gain only shrinks as sites open, and while it does
//! not, neither does its saving), so a stale gain is an upper bound of the
//! current one: the lazy greedy of Minoux picks the same site as a full
//! re-evaluation.

use std::{cmp::Ordering, collections::BinaryHeap, time::Instant};

use super::reduce::Reduced;

const NONE: u32 = u32::MAX;

/// A lexicographic value to minimise, or a change of one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Val {
    pub unc: f64,
    pub cost: f64,
}

impl std::ops::Add for Val {
    type Output = Val;
    fn add(self, o: Val) -> Val {
        Val {
            unc: self.unc + o.unc,
            cost: self.cost + o.cost,
        }
    }
}

impl std::ops::Sub for Val {
    type Output = Val;
    fn sub(self, o: Val) -> Val {
        Val {
            unc: self.unc - o.unc,
            cost: self.cost - o.cost,
        }
    }
}

/// Tolerances under which a change counts as none (sums of many floats
/// carry rounding noise; a noise "improvement" would swap forever).
#[derive(Debug, Clone, Copy)]
pub(super) struct Tol {
    pub unc: f64,
    pub cost: f64,
}

impl Tol {
    /// Whether change `d` is a strict improvement (negative beyond noise).
    pub fn improves(&self, d: Val) -> bool {
        d.unc < -self.unc || (d.unc <= self.unc && d.cost < -self.cost)
    }
}

/// A gain (the negated change) ordered lexicographically, for the heap.
#[derive(Debug, Clone, Copy)]
struct Key {
    gain: Val,
    site: u32,
}

impl PartialEq for Key {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Key {
    fn cmp(&self, o: &Self) -> Ordering {
        self.gain
            .unc
            .total_cmp(&o.gain.unc)
            .then(self.gain.cost.total_cmp(&o.gain.cost))
            // Lower site index first on ties: deterministic answers.
            .then(o.site.cmp(&self.site))
    }
}

/// Which sites are open and, per class, its nearest and second-nearest
/// open site (costs `INFINITY` when there is none).
pub(super) struct Engine<'a> {
    pub red: &'a Reduced,
    use_cost: bool,
    pub open: Vec<bool>,
    d1: Vec<f64>,
    s1: Vec<u32>,
    d2: Vec<f64>,
}

impl<'a> Engine<'a> {
    pub fn new(red: &'a Reduced, use_cost: bool) -> Self {
        let n = red.n_classes();
        Engine {
            red,
            use_cost,
            open: vec![false; red.n_sites()],
            d1: vec![f64::INFINITY; n],
            s1: vec![NONE; n],
            d2: vec![f64::INFINITY; n],
        }
    }

    fn fwd_cost(&self, p: usize) -> f64 {
        if self.use_cost {
            self.red.fwd.cost_at(p)
        } else {
            0.0
        }
    }

    fn val(&self, c: usize, d: f64) -> Val {
        let w = self.red.weight[c];
        if d.is_finite() {
            Val {
                unc: 0.0,
                cost: w * d,
            }
        } else {
            Val { unc: w, cost: 0.0 }
        }
    }

    /// The current value: (uncovered weight, cost) over the classes.
    pub fn value(&self) -> Val {
        (0..self.red.n_classes()).fold(Val::default(), |acc, c| acc + self.val(c, self.d1[c]))
    }

    pub fn covered(&self, c: usize) -> bool {
        self.d1[c].is_finite()
    }

    /// Tolerances scaled to this instance and the current cost.
    pub fn tol(&self) -> Tol {
        Tol {
            unc: 1e-9 * self.red.total_weight().max(f64::MIN_POSITIVE),
            cost: 1e-9 * self.value().cost.max(f64::MIN_POSITIVE),
        }
    }

    pub fn open_site(&mut self, s: u32) {
        self.open[s as usize] = true;
        for p in self.red.fwd.range(s as usize) {
            let c = self.red.fwd.index[p] as usize;
            let cost = self.fwd_cost(p);
            if cost < self.d1[c] {
                self.d2[c] = self.d1[c];
                self.d1[c] = cost;
                self.s1[c] = s;
            } else if cost < self.d2[c] {
                self.d2[c] = cost;
            }
        }
    }

    pub fn close_site(&mut self, s: u32) {
        self.open[s as usize] = false;
        for p in self.red.fwd.range(s as usize) {
            let c = self.red.fwd.index[p] as usize;
            self.recompute(c);
        }
    }

    fn recompute(&mut self, c: usize) {
        let (mut d1, mut s1, mut d2) = (f64::INFINITY, NONE, f64::INFINITY);
        for p in self.red.rev.range(c) {
            let s = self.red.rev.index[p];
            if !self.open[s as usize] {
                continue;
            }
            let cost = if self.use_cost {
                self.red.rev.cost_at(p)
            } else {
                0.0
            };
            if cost < d1 {
                d2 = d1;
                d1 = cost;
                s1 = s;
            } else if cost < d2 {
                d2 = cost;
            }
        }
        self.d1[c] = d1;
        self.s1[c] = s1;
        self.d2[c] = d2;
    }

    /// The change of value if closed site `s` opened.
    pub fn add_delta(&self, s: u32) -> Val {
        let mut d = Val::default();
        for p in self.red.fwd.range(s as usize) {
            let c = self.red.fwd.index[p] as usize;
            let cost = self.fwd_cost(p);
            if cost < self.d1[c] {
                d = d + self.val(c, cost) - self.val(c, self.d1[c]);
            }
        }
        d
    }
}

/// What a greedy run did.
pub(super) struct Greedy {
    /// The sites opened, in order, each with the change it made.
    pub picks: Vec<(u32, Val)>,
    /// The smallest upper bound on the covered weight of any `m` sites of
    /// the pool added to the start, seen at a step (∞ when not tracked).
    pub cover_bound: f64,
}

/// Opens `m` sites of `pool` one by one, each the best by its exact gain.
///
/// With `bound` on, before each step the classic submodular bound is
/// taken: for any set T of at most `m` pool sites,
/// f(T ∪ S₀) ≤ f(S) + Σ_{j ∈ T∖S} Δⱼ(S) ≤ f(S) + (the `m` largest gains),
/// S ⊇ S₀ being the current set; the heap's stale gains are upper bounds
/// of the current ones, so their `m` largest coverage parts bound it too.
pub(super) fn greedy(eng: &mut Engine, pool: &[u32], m: usize, bound: bool) -> Greedy {
    let mut heap: BinaryHeap<Key> = pool
        .iter()
        .filter(|&&s| !eng.open[s as usize])
        .map(|&s| Key {
            gain: zero_minus(eng.add_delta(s)),
            site: s,
        })
        .collect();
    let total = eng.red.total_weight();
    let mut covered = total - eng.value().unc;
    let mut cover_bound = f64::INFINITY;
    let mut scratch = Vec::new();
    let mut picks = Vec::with_capacity(m);
    let mut bounded_at = usize::MAX;
    while picks.len() < m {
        // Once per step (a lazy step may pop many times). T ∖ S can hold
        // all m sites of T, hence the m largest, not m − |picks|.
        if bound && bounded_at != picks.len() {
            bounded_at = picks.len();
            scratch.clear();
            scratch.extend(heap.iter().map(|k| k.gain.unc));
            cover_bound = cover_bound.min(covered + top_sum(&mut scratch, m));
        }
        let Some(top) = heap.pop() else { break };
        let fresh = Key {
            gain: zero_minus(eng.add_delta(top.site)),
            site: top.site,
        };
        if heap.peek().is_none_or(|next| fresh >= *next) {
            eng.open_site(fresh.site);
            covered += fresh.gain.unc;
            picks.push((fresh.site, zero_minus(fresh.gain)));
        } else {
            heap.push(fresh);
        }
    }
    if bound {
        // The final set: m − |picks| further sites can add nothing when
        // the pool ran dry; otherwise the loop's last bound stands.
        if picks.len() < m {
            cover_bound = cover_bound.min(covered);
        }
    }
    Greedy { picks, cover_bound }
}

fn zero_minus(v: Val) -> Val {
    Val::default() - v
}

/// Σ of the `m` largest values (reorders `v`).
pub(super) fn top_sum(v: &mut [f64], m: usize) -> f64 {
    if m == 0 {
        return 0.0;
    }
    if v.len() > m {
        let at = v.len() - m;
        v.select_nth_unstable_by(at, |a, b| a.total_cmp(b));
        v[at..].iter().sum()
    } else {
        v.iter().sum()
    }
}

/// Best-improvement 1-swaps: close an open site not in `keep`, open a
/// closed site of `pool`, the pair whose exchange improves the value most;
/// repeat until none improves or `deadline` passes.
///
/// A swap (a out, b in) changes class c by: b's own gain on c, plus a's
/// loss on c (its second-nearest takes over), corrected where b beats that
/// second-nearest. Only classes whose nearest is a need the correction, so
/// one pass over each b's reach prices every pair (Whitaker's fast
/// interchange). Returns the number of swaps made.
pub(super) fn swaps(eng: &mut Engine, pool: &[u32], deadline: Instant) -> usize {
    let red = eng.red;
    let mut made = 0;
    let mut slot = vec![usize::MAX; red.n_sites()];
    loop {
        let outs: Vec<u32> = (0..red.n_sites() as u32)
            .filter(|&s| eng.open[s as usize] && !red.is_keep[s as usize])
            .collect();
        if outs.is_empty() {
            return made;
        }
        for (k, &a) in outs.iter().enumerate() {
            slot[a as usize] = k;
        }
        let mut loss = vec![Val::default(); outs.len()];
        for c in 0..red.n_classes() {
            let a = eng.s1[c];
            if a != NONE && slot[a as usize] != usize::MAX {
                loss[slot[a as usize]] =
                    loss[slot[a as usize]] + eng.val(c, eng.d2[c]) - eng.val(c, eng.d1[c]);
            }
        }
        let tol = eng.tol();
        let mut corr = vec![Val::default(); outs.len()];
        let mut touched: Vec<usize> = Vec::new();
        let mut best: Option<(Val, u32, u32)> = None;
        let mut timed_out = false;
        for (n, &b) in pool.iter().enumerate() {
            if n % 64 == 0 && Instant::now() >= deadline {
                timed_out = true;
                break;
            }
            if eng.open[b as usize] {
                continue;
            }
            let mut add = Val::default();
            for p in red.fwd.range(b as usize) {
                let c = red.fwd.index[p] as usize;
                let cost = eng.fwd_cost(p);
                let (d1, d2) = (eng.d1[c], eng.d2[c]);
                let nd = cost.min(d1);
                if cost < d1 {
                    add = add + eng.val(c, nd) - eng.val(c, d1);
                }
                let a = eng.s1[c];
                if a != NONE && cost < d2 {
                    let k = slot[a as usize];
                    if k != usize::MAX {
                        let fix = eng.val(c, cost.min(d2))
                            - eng.val(c, nd)
                            - (eng.val(c, d2) - eng.val(c, d1));
                        if corr[k] == Val::default() {
                            touched.push(k);
                        }
                        corr[k] = corr[k] + fix;
                    }
                }
            }
            for (k, &a) in outs.iter().enumerate() {
                let d = add + loss[k] + corr[k];
                if tol.improves(d) && best.is_none_or(|(bd, _, _)| tol.improves(d - bd)) {
                    best = Some((d, a, b));
                }
            }
            for k in touched.drain(..) {
                corr[k] = Val::default();
            }
        }
        for &a in &outs {
            slot[a as usize] = usize::MAX;
        }
        match best {
            Some((_, a, b)) => {
                eng.open_site(b);
                eng.close_site(a);
                made += 1;
            }
            None => return made,
        }
        if timed_out || Instant::now() >= deadline {
            return made;
        }
    }
}

/// The coverage gains of every closed site of `pool` at the current set.
pub(super) fn cover_gains(eng: &Engine, pool: &[u32]) -> Vec<f64> {
    pool.iter()
        .filter(|&&s| !eng.open[s as usize])
        .map(|&s| {
            let mut g = 0.0;
            for p in eng.red.fwd.range(s as usize) {
                let c = eng.red.fwd.index[p] as usize;
                if !eng.covered(c) {
                    g += eng.red.weight[c];
                }
            }
            g
        })
        .collect()
}

/// Orders an answer: `keep` first (in the caller's order), then the other
/// open sites by greedy marginal gain. Returns the sites and the change
/// each made, on a fresh state.
pub(super) fn order(red: &Reduced, open: &[u32], use_cost: bool) -> (Vec<u32>, Vec<Val>) {
    let mut eng = Engine::new(red, use_cost);
    let mut sites = Vec::with_capacity(open.len());
    let mut deltas = Vec::with_capacity(open.len());
    for &s in &red.keep {
        let d = eng.add_delta(s);
        eng.open_site(s);
        sites.push(s);
        deltas.push(d);
    }
    let rest: Vec<u32> = open
        .iter()
        .copied()
        .filter(|&s| !red.is_keep[s as usize])
        .collect();
    let g = greedy(&mut eng, &rest, rest.len(), false);
    for (s, d) in g.picks {
        sites.push(s);
        deltas.push(d);
    }
    (sites, deltas)
}
