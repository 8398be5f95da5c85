//! Part 4 (Create, Replace, Update, Delete): writes to a collection, with
//! `If-Match` optimistic concurrency checked inside the store's transaction.

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};

use super::{
    items::{feature_json, query_pairs, GEOJSON},
    query::parse_crs,
};
use crate::{
    auth::Editor,
    crs::Crs,
    error::AppError,
    formats,
    layers::{Feature, LayerDef},
    request::base_url,
    store::{Op, StoreError, Written},
    AppState,
};

/// PATCH retries this often when another write lands between its read and
/// its write (only when the client sent no `If-Match` of its own).
const PATCH_ATTEMPTS: usize = 3;

fn write_crs(raw: Option<&str>) -> Result<Crs, AppError> {
    let mut crs = Crs::Wgs84;
    for (k, v) in query_pairs(raw) {
        match k.as_str() {
            "crs" => crs = parse_crs("crs", &v)?,
            other => {
                return Err(AppError::BadRequest(format!(
                    "unknown query parameter `{other}` for a write"
                )))
            }
        }
    }
    Ok(crs)
}

fn require_json(headers: &HeaderMap, allowed: &[&str]) -> Result<(), AppError> {
    let ct = crate::request::media_type(headers);
    match ct {
        Some(ct) if allowed.contains(&ct.as_str()) => Ok(()),
        Some(ct) => Err(AppError::UnsupportedMediaType(format!(
            "content type `{ct}` is not accepted here; send {}",
            allowed.join(" or ")
        ))),
        None => Err(AppError::UnsupportedMediaType(format!(
            "a Content-Type header is required: {}",
            allowed.join(" or ")
        ))),
    }
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| v != "*")
}

/// The body as GeoJSON features in WGS84, refusing malformed JSON with 400
/// and bad geometries with 422.
fn read_features(
    layer: &LayerDef,
    body: &Bytes,
    crs: Crs,
) -> Result<(Vec<Feature>, bool), AppError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("the body is not JSON: {e}")))?;
    let single = match value.get("type").and_then(Value::as_str) {
        Some("Feature") => true,
        Some("FeatureCollection") => false,
        _ => {
            return Err(AppError::BadRequest(
                "the body must be a GeoJSON Feature or FeatureCollection".into(),
            ))
        }
    };
    let text = String::from_utf8_lossy(body);
    Ok((
        formats::geojson::parse(&layer.name, &text, crs)?.features,
        single,
    ))
}

fn feature_id(layer: &str, id: &str) -> Result<i64, AppError> {
    id.parse().map_err(|_| AppError::NotFound {
        what: format!("feature `{id}` of `{layer}`"),
    })
}

/// Answer a write with the feature as now stored, its ETag and Location.
async fn answer(
    state: &AppState,
    layer: &LayerDef,
    id: i64,
    status: StatusCode,
    headers: &HeaderMap,
    crs: Crs,
) -> Result<Response, AppError> {
    let stored = state
        .store
        .feature(layer, id)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: format!("feature {id} of `{}`", layer.name),
        })?;
    let location = format!(
        "{}/ogc/collections/{}/items/{id}",
        base_url(state, headers),
        layer.name
    );
    let mut response = (status, feature_json(&stored, crs)).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(GEOJSON));
    if let Ok(v) = HeaderValue::from_str(&stored.etag()) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    Ok(response)
}

async fn published(
    state: &AppState,
    layer: &std::sync::Arc<LayerDef>,
    written: Written,
) -> Written {
    state.committed(layer, &written).await;
    written
}

/// `POST /ogc/collections/{layer}/items`: one Feature (201 with Location) or
/// a FeatureCollection (201 with the new ids), all or nothing.
pub async fn create_item(
    State(state): State<AppState>,
    Editor { caller, layer }: Editor,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let name = &layer.name;
    require_json(&headers, &[GEOJSON, "application/json"])?;
    let crs = write_crs(raw.as_deref())?;
    let (features, single) = read_features(&layer, &body, crs)?;
    if features.is_empty() {
        return Err(AppError::BadRequest(
            "the FeatureCollection holds no feature".into(),
        ));
    }
    let written = state
        .store
        .insert(&layer, &features, &caller.actor())
        .await?;
    let written = published(&state, &layer, written).await;
    if single {
        return answer(
            &state,
            &layer,
            written.ids[0],
            StatusCode::CREATED,
            &headers,
            crs,
        )
        .await;
    }
    let base = base_url(&state, &headers);
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("{base}/ogc/collections/{name}/items"),
        )],
        axum::Json(json!({ "ids": written.ids, "seq": written.change.seq })),
    )
        .into_response())
}

