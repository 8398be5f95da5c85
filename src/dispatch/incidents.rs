//! Incidents: creation, the status lifecycle, and assignments of teams.
//!
//! Lifecycle: reported → active → resolved, reported/active → cancelled.
//! Assigning a team to a reported incident makes it active. Resolving or
//! cancelling releases every team still assigned, in the same transaction.

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    Json,
};
use serde_json::{json, Map, Value};

use super::{feature_json, input, now, strings, text, DispatchError, Dispatcher, INCIDENTS, TEAMS};
use crate::{
    error::AppError,
    layers::Feature,
    store::{Edit, Written},
    AppState,
};

/// Statuses in which an incident takes teams and supplies.
pub const OPEN: &[&str] = &["reported", "active"];
/// Most incidents one list answers.
pub const MAX_LISTED: usize = 5_000;
/// Tries of an action whose inputs changed under it before giving up.
const ATTEMPTS: usize = 5;

/// Whether an incident may go from `from` to `to`.
pub fn transition(from: &str, to: &str) -> Result<(), DispatchError> {
    let allowed = matches!(
        (from, to),
        ("reported", "active") | ("active", "resolved") | ("reported" | "active", "cancelled")
    );
    if allowed {
        Ok(())
    } else {
        Err(DispatchError::conflict(
            format!("an incident that is {from} cannot become {to}"),
            json!({ "current_status": from, "requested_status": to }),
        ))
    }
}

/// The records of a `records` property, made an array if missing.
pub fn records_mut<'a>(f: &'a mut Feature, key: &str) -> &'a mut Vec<Value> {
    let slot = f
        .properties
        .entry(key.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(a) => a,
        _ => unreachable!("made an array above"),
    }
}

/// Teams assigned to an incident and not released.
pub fn open_assignments(incident: &Feature) -> Vec<i64> {
    incident
        .properties
        .get("assignments")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|r| r.get("released_at").is_none_or(Value::is_null))
                .filter_map(|r| r.get("team_id").and_then(Value::as_i64))
                .collect()
        })
        .unwrap_or_default()
}

/// Mark the open assignment of `team` (or every open one) released.
pub fn release_assignments(incident: &mut Feature, team: Option<i64>, because: &str, at: &str) {
    for r in records_mut(incident, "assignments") {
        let open = r.get("released_at").is_none_or(Value::is_null);
        let this = team.is_none_or(|t| r.get("team_id").and_then(Value::as_i64) == Some(t));
        if let (true, true, Some(o)) = (open, this, r.as_object_mut()) {
            o.insert("released_at".into(), json!(at));
            o.insert("released_because".into(), json!(because));
        }
    }
}

/// The incident as the index holds it, or 404.
pub fn incident(state: &AppState, id: i64) -> Result<std::sync::Arc<Feature>, DispatchError> {
    state
        .index
        .get(INCIDENTS, id)
        .map(|e| e.feature)
        .ok_or_else(|| DispatchError::NotFound {
            what: format!("incident {id}"),
        })
}

pub fn team(state: &AppState, id: i64) -> Result<std::sync::Arc<Feature>, DispatchError> {
    state
        .index
        .get(TEAMS, id)
        .map(|e| e.feature)
        .ok_or_else(|| DispatchError::NotFound {
            what: format!("team {id}"),
        })
}

/// Run `edits` through the store and wait until the index shows them.
pub async fn commit(
    state: &AppState,
    edits: Vec<Edit>,
    actor: &str,
    action: Value,
) -> Result<Option<Written>, DispatchError> {
    let Some(first) = edits.first().map(|e| std::sync::Arc::clone(&e.layer)) else {
        return Ok(None);
    };
    let written = state.store.edit(edits, actor, Some(action)).await?;
    if let Some(w) = &written {
        state.committed(&first, w).await;
    }
    Ok(written)
}

