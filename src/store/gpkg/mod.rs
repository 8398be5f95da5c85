//! The embedded store: one SQLite file that is an OGC GeoPackage 1.3, so
//! GDAL, QGIS and ArcGIS open the district's data directly.

pub mod blob;
mod functions;
mod log;
mod schema;
mod sql;

use std::{str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use geo::BoundingRect;
use geozero::{CoordDimensions, ToWkb};
use serde_json::{Map, Value};
use sqlx::{
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
    },
    Row, SqliteConnection, SqlitePool,
};
use tokio::sync::{mpsc, Mutex};

use super::{
    entry::EditedLayer, AuditEntry, AuditQuery, Change, Edit, FeatureStream, Op, Query,
    ScenarioRecord, Store, StoreError, TokenRecord, Written,
};
use crate::layers::{Feature, LayerDef, PropertyDef, PropertyType, Role};

/// GeoPackage's `application_id` ("GPKG") and `user_version` for 1.3.0.
const APPLICATION_ID: i32 = 0x4750_4B47;
const USER_VERSION: i32 = 10300;

pub struct GpkgStore {
    /// Connections for reads.
    pool: SqlitePool,
    /// Connections for write transactions, checked on release (a request
    /// cut off mid-transaction must not leave one holding the write lock;
    /// the check costs a round trip, which reads need not pay).
    writer: SqlitePool,
    /// One connection of its own for `ping`: health must answer while user
    /// work holds every connection of the pool.
    health: SqlitePool,
    /// SQLite takes one writer at a time; queueing writers here instead of
    /// in SQLite's busy handler keeps waits fair and free of SQLITE_BUSY.
    write_lock: Arc<Mutex<()>>,
    /// Edits waiting for the writer: whoever takes the write lock next
    /// applies all of them in one transaction (group commit).
    waiting: std::sync::Mutex<Vec<WaitingEdit>>,
}

/// One `Store::edit` call waiting for its turn.
struct WaitingEdit {
    edits: Vec<Edit>,
    actor: String,
    action: Option<Value>,
    reply: tokio::sync::oneshot::Sender<Result<Option<Written>, StoreError>>,
}

