//! File formats the one map reads and writes: GeoJSON and newline-delimited
//! GeoJSON, CSV with coordinate columns, GeoPackage, and (read only) ESRI
//! Shapefile.

pub mod csv;
pub mod geojson;
pub mod gpkg;
pub mod shapefile;

use std::path::Path;

use crate::{
    crs::Crs,
    layers::{LayerDef, ValidationErrors},
};

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
}

/// Read a file's features for `layer`, coordinates from `crs` to WGS84.
/// Schema validation is the store's; this refuses what cannot be read.
pub async fn read_file(
    layer: &LayerDef,
    format: Format,
    path: &Path,
    crs: Crs,
) -> Result<Parsed, ReadError> {
    match format {
        Format::Gpkg => {
            let mut parsed = gpkg::read(layer, path).await?;
            for f in &mut parsed.features {
                f.geometry = crs.geometry_to_wgs84(&f.geometry);
            }
            Ok(parsed)
        }
        Format::Shapefile => {
            let is_zip = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
            let unpacked;
            let shp = if is_zip {
                unpacked = tempfile::tempdir().map_err(|e| ReadError::Encoding(e.to_string()))?;
                let bytes = std::fs::read(path).map_err(|e| ReadError::Encoding(e.to_string()))?;
                shapefile::unzip(&bytes, unpacked.path())?
            } else {
                path.to_path_buf()
            };
            Ok(shapefile::read(layer, &shp, crs)??)
        }
        Format::GeoJson | Format::Csv => {
            let bytes = std::fs::read(path).map_err(|e| ReadError::Encoding(e.to_string()))?;
            read_text(layer, format, &bytes, crs)
        }
    }
}

/// Read text formats from memory.
pub fn read_text(
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
