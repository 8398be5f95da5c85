//! Location solvers over plain data: maximal covering (MCLP, optionally
//! capacitated), p-median and location set covering. No geography here:
//! an [`Instance`] is demand weights and, per candidate, the demand it
//! reaches and at what cost. The geographic front (cells, shelters,
//! exclusions) builds instances in `planning::siting`.
//!
//! Small instances are solved exactly (a MILP through HiGHS) and the
//! answer is proven optimal; large ones by greedy with lazy gains plus
//! swaps, which report the upper bound they reached, so a planner always
//! knows how far from optimal an answer can be.

use std::time::{Duration, Instant};

mod capacitated;
mod check;
mod coverage;
mod exact;
mod greedy;
mod reduce;
mod setcover;

/// A location problem's data.
#[derive(Debug, Clone, Default)]
pub struct Instance {
    /// Demand weight (people) per demand point; ≥ 0.
    pub weights: Vec<f64>,
    /// Per candidate: the demand points it reaches, each with its cost
    /// (metres or minutes; ≥ 0). A pair not listed is out of reach.
    /// Demand indices are < `weights.len()`, each at most once per candidate.
    pub reach: Vec<Vec<(u32, f64)>>,
    /// Per candidate: the people it can take (capacitated coverage only).
    pub capacity: Option<Vec<f64>>,
    /// Candidates that are open whatever the solver decides; they count
    /// toward `k` in coverage and p-median.
    pub keep: Vec<usize>,
    /// Candidates that are never opened.
    pub exclude: Vec<usize>,
}

/// The question asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// Open `k` candidates maximising the demand weight covered (with
    /// `capacity`: each candidate covers at most its capacity; demand may
    /// be split between candidates).
    Coverage,
    /// Open `k` candidates minimising Σ weight × cost of each demand to
    /// its nearest open candidate, among the choices that cover the most
    /// demand (lexicographic: coverage first, then cost).
    PMedian,
    /// Open the fewest candidates (beyond `keep`) so that every demand
    /// point any candidate reaches is covered; `k` is ignored.
    SetCover,
}

/// Whether to run the exact solver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exact {
    /// Exact when the instance is at most `Options::exact_max_pairs`.
    Auto,
    /// Always try the exact solver (within the time limit).
    Always,
    /// Heuristic only.
    Never,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub k: usize,
    pub exact: Exact,
    /// Largest instance (Σ reach lengths) `Exact::Auto` hands to the MILP.
    /// Counted after the instance is reduced: demand of weight 0 or out
    /// of every usable candidate's reach dropped, demand points with the
    /// same reach (and, for p-median, the same costs) merged.
    pub exact_max_pairs: usize,
    /// Wall-clock limit of a solve; past it the best answer found so far
    /// is returned with `optimal: false` and its gap.
    pub time_limit: Duration,
}