impl GpkgStore {
    /// A connection of the pool, for one read or one token write.
    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, StoreError> {
        self.pool
            .acquire()
            .await
            .map_err(StoreError::db("connecting"))
    }
    /// Open (or create) the GeoPackage at `url` and bring its schema up to
    /// date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let url = if url.starts_with("sqlite:") {
            url.to_owned()
        } else {
            format!("sqlite://{url}")
        };
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(StoreError::db(format!("parsing {url}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // CQL2 LIKE is case-sensitive; SQLite's is not unless told.
            .pragma("case_sensitive_like", "ON")
            // Rows a statement may run ahead of its reader: a page of
            // items (100 features) then crosses from sqlx's worker thread
            // in one go instead of waking the reader every 50 rows.
            .row_buffer_size(512);
        // Readers: features, the log, tokens and scenarios (single
        // statements, no transactions).
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _| Box::pin(functions::register(conn)))
            .connect_with(options.clone())
            .await
            .map_err(StoreError::db(format!("opening {url}")))?;
        // Writers: every transaction. SQLite takes one writer at a time, so
        // two connections are plenty; the second lets a write begin while
        // the first is being checked on its way back.
        let writer = SqlitePoolOptions::new()
            .max_connections(2)
            // The R-tree triggers' functions (see `functions`).
            .after_connect(|conn, _| Box::pin(functions::register(conn)))
            // A connection left inside a transaction by a cancelled
            // request is closed, not reused (see `functions::is_idle`).
            .after_release(|conn, _| {
                Box::pin(async move {
                    let idle = functions::is_idle(conn).await.unwrap_or(false);
                    if !idle {
                        tracing::warn!(
                            "closing a connection a cancelled request left inside a transaction"
                        );
                    }
                    Ok(idle)
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(StoreError::db(format!("opening {url}")))?;
        let health = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(2))
            .connect_with(options.read_only(true).busy_timeout(Duration::from_secs(1)))
            .await
            .map_err(StoreError::db(format!("opening {url} for health checks")))?;
        sqlx::migrate!("migrations/sqlite").run(&writer).await?;
        // The two header fields by which GDAL and others recognise a
        // GeoPackage (spec requirements 2 and 3).
        // Checkpointed at once: GDAL identifies the file by the header bytes
        // of the main file, which in WAL mode lag behind until a checkpoint.
        sqlx::query(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {USER_VERSION}; \
             PRAGMA wal_checkpoint(TRUNCATE)"
        ))
        .execute(&writer)
        .await
        .map_err(StoreError::db("writing the GeoPackage header"))?;
        Ok(Self {
            pool,
            writer,
            health,
            write_lock: Arc::new(Mutex::new(())),
            waiting: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Refuse layers this file does not hold (an extra layer declared after
    /// the store was prepared, or a foreign file).
    async fn check_layer(conn: &mut SqliteConnection, layer: &LayerDef) -> Result<(), StoreError> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT table_name FROM gpkg_contents WHERE table_name = ?")
                .bind(&layer.name)
                .fetch_optional(&mut *conn)
                .await
                .map_err(StoreError::db("looking up a layer"))?;
        match found {
            Some(_) => Ok(()),
            None => Err(StoreError::UnknownLayer {
                layer: layer.name.clone(),
            }),
        }
    }

    async fn read_one(
        conn: &mut SqliteConnection,
        layer: &LayerDef,
        id: i64,
    ) -> Result<Option<Feature>, StoreError> {
        let row = sqlx::query(&format!("{} WHERE fid = ?", Self::select_sql(layer)))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::db(format!("reading {} {id}", layer.name)))?;
        row.map(|r| read_feature(layer, &r)).transpose()
    }

    /// Begin a write on `layer` (the caller holds the single-writer lock):
    /// a transaction in which the layer is known.
    ///
    /// `BEGIN IMMEDIATE` takes SQLite's write lock at once, waiting (the
    /// busy timeout) while another holds it: QGIS or GDAL editing the file,
    /// or an earlier write that ended early and whose dropped transaction
    /// the pool has not rolled back yet. A deferred transaction that read
    /// first would instead fail with "database is locked" on its first
    /// write, without waiting.
    async fn begin_write(
        &self,
        layer: &LayerDef,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::db("starting a transaction"))?;
        // The mark, taken only if the file holds the layer: one statement.
        if !schema::mark_own_write_on(&mut tx, &layer.name).await? {
            return Err(StoreError::UnknownLayer {
                layer: layer.name.clone(),
            });
        }
        Ok(tx)
    }

    /// The feature a replace or delete acts on, as stored, if its ETag
    /// matches `if_match`; `None` when there is no such feature.
    async fn current(
        conn: &mut SqliteConnection,
        layer: &LayerDef,
        id: i64,
        if_match: Option<&str>,
    ) -> Result<Option<Feature>, StoreError> {
        let Some(current) = Self::read_one(conn, layer, id).await? else {
            return Ok(None);
        };
        if if_match.is_some_and(|tag| tag != current.etag()) {
            return Err(StoreError::PreconditionFailed {
                layer: layer.name.clone(),
                id,
            });
        }
        Ok(Some(current))
    }

    /// End a write: stamp the layer, log the change in the same
    /// transaction, take the own-write mark out, commit.
    async fn finish(
        tx: sqlx::Transaction<'static, sqlx::Sqlite>,
        layer: &LayerDef,
        entry: log::Entry<'_>,
    ) -> Result<Written, StoreError> {
        Self::finish_keyed(tx, None, layer, entry).await
    }

    /// [`Self::finish`], storing the write's idempotency key with it.
    async fn finish_keyed(
        mut tx: sqlx::Transaction<'static, sqlx::Sqlite>,
        key: Option<&str>,
        layer: &LayerDef,
        entry: log::Entry<'_>,
    ) -> Result<Written, StoreError> {
        // The stamp and the grown extent in one statement.
        touch(&mut tx, layer, entry.bbox_after).await?;
        let ids = entry.ids.clone();
        let change = log::append(&mut tx, entry).await?;
        if let Some(key) = key {
            log::keep_key(&mut tx, key, &layer.name, change.seq).await?;
        }
        schema::unmark_own_write(&mut tx).await?;
        tx.commit()
            .await
            .map_err(StoreError::db(format!("committing {}", layer.name)))?;
        Ok(Written { ids, change })
    }

    /// Insert, once per `key` when one is given, logged with the features'
    /// after-image or, for an import, with its summary (see `Store::import`).
    async fn insert_keyed(
        &self,
        layer: &LayerDef,
        features: &[Feature],
        actor: &str,
        key: Option<&str>,
        source: Option<&super::ImportSource>,
    ) -> Result<(Written, bool), StoreError> {
        let features = super::validate_off_workers(layer, features).await?;
        let _writer = self.write_lock.lock().await;
        let mut tx = self.begin_write(layer).await?;
        if let Some(key) = key {
            if let Some(first) = log::keyed(&mut tx, &layer.name, key).await? {
                return Ok((first, true));
            }
        }
        let ids = insert_rows(&mut tx, layer, &features).await?;
        let written = Self::finish_keyed(
            tx,
            key,
            layer,
            log::Entry {
                layer: &layer.name,
                actor,
                op: Op::Create,
                ids,
                bbox_before: None,
                bbox_after: log::union(features.iter().map(|f| log::envelope(&f.geometry))),
                before: None,
                geometry_before: None,
                // An import logs its summary, not a copy of the file (a
                // million features were a 141 MB log row).
                after: match source {
                    Some(_) => None,
                    None => Some(Value::Array(
                        features
                            .iter()
                            .map(|f| Value::Object(f.properties.clone()))
                            .collect(),
                    )),
                },
                also: Vec::new(),
                action: source.map(|s| s.action(features.len())),
            },
        )
        .await?;
        Ok((written, false))
    }

    /// Apply edits in `tx`, in order; what was written, by layer.
    /// The transaction is marked as onemap's own already (see `commit_edits`).
    async fn write_edits(
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
        edits: Vec<Edit>,
    ) -> Result<Vec<EditedLayer>, StoreError> {
        let mut groups = Vec::new();
        for edit in edits {
            let (layer, id) = (edit.layer, edit.id);
            let Some(current) = Self::read_one(&mut *tx, &layer, id).await? else {
                return Err(StoreError::NotFound {
                    layer: layer.name.clone(),
                    id,
                });
            };
            let mut f = current.clone();
            (edit.apply)(&mut f).map_err(|reason| StoreError::Refused {
                layer: layer.name.clone(),
                id,
                reason,
            })?;
            if f.geometry == current.geometry && f.properties == current.properties {
                continue;
            }
            let mut f = super::validate_off_workers(&layer, std::slice::from_ref(&f))
                .await?
                .pop()
                .expect("a valid batch of one yields one feature");
            f.id = Some(id);
            bind_feature(sqlx::query(&Self::update_sql(&layer)), &layer, &f)?
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::db(format!("updating {} {id}", layer.name)))?;
            widen_extent(&mut *tx, &layer, [&f]).await?;
            crate::store::entry::note_edit(&mut groups, &layer, id, current, &f);
        }
        Ok(groups)
    }

    /// `UPDATE` of one feature's geometry and properties, bound by
    /// [`bind_feature`] then the id.
    fn update_sql(layer: &LayerDef) -> String {
        let sets: Vec<String> = layer
            .properties
            .iter()
            .map(|p| format!("\"{}\" = ?", p.name))
            .collect();
        format!(
            "UPDATE \"{}\" SET \"{}\" = ?, {} WHERE fid = ?",
            layer.name,
            schema::GEOM,
            sets.join(", ")
        )
    }

    fn select_sql(layer: &LayerDef) -> String {
        let cols: Vec<String> = layer
            .properties
            .iter()
            .map(|p| format!("\"{}\"", p.name))
            .collect();
        format!(
            "SELECT fid, \"{}\", {} FROM \"{}\"",
            schema::GEOM,
            cols.join(", "),
            layer.name
        )
    }
}

/// Group commit: apply every waiting edit in one transaction, each in a
/// savepoint of its own so that one refusal undoes only its own edit, and
/// answer each once the whole transaction is committed.
///
/// Why: a commit's cost (the transaction, the layer's stamp, the WAL
/// frames) is paid once per group, not once per team position.
async fn commit_edits(pool: SqlitePool, batch: Vec<WaitingEdit>) {
    let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => {
            let reason = e.to_string();
            for w in batch {
                let _ = w.reply.send(Err(StoreError::Interrupted {
                    context: format!("starting a write ({reason})"),
                }));
            }
            return;
        }
    };
    if let Err(e) = schema::mark_own_write(&mut tx).await {
        let reason = e.to_string();
        for w in batch {
            let _ = w.reply.send(Err(StoreError::Interrupted {
                context: format!("starting a write ({reason})"),
            }));
        }
        return;
    }
    let mut checked: Vec<Arc<LayerDef>> = Vec::new();
    let mut answers = Vec::with_capacity(batch.len());
    for w in batch {
        // Layers first: an edit's closure is not Sync, so no reference to
        // it may be held across an await of this Send task.
        let layers: Vec<Arc<LayerDef>> = w.edits.iter().map(|e| Arc::clone(&e.layer)).collect();
        // Boxed: rustc cannot prove the unboxed futures Send for every
        // lifetime (rust-lang/rust#102211), which the spawned task needs.
        let answer = match check_layers(&mut tx, layers, &mut checked).boxed().await {
            Ok(()) => one_edit(&mut tx, w.edits, &w.actor, w.action).boxed().await,
            Err(e) => Err(e),
        };
        answers.push((w.reply, answer));
    }
    let mut finished: Result<(), StoreError> = Ok(());
    for layer in checked {
        if finished.is_ok() {
            finished = touch_owned(&mut tx, layer).boxed().await;
        }
    }
    if finished.is_ok() {
        finished = schema::unmark_own_write(&mut tx).await;
    }
    let finished = match finished {
        Ok(()) => tx.commit().await.map_err(|e| format!("committing ({e})")),
        Err(e) => Err(e.to_string()),
    };
    for (reply, answer) in answers {
        let answer = match &finished {
            Ok(()) => answer,
            Err(why) => answer.and(Err(StoreError::Interrupted {
                context: format!("a grouped write: {why}"),
            })),
        };
        let _ = reply.send(answer);
    }
}

async fn touch_owned(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    layer: Arc<LayerDef>,
) -> Result<(), StoreError> {
    // The edits grew the extent themselves (`write_edits`).
    touch(tx, &layer, None).await
}

/// Check the edits' layers not checked yet, and note them for their stamp.
/// Outside the edit's savepoint: a refused edit must not undo it.
async fn check_layers(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    layers: Vec<Arc<LayerDef>>,
    checked: &mut Vec<Arc<LayerDef>>,
) -> Result<(), StoreError> {
    for layer in layers {
        if !checked.iter().any(|l| l.name == layer.name) {
            GpkgStore::check_layer(&mut *tx, &layer).await?;
            checked.push(layer);
        }
    }
    Ok(())
}

/// One `Store::edit` inside the group's transaction, in a savepoint.
async fn one_edit(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    edits: Vec<Edit>,
    actor: &str,
    action: Option<Value>,
) -> Result<Option<Written>, StoreError> {
    sqlx::query("SAVEPOINT onemap_edit")
        .execute(&mut **tx)
        .await
        .map_err(StoreError::db("opening a savepoint"))?;
    let written = edit_and_log(tx, edits, actor, action).await;
    // Refused or failed: undo this edit only; the group goes on.
    if written.is_err() {
        sqlx::query("ROLLBACK TO onemap_edit")
            .execute(&mut **tx)
            .await
            .map_err(StoreError::db("undoing a refused edit"))?;
    }
    sqlx::query("RELEASE onemap_edit")
        .execute(&mut **tx)
        .await
        .map_err(StoreError::db("closing a savepoint"))?;
    written
}

/// Apply one call's edits and log what changed as one change.
async fn edit_and_log(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    edits: Vec<Edit>,
    actor: &str,
    action: Option<Value>,
) -> Result<Option<Written>, StoreError> {
    let groups = GpkgStore::write_edits(tx, edits).await?;
    let Some((layer, mut entry)) = crate::store::entry::edit_entry(groups, actor, action) else {
        return Ok(None);
    };
    entry.layer = &layer.name;
    let ids = entry.ids.clone();
    let change = log::append(&mut *tx, entry).await?;
    Ok(Some(Written { ids, change }))
}

/// The SQL to write a feature's geometry and properties, in schema order.
fn bind_feature<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    layer: &LayerDef,
    f: &Feature,
) -> Result<sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>, StoreError> {
    let envelope = f
        .geometry
        .bounding_rect()
        .map(|r| vec![r.min().x, r.max().x, r.min().y, r.max().y])
        .unwrap_or_default();
    let blob = f
        .geometry
        .to_gpkg_wkb(CoordDimensions::xy(), Some(schema::WGS84), envelope)
        .map_err(|e| StoreError::Corrupt {
            layer: layer.name.clone(),
            id: f.id.unwrap_or_default(),
            column: schema::GEOM.into(),
            reason: e.to_string(),
        })?;
    q = q.bind(blob);
    for p in &layer.properties {
        let v = f.properties.get(&p.name).filter(|v| !v.is_null());
        q = match p.kind {
            PropertyType::String | PropertyType::Enum | PropertyType::Datetime => {
                q.bind(v.and_then(Value::as_str).map(str::to_owned))
            }
            PropertyType::Integer => q.bind(v.and_then(Value::as_i64)),
            PropertyType::Number => q.bind(v.and_then(Value::as_f64)),
            PropertyType::Boolean => q.bind(v.and_then(Value::as_bool)),
            PropertyType::Array | PropertyType::Records => q.bind(v.map(Value::to_string)),
        };
    }
    Ok(q)
}

