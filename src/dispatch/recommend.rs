//! The run card: which standby teams together cover an incident's required
//! capabilities at the smallest worst ETA, and why each is proposed.

use std::ops::ControlFlow;

use axum::{
    extract::{Path, State},
    Json,
};
use serde::Serialize;
use serde_json::{json, Value};

use super::{
    incidents::{incident, path_id},
    nearest::round1,
    strings, text,
    travel::Travel,
    TEAMS,
};
use crate::{error::AppError, index::SpatialIndex, AppState};

/// A standby team that could go, with its travel time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub id: i64,
    pub name: Option<String>,
    pub team_type: Option<String>,
    pub capabilities: Vec<String>,
    pub distance_m: f64,
    pub eta_min: f64,
}

/// A proposed team and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Proposal {
    #[serde(flatten)]
    pub team: Candidate,
    /// The required capabilities this team brings.
    pub covers: Vec<String>,
    pub reasons: Vec<String>,
}

/// A required capability nobody available can bring.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Uncovered {
    pub capability: String,
    /// `no_standby_team` or `beyond_max_eta`.
    pub reason: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunCard {
    pub teams: Vec<Proposal>,
    pub uncovered: Vec<Uncovered>,
    pub worst_eta_min: Option<f64>,
}

/// The run card from candidates (standby teams within the ETA bound,
/// any order) and `beyond` (the best ETA of each capability held only by
/// standby teams past the bound).
///
/// The smallest worst ETA of any cover is the least ETA `T` at which the
/// teams no slower than `T` hold every coverable capability (a cover
/// needs, for its slowest capability, a team at least that slow): found by
/// adding teams in ETA order. Among the teams within `T`, a small cover is
/// then chosen greedily (most new capabilities, then fastest); every
/// proposed team is within `T`, so the worst ETA is optimal.
pub fn run_card(
    required: &[String],
    mut candidates: Vec<Candidate>,
    beyond: &[(String, f64)],
    max_eta_min: f64,
) -> RunCard {
    candidates.sort_by(|a, b| a.eta_min.total_cmp(&b.eta_min).then(a.id.cmp(&b.id)));
    let has = |c: &Candidate, cap: &str| c.capabilities.iter().any(|x| x == cap);
    let mut uncovered = Vec::new();
    let coverable: Vec<&String> = required
        .iter()
        .filter(|cap| {
            if candidates.iter().any(|c| has(c, cap)) {
                return true;
            }
            uncovered.push(match beyond.iter().find(|(b, _)| b == *cap) {
                Some((_, eta)) => Uncovered {
                    capability: (*cap).clone(),
                    reason: "beyond_max_eta",
                    detail: format!(
                        "the nearest standby team with it needs {eta:.0} min, past the {max_eta_min:.0} min bound"
                    ),
                },
                None => Uncovered {
                    capability: (*cap).clone(),
                    reason: "no_standby_team",
                    detail: "no standby team has this capability".into(),
                },
            });
            false
        })
        .collect();
    if required.is_empty() {
        // Nothing asked for: the closest team, so the card is never empty.
        return RunCard {
            worst_eta_min: candidates.first().map(|c| c.eta_min),
            teams: candidates
                .into_iter()
                .take(1)
                .map(|team| Proposal {
                    team,
                    covers: Vec::new(),
                    reasons: vec!["closest".into()],
                })
                .collect(),
            uncovered,
        };
    }
    // The bottleneck: the prefix in ETA order that covers everything.
    let mut within = 0;
    let mut missing: Vec<&String> = coverable.clone();
    while !missing.is_empty() && within < candidates.len() {
        let c = &candidates[within];
        missing.retain(|cap| !has(c, cap));
        within += 1;
    }
    let pool = &candidates[..within];
    let mut teams: Vec<Proposal> = Vec::new();
    let mut left: Vec<&String> = coverable.clone();
    while !left.is_empty() {
        let best = pool
            .iter()
            .filter(|c| !teams.iter().any(|t| t.team.id == c.id))
            .map(|c| (left.iter().filter(|cap| has(c, cap)).count(), c))
            .filter(|(n, _)| *n > 0)
            .max_by(|(n1, c1), (n2, c2)| n1.cmp(n2).then(c2.eta_min.total_cmp(&c1.eta_min)));
        let Some((_, c)) = best else { break };
        let covers: Vec<String> = coverable
            .iter()
            .filter(|cap| has(c, cap))
            .map(|s| (*s).clone())
            .collect();
        left.retain(|cap| !has(c, cap));
        teams.push(Proposal {
            team: c.clone(),
            covers,
            reasons: Vec::new(),
        });
    }
    for t in &mut teams {
        for cap in &t.covers {
            t.reasons.push(format!("covers: {cap}"));
        }
        // Closest of all standby teams holding one of its capabilities.
        let closest = t
            .covers
            .iter()
            .any(|cap| candidates.iter().find(|c| has(c, cap)).map(|c| c.id) == Some(t.team.id));
        if closest {
            t.reasons.push("closest".into());
        }
    }
    RunCard {
        worst_eta_min: teams.iter().map(|t| t.team.eta_min).reduce(f64::max),
        teams,
        uncovered,
    }
}

