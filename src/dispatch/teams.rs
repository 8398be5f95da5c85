//! Teams in the field: status reports and positions from field units.

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    Json,
};
use serde_json::{json, Value};

use super::{
    feature_json,
    incidents::{commit, path_id, release_assignments, team},
    input, now, text, DispatchError, Dispatcher, INCIDENTS, TEAMS,
};
use crate::{error::AppError, store::Edit, AppState};

/// Whether a team may report `to` while it is `from`. Dispatching is an
/// assignment (`POST …/assignments`), never a status report.
pub fn transition(from: &str, to: &str) -> Result<(), DispatchError> {
    let allowed = matches!(
        (from, to),
        ("dispatched", "on_scene")
            | ("dispatched" | "on_scene", "returning")
            | ("returning" | "off_duty", "standby")
            | ("standby", "off_duty")
    );
    if allowed {
        Ok(())
    } else {
        Err(DispatchError::conflict(
            format!("a team that is {from} cannot report {to}"),
            json!({ "team_status": from, "requested_status": to }),
        ))
    }
}

/// `PATCH /api/teams/{id}/status` `{"status"}`.
pub async fn set_status(
    State(state): State<AppState>,
    who: Dispatcher,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let id = path_id("id", &id)?;
    let to = input::status(&body, &["on_scene", "returning", "standby", "off_duty"])?;
    let current = team(&state, id)?;
    let from = text(&current, "status").unwrap_or("").to_owned();
    transition(&from, &to)?;
    let teams = super::layer_def(&state, TEAMS)?;
    let incident = current
        .properties
        .get("incident_id")
        .and_then(Value::as_i64);
    let back = to == "standby";
    let mut edits = vec![{
        let to = to.clone();
        Edit::new(&teams, id, move |f| {
            let from = text(f, "status").unwrap_or("").to_owned();
            transition(&from, &to).map_err(DispatchError::refusal)?;
            f.properties.insert("status".into(), json!(to));
            if back {
                f.properties.remove("incident_id");
            }
            Ok(())
        })
    }];
    // Back on standby: its assignment ends on the incident too.
    if let (true, Some(incident), Some(incidents)) = (back, incident, state.catalog.get(INCIDENTS))
    {
        let at = now();
        edits.push(Edit::new(incidents, incident, move |f| {
            release_assignments(f, Some(id), "returned", &at);
            Ok(())
        }));
    }
    let action = json!({ "kind": "team.status", "team_id": id, "incident_id": incident, "from": from, "to": to });
    commit(&state, edits, &who.actor(), action).await?;
    Ok(Json(feature_json(&*team(&state, id)?)))
}

/// How far in the future a reported fix may be dated (clock skew).
const FUTURE_SLACK_SECS: i64 = 300;

/// `PATCH /api/teams/{id}/position` `{"lon", "lat", "at"?}`: a fix from a
/// field unit. Older than the last stored one → ignored (`applied: false`).
pub async fn set_position(
    State(state): State<AppState>,
    who: Dispatcher,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let id = path_id("id", &id)?;
    let crs = input::crs_of(raw.as_deref())?;
    let body = input::object(&body)?;
    input::only(&body, &["lon", "lat", "at"])?;
    let p = input::position(&body, crs)?;
    within_district(&state, p)?;
    let at = match input::opt_text(&body, "at")? {
        None => chrono::Utc::now(),
        Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
            .map_err(|_| {
                DispatchError::invalid("at", format!("must be an RFC 3339 date-time, got `{t}`"))
            })?
            .with_timezone(&chrono::Utc),
    };
    if at > chrono::Utc::now() + chrono::Duration::seconds(FUTURE_SLACK_SECS) {
        return Err(DispatchError::invalid("at", "lies in the future").into());
    }
    let at_text = at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    team(&state, id)?;
    let teams = super::layer_def(&state, TEAMS)?;
    let edits = vec![Edit::new(&teams, id, move |f| {
        let last = text(f, "position_at")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        if last.is_some_and(|last| at < last) {
            return Ok(()); // out of order: the newer fix stands
        }
        f.geometry = geo::Point::new(p[0], p[1]).into();
        f.properties.insert("position_at".into(), json!(at_text));
        Ok(())
    })];
    let action = json!({ "kind": "team.position", "team_id": id });
    let written = commit(&state, edits, &who.actor(), action).await?;
    Ok(Json(json!({
        "applied": written.is_some(),
        "team": feature_json(&*team(&state, id)?),
    })))
}

/// Refuse a fix far outside the district (a faulty GPS, a unit abroad).
fn within_district(state: &AppState, p: [f64; 2]) -> Result<(), DispatchError> {
    let Some([w, s, e, n]) = state.index.extent("districts") else {
        return Ok(());
    };
    let margin = state.settings.dispatch.position_margin_m;
    let dlat = margin / 111_320.0;
    let dlon = margin / (111_320.0 * ((s + n) / 2.0).to_radians().cos().max(0.01));
    if p[0] < w - dlon || p[0] > e + dlon || p[1] < s - dlat || p[1] > n + dlat {
        return Err(DispatchError::invalid(
            "lon",
            format!(
                "({}, {}) lies more than {margin} m outside the district; refused as a faulty fix",
                p[0], p[1]
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teams_report_only_the_next_step() {
        assert!(transition("dispatched", "on_scene").is_ok());
        assert!(transition("on_scene", "returning").is_ok());
        assert!(transition("returning", "standby").is_ok());
        assert!(transition("standby", "off_duty").is_ok());
        assert!(transition("off_duty", "standby").is_ok());
        for (from, to) in [
            ("standby", "on_scene"),
            ("off_duty", "returning"),
            ("on_scene", "standby"),
        ] {
            assert!(transition(from, to).is_err(), "{from} → {to}");
        }
    }
}