/// The properties of a new incident from a request body.
fn new_incident(
    state: &AppState,
    body: &Map<String, Value>,
    crs: crate::crs::Crs,
) -> Result<Feature, DispatchError> {
    input::only(
        body,
        &[
            "type",
            "severity",
            "geometry",
            "lon",
            "lat",
            "description",
            "required_capabilities",
            "required_supplies",
            "name",
        ],
    )?;
    let incidents = super::layer_def(state, INCIDENTS)?;
    let values = |prop: &str| {
        incidents
            .property(prop)
            .and_then(|p| p.values.clone())
            .unwrap_or_default()
    };
    let kind = input::opt_text(body, "type")?
        .ok_or_else(|| DispatchError::invalid("type", "is required"))?;
    let kind = input::choice("type", &kind, &values("type"))?;
    let severity = input::opt_text(body, "severity")?
        .map(|s| input::choice("severity", &s, &values("severity")))
        .transpose()?;
    let p = input::position(body, crs)?;
    let capabilities = match body.get("required_capabilities") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.len() > input::MAX_LIST => {
            return Err(DispatchError::invalid(
                "required_capabilities",
                format!("has more than {} entries", input::MAX_LIST),
            ))
        }
        Some(Value::Array(a)) => {
            let allowed = values("required_capabilities");
            let mut out: Vec<String> = Vec::new();
            for (i, c) in a.iter().enumerate() {
                let key = format!("required_capabilities[{i}]");
                let c = c
                    .as_str()
                    .ok_or_else(|| DispatchError::invalid(&key, "must be a string"))?;
                let c = input::choice(&key, c, &allowed)?;
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            out
        }
        Some(other) => {
            return Err(DispatchError::invalid(
                "required_capabilities",
                format!("must be an array, got {}", input::kind(other)),
            ))
        }
    };
    let supplies = match body.get("required_supplies") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.len() > input::MAX_LIST => {
            return Err(DispatchError::invalid(
                "required_supplies",
                format!("has more than {} entries", input::MAX_LIST),
            ))
        }
        Some(Value::Array(a)) => {
            let known = super::supplies::catalog(state);
            let mut out = Vec::new();
            for (i, s) in a.iter().enumerate() {
                let at = format!("required_supplies[{i}]");
                let obj = s.as_object().ok_or_else(|| {
                    DispatchError::invalid(&at, "must be an object {item, quantity}")
                })?;
                input::only(obj, &["item", "quantity"])
                    .map_err(|e| DispatchError::invalid(&format!("{at}.{}", e.field), e.detail))?;
                let item = obj
                    .get("item")
                    .and_then(Value::as_str)
                    .ok_or_else(|| DispatchError::invalid(&format!("{at}.item"), "is required"))?;
                super::supplies::known_item(&known, &format!("{at}.item"), item)?;
                let q = input::quantity(
                    &format!("{at}.quantity"),
                    obj.get("quantity").unwrap_or(&Value::Null),
                )?;
                out.push(json!({ "item": item, "quantity": q }));
            }
            out
        }
        Some(other) => {
            return Err(DispatchError::invalid(
                "required_supplies",
                format!("must be an array, got {}", input::kind(other)),
            ))
        }
    };
    let name = match input::opt_text(body, "name")? {
        Some(n) => n,
        None => crate::demo::places::incident_label(&kind).to_owned(),
    };
    let mut props = json!({
        "name": name,
        "type": kind,
        "status": "reported",
        "reported_at": now(),
        "required_capabilities": capabilities,
        "required_supplies": supplies,
        "assignments": [],
        "reservations": [],
    });
    if let Some(o) = props.as_object_mut() {
        if let Some(s) = severity {
            o.insert("severity".into(), json!(s));
        }
        if let Some(d) = input::opt_text(body, "description")? {
            o.insert("description".into(), json!(d));
        }
    }
    Ok(Feature::new(
        geo::Point::new(p[0], p[1]),
        props.as_object().cloned().unwrap_or_default(),
    ))
}

