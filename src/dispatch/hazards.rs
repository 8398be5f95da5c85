//! Hazard sources around a point, and what lies inside a hazard's
//! evacuation radius.

use std::ops::ControlFlow;

use axum::{
    extract::{Path, RawQuery, State},
    Json,
};
use serde_json::{json, Value};

use super::{
    feature_json,
    incidents::{path_id, OPEN},
    input::{self, Params},
    nearest::round1,
    text, DispatchError, HAZARDS, INCIDENTS,
};
use crate::{error::AppError, index::SpatialIndex, layers::Feature, AppState};

/// The largest evacuation radius honoured (a major hazard installation's
/// planning zone is a few km; a typo of 10⁹ m must not scan the province).
pub const MAX_RADIUS_M: f64 = 50_000.0;

fn radius(f: &Feature) -> f64 {
    f.properties
        .get("evacuation_radius_m")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
        .clamp(0.0, MAX_RADIUS_M)
}

/// Hazards whose evacuation radius covers `p`, nearest first.
pub fn covering(index: &SpatialIndex, p: [f64; 2]) -> Vec<(f64, std::sync::Arc<Feature>)> {
    let mut out = Vec::new();
    index.nearest(HAZARDS, p, MAX_RADIUS_M, |e, d| {
        let f = e.feature();
        if d <= radius(&f) {
            out.push((d, std::sync::Arc::new(f)));
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

/// `GET /api/hazards/near?lon=&lat=`
pub async fn near(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, AppError> {
    let q = Params::parse(raw.as_deref(), &["lon", "lat", "crs"])?;
    let p = input::point(&q)?;
    let results: Vec<Value> = covering(&state.index, p)
        .into_iter()
        .map(|(d, f)| {
            json!({
                "id": f.id, "name": f.name(), "class": text(&f, "class"),
                "risk_level": text(&f, "risk_level"), "distance_m": round1(d),
                "evacuation_radius_m": radius(&f), "feature": feature_json(&f),
            })
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

/// Features of `layer` within `r` metres of `p`, nearest first (from the
/// database when the layer is too big to hold).
async fn inside(
    state: &AppState,
    layer: &str,
    p: [f64; 2],
    r: f64,
    keep: impl Fn(&Feature) -> bool,
) -> Result<Vec<Value>, AppError> {
    let mut out = Vec::new();
    let Some(def) = state.catalog.get(layer) else {
        return Ok(out);
    };
    state
        .index
        .nearest_from(state.store.as_ref(), def, p, r, |e, d| {
            let f = e.feature();
            if keep(&f) {
                out.push(json!({ "id": e.id(), "name": f.name(), "distance_m": round1(d), "feature": feature_json(&f) }));
            }
            ControlFlow::<()>::Continue(())
        })
        .await?;
    Ok(out)
}

/// `GET /api/hazards/{id}/exposure`: shelters, enterprises, cameras, open
/// incidents and population inside the hazard's evacuation radius.
pub async fn exposure(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let id = path_id("id", &id)?;
    let hazard = state
        .index
        .get(HAZARDS, id)
        .ok_or_else(|| DispatchError::NotFound {
            what: format!("hazard source {id}"),
        })?;
    let geo::Geometry::Point(p) = hazard.feature.geometry else {
        return Err(AppError::Conflict(format!(
            "hazard source {id} is not a point"
        )));
    };
    let (p, r) = ([p.x(), p.y()], radius(&hazard.feature));
    let all = |_: &Feature| true;
    // Population: grid cells whose centre lies inside the radius (cells
    // are 1 km or finer, so the edge error is half a cell at most).
    let mut population = 0i64;
    let mut cells = 0usize;
    if let Some(grid) = state.catalog.get("population_grid") {
        state
            .index
            .nearest_from(state.store.as_ref(), grid, p, r, |e, _| {
                population += match e.scalar("population") {
                    Some(crate::index::Scalar::Integer(n)) => n,
                    _ => 0,
                };
                cells += 1;
                ControlFlow::<()>::Continue(())
            })
            .await?;
    }
    Ok(Json(json!({
        "hazard": feature_json(&hazard.feature),
        "radius_m": r,
        "shelters": inside(&state, "shelters", p, r, all).await?,
        "enterprises": inside(&state, "enterprises", p, r, all).await?,
        "cameras": inside(&state, "cameras", p, r, all).await?,
        "incidents": inside(&state, INCIDENTS, p, r, |f| text(f, "status").is_some_and(|s| OPEN.contains(&s))).await?,
        "population": population,
        "population_cells": cells,
    })))
}
