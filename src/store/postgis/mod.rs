//! The shared store: PostgreSQL 15 with PostGIS 3, for a city or province
//! where several stateless `onemap serve` nodes share one database.
//!
//! Same contract as the GeoPackage (`gpkg`), decided by the database rather
//! than by a process: a write is one transaction; the features an edit
//! reads are row-locked (`FOR UPDATE`) so that a condition it checks holds
//! against every node; the change log's seq is handed out by one row whose
//! lock orders the commits (see `migrations/postgres`), and each commit is
//! announced on `LISTEN onemap_changes` so the other nodes' feeds read it
//! at once instead of at their next poll.

mod log;
pub mod schema;
mod sql;

use std::{str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use geozero::{wkb::Wkb, CoordDimensions, ToGeo, ToWkb};
use serde_json::{Map, Value};
use sqlx::{
    postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow},
    PgConnection, PgPool, Row,
};
use tokio::sync::mpsc;

use super::{
    entry::{self, Entry},
    AuditEntry, AuditQuery, Change, Edit, FeatureStream, ImportBatch, ImportSource, Op, Query,
    ScenarioRecord, Store, StoreError, TokenRecord, Written,
};
use crate::layers::{Feature, LayerDef, PropertyDef, PropertyType, Role};

use schema::GEOM;
use sql::Bind;

/// Connections per node: reads, writes and the change feed share them.
const POOL: u32 = 16;
/// Features in flight between the reading task and a streaming answer.
const STREAM_BUFFER: usize = 64;
/// Rows per INSERT of a batch (one array parameter per column).
const ROWS_PER_STATEMENT: usize = 2_000;

