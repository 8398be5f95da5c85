//! The GeoPackage layout of one layer: its feature table, its registration in
//! gpkg_contents / gpkg_geometry_columns / gpkg_data_columns, and its R-tree
//! spatial index (GeoPackage 1.3, extension F.3 `gpkg_rtree_index`).
//!
//! Layer and property names are checked identifiers (`[a-z][a-z0-9_]*`, see
//! `layers::check_identifier`), so quoting them here is enough.

use sqlx::{Row, SqliteConnection};

use crate::{
    layers::{LayerDef, PropertyType},
    store::StoreError,
};

pub const GEOM: &str = "geom";
pub const WGS84: i32 = 4326;

/// The R-tree table of a layer, as the GeoPackage spec names it.
pub fn rtree(layer: &LayerDef) -> String {
    format!("rtree_{}_{GEOM}", layer.name)
}

/// How a property is stored.
pub fn column_type(kind: PropertyType) -> &'static str {
    match kind {
        PropertyType::String | PropertyType::Enum => "TEXT",
        PropertyType::Datetime => "DATETIME",
        PropertyType::Integer => "INTEGER",
        PropertyType::Number => "DOUBLE",
        PropertyType::Boolean => "BOOLEAN",
        // GeoPackage has no array type: JSON text, flagged application/json
        // in gpkg_data_columns so GDAL reads the column as a JSON field.
        PropertyType::Array | PropertyType::Records => "TEXT",
    }
}

pub fn is_json(kind: PropertyType) -> bool {
    matches!(kind, PropertyType::Array | PropertyType::Records)
}

/// Create the layer's table and registrations when missing, and add columns
/// that a newer schema declares. Runs inside the caller's transaction.
///
/// Returns true when the R-tree was created just now, so that rows already
/// in a table another tool made must be indexed by the caller.
pub async fn ensure_layer(
    conn: &mut SqliteConnection,
    layer: &LayerDef,
) -> Result<bool, StoreError> {
    let t = &layer.name;
    let columns: Vec<String> = layer
        .properties
        .iter()
        .map(|p| format!("\"{}\" {}", p.name, column_type(p.kind)))
        .collect();
    let create = format!(
        "CREATE TABLE IF NOT EXISTS \"{t}\" (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, \
         \"{GEOM}\" {}, {})",
        layer.geometry_sql_type(),
        columns.join(", ")
    );
    sqlx::query(&create)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db(format!("creating table {t}")))?;

    let existing: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info(?)")
        .bind(t)
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::db(format!("reading columns of {t}")))?
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    for p in &layer.properties {
        if !existing.iter().any(|c| c == &p.name) {
            let alter = format!(
                "ALTER TABLE \"{t}\" ADD COLUMN \"{}\" {}",
                p.name,
                column_type(p.kind)
            );
            sqlx::query(&alter)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::db(format!("adding column {} to {t}", p.name)))?;
        }
    }

    sqlx::query(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, srs_id) \
         VALUES (?1, 'features', ?2, ?3, ?4) \
         ON CONFLICT(table_name) DO UPDATE SET identifier = ?2, description = ?3",
    )
    .bind(t)
    .bind(format!("{} {}", layer.title_zh, layer.title_en))
    .bind(format!("{} / {}", layer.title_zh, layer.title_en))
    .bind(WGS84)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db(format!("registering {t} in gpkg_contents")))?;

    sqlx::query(
        "INSERT OR IGNORE INTO gpkg_geometry_columns \
         (table_name, column_name, geometry_type_name, srs_id, z, m) VALUES (?, ?, ?, ?, 0, 0)",
    )
    .bind(t)
    .bind(GEOM)
    .bind(layer.geometry_sql_type())
    .bind(WGS84)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db(format!(
        "registering {t} in gpkg_geometry_columns"
    )))?;

    let created = ensure_rtree(conn, layer).await?;
    // Files made before the change log was filled by triggers get them now.
    create_log_triggers(conn, layer).await?;
    describe_columns(conn, layer).await?;
    catalog_entry(conn, layer).await?;
    Ok(created)
}