fn read_feature(layer: &LayerDef, row: &SqliteRow) -> Result<Feature, StoreError> {
    let id: i64 = row
        .try_get(0)
        .map_err(StoreError::db(format!("reading ids of {}", layer.name)))?;
    let corrupt = |column: &str, reason: String| StoreError::Corrupt {
        layer: layer.name.clone(),
        id,
        column: column.to_owned(),
        reason,
    };
    let blob = row
        .try_get::<Option<&[u8]>, _>(1)
        .map_err(|e| corrupt(schema::GEOM, e.to_string()))?
        .ok_or_else(|| corrupt(schema::GEOM, "the geometry is NULL".into()))?;
    let geometry = blob::decode(blob).map_err(|e| corrupt(schema::GEOM, e.to_string()))?;
    let mut properties = Map::new();
    for (i, p) in layer.properties.iter().enumerate() {
        let value = read_value(row, i + 2, p).map_err(|e| corrupt(&p.name, e))?;
        if let Some(v) = value {
            properties.insert(p.name.clone(), v);
        }
    }
    Ok(Feature {
        id: Some(id),
        geometry,
        properties,
    })
}

fn read_value(row: &SqliteRow, i: usize, p: &PropertyDef) -> Result<Option<Value>, String> {
    let e = |e: sqlx::Error| e.to_string();
    Ok(match p.kind {
        PropertyType::String | PropertyType::Enum | PropertyType::Datetime => row
            .try_get::<Option<String>, _>(i)
            .map_err(e)?
            .map(Value::String),
        PropertyType::Integer => row
            .try_get::<Option<i64>, _>(i)
            .map_err(e)?
            .map(Value::from),
        PropertyType::Number => row
            .try_get::<Option<f64>, _>(i)
            .map_err(e)?
            .map(Value::from),
        PropertyType::Boolean => row
            .try_get::<Option<bool>, _>(i)
            .map_err(e)?
            .map(Value::Bool),
        PropertyType::Array | PropertyType::Records => {
            match row.try_get::<Option<String>, _>(i).map_err(e)? {
                Some(s) => Some(serde_json::from_str(&s).map_err(|e| e.to_string())?),
                None => None,
            }
        }
    })
}

