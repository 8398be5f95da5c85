//! Where the next shelters go: the population the existing shelters leave
//! uncovered is the demand, candidate sites (a layer, the grid's cells or
//! points a planner brings) outside flood zones and hazard radii are the
//! supply, and the solvers choose k of them.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{
    coverage::{allocate, coverage, Shelter, Site},
    demand::{Demand, PointGrid},
    exclusions::{Exclusion, Exclusions},
    solve::{self, Exact, Instance, Objective, Options, Solution},
    standards::Figures,
    PlanningError,
};
use crate::settings::PlanningSettings;

/// Candidate sites a request may name at most.
pub const MAX_CANDIDATES: usize = 50_000;
/// (cell, candidate) pairs in reach an instance may hold at most: about
/// 16 bytes each, so ≈ 500 MB at the limit.
pub const MAX_PAIRS: usize = 30_000_000;

/// A candidate site.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its id as the planner knows it: a feature id, a cell id or the id
    /// given with a point.
    pub id: Value,
    pub name: Option<String>,
    pub point: [f64; 2],
    /// People it would hold (capacity-aware siting).
    pub capacity: Option<f64>,
}

/// The state of the one map a run reads.
pub struct World {
    pub demand: Demand,
    pub shelters: Vec<Shelter>,
    pub exclusions: Exclusions,
}

/// A siting question in the map's terms.
pub struct Siting {
    pub k: usize,
    pub figures: Figures,
    pub keep: Vec<Value>,
    pub exclude: Vec<Value>,
    pub capacity_aware: bool,
    pub objective: Objective,
    pub exact: Exact,
    pub time_limit: Duration,
    /// Whether existing shelters inside exclusions still count as cover.
    pub include_excluded: bool,
}

/// People covered, before or after.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Totals {
    pub total: f64,
    pub covered: f64,
}

impl Totals {
    pub fn to_json(self) -> Value {
        json!({
            "total_population": round(self.total),
            "covered_population": round(self.covered),
            "uncovered_population": round(self.total - self.covered),
            "coverage_ratio": if self.total > 0.0 { (self.covered / self.total * 10_000.0).round() / 10_000.0 } else { 0.0 },
        })
    }
}

/// The answer of a siting run.
pub struct Answer {
    pub before: Totals,
    pub after: Totals,
    /// Per demand point, people covered before and after.
    pub covered_before: Vec<f64>,
    pub covered_after: Vec<f64>,
    /// The chosen candidates in order, with gain and load.
    pub sites: Vec<Proposed>,
    pub ruled_out: Vec<(Value, RuledOut)>,
    pub solution: Solution,
    pub elapsed: Duration,
    pub candidates_considered: usize,
}

pub struct Proposed {
    pub candidate: Candidate,
    pub rank: usize,
    pub marginal_gain: f64,
    pub load: f64,
    pub kept: bool,
}

#[derive(Debug, Clone)]
pub enum RuledOut {
    Zone(Exclusion),
    Excluded,
}