async fn ensure_rtree(conn: &mut SqliteConnection, layer: &LayerDef) -> Result<bool, StoreError> {
    let t = &layer.name;
    let rt = rtree(layer);
    let exists: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(&rt)
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::db(format!("looking for {rt}")))?;
    if exists.is_none() {
        sqlx::query(&format!(
            "CREATE VIRTUAL TABLE \"{rt}\" USING rtree(id, minx, maxx, miny, maxy)"
        ))
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db(format!("creating {rt}")))?;
        create_triggers(conn, layer).await?;
    }
    sqlx::query(
        "INSERT OR IGNORE INTO gpkg_extensions (table_name, column_name, extension_name, definition, scope) \
         VALUES (?, ?, 'gpkg_rtree_index', 'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')",
    )
    .bind(t)
    .bind(GEOM)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db(format!("registering the index of {t}")))?;
    rename_values(conn, layer).await?;
    Ok(exists.is_none())
}

/// Rewrite values an earlier catalog used (`renamed_values`) in the stored
/// features. Triggers are suspended around it as for every onemap write
/// (their spatial functions do not exist here); geometries do not change,
/// so the R-tree stays right. Not logged: it changes what a value is
/// called, not what the one map shows.
async fn rename_values(conn: &mut SqliteConnection, layer: &LayerDef) -> Result<(), StoreError> {
    let t = &layer.name;
    let renames: Vec<(&str, &String, &String)> = layer
        .properties
        .iter()
        .flat_map(|p| {
            p.renamed_values
                .iter()
                .flatten()
                .map(move |(old, new)| (p.name.as_str(), old, new))
        })
        .collect();
    let mut stale = false;
    for (column, old, _) in &renames {
        let found: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT fid FROM \"{t}\" WHERE \"{column}\" = ? LIMIT 1"
        ))
        .bind(*old)
        .fetch_optional(&mut *conn)
        .await
        .map_err(StoreError::db(format!("looking for old values in {t}")))?;
        stale |= found.is_some();
    }
    if !stale {
        return Ok(());
    }
    drop_triggers(conn, layer).await?;
    for (column, old, new) in renames {
        let done = sqlx::query(&format!(
            "UPDATE \"{t}\" SET \"{column}\" = ? WHERE \"{column}\" = ?"
        ))
        .bind(new)
        .bind(old)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db(format!("renaming values in {t}")))?;
        if done.rows_affected() > 0 {
            tracing::info!(layer = %t, column, old = %old, new = %new, rows = done.rows_affected(), "renamed stored values");
        }
    }
    create_triggers(conn, layer).await
}

/// The layer's row in `onemap_layers`.
async fn catalog_entry(conn: &mut SqliteConnection, layer: &LayerDef) -> Result<(), StoreError> {
    let json = |v: serde_json::Result<String>| v.unwrap_or_else(|_| "null".into());
    sqlx::query(
        "INSERT OR REPLACE INTO onemap_layers (name, title_zh, title_en, edit_group, geometry_types, properties) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&layer.name)
    .bind(&layer.title_zh)
    .bind(&layer.title_en)
    .bind(json(serde_json::to_string(&layer.group)).trim_matches('"'))
    .bind(layer.geometry.iter().map(|g| g.sql_name()).collect::<Vec<_>>().join(","))
    .bind(json(serde_json::to_string(&layer.properties)))
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db(format!("cataloguing {}", layer.name)))?;
    Ok(())
}

