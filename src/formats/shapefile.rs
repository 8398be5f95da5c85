//! ESRI Shapefile import (`.shp` with its `.shx`, `.dbf`, and `.cpg`/`.prj`
//! when present), from a path or a zip of those files.
//!
//! The `.cpg` code page is honoured (Chinese shapefiles are often GBK). dBase
//! limits field names to 10 characters, so a field matches a property by
//! name case-insensitively, or as the unique property its name truncates.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use shapefile::dbase::FieldValue;

use super::{csv::value_from_text, geojson::Parsed};
use crate::{
    crs::Crs,
    layers::{Feature, LayerDef, PropertyType, ValidationErrors, Violation},
};

#[derive(Debug, thiserror::Error)]
pub enum ShapefileError {
    #[error("cannot read the shapefile: {0}")]
    Read(String),
    #[error("the shapefile is in a projected or unknown coordinate system ({0}); export it as WGS84 or CGCS2000 longitude/latitude")]
    Projected(String),
    #[error("the zip holds no .shp file")]
    NoShp,
    #[error("the zip expands {0}: refused as a zip bomb")]
    Bomb(String),
}

/// What unpacking one zip may cost. Sizes are counted while the entries
/// are inflated: the sizes a zip's headers claim are not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnzipLimits {
    /// Bytes written for all entries together.
    pub total: u64,
    /// How many times its compressed size one entry may expand to …
    pub ratio: u64,
    /// … once past this many bytes (small files compress well honestly).
    pub floor: u64,
    /// Entries in the archive.
    pub entries: usize,
}

/// A shapefile zip expands to at most 1 GiB (four times the default
/// 256 MiB import limit), no entry past 100:1 beyond its first MiB (real
/// .shp/.dbf data compresses 2–10:1), at most 1,000 entries.
pub const UNZIP_LIMITS: UnzipLimits = UnzipLimits {
    total: 1 << 30,
    ratio: 100,
    floor: 1 << 20,
    entries: 1000,
};

/// The property a dBase field name stands for.
fn property_for<'a>(layer: &'a LayerDef, field: &str) -> Option<&'a str> {
    let f = field.trim().to_ascii_lowercase();
    if let Some(p) = layer.properties.iter().find(|p| p.name == f) {
        return Some(&p.name);
    }
    let mut candidates = layer
        .properties
        .iter()
        .filter(|p| f.len() == 10 && p.name.starts_with(&f));
    match (candidates.next(), candidates.next()) {
        (Some(p), None) => Some(&p.name),
        _ => None,
    }
}

fn check_prj(shp: &Path) -> Result<(), ShapefileError> {
    let Ok(prj) = std::fs::read_to_string(shp.with_extension("prj")) else {
        return Ok(());
    };
    let upper = prj.to_ascii_uppercase();
    let geographic = upper.starts_with("GEOGCS") || upper.starts_with("GEOGCRS");
    let known = [
        "WGS_1984",
        "WGS 84",
        "CGCS2000",
        "CHINA_GEODETIC_COORDINATE_SYSTEM_2000",
        "CHINA 2000",
    ]
    .iter()
    .any(|d| upper.contains(d));
    if geographic && known {
        Ok(())
    } else {
        Err(ShapefileError::Projected(prj.chars().take(60).collect()))
    }
}

/// Read a shapefile's features for `layer`, coordinates from `crs`.
pub fn read(
    layer: &LayerDef,
    shp: &Path,
    crs: Crs,
) -> Result<Result<Parsed, ValidationErrors>, ShapefileError> {
    check_prj(shp)?;
    let mut reader =
        shapefile::Reader::from_path(shp).map_err(|e| ShapefileError::Read(e.to_string()))?;
    let mut errors = ValidationErrors::new(&layer.name);
    let mut features = Vec::new();
    for (index, item) in reader.iter_shapes_and_records().enumerate() {
        let (shape, record) = item.map_err(|e| ShapefileError::Read(e.to_string()))?;
        let fail = |field: &str, message: String| Violation {
            index,
            line: None,
            name: None,
            field: field.to_owned(),
            message,
        };
        let geometry = match geo::Geometry::<f64>::try_from(shape) {
            Ok(g) => g,
            Err(e) => {
                errors.push(fail("geometry", format!("unsupported shape: {e}")));
                continue;
            }
        };
        let mut properties = Map::new();
        for (field, value) in record.into_iter() {
            let name = property_for(layer, &field)
                .map(str::to_owned)
                .unwrap_or_else(|| field.to_ascii_lowercase());
            let kind = layer
                .property(&name)
                .map(|p| p.kind)
                .unwrap_or(PropertyType::String);
            let converted = match value {
                FieldValue::Character(Some(s)) | FieldValue::Memo(s) if !s.trim().is_empty() => {
                    value_from_text(kind, &s).map(Some)
                }
                FieldValue::Numeric(Some(n)) | FieldValue::Double(n) | FieldValue::Currency(n) => {
                    Ok(Some(number(kind, n)))
                }
                FieldValue::Float(Some(n)) => Ok(Some(number(kind, f64::from(n)))),
                FieldValue::Integer(i) => Ok(Some(Value::from(i))),
                FieldValue::Logical(Some(b)) => Ok(Some(Value::Bool(b))),
                FieldValue::Date(Some(d)) => {
                    let day = format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
                    Ok(Some(Value::String(if kind == PropertyType::Datetime {
                        format!("{day}T00:00:00Z")
                    } else {
                        day
                    })))
                }
                _ => Ok(None),
            };
            match converted {
                Ok(Some(v)) => {
                    properties.insert(name, v);
                }
                Ok(None) => {}
                Err(message) => errors.push(fail(&name, message)),
            }
        }
        features.push(Feature {
            id: None,
            geometry: crs.geometry_to_wgs84(&geometry),
            properties,
        });
    }
    Ok(if errors.is_empty() {
        Ok(Parsed {
            features,
            lines: None,
        })
    } else {
        Err(errors)
    })
}

