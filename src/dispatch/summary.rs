//! `GET /api/summary`: the figures the command centre watches, computed
//! from any source of features (the live index, or a replayed moment).

use std::collections::BTreeMap;

use axum::{extract::State, Json};
use serde_json::{json, Value};

use super::{incidents::OPEN, text, DEPOTS, INCIDENTS, TEAMS};
use crate::{error::AppError, layers::Feature, AppState};

pub async fn show(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for l in state.catalog.layers() {
        // A layer too big to hold is counted where it is.
        let n = state.index.count_of(state.store.as_ref(), l).await?;
        counts.insert(l.name.clone(), usize::try_from(n).unwrap_or(usize::MAX));
    }
    let mut s = summarize(&counts, &|layer, visit| {
        state.index.each(layer, |all| {
            for e in all {
                visit(&e.feature());
            }
        })
    });
    if let Some(o) = s.as_object_mut() {
        o.insert("as_of".into(), json!(super::now()));
        o.insert("seq".into(), json!(state.feed.applied()));
    }
    Ok(Json(s))
}

/// Calls its second argument with every feature of the layer named.
pub type Visit<'a> = dyn Fn(&str, &mut dyn FnMut(&Feature)) + 'a;

/// The summary of features per layer (`counts`) and what `visit` yields.
pub fn summarize(counts: &BTreeMap<String, usize>, visit: &Visit<'_>) -> Value {
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    visit(TEAMS, &mut |f| {
        *by_status
            .entry(text(f, "status").unwrap_or("unknown").to_owned())
            .or_default() += 1;
    });
    let mut by_severity: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut reserved: BTreeMap<String, f64> = BTreeMap::new();
    visit(INCIDENTS, &mut |f| {
        let open_records = f
            .properties
            .get("reservations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| r.get("released_at").is_none_or(Value::is_null));
        for r in open_records {
            if let (Some(i), Some(q)) = (
                r.get("item").and_then(Value::as_str),
                r.get("quantity").and_then(Value::as_f64),
            ) {
                *reserved.entry(i.to_owned()).or_default() += q;
            }
        }
        if text(f, "status").is_some_and(|s| OPEN.contains(&s)) {
            *by_severity
                .entry(text(f, "severity").unwrap_or("unknown").to_owned())
                .or_default() += 1;
            *by_type
                .entry(text(f, "type").unwrap_or("unknown").to_owned())
                .or_default() += 1;
        }
    });
    let mut supplies: BTreeMap<String, super::supplies::Item> = BTreeMap::new();
    visit(DEPOTS, &mut |f| {
        super::supplies::add_stock(&mut supplies, f)
    });
    let supplies: BTreeMap<String, Value> = supplies
        .into_iter()
        .map(|(item, i)| {
            let r = reserved.get(&item).copied().unwrap_or(0.0);
            let v = json!({ "name": i.name, "unit": i.unit, "available": i.available, "reserved": r, "total": i.available + r });
            (item, v)
        })
        .collect();
    let (mut capacity, mut occupancy, mut shelters) = (0i64, 0i64, 0u64);
    visit("shelters", &mut |f| {
        let get = |k: &str| f.properties.get(k).and_then(Value::as_i64).unwrap_or(0);
        capacity += get("capacity");
        occupancy += get("occupancy");
        shelters += 1;
    });
    json!({
        "layers": counts,
        "teams": { "by_status": by_status },
        "incidents": {
            "open": by_severity.values().sum::<u64>(),
            "open_by_severity": by_severity,
            "open_by_type": by_type,
        },
        "supplies": supplies,
        "shelters": {
            "count": shelters, "capacity": capacity, "occupancy": occupancy,
            "free": (capacity - occupancy).max(0),
        },
    })
}
