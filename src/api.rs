//! onemap's own routes beside the OGC API: the audit trail and bulk import.

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, RawQuery, State},
    http::HeaderMap,
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};

use crate::{
    auth::{Caller, Editor},
    crs::Crs,
    error::AppError,
    features::query::parse_crs,
    formats::{self, Format},
    request::{layer_or_404, query_pairs},
    settings::Settings,
    store::{AuditQuery, ImportSource, StoreError},
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
    for (k, v) in query_pairs(raw.as_deref()) {
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

/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 200;

/// The request's `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key):
/// visible ASCII, at most [`MAX_IDEMPOTENCY_KEY`] characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(|k| k.trim().trim_matches('"'))
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .filter(|k| k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            AppError::BadRequest(format!(
                "`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_owned()))
}

/// `POST /api/import/{layer}?crs=`: a GeoJSON FeatureCollection,
/// newline-delimited GeoJSON, CSV or a GeoPackage, stored all or nothing. A refusal lists every
/// bad feature (index or line, and field), up to the report limit.
async fn import_layer(
    State(state): State<AppState>,
    Editor { caller, layer }: Editor,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(axum::http::StatusCode, Json<Value>), AppError> {
    let name = layer.name.clone();
    let mut crs = Crs::Wgs84;
    let (mut maps, mut drop_unknown) = (Vec::new(), false);
    for (k, v) in query_pairs(raw.as_deref()) {
        match k.as_str() {
            "crs" => crs = parse_crs("crs", &v)?,
            // `map=源列=property`, repeatable; as the CLI's `--map`.
            "map" => maps.push(v),
            // A bare `?drop_unknown` means true, as a CLI switch does.
            "drop_unknown" => {
                drop_unknown = v.is_empty() || crate::request::flag("drop_unknown", &v)?
            }
            other => {
                return Err(AppError::BadRequest(format!(
                    "unknown query parameter `{other}` for an import"
                )))
            }
        }
    }
    let columns = formats::ColumnMap::new(&layer, &maps, drop_unknown)
        .map_err(|why| AppError::BadRequest(format!("`map`: {why}")))?;
    let ct = crate::request::media_type(&headers).unwrap_or_default();
    let format = Format::of_media_type(&ct).ok_or_else(|| {
        AppError::UnsupportedMediaType(format!(
            "content type `{ct}` cannot be imported; send application/geo+json, application/x-ndjson, \
             text/csv, application/geopackage+sqlite3 or application/zip (a shapefile)"
        ))
    })?;
    let mut parsed = match format {
        Format::Gpkg | Format::Shapefile => {
            // SQLite and shapefile readers read files: keep the upload in one.
            let file = tempfile::Builder::new()
                .suffix(if format == Format::Gpkg {
                    ".gpkg"
                } else {
                    ".zip"
                })
                .tempfile()
                .map_err(|e| AppError::unavailable("no room for the upload", e))?;
            // Written off the async workers: an upload may be 256 MiB.
            tokio::fs::write(file.path(), &body)
                .await
                .map_err(|e| AppError::unavailable("no room for the upload", e))?;
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
    let applied = columns.apply(&layer, &mut parsed.features);
    let key = idempotency_key(&headers)?;
    let source = {
        let body = body.clone();
        let digest = tokio::task::spawn_blocking(move || formats::digest(&body))
            .await
            .map_err(|e| AppError::Internal(format!("digesting the upload: {e}")))?;
        ImportSource {
            digest,
            format: format.extension().to_owned(),
            file: None,
        }
    };
    // The write runs as its own task: when the request timeout or a
    // dropped connection ends this handler, the import still finishes (or
    // rolls back) whole, and a retry with the same key finds it.
    let features = std::mem::take(&mut parsed.features);
    let (store, target, actor) = (state.store.clone(), layer.clone(), caller.actor());
    let task = tokio::spawn(async move {
        store
            .import(&target, &features, &actor, key.as_deref(), &source)
            .await
    });
    let (written, replayed) = match task.await {
        Ok(Ok(done)) => done,
        Ok(Err(StoreError::Invalid(e))) => return Err(AppError::Invalid(parsed.locate(e))),
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => {
            tracing::error!(error = %e, layer = %name, "an import task failed");
            return Err(AppError::Internal(format!(
                "the import into `{name}` failed"
            )));
        }
    };
    state.committed(&layer, &written).await;
    let status = if replayed {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::CREATED
    };
    Ok((
        status,
        Json(json!({
            "layer": name,
            "imported": written.ids.len(),
            "seq": written.change.seq,
            "replayed": replayed,
            "columns": applied,
        })),
    ))
}
