//! The HTTP surface: each module's routes merged under the shared layers
//! (metrics, tracing, problem documents, limits, compression, CORS).

use axum::{
    body::Body,
    extract::{DefaultBodyLimit, Request, State},
    http::{header, HeaderValue, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::json;
use tower_http::{
    compression::CompressionLayer,
    cors::{AllowOrigin, Any, CorsLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use crate::{
    api,
    auth::Caller,
    error::{problem, AppError, PROBLEM_JSON},
    events, features, metrics, store, tiles, web, AppState,
};

pub fn router(state: AppState) -> Router {
    let settings = &state.settings;
    let mut routes = Router::new();
    if let Some(n) = settings.bench_fixed_body {
        // The baseline of benches/tiles_load.py: the cheapest answer this
        // server can give, a body of a tile's size already in memory.
        let body = axum::body::Bytes::from(vec![b'x'; n]);
        routes = routes.route("/bench/fixed", get(move || async move { body.clone() }));
    }
    routes
        .route("/healthz", get(health))
        .route("/metrics", get(render_metrics))
        .route("/api/layers", get(list_layers))
        .merge(features::router())
        .merge(events::router())
        .merge(tiles::router())
        .merge(api::router(settings))
        .merge(web::router(&settings.web_dir))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(CompressionLayer::new())
        .layer(cors(&settings.cors_origins))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
        ])
        .expose_headers([header::ETAG, header::LOCATION]);
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

/// Turn the plain-text or empty error answers of axum and tower-http (404 of
/// an unknown route, 405, 408 timeout, 413 body too large, 415, …) into
/// problem documents, so that every refusal has one shape.
async fn problem_for_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Bare error bodies are short texts; read at most 4 KiB of one.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let detail = match (status, text.trim()) {
        (StatusCode::NOT_FOUND, _) => "no resource at this path".to_owned(),
        (StatusCode::METHOD_NOT_ALLOWED, _) => "this method is not allowed on this path".to_owned(),
        (StatusCode::REQUEST_TIMEOUT, _) => {
            "the request took too long and was abandoned".to_owned()
        }
        (StatusCode::PAYLOAD_TOO_LARGE, _) => {
            "the request body is larger than the server accepts".to_owned()
        }
        (_, "") => status.canonical_reason().unwrap_or("error").to_owned(),
        (_, t) => t.to_owned(),
    };
    let mut out = problem(status, &detail, None);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// The pairs of a raw query string, decoded.
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The request's media type, lower-cased, without parameters.
pub fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

/// Liveness and readiness: 200 while the store answers.
async fn health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, AppError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| AppError::Unavailable(format!("the store does not answer ({e})")))?;
    Ok(Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "skipped_rows": state.index.skipped(),
    })))
}

/// Prometheus exposition.
async fn render_metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    // The index holds every feature: counting there costs no query.
    for layer in state.catalog.layers() {
        state
            .metrics
            .set_features(&layer.name, state.index.len(&layer.name) as u64);
    }
    // moka counts lazily: settle its bookkeeping so the figures are current.
    state.tiles.run_pending_tasks().await;
    state
        .metrics
        .set_tile_cache(state.tiles.weighted_size(), state.tiles.entry_count());
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        Body::from(state.metrics.render()),
    )
        .into_response())
}

/// The catalog with each layer's feature count: what the web map's layer
/// list shows.
async fn list_layers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, AppError> {
    caller.require_reader(&state)?;
    let mut layers = Vec::new();
    for layer in state.catalog.layers() {
        let count = state.store.count(layer, &store::Query::default()).await?;
        layers.push(json!({
            "name": layer.name,
            "title_zh": layer.title_zh,
            "title_en": layer.title_en,
            "geometry": layer.geometry,
            "group": layer.group,
            "properties": layer.properties,
            "count": count,
        }));
    }
    Ok(Json(json!({ "layers": layers })))
}
