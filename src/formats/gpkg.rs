//! GeoPackage files as an exchange format: reading one feature table of a
//! file made by any tool (QGIS, GDAL, ArcGIS), and writing a layer to a new
//! file through onemap's own GeoPackage store.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures_util::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::{
    sqlite::SqliteConnectOptions, ConnectOptions, Row, SqliteConnection, TypeInfo, ValueRef,
};

use crate::{
    layers::{Feature, LayerDef, PropertyType},
    store::{
        gpkg::{blob, GpkgStore},
        Store, StoreError,
    },
};

use super::geojson::Parsed;

/// Rows read from one foreign GeoPackage at most: far above a district's
/// largest layer, far below what would exhaust memory.
pub const MAX_ROWS: u64 = 2_000_000;

/// Bytes of values (geometry blobs and texts) read from one foreign
/// GeoPackage at most.
pub const MAX_BYTES: u64 = 512 * 1024 * 1024;

/// How long reading one foreign GeoPackage may take before SQLite is
/// interrupted. Reading a real table is linear in its size: a file that
/// takes longer is hostile, or too big to import in one go.
pub const READ_BUDGET: Duration = Duration::from_secs(60);

/// SQLite virtual-machine steps between two checks of the budget.
const PROGRESS_STEPS: i32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum GpkgFileError {
    #[error("cannot read the GeoPackage: {0}")]
    Open(String),
    #[error("the GeoPackage has no feature table{0}")]
    NoTable(String),
    #[error("the GeoPackage holds several feature tables ({0}); name one with the layer's name")]
    Ambiguous(String),
    #[error(
        "the GeoPackage's {0} is not a plain table (a view or virtual table); only tables are read"
    )]
    NotATable(String),
    #[error("{table}, row {row}: {reason}")]
    Geometry {
        table: String,
        row: u64,
        reason: String,
    },
    #[error("the GeoPackage holds more than {what} (the import limit); split it")]
    TooBig { what: String },
    #[error("reading the GeoPackage took longer than {}s and was stopped", READ_BUDGET.as_secs())]
    TooSlow,
    #[error("the import was abandoned")]
    Abandoned,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sets its flag when dropped: the read's future went away (the request
/// was cancelled or timed out), so SQLite's progress handler stops the
/// statement still running on sqlx's worker thread.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A row as read, its geometry still a blob: decoding is CPU work for a
/// blocking thread, not for the connection's loop.
struct RawRow {
    blob: Option<Vec<u8>>,
    properties: Map<String, Value>,
}

/// Read the features of `path`: the feature table named like `layer`, or
/// the only one. Columns become properties of the same name (values decoded
/// by the layer's schema); `fid` is dropped.
///
/// The file is foreign and may be hostile. It is opened read-only (and
/// immutable when no journal is beside it); only real tables that
/// gpkg_contents registers as features are read, only their stored (not
/// generated) columns, at most [`MAX_ROWS`] rows and [`MAX_BYTES`] bytes,
/// and SQLite is interrupted past [`READ_BUDGET`] or when this future is
/// dropped. Every geometry goes through the store's bounded decoder.
pub async fn read(layer: &LayerDef, path: &Path) -> Result<Parsed, GpkgFileError> {
    read_within(layer, path, READ_BUDGET).await
}

/// [`read`] with a time budget of `budget`.
async fn read_within(
    layer: &LayerDef,
    path: &Path,
    budget: Duration,
) -> Result<Parsed, GpkgFileError> {
    let open = |e: sqlx::Error| GpkgFileError::Open(e.to_string());
    // Immutable (no locks, no journal look-ups) only when no other program
    // can be writing it: a write-ahead log or a rollback journal beside the
    // file says one may be.
    let journaled = ["-wal", "-journal"].iter().any(|suffix| {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        Path::new(&side).exists()
    });
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(!journaled)
        .connect()
        .await
        .map_err(open)?;
    let cancelled = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancelled.clone());
    let deadline = Instant::now() + budget;
    {
        let stop = cancelled.clone();
        conn.lock_handle()
            .await
            .map_err(open)?
            .set_progress_handler(PROGRESS_STEPS, move || {
                !stop.load(Ordering::Relaxed) && Instant::now() < deadline
            });
    }
    let result = read_rows(&mut conn, layer).await;
    let result = match result {
        Err(GpkgFileError::Open(_)) if Instant::now() >= deadline => Err(GpkgFileError::TooSlow),
        other => other,
    };
    let (table, rows) = result?;
    // The connection's thread is done with the file; close it before the
    // CPU work so the handle is not held meanwhile.
    drop(conn);
    let decoded = tokio::task::spawn_blocking(move || decode_rows(&table, rows))
        .await
        .map_err(|_| GpkgFileError::Abandoned)??;
    Ok(Parsed {
        features: decoded,
        lines: None,
    })
}

/// `name`'s kind in sqlite_master (`table`, `view`, …), if it exists.
async fn kind_of(conn: &mut SqliteConnection, name: &str) -> Result<Option<String>, GpkgFileError> {
    sqlx::query_scalar(
        "SELECT CASE WHEN type = 'table' AND sql LIKE 'CREATE VIRTUAL%' THEN 'virtual table' ELSE type END \
         FROM sqlite_master WHERE name = ? COLLATE NOCASE",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| GpkgFileError::Open(e.to_string()))
}

