//! Vector tiles (`/tiles/{layers}/{z}/{x}/{y}.mvt`) and their TileJSON
//! (`/tiles/{layers}.json`), cut from the in-memory index.
//!
//! Tiles are cached by bytes with keys that carry each layer's version of
//! that tile, so an edit invalidates only the tiles it came near; each tile is gzipped
//! once, carries a strong ETag, and answers 304 to a matching If-None-Match.

pub mod basemap;
pub mod build;
mod clip;
pub mod glyphs;
mod simplify;
pub mod style;

use std::{fmt::Write as _, sync::Arc};

use axum::{
    body::Body,
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use moka::future::Cache;
use serde_json::{json, Value};

use crate::{
    auth::Caller,
    crs::Crs,
    error::AppError,
    features::query::parse_crs,
    filter::{self, Expr},
    index::{lonlat_to_mercator, EARTH_HALF_CIRCUMFERENCE},
    layers::{LayerDef, PropertyType},
    request::base_url,
    AppState,
};

pub const MAX_ZOOM: u8 = 22;
/// The zoom at which change events name the tiles a write touched.
pub const EVENT_ZOOM: u8 = 14;
pub const MVT: &str = "application/vnd.mapbox-vector-tile";
/// Bytes of tiles kept in memory.
pub const CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// A built tile: its bytes, gzipped once when first asked for so, and its
/// ETag.
#[derive(Debug)]
pub struct Built {
    /// `Bytes`: each answer shares the cached buffer instead of copying it.
    pub raw: axum::body::Bytes,
    /// Made on the first request that accepts gzip, not with the tile:
    /// compressing was a third of a cold tile's cost, paid even by clients
    /// that never asked for it.
    gzip: std::sync::OnceLock<axum::body::Bytes>,
    pub etag: String,
    /// The ETag as a header, made once.
    etag_header: HeaderValue,
}

/// Keys hashed with foldhash: they are ours, not an attacker's choice of
/// collisions (each names a version and a validated tile address).
/// The cache's own memory per entry besides key and value (moka's
/// hash-table slot, access-order deque node and entry Arc), rounded up.
const ENTRY_OVERHEAD: usize = 256;

pub type TileCache = Cache<String, Arc<Option<Built>>, foldhash::fast::RandomState>;

pub fn cache() -> TileCache {
    Cache::builder()
        .max_capacity(CACHE_BYTES)
        // What an entry really holds: both bodies (shrunk to their length
        // in `finish`, so length is allocation), the key's allocation, the
        // ETag twice (text and header) and the cache's own bookkeeping per
        // entry (hash-table slot, deque nodes, Arcs: a few hundred bytes).
        // Counting only the bodies undercounted the real memory 2.4-fold.
        .weigher(|k: &String, v: &Arc<Option<Built>>| {
            let bytes = v.as_ref().as_ref().map_or(0, |b| {
                // The gzip body counted before it is made (about half
                // the raw size for these tiles): the weight is fixed at
                // insertion.
                b.raw.len() + b.raw.len() / 2 + 2 * b.etag.len() + std::mem::size_of::<Built>()
            });
            u32::try_from(bytes + k.capacity() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
        })
        // No idle timer: a key names its layers' versions, so an outdated
        // tile is never asked for again and ages out by size; a hit then
        // costs no clock read.
        .build_with_hasher(foldhash::fast::RandomState::default())
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tiles/{file}", get(tilejson))
        .route("/tiles/{layers}/{z}/{x}/{y}", get(tile))
        .route("/styles/onemap.json", get(style::get_style))
        .route("/fonts/{fontstack}/{range}", get(glyphs::get_glyphs))
        .route("/tiles/basemap/{file}", get(basemap::basemap_tilejson))
        .route(
            "/tiles/basemap/{name}/{z}/{x}/{y}",
            get(basemap::basemap_tile),
        )
}

/// `onemap` means every layer; otherwise a comma-separated list. Borrowed
/// from the catalog: a cached tile is answered without touching the
/// layers' shared reference counts.
fn resolve_layers<'a>(state: &'a AppState, spec: &str) -> Result<Vec<&'a Arc<LayerDef>>, AppError> {
    if spec == "onemap" {
        return Ok(state.catalog.layers().iter().collect());
    }
    spec.split(',')
        .map(|name| {
            state
                .catalog
                .get(name.trim())
                .ok_or_else(|| AppError::NotFound {
                    what: format!("layer `{}`", name.trim()),
                })
        })
        .collect()
}