/// Titles, JSON columns and enumerations for GIS clients (GeoPackage schema
/// extension): QGIS and GDAL show the values of an enum as a coded domain.
async fn describe_columns(conn: &mut SqliteConnection, layer: &LayerDef) -> Result<(), StoreError> {
    let t = &layer.name;
    for p in &layer.properties {
        let constraint = (p.kind == PropertyType::Enum).then(|| format!("{t}_{}", p.name));
        sqlx::query(
            "INSERT OR REPLACE INTO gpkg_data_columns \
             (table_name, column_name, name, title, description, mime_type, constraint_name) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(t)
        .bind(&p.name)
        .bind(&p.name)
        .bind(p.title_zh.as_deref().or(p.title_en.as_deref()))
        .bind(p.unit.as_deref().map(|u| format!("unit: {u}")))
        .bind(is_json(p.kind).then_some("application/json"))
        .bind(&constraint)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db(format!("describing {t}.{}", p.name)))?;
        if let (Some(name), Some(values)) = (&constraint, &p.values) {
            sqlx::query("DELETE FROM gpkg_data_column_constraints WHERE constraint_name = ?")
                .bind(name)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::db(format!("replacing constraint {name}")))?;
            for v in values {
                sqlx::query(
                    "INSERT INTO gpkg_data_column_constraints (constraint_name, constraint_type, value) \
                     VALUES (?, 'enum', ?)",
                )
                .bind(name)
                .bind(v)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::db(format!("writing constraint {name}")))?;
            }
        }
    }
    Ok(())
}

fn trigger_names(layer: &LayerDef) -> [String; 9] {
    let rt = rtree(layer);
    let [a, b, c] = log_trigger_names(layer);
    let [d, e, f, g, h, i] = [
        "insert", "update1", "update2", "update3", "update4", "delete",
    ]
    .map(|s| format!("{rt}_{s}"));
    [d, e, f, g, h, i, a, b, c]
}

fn log_trigger_names(layer: &LayerDef) -> [String; 3] {
    ["insert", "update", "delete"].map(|s| format!("onemap_log_{}_{s}", layer.name))
}

/// The actor the change log names for a write made by another program.
pub const OTHER_WRITER: &str = "another program (GDAL, QGIS, …)";

/// Triggers that log every write to the layer's table in `onemap_changes`,
/// in the writer's own transaction: QGIS, GDAL, a script or a second
/// onemap process; so the change log holds every committed change, in
/// commit order, whoever made it, and the server's change feed brings the
/// index, the tiles and the event stream up to date from it alone.
///
/// They use only core SQL (no JSON or spatial functions), which every
/// SQLite that opens the file has. onemap's own writes drop them with the
/// R-tree triggers and log a fuller entry (actor, properties before and
/// after) themselves.
pub async fn create_log_triggers(
    conn: &mut SqliteConnection,
    layer: &LayerDef,
) -> Result<(), StoreError> {
    let t = &layer.name;
    let literal = t.replace('\'', "''");
    let actor = OTHER_WRITER.replace('\'', "''");
    let [ins, upd, del] = log_trigger_names(layer);
    let log = |op: &str, ids: &str| {
        format!(
            "INSERT INTO onemap_changes (at, actor, layer, op, feature_ids) VALUES \
             (strftime('%Y-%m-%dT%H:%M:%fZ','now'), '{actor}', '{literal}', '{op}', {ids});"
        )
    };
    let statements = [
        format!(
            "CREATE TRIGGER IF NOT EXISTS \"{ins}\" AFTER INSERT ON \"{t}\" BEGIN {} END",
            log("create", "'[' || NEW.fid || ']'")
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS \"{upd}\" AFTER UPDATE ON \"{t}\" BEGIN {} END",
            log(
                "update",
                "CASE WHEN OLD.fid = NEW.fid THEN '[' || NEW.fid || ']' \
                 ELSE '[' || OLD.fid || ',' || NEW.fid || ']' END"
            )
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS \"{del}\" AFTER DELETE ON \"{t}\" BEGIN {} END",
            log("delete", "'[' || OLD.fid || ']'")
        ),
    ];
    for sql in statements {
        sqlx::query(&sql)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db(format!("creating the log triggers of {t}")))?;
    }
    Ok(())
}