/// `POST /api/incidents`: a call comes in.
pub async fn create(
    State(state): State<AppState>,
    who: Dispatcher,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Json<Value>), AppError> {
    let crs = input::crs_of(raw.as_deref())?;
    let body = input::object(&body)?;
    let feature = new_incident(&state, &body, crs)?;
    let incidents = super::layer_def(&state, INCIDENTS)?;
    let written = state
        .store
        .insert(&incidents, std::slice::from_ref(&feature), &who.actor())
        .await?;
    state.committed(&incidents, &written).await;
    let id = written.ids.first().copied().unwrap_or_default();
    let stored = incident(&state, id)
        .map(|f| (*f).clone())
        .unwrap_or_else(|_| Feature {
            id: Some(id),
            ..feature
        });
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/incidents/{id}")) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::CREATED, headers, Json(feature_json(&stored))))
}

/// `GET /api/incidents?status=reported,active`: newest first.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, AppError> {
    let q = input::Params::parse(raw.as_deref(), &["status", "limit"])?;
    let allowed = super::layer_def(&state, INCIDENTS)?
        .property("status")
        .and_then(|p| p.values.clone())
        .unwrap_or_default();
    let wanted: Option<Vec<String>> = q
        .get("status")
        .map(|s| {
            s.split(',')
                .map(|v| input::choice("status", v.trim(), &allowed))
                .collect()
        })
        .transpose()?;
    let limit = q
        .count("limit", 1..=MAX_LISTED as u64)?
        .unwrap_or(MAX_LISTED as u64) as usize;
    let mut found: Vec<std::sync::Arc<Feature>> = state.index.each(INCIDENTS, |all| {
        all.filter(|e| {
            wanted
                .as_ref()
                .is_none_or(|w| e.text("status").is_some_and(|s| w.iter().any(|x| x == s)))
        })
        .map(|e| std::sync::Arc::new(e.feature()))
        .collect()
    });
    found.sort_by(|a, b| {
        text(b, "reported_at")
            .cmp(&text(a, "reported_at"))
            .then(b.id.cmp(&a.id))
    });
    found.truncate(limit);
    Ok(Json(json!({
        "type": "FeatureCollection",
        "features": found.iter().map(|f| feature_json(f)).collect::<Vec<_>>(),
    })))
}

/// `GET /api/incidents/{id}`: with its assignments and reservations.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let id = path_id("id", &id)?;
    Ok(Json(feature_json(&*incident(&state, id)?)))
}

pub fn path_id(what: &str, raw: &str) -> Result<i64, DispatchError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| DispatchError::invalid(what, format!("must be an id, got `{raw}`")))
}

