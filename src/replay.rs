//! Replay: what the one map showed at a past moment, rebuilt from the
//! change log. The log keeps, for each write, the properties and the
//! geometries it replaced; starting from the present (the index) and
//! undoing every change after the moment, newest first, gives the state
//! at that moment exactly, for every layer the changes touched.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    extract::{RawQuery, State},
    Json,
};
use serde_json::{json, Value};

use crate::{
    dispatch::{input::Params, summary, DispatchError},
    error::AppError,
    layers::{Feature, LayerGroup},
    store::{AuditEntry, AuditQuery, Op},
    AppState,
};

/// Most changes undone for one replay (a storm night has ~10,000).
pub const MAX_CHANGES: u64 = 200_000;
/// Most features one replay holds.
pub const MAX_FEATURES: usize = 500_000;

/// Features by layer and id.
pub type State0 = BTreeMap<String, BTreeMap<i64, Feature>>;

/// Undo `entries` (newest first) on `state`; how many parts could not be
/// undone (logged by another program, without images).
pub fn undo(state: &mut State0, entries: &[AuditEntry]) -> usize {
    let mut unreplayable = 0;
    for e in entries {
        let c = &e.change;
        let mut parts = vec![(
            c.layer.as_str(),
            c.op,
            &c.ids,
            e.before.as_ref(),
            e.geometry_before.as_ref(),
        )];
        for t in &c.also {
            parts.push((
                t.layer.as_str(),
                Op::Update,
                &t.ids,
                t.before.as_ref(),
                t.geometry_before.as_ref(),
            ));
        }
        // Parts in reverse: the last written first undone.
        for (layer, op, ids, before, geometries) in parts.into_iter().rev() {
            let Some(features) = state.get_mut(layer) else {
                continue;
            };
            if op == Op::Create {
                for id in ids {
                    features.remove(id);
                }
                continue;
            }
            for (k, id) in ids.iter().enumerate() {
                let props = before.and_then(|b| b.get(k)).and_then(Value::as_object);
                let geometry = geometries
                    .and_then(|g| g.get(k))
                    .and_then(|g| serde_json::from_value::<geojson::Geometry>(g.clone()).ok())
                    .and_then(|g| geo::Geometry::<f64>::try_from(g).ok())
                    // Logged before geometries were kept: the position is
                    // not known, the properties are.
                    .or_else(|| features.get(id).map(|f| f.geometry.clone()));
                match (props, geometry) {
                    (Some(p), Some(g)) => {
                        features.insert(
                            *id,
                            Feature {
                                id: Some(*id),
                                geometry: g,
                                properties: p.clone(),
                            },
                        );
                    }
                    _ => unreplayable += 1,
                }
            }
        }
    }
    unreplayable
}

/// The layers replayed unless asked: everything but reference layers and
/// the (static, large) population grid.
fn default_layers(state: &AppState) -> Vec<String> {
    state
        .catalog
        .layers()
        .iter()
        .filter(|l| l.group != LayerGroup::Reference && l.name != "population_grid")
        // A layer the database serves is past what one replay draws.
        .filter(|l| !state.index.in_store(&l.name))
        .map(|l| l.name.clone())
        .collect()
}

fn utc(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `GET /api/replay?at=<RFC 3339>[&layers=a,b]`: the layers as they
/// stood at `at`, with the summary of that moment.
pub async fn replay(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, AppError> {
    let q = Params::parse(raw.as_deref(), &["at", "layers"])?;
    let at = q
        .get("at")
        .ok_or_else(|| DispatchError::invalid("at", "is required"))?;
    let at = chrono::DateTime::parse_from_rfc3339(at)
        .map_err(|_| {
            DispatchError::invalid("at", format!("must be an RFC 3339 date-time, got `{at}`"))
        })?
        .with_timezone(&chrono::Utc);
    if at > chrono::Utc::now() {
        return Err(DispatchError::invalid(
            "at",
            "lies in the future: there is nothing to replay yet",
        )
        .into());
    }
    let first = state.store.changes_since(0, 1).await?;
    let Some(first) = first.first() else {
        return Err(DispatchError::invalid("at", "precedes the change log: it is empty").into());
    };
    let at_text = utc(at);
    if at_text < first.at {
        return Err(DispatchError::invalid(
            "at",
            format!(
                "precedes the change log's first entry ({}): nothing is known of that moment",
                first.at
            ),
        )
        .into());
    }
    let layers = match q.get("layers") {
        None => default_layers(&state),
        Some(list) => list
            .split(',')
            .map(|l| crate::request::layer_or_404(&state, l.trim()).map(|d| d.name.clone()))
            .collect::<Result<_, _>>()?,
    };
    if let Some(big) = layers.iter().find(|l| state.index.in_store(l)) {
        return Err(DispatchError::invalid(
            "layers",
            format!("`{big}` is too big to hold in memory (the database serves it): a replay draws held layers only, at most {MAX_FEATURES} features"),
        )
        .into());
    }
    let total: usize = layers.iter().map(|l| state.index.len(l)).sum();
    if total > MAX_FEATURES {
        return Err(DispatchError::invalid(
            "layers",
            format!("hold {total} features, more than {MAX_FEATURES} one replay draws: name fewer"),
        )
        .into());
    }
    // The present, then the log position it shows: a change logged after
    // that is not in the snapshot and must not be undone.
    let mut snapshot: State0 = layers
        .iter()
        .map(|l| {
            let features = state
                .index
                .each(l, |all| all.map(|e| (e.id(), e.feature())).collect());
            (l.clone(), features)
        })
        .collect();
    let applied = state.feed.applied();
    let entries = state
        .store
        .audit(&AuditQuery {
            since: Some(at_text.clone()),
            limit: MAX_CHANGES + 1,
            ..AuditQuery::default()
        })
        .await?;
    if entries.len() as u64 > MAX_CHANGES {
        return Err(DispatchError::invalid(
            "at",
            format!("lies more than {MAX_CHANGES} changes back; replay a later moment"),
        )
        .into());
    }
    let after: Vec<AuditEntry> = entries
        .into_iter()
        .filter(|e| e.change.at > at_text && e.change.seq <= applied)
        .collect();
    let seq = after.last().map(|e| e.change.seq - 1).unwrap_or(applied);
    let unreplayable = undo(&mut snapshot, &after);
    let counts: BTreeMap<String, usize> =
        snapshot.iter().map(|(k, v)| (k.clone(), v.len())).collect();
    let snapshot = Arc::new(snapshot);
    let summary = summary::summarize(&counts, &|layer, visit| {
        for f in snapshot.get(layer).into_iter().flat_map(BTreeMap::values) {
            visit(f);
        }
    });
    let collections: BTreeMap<&String, Value> = snapshot
        .iter()
        .map(|(name, features)| {
            let features: Vec<Value> = features
                .values()
                .map(|f| serde_json::to_value(f.to_geojson()).unwrap_or(Value::Null))
                .collect();
            (
                name,
                json!({ "type": "FeatureCollection", "features": features }),
            )
        })
        .collect();
    Ok(Json(json!({
        "at": at_text,
        "seq": seq,
        "changes_undone": after.len(),
        "unreplayable": unreplayable,
        "summary": summary,
        "layers": collections,
    })))
}

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/api/replay", axum::routing::get(replay))
}