/// Insert `features` (valid, without ids) in multi-row statements, keep the
/// R-tree and extent in step, and return their new ids in order.
async fn insert_rows(
    tx: &mut SqliteConnection,
    layer: &LayerDef,
    features: &[Feature],
) -> Result<Vec<i64>, StoreError> {
    let cols: Vec<String> = layer
        .properties
        .iter()
        .map(|p| format!("\"{}\"", p.name))
        .collect();
    let row = format!("({})", vec!["?"; cols.len() + 1].join(", "));
    let per_statement = (30_000 / (cols.len() + 1)).clamp(1, ROWS_PER_STATEMENT);
    let mut ids = Vec::with_capacity(features.len());
    for chunk in features.chunks(per_statement) {
        let sql = format!(
            "INSERT INTO \"{}\" (\"{}\", {}) VALUES {} RETURNING fid",
            layer.name,
            schema::GEOM,
            cols.join(", "),
            vec![row.as_str(); chunk.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for f in chunk {
            q = bind_feature(q, layer, f)?;
        }
        let mut chunk_ids: Vec<i64> = q
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::db(format!("inserting into {}", layer.name)))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // Rows of one statement get increasing ids in VALUES order (one
        // writer, AUTOINCREMENT); RETURNING's own order is unspecified.
        chunk_ids.sort_unstable();
        ids.extend(chunk_ids);
    }
    // The extent grows with the stamp, in `finish_keyed`.
    Ok(ids)
}

/// Rows per multi-row INSERT: SQLite allows 32,766 parameters a statement,
/// and one statement per row costs a round trip to sqlx's worker thread.
const ROWS_PER_STATEMENT: usize = 500;

/// Grow the layer's extent in gpkg_contents to cover written features.
/// (The R-tree is kept by the file's own triggers, see `functions`.)
async fn widen_extent<'f>(
    conn: &mut SqliteConnection,
    layer: &LayerDef,
    written: impl IntoIterator<Item = &'f Feature>,
) -> Result<(), StoreError> {
    let Some(extent) = log::union(written.into_iter().map(|f| log::envelope(&f.geometry))) else {
        return Ok(());
    };
    // The extent only grows on writes; it is informative in the spec and
    // a shrink would need a scan of the whole index.
    sqlx::query(
        "UPDATE gpkg_contents SET min_x = min(coalesce(min_x, ?1), ?1), max_x = max(coalesce(max_x, ?2), ?2), \
         min_y = min(coalesce(min_y, ?3), ?3), max_y = max(coalesce(max_y, ?4), ?4) WHERE table_name = ?5",
    )
    .bind(extent[0])
    .bind(extent[2])
    .bind(extent[1])
    .bind(extent[3])
    .bind(&layer.name)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db(format!("updating the extent of {}", layer.name)))?;
    Ok(())
}