/// A solver's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// The open candidates (keep first, then the chosen ones in the order
    /// of their marginal gain, largest first).
    pub chosen: Vec<usize>,
    /// Per entry of `chosen`: what it adds to the objective when added in
    /// that order (covered weight for coverage and set cover; cost saved
    /// for p-median, the first one: its own total; a later site that
    /// brings demand no earlier one reached can save a negative amount).
    pub gains: Vec<f64>,
    /// Covered weight (coverage, set cover) of the answer.
    pub covered: f64,
    /// Σ weight × cost of the assignment (p-median; also reported for
    /// coverage as the assignment's total).
    pub cost: f64,
    /// The objective value: covered weight (coverage), cost (p-median),
    /// number of open candidates (set cover; `keep` included).
    pub value: f64,
    /// The best proven bound on the objective (upper for coverage, lower
    /// for p-median and set cover). Equal to `value` when optimal.
    pub bound: f64,
    /// Proven optimal (within 1e-6 relative). For p-median this also
    /// requires the coverage to be proven maximal; `bound` and `gap` are
    /// about the cost.
    pub optimal: bool,
    /// |bound − value| / max(|bound|, 1e-9); 0 when optimal.
    pub gap: f64,
    /// "milp" or "greedy+swap".
    pub method: &'static str,
    /// Demand indices left uncovered (weight > 0 not covered fully).
    pub uncovered: Vec<u32>,
    /// Capacitated coverage: per entry of `chosen`, the weight it takes
    /// (the best split's). Otherwise the weight it is nearest to.
    pub loads: Vec<f64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SolveError {
    /// The instance or the options are inconsistent; names the field.
    #[error("`{field}` {detail}")]
    Invalid { field: &'static str, detail: String },
}

/// Solves `inst` for `objective`.
///
/// The heuristic always runs first (it warm-starts the MILP and is the
/// fallback when the MILP is skipped, fails or runs out of time); the MILP
/// then runs when `opts.exact` asks for it and the heuristic has not
/// already proven its answer optimal. Demand of weight 0 and demand no
/// usable candidate reaches play no part in any objective; set cover
/// covers every demand point of positive weight some usable candidate
/// reaches. Capacities are read by capacitated coverage only.
///
/// Never panics on user data and returns within `opts.time_limit` plus the
/// time to build the model and run one greedy pass.
pub fn solve(
    inst: &Instance,
    objective: Objective,
    opts: &Options,
) -> Result<Solution, SolveError> {
    check::validate(inst, objective, opts)?;
    let deadline = Instant::now() + opts.time_limit;
    Ok(match objective {
        Objective::Coverage if inst.capacity.is_some() => capacitated::solve(inst, opts, deadline),
        Objective::Coverage => coverage::solve(inst, opts, deadline),
        Objective::PMedian => coverage::solve_pmedian(inst, opts, deadline),
        Objective::SetCover => setcover::solve(inst, opts, deadline),
    })
}

/// Relative tolerance under which a gap counts as closed.
const OPTIMAL_GAP: f64 = 1e-6;

/// `|bound − value| / max(|bound|, 1e-9)`.
fn relative_gap(value: f64, bound: f64) -> f64 {
    (bound - value).abs() / bound.abs().max(1e-9)
}

/// Fills `bound`, `gap` and `optimal` from a value and a bound. The bound
/// is clamped to the value's side (no bound beats an answer that exists);
/// `claim` false withholds the optimality claim whatever the gap.
fn close(sol: &mut Solution, bound: f64, maximise: bool, claim: bool) {
    let bound = if maximise {
        bound.max(sol.value)
    } else {
        bound.min(sol.value)
    };
    let gap = relative_gap(sol.value, bound);
    sol.optimal = claim && gap <= OPTIMAL_GAP;
    if sol.optimal {
        sol.bound = sol.value;
        sol.gap = 0.0;
    } else {
        sol.bound = bound;
        sol.gap = gap;
    }
}

/// The answer for reduced sites `sites` (in order) on the original
/// instance: each demand point to its cheapest open candidate (ties: the
/// earlier in `chosen`), which gives `covered`, `cost`, `loads` and
/// `uncovered`. `value`, `bound`, `gap` and `optimal` are left for the
/// caller.
fn answer(
    inst: &Instance,
    red: &reduce::Reduced,
    sites: &[u32],
    gains: Vec<f64>,
    method: &'static str,
) -> Solution {
    let chosen: Vec<usize> = sites.iter().map(|&s| red.site[s as usize]).collect();
    let mut best = vec![(f64::INFINITY, u32::MAX); inst.weights.len()];
    for (k, &j) in chosen.iter().enumerate() {
        for &(i, c) in &inst.reach[j] {
            let b = &mut best[i as usize];
            if c < b.0 {
                *b = (c, k as u32);
            }
        }
    }
    let mut loads = vec![0.0; chosen.len()];
    let (mut covered, mut cost) = (0.0, 0.0);
    let mut uncovered = Vec::new();
    for (i, &(c, k)) in best.iter().enumerate() {
        let w = inst.weights[i];
        if w <= 0.0 {
            continue;
        }
        if k == u32::MAX {
            uncovered.push(i as u32);
        } else {
            covered += w;
            cost += w * c;
            loads[k as usize] += w;
        }
    }
    Solution {
        chosen,
        gains,
        covered,
        cost,
        value: 0.0,
        bound: 0.0,
        optimal: false,
        gap: 0.0,
        method,
        uncovered,
        loads,
    }
}

/// Whether the MILP should run on a reduced instance of `pairs` pairs.
fn wants_exact(opts: &Options, pairs: usize) -> bool {
    match opts.exact {
        Exact::Always => true,
        Exact::Never => false,
        Exact::Auto => pairs <= opts.exact_max_pairs,
    }
}

#[cfg(test)]
mod tests;
