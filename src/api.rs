//! onemap's own routes beside the OGC API: the audit trail and bulk import.

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Path, RawQuery, State},
    http::HeaderMap,
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};

use crate::{
    auth::Caller,
    crs::Crs,
    error::AppError,
    features::{layer_or_404, query::parse_crs},
    formats::{self, Format},
    settings::Settings,
    store::{AuditQuery, StoreError},
    AppState,
};

pub const DEFAULT_AUDIT_LIMIT: u64 = 100;
pub const MAX_AUDIT_LIMIT: u64 = 10_000;

pub fn router(settings: &Settings) -> Router<AppState> {
    Router::new().route("/api/audit", get(read_audit)).route(
        "/api/import/{layer}",
        post(import_layer).layer(DefaultBodyLimit::max(settings.import_limit)),
    )
}

/// `GET /api/audit?layer=&actor=&feature=&since=&until=&limit=` (admin):
/// who changed what, with the properties before and after, newest first.
async fn read_audit(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, AppError> {
    caller.require_admin("the audit trail")?;
    let mut q = AuditQuery {
        limit: DEFAULT_AUDIT_LIMIT,
        ..AuditQuery::default()
    };
    let time = |k: &str, v: &str| -> Result<String, AppError> {
        chrono::DateTime::parse_from_rfc3339(v)
            .map(|t| {
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string()
            })
            .map_err(|_| {
                AppError::BadRequest(format!("`{k}` must be an RFC 3339 date-time, got `{v}`"))
            })
    };
    for (k, v) in crate::http::query_pairs(raw.as_deref()) {
        match k.as_str() {
            "layer" => {
                layer_or_404(&state, &v)?;
                q.layer = Some(v);
            }
            "actor" => q.actor = Some(v),
            "feature" => {
                q.feature = Some(v.parse().map_err(|_| {
                    AppError::BadRequest(format!("`feature` must be an id, got `{v}`"))
                })?)
            }
            "since" => q.since = Some(time(&k, &v)?),
            "until" => q.until = Some(time(&k, &v)?),
            "limit" => {
                q.limit = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        AppError::BadRequest(format!(
                            "`limit` must be a whole number ≥ 1, got `{v}`"
                        ))
                    })?
                    .min(MAX_AUDIT_LIMIT)
            }
            other => {
                return Err(AppError::BadRequest(format!(
                    "unknown query parameter `{other}` for the audit trail"
                )))
            }
        }
    }
    let entries = state.store.audit(&q).await?;
    Ok(Json(json!({ "entries": entries })))
}

/// `POST /api/import/{layer}?crs=`: a GeoJSON FeatureCollection,
/// newline-delimited GeoJSON, CSV or a GeoPackage, stored all or nothing. A refusal lists every
/// bad feature (index or line, and field), up to the report limit.
async fn import_layer(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(axum::http::StatusCode, Json<Value>), AppError> {
    let layer = layer_or_404(&state, &name)?;
    caller.require_editor(layer.group, &name)?;
    let mut crs = Crs::Wgs84;
    for (k, v) in crate::http::query_pairs(raw.as_deref()) {
        match k.as_str() {
            "crs" => crs = parse_crs("crs", &v)?,
            other => {
                return Err(AppError::BadRequest(format!(
                    "unknown query parameter `{other}` for an import"
                )))
            }
        }
    }
    let ct = crate::http::media_type(&headers).unwrap_or_default();
    let format = Format::of_media_type(&ct).ok_or_else(|| {
        AppError::UnsupportedMediaType(format!(
            "content type `{ct}` cannot be imported; send application/geo+json, application/x-ndjson, \
             text/csv, application/geopackage+sqlite3 or application/zip (a shapefile)"
        ))
    })?;
    let parsed = match format {
        Format::Gpkg | Format::Shapefile => {
            // SQLite and shapefile readers read files: keep the upload in one.
            let file = tempfile::Builder::new()
                .suffix(if format == Format::Gpkg {
                    ".gpkg"
                } else {
                    ".zip"
                })
                .tempfile()
                .map_err(|e| AppError::Unavailable(format!("no room for the upload: {e}")))?;
            std::fs::write(file.path(), &body)
                .map_err(|e| AppError::Unavailable(format!("no room for the upload: {e}")))?;
            formats::read_file(&layer, format, file.path(), crs).await
        }
        _ => formats::read_text(&layer, format, body.clone(), crs).await,
    }
    .map_err(|e| match e {
        formats::ReadError::Invalid(v) => AppError::Invalid(v),
        other => AppError::BadRequest(other.to_string()),
    })?;
    if parsed.features.is_empty() {
        return Err(AppError::BadRequest("the file holds no feature".into()));
    }
    let written = match state
        .store
        .insert(&layer, &parsed.features, &caller.actor())
        .await
    {
        Ok(w) => w,
        Err(StoreError::Invalid(e)) => return Err(AppError::Invalid(parsed.locate(e))),
        Err(e) => return Err(e.into()),
    };
    state.committed(&layer, &written).await;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({ "layer": name, "imported": written.ids.len(), "seq": written.change.seq })),
    ))
}