/// Stamp the layer's `last_change` and grow its extent to cover `grown`
/// (WGS84 `[min_lon, min_lat, max_lon, max_lat]`), in one statement.
async fn touch(
    conn: &mut SqliteConnection,
    layer: &LayerDef,
    grown: Option<[f64; 4]>,
) -> Result<(), StoreError> {
    // min(x, NULL) is NULL in SQLite: without a box, each bound stays.
    let [a, b, c, d] = grown.map_or([None; 4], |g| g.map(Some));
    sqlx::query(
        "UPDATE gpkg_contents SET last_change = strftime('%Y-%m-%dT%H:%M:%fZ','now'), \
         min_x = coalesce(min(coalesce(min_x, ?1), ?1), min_x), \
         min_y = coalesce(min(coalesce(min_y, ?2), ?2), min_y), \
         max_x = coalesce(max(coalesce(max_x, ?3), ?3), max_x), \
         max_y = coalesce(max(coalesce(max_y, ?4), ?4), max_y) WHERE table_name = ?5",
    )
    .bind(a)
    .bind(b)
    .bind(c)
    .bind(d)
    .bind(&layer.name)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db(format!("stamping {}", layer.name)))?;
    Ok(())
}

/// Features in flight between the reading task and a streaming answer.
const STREAM_BUFFER: usize = 64;

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    binds: Vec<sql::Bind>,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for b in binds {
        q = match b {
            sql::Bind::Text(s) => q.bind(s),
            sql::Bind::Integer(i) => q.bind(i),
            sql::Bind::Real(f) => q.bind(f),
            sql::Bind::Bool(b) => q.bind(b),
        };
    }
    q
}

/// WHERE and ORDER BY of a query, with its parameters.
fn clauses(layer: &LayerDef, query: &Query) -> (String, String, Vec<sql::Bind>) {
    let mut binds = Vec::new();
    let condition = match &query.filter {
        Some(e) => format!(" WHERE {}", sql::superset(layer, e, &mut binds)),
        None => String::new(),
    };
    let mut order: Vec<String> = query
        .sort
        .iter()
        .map(|k| {
            let col = if k.property == crate::filter::ID {
                "fid".to_owned()
            } else {
                format!("\"{}\"", k.property)
            };
            format!("{col} {}", if k.descending { "DESC" } else { "ASC" })
        })
        .collect();
    order.push("fid ASC".into());
    (condition, format!(" ORDER BY {}", order.join(", ")), binds)
}

impl GpkgStore {
    async fn stream_into(
        pool: &SqlitePool,
        layer: &LayerDef,
        query: &Query,
        tx: &mpsc::Sender<Result<Feature, StoreError>>,
    ) -> Result<(), StoreError> {
        let (condition, order, binds) = clauses(layer, query);
        // A spatial filter is only approximated in SQL: its exact test, and
        // so the offset and limit, are applied by `Chunks`.
        let exact = query.filter.as_ref().filter(|e| e.is_spatial());
        let mut chunks = super::Chunks::new(query, exact);
        let mut first = true;
        while let Some(take) = chunks.take() {
            let mut b = binds.clone();
            let condition = match (chunks.after, condition.strip_prefix(" WHERE ")) {
                (Some(id), Some(c)) => {
                    b.push(sql::Bind::Integer(id));
                    format!(" WHERE ({c}) AND fid > ?")
                }
                (Some(id), None) => {
                    b.push(sql::Bind::Integer(id));
                    " WHERE fid > ?".to_owned()
                }
                (None, _) => condition.clone(),
            };
            b.push(sql::Bind::Integer(take));
            b.push(sql::Bind::Integer(chunks.sql_offset));
            let sql = format!(
                "{}{condition}{order} LIMIT ? OFFSET ?",
                Self::select_sql(layer)
            );
            let rows = {
                let mut conn = pool.acquire().await.map_err(StoreError::db("connecting"))?;
                if first {
                    Self::check_layer(&mut conn, layer).await?;
                    first = false;
                }
                bind_all(sqlx::query(&sql), b)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(StoreError::db(format!("reading {}", layer.name)))?
            };
            let n = i64::try_from(rows.len()).unwrap_or(i64::MAX);
            for row in &rows {
                // A row that cannot be read (a NULL or hostile geometry
                // another tool wrote) is reported and the read goes on.
                let id = row.try_get::<i64, _>(0).ok();
                if !chunks.send(id, read_feature(layer, row), tx).await {
                    return Ok(());
                }
            }
            if !chunks.next_chunk(n, take) {
                break;
            }
        }
        Ok(())
    }
}

