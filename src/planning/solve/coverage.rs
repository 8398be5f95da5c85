//! Maximal covering and p-median: greedy + swaps with their bounds, then
//! the MILP when asked for and the heuristic has not closed the gap.

use std::time::Instant;

use super::{
    close, exact,
    greedy::{self, cover_gains, greedy, swaps, top_sum, Engine, Val},
    reduce::{reduce, Costs, Reduced},
    wants_exact, Instance, Options, Solution, OPTIMAL_GAP,
};

/// The heuristic's answer on a reduced instance.
struct Heuristic {
    open: Vec<bool>,
    val: Val,
    /// An upper bound on the covered weight of any k sites holding `keep`.
    cover_bound: f64,
}

fn heuristic(red: &Reduced, k: usize, use_cost: bool, deadline: Instant) -> Heuristic {
    let mut eng = Engine::new(red, use_cost);
    for &s in &red.keep {
        eng.open_site(s);
    }
    let pool = pool(red);
    let m = k - red.keep.len();
    let g = greedy(&mut eng, &pool, m, true);
    swaps(&mut eng, &pool, deadline);
    let val = eng.value();
    let covered = red.total_weight() - val.unc;
    let mut gains = cover_gains(&eng, &pool);
    let at_end = covered + top_sum(&mut gains, m);
    Heuristic {
        open: eng.open,
        val,
        cover_bound: g.cover_bound.min(at_end),
    }
}

/// The sites the solver may open or close: usable and not kept.
pub(super) fn pool(red: &Reduced) -> Vec<u32> {
    (0..red.n_sites() as u32)
        .filter(|&s| !red.is_keep[s as usize])
        .collect()
}

pub(super) fn open_list(open: &[bool]) -> Vec<u32> {
    (0..open.len() as u32)
        .filter(|&s| open[s as usize])
        .collect()
}

/// The value of an open set on a fresh state.
fn value_of(red: &Reduced, open: &[bool], use_cost: bool) -> Val {
    let mut eng = Engine::new(red, use_cost);
    for s in open_list(open) {
        eng.open_site(s);
    }
    eng.value()
}

/// Maximal covering without capacities.
pub(super) fn solve(inst: &Instance, opts: &Options, deadline: Instant) -> Solution {
    let red = reduce(inst, Costs::None);
    let total = red.total_weight();
    let h = heuristic(&red, opts.k, false, deadline);
    let mut open = h.open;
    let covered = total - h.val.unc;
    let mut bound = h.cover_bound;
    let mut method = "greedy+swap";
    let closed = |covered: f64, bound: f64| super::relative_gap(covered, bound) <= OPTIMAL_GAP;
    if !closed(covered, bound) && wants_exact(opts, red.pairs()) {
        if let Some(m) = exact::coverage(&red, opts.k, &open, deadline) {
            method = "milp";
            if m.bound.is_finite() {
                bound = bound.min(m.bound);
            }
            if let Some(o) = m
                .open
                .filter(|o| o.iter().filter(|&&x| x).count() == opts.k)
            {
                let c = total - value_of(&red, &o, false).unc;
                if c > covered {
                    open = o;
                }
            }
        }
    }
    let (sites, deltas) = greedy::order(&red, &open_list(&open), false);
    let gains = deltas.iter().map(|d| -d.unc).collect();
    let mut sol = super::answer(inst, &red, &sites, gains, method);
    sol.value = sol.covered;
    close(&mut sol, bound, true, true);
    sol
}

/// A lower bound on the cost of serving at least `covered` weight: each
/// class costs at least its weight times its cheapest reach, so the
/// cheapest classes filled up to `covered` (the last one in part) cost no
/// more than any answer covering that much.
fn cost_floor(red: &Reduced, covered: f64) -> f64 {
    let mut per: Vec<(f64, f64)> = (0..red.n_classes())
        .map(|c| {
            let m = red
                .rev
                .range(c)
                .map(|p| red.rev.cost_at(p))
                .fold(f64::INFINITY, f64::min);
            (m, red.weight[c])
        })
        .collect();
    per.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut left, mut floor) = (covered, 0.0);
    for (m, w) in per {
        if left <= 0.0 {
            break;
        }
        let take = w.min(left);
        floor += take * m;
        left -= take;
    }
    floor
}

/// P-median: the most coverage, then the least cost.
///
/// The exact path solves two MILPs: coverage alone (skipped when the
/// heuristic's coverage already meets its bound), then cost with the
/// coverage held at what the first found.
pub(super) fn solve_pmedian(inst: &Instance, opts: &Options, deadline: Instant) -> Solution {
    let red = reduce(inst, Costs::Exact);
    let total = red.total_weight();
    let h = heuristic(&red, opts.k, true, deadline);
    let mut open = h.open;
    let mut val = h.val;
    let mut cover_bound = h.cover_bound;
    let mut floor = cost_floor(&red, total - val.unc);
    let mut method = "greedy+swap";
    let cover_closed =
        |unc: f64, bound: f64| super::relative_gap(total - unc, bound) <= OPTIMAL_GAP;
    let closed = |val: Val, cover_bound: f64, floor: f64| {
        cover_closed(val.unc, cover_bound) && super::relative_gap(val.cost, floor) <= OPTIMAL_GAP
    };
    if !closed(val, cover_bound, floor) && wants_exact(opts, red.pairs()) {
        method = "milp";
        let mut target = total - val.unc;
        let mut warm = open.clone();
        if !cover_closed(val.unc, cover_bound) {
            // Sites are the usable candidates in order in every reduction,
            // so open sets carry over between them.
            let red_cov = reduce(inst, Costs::None);
            let now = Instant::now();
            let half = now + deadline.saturating_duration_since(now) / 2;
            if let Some(m) = exact::coverage(&red_cov, opts.k, &open, half) {
                if m.bound.is_finite() {
                    cover_bound = cover_bound.min(m.bound);
                }
                if let Some(o) = m
                    .open
                    .filter(|o| o.iter().filter(|&&x| x).count() == opts.k)
                {
                    let v = value_of(&red, &o, true);
                    if total - v.unc > target + 1e-9 * total {
                        target = total - v.unc;
                        if v.unc < val.unc {
                            val = v;
                            open = o.clone();
                        }
                        warm = o;
                    }
                }
            }
        }
        floor = floor.max(cost_floor(&red, target));
        let min_covered = target * (1.0 - 1e-9);
        if let Some(m) = exact::pmedian(&red, opts.k, min_covered, &warm, deadline) {
            if m.bound.is_finite() {
                floor = floor.max(m.bound);
            }
            if let Some(o) = m
                .open
                .filter(|o| o.iter().filter(|&&x| x).count() == opts.k)
            {
                let v = value_of(&red, &o, true);
                let tol = greedy::Tol {
                    unc: 1e-9 * total.max(f64::MIN_POSITIVE),
                    cost: 0.0,
                };
                if tol.improves(v - val) {
                    open = o;
                }
            }
        }
    }
    let (sites, deltas) = greedy::order(&red, &open_list(&open), true);
    let gains = deltas
        .iter()
        .enumerate()
        .map(|(t, d)| if t == 0 { d.cost } else { -d.cost })
        .collect();
    let mut sol = super::answer(inst, &red, &sites, gains, method);
    sol.value = sol.cost;
    let cover_proven = cover_closed(total - sol.covered, cover_bound);
    close(&mut sol, floor, false, cover_proven);
    sol
}