/// The query parameters tiles take: `filter` (CQL2-text, applied to every
/// layer that has the properties it names) and `crs`.
struct TileParams {
    filter: Option<String>,
    crs: Crs,
}

fn tile_params(raw: Option<&str>) -> Result<TileParams, AppError> {
    let mut p = TileParams {
        filter: None,
        crs: Crs::Wgs84,
    };
    for (k, v) in crate::request::query_pairs(raw) {
        match k.as_str() {
            "filter" => p.filter = Some(v),
            "filter-lang" if v == "cql2-text" => {}
            "crs" => p.crs = parse_crs("crs", &v)?,
            other => {
                return Err(AppError::BadRequest(format!(
                    "unknown query parameter `{other}` for tiles"
                )))
            }
        }
    }
    Ok(p)
}

/// Each layer of a tile with its own parse of the filter.
type LayerFilters<'a> = Vec<(&'a Arc<LayerDef>, Option<Expr>)>;

/// Parse the filter for each layer; a layer that lacks a property the filter
/// names is left out of a filtered tile (it cannot match).
fn layer_filters<'a>(
    layers: &[&'a Arc<LayerDef>],
    text: Option<&str>,
) -> Result<LayerFilters<'a>, AppError> {
    let Some(text) = text else {
        return Ok(layers.iter().map(|l| (*l, None)).collect());
    };
    let bad = |e: filter::FilterError| AppError::BadRequest(format!("`filter`: {e}"));
    // Read once for all layers: an error of the text itself (too long, not
    // CQL2) is the answer, and each geometry literal is checked once.
    let parsed = filter::parse_cql2_each(text, layers.iter().map(|l| &***l)).map_err(bad)?;
    let mut out = Vec::new();
    let mut last_error = None;
    for (l, parsed) in layers.iter().zip(parsed) {
        match parsed {
            Ok(e) => out.push((*l, Some(e))),
            Err(e) => last_error = Some(e),
        }
    }
    match (out.is_empty(), last_error) {
        (true, Some(e)) => Err(bad(e)),
        _ => Ok(out),
    }
}

/// MVT 2.1 tile: `GET /tiles/{layers}/{z}/{x}/{y}.mvt`.
async fn tile(
    State(state): State<AppState>,
    Path((spec, z, x, y)): Path<(String, String, String, String)>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    // The request itself, last: its headers are read in place (a
    // `HeaderMap` extractor would copy them on every hit).
    request: axum::extract::Request,
) -> Result<Response, AppError> {
    let headers = request.headers();
    caller.require_reader(&state)?;
    let y_text = y
        .strip_suffix(".mvt")
        .or_else(|| y.strip_suffix(".pbf"))
        .ok_or_else(|| {
            AppError::BadRequest(format!("tile name (…/{{y}}.mvt) `{y}` is not valid"))
        })?;
    let (z, x, y) = tile_address(&z, &x, y_text, MAX_ZOOM)?;
    let layers = resolve_layers(&state, &spec)?;
    let params = tile_params(raw.as_deref())?;
    let filters = layer_filters(&layers, params.filter.as_deref())?;

    // The key names every input of the tile: the layers asked for with
    // their versions, the normalised filter of each, the datum and the tile
    // address.
    let mut key = String::with_capacity(48 + 24 * filters.len());
    let _ = write!(key, "{spec}/{z}/{x}/{y}|{}", params.crs);
    for (l, f) in &filters {
        let _ = write!(key, "|{}", state.index.tile_version(&l.name, z, x, y));
        if let Some(f) = f {
            let _ = write!(key, "?{f}");
        }
    }
    let shared = match state.tiles.get(&key).await {
        Some(hit) => hit,
        None => build_and_cache(&state, key, (z, x, y), &filters, params.crs).await?,
    };
    let built = &shared;
    let cache_control = (
        header::CACHE_CONTROL,
        // Live data: a browser keeps the tile but asks again each time (a
        // 304 when unchanged), so a reload after a change event is fresh.
        HeaderValue::from_static("public, no-cache"),
    );
    let Some(built) = built.as_ref() else {
        return Ok((StatusCode::NO_CONTENT, [cache_control]).into_response());
    };
    let etag = built.etag_header.clone();
    if crate::etag::none_match(headers, &built.etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), cache_control],
        )
            .into_response());
    }
    let gzip_ok = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut response = if gzip_ok {
        let body = match built.gzip.get() {
            Some(gz) => gz.clone(),
            // Small tiles are compressed in place; big ones off the async
            // workers.
            None if built.raw.len() < 64 * 1024 => built.gzipped(),
            None => {
                let owned = Arc::clone(&shared);
                tokio::task::spawn_blocking(move || {
                    owned
                        .as_ref()
                        .as_ref()
                        .map(Built::gzipped)
                        .unwrap_or_default()
                })
                .await
                .map_err(|e| AppError::Internal(format!("compressing a tile: {e}")))?
            }
        };
        let mut r = Response::new(Body::from(body));
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        Response::new(Body::from(built.raw.clone()))
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MVT));
    h.insert(header::ETAG, etag);
    h.insert(cache_control.0, cache_control.1);
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    Ok(response)
}