fn number(kind: PropertyType, n: f64) -> Value {
    if kind == PropertyType::Integer && n.fract() == 0.0 && n.abs() < 9e15 {
        Value::from(n as i64)
    } else {
        Value::from(n)
    }
}

/// Unpack a zip of shapefile parts into `dir` within [`UNZIP_LIMITS`];
/// returns the `.shp` path.
pub fn unzip(bytes: &[u8], dir: &Path) -> Result<PathBuf, ShapefileError> {
    unzip_with(bytes, dir, UNZIP_LIMITS)
}

/// [`unzip`] within `limits`.
pub fn unzip_with(
    bytes: &[u8],
    dir: &Path,
    limits: UnzipLimits,
) -> Result<PathBuf, ShapefileError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| ShapefileError::Read(e.to_string()))?;
    if archive.len() > limits.entries {
        return Err(ShapefileError::Bomb(format!(
            "to {} entries, more than {}",
            archive.len(),
            limits.entries
        )));
    }
    let mut shp = None;
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut file = archive
            .by_index(i)
            .map_err(|e| ShapefileError::Read(e.to_string()))?;
        // Only the file name: paths inside the zip never leave `dir`.
        let Some(name) = file
            .enclosed_name()
            .and_then(|p| p.file_name().map(|n| n.to_owned()))
        else {
            continue;
        };
        let target = dir.join(&name);
        let ext = target
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("shp" | "shx" | "dbf" | "cpg" | "prj")) {
            continue;
        }
        // A header may understate the compressed size too; no entry's data
        // is larger than the archive that holds it.
        let compressed = file.compressed_size().min(bytes.len() as u64);
        let allowed = limits.floor.max(compressed.saturating_mul(limits.ratio));
        let mut out =
            std::fs::File::create(&target).map_err(|e| ShapefileError::Read(e.to_string()))?;
        total = copy_within(&mut file, &mut out, allowed, total, limits.total, &name)?;
        if ext.as_deref() == Some("shp") && shp.is_none() {
            shp = Some(target);
        }
    }
    shp.ok_or(ShapefileError::NoShp)
}

/// Copy one entry to `out`, refusing it past `allowed` bytes or the whole
/// archive past `max_total`; the running total after it.
fn copy_within(
    entry: &mut impl std::io::Read,
    out: &mut impl std::io::Write,
    allowed: u64,
    mut total: u64,
    max_total: u64,
    name: &std::ffi::OsStr,
) -> Result<u64, ShapefileError> {
    let io = |e: std::io::Error| ShapefileError::Read(e.to_string());
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let n = entry.read(&mut buf).map_err(io)?;
        if n == 0 {
            return Ok(total);
        }
        written += n as u64;
        total += n as u64;
        if written > allowed {
            return Err(ShapefileError::Bomb(format!(
                "`{}` past {allowed} bytes, too many times its compressed size",
                name.to_string_lossy()
            )));
        }
        if total > max_total {
            return Err(ShapefileError::Bomb(format!(
                "past {max_total} bytes in all"
            )));
        }
        out.write_all(&buf[..n]).map_err(io)?;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A zip of `name` holding `size` zero bytes, deflated.
    fn zip_of_zeros(name: &str, size: usize) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        out.start_file(
            name,
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated),
        )
        .expect("entry");
        let chunk = vec![0u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len());
            out.write_all(&chunk[..n]).expect("write");
            left -= n;
        }
        out.finish().expect("zip").into_inner()
    }

    #[test]
    fn an_entry_expanding_past_the_ratio_is_refused_while_inflating() {
        let dir = tempfile::tempdir().expect("dir");
        let bomb = zip_of_zeros("a.shp", 8 << 20);
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let e = unzip(&bomb, dir.path()).expect_err("a bomb");
        assert!(matches!(e, ShapefileError::Bomb(_)), "{e}");
        let written = std::fs::metadata(dir.path().join("a.shp"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(written <= UNZIP_LIMITS.floor, "stopped early: {written}");
    }

    #[test]
    fn the_total_expansion_is_capped() {
        let dir = tempfile::tempdir().expect("dir");
        let zip = zip_of_zeros("a.dbf", 300_000);
        let limits = UnzipLimits {
            total: 200_000,
            ratio: u64::MAX,
            ..UNZIP_LIMITS
        };
        let e = unzip_with(&zip, dir.path(), limits).expect_err("over the total");
        assert!(e.to_string().contains("200000 bytes in all"), "{e}");
        // Within the limits the same archive unpacks (and has no .shp).
        assert!(matches!(
            unzip_with(&zip, dir.path(), UNZIP_LIMITS),
            Err(ShapefileError::NoShp)
        ));
    }
}