/// The six triggers of GeoPackage 1.3 Annex F.3 that keep the R-tree in step
/// with edits made by GDAL, QGIS or any client that registers the ST_*
/// functions.
pub async fn create_triggers(
    conn: &mut SqliteConnection,
    layer: &LayerDef,
) -> Result<(), StoreError> {
    let (t, c, i, rt) = (&layer.name, GEOM, "fid", rtree(layer));
    let insert_new = format!(
        "INSERT OR REPLACE INTO \"{rt}\" VALUES (NEW.\"{i}\", ST_MinX(NEW.\"{c}\"), ST_MaxX(NEW.\"{c}\"), \
         ST_MinY(NEW.\"{c}\"), ST_MaxY(NEW.\"{c}\"));"
    );
    let statements = [
        format!(
            "CREATE TRIGGER \"{rt}_insert\" AFTER INSERT ON \"{t}\" \
             WHEN (NEW.\"{c}\" NOT NULL AND NOT ST_IsEmpty(NEW.\"{c}\")) BEGIN {insert_new} END"
        ),
        format!(
            "CREATE TRIGGER \"{rt}_update1\" AFTER UPDATE OF \"{c}\" ON \"{t}\" \
             WHEN OLD.\"{i}\" = NEW.\"{i}\" AND (NEW.\"{c}\" NOTNULL AND NOT ST_IsEmpty(NEW.\"{c}\")) \
             BEGIN {insert_new} END"
        ),
        format!(
            "CREATE TRIGGER \"{rt}_update2\" AFTER UPDATE OF \"{c}\" ON \"{t}\" \
             WHEN OLD.\"{i}\" = NEW.\"{i}\" AND (NEW.\"{c}\" ISNULL OR ST_IsEmpty(NEW.\"{c}\")) \
             BEGIN DELETE FROM \"{rt}\" WHERE id = OLD.\"{i}\"; END"
        ),
        format!(
            "CREATE TRIGGER \"{rt}_update3\" AFTER UPDATE ON \"{t}\" \
             WHEN OLD.\"{i}\" != NEW.\"{i}\" AND (NEW.\"{c}\" NOTNULL AND NOT ST_IsEmpty(NEW.\"{c}\")) \
             BEGIN DELETE FROM \"{rt}\" WHERE id = OLD.\"{i}\"; {insert_new} END"
        ),
        format!(
            "CREATE TRIGGER \"{rt}_update4\" AFTER UPDATE ON \"{t}\" \
             WHEN OLD.\"{i}\" != NEW.\"{i}\" AND (NEW.\"{c}\" ISNULL OR ST_IsEmpty(NEW.\"{c}\")) \
             BEGIN DELETE FROM \"{rt}\" WHERE id IN (OLD.\"{i}\", NEW.\"{i}\"); END"
        ),
        format!(
            "CREATE TRIGGER \"{rt}_delete\" AFTER DELETE ON \"{t}\" WHEN OLD.\"{c}\" NOT NULL \
             BEGIN DELETE FROM \"{rt}\" WHERE id = OLD.\"{i}\"; END"
        ),
    ];
    for sql in statements {
        sqlx::query(&sql)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db(format!("creating R-tree triggers of {t}")))?;
    }
    create_log_triggers(conn, layer).await
}

/// Drop the R-tree and log triggers for the length of one of onemap's own
/// write transactions.
///
/// The spec's triggers call ST_IsEmpty/ST_MinX/…, which SQLite lacks and
/// which GDAL registers in its own connections; a statement that fires them
/// cannot even be prepared here. onemap maintains the R-tree itself in the
/// same transaction and puts the triggers back before commit, so every other
/// reader and writer sees them in place (DDL is transactional in SQLite).
pub async fn drop_triggers(
    conn: &mut SqliteConnection,
    layer: &LayerDef,
) -> Result<(), StoreError> {
    for name in trigger_names(layer) {
        sqlx::query(&format!("DROP TRIGGER IF EXISTS \"{name}\""))
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db(format!(
                "suspending R-tree triggers of {}",
                layer.name
            )))?;
    }
    Ok(())
}