/// Cut a tile on a blocking thread and cache it; concurrent misses of one
/// key wait for a single build. A build that panicked is not cached (a map
/// would silently miss data for as long as the entry lived): it is logged
/// and answered as a 500, and the next request tries again.
async fn build_and_cache(
    state: &AppState,
    key: String,
    (z, x, y): (u8, u32, u32),
    filters: &LayerFilters<'_>,
    crs: Crs,
) -> Result<Arc<Option<Built>>, AppError> {
    let (in_store, owned): (Vec<_>, Vec<_>) = filters
        .iter()
        .map(|(l, f)| (Arc::clone(l), f.clone()))
        .partition(|(l, _)| state.index.in_store(&l.name));
    let index = state.index.clone();
    let metrics = state.metrics.clone();
    let store = Arc::clone(&state.store);
    let built = state
        .tiles
        .try_get_with(key, async move {
            let started = std::time::Instant::now();
            // Layers the store serves, cut by the database; then the held
            // ones from the index. An MVT tile is a list of layers, so the
            // parts' bytes are joined as they are.
            let mut parts: Vec<u8> = Vec::new();
            for (layer, filter) in &in_store {
                parts.extend(
                    store_layer(store.as_ref(), layer, (z, x, y), filter.as_ref(), crs).await?,
                );
            }
            let held = tokio::task::spawn_blocking(move || {
                let lookup = |l: &LayerDef| {
                    owned
                        .iter()
                        .find(|(d, _)| d.name == l.name)
                        .and_then(|(_, f)| f.clone())
                };
                let defs: Vec<&LayerDef> = owned.iter().map(|(l, _)| l.as_ref()).collect();
                if defs.is_empty() {
                    return None;
                }
                build::build_tile(&index, &defs, (z, x, y), &lookup, crs)
            })
            .await
            .map_err(|e| TileError::Build(e.to_string()))?;
            if let Some(held) = held {
                parts.extend(held);
            }
            let built = Arc::new((!parts.is_empty()).then(|| finish(parts)));
            metrics.tile_built(started.elapsed().as_secs_f64());
            Ok::<_, TileError>(built)
        })
        .await;
    built.map_err(|e| match e.as_ref() {
        TileError::TooDense { .. } => AppError::BadRequest(e.to_string()),
        TileError::Store(s) if s.is_unreachable() => {
            AppError::unavailable("the database does not answer", s)
        }
        _ => {
            tracing::error!(error = %e, tile = %format!("{z}/{x}/{y}"), "a tile build failed");
            AppError::Internal(format!("the tile {z}/{x}/{y} could not be built"))
        }
    })
}

/// The most features a layer the store serves gives one tile cut by
/// onemap's own code (labels, simplification, a datum other than WGS84);
/// past it a WGS84 tile comes from the database's encoder.
const STORE_CUT_HERE: u64 = build::DENSE_POINT_BUDGET as u64;
/// … and the most one tile on another datum is cut from (the database
/// cannot shift to GCJ-02 or BD-09, so those tiles are always cut here).
const STORE_CUT_SHIFTED: u64 = 50_000;