/// `PATCH /api/incidents/{id}` `{"status"}`.
pub async fn set_status(
    State(state): State<AppState>,
    who: Dispatcher,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let id = path_id("id", &id)?;
    let to = input::status(&body, &["active", "resolved", "cancelled"])?;
    let (incidents, teams) = (
        super::layer_def(&state, INCIDENTS)?,
        super::layer_def(&state, TEAMS)?,
    );
    for _ in 0..ATTEMPTS {
        let current = incident(&state, id)?;
        let from = text(&current, "status").unwrap_or("reported").to_owned();
        transition(&from, &to)?;
        let terminal = to == "resolved" || to == "cancelled";
        let assigned = if terminal {
            open_assignments(&current)
        } else {
            Vec::new()
        };
        let at = now();
        let mut edits = Vec::new();
        {
            let (to, at, assigned) = (to.clone(), at.clone(), assigned.clone());
            edits.push(Edit::new(&incidents, id, move |f| {
                let from = text(f, "status").unwrap_or("reported").to_owned();
                transition(&from, &to).map_err(DispatchError::refusal)?;
                // A team assigned since the list above was read must be
                // released too: recompute.
                if terminal && open_assignments(f) != assigned {
                    return Err(DispatchError::Stale.refusal());
                }
                f.properties.insert("status".into(), json!(to));
                if terminal {
                    f.properties.insert("resolved_at".into(), json!(at));
                    release_assignments(f, None, &to, &at);
                }
                Ok(())
            }));
        }
        for team in &assigned {
            edits.push(Edit::new(&teams, *team, move |f| {
                if f.properties.get("incident_id").and_then(Value::as_i64) == Some(id) {
                    f.properties.insert("status".into(), json!("standby"));
                    f.properties.remove("incident_id");
                }
                Ok(())
            }));
        }
        let action = json!({
            "kind": "incident.status", "incident_id": id, "from": from, "to": to,
            "team_ids": assigned,
        });
        match commit(&state, edits, &who.actor(), action).await {
            Err(DispatchError::Stale) => continue,
            Err(e) => return Err(e.into()),
            Ok(written) => {
                let released: Vec<i64> = written
                    .iter()
                    .flat_map(|w| w.change.also.iter())
                    .filter(|t| t.layer == TEAMS)
                    .flat_map(|t| t.ids.clone())
                    .collect();
                return Ok(Json(json!({
                    "incident": feature_json(&*incident(&state, id)?),
                    "released_teams": released,
                })));
            }
        }
    }
    Err(DispatchError::Stale.into())
}

/// `POST /api/incidents/{id}/assignments` `{"team_id"}`: send a team.
pub async fn assign(
    State(state): State<AppState>,
    who: Dispatcher,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Json<Value>), AppError> {
    let id = path_id("id", &id)?;
    let body = input::object(&body)?;
    input::only(&body, &["team_id"])?;
    let team_id = input::id("team_id", body.get("team_id").unwrap_or(&Value::Null))?;
    incident(&state, id)?;
    let team_name = team(&state, team_id)?.name().unwrap_or_default().to_owned();
    let (incidents, teams) = (
        super::layer_def(&state, INCIDENTS)?,
        super::layer_def(&state, TEAMS)?,
    );
    let (at, actor) = (now(), who.actor());
    let edits = vec![
        Edit::new(&teams, team_id, move |f| {
            let status = text(f, "status").unwrap_or("").to_owned();
            if status != "standby" {
                let current = f
                    .properties
                    .get("incident_id")
                    .cloned()
                    .unwrap_or(Value::Null);
                let busy = match current.as_i64() {
                    Some(i) => format!("team {team_id} is {status} (incident {i})"),
                    None => format!("team {team_id} is {status}"),
                };
                return Err(DispatchError::conflict(
                    format!("{busy}: only a standby team can be assigned"),
                    json!({ "team_id": team_id, "team_status": status, "team_incident_id": current }),
                )
                .refusal());
            }
            f.properties.insert("status".into(), json!("dispatched"));
            f.properties.insert("incident_id".into(), json!(id));
            Ok(())
        }),
        {
            let (at, actor) = (at.clone(), actor.clone());
            Edit::new(&incidents, id, move |f| {
                let status = text(f, "status").unwrap_or("").to_owned();
                if !OPEN.contains(&status.as_str()) {
                    return Err(DispatchError::conflict(
                        format!("incident {id} is {status}: it takes no more teams"),
                        json!({ "current_status": status }),
                    )
                    .refusal());
                }
                if status == "reported" {
                    f.properties.insert("status".into(), json!("active"));
                }
                records_mut(f, "assignments").push(json!({
                    "team_id": team_id, "team_name": team_name,
                    "assigned_at": at, "assigned_by": actor,
                }));
                Ok(())
            })
        },
    ];
    let action = json!({ "kind": "assignment.create", "incident_id": id, "team_id": team_id });
    commit(&state, edits, &actor, action).await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/incidents/{id}/assignments/{team_id}")) {
        headers.insert(header::LOCATION, v);
    }
    Ok((
        StatusCode::CREATED,
        headers,
        Json(json!({
            "incident_id": id,
            "team_id": team_id,
            "assigned_at": at,
            "team": feature_json(&*team(&state, team_id)?),
            "incident": feature_json(&*incident(&state, id)?),
        })),
    ))
}

