//! The exact solvers: each question as a MILP for HiGHS, warm-started from
//! the heuristic's answer, within what is left of the time limit.
//!
//! Every model has one binary yₛ per usable site (kept sites fixed at 1),
//! as its first columns; the callers read the open set from those and
//! re-evaluate it themselves, so a solver tolerance never leaks into a
//! reported value.

use std::time::Instant;

use highs::{ColProblem, HighsSolutionStatus, Row, Sense};

use super::reduce::Reduced;

/// Below this many seconds left, HiGHS is not started: building the model
/// alone would overrun.
const MIN_SECS: f64 = 0.02;

/// HiGHS' answer.
pub(super) struct Milp {
    /// The incumbent's open sites, when HiGHS has one.
    pub open: Option<Vec<bool>>,
    /// HiGHS' dual bound on the objective (NaN when it has none).
    pub bound: f64,
}

fn left(deadline: Instant) -> f64 {
    deadline
        .saturating_duration_since(Instant::now())
        .as_secs_f64()
}

fn run(
    pb: ColProblem,
    sense: Sense,
    warm: &[f64],
    n_sites: usize,
    presolve: bool,
    deadline: Instant,
) -> Option<Milp> {
    if left(deadline) < MIN_SECS {
        return None;
    }
    let mut model = pb.try_optimise(sense).ok()?;
    model.make_quiet();
    let secs = left(deadline);
    if secs < MIN_SECS {
        return None;
    }
    // HiGHS' default relative gap (1e-4) would call an answer optimal that
    // the contract (1e-6) does not.
    model.try_set_option("time_limit", secs).ok()?;
    model.try_set_option("mip_rel_gap", 1e-7).ok()?;
    if !presolve {
        model.try_set_option("presolve", "off").ok()?;
    }
    // A warm start HiGHS rejects only costs it the head start.
    let _ = model.try_set_solution(Some(warm), None, None, None);
    let solved = model.try_solve().ok()?;
    let bound = solved
        .double_info_value(c"mip_dual_bound")
        .unwrap_or(f64::NAN);
    let open = (solved.primal_solution_status() == HighsSolutionStatus::Feasible).then(|| {
        let cols = solved.get_solution();
        cols.columns()[..n_sites].iter().map(|&y| y > 0.5).collect()
    });
    // An optimal status needs no flag here: the dual bound then meets
    // the incumbent within mip_rel_gap, and the callers compare the two.
    Some(Milp { open, bound })
}

/// Adds the yₛ columns; `rows_of(s)` lists each one's other entries.
fn add_sites(
    pb: &mut ColProblem,
    red: &Reduced,
    cost: f64,
    mut rows_of: impl FnMut(usize) -> Vec<(Row, f64)>,
) {
    for s in 0..red.n_sites() {
        let lo = if red.is_keep[s] { 1.0 } else { 0.0 };
        pb.add_integer_column(cost, lo..=1.0, rows_of(s));
    }
}

fn warm_sites(warm: &[bool]) -> Vec<f64> {
    warm.iter().map(|&o| if o { 1.0 } else { 0.0 }).collect()
}

/// Maximal covering: max Σ W_c z_c, z_c ≤ Σ_{s reaches c} yₛ, Σ y = k.
pub(super) fn coverage(red: &Reduced, k: usize, warm: &[bool], deadline: Instant) -> Option<Milp> {
    let mut pb = ColProblem::default();
    let class_rows: Vec<Row> = (0..red.n_classes()).map(|_| pb.add_row(..=0.0)).collect();
    let k_row = pb.add_row(k as f64..=k as f64);
    add_sites(&mut pb, red, 0.0, |s| {
        let mut v: Vec<(Row, f64)> = red
            .fwd
            .row(s)
            .iter()
            .map(|&c| (class_rows[c as usize], -1.0))
            .collect();
        v.push((k_row, 1.0));
        v
    });
    let mut start = warm_sites(warm);
    for (c, &row) in class_rows.iter().enumerate() {
        pb.add_column(red.weight[c], 0.0..=1.0, [(row, 1.0)]);
        let covered = red.rev.row(c).iter().any(|&s| warm[s as usize]);
        start.push(if covered { 1.0 } else { 0.0 });
    }
    run(pb, Sense::Maximise, &start, red.n_sites(), true, deadline)
}