/// One layer's part of tile z/x/y, cut by the store that serves it: a
/// point layer's tile counted first, and drawn by `ST_AsMVT` when it does
/// not cluster; its points clustered exactly as a held layer's would be;
/// a tile of few features, or one on another datum, cut by the same code
/// as a held layer's from the features the store reads; else every
/// feature through the database's own MVT encoder (`ST_AsMVT`).
async fn store_layer(
    store: &dyn crate::store::Store,
    layer: &Arc<LayerDef>,
    (z, x, y): (u8, u32, u32),
    filter: Option<&Expr>,
    crs: Crs,
) -> Result<Vec<u8>, TileError> {
    let shifted = crs != Crs::Wgs84;
    let with_filter = |mut query: crate::store::Query| {
        if let Some(f) = filter {
            query.filter = Some(match query.filter.take() {
                Some(b) => Expr::And(vec![b, f.clone()]),
                None => f.clone(),
            });
        }
        query
    };
    let columns: Vec<&str> = build::tile_fields(layer)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    if !shifted && layer.geometry == [crate::layers::GeometryKind::Point] {
        // A point layer's count decides whether it clusters (one index
        // scan); only a tile that does needs the grid's sums.
        let query = with_filter(crate::store::Query::bbox(build::store_box(z, x, y, crs)));
        let n = store.count(layer, &query).await?;
        if n == 0 {
            return Ok(Vec::new());
        }
        if !build::clusters_at(z, n) {
            return Ok(store.tile_mvt(layer, (z, x, y), &columns, filter).await?);
        }
    }
    let grid = build::store_grid(z, x, y, crs);
    let cells = store.tile_grid(layer, &grid, filter).await?;
    let total: u64 = cells.iter().map(|c| c.n).sum();
    if total == 0 {
        return Ok(Vec::new());
    }
    let points_only = cells.iter().all(|c| c.points_only);
    if points_only && build::clusters_at(z, total) {
        let ones: Vec<filter::Literal> = cells
            .iter()
            .filter(|c| c.n == 1)
            .map(|c| filter::Literal::Integer(c.one))
            .collect();
        let mut singles = store
            .features(
                layer,
                &crate::store::Query {
                    filter: Some(Expr::In {
                        property: filter::ID.into(),
                        values: ones,
                    }),
                    ..crate::store::Query::default()
                },
            )
            .await?;
        if shifted {
            for f in &mut singles {
                f.geometry = crs.geometry_from_wgs84(&f.geometry);
            }
        }
        let (rows, _) = crate::index::Rows::load(layer, singles);
        return Ok(build::clustered_from_grid(layer, &cells, &rows).unwrap_or_default());
    }
    if shifted && total > STORE_CUT_SHIFTED {
        return Err(TileError::TooDense {
            layer: layer.name.clone(),
            features: total,
            most: STORE_CUT_SHIFTED,
        });
    }
    if shifted || (!points_only && total <= STORE_CUT_HERE) {
        let query = with_filter(crate::store::Query::bbox(build::store_box(z, x, y, crs)));
        let features = store.features(layer, &query).await?;
        let owned = Arc::clone(layer);
        return tokio::task::spawn_blocking(move || {
            build::build_from_features(&owned, features, (z, x, y), crs).unwrap_or_default()
        })
        .await
        .map_err(|e| TileError::Build(e.to_string()));
    }
    Ok(store.tile_mvt(layer, (z, x, y), &columns, filter).await?)
}

/// Why a part of a tile a store serves was not cut.
#[derive(Debug, thiserror::Error)]
enum TileError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("layer `{layer}` has {features} features in this tile, more than the {most} a tile on another datum is cut from: zoom in, or leave out `crs`")]
    TooDense {
        layer: String,
        features: u64,
        most: u64,
    },
    #[error("cutting the tile failed: {0}")]
    Build(String),
}

impl Built {
    /// The gzip body, made once.
    pub fn gzipped(&self) -> axum::body::Bytes {
        self.gzip
            .get_or_init(|| {
                use std::io::Write;
                let mut gz = flate2::write::GzEncoder::new(
                    Vec::with_capacity(self.raw.len() / 2),
                    flate2::Compression::default(),
                );
                let mut gzip = gz
                    .write_all(&self.raw)
                    .and_then(|_| gz.finish())
                    .unwrap_or_default();
                gzip.shrink_to_fit();
                gzip.into()
            })
            .clone()
    }
}

fn finish(mut raw: Vec<u8>) -> Built {
    // `Bytes::from(Vec)` keeps the whole allocation: a body grown by
    // doubling would hold up to twice what the cache weighs it at.
    raw.shrink_to_fit();
    let etag = crate::etag::strong(&raw);
    Built {
        raw: raw.into(),
        gzip: std::sync::OnceLock::new(),
        etag_header: crate::etag::header(&etag),
        etag,
    }
}