impl RuledOut {
    pub fn to_json(&self, candidate: &Value) -> Value {
        match self {
            RuledOut::Zone(e) => {
                let mut v = e.to_json();
                v["candidate"] = candidate.clone();
                v
            }
            RuledOut::Excluded => json!({
                "candidate": candidate, "reason": "excluded",
                "detail": "excluded by the request",
            }),
        }
    }
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Whether two candidate ids name the same site (`7` and `"7"` do).
pub fn same_id(a: &Value, b: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text(a) == text(b)
}

/// Run a siting question over `world` with `candidates`.
pub fn site(
    settings: &PlanningSettings,
    world: &World,
    q: &Siting,
    candidates: Vec<Candidate>,
) -> Result<Answer, PlanningError> {
    let started = Instant::now();
    if world.demand.is_empty() || world.demand.total() <= 0.0 {
        return Err(PlanningError::invalid(
            "population",
            format!(
                "the population layer `{}` has no people",
                settings.population_layer
            ),
        ));
    }
    if candidates.len() > MAX_CANDIDATES {
        return Err(PlanningError::invalid(
            "candidates",
            format!("{} candidates; at most {MAX_CANDIDATES}", candidates.len()),
        ));
    }
    for (field, ids) in [("keep", &q.keep), ("exclude", &q.exclude)] {
        if let Some(unknown) = ids
            .iter()
            .find(|id| !candidates.iter().any(|c| same_id(&c.id, id)))
        {
            return Err(PlanningError::invalid(
                field,
                format!("names {unknown}, which is not a candidate"),
            ));
        }
    }
    if let Some(both) = q
        .keep
        .iter()
        .find(|k| q.exclude.iter().any(|e| same_id(e, k)))
    {
        return Err(PlanningError::invalid(
            "exclude",
            format!("names {both}, which `keep` names too"),
        ));
    }
    let demand = &world.demand;
    let grid = PointGrid::new(&demand.points, q.figures.radius_m);
    let before = coverage(
        settings,
        demand,
        &grid,
        &world.shelters,
        &q.figures,
        q.capacity_aware,
        q.include_excluded,
    );
    let covered_before = before.allocation.covered.clone();
    let residual: Vec<f64> = demand
        .weights
        .iter()
        .zip(&covered_before)
        .map(|(w, c)| (w - c).max(0.0))
        .collect();

    // Candidates the standards rule out, and those the planner excluded.
    let mut ruled_out = Vec::new();
    let mut usable: Vec<Candidate> = Vec::new();
    for c in candidates {
        if q.exclude.iter().any(|e| same_id(e, &c.id)) {
            ruled_out.push((c.id.clone(), RuledOut::Excluded));
        } else if let Some(e) = world.exclusions.check(c.point) {
            if let Some(k) = q.keep.iter().find(|k| same_id(k, &c.id)) {
                return Err(PlanningError::invalid(
                    "keep",
                    format!("names {k}, which is ruled out: {}", e.detail()),
                ));
            }
            ruled_out.push((c.id.clone(), RuledOut::Zone(e)));
        } else {
            usable.push(c);
        }
    }
    if q.objective != Objective::SetCover && (q.k < 1 || q.k > usable.len()) {
        return Err(PlanningError::invalid(
            "k",
            format!(
                "must be between 1 and the {} usable candidates ({} ruled out), got {}",
                usable.len(),
                ruled_out.len(),
                q.k
            ),
        ));
    }
    if q.capacity_aware {
        if let Some(c) = usable.iter().find(|c| c.capacity.is_none()) {
            return Err(PlanningError::invalid(
                "capacity",
                format!(
                    "capacity-aware siting needs a capacity for every candidate; candidate {} has none (give `capacity`)",
                    c.id
                ),
            ));
        }
    }

    // The instance: uncovered people only, numbered densely.
    let mut dense = vec![u32::MAX; demand.len()];
    let mut weights = Vec::new();
    let mut reach = Vec::with_capacity(usable.len());
    let mut pairs = 0usize;
    for c in &usable {
        let mut r = Vec::new();
        grid.within(c.point, q.figures.radius_m, |i, d| {
            if residual[i as usize] > 0.0 {
                let slot = &mut dense[i as usize];
                if *slot == u32::MAX {
                    *slot = u32::try_from(weights.len()).unwrap_or(u32::MAX);
                    weights.push(residual[i as usize]);
                }
                r.push((*slot, d));
            }
        });
        r.sort_unstable_by_key(|p| p.0);
        pairs += r.len();
        if pairs > MAX_PAIRS {
            return Err(PlanningError::invalid(
                "radius_m",
                format!("the instance exceeds {MAX_PAIRS} (cell, candidate) pairs in reach; use fewer candidates or a smaller radius"),
            ));
        }
        reach.push(r);
    }
    let index_of = |id: &Value| usable.iter().position(|c| same_id(&c.id, id));
    let instance = Instance {
        weights,
        reach,
        capacity: q
            .capacity_aware
            .then(|| usable.iter().map(|c| c.capacity.unwrap_or(0.0)).collect()),
        keep: q.keep.iter().filter_map(index_of).collect(),
        exclude: Vec::new(),
    };
    let options = Options {
        k: q.k,
        exact: q.exact,
        exact_max_pairs: settings.exact_max_pairs,
        time_limit: q.time_limit,
    };
    let solution = solve::solve(&instance, q.objective, &options).map_err(PlanningError::from)?;

    // Who the new sites take: the solver's loads when capacitated, else
    // each newly covered cell to its nearest new site.
    let chosen: Vec<Site> = solution
        .chosen
        .iter()
        .map(|&j| Site {
            point: usable[j].point,
            capacity: usable[j].capacity.filter(|_| q.capacity_aware),
        })
        .collect();
    let new = allocate(
        &residual,
        &grid,
        &chosen,
        q.figures.radius_m,
        q.capacity_aware,
    );
    let loads = if q.capacity_aware && solution.loads.len() == chosen.len() {
        solution.loads.clone()
    } else {
        new.loads.clone()
    };
    let covered_after: Vec<f64> = covered_before
        .iter()
        .zip(&new.covered)
        .map(|(b, n)| b + n)
        .collect();
    let before_totals = Totals {
        total: before.total,
        covered: before.covered,
    };
    let added = if q.objective == Objective::Coverage {
        solution.covered
    } else {
        new.covered_total()
    };
    let sites = solution
        .chosen
        .iter()
        .enumerate()
        .map(|(r, &j)| Proposed {
            candidate: usable[j].clone(),
            rank: r + 1,
            marginal_gain: solution.gains.get(r).copied().unwrap_or(0.0),
            load: loads.get(r).copied().unwrap_or(0.0),
            kept: instance.keep.contains(&j),
        })
        .collect();
    Ok(Answer {
        before: before_totals,
        after: Totals {
            total: before.total,
            covered: (before.covered + added).min(before.total),
        },
        covered_before,
        covered_after,
        sites,
        ruled_out,
        solution,
        elapsed: started.elapsed(),
        candidates_considered: usable.len(),
    })
}

impl Answer {
    /// As `POST /api/planning/siting` answers it.
    pub fn to_json(&self, figures: &Figures) -> Value {
        let features: Vec<Value> = self
            .sites
            .iter()
            .map(|s| {
                json!({
                    "type": "Feature",
                    "geometry": { "type": "Point", "coordinates": s.candidate.point },
                    "properties": {
                        "candidate": s.candidate.id,
                        "name": s.candidate.name,
                        "rank": s.rank,
                        "marginal_gain": round(s.marginal_gain),
                        "capacity": s.candidate.capacity,
                        "load": round(s.load),
                        "kept": s.kept,
                    },
                })
            })
            .collect();
        let s = &self.solution;
        json!({
            "sites": { "type": "FeatureCollection", "features": features },
            "before": self.before.to_json(),
            "after": self.after.to_json(),
            "newly_covered_population": round(self.after.covered - self.before.covered),
            "ruled_out": self.ruled_out.iter().map(|(id, r)| r.to_json(id)).collect::<Vec<_>>(),
            "candidates_considered": self.candidates_considered,
            "optimal": s.optimal,
            "gap": s.gap,
            "bound": round(s.bound),
            "objective_value": round(s.value),
            "method": s.method,
            "elapsed_ms": self.elapsed.as_millis() as u64,
            "standards": figures.to_json(),
        })
    }
}
