//! Capacitated maximal covering: a site takes at most its capacity, demand
//! may be split between sites.
//!
//! For a fixed open set the best split is a max-flow (source → class, the
//! class's weight; class → site in reach; site → sink, the capacity), so
//! every open set is valued by a max-flow. That value f(S) is the min-
//! convolution of a coverage function with a modular one (min over the cut
//! sites S' ⊆ S of cap(S') + W(reach(S ∖ S'))), hence monotone submodular,
//! which is what the bounds below rely on.

use std::{collections::BinaryHeap, time::Instant};

use super::{
    close,
    coverage::{open_list, pool},
    exact,
    greedy::{cover_gains, top_sum, Engine},
    reduce::{reduce, Costs, Reduced},
    wants_exact, Instance, Options, Solution, OPTIMAL_GAP,
};

/// A max-flow answer: the total and the weight on each pair (indexed
/// like `red.fwd`).
pub(super) struct Split {
    pub total: f64,
    pub flow: Vec<f64>,
}

/// Dinic's max-flow on f64 capacities.
struct Net {
    head: Vec<usize>,
    next: Vec<usize>,
    to: Vec<usize>,
    cap: Vec<f64>,
    level: Vec<u32>,
    iter: Vec<usize>,
    eps: f64,
}

const NIL: usize = usize::MAX;

impl Net {
    fn new(n: usize, eps: f64) -> Self {
        Net {
            head: vec![NIL; n],
            next: Vec::new(),
            to: Vec::new(),
            cap: Vec::new(),
            level: vec![0; n],
            iter: vec![0; n],
            eps,
        }
    }

    /// Adds u → v; returns the edge id (its residual twin is id ^ 1).
    fn edge(&mut self, u: usize, v: usize, cap: f64) -> usize {
        let e = self.to.len();
        for (a, b, c) in [(u, v, cap), (v, u, 0.0)] {
            self.to.push(b);
            self.cap.push(c);
            self.next.push(self.head[a]);
            self.head[a] = self.to.len() - 1;
        }
        e
    }

    fn bfs(&mut self, s: usize, t: usize) -> bool {
        self.level.fill(u32::MAX);
        self.level[s] = 0;
        let mut queue = std::collections::VecDeque::from([s]);
        while let Some(u) = queue.pop_front() {
            let mut e = self.head[u];
            while e != NIL {
                let v = self.to[e];
                if self.cap[e] > self.eps && self.level[v] == u32::MAX {
                    self.level[v] = self.level[u] + 1;
                    queue.push_back(v);
                }
                e = self.next[e];
            }
        }
        self.level[t] != u32::MAX
    }

    fn dfs(&mut self, u: usize, t: usize, pushed: f64) -> f64 {
        if u == t {
            return pushed;
        }
        while self.iter[u] != NIL {
            let e = self.iter[u];
            let v = self.to[e];
            if self.cap[e] > self.eps && self.level[v] == self.level[u] + 1 {
                let got = self.dfs(v, t, pushed.min(self.cap[e]));
                if got > self.eps {
                    self.cap[e] -= got;
                    self.cap[e ^ 1] += got;
                    return got;
                }
            }
            self.iter[u] = self.next[e];
        }
        0.0
    }

    fn run(&mut self, s: usize, t: usize) -> f64 {
        let mut total = 0.0;
        while self.bfs(s, t) {
            self.iter.clone_from(&self.head);
            loop {
                let got = self.dfs(s, t, f64::INFINITY);
                if got <= self.eps {
                    break;
                }
                total += got;
            }
        }
        total
    }
}

/// The best split of demand over the open sites.
pub(super) fn split(red: &Reduced, open: &[bool]) -> Split {
    let cap = red.cap.as_deref().unwrap_or(&[]);
    let sites = open_list(open);
    // Nodes: 0 source, 1 sink, then the open sites, then reached classes.
    let mut node_of_class = vec![usize::MAX; red.n_classes()];
    let mut n = 2 + sites.len();
    for &s in &sites {
        for &c in red.fwd.row(s as usize) {
            if node_of_class[c as usize] == usize::MAX {
                node_of_class[c as usize] = n;
                n += 1;
            }
        }
    }
    let mut net = Net::new(n, 1e-12 * red.total_weight().max(f64::MIN_POSITIVE));
    let mut pair_edge = Vec::new();
    for (k, &s) in sites.iter().enumerate() {
        net.edge(2 + k, 1, cap.get(s as usize).copied().unwrap_or(0.0));
        for p in red.fwd.range(s as usize) {
            let c = red.fwd.index[p] as usize;
            let e = net.edge(node_of_class[c], 2 + k, red.weight[c]);
            pair_edge.push((p, e));
        }
    }
    for (c, &node) in node_of_class.iter().enumerate() {
        if node != usize::MAX {
            net.edge(0, node, red.weight[c]);
        }
    }
    let total = net.run(0, 1);
    let mut flow = vec![0.0; red.pairs()];
    for (p, e) in pair_edge {
        flow[p] = net.cap[e ^ 1];
    }
    Split { total, flow }
}

