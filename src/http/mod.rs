//! The HTTP surface: each module's routes merged under the shared layers
//! (metrics, tracing, problem documents, limits, compression, CORS).

pub mod serve;

use axum::{
    body::Body,
    extract::{DefaultBodyLimit, FromRequestParts, Request, State},
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
    dispatch,
    error::{problem, AppError, PROBLEM_JSON},
    events, features, metrics, planning, replay,
    settings::MetricsAccess,
    store, tiles, web, AppState,
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
        .merge(dispatch::router())
        .merge(replay::router())
        .merge(planning::router())
        .merge(web::router(&settings.web_dir))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        // Outside the timeout, so its bare 408 becomes a problem document too.
        .layer(middleware::from_fn(problem_for_bare_errors))
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
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            crate::events::HEARTBEAT_HEADER,
        ]);
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

/// Paths that serve data (features, tiles, styles, glyphs, events, the
/// API definition): with `--read-requires-token` each needs a token.
/// `/healthz` and the web page's own files stay open, so a monitor can
/// probe and a browser can load the page that asks for the token.
const DATA_PREFIXES: &[&str] = &["/ogc", "/api/", "/tiles/", "/styles/", "/fonts/"];

/// What every request passes before a handler: a `Host` this server
/// answers for (links are built from it; a forged one would poison caches
/// and let a rebinding page read the API), and, when reads require a
/// token, a valid token on every data path and on `/metrics` as its own
/// setting says. The caller found here is kept for the handler.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let settings = &state.settings;
    if settings.public_url.is_none() {
        let host = request
            .headers()
            .get(header::HOST)
            .map(|h| h.to_str().unwrap_or("\u{fffd}"))
            .or_else(|| request.uri().authority().map(|a| a.as_str()));
        if let Some(host) = host {
            if !crate::request::host_allowed(host, &settings.allowed_hosts, settings.bind) {
                return AppError::BadRequest(format!(
                    "this server does not answer for host `{}`; use its address or a name \
                     given in --allowed-hosts",
                    host.chars().take(100).collect::<String>()
                ))
                .into_response();
            }
        }
    }
    let path = request.uri().path();
    let needs_token = if path == "/metrics" {
        match settings.metrics {
            MetricsAccess::Open => false,
            MetricsAccess::Token => true,
            MetricsAccess::Off => {
                return AppError::NotFound {
                    what: "`/metrics` (turned off by the `metrics` setting)".into(),
                }
                .into_response()
            }
        }
    } else {
        settings.read_requires_token && DATA_PREFIXES.iter().any(|p| path.starts_with(p))
    };
    if !needs_token {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    match Caller::from_request_parts(&mut parts, &state).await {
        Ok(Caller::Anonymous) => AppError::Unauthorized(format!(
            "reading `{}` needs a bearer token (viewer or above)",
            parts.uri.path()
        ))
        .into_response(),
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(e) => e.into_response(),
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

/// Liveness and readiness: 200 while the store answers.
async fn health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, AppError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| AppError::unavailable("the store does not answer", e))?;
    Ok(Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "skipped_rows": state.index.skipped(),
        "index": state.index_origin,
    })))
}

/// Prometheus exposition.
async fn render_metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    // Held layers are counted in memory; a layer the store serves, in the
    // store only after a change touched it.
    for layer in state.catalog.layers() {
        let n = state.index.count_of(state.store.as_ref(), layer).await?;
        state.metrics.set_features(&layer.name, n);
    }
    state.metrics.set_event_streams(state.events.open_streams());
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
