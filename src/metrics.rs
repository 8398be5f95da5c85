//! Prometheus metrics: requests by route and status, request latency,
//! features per layer, and the tile cache (builds and their time, bytes
//! held; hits are the tile requests less the builds, so the hot path adds
//! no counter of its own).
//!
//! Each server owns its registry (no global recorder), so tests can run many
//! servers in one process.

use std::{sync::Mutex, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LayerLabels {
    layer: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~4 s: tiles answer in well under a millisecond, imports take seconds.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0005, 2.0, 14,
    ))
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    features: Family<LayerLabels, Gauge>,
    tile_builds: Counter,
    tile_build_seconds: Histogram,
    tile_cache_bytes: Gauge,
    tile_cache_entries: Gauge,
    feed_changes: Counter,
    feed_failures: Counter,
    feed_seconds: Histogram,
    event_streams: Gauge,
    skipped_rows: Family<LayerLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("onemap");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let features = Family::<LayerLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            latency.clone(),
        );
        registry.register(
            "layer_features",
            "Features stored per layer",
            features.clone(),
        );
        let tile_builds = Counter::default();
        let tile_build_seconds = latency_histogram();
        let tile_cache_bytes = Gauge::default();
        let tile_cache_entries = Gauge::default();
        registry.register(
            "tile_builds",
            "Tiles cut from the index (cache misses; one per key however many asked at once)",
            tile_builds.clone(),
        );
        registry.register(
            "tile_build_duration_seconds",
            "Time to cut and gzip one tile",
            tile_build_seconds.clone(),
        );
        registry.register(
            "tile_cache_bytes",
            "Bytes of tiles held in the cache (raw and gzipped)",
            tile_cache_bytes.clone(),
        );
        registry.register(
            "tile_cache_entries",
            "Tiles held in the cache",
            tile_cache_entries.clone(),
        );
        let feed_changes = Counter::default();
        let feed_failures = Counter::default();
        let feed_seconds = latency_histogram();
        let event_streams = Gauge::default();
        registry.register(
            "feed_changes",
            "Changes of the change log applied to the index and the event stream (every writer's)",
            feed_changes.clone(),
        );
        registry.register(
            "feed_failures",
            "Changes that could not be applied to the index after retries",
            feed_failures.clone(),
        );
        registry.register(
            "feed_apply_duration_seconds",
            "Time to apply one change to the index",
            feed_seconds.clone(),
        );
        registry.register(
            "event_streams",
            "Open /api/events streams",
            event_streams.clone(),
        );
        let skipped_rows = Family::<LayerLabels, Gauge>::default();
        registry.register(
            "index_skipped_rows",
            "Stored rows the spatial index could not load (NULL, empty or refused geometries), per layer",
            skipped_rows.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            feed_changes,
            feed_failures,
            feed_seconds,
            event_streams,
            requests,
            latency,
            features,
            tile_builds,
            tile_build_seconds,
            tile_cache_bytes,
            tile_cache_entries,
            skipped_rows,
        }
    }

    pub fn feed_applied(&self, seconds: f64) {
        self.feed_changes.inc();
        self.feed_seconds.observe(seconds);
    }

    pub fn feed_failed(&self) {
        self.feed_failures.inc();
    }

    pub fn set_event_streams(&self, open: usize) {
        self.event_streams
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    pub fn set_skipped_rows(&self, layer: &str, count: u64) {
        self.skipped_rows
            .get_or_create(&LayerLabels {
                layer: layer.to_owned(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn tile_built(&self, seconds: f64) {
        self.tile_builds.inc();
        self.tile_build_seconds.observe(seconds);
    }

    pub fn set_tile_cache(&self, bytes: u64, entries: u64) {
        self.tile_cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.tile_cache_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    pub fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    pub fn set_features(&self, layer: &str, count: u64) {
        self.features
            .get_or_create(&LayerLabels {
                layer: layer.to_owned(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The exposition text (OpenMetrics text format, which Prometheus reads).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Middleware: count and time every request under its route template, so
/// `/ogc/collections/shelters/items/7` and `/…/8` share one series.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    state.metrics.record(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