async fn read_rows(
    conn: &mut SqliteConnection,
    layer: &LayerDef,
) -> Result<(String, Vec<RawRow>), GpkgFileError> {
    let open = |e: sqlx::Error| GpkgFileError::Open(e.to_string());
    // The registry tables themselves may be views that never end: only
    // sqlite_master, which SQLite keeps itself, is read before checking.
    for registry in ["gpkg_contents", "gpkg_geometry_columns"] {
        match kind_of(conn, registry).await?.as_deref() {
            Some("table") => {}
            Some(_) => return Err(GpkgFileError::NotATable(registry.into())),
            None => return Err(GpkgFileError::NoTable(format!(" (no {registry})"))),
        }
    }
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.table_name, g.column_name FROM gpkg_contents c JOIN gpkg_geometry_columns g USING (table_name) \
         WHERE c.data_type = 'features' ORDER BY c.table_name",
    )
    .fetch_all(&mut *conn)
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
    match kind_of(conn, &table).await?.as_deref() {
        Some("table") => {}
        Some(_) => return Err(GpkgFileError::NotATable(format!("feature table `{table}`"))),
        None => return Err(GpkgFileError::NoTable(format!(" named `{table}`"))),
    }
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    // Stored columns only: a generated column is computed on every read
    // and can allocate without bound (zeroblob, randomblob, printf).
    let columns: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_xinfo(?) WHERE hidden = 0 ORDER BY cid")
            .bind(&table)
            .fetch_all(&mut *conn)
            .await
            .map_err(open)?;
    if columns.is_empty() {
        return Err(GpkgFileError::NoTable(format!(" named `{table}`")));
    }
    let sql = format!(
        "SELECT {} FROM {}",
        columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", "),
        quote(&table)
    );
    let mut rows = sqlx::query(&sql).fetch(&mut *conn);
    let mut out = Vec::new();
    let mut bytes = 0u64;
    while let Some(row) = rows.try_next().await.map_err(open)? {
        if out.len() as u64 >= MAX_ROWS {
            return Err(GpkgFileError::TooBig {
                what: format!("{MAX_ROWS} rows"),
            });
        }
        let mut properties = Map::new();
        let mut blob = None;
        for (i, name) in columns.iter().enumerate() {
            let raw = row.try_get_raw(i).map_err(open)?;
            if raw.is_null() {
                continue;
            }
            if *name == geom {
                let b: Vec<u8> = row.try_get(i).map_err(open)?;
                bytes += b.len() as u64;
                blob = Some(b);
                continue;
            }
            if name.eq_ignore_ascii_case("fid") {
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
                    bytes += s.len() as u64;
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
        if bytes > MAX_BYTES {
            return Err(GpkgFileError::TooBig {
                what: format!("{} MiB of values", MAX_BYTES >> 20),
            });
        }
        out.push(RawRow { blob, properties });
    }
    Ok((table, out))
}

/// The features of rows read; a row without geometry (attribute-only) is
/// left out, a geometry the bounded decoder refuses fails the file.
fn decode_rows(table: &str, rows: Vec<RawRow>) -> Result<Vec<Feature>, GpkgFileError> {
    let mut features = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let Some(b) = row.blob else { continue };
        let geometry = blob::decode(&b).map_err(|e| GpkgFileError::Geometry {
            table: table.to_owned(),
            row: i as u64 + 1,
            reason: e.to_string(),
        })?;
        features.push(Feature {
            id: None,
            geometry,
            properties: row.properties,
        });
    }
    Ok(features)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Catalog;

    /// A minimal GeoPackage whose `shelters` table holds `rows` points.
    async fn gpkg_of(path: &Path, rows: u32) {
        let mut conn = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .connect()
            .await
            .expect("create");
        let point = crate::store::gpkg::blob::tests::nested_collections(0);
        sqlx::query(
            "CREATE TABLE gpkg_contents (table_name TEXT PRIMARY KEY, data_type TEXT NOT NULL); \
             INSERT INTO gpkg_contents VALUES ('shelters', 'features'); \
             CREATE TABLE gpkg_geometry_columns (table_name TEXT, column_name TEXT); \
             INSERT INTO gpkg_geometry_columns VALUES ('shelters', 'geom'); \
             CREATE TABLE shelters (fid INTEGER PRIMARY KEY, geom BLOB, name TEXT);",
        )
        .execute(&mut conn)
        .await
        .expect("schema");
        sqlx::query(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) \
             INSERT INTO shelters (geom, name) SELECT ?, 'n' || x FROM c",
        )
        .bind(rows)
        .bind(point)
        .execute(&mut conn)
        .await
        .expect("rows");
    }

    #[tokio::test]
    async fn a_read_past_its_time_budget_is_interrupted() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("big.gpkg");
        gpkg_of(&path, 20_000).await;
        let catalog = Catalog::builtin().expect("catalog");
        let shelters = catalog.get("shelters").expect("layer");
        let parsed = read(shelters, &path)
            .await
            .expect("reads within the budget");
        assert_eq!(parsed.features.len(), 20_000);
        let e = read_within(shelters, &path, Duration::ZERO)
            .await
            .expect_err("interrupted");
        assert!(matches!(e, GpkgFileError::TooSlow), "{e}");
    }
}