/// Greedy by min(capacity, weight still unserved in reach), each opened
/// site filled nearest-first. Stale gains only overestimate (the unserved
/// weight only shrinks), so the lazy heap picks as a full re-evaluation.
fn greedy(red: &Reduced, cap: &[f64], k: usize) -> Vec<bool> {
    let mut by_cost: Vec<usize> = (0..red.pairs()).collect();
    for s in 0..red.n_sites() {
        by_cost[red.fwd.range(s)]
            .sort_by(|&a, &b| red.fwd.cost_at(a).total_cmp(&red.fwd.cost_at(b)));
    }
    let mut rem = red.weight.clone();
    let mut open = vec![false; red.n_sites()];
    let gain = |rem: &[f64], s: usize| -> f64 {
        let w: f64 = red.fwd.row(s).iter().map(|&c| rem[c as usize]).sum();
        w.min(cap[s])
    };
    let fill = |rem: &mut [f64], s: usize| {
        let mut left = cap[s];
        for &p in &by_cost[red.fwd.range(s)] {
            if left <= 0.0 {
                break;
            }
            let c = red.fwd.index[p] as usize;
            let take = left.min(rem[c]);
            rem[c] -= take;
            left -= take;
        }
    };
    for &s in &red.keep {
        open[s as usize] = true;
        fill(&mut rem, s as usize);
    }
    #[derive(PartialEq)]
    struct Key(f64, u32);
    impl Eq for Key {}
    impl PartialOrd for Key {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Key {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            self.0.total_cmp(&o.0).then(o.1.cmp(&self.1))
        }
    }
    let mut heap: BinaryHeap<Key> = pool(red)
        .into_iter()
        .map(|s| Key(gain(&rem, s as usize), s))
        .collect();
    let mut opened = red.keep.len();
    while opened < k {
        let Some(Key(_, s)) = heap.pop() else { break };
        let fresh = Key(gain(&rem, s as usize), s);
        if heap.peek().is_none_or(|next| fresh >= *next) {
            open[s as usize] = true;
            fill(&mut rem, s as usize);
            opened += 1;
        } else {
            heap.push(fresh);
        }
    }
    open
}

/// An upper bound on f over k-sets holding `keep`, given the open set S:
/// the least of
/// - the uncapacitated bound at S (capacities only lower coverage);
/// - f(S) + the m largest f({j}) over closed j (submodularity:
///   Δⱼ(S) ≤ f({j}) = min(capⱼ, W(reachⱼ)));
/// - Σ_{keep} f({j}) + the m largest f({j}) of the pool (subadditivity).
fn bound(red: &Reduced, cap: &[f64], open: &[bool], f: f64, m: usize) -> f64 {
    let single = |s: usize| -> f64 {
        let w: f64 = red.fwd.row(s).iter().map(|&c| red.weight[c as usize]).sum();
        w.min(cap[s])
    };
    let pool = pool(red);
    let mut eng = Engine::new(red, false);
    for s in open_list(open) {
        eng.open_site(s);
    }
    let mut gains = cover_gains(&eng, &pool);
    let uncap = red.total_weight() - eng.value().unc + top_sum(&mut gains, m);
    let mut closed: Vec<f64> = pool
        .iter()
        .filter(|&&s| !open[s as usize])
        .map(|&s| single(s as usize))
        .collect();
    let from_s = f + top_sum(&mut closed, m);
    let mut all: Vec<f64> = pool.iter().map(|&s| single(s as usize)).collect();
    let kept: f64 = red.keep.iter().map(|&s| single(s as usize)).sum();
    let sub = kept + top_sum(&mut all, m);
    uncap.min(from_s).min(sub).min(red.total_weight())
}

