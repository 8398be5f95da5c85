//! The solvers on an instance the planner brings: demand with weights,
//! candidates, and the travel costs between them from their own routing
//! engine (a pair not listed is out of reach).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::{
    solve::{Instance, Objective, Solution},
    PlanningError,
};

pub const MAX_DEMAND: usize = 200_000;
pub const MAX_CANDIDATES: usize = 20_000;
pub const MAX_COSTS: usize = 2_000_000;
const MAX_ID_LEN: usize = 200;

/// A parsed explicit instance, with the ids to answer in.
pub struct Explicit {
    pub demand_ids: Vec<Value>,
    pub candidate_ids: Vec<Value>,
    pub instance: Instance,
}

fn id_of(v: Option<&Value>, field: &str) -> Result<Value, PlanningError> {
    match v {
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_ID_LEN => {
            Ok(Value::String(s.clone()))
        }
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Value::Number(n.clone())),
        _ => Err(PlanningError::invalid(
            field,
            format!("must be an integer or a string of 1 to {MAX_ID_LEN} characters"),
        )),
    }
}

fn key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn list<'a>(
    body: &'a Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<&'a Vec<Value>, PlanningError> {
    let a = body
        .get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| PlanningError::invalid(field, "must be an array"))?;
    if a.len() > max {
        return Err(PlanningError::invalid(
            field,
            format!("has {} entries; at most {max}", a.len()),
        ));
    }
    Ok(a)
}

fn finite(v: Option<&Value>, field: &str) -> Result<f64, PlanningError> {
    v.and_then(Value::as_f64)
        .filter(|x| x.is_finite() && *x >= 0.0)
        .ok_or_else(|| PlanningError::invalid(field, "must be a number ≥ 0"))
}

