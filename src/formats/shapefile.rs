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
}

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

/// Unpack a zip of shapefile parts into `dir`; returns the `.shp` path.
pub fn unzip(bytes: &[u8], dir: &Path) -> Result<PathBuf, ShapefileError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| ShapefileError::Read(e.to_string()))?;
    let mut shp = None;
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
        let mut out =
            std::fs::File::create(&target).map_err(|e| ShapefileError::Read(e.to_string()))?;
        std::io::copy(&mut file, &mut out).map_err(|e| ShapefileError::Read(e.to_string()))?;
        if ext.as_deref() == Some("shp") && shp.is_none() {
            shp = Some(target);
        }
    }
    shp.ok_or(ShapefileError::NoShp)
}