/// Insert features with their own ids (a copy), in multi-row statements.
async fn insert_with_ids(
    tx: &mut SqliteConnection,
    layer: &LayerDef,
    features: &[Feature],
) -> Result<(), StoreError> {
    let cols: Vec<String> = layer
        .properties
        .iter()
        .map(|p| format!("\"{}\"", p.name))
        .collect();
    let row = format!("({})", vec!["?"; cols.len() + 2].join(", "));
    let per_statement = (30_000 / (cols.len() + 2)).clamp(1, ROWS_PER_STATEMENT);
    for chunk in features.chunks(per_statement) {
        let sql = format!(
            "INSERT INTO \"{}\" (fid, \"{}\", {}) VALUES {}",
            layer.name,
            schema::GEOM,
            cols.join(", "),
            vec![row.as_str(); chunk.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for f in chunk {
            q = bind_feature(q.bind(f.id), layer, f)?;
        }
        q.execute(&mut *tx)
            .await
            .map_err(StoreError::db(format!("copying into {}", layer.name)))?;
    }
    Ok(())
}

/// Make the layer's next id come after `high` (a deleted feature's id is
/// never handed out again, as AUTOINCREMENT promises).
async fn raise_next_id(
    tx: &mut SqliteConnection,
    layer: &str,
    high: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sqlite_sequence (name, seq) SELECT ?1, ?2 \
         WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?1) \
         AND EXISTS (SELECT 1 FROM gpkg_contents WHERE table_name = ?1 AND data_type = 'features')",
    )
    .bind(layer)
    .bind(high)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::db("keeping the next id"))?;
    sqlx::query("UPDATE sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1")
        .bind(layer)
        .bind(high)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("keeping the next id"))?;
    Ok(())
}

#[async_trait]
impl Store for GpkgStore {
    async fn log_page(&self, seq: i64, limit: u64) -> Result<Vec<AuditEntry>, StoreError> {
        let mut conn = self.conn().await?;
        log::page(&mut conn, seq, limit).await
    }

    async fn records(&self) -> Result<super::Records, StoreError> {
        let mut conn = self.conn().await?;
        log::records(&mut conn).await
    }

    async fn restore(
        &self,
        mut parts: mpsc::Receiver<super::CopyPart>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<super::Restored, StoreError> {
        use super::CopyPart;
        let _writer = self.write_lock.lock().await;
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::db("starting a transaction"))?;
        // The copy's own log comes with it: the log triggers stay quiet.
        schema::mark_own_write(&mut tx).await?;
        if let Some(what) = log::holds_records(&mut tx).await? {
            return Err(StoreError::NotEmpty { what });
        }
        let mut done = super::Restored::default();
        let mut high: std::collections::BTreeMap<String, i64> = Default::default();
        let mut seen: Vec<Arc<LayerDef>> = Vec::new();
        let mut boxes: std::collections::BTreeMap<String, Option<[f64; 4]>> = Default::default();
        loop {
            let Some(part) = parts.recv().await else {
                return Err(StoreError::Interrupted {
                    context: "copying (the reader stopped)".into(),
                });
            };
            match part {
                CopyPart::Features { layer, features } => {
                    if !seen.iter().any(|l| l.name == layer.name) {
                        Self::check_layer(&mut tx, &layer).await?;
                        let any: Option<i64> = sqlx::query_scalar(&format!(
                            "SELECT fid FROM \"{}\" LIMIT 1",
                            layer.name
                        ))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(StoreError::db(format!("reading {}", layer.name)))?;
                        if any.is_some() {
                            return Err(StoreError::NotEmpty {
                                what: format!("features of {}", layer.name),
                            });
                        }
                        seen.push(Arc::clone(&layer));
                    }
                    insert_with_ids(&mut tx, &layer, &features).await?;
                    let b = boxes.entry(layer.name.clone()).or_default();
                    *b = log::union(
                        std::iter::once(*b)
                            .chain(features.iter().map(|f| log::envelope(&f.geometry))),
                    );
                    let h = high.entry(layer.name.clone()).or_insert(0);
                    *h = features.iter().filter_map(|f| f.id).fold(*h, i64::max);
                    done.features += features.len() as u64;
                }
                CopyPart::Log(entries) => {
                    super::logged_ids(&entries, &mut high);
                    for e in &entries {
                        log::put_change(&mut tx, e).await?;
                    }
                    done.changes += entries.len() as u64;
                }
                CopyPart::Records(r) => {
                    log::put_records(&mut tx, &r).await?;
                    done.tokens += r.tokens.len() as u64;
                    done.scenarios += r.scenarios.len() as u64;
                }
                CopyPart::Failed(e) => return Err(e),
                CopyPart::End => break,
            }
            progress(done.features + done.changes);
        }
        for layer in &seen {
            touch(&mut tx, layer, boxes.get(&layer.name).copied().flatten()).await?;
        }
        for (layer, h) in &high {
            raise_next_id(&mut tx, layer, *h).await?;
        }
        schema::unmark_own_write(&mut tx).await?;
        tx.commit()
            .await
            .map_err(StoreError::db("committing the copy"))?;
        Ok(done)
    }

    async fn prepare(&self, layers: &[Arc<LayerDef>]) -> Result<(), StoreError> {
        let _writer = self.write_lock.lock().await;
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(StoreError::db("starting a transaction"))?;
        // Renamed values are rewritten without a log entry.
        schema::mark_own_write(&mut tx).await?;
        for layer in layers {
            if schema::ensure_layer(&mut tx, layer).await? {
                // A table another tool made without an index: index its
                // rows. A row that cannot be read stays out of the R-tree
                // (the functions answer NULL); the spatial index skips and
                // reports it too.
                schema::index_existing_rows(&mut tx, layer).await?;
            }
        }
        schema::unmark_own_write(&mut tx).await?;
        tx.commit()
            .await
            .map_err(StoreError::db("committing the schema"))?;
        Ok(())
    }

    async fn insert(
        &self,
        layer: &LayerDef,
        features: &[Feature],
        actor: &str,
    ) -> Result<Written, StoreError> {
        self.insert_keyed(layer, features, actor, None, None)
            .await
            .map(|(w, _)| w)
    }

    async fn import(
        &self,
        layer: &LayerDef,
        features: &[Feature],
        actor: &str,
        key: Option<&str>,
        source: &super::ImportSource,
    ) -> Result<(Written, bool), StoreError> {
        self.insert_keyed(layer, features, actor, key, Some(source))
            .await
    }