pub(super) fn solve(inst: &Instance, opts: &Options, deadline: Instant) -> Solution {
    let red = reduce(inst, Costs::Mean);
    let cap = red
        .cap
        .clone()
        .unwrap_or_else(|| vec![f64::INFINITY; red.n_sites()]);
    let m = opts.k - red.keep.len();
    let mut open = greedy(&red, &cap, opts.k);
    let mut best = split(&red, &open);
    let mut ub = bound(&red, &cap, &open, best.total, m);
    let mut method = "greedy+swap";
    if super::relative_gap(best.total, ub) > OPTIMAL_GAP && wants_exact(opts, red.pairs()) {
        if let Some(milp) = exact::capacitated(&red, opts.k, &open, &best.flow, deadline) {
            method = "milp";
            if milp.bound.is_finite() {
                ub = ub.min(milp.bound);
            }
            if let Some(o) = milp
                .open
                .filter(|o| o.iter().filter(|&&x| x).count() == opts.k)
            {
                let s = split(&red, &o);
                if s.total > best.total {
                    best = s;
                    open = o;
                }
            }
        }
    }
    let (sites, gains) = order(&red, &cap, &open);
    let mut sol = super::answer(inst, &red, &sites, gains, method);
    // The assignment is the max-flow's, not nearest-first.
    let mut served = vec![0.0; red.n_classes()];
    sol.loads = sites
        .iter()
        .map(|&s| red.fwd.range(s as usize).map(|p| best.flow[p]).sum())
        .collect();
    sol.cost = 0.0;
    for p in 0..red.pairs() {
        served[red.fwd.index[p] as usize] += best.flow[p];
        sol.cost += best.flow[p] * red.fwd.cost_at(p);
    }
    sol.covered = best.total;
    sol.uncovered = uncovered(inst, &red, &served);
    sol.value = sol.covered;
    close(&mut sol, ub, true, true);
    sol
}

/// Members of a class share its served weight in member order; a member
/// not served in full is uncovered.
fn uncovered(inst: &Instance, red: &Reduced, served: &[f64]) -> Vec<u32> {
    let eps = 1e-9 * red.total_weight().max(f64::MIN_POSITIVE);
    let mut out = red.unreached.clone();
    for (c, &s) in served.iter().enumerate() {
        let mut left = s;
        for &i in red.members.row(c) {
            let w = inst.weights[i as usize];
            if left + eps >= w {
                left -= w;
            } else {
                left = 0.0;
                out.push(i);
            }
        }
    }
    out.sort_unstable();
    out
}

/// Keep first, then the others in the order the greedy rule opens them
/// when it may open only those; each gain is the max-flow of its prefix
/// less the previous one, so the gains sum to the covered weight.
fn order(red: &Reduced, cap: &[f64], open: &[bool]) -> (Vec<u32>, Vec<f64>) {
    let mut only = vec![false; red.n_sites()];
    for s in open_list(open) {
        only[s as usize] = !red.is_keep[s as usize];
    }
    let mut sites: Vec<u32> = red.keep.clone();
    sites.extend(greedy_within(red, cap, &only));
    let mut prefix = vec![false; red.n_sites()];
    let mut prev = 0.0;
    let mut gains = Vec::with_capacity(sites.len());
    for &s in &sites {
        prefix[s as usize] = true;
        let f = split(red, &prefix).total;
        gains.push(f - prev);
        prev = f;
    }
    (sites, gains)
}

/// The greedy rule restricted to `only` (keep assigned first): the order
/// in which it opens them all.
fn greedy_within(red: &Reduced, cap: &[f64], only: &[bool]) -> Vec<u32> {
    let mut rem = red.weight.clone();
    let fill = |rem: &mut [f64], s: usize| {
        let mut ps: Vec<usize> = red.fwd.range(s).collect();
        ps.sort_by(|&a, &b| red.fwd.cost_at(a).total_cmp(&red.fwd.cost_at(b)));
        let mut left = cap[s];
        for p in ps {
            let c = red.fwd.index[p] as usize;
            let take = left.min(rem[c]);
            rem[c] -= take;
            left -= take;
        }
    };
    for &s in &red.keep {
        fill(&mut rem, s as usize);
    }
    let mut left: Vec<u32> = (0..red.n_sites() as u32)
        .filter(|&s| only[s as usize])
        .collect();
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let (at, _) = left
            .iter()
            .enumerate()
            .map(|(at, &s)| {
                let w: f64 = red
                    .fwd
                    .row(s as usize)
                    .iter()
                    .map(|&c| rem[c as usize])
                    .sum();
                (at, w.min(cap[s as usize]))
            })
            .fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
        let s = left.swap_remove(at);
        fill(&mut rem, s as usize);
        out.push(s);
    }
    out
}