pub struct PgStore {
    pool: PgPool,
    /// One connection of its own for `ping`: health must answer while user
    /// work holds every connection of the pool.
    health: PgPool,
    /// Ends the notification listener when the store closes.
    closed: tokio_util::sync::CancellationToken,
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl PgStore {
    /// Connect to the database at `url` and bring its schema up to date
    /// (every node may do so at once: sqlx's migrator takes an advisory
    /// lock).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(StoreError::db("parsing the PostgreSQL URL"))?
            .application_name("onemap")
            // Writes on these connections are logged by onemap itself; the
            // layer tables' triggers log everyone else's.
            .options([schema::WRITER_OPTION]);
        let pool = PgPoolOptions::new()
            .max_connections(POOL)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(StoreError::db("connecting to PostgreSQL"))?;
        let health = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(2))
            .connect_with(options)
            .await
            .map_err(StoreError::db("connecting to PostgreSQL for health checks"))?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self {
            pool,
            health,
            closed: tokio_util::sync::CancellationToken::new(),
        })
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        self.pool
            .acquire()
            .await
            .map_err(StoreError::db("connecting"))
    }

    async fn check_layer(conn: &mut PgConnection, layer: &LayerDef) -> Result<(), StoreError> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM onemap_layers WHERE name = $1")
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

    fn select_sql(layer: &LayerDef) -> String {
        let cols: String = layer
            .properties
            .iter()
            .map(|p| format!(", \"{}\"", p.name))
            .collect();
        format!(
            "SELECT fid, ST_AsBinary(\"{GEOM}\"){cols} FROM \"{}\"",
            layer.name
        )
    }

    async fn read_one(
        conn: &mut PgConnection,
        layer: &LayerDef,
        id: i64,
        lock: bool,
    ) -> Result<Option<Feature>, StoreError> {
        let sql = format!(
            "{} WHERE fid = $1{}",
            Self::select_sql(layer),
            if lock { " FOR UPDATE" } else { "" }
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::db(format!("reading {} {id}", layer.name)))?;
        row.map(|r| read_feature(layer, &r)).transpose()
    }

    async fn begin_write(
        &self,
        layer: &LayerDef,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::db("starting a transaction"))?;
        Self::check_layer(&mut tx, layer).await?;
        Ok(tx)
    }

    /// The feature a replace or delete acts on, locked, if its ETag matches.
    async fn current(
        conn: &mut PgConnection,
        layer: &LayerDef,
        id: i64,
        if_match: Option<&str>,
    ) -> Result<Option<Feature>, StoreError> {
        let Some(current) = Self::read_one(conn, layer, id, true).await? else {
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

    /// Log the change, keep the key, commit.
    async fn finish(
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
        key: Option<&str>,
        layer: &LayerDef,
        entry: Entry<'_>,
    ) -> Result<Written, StoreError> {
        let ids = entry.ids.clone();
        let change = log::append(&mut tx, entry).await?;
        if let Some(key) = key {
            log::keep_key(&mut tx, key, &layer.name, change.seq).await?;
        }
        tx.commit()
            .await
            .map_err(StoreError::db(format!("committing {}", layer.name)))?;
        Ok(Written { ids, change })
    }

    async fn insert_keyed(
        &self,
        layer: &LayerDef,
        features: &[Feature],
        actor: &str,
        key: Option<&str>,
        source: Option<&ImportSource>,
    ) -> Result<(Written, bool), StoreError> {
        let features = super::validate_off_workers(layer, features).await?;
        let mut tx = self.begin_write(layer).await?;
        if let Some(key) = key {
            log::lock_key(&mut tx, key).await?;
            if let Some(first) = log::keyed(&mut tx, &layer.name, key).await? {
                return Ok((first, true));
            }
        }
        let ids = insert_rows(&mut tx, layer, &features).await?;
        let written = Self::finish(
            tx,
            key,
            layer,
            Entry {
                layer: &layer.name,
                actor,
                op: Op::Create,
                ids,
                bbox_before: None,
                bbox_after: super::bbox_union(
                    features.iter().map(|f| entry::envelope(&f.geometry)),
                ),
                before: None,
                geometry_before: None,
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

    /// Lock every feature `edits` name, layer by layer in name order and by
    /// id within a layer: two edit calls locking in one global order can
    /// wait for each other but never deadlock.
    async fn lock_edited(
        conn: &mut PgConnection,
        wanted: Vec<(Arc<LayerDef>, i64)>,
    ) -> Result<(), StoreError> {
        let mut by_layer: std::collections::BTreeMap<String, (Arc<LayerDef>, Vec<i64>)> =
            std::collections::BTreeMap::new();
        for (layer, id) in wanted {
            by_layer
                .entry(layer.name.clone())
                .or_insert_with(|| (layer, Vec::new()))
                .1
                .push(id);
        }
        for (name, (layer, mut ids)) in by_layer {
            Self::check_layer(&mut *conn, &layer).await?;
            ids.sort_unstable();
            ids.dedup();
            sqlx::query(&format!(
                "SELECT fid FROM \"{name}\" WHERE fid = ANY($1) ORDER BY fid FOR UPDATE"
            ))
            .bind(ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::db(format!("locking features of {name}")))?;
        }
        Ok(())
    }

    async fn edit_in(
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        edits: Vec<Edit>,
        actor: &str,
        action: Option<Value>,
    ) -> Result<Option<Written>, StoreError> {
        // What to lock first: an edit's closure is not Sync, so no
        // reference to it may be held across an await of a Send task.
        let wanted: Vec<(Arc<LayerDef>, i64)> =
            edits.iter().map(|e| (Arc::clone(&e.layer), e.id)).collect();
        Self::lock_edited(tx, wanted).await?;
        let mut groups = Vec::new();
        for edit in edits {
            let (layer, id) = (edit.layer, edit.id);
            let Some(current) = Self::read_one(tx, &layer, id, false).await? else {
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
                .ok_or_else(|| StoreError::Interrupted {
                    context: format!("validating {} {id}", layer.name),
                })?;
            f.id = Some(id);
            update_row(tx, &layer, id, &f).await?;
            entry::note_edit(&mut groups, &layer, id, current, &f);
        }
        let Some((layer, mut e)) = entry::edit_entry(groups, actor, action) else {
            return Ok(None);
        };
        e.layer = &layer.name;
        let ids = e.ids.clone();
        let change = log::append(tx, e).await?;
        Ok(Some(Written { ids, change }))
    }

    async fn stream_into(
        pool: &PgPool,
        layer: &LayerDef,
        query: &Query,
        tx: &mpsc::Sender<Result<Feature, StoreError>>,
    ) -> Result<(), StoreError> {
        let mut binds = Vec::new();
        let points = points_only(layer);
        let condition = query
            .filter
            .as_ref()
            .map(|e| sql::condition(e, points, &mut binds));
        let mut order: Vec<String> = query
            .sort
            .iter()
            .map(|k| {
                format!(
                    "{} {}",
                    sql::column(&k.property),
                    if k.descending {
                        "DESC NULLS LAST"
                    } else {
                        "ASC NULLS FIRST"
                    }
                )
            })
            .collect();
        order.push("fid ASC".into());
        let order = order.join(", ");
        // A spatial filter the SQL only approximates is tested exactly,
        // and so the offset and limit, by `Chunks`.
        let exact = query.filter.as_ref().filter(|e| !sql::is_exact(e, points));
        let mut chunks = super::Chunks::new(query, exact);
        let mut first = true;
        while let Some(take) = chunks.take() {
            let mut b = binds.clone();
            let mut conditions: Vec<String> = condition.iter().cloned().collect();
            if let Some(id) = chunks.after {
                conditions.push(format!("fid > {}", sql::param(&mut b, Bind::Integer(id))));
            }
            let limit = sql::param(&mut b, Bind::Integer(take));
            let offset = sql::param(&mut b, Bind::Integer(chunks.sql_offset));
            let sql = format!(
                "{}{} ORDER BY {order} LIMIT {limit} OFFSET {offset}",
                Self::select_sql(layer),
                if conditions.is_empty() {
                    String::new()
                } else {
                    format!(" WHERE {}", conditions.join(" AND "))
                }
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

/// Whether the layer's geometry column holds points only (its type says
/// so, and PostGIS enforces it), so a box is tested exactly in SQL.
fn points_only(layer: &LayerDef) -> bool {
    layer.geometry == [crate::layers::GeometryKind::Point]
}

/// Wake the feed on every change another node (or this one) commits; on a
/// lost connection, reconnect and wake it once, since what was announced
/// meanwhile is lost (the feed then catches up from the log).
async fn listen_on(pool: PgPool, wake: Arc<dyn Fn(i64) + Send + Sync>) {
    loop {
        let connected = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(log::CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = match connected.await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other nodes' changes; polling the log meanwhile");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        wake(0);
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => wake(n.payload().parse().unwrap_or_default()),
                Ok(None) => wake(0),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the notification connection; reconnecting");
                    break;
                }
            }
        }
    }
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s),
            Bind::Integer(i) => q.bind(i),
            Bind::Real(f) => q.bind(f),
            Bind::Bool(b) => q.bind(b),
        };
    }
    q
}

fn wkb(layer: &LayerDef, f: &Feature) -> Result<Vec<u8>, StoreError> {
    f.geometry
        .to_wkb(CoordDimensions::xy())
        .map_err(|e| StoreError::Corrupt {
            layer: layer.name.clone(),
            id: f.id.unwrap_or_default(),
            column: GEOM.into(),
            reason: e.to_string(),
        })
}

/// The columns of a layer's properties, each `"name"`, in schema order.
fn property_columns(layer: &LayerDef) -> Vec<String> {
    layer
        .properties
        .iter()
        .map(|p| format!("\"{}\"", p.name))
        .collect()
}

async fn update_row(
    conn: &mut PgConnection,
    layer: &LayerDef,
    id: i64,
    f: &Feature,
) -> Result<(), StoreError> {
    let mut sets = vec![format!("\"{GEOM}\" = ST_GeomFromWKB($1, 4326)")];
    for (i, p) in layer.properties.iter().enumerate() {
        sets.push(format!("\"{}\" = ${}", p.name, i + 2));
    }
    let sql = format!(
        "UPDATE \"{}\" SET {} WHERE fid = ${}",
        layer.name,
        sets.join(", "),
        layer.properties.len() + 2
    );
    let mut q = sqlx::query(&sql).bind(wkb(layer, f)?);
    for p in &layer.properties {
        let v = f.properties.get(&p.name).filter(|v| !v.is_null());
        q = match p.kind {
            PropertyType::String | PropertyType::Enum | PropertyType::Datetime => {
                q.bind(v.and_then(Value::as_str).map(str::to_owned))
            }
            PropertyType::Integer => q.bind(v.and_then(Value::as_i64)),
            PropertyType::Number => q.bind(v.and_then(Value::as_f64)),
            PropertyType::Boolean => q.bind(v.and_then(Value::as_bool)),
            PropertyType::Array | PropertyType::Records => q.bind(v.cloned()),
        };
    }
    q.bind(id)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db(format!("updating {} {id}", layer.name)))?;
    Ok(())
}

/// Insert valid features (without ids), a chunk per statement with one
/// array parameter per column, and return their new ids in order.
async fn insert_rows(
    conn: &mut PgConnection,
    layer: &LayerDef,
    features: &[Feature],
) -> Result<Vec<i64>, StoreError> {
    insert_batches(conn, layer, features, false).await
}

/// [`insert_rows`], or with `with_ids` each feature under its own id.
async fn insert_batches(
    conn: &mut PgConnection,
    layer: &LayerDef,
    features: &[Feature],
    with_ids: bool,
) -> Result<Vec<i64>, StoreError> {
    let cols = property_columns(layer);
    let mut unnest = vec!["$1::bytea[]".to_owned()];
    let mut names = vec!["g".to_owned()];
    for (i, p) in layer.properties.iter().enumerate() {
        let ty = match p.kind {
            PropertyType::String | PropertyType::Enum | PropertyType::Datetime => "text[]",
            PropertyType::Integer => "bigint[]",
            PropertyType::Number => "double precision[]",
            PropertyType::Boolean => "boolean[]",
            PropertyType::Array | PropertyType::Records => "jsonb[]",
        };
        unnest.push(format!("${}::{ty}", i + 2));
        names.push(format!("c{i}"));
    }
    let mut values: Vec<String> = names[1..].to_vec();
    let mut cols: Vec<String> = cols;
    if with_ids {
        unnest.push(format!("${}::bigint[]", layer.properties.len() + 2));
        names.push("id".into());
        values.push("id".into());
        cols.push("fid".into());
    }
    let sql = format!(
        "INSERT INTO \"{t}\" (\"{GEOM}\"{cols}) \
         SELECT ST_GeomFromWKB(g, 4326){vals} FROM unnest({unnest}) WITH ORDINALITY AS u({names}, n) \
         ORDER BY n RETURNING fid",
        t = layer.name,
        cols = cols.iter().map(|c| format!(", {c}")).collect::<String>(),
        vals = values.iter().map(|c| format!(", {c}")).collect::<String>(),
        unnest = unnest.join(", "),
        names = names.join(", "),
    );
    let mut ids = Vec::with_capacity(features.len());
    for chunk in features.chunks(ROWS_PER_STATEMENT) {
        let geoms = chunk
            .iter()
            .map(|f| wkb(layer, f))
            .collect::<Result<Vec<_>, _>>()?;
        let mut q = sqlx::query(&sql).bind(geoms);
        for p in &layer.properties {
            let vals = chunk
                .iter()
                .map(|f| f.properties.get(&p.name).filter(|v| !v.is_null()));
            q = match p.kind {
                PropertyType::String | PropertyType::Enum | PropertyType::Datetime => q.bind(
                    vals.map(|v| v.and_then(Value::as_str).map(str::to_owned))
                        .collect::<Vec<_>>(),
                ),
                PropertyType::Integer => {
                    q.bind(vals.map(|v| v.and_then(Value::as_i64)).collect::<Vec<_>>())
                }
                PropertyType::Number => {
                    q.bind(vals.map(|v| v.and_then(Value::as_f64)).collect::<Vec<_>>())
                }
                PropertyType::Boolean => {
                    q.bind(vals.map(|v| v.and_then(Value::as_bool)).collect::<Vec<_>>())
                }
                PropertyType::Array | PropertyType::Records => {
                    q.bind(vals.map(|v| v.cloned()).collect::<Vec<Option<Value>>>())
                }
            };
        }
        if with_ids {
            q = q.bind(chunk.iter().map(|f| f.id).collect::<Vec<Option<i64>>>());
        }
        let mut chunk_ids: Vec<i64> = q
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::db(format!("inserting into {}", layer.name)))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // The identity is drawn in insertion (ordinality) order; RETURNING's
        // own order is unspecified.
        chunk_ids.sort_unstable();
        ids.extend(chunk_ids);
    }
    Ok(ids)
}

fn read_feature(layer: &LayerDef, row: &PgRow) -> Result<Feature, StoreError> {
    let id: i64 = row
        .try_get(0)
        .map_err(StoreError::db(format!("reading ids of {}", layer.name)))?;
    let corrupt = |column: &str, reason: String| StoreError::Corrupt {
        layer: layer.name.clone(),
        id,
        column: column.to_owned(),
        reason,
    };
    let bytes = row
        .try_get::<Option<Vec<u8>>, _>(1)
        .map_err(|e| corrupt(GEOM, e.to_string()))?
        .ok_or_else(|| corrupt(GEOM, "the geometry is NULL".into()))?;
    let geometry = Wkb(bytes)
        .to_geo()
        .map_err(|e| corrupt(GEOM, e.to_string()))?;
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

fn read_value(row: &PgRow, i: usize, p: &PropertyDef) -> Result<Option<Value>, String> {
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
            row.try_get::<Option<Value>, _>(i).map_err(e)?
        }
    })
}

