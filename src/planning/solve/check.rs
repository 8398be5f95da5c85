//! Validation of an instance and its options before any solver runs: the
//! solvers index with these numbers, so a bad one must stop here.

use super::{Instance, Objective, Options, SolveError};

fn invalid(field: &'static str, detail: String) -> SolveError {
    SolveError::Invalid { field, detail }
}

/// Checks everything the solvers rely on; names the first field found wrong.
pub(super) fn validate(
    inst: &Instance,
    objective: Objective,
    opts: &Options,
) -> Result<(), SolveError> {
    let n_demand = inst.weights.len();
    let n_cand = inst.reach.len();
    if n_demand > u32::MAX as usize || n_cand > u32::MAX as usize {
        return Err(invalid("weights", "has more than 2^32 entries".into()));
    }
    if let Some(i) = inst.weights.iter().position(|w| !w.is_finite() || *w < 0.0) {
        return Err(invalid(
            "weights",
            format!(
                "[{i}] is {}: weights must be finite and ≥ 0",
                inst.weights[i]
            ),
        ));
    }

    // A stamp per demand point finds a point listed twice by one candidate
    // in one pass over the pairs.
    let mut stamp = vec![u32::MAX; n_demand];
    for (j, list) in inst.reach.iter().enumerate() {
        for &(i, cost) in list {
            let Some(seen) = stamp.get_mut(i as usize) else {
                return Err(invalid(
                    "reach",
                    format!(
                        "candidate {j} reaches demand {i}, but there are {n_demand} demand points"
                    ),
                ));
            };
            if *seen == j as u32 {
                return Err(invalid(
                    "reach",
                    format!("candidate {j} lists demand {i} twice"),
                ));
            }
            *seen = j as u32;
            if !cost.is_finite() || cost < 0.0 {
                return Err(invalid(
                    "reach",
                    format!("candidate {j} reaches demand {i} at cost {cost}: costs must be finite and ≥ 0"),
                ));
            }
        }
    }

    if let Some(cap) = &inst.capacity {
        if cap.len() != n_cand {
            return Err(invalid(
                "capacity",
                format!("has {} entries for {n_cand} candidates", cap.len()),
            ));
        }
        if let Some(j) = cap.iter().position(|c| !c.is_finite() || *c < 0.0) {
            return Err(invalid(
                "capacity",
                format!("[{j}] is {}: capacities must be finite and ≥ 0", cap[j]),
            ));
        }
    }

    let mut role = vec![0u8; n_cand];
    for (field, list, mark) in [("exclude", &inst.exclude, 1u8), ("keep", &inst.keep, 2u8)] {
        for &j in list {
            let Some(r) = role.get_mut(j) else {
                return Err(invalid(
                    field,
                    format!("names candidate {j}, but there are {n_cand} candidates"),
                ));
            };
            if *r == mark {
                return Err(invalid(field, format!("names candidate {j} twice")));
            }
            if *r != 0 {
                return Err(invalid(
                    "keep",
                    format!("candidate {j} is both kept and excluded"),
                ));
            }
            *r = mark;
        }
    }

    if objective != Objective::SetCover {
        let usable = n_cand - inst.exclude.len();
        if opts.k < 1 {
            return Err(invalid("k", "must be at least 1".into()));
        }
        if opts.k > usable {
            return Err(invalid(
                "k",
                format!(
                    "is {} but only {usable} candidates are not excluded",
                    opts.k
                ),
            ));
        }
        if inst.keep.len() > opts.k {
            return Err(invalid(
                "keep",
                format!(
                    "names {} candidates, more than k = {}",
                    inst.keep.len(),
                    opts.k
                ),
            ));
        }
    }
    Ok(())
}
