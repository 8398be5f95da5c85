//! `GET /api/summary`: the figures the command centre watches.

use std::collections::BTreeMap;

use axum::{extract::State, Json};
use serde_json::{json, Value};

use super::{incidents::OPEN, text, INCIDENTS, TEAMS};
use crate::AppState;

pub async fn show(State(state): State<AppState>) -> Json<Value> {
    Json(summary(&state))
}

/// The summary from the index (consistent per layer).
pub fn summary(state: &AppState) -> Value {
    let layers: BTreeMap<&str, usize> = state
        .catalog
        .layers()
        .iter()
        .map(|l| (l.name.as_str(), state.index.len(&l.name)))
        .collect();
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    state.index.each(TEAMS, |all| {
        for e in all {
            *by_status
                .entry(text(&e.feature, "status").unwrap_or("unknown").to_owned())
                .or_default() += 1;
        }
    });
    let (mut by_severity, mut by_type, mut reserved): (
        BTreeMap<String, u64>,
        BTreeMap<String, u64>,
        BTreeMap<String, f64>,
    ) = Default::default();
    state.index.each(INCIDENTS, |all| {
        for e in all {
            let f = &e.feature;
            if let Some(rs) = f.properties.get("reservations").and_then(Value::as_array) {
                for r in rs
                    .iter()
                    .filter(|r| r.get("released_at").is_none_or(Value::is_null))
                {
                    if let (Some(i), Some(q)) = (
                        r.get("item").and_then(Value::as_str),
                        r.get("quantity").and_then(Value::as_f64),
                    ) {
                        *reserved.entry(i.to_owned()).or_default() += q;
                    }
                }
            }
            if !text(f, "status").is_some_and(|s| OPEN.contains(&s)) {
                continue;
            }
            *by_severity
                .entry(text(f, "severity").unwrap_or("unknown").to_owned())
                .or_default() += 1;
            *by_type
                .entry(text(f, "type").unwrap_or("unknown").to_owned())
                .or_default() += 1;
        }
    });
    let supplies: BTreeMap<String, Value> = super::supplies::catalog(state)
        .into_iter()
        .map(|(item, i)| {
            let r = reserved.get(&item).copied().unwrap_or(0.0);
            (item, json!({ "name": i.name, "unit": i.unit, "available": i.available, "reserved": r, "total": i.available + r }))
        })
        .collect();
    let (mut capacity, mut occupancy, mut shelters) = (0i64, 0i64, 0u64);
    state.index.each("shelters", |all| {
        for e in all {
            let get = |k: &str| {
                e.feature
                    .properties
                    .get(k)
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            };
            capacity += get("capacity");
            occupancy += get("occupancy");
            shelters += 1;
        }
    });
    json!({
        "as_of": super::now(),
        "seq": state.feed.applied(),
        "layers": layers,
        "teams": { "by_status": by_status },
        "incidents": {
            "open": by_severity.values().sum::<u64>(),
            "open_by_severity": by_severity,
            "open_by_type": by_type,
        },
        "supplies": supplies,
        "shelters": { "count": shelters, "capacity": capacity, "occupancy": occupancy, "free": (capacity - occupancy).max(0) },
    })
}