/// Insert features with their own ids (a copy).
async fn insert_with_ids(
    conn: &mut PgConnection,
    layer: &LayerDef,
    features: &[Feature],
) -> Result<(), StoreError> {
    insert_batches(conn, layer, features, true).await.map(drop)
}

#[async_trait]
impl Store for PgStore {
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
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::db("starting a transaction"))?;
        // No other writer may log meanwhile: the head stays ours until
        // commit.
        sqlx::query("SELECT seq FROM onemap_log_head WHERE one = 1 FOR UPDATE")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::db("locking the log"))?;
        if let Some(what) = log::holds_records(&mut tx).await? {
            return Err(StoreError::NotEmpty { what });
        }
        let mut done = super::Restored::default();
        let mut high: std::collections::BTreeMap<String, i64> = Default::default();
        let mut seen: Vec<String> = Vec::new();
        loop {
            let Some(part) = parts.recv().await else {
                return Err(StoreError::Interrupted {
                    context: "copying (the reader stopped)".into(),
                });
            };
            match part {
                CopyPart::Features { layer, features } => {
                    if !seen.contains(&layer.name) {
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
                        seen.push(layer.name.clone());
                    }
                    insert_with_ids(&mut tx, &layer, &features).await?;
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
        for (layer, h) in &high {
            let known: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM onemap_layers WHERE name = $1")
                    .bind(layer)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::db("looking up a layer"))?;
            if known.is_some() && *h > 0 {
                sqlx::query(&format!(
                    "SELECT setval(pg_get_serial_sequence('\"{layer}\"', 'fid'), $1)"
                ))
                .bind(*h)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db(format!("continuing the ids of {layer}")))?;
            }
        }
        log::raise_head(&mut tx).await?;
        tx.commit()
            .await
            .map_err(StoreError::db("committing the copy"))?;
        Ok(done)
    }

    async fn prepare(&self, layers: &[Arc<LayerDef>]) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::db("starting a transaction"))?;
        // Nodes starting together prepare one at a time (CREATE … IF NOT
        // EXISTS is not safe against a concurrent create).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('onemap prepare', 7))")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::db("locking the schema"))?;
        for layer in layers {
            schema::ensure_layer(&mut tx, layer).await?;
        }
        tx.commit()
            .await
            .map_err(StoreError::db("committing the schema"))
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
        source: &ImportSource,
    ) -> Result<(Written, bool), StoreError> {
        self.insert_keyed(layer, features, actor, key, Some(source))
            .await
    }

    async fn import_stream(
        &self,
        layer: &LayerDef,
        mut batches: mpsc::Receiver<ImportBatch>,
        actor: &str,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<Written, StoreError> {
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
                continue;
            }
            bbox = super::bbox_union(
                std::iter::once(bbox).chain(valid.iter().map(|f| entry::envelope(&f.geometry))),
            );
            ids.extend(insert_rows(&mut tx, layer, &valid).await?);
            progress(ids.len());
        };
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
        let count = ids.len();
        Self::finish(
            tx,
            None,
            layer,
            Entry {
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
        match Self::read_one(&mut conn, layer, id, false).await {
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
        // As in the GeoPackage: the reader runs in a task of its own, so
        // that its panic ends the stream in an error, never as a short page.
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
        // From the coordinates, not `ST_Extent`: that reads the geometries'
        // cached boxes, which PostGIS rounds outward to single precision.
        let row = sqlx::query(&format!(
            "SELECT min(ST_XMin(\"{GEOM}\")), min(ST_YMin(\"{GEOM}\")), max(ST_XMax(\"{GEOM}\")), \
             max(ST_YMax(\"{GEOM}\")) FROM \"{}\"",
            layer.name
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
        let points = points_only(layer);
        if let Some(exact) = query.filter.as_ref().filter(|e| !sql::is_exact(e, points)) {
            // One unordered pass over the envelope's candidates, each
            // tested exactly: paging them by id in chunks re-ran the index
            // scan and its sort per chunk (a dense box of 20,000 points
            // cost 40 scans).
            let mut conn = self.conn().await?;
            Self::check_layer(&mut conn, layer).await?;
            let mut binds = Vec::new();
            let sql = format!(
                "{} WHERE {}",
                Self::select_sql(layer),
                sql::condition(exact, points, &mut binds)
            );
            let mut rows = bind_all(sqlx::query(&sql), binds).fetch(&mut *conn);
            let mut n = 0;
            while let Some(row) = rows
                .try_next()
                .await
                .map_err(StoreError::db(format!("counting {}", layer.name)))?
            {
                // A row that cannot be read is not counted (as the stream
                // reports and skips it).
                if read_feature(layer, &row).is_ok_and(|f| exact.matches(&f)) {
                    n += 1;
                }
            }
            return Ok(n);
        }
        let mut conn = self.conn().await?;
        Self::check_layer(&mut conn, layer).await?;
        let mut binds = Vec::new();
        let condition = match &query.filter {
            Some(e) => format!(" WHERE {}", sql::condition(e, points, &mut binds)),
            None => String::new(),
        };
        let sql = format!("SELECT count(*) FROM \"{}\"{condition}", layer.name);
        let n: i64 = bind_all(sqlx::query(&sql), binds)
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::db(format!("counting {}", layer.name)))?
            .get(0);
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
            .ok_or_else(|| StoreError::Interrupted {
                context: format!("validating {} {id}", layer.name),
            })?;
        f.id = Some(id);
        let mut tx = self.begin_write(layer).await?;
        let Some(current) = Self::current(&mut tx, layer, id, if_match).await? else {
            return Ok(None);
        };
        update_row(&mut tx, layer, id, &f).await?;
        Self::finish(
            tx,
            None,
            layer,
            Entry {
                layer: &layer.name,
                actor,
                op,
                ids: vec![id],
                bbox_before: entry::envelope(&current.geometry),
                bbox_after: entry::envelope(&f.geometry),
                geometry_before: Some(Value::Array(vec![entry::geometry_json(&current.geometry)])),
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
        let mut tx = self.begin_write(layer).await?;
        let Some(current) = Self::current(&mut tx, layer, id, if_match).await? else {
            return Ok(None);
        };
        sqlx::query(&format!("DELETE FROM \"{}\" WHERE fid = $1", layer.name))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::db(format!("deleting {} {id}", layer.name)))?;
        Self::finish(
            tx,
            None,
            layer,
            Entry {
                layer: &layer.name,
                actor,
                op: Op::Delete,
                ids: vec![id],
                bbox_before: entry::envelope(&current.geometry),
                bbox_after: None,
                geometry_before: Some(Value::Array(vec![entry::geometry_json(&current.geometry)])),
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
        let pool = self.pool.clone();
        let actor = actor.to_owned();
        // In a task of its own: a caller that goes away mid-edit must not
        // cut the transaction between its statements (it would be rolled
        // back, but only when its connection is next used).
        tokio::spawn(async move {
            let mut tx = pool
                .begin()
                .await
                .map_err(StoreError::db("starting a transaction"))?;
            let written = Self::edit_in(&mut tx, edits, &actor, action).await?;
            if written.is_some() {
                tx.commit()
                    .await
                    .map_err(StoreError::db("committing an edit"))?;
            }
            Ok(written)
        })
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::Interrupted {
                context: format!("an edit ({e})"),
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

    fn serves_tiles(&self) -> bool {
        true
    }

    async fn lay_out(&self, catalog: &crate::layers::Catalog) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        for layer in catalog.layers() {
            let t = &layer.name;
            sqlx::query(&format!(
                "CLUSTER \"{t}\" USING \"{t}_{}_gist\"",
                schema::GEOM
            ))
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db(format!("laying out {t}")))?;
            sqlx::query(&format!("ANALYZE \"{t}\""))
                .execute(&mut *conn)
                .await
                .map_err(StoreError::db(format!("analysing {t}")))?;
        }
        Ok(())
    }

    async fn tile_grid(
        &self,
        layer: &LayerDef,
        grid: &super::TileGrid,
        filter: Option<&crate::filter::Expr>,
    ) -> Result<Vec<super::GridCell>, StoreError> {
        let mut binds = Vec::new();
        let p = |b: Bind, binds: &mut Vec<Bind>| sql::param(binds, b);
        let [w, s, e, n] = grid.lonlat.map(|v| p(Bind::Real(v), &mut binds));
        let (min_x, max_y, unit, cell) = (
            p(Bind::Real(grid.min_x), &mut binds),
            p(Bind::Real(grid.max_y), &mut binds),
            p(Bind::Real(grid.unit), &mut binds),
            p(Bind::Real(grid.cell), &mut binds),
        );
        let last = p(Bind::Integer(i64::from(grid.side - 1)), &mut binds);
        let condition = filter
            .map(|f| format!(" AND {}", sql::condition(f, points_only(layer), &mut binds)))
            .unwrap_or_default();
        // Web Mercator as the index computes it (`index::mercator`), so a
        // point lands in the same cell either way.
        let sql = format!(
            "SELECT gx, gy, count(*), sum(tx), sum(ty), min(fid), bool_and(point) FROM (                SELECT fid, tx, ty, point,                  least(greatest(floor(tx / {cell}) + 1, 0), {last})::int AS gx,                  least(greatest(floor(ty / {cell}) + 1, 0), {last})::int AS gy                FROM (SELECT fid, GeometryType(\"{GEOM}\") = 'POINT' AS point,                    (6378137.0 * radians(ST_X(ST_PointOnSurface(\"{GEOM}\"))) - {min_x}) / {unit} AS tx,                    ({max_y} - 6378137.0 * ln(tan(pi() / 4 + radians(least(greatest(ST_Y(ST_PointOnSurface(\"{GEOM}\")), -85.05112877980659), 85.05112877980659)) / 2))) / {unit} AS ty                  FROM \"{t}\" WHERE \"{GEOM}\" && ST_MakeEnvelope({w}, {s}, {e}, {n}, 4326){condition}) a              ) b GROUP BY gx, gy",
            t = layer.name
        );
        let mut conn = self.conn().await?;
        let rows = bind_all(sqlx::query(&sql), binds)
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::db(format!("summing a tile of {}", layer.name)))?;
        rows.iter()
            .map(|r| {
                let get = |e| StoreError::db(format!("summing a tile of {}", layer.name))(e);
                Ok(super::GridCell {
                    gx: r.try_get(0).map_err(&get)?,
                    gy: r.try_get(1).map_err(&get)?,
                    n: u64::try_from(r.try_get::<i64, _>(2).map_err(&get)?).unwrap_or(0),
                    sx: r.try_get(3).map_err(&get)?,
                    sy: r.try_get(4).map_err(&get)?,
                    one: r.try_get(5).map_err(&get)?,
                    points_only: r
                        .try_get::<Option<bool>, _>(6)
                        .map_err(get)?
                        .unwrap_or(false),
                })
            })
            .collect()
    }

    async fn tile_mvt(
        &self,
        layer: &LayerDef,
        (z, x, y): (u8, u32, u32),
        columns: &[&str],
        filter: Option<&crate::filter::Expr>,
    ) -> Result<Vec<u8>, StoreError> {
        let mut binds = Vec::new();
        let (pz, px, py) = (
            sql::param(&mut binds, Bind::Integer(i64::from(z))),
            sql::param(&mut binds, Bind::Integer(i64::from(x))),
            sql::param(&mut binds, Bind::Integer(i64::from(y))),
        );
        let condition = filter
            .map(|f| format!(" AND {}", sql::condition(f, points_only(layer), &mut binds)))
            .unwrap_or_default();
        let props: String = columns
            .iter()
            .filter(|c| layer.property(c).is_some())
            .map(|c| format!(", \"{c}\""))
            .collect();
        // The envelope in WGS84 for the index, buffered like the tile (64
        // of 4096 units each side).
        let sql = format!(
            "WITH env AS (SELECT ST_TileEnvelope({pz}::int, {px}::int, {py}::int) AS m),              box AS (SELECT ST_Transform(ST_Expand(m, (ST_XMax(m) - ST_XMin(m)) * 64.0 / 4096.0), 4326) AS b FROM env)              SELECT ST_AsMVT(q, '{t}', 4096, 'g', 'onemap_fid') FROM (                SELECT fid AS onemap_fid, fid AS id{props},                  ST_AsMVTGeom(ST_Transform(\"{GEOM}\", 3857), env.m, 4096, 64, true) AS g                FROM \"{t}\", env, box WHERE \"{GEOM}\" && box.b{condition}              ) q WHERE q.g IS NOT NULL",
            t = layer.name
        );
        let mut conn = self.conn().await?;
        let row = bind_all(sqlx::query(&sql), binds)
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::db(format!("cutting a tile of {}", layer.name)))?;
        let bytes: Option<Vec<u8>> = row
            .try_get(0)
            .map_err(StoreError::db(format!("cutting a tile of {}", layer.name)))?;
        Ok(bytes.unwrap_or_default())
    }

    fn listen(&self, wake: Arc<dyn Fn(i64) + Send + Sync>) {
        let (pool, closed) = (self.pool.clone(), self.closed.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = listen_on(pool, wake) => {}
                () = closed.cancelled() => {}
            }
        });
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT seq FROM onemap_log_head")
            .execute(&self.health)
            .await
            .map_err(StoreError::db("pinging the database"))?;
        Ok(())
    }

    async fn close(&self) {
        self.closed.cancel();
        self.health.close().await;
        self.pool.close().await;
    }
}