/// Standby teams within `max_eta_min` of `p`, and for capabilities held
/// only beyond it, the best ETA there.
pub fn candidates(
    index: &SpatialIndex,
    travel: &Travel<'_>,
    p: [f64; 2],
    required: &[String],
) -> (Vec<Candidate>, Vec<(String, f64)>) {
    let mut within = Vec::new();
    let mut beyond: Vec<(String, f64)> = Vec::new();
    let max = travel.max_eta_min();
    index.nearest(TEAMS, p, f64::INFINITY, |e, d| {
        if e.text("status") != Some("standby") {
            return ControlFlow::Continue(());
        }
        let f = &e.feature();
        let caps: Vec<String> = strings(f, "capabilities")
            .into_iter()
            .map(str::to_owned)
            .collect();
        let eta = travel.eta_min(d, text(f, "team_type"));
        if eta <= max {
            within.push(Candidate {
                id: e.id(),
                name: f.name().map(str::to_owned),
                team_type: text(f, "team_type").map(str::to_owned),
                capabilities: caps,
                distance_m: d,
                eta_min: eta,
            });
        } else {
            for cap in caps.iter().filter(|c| required.contains(c)) {
                match beyond.iter_mut().find(|(b, _)| b == cap) {
                    Some((_, best)) => *best = best.min(eta),
                    None => beyond.push((cap.clone(), eta)),
                }
            }
            // Past the bound for every team, and every capability placed.
            if travel.least_eta_min(d) > max
                && required.iter().all(|r| {
                    beyond.iter().any(|(b, _)| b == r)
                        || within
                            .iter()
                            .any(|c: &Candidate| c.capabilities.contains(r))
                })
            {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    (within, beyond)
}

/// The run card of incident `id`, as `GET /api/incidents/{id}/recommendation` answers it.
pub async fn run_card_of(state: &AppState, id: i64) -> Result<Value, AppError> {
    let f = incident(state, id)?;
    let geo::Geometry::Point(p) = f.geometry else {
        return Err(AppError::Conflict(format!(
            "incident {id} has no point position"
        )));
    };
    let required: Vec<String> = strings(&f, "required_capabilities")
        .into_iter()
        .map(str::to_owned)
        .collect();
    // Teams already on their way cover what they bring: the card proposes
    // teams only for what is still missing.
    let assigned: Vec<Value> = super::incidents::open_assignments(&f)
        .into_iter()
        .filter_map(|t| state.index.get(TEAMS, t))
        .map(|e| {
            let caps = strings(&e.feature, "capabilities");
            let covers: Vec<&String> = required.iter().filter(|r| caps.contains(&r.as_str())).collect();
            json!({ "id": e.id, "name": e.feature.name(), "status": text(&e.feature, "status"), "covers": covers })
        })
        .collect();
    let missing: Vec<String> = required
        .iter()
        .filter(|r| {
            !assigned.iter().any(|a| {
                a["covers"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|x| x == r.as_str()))
            })
        })
        .cloned()
        .collect();
    let travel = Travel::new(&state.settings.dispatch);
    let (within, beyond) = {
        let (state, missing) = (state.clone(), missing.clone());
        super::off_workers(move || {
            let travel = Travel::new(&state.settings.dispatch);
            candidates(&state.index, &travel, [p.x(), p.y()], &missing)
        })
        .await?
    };
    let card = if missing.is_empty() && !required.is_empty() {
        RunCard {
            teams: Vec::new(),
            uncovered: Vec::new(),
            worst_eta_min: None,
        }
    } else {
        run_card(&missing, within, &beyond, travel.max_eta_min())
    };
    let teams: Vec<Value> = card
        .teams
        .iter()
        .map(|t| {
            json!({
                "id": t.team.id, "name": t.team.name, "team_type": t.team.team_type,
                "capabilities": t.team.capabilities, "distance_m": round1(t.team.distance_m),
                "eta_min": round1(t.team.eta_min), "covers": t.covers, "reasons": t.reasons,
            })
        })
        .collect();
    Ok(json!({
        "incident_id": id,
        "required_capabilities": required,
        "assigned": assigned,
        "missing_capabilities": missing,
        "teams": teams,
        "uncovered": card.uncovered,
        "worst_eta_min": card.worst_eta_min.map(round1),
        "max_eta_min": travel.max_eta_min(),
    }))
}

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let id = path_id("id", &id)?;
    Ok(Json(run_card_of(&state, id).await?))
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    fn team(id: i64, eta: f64, caps: &[&str]) -> Candidate {
        Candidate {
            id,
            name: None,
            team_type: None,
            capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
            distance_m: eta * 1000.0,
            eta_min: eta,
        }
    }

    #[test]
    fn the_card_covers_everything_at_the_least_worst_eta() {
        const CAPS: [&str; 5] = [
            "water_rescue",
            "diving",
            "medical",
            "levee_repair",
            "evacuation",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        for round in 0..500 {
            let n = rng.random_range(1..=10);
            let teams: Vec<Candidate> = (0..n)
                .map(|i| {
                    let caps: Vec<&str> = CAPS
                        .iter()
                        .copied()
                        .filter(|_| rng.random_bool(0.35))
                        .collect();
                    team(i as i64 + 1, rng.random_range(1.0..60.0), &caps)
                })
                .collect();
            let required: Vec<String> = CAPS
                .iter()
                .filter(|_| rng.random_bool(0.5))
                .map(|c| (*c).to_owned())
                .collect();
            let card = run_card(&required, teams.clone(), &[], 60.0);
            let coverable: Vec<&String> = required
                .iter()
                .filter(|r| teams.iter().any(|t| t.capabilities.contains(r)))
                .collect();
            // Every coverable capability is covered; the rest are named.
            for r in &coverable {
                assert!(
                    card.teams.iter().any(|t| t.covers.contains(r)),
                    "round {round}"
                );
            }
            assert_eq!(card.uncovered.len(), required.len() - coverable.len());
            if required.is_empty() || coverable.is_empty() {
                continue;
            }
            // Brute force over every subset: the least worst ETA of a cover.
            let mut best = f64::INFINITY;
            for mask in 1u32..(1 << n) {
                let chosen: Vec<&Candidate> = (0..n)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| &teams[i])
                    .collect();
                if coverable
                    .iter()
                    .all(|r| chosen.iter().any(|t| t.capabilities.contains(r)))
                {
                    best = best.min(chosen.iter().map(|t| t.eta_min).fold(0.0, f64::max));
                }
            }
            assert_eq!(card.worst_eta_min, Some(best), "round {round}: {card:?}");
            for t in &card.teams {
                assert!(
                    !t.covers.is_empty() && t.reasons.iter().any(|r| r.starts_with("covers: "))
                );
            }
        }
    }

    #[test]
    fn what_nobody_can_bring_is_named_with_why() {
        let teams = vec![team(1, 5.0, &["water_rescue"])];
        let card = run_card(
            &["water_rescue".into(), "diving".into(), "hazmat".into()],
            teams,
            &[("diving".into(), 95.0)],
            60.0,
        );
        assert_eq!(card.teams.len(), 1);
        assert_eq!(
            card.teams[0].reasons,
            vec!["covers: water_rescue", "closest"]
        );
        let reasons: Vec<(&str, &str)> = card
            .uncovered
            .iter()
            .map(|u| (u.capability.as_str(), u.reason))
            .collect();
        assert_eq!(
            reasons,
            vec![("diving", "beyond_max_eta"), ("hazmat", "no_standby_team")]
        );
    }
}