/// Read `demand`, `candidates` and `costs` (and `radius`, `keep`,
/// `exclude`) of a request body.
pub fn parse(body: &Map<String, Value>) -> Result<Explicit, PlanningError> {
    let demand = list(body, "demand", MAX_DEMAND)?;
    let candidates = list(body, "candidates", MAX_CANDIDATES)?;
    let costs = list(body, "costs", MAX_COSTS)?;
    if demand.is_empty() {
        return Err(PlanningError::invalid("demand", "is empty"));
    }
    if candidates.is_empty() {
        return Err(PlanningError::invalid("candidates", "is empty"));
    }
    let radius = match body.get("radius") {
        None | Some(Value::Null) => f64::INFINITY,
        v => {
            let r = finite(v, "radius")?;
            if r <= 0.0 {
                return Err(PlanningError::invalid("radius", "must be > 0"));
            }
            r
        }
    };
    let mut demand_ids = Vec::with_capacity(demand.len());
    let mut weights = Vec::with_capacity(demand.len());
    let mut demand_at = HashMap::with_capacity(demand.len());
    for (i, d) in demand.iter().enumerate() {
        let id = id_of(d.get("id"), &format!("demand[{i}].id"))?;
        if demand_at.insert(key(&id), i).is_some() {
            return Err(PlanningError::invalid(
                &format!("demand[{i}].id"),
                format!("{id} is listed twice"),
            ));
        }
        weights.push(finite(d.get("weight"), &format!("demand[{i}].weight"))?);
        demand_ids.push(id);
    }
    let mut candidate_ids = Vec::with_capacity(candidates.len());
    let mut candidate_at = HashMap::with_capacity(candidates.len());
    let mut capacity: Vec<Option<f64>> = Vec::with_capacity(candidates.len());
    for (j, c) in candidates.iter().enumerate() {
        let id = id_of(c.get("id"), &format!("candidates[{j}].id"))?;
        if candidate_at.insert(key(&id), j).is_some() {
            return Err(PlanningError::invalid(
                &format!("candidates[{j}].id"),
                format!("{id} is listed twice"),
            ));
        }
        capacity.push(match c.get("capacity") {
            None | Some(Value::Null) => None,
            v => Some(finite(v, &format!("candidates[{j}].capacity"))?),
        });
        candidate_ids.push(id);
    }
    let mut reach: Vec<Vec<(u32, f64)>> = vec![Vec::new(); candidates.len()];
    for (n, c) in costs.iter().enumerate() {
        let d = id_of(c.get("demand"), &format!("costs[{n}].demand"))?;
        let j = id_of(c.get("candidate"), &format!("costs[{n}].candidate"))?;
        let &i = demand_at.get(&key(&d)).ok_or_else(|| {
            PlanningError::invalid(
                &format!("costs[{n}].demand"),
                format!("{d} is not a demand id"),
            )
        })?;
        let &j = candidate_at.get(&key(&j)).ok_or_else(|| {
            PlanningError::invalid(
                &format!("costs[{n}].candidate"),
                format!("{j} is not a candidate id"),
            )
        })?;
        let cost = c
            .get("cost")
            .and_then(Value::as_f64)
            .filter(|x| x.is_finite())
            .ok_or_else(|| {
                PlanningError::invalid(&format!("costs[{n}].cost"), "must be a number")
            })?;
        if cost < 0.0 {
            return Err(PlanningError::invalid(
                &format!("costs[{n}].cost"),
                format!("must not be negative, got {cost}"),
            ));
        }
        if cost <= radius {
            reach[j].push((u32::try_from(i).unwrap_or(u32::MAX), cost));
        }
    }
    for (j, r) in reach.iter_mut().enumerate() {
        r.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let before = r.len();
        r.dedup_by_key(|p| p.0);
        if r.len() != before {
            return Err(PlanningError::invalid(
                "costs",
                format!("lists a pair with candidate {} twice", candidate_ids[j]),
            ));
        }
    }
    let ids = |field: &str| -> Result<Vec<usize>, PlanningError> {
        match body.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(n, v)| {
                    let id = id_of(Some(v), &format!("{field}[{n}]"))?;
                    candidate_at.get(&key(&id)).copied().ok_or_else(|| {
                        PlanningError::invalid(
                            &format!("{field}[{n}]"),
                            format!("{id} is not a candidate id"),
                        )
                    })
                })
                .collect(),
            Some(_) => Err(PlanningError::invalid(
                field,
                "must be an array of candidate ids",
            )),
        }
    };
    let keep = ids("keep")?;
    let exclude = ids("exclude")?;
    // A candidate without a capacity among capacitated ones holds all.
    let everyone: f64 = weights.iter().sum();
    let capacity = if capacity.iter().any(Option::is_some) {
        Some(
            capacity
                .into_iter()
                .map(|c| c.unwrap_or(everyone))
                .collect(),
        )
    } else {
        None
    };
    Ok(Explicit {
        demand_ids,
        candidate_ids,
        instance: Instance {
            weights,
            reach,
            capacity,
            keep,
            exclude,
        },
    })
}

impl Explicit {
    /// The answer in the request's ids.
    pub fn to_json(&self, objective: Objective, s: &Solution, elapsed_ms: u64) -> Value {
        json!({
            "objective": match objective {
                Objective::Coverage => "coverage",
                Objective::PMedian => "p_median",
                Objective::SetCover => "set_cover",
            },
            "chosen": s.chosen.iter().map(|&j| self.candidate_ids[j].clone()).collect::<Vec<_>>(),
            "marginal_gains": s.gains,
            "covered_weight": s.covered,
            "total_weight": self.instance.weights.iter().sum::<f64>(),
            "uncovered": s.uncovered.iter().map(|&i| self.demand_ids[i as usize].clone()).collect::<Vec<_>>(),
            "cost": s.cost,
            "objective_value": s.value,
            "bound": s.bound,
            "optimal": s.optimal,
            "gap": s.gap,
            "method": s.method,
            "loads": if self.instance.capacity.is_some() { json!(s.loads) } else { Value::Null },
            "elapsed_ms": elapsed_ms,
        })
    }
}
