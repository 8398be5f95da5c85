//! File formats the one map reads and writes: GeoJSON and newline-delimited
//! GeoJSON, CSV with coordinate columns, GeoPackage, and (read only) ESRI
//! Shapefile.

pub mod columns;
pub mod csv;
pub mod geojson;
pub mod gpkg;
pub mod shapefile;
pub mod stream;

use std::path::Path;

use crate::{
    crs::Crs,
    layers::{LayerDef, ValidationErrors},
};

pub use columns::ColumnMap;
pub use geojson::Parsed;

/// An exchange format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A FeatureCollection, or one Feature per line.
    GeoJson,
    Csv,
    Gpkg,
    /// A `.shp` with its sidecar files, or a zip of them (import only).
    Shapefile,
}

impl Format {
    /// The format a file name's extension says.
    pub fn of_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "geojson" | "json" | "ndjson" | "geojsonl" | "geojsons" | "jsonl" => Format::GeoJson,
            "csv" | "txt" => Format::Csv,
            "gpkg" => Format::Gpkg,
            "shp" | "zip" => Format::Shapefile,
            _ => return None,
        })
    }

    /// The format a request's media type says.
    pub fn of_media_type(media: &str) -> Option<Format> {
        Some(match media {
            "application/geo+json"
            | "application/json"
            | "application/geo+json-seq"
            | "application/x-ndjson" => Format::GeoJson,
            "text/csv" => Format::Csv,
            "application/geopackage+sqlite3" => Format::Gpkg,
            "application/zip" | "application/x-zip-compressed" | "application/x-shapefile" => {
                Format::Shapefile
            }
            _ => return None,
        })
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::GeoJson => "application/geo+json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Gpkg => "application/geopackage+sqlite3",
            Format::Shapefile => "application/zip",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::GeoJson => "geojson",
            Format::Csv => "csv",
            Format::Gpkg => "gpkg",
            Format::Shapefile => "zip",
        }
    }
}

/// Why a file could not be read as features.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error(transparent)]
    Gpkg(#[from] gpkg::GpkgFileError),
    #[error(transparent)]
    Shapefile(#[from] shapefile::ShapefileError),
    #[error("the file is not UTF-8 text: {0}")]
    Encoding(String),
    #[error("cannot read the file: {0}")]
    Io(String),
    #[error("the file's reader stopped unexpectedly")]
    Crashed,
}

/// Run a parser on tokio's blocking pool: parsing a large or hostile file
/// is seconds of CPU, which on an async worker would stall every other
/// request that worker carries (health checks included).
async fn blocking<T: Send + 'static>(
    parse: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    tokio::task::spawn_blocking(parse).await.map_err(|e| {
        tracing::error!(error = %e, "a file parser panicked");
        ReadError::Crashed
    })?
}

/// Read a file's features for `layer`, coordinates from `crs` to WGS84,
/// off the async workers. Schema validation is the store's; this refuses
/// what cannot be read.
pub async fn read_file(
    layer: &LayerDef,
    format: Format,
    path: &Path,
    crs: Crs,
) -> Result<Parsed, ReadError> {
    let (owned, path) = (layer.clone(), path.to_path_buf());
    match format {
        Format::Gpkg => {
            // SQLite reads on sqlx's own thread; the geometries are decoded
            // on the blocking pool inside `gpkg::read`.
            let mut parsed = gpkg::read(layer, &path).await?;
            blocking(move || {
                for f in &mut parsed.features {
                    f.geometry = crs.geometry_to_wgs84(&f.geometry);
                }
                Ok(parsed)
            })
            .await
        }
        Format::Shapefile => blocking(move || read_shapefile(&owned, &path, crs)).await,
        Format::GeoJson | Format::Csv => {
            blocking(move || {
                let bytes = std::fs::read(&path).map_err(|e| ReadError::Io(e.to_string()))?;
                parse_text(&owned, format, &bytes, crs)
            })
            .await
        }
    }
}

fn read_shapefile(layer: &LayerDef, path: &Path, crs: Crs) -> Result<Parsed, ReadError> {
    let is_zip = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    let unpacked;
    let shp = if is_zip {
        unpacked = tempfile::tempdir().map_err(|e| ReadError::Io(e.to_string()))?;
        let bytes = std::fs::read(path).map_err(|e| ReadError::Io(e.to_string()))?;
        shapefile::unzip(&bytes, unpacked.path())?
    } else {
        path.to_path_buf()
    };
    Ok(shapefile::read(layer, &shp, crs)??)
}

/// Read a text format (GeoJSON or CSV) from memory, off the async workers.
pub async fn read_text<B>(
    layer: &LayerDef,
    format: Format,
    bytes: B,
    crs: Crs,
) -> Result<Parsed, ReadError>
where
    B: AsRef<[u8]> + Send + 'static,
{
    let layer = layer.clone();
    blocking(move || parse_text(&layer, format, bytes.as_ref(), crs)).await
}

/// Parse a text format in place (the work [`read_text`] sends to a
/// blocking thread).
pub fn parse_text(
    layer: &LayerDef,
    format: Format,
    bytes: &[u8],
    crs: Crs,
) -> Result<Parsed, ReadError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ReadError::Encoding(e.to_string()))?;
    Ok(match format {
        Format::Csv => csv::parse(layer, text, crs)?,
        Format::Gpkg | Format::Shapefile => {
            return Err(ReadError::Encoding(
                "a binary format cannot be read as text".into(),
            ))
        }
        _ => geojson::parse(&layer.name, text, crs)?,
    })
}

/// `sha256:` and the hex digest of a file's bytes: what an import's change
/// records of the file it read.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex_digest(sha2::Sha256::digest(bytes).as_slice())
}

/// [`digest`] of a file on disk, read in blocks so a large file is not held
/// in memory a second time.
pub fn digest_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut block = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut block)?;
        if n == 0 {
            break;
        }
        hasher.update(&block[..n]);
    }
    Ok(hex_digest(hasher.finalize().as_slice()))
}

fn hex_digest(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(7 + bytes.len() * 2);
    out.push_str("sha256:");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
