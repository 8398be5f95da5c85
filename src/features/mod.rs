//! OGC API – Features (Parts 1, 3 and 4) under `/ogc`: every layer of the
//! one map as a collection that GDAL, QGIS, ArcGIS and the web map read.
//!
//! Spec: OGC 17-069r4 (Part 1: Core), OGC 19-079r2 (Part 3: Filtering),
//! OGC 20-002 (Part 4: Create, Replace, Update and Delete, draft).

pub mod indexed;
mod items;

pub use items::MAX_CONCURRENT_EXPORTS;
pub mod openapi;
pub mod query;
pub mod transactions;

use axum::{
    extract::{Path, RawQuery, State},
    http::HeaderMap,
    routing::get,
    Json, Router,
};
use serde_json::{json, Value};

use crate::{
    auth::Caller,
    error::AppError,
    filter::GEOMETRY,
    layers::{LayerDef, PropertyType},
    request::{base_url, layer_or_404},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ogc", get(landing))
        .route("/ogc/", get(landing))
        .route("/ogc/conformance", get(conformance))
        .route("/ogc/api", get(openapi::definition))
        .route("/ogc/collections", get(collections))
        .route("/ogc/collections/{layer}", get(collection))
        .route("/ogc/collections/{layer}/queryables", get(queryables))
        .merge(items::router())
}

/// The conformance classes this server implements.
pub const CONFORMANCE: &[&str] = &[
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
];

/// Part 1 requires a 400 for query parameters a resource does not know;
/// these resources know only `f`.
fn only_f(raw: Option<&str>) -> Result<(), AppError> {
    for (k, v) in items::query_pairs(raw) {
        match k.as_str() {
            "f" if v == "json" => {}
            "f" => {
                return Err(AppError::BadRequest(format!(
                    "`f={v}` is not a format of this resource (json)"
                )))
            }
            other => {
                return Err(AppError::BadRequest(format!(
                    "unknown query parameter `{other}`"
                )))
            }
        }
    }
    Ok(())
}

/// Part 1 §7.2: the landing page.
async fn landing(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    only_f(raw.as_deref())?;
    let base = base_url(&state, &headers);
    Ok(Json(json!({
        "title": "onemap 应急资源一张图",
        "description": "Emergency resources, hazards and shelters of the district as OGC API – Features collections",
        "links": [
            { "href": format!("{base}/ogc"), "rel": "self", "type": "application/json", "title": "this document" },
            { "href": format!("{base}/ogc/api"), "rel": "service-desc", "type": "application/vnd.oai.openapi+json;version=3.0", "title": "the API definition" },
            { "href": format!("{base}/ogc/conformance"), "rel": "conformance", "type": "application/json", "title": "conformance classes" },
            { "href": format!("{base}/ogc/collections"), "rel": "data", "type": "application/json", "title": "the layers" },
        ]
    })))
}

/// Part 1 §7.4: conformance declaration.
async fn conformance(RawQuery(raw): RawQuery) -> Result<Json<Value>, AppError> {
    only_f(raw.as_deref())?;
    Ok(Json(json!({ "conformsTo": CONFORMANCE })))
}

/// Part 1 §7.13: the collections.
async fn collections(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    caller.require_reader(&state)?;
    only_f(raw.as_deref())?;
    let base = base_url(&state, &headers);
    let mut out = Vec::new();
    for layer in state.catalog.layers() {
        out.push(describe(&state, &base, layer).await?);
    }
    Ok(Json(json!({
        "links": [{ "href": format!("{base}/ogc/collections"), "rel": "self", "type": "application/json" }],
        "collections": out,
    })))
}

/// Part 1 §7.14: one collection.
async fn collection(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    caller.require_reader(&state)?;
    only_f(raw.as_deref())?;
    let layer = layer_or_404(&state, &name)?;
    let base = base_url(&state, &headers);
    Ok(Json(describe(&state, &base, &layer).await?))
}

async fn describe(state: &AppState, base: &str, layer: &LayerDef) -> Result<Value, AppError> {
    let extent = state.store.extent(layer).await?;
    let href = format!("{base}/ogc/collections/{}", layer.name);
    let mut c = json!({
        "id": layer.name,
        "title": format!("{} {}", layer.title_zh, layer.title_en),
        "description": format!("{} / {}", layer.title_zh, layer.title_en),
        "itemType": "feature",
        "crs": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"],
        "links": [
            { "href": href, "rel": "self", "type": "application/json" },
            { "href": format!("{href}/items"), "rel": "items", "type": "application/geo+json", "title": layer.title_zh },
            { "href": format!("{href}/queryables"), "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables", "type": "application/schema+json" },
        ],
        "x-onemap": { "title_zh": layer.title_zh, "title_en": layer.title_en, "group": layer.group, "geometry": layer.geometry },
    });
    if let (Some(bbox), Some(obj)) = (extent, c.as_object_mut()) {
        obj.insert(
            "extent".into(),
            json!({ "spatial": { "bbox": [bbox], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84" } }),
        );
    }
    Ok(c)
}

/// Part 3 §6.2: the queryables as a JSON Schema.
async fn queryables(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<([(axum::http::HeaderName, &'static str); 1], Json<Value>), AppError> {
    let layer = layer_or_404(&state, &name)?;
    let base = base_url(&state, &headers);
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/schema+json")],
        Json(queryables_schema(
            &layer,
            &format!("{base}/ogc/collections/{name}/queryables"),
        )),
    ))
}

/// The JSON Schema of a layer's properties (also what clients validate
/// their writes against).
pub fn queryables_schema(layer: &LayerDef, id: &str) -> Value {
    let mut props = serde_json::Map::new();
    props.insert(
        GEOMETRY.into(),
        json!({ "title": "geometry", "format": match layer.geometry.as_slice() {
            [one] => format!("geometry-{}", one.sql_name().to_ascii_lowercase()),
            _ => "geometry-any".to_owned(),
        }}),
    );
    props.insert("id".into(), json!({ "title": "id", "type": "integer" }));
    for p in &layer.properties {
        let mut s = match p.kind {
            PropertyType::String => json!({ "type": "string" }),
            PropertyType::Integer => json!({ "type": "integer" }),
            PropertyType::Number => json!({ "type": "number" }),
            PropertyType::Boolean => json!({ "type": "boolean" }),
            PropertyType::Datetime => json!({ "type": "string", "format": "date-time" }),
            PropertyType::Enum => json!({ "type": "string", "enum": p.values }),
            PropertyType::Array => match &p.values {
                Some(v) => json!({ "type": "array", "items": { "type": "string", "enum": v } }),
                None => json!({ "type": "array", "items": { "type": "string" } }),
            },
            PropertyType::Records => json!({ "type": "array", "items": { "type": "object" } }),
        };
        if let Some(obj) = s.as_object_mut() {
            if let Some(t) = p.title_zh.as_ref().or(p.title_en.as_ref()) {
                obj.insert("title".into(), json!(t));
            }
            if let Some(u) = &p.unit {
                obj.insert("x-ogc-unit".into(), json!(u));
            }
            if let Some(m) = p.minimum {
                obj.insert("minimum".into(), json!(m));
            }
            if let Some(m) = p.maximum {
                obj.insert("maximum".into(), json!(m));
            }
        }
        props.insert(p.name.clone(), s);
    }
    let required: Vec<&str> = layer
        .properties
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name.as_str())
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": id,
        "type": "object",
        "title": format!("{} {}", layer.title_zh, layer.title_en),
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}