/// `PUT /ogc/collections/{layer}/items/{id}`: replace the feature whole.
pub async fn replace_item(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    Editor { caller, layer }: Editor,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let name = &layer.name;
    require_json(&headers, &[GEOJSON, "application/json"])?;
    let fid = feature_id(name, &id)?;
    let crs = write_crs(raw.as_deref())?;
    let (mut features, _) = read_features(&layer, &body, crs)?;
    if features.len() != 1 {
        return Err(AppError::BadRequest(
            "PUT takes exactly one GeoJSON Feature".into(),
        ));
    }
    let feature = features.remove(0);
    let expected = if_match(&headers);
    match state
        .store
        .replace(
            &layer,
            fid,
            &feature,
            Op::Replace,
            &caller.actor(),
            expected.as_deref(),
        )
        .await?
    {
        Some(written) => {
            published(&state, &layer, written).await;
            answer(&state, &layer, fid, StatusCode::OK, &headers, crs).await
        }
        None => Err(AppError::NotFound {
            what: format!("feature `{id}` of `{name}`"),
        }),
    }
}

/// RFC 7396 JSON Merge Patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => {
            *t = p.clone();
        }
    }
}

/// `PATCH /ogc/collections/{layer}/items/{id}`: a JSON merge patch of the
/// GeoJSON feature (`{"properties": {"status": "dispatched"}}`).
pub async fn update_item(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    Editor { caller, layer }: Editor,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let name = &layer.name;
    require_json(
        &headers,
        &["application/merge-patch+json", "application/json", GEOJSON],
    )?;
    let fid = feature_id(name, &id)?;
    let crs = write_crs(raw.as_deref())?;
    let patch: Value = serde_json::from_slice(&body)
        .map_err(|e| AppError::BadRequest(format!("the body is not JSON: {e}")))?;
    if !patch.is_object() {
        return Err(AppError::BadRequest(
            "a merge patch must be a JSON object".into(),
        ));
    }
    if patch.get("id").is_some_and(|v| v.as_i64() != Some(fid)) {
        return Err(AppError::BadRequest(
            "a patch cannot change a feature's id".into(),
        ));
    }
    let client_tag = if_match(&headers);
    for _ in 0..PATCH_ATTEMPTS {
        let not_found = || AppError::NotFound {
            what: format!("feature `{id}` of `{name}`"),
        };
        let current = state
            .store
            .feature(&layer, fid)
            .await?
            .ok_or_else(not_found)?;
        let tag = current.etag();
        if client_tag.as_ref().is_some_and(|t| *t != tag) {
            return Err(AppError::PreconditionFailed(format!(
                "feature {fid} of `{name}` has changed since it was read: read it again and retry with its current ETag"
            )));
        }
        // The patch applies to the representation the client sees (its crs).
        let mut doc: Value =
            serde_json::from_slice(&feature_json(&current, crs)).unwrap_or_default();
        merge_patch(&mut doc, &patch);
        let text = doc.to_string();
        let mut merged = formats::geojson::parse(name, &text, crs)?.features;
        let feature = merged
            .pop()
            .ok_or_else(|| AppError::BadRequest("the patched feature is empty".into()))?;
        match state
            .store
            .replace(
                &layer,
                fid,
                &feature,
                Op::Update,
                &caller.actor(),
                Some(&tag),
            )
            .await
        {
            Ok(Some(written)) => {
                published(&state, &layer, written).await;
                return answer(&state, &layer, fid, StatusCode::OK, &headers, crs).await;
            }
            Ok(None) => return Err(not_found()),
            Err(StoreError::PreconditionFailed { .. }) if client_tag.is_none() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::Conflict(format!(
        "feature {fid} of `{name}` kept changing during the patch; try again"
    )))
}

/// `DELETE /ogc/collections/{layer}/items/{id}`
pub async fn delete_item(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    Editor { caller, layer }: Editor,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let name = &layer.name;
    let fid = feature_id(name, &id)?;
    let expected = if_match(&headers);
    match state
        .store
        .delete(&layer, fid, &caller.actor(), expected.as_deref())
        .await?
    {
        Some(written) => {
            published(&state, &layer, written).await;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        None => Err(AppError::NotFound {
            what: format!("feature `{id}` of `{name}`"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"properties": {"tags": ["a"]}});
        merge_patch(&mut doc, &json!({"properties": {"tags": ["b"]}}));
        assert_eq!(doc, json!({"properties": {"tags": ["b"]}}));
    }
}
