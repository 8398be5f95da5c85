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

use std::time::Duration;

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
    /// for p-median, the first one: its own total).
    pub gains: Vec<f64>,
    /// Covered weight (coverage, set cover) of the answer.
    pub covered: f64,
    /// Σ weight × cost of the assignment (p-median; also reported for
    /// coverage as the assignment's total).
    pub cost: f64,
    /// The objective value: covered weight (coverage), cost (p-median),
    /// number of open candidates (set cover).
    pub value: f64,
    /// The best proven bound on the objective (upper for coverage, lower
    /// for p-median and set cover). Equal to `value` when optimal.
    pub bound: f64,
    /// Proven optimal (within 1e-6 relative).
    pub optimal: bool,
    /// |bound − value| / max(|bound|, 1e-9); 0 when optimal.
    pub gap: f64,
    /// "milp" or "greedy+swap".
    pub method: &'static str,
    /// Demand indices left uncovered (weight > 0 not covered fully).
    pub uncovered: Vec<u32>,
    /// Capacitated coverage: per entry of `chosen`, the weight it takes.
    pub loads: Vec<f64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SolveError {
    /// The instance or the options are inconsistent; names the field.
    #[error("`{field}` {detail}")]
    Invalid { field: &'static str, detail: String },
}

pub fn solve(
    inst: &Instance,
    objective: Objective,
    opts: &Options,
) -> Result<Solution, SolveError> {
    let _ = (inst, objective, opts);
    Err(SolveError::Invalid {
        field: "objective",
        detail: "not yet implemented".into(),
    })
}
