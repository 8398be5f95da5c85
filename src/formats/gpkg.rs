//! GeoPackage files as an exchange format: reading one feature table of a
//! file made by any tool (QGIS, GDAL, ArcGIS), and writing a layer to a new
//! file through onemap's own GeoPackage store.

use std::{path::Path, sync::Arc};

use geozero::wkb;
use serde_json::{Map, Value};
use sqlx::{sqlite::SqliteConnectOptions, Column, ConnectOptions, Row, TypeInfo, ValueRef};

use crate::{
    layers::{Feature, LayerDef, PropertyType},
    store::{gpkg::GpkgStore, Store, StoreError},
};

use super::geojson::Parsed;

#[derive(Debug, thiserror::Error)]
pub enum GpkgFileError {
    #[error("cannot read the GeoPackage: {0}")]
    Open(String),
    #[error("the GeoPackage has no feature table{0}")]
    NoTable(String),
    #[error("the GeoPackage holds several feature tables ({0}); name one with the layer's name")]
    Ambiguous(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Read the features of `path`: the feature table named like `layer`, or
/// the only one. Columns become properties of the same name (values decoded
/// by the layer's schema); `fid` is dropped.
pub async fn read(layer: &LayerDef, path: &Path) -> Result<Parsed, GpkgFileError> {
    let open = |e: sqlx::Error| GpkgFileError::Open(e.to_string());
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(open)?;
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.table_name, g.column_name FROM gpkg_contents c JOIN gpkg_geometry_columns g USING (table_name) \
         WHERE c.data_type = 'features' ORDER BY c.table_name",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(open)?;
    let (table, geom) = match tables.iter().find(|(t, _)| *t == layer.name) {
        Some(t) => t.clone(),
        None => match tables.as_slice() {
            [one] => one.clone(),
            [] => return Err(GpkgFileError::NoTable(String::new())),
            many => {
                return Err(GpkgFileError::Ambiguous(
                    many.iter()
                        .map(|(t, _)| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ))
            }
        },
    };
    let sql = format!("SELECT * FROM \"{}\"", table.replace('"', "\"\""));
    let rows = sqlx::query(&sql).fetch_all(&mut conn).await.map_err(open)?;
    let mut features = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut properties = Map::new();
        let mut geometry = None;
        for (i, col) in row.columns().iter().enumerate() {
            let name = col.name();
            if name == geom {
                geometry = row
                    .try_get::<wkb::Decode<geo::Geometry<f64>>, _>(i)
                    .map_err(|e| GpkgFileError::Open(format!("{table}.{name}: {e}")))?
                    .geometry;
                continue;
            }
            if name.eq_ignore_ascii_case("fid") {
                continue;
            }
            let raw = row.try_get_raw(i).map_err(open)?;
            if raw.is_null() {
                continue;
            }
            let kind = layer.property(name).map(|p| p.kind);
            let value = match raw.type_info().name() {
                "INTEGER" => {
                    let n: i64 = row.try_get(i).map_err(open)?;
                    match kind {
                        Some(PropertyType::Boolean) => Value::Bool(n != 0),
                        _ => Value::from(n),
                    }
                }
                "REAL" => Value::from(row.try_get::<f64, _>(i).map_err(open)?),
                "TEXT" => {
                    let s: String = row.try_get(i).map_err(open)?;
                    match kind {
                        Some(PropertyType::Array | PropertyType::Records) => {
                            serde_json::from_str(&s).unwrap_or(Value::String(s))
                        }
                        Some(PropertyType::Datetime) => Value::String(s.replace(' ', "T")),
                        _ => Value::String(s),
                    }
                }
                _ => continue,
            };
            properties.insert(name.to_owned(), value);
        }
        if let Some(geometry) = geometry {
            features.push(Feature {
                id: None,
                geometry,
                properties,
            });
        }
    }
    Ok(Parsed {
        features,
        lines: None,
    })
}

/// Write `features` of `layer` to a new GeoPackage at `path` (replaced if
/// present); GDAL and QGIS open it like onemap's own store.
pub async fn write(
    layer: &Arc<LayerDef>,
    features: &[Feature],
    path: &Path,
) -> Result<(), GpkgFileError> {
    if path.exists() {
        std::fs::remove_file(path).map_err(|e| GpkgFileError::Open(e.to_string()))?;
    }
    let store = GpkgStore::open(&format!("sqlite://{}", path.display())).await?;
    store.prepare(std::slice::from_ref(layer)).await?;
    let plain: Vec<Feature> = features
        .iter()
        .map(|f| Feature {
            id: None,
            ..f.clone()
        })
        .collect();
    let result = store.insert(layer, &plain, "export").await;
    store.close().await;
    result?;
    Ok(())
}