/// Statuses of a team on an incident's business.
pub const ENGAGED: &[&str] = &["dispatched", "on_scene", "returning"];

/// The edits that release `team_id` from incident `id` (standby again),
/// refused when it is not assigned there.
pub fn release_edits(
    state: &AppState,
    id: i64,
    team_id: i64,
    because: &'static str,
) -> Result<Vec<Edit>, DispatchError> {
    let (incidents, teams) = (
        super::layer_def(state, INCIDENTS)?,
        super::layer_def(state, TEAMS)?,
    );
    let at = now();
    Ok(vec![
        Edit::new(&teams, team_id, move |f| {
            let engaged = text(f, "status").is_some_and(|s| ENGAGED.contains(&s));
            if !engaged || f.properties.get("incident_id").and_then(Value::as_i64) != Some(id) {
                return Err(DispatchError::NotFound {
                    what: format!("an assignment of team {team_id} to incident {id}"),
                }
                .refusal());
            }
            f.properties.insert("status".into(), json!("standby"));
            f.properties.remove("incident_id");
            Ok(())
        }),
        Edit::new(&incidents, id, move |f| {
            release_assignments(f, Some(team_id), because, &at);
            Ok(())
        }),
    ])
}

/// `DELETE /api/incidents/{id}/assignments/{team_id}`: recall a team.
pub async fn recall(
    State(state): State<AppState>,
    who: Dispatcher,
    Path((id, team_id)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    let (id, team_id) = (path_id("id", &id)?, path_id("team_id", &team_id)?);
    incident(&state, id)?;
    team(&state, team_id)?;
    let edits = release_edits(&state, id, team_id, "recalled")?;
    let action = json!({ "kind": "assignment.delete", "incident_id": id, "team_id": team_id });
    commit(&state, edits, &who.actor(), action).await?;
    Ok(Json(json!({
        "incident_id": id,
        "team_id": team_id,
        "team": feature_json(&*team(&state, team_id)?),
    })))
}

/// Capabilities a team has (for run cards and lists).
pub fn capabilities(f: &Feature) -> Vec<&str> {
    strings(f, "capabilities")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_lifecycle_transitions_are_allowed() {
        for (from, to) in [
            ("reported", "active"),
            ("active", "resolved"),
            ("reported", "cancelled"),
            ("active", "cancelled"),
        ] {
            assert!(transition(from, to).is_ok(), "{from} → {to}");
        }
        for (from, to) in [
            ("reported", "resolved"),
            ("resolved", "active"),
            ("cancelled", "active"),
            ("resolved", "cancelled"),
            ("active", "active"),
        ] {
            let e = transition(from, to).expect_err("refused");
            assert!(
                matches!(&e, DispatchError::Conflict { extra, .. } if extra["current_status"] == from)
            );
        }
    }

    #[test]
    fn releasing_marks_only_open_assignments() {
        let mut f = Feature::new(
            geo::Point::new(118.3, 35.0),
            json!({"assignments": [
                {"team_id": 1, "assigned_at": "t0"},
                {"team_id": 2, "assigned_at": "t0", "released_at": "t1", "released_because": "recalled"},
                {"team_id": 3, "assigned_at": "t0"},
            ]})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        );
        assert_eq!(open_assignments(&f), vec![1, 3]);
        release_assignments(&mut f, Some(3), "recalled", "t2");
        assert_eq!(open_assignments(&f), vec![1]);
        release_assignments(&mut f, None, "resolved", "t3");
        assert!(open_assignments(&f).is_empty());
        let a = f.properties["assignments"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(a[1]["released_at"], "t1", "an earlier release is kept");
        assert_eq!(a[0]["released_because"], "resolved");
    }
}