/// Capacitated covering: x_p ∈ [0, 1] is the share of pair p's class that
/// its site takes: Σ_s x_cs ≤ 1, Σ_c W_c x_cs ≤ capₛ yₛ, x_cs ≤ yₛ (the
/// last is implied when yₛ is integral, and tightens the relaxation),
/// Σ y = k; max Σ W_c x_cs. `warm_flow` is the heuristic's weight per
/// pair (indexed like `red.fwd`).
pub(super) fn capacitated(
    red: &Reduced,
    k: usize,
    warm: &[bool],
    warm_flow: &[f64],
    deadline: Instant,
) -> Option<Milp> {
    let cap = red.cap.as_ref()?;
    let mut pb = ColProblem::default();
    let class_rows: Vec<Row> = (0..red.n_classes()).map(|_| pb.add_row(..=1.0)).collect();
    let site_rows: Vec<Row> = (0..red.n_sites()).map(|_| pb.add_row(..=0.0)).collect();
    let pair_rows: Vec<Row> = (0..red.pairs()).map(|_| pb.add_row(..=0.0)).collect();
    let k_row = pb.add_row(k as f64..=k as f64);
    add_sites(&mut pb, red, 0.0, |s| {
        let mut v: Vec<(Row, f64)> = red.fwd.range(s).map(|p| (pair_rows[p], -1.0)).collect();
        v.push((site_rows[s], -cap[s]));
        v.push((k_row, 1.0));
        v
    });
    let mut start = warm_sites(warm);
    for (s, &site_row) in site_rows.iter().enumerate() {
        for p in red.fwd.range(s) {
            let c = red.fwd.index[p] as usize;
            let w = red.weight[c];
            pb.add_column(
                w,
                0.0..=1.0,
                [(class_rows[c], 1.0), (site_row, w), (pair_rows[p], 1.0)],
            );
            start.push((warm_flow.get(p).copied().unwrap_or(0.0) / w).clamp(0.0, 1.0));
        }
    }
    run(pb, Sense::Maximise, &start, red.n_sites(), true, deadline)
}

/// P-median, second stage: min Σ W_c cost_cs x_cs with Σ_s x_cs ≤ 1,
/// x_cs ≤ yₛ, Σ y = k and Σ W_c x_cs ≥ `min_covered` (the first stage's
/// coverage, less a tolerance: the row is then a relaxation of "covers
/// the most", so HiGHS' dual bound stays a valid lower bound).
pub(super) fn pmedian(
    red: &Reduced,
    k: usize,
    min_covered: f64,
    warm: &[bool],
    deadline: Instant,
) -> Option<Milp> {
    let mut pb = ColProblem::default();
    let class_rows: Vec<Row> = (0..red.n_classes()).map(|_| pb.add_row(..=1.0)).collect();
    let pair_rows: Vec<Row> = (0..red.pairs()).map(|_| pb.add_row(..=0.0)).collect();
    let k_row = pb.add_row(k as f64..=k as f64);
    let cover_row = pb.add_row(min_covered..);
    add_sites(&mut pb, red, 0.0, |s| {
        let mut v: Vec<(Row, f64)> = red.fwd.range(s).map(|p| (pair_rows[p], -1.0)).collect();
        v.push((k_row, 1.0));
        v
    });
    // Warm assignment: each class to its cheapest open site.
    let mut best = vec![(f64::INFINITY, usize::MAX); red.n_classes()];
    for s in (0..red.n_sites()).filter(|&s| warm[s]) {
        for p in red.fwd.range(s) {
            let c = red.fwd.index[p] as usize;
            if red.fwd.cost_at(p) < best[c].0 {
                best[c] = (red.fwd.cost_at(p), p);
            }
        }
    }
    let mut start = warm_sites(warm);
    start.resize(red.n_sites() + red.pairs(), 0.0);
    for &(_, p) in &best {
        if p != usize::MAX {
            start[red.n_sites() + p] = 1.0;
        }
    }
    for s in 0..red.n_sites() {
        for p in red.fwd.range(s) {
            let c = red.fwd.index[p] as usize;
            let w = red.weight[c];
            pb.add_column(
                w * red.fwd.cost_at(p),
                0.0..=1.0,
                [(class_rows[c], 1.0), (pair_rows[p], 1.0), (cover_row, w)],
            );
        }
    }
    // HiGHS 1.16's presolve mishandles this model when the coverage row
    // is tight (it reports an objective below the true optimum with the
    // warm start, infeasible without; with every presolve rule switched
    // off too): the p-median LP is strong, solve it without presolve.
    run(pb, Sense::Minimise, &start, red.n_sites(), false, deadline)
}

/// Set cover: min Σ y with Σ_{s reaches c} yₛ ≥ 1 for every class in
/// `required`.
pub(super) fn setcover(
    red: &Reduced,
    required: &[bool],
    warm: &[bool],
    deadline: Instant,
) -> Option<Milp> {
    let mut pb = ColProblem::default();
    let rows: Vec<Option<Row>> = required
        .iter()
        .map(|&r| r.then(|| pb.add_row(1.0..)))
        .collect();
    add_sites(&mut pb, red, 1.0, |s| {
        red.fwd
            .row(s)
            .iter()
            .filter_map(|&c| rows[c as usize].map(|r| (r, 1.0)))
            .collect()
    });
    run(
        pb,
        Sense::Minimise,
        &warm_sites(warm),
        red.n_sites(),
        true,
        deadline,
    )
}
