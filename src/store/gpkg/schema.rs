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

/// Fill a new R-tree from the rows already in the table (a layer another
/// tool made), and widen the extent to them. Rows whose geometry cannot be
/// read stay out: the trigger functions answer NULL for them.
pub async fn index_existing_rows(
    conn: &mut SqliteConnection,
    layer: &LayerDef,
) -> Result<(), StoreError> {
    let (t, c, rt) = (&layer.name, GEOM, rtree(layer));
    sqlx::query(&format!(
        "INSERT OR REPLACE INTO \"{rt}\" (id, minx, maxx, miny, maxy) \
         SELECT fid, ST_MinX(\"{c}\"), ST_MaxX(\"{c}\"), ST_MinY(\"{c}\"), ST_MaxY(\"{c}\") \
         FROM \"{t}\" WHERE \"{c}\" NOT NULL AND ST_IsEmpty(\"{c}\") = 0"
    ))
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db(format!("indexing the rows of {t}")))?;
    let unreadable: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{t}\" WHERE \"{c}\" NOT NULL AND ST_IsEmpty(\"{c}\") IS NULL"
    ))
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::db(format!("checking the rows of {t}")))?;
    if unreadable > 0 {
        tracing::warn!(layer = %t, rows = unreadable, "not indexing unreadable geometries");
    }
    sqlx::query(&format!(
        "UPDATE gpkg_contents SET (min_x, min_y, max_x, max_y) = \
         (SELECT min(minx), min(miny), max(maxx), max(maxy) FROM \"{rt}\") WHERE table_name = ?"
    ))
    .bind(t)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db(format!("measuring {t}")))?;
    Ok(())
}

/// Rewrite values an earlier catalog used (`renamed_values`) in the stored
/// features, under `prepare`'s own-write mark. Not logged: it changes what
/// a value is called, not what the one map shows.
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
    Ok(())
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
/// SQLite that opens the file has. onemap's own writes log a fuller entry
/// (actor, properties before and after) themselves, and the triggers skip
/// their rows: see [`mark_own_write`].
pub async fn create_log_triggers(
    conn: &mut SqliteConnection,
    layer: &LayerDef,
) -> Result<(), StoreError> {
    let t = &layer.name;
    let literal = t.replace('\'', "''");
    let actor = OTHER_WRITER.replace('\'', "''");
    let [ins, upd, del] = log_trigger_names(layer);
    // Triggers of files made before the mark existed log onemap's own
    // writes twice: replace them.
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name IN (?, ?, ?) \
         AND instr(sql, 'onemap_own_write') = 0",
    )
    .bind(&ins)
    .bind(&upd)
    .bind(&del)
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::db(format!("reading the log triggers of {t}")))?;
    for name in stale {
        sqlx::query(&format!("DROP TRIGGER \"{name}\""))
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db(format!("replacing the log triggers of {t}")))?;
    }
    let log = |op: &str, ids: &str| {
        format!(
            "INSERT INTO onemap_changes (at, actor, layer, op, feature_ids) VALUES \
             (strftime('%Y-%m-%dT%H:%M:%fZ','now'), '{actor}', '{literal}', '{op}', {ids});"
        )
    };
    let others = "WHEN NOT EXISTS (SELECT 1 FROM onemap_own_write)";
    let statements = [
        format!(
            "CREATE TRIGGER IF NOT EXISTS \"{ins}\" AFTER INSERT ON \"{t}\" {others} BEGIN {} END",
            log("create", "'[' || NEW.fid || ']'")
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS \"{upd}\" AFTER UPDATE ON \"{t}\" {others} BEGIN {} END",
            log(
                "update",
                "CASE WHEN OLD.fid = NEW.fid THEN '[' || NEW.fid || ']' \
                 ELSE '[' || OLD.fid || ',' || NEW.fid || ']' END"
            )
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS \"{del}\" AFTER DELETE ON \"{t}\" {others} BEGIN {} END",
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

/// Mark the transaction as one of onemap's own writes, which log their
/// change themselves: the log triggers skip the rows it writes. Call
/// [`unmark_own_write`] before committing.
///
/// Why a row: a trigger of the file can only read the file's own tables,
/// and the row, never committed, is seen by this transaction alone.
pub async fn mark_own_write(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query("INSERT OR IGNORE INTO onemap_own_write (one) VALUES (1)")
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db("marking a write as onemap's own"))?;
    Ok(())
}

/// [`mark_own_write`] if the file holds `layer` (its row in
/// gpkg_contents); whether it does.
pub async fn mark_own_write_on(
    conn: &mut SqliteConnection,
    layer: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT OR IGNORE INTO onemap_own_write (one) \
         SELECT 1 WHERE EXISTS (SELECT 1 FROM gpkg_contents WHERE table_name = ?)",
    )
    .bind(layer)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db("marking a write as onemap's own"))?;
    Ok(done.rows_affected() > 0)
}

/// Take the mark of [`mark_own_write`] out, so the commit leaves the log
/// triggers armed for every other writer.
pub async fn unmark_own_write(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM onemap_own_write")
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db("ending onemap's own write"))?;
    Ok(())
}