/// TileJSON 3.0.0: `GET /tiles/{layers}.json`.
async fn tilejson(
    State(state): State<AppState>,
    Path(file): Path<String>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    caller.require_reader(&state)?;
    let spec = file
        .strip_suffix(".json")
        .ok_or_else(|| AppError::NotFound {
            what: format!("`/tiles/{file}`"),
        })?;
    let layers = resolve_layers(&state, spec)?;
    let params = tile_params(raw.as_deref())?;
    layer_filters(&layers, params.filter.as_deref())?;
    let base = base_url(&state, &headers);
    let query = raw
        .as_deref()
        .filter(|q| !q.is_empty())
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let mut bounds: Option<[f64; 4]> = None;
    for l in &layers {
        if let Some(b) = state.index.extent(&l.name) {
            bounds = Some(match bounds {
                None => b,
                Some(a) => [
                    a[0].min(b[0]),
                    a[1].min(b[1]),
                    a[2].max(b[2]),
                    a[3].max(b[3]),
                ],
            });
        }
    }
    let [w, s, e, n] = bounds.unwrap_or([-180.0, -85.051_128_78, 180.0, 85.051_128_78]);
    let (cx, cy) = ((w + e) / 2.0, (s + n) / 2.0);
    let vector_layers: Vec<Value> = layers
        .iter()
        .flat_map(|l| {
            let mut fields = serde_json::Map::new();
            fields.insert("id".into(), json!("Number"));
            for (name, kind) in build::tile_fields(l) {
                let t = match kind {
                    PropertyType::Integer | PropertyType::Number => "Number",
                    PropertyType::Boolean => "Boolean",
                    _ => "String",
                };
                fields.insert(name.to_owned(), json!(t));
            }
            if l.geometry
                .iter()
                .all(|g| *g == crate::layers::GeometryKind::Point)
            {
                fields.insert("point_count".into(), json!("Number"));
                fields.insert("cluster".into(), json!("Boolean"));
            }
            let mut out = vec![json!({ "id": l.name, "description": format!("{} {}", l.title_zh, l.title_en),
                    "fields": fields, "minzoom": 0, "maxzoom": MAX_ZOOM })];
            if l.labels_areas() {
                out.push(json!({ "id": build::label_layer(&l.name),
                    "description": format!("{} 标注点 / label points of {}", l.title_zh, l.title_en),
                    "fields": fields, "minzoom": 0, "maxzoom": MAX_ZOOM }));
            }
            out
        })
        .collect();
    Ok(Json(json!({
        "tilejson": "3.0.0",
        "name": spec,
        "scheme": "xyz",
        "tiles": [format!("{base}/tiles/{spec}/{{z}}/{{x}}/{{y}}.mvt{query}")],
        "vector_layers": vector_layers,
        "bounds": [w, s, e, n],
        "center": [cx, cy, 11],
        "minzoom": 0,
        "maxzoom": MAX_ZOOM,
    })))
}

/// A tile address from a URL path: a zoom up to `max_zoom`, a column and
/// a row inside that zoom's grid; a 400 naming the part that is wrong.
pub(crate) fn tile_address(
    z: &str,
    x: &str,
    y: &str,
    max_zoom: u8,
) -> Result<(u8, u32, u32), AppError> {
    let bad = |what: &str, v: &str| AppError::BadRequest(format!("tile {what} `{v}` is not valid"));
    let z: u8 = z
        .parse()
        .ok()
        .filter(|z| *z <= max_zoom)
        .ok_or_else(|| bad(&format!("zoom (0–{max_zoom})"), z))?;
    let n = 1u64 << z;
    let index = |v: &str, what: &str| {
        v.parse::<u32>()
            .ok()
            .filter(|v| u64::from(*v) < n)
            .ok_or_else(|| bad(what, v))
    };
    Ok((z, index(x, "column")?, index(y, "row")?))
}

/// The XYZ tile at zoom `z` holding a WGS84 position.
pub fn tile_of(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let n = (1u64 << z) as f64;
    let (x, y) = lonlat_to_mercator(lon, lat);
    let col = ((x + EARTH_HALF_CIRCUMFERENCE) / (2.0 * EARTH_HALF_CIRCUMFERENCE) * n)
        .floor()
        .clamp(0.0, n - 1.0);
    let row = ((EARTH_HALF_CIRCUMFERENCE - y) / (2.0 * EARTH_HALF_CIRCUMFERENCE) * n)
        .floor()
        .clamp(0.0, n - 1.0);
    (col as u32, row as u32)
}

/// The tiles at [`EVENT_ZOOM`] a WGS84 box covers, for change events.
pub fn tile_range(bbox: [f64; 4]) -> Value {
    let (min_x, min_y) = tile_of(bbox[0], bbox[3], EVENT_ZOOM);
    let (max_x, max_y) = tile_of(bbox[2], bbox[1], EVENT_ZOOM);
    json!({ "z": EVENT_ZOOM, "min_x": min_x, "max_x": max_x, "min_y": min_y, "max_y": max_y })
}