    async fn import_stream(
        &self,
        layer: &LayerDef,
        mut batches: tokio::sync::mpsc::Receiver<super::ImportBatch>,
        actor: &str,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<Written, StoreError> {
        use super::ImportBatch;
        let _writer = self.write_lock.lock().await;
        let mut tx = self.begin_write(layer).await?;
        let mut errors = crate::layers::ValidationErrors::new(&layer.name);
        let mut ids: Vec<i64> = Vec::new();
        let mut bbox: Option<[f64; 4]> = None;
        let source = loop {
            let Some(batch) = batches.recv().await else {
                return Err(StoreError::Interrupted {
                    context: format!("importing into {} (the reader stopped)", layer.name),
                });
            };
            let (features, indices, lines, unreadable) = match batch {
                ImportBatch::End(source) => break source,
                // Dropping the transaction rolls it back.
                ImportBatch::Failed(e) => return Err(e),
                ImportBatch::Features {
                    features,
                    indices,
                    lines,
                    unreadable,
                } => (features, indices, lines, unreadable),
            };
            errors.extend(unreadable);
            let (valid, violations) =
                super::validate_numbered(layer, features, indices, lines).await?;
            errors.extend(violations);
            if !errors.is_empty() {
                // Keep reading: the refusal counts every problem.
                continue;
            }
            bbox = log::union(
                std::iter::once(bbox).chain(valid.iter().map(|f| log::envelope(&f.geometry))),
            );
            ids.extend(insert_rows(&mut tx, layer, &valid).await?);
            progress(ids.len());
        };
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
        let count = ids.len();
        Self::finish_keyed(
            tx,
            None,
            layer,
            log::Entry {
                layer: &layer.name,
                actor,
                op: Op::Create,
                ids,
                bbox_before: None,
                bbox_after: bbox,
                before: None,
                geometry_before: None,
                after: None,
                also: Vec::new(),
                action: Some(source.action(count)),
            },
        )
        .await
    }

    async fn feature(&self, layer: &LayerDef, id: i64) -> Result<Option<Feature>, StoreError> {
        let mut conn = self.conn().await?;
        // Read first and ask why only on failure: one statement, not two,
        // on every item and every read-modify-write.
        match Self::read_one(&mut conn, layer, id).await {
            Ok(found) => Ok(found),
            Err(e) => {
                Self::check_layer(&mut conn, layer).await?;
                Err(e)
            }
        }
    }

    fn stream(&self, layer: Arc<LayerDef>, query: Query) -> FeatureStream {
        let pool = self.pool.clone();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        // The reader runs in a task of its own, watched by this one: if it
        // panics, the stream ends in an error (an aborted body for a
        // client), never as a well-formed short page.
        tokio::spawn(async move {
            let reader_tx = tx.clone();
            let name = layer.name.clone();
            let reader =
                tokio::spawn(
                    async move { Self::stream_into(&pool, &layer, &query, &reader_tx).await },
                );
            let failure = match reader.await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(panic) => {
                    tracing::error!(error = %panic, layer = %name, "the reading task of a stream failed");
                    StoreError::Interrupted {
                        context: format!("reading {name}"),
                    }
                }
            };
            let _ = tx.send(Err(failure)).await;
        });
        Box::pin(
            futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            })
            .fuse(),
        )
    }

    async fn extent(&self, layer: &LayerDef) -> Result<Option<[f64; 4]>, StoreError> {
        let mut conn = self.conn().await?;
        Self::check_layer(&mut conn, layer).await?;
        let row = sqlx::query(&format!(
            "SELECT min(minx), min(miny), max(maxx), max(maxy) FROM \"{}\"",
            schema::rtree(layer)
        ))
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::db(format!("measuring {}", layer.name)))?;
        let get = |i: usize| row.try_get::<Option<f64>, _>(i).ok().flatten();
        Ok(match (get(0), get(1), get(2), get(3)) {
            (Some(a), Some(b), Some(c), Some(d)) => Some([a, b, c, d]),
            _ => None,
        })
    }

    async fn count(&self, layer: &LayerDef, query: &Query) -> Result<u64, StoreError> {
        let unpaged = Query {
            limit: None,
            offset: 0,
            sort: Vec::new(),
            filter: query.filter.clone(),
        };
        if query.filter.as_ref().is_some_and(|e| e.is_spatial()) {
            let mut n = 0;
            let mut features = self.stream(Arc::new(layer.clone()), unpaged);
            while features.try_next().await?.is_some() {
                n += 1;
            }
            return Ok(n);
        }
        let mut conn = self.conn().await?;
        Self::check_layer(&mut conn, layer).await?;
        let (condition, _, binds) = clauses(layer, &unpaged);
        let sql = format!("SELECT count(*) FROM \"{}\"{condition}", layer.name);
        let row = bind_all(sqlx::query(&sql), binds)
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::db(format!("counting {}", layer.name)))?;
        let n: i64 = row.get(0);
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn replace(
        &self,
        layer: &LayerDef,
        id: i64,
        feature: &Feature,
        op: Op,
        actor: &str,
        if_match: Option<&str>,
    ) -> Result<Option<Written>, StoreError> {
        let mut f = super::validate_off_workers(layer, std::slice::from_ref(feature))
            .await?
            .pop()
            .expect("a valid batch of one yields one feature");
        f.id = Some(id);
        let sql = Self::update_sql(layer);
        let _writer = self.write_lock.lock().await;
        let mut tx = self.begin_write(layer).await?;
        let Some(current) = Self::current(&mut tx, layer, id, if_match).await? else {
            return Ok(None);
        };
        bind_feature(sqlx::query(&sql), layer, &f)?
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::db(format!("updating {} {id}", layer.name)))?;
        Self::finish(
            tx,
            layer,
            log::Entry {
                layer: &layer.name,
                actor,
                op,
                ids: vec![id],
                bbox_before: log::envelope(&current.geometry),
                bbox_after: log::envelope(&f.geometry),
                geometry_before: Some(Value::Array(vec![log::geometry_json(&current.geometry)])),
                before: Some(Value::Array(vec![Value::Object(current.properties)])),
                after: Some(Value::Array(vec![Value::Object(f.properties.clone())])),
                also: Vec::new(),
                action: None,
            },
        )
        .await
        .map(Some)
    }

    async fn delete(
        &self,
        layer: &LayerDef,
        id: i64,
        actor: &str,
        if_match: Option<&str>,
    ) -> Result<Option<Written>, StoreError> {
        let _writer = self.write_lock.lock().await;
        let mut tx = self.begin_write(layer).await?;
        let Some(current) = Self::current(&mut tx, layer, id, if_match).await? else {
            return Ok(None);
        };
        sqlx::query(&format!("DELETE FROM \"{}\" WHERE fid = ?", layer.name))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::db(format!("deleting {} {id}", layer.name)))?;
        Self::finish(
            tx,
            layer,
            log::Entry {
                layer: &layer.name,
                actor,
                op: Op::Delete,
                ids: vec![id],
                bbox_before: log::envelope(&current.geometry),
                bbox_after: None,
                geometry_before: Some(Value::Array(vec![log::geometry_json(&current.geometry)])),
                before: Some(Value::Array(vec![Value::Object(current.properties)])),
                after: None,
                also: Vec::new(),
                action: None,
            },
        )
        .await
        .map(Some)
    }

    async fn edit(
        &self,
        edits: Vec<Edit>,
        actor: &str,
        action: Option<Value>,
    ) -> Result<Option<Written>, StoreError> {
        if edits.is_empty() {
            return Ok(None);
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(WaitingEdit {
                edits,
                actor: actor.to_owned(),
                action,
                reply,
            });
        // Whoever gets the lock writes everything waiting, in a task of
        // its own: a caller that goes away (its client hung up) must not
        // take the edits of the others down with it.
        let writer = Arc::clone(&self.write_lock).lock_owned().await;
        let batch = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()));
        if !batch.is_empty() {
            let pool = self.writer.clone();
            tokio::spawn(async move {
                commit_edits(pool, batch).await;
                drop(writer);
            });
        } else {
            drop(writer);
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Interrupted {
                context: "a grouped write".into(),
            })
        })
    }

    async fn changes_since(&self, seq: i64, limit: u64) -> Result<Vec<Change>, StoreError> {
        let mut conn = self.conn().await?;
        log::since(&mut conn, seq, limit).await
    }

    async fn last_seq(&self) -> Result<i64, StoreError> {
        let mut conn = self.conn().await?;
        log::last_seq(&mut conn).await
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let mut conn = self.conn().await?;
        log::audit(&mut conn, query).await
    }

    async fn create_token(
        &self,
        name: &str,
        role: Role,
        digest: &str,
    ) -> Result<TokenRecord, StoreError> {
        let _writer = self.write_lock.lock().await;
        let mut conn = self.conn().await?;
        log::create_token(&mut conn, name, role, digest).await
    }

    async fn token(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
        let mut conn = self.conn().await?;
        log::find_token(&mut conn, digest).await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let mut conn = self.conn().await?;
        log::tokens(&mut conn).await
    }

    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        let _writer = self.write_lock.lock().await;
        let mut conn = self.conn().await?;
        log::revoke_token(&mut conn, name).await
    }

    async fn save_scenario(
        &self,
        name: &str,
        actor: &str,
        inputs: &Value,
        results: &Value,
    ) -> Result<ScenarioRecord, StoreError> {
        let _writer = self.write_lock.lock().await;
        let mut conn = self.conn().await?;
        log::save_scenario(&mut conn, name, actor, inputs, results).await
    }

    async fn scenario(&self, id: i64) -> Result<Option<ScenarioRecord>, StoreError> {
        let mut conn = self.conn().await?;
        log::scenario(&mut conn, id).await
    }

    async fn scenarios(&self, limit: u64) -> Result<Vec<ScenarioRecord>, StoreError> {
        let mut conn = self.conn().await?;
        log::scenarios(&mut conn, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A read of the file itself, not just of the connection: a store
        // whose file went away or is unreadable is not healthy.
        sqlx::query("SELECT count(*) FROM gpkg_contents")
            .execute(&self.health)
            .await
            .map_err(StoreError::db("pinging the database"))?;
        Ok(())
    }

    async fn close(&self) {
        // Fold the WAL back into the main file so the .gpkg alone is complete
        // for whoever copies it next.
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await
        {
            tracing::warn!(error = %e, "could not checkpoint the GeoPackage");
        }
        self.health.close().await;
        self.pool.close().await;
        self.writer.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_released_inside_a_transaction_is_closed_not_reused() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("t.gpkg");
        let store = GpkgStore::open(path.to_str().expect("utf-8"))
            .await
            .expect("opens");
        {
            // What a cancelled request can leave: a transaction sqlx does
            // not know of, holding the write lock.
            let mut conn = store.writer.acquire().await.expect("a connection");
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut *conn)
                .await
                .expect("begins");
        }
        let started = std::time::Instant::now();
        let tx = tokio::time::timeout(
            Duration::from_secs(5),
            store.writer.begin_with("BEGIN IMMEDIATE"),
        )
        .await
        .expect("the write lock was released, not held until the busy timeout")
        .expect("a write begins");
        tx.rollback().await.expect("rolls back");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
