//! Where features live. Handlers see only the [`Store`] trait; each backend
//! is one folder (`gpkg/` today, `postgis/` for multi-node sites).

pub mod copy;
mod entry;
mod error;
pub mod gpkg;
pub mod postgis;

use std::{pin::Pin, sync::Arc};

use async_trait::async_trait;
use futures_util::{Stream, TryStreamExt};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    filter::{Expr, Shape},
    layers::{Catalog, Feature, LayerDef, Role, ValidationErrors},
};

pub use error::StoreError;

/// What part of a layer to read, in what order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// Only features this filter matches (exactly, spatial tests included).
    pub filter: Option<Expr>,
    /// Order by these properties, then by id.
    pub sort: Vec<SortKey>,
    /// At most this many features; `None` for all.
    pub limit: Option<u64>,
    /// Skip this many features of the ordered result.
    pub offset: u64,
}

impl Query {
    /// Features meeting the WGS84 box `[min_lon, min_lat, max_lon, max_lat]`.
    pub fn bbox(b: [f64; 4]) -> Self {
        let rect = geo::Rect::new(
            geo::coord! { x: b[0], y: b[1] },
            geo::coord! { x: b[2], y: b[3] },
        );
        Self {
            filter: Some(Expr::Intersects(Shape::new(rect.to_polygon().into()))),
            ..Self::default()
        }
    }
}

/// One sort criterion: a schema property or `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub property: String,
    pub descending: bool,
}

/// What a committed write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Create,
    Replace,
    Update,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Replace => "replace",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "create" => Op::Create,
            "replace" => Op::Replace,
            "update" => Op::Update,
            "delete" => Op::Delete,
            _ => return None,
        })
    }
}

/// One committed write, as the change log keeps it and the event stream
/// publishes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Position in the log: increasing, gap-free per store, the SSE event id.
    pub seq: i64,
    /// Commit time, RFC 3339 UTC.
    pub at: String,
    pub actor: String,
    pub layer: String,
    pub op: Op,
    /// The features written.
    pub ids: Vec<i64>,
    /// WGS84 `[min_lon, min_lat, max_lon, max_lat]` of what was there before.
    pub bbox_before: Option<[f64; 4]>,
    /// … and of what is there after.
    pub bbox_after: Option<[f64; 4]>,
    /// The other layers the same transaction wrote (a dispatch action
    /// writes a team and its incident as one change).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Touched>,
    /// What a dispatcher did (`{"kind": "assignment.create",
    /// "incident_id": 3, "team_id": 12}`); `None` for plain edits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Value>,
}

impl Change {
    /// Every layer the change wrote, its own first.
    pub fn layers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.layer.as_str()).chain(self.also.iter().map(|t| t.layer.as_str()))
    }
}

/// Features of one more layer that a change wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Touched {
    pub layer: String,
    pub ids: Vec<i64>,
    pub bbox_before: Option<[f64; 4]>,
    pub bbox_after: Option<[f64; 4]>,
    /// The properties before and after, one per id (audit trail only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// The geometries before, one per id (audit trail only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geometry_before: Option<Value>,
}

impl Touched {
    /// What events carry: which features, not their images.
    pub fn without_images(self) -> Self {
        Self {
            before: None,
            after: None,
            geometry_before: None,
            ..self
        }
    }
}

/// Why an [`Edit`] declined to change its feature: the caller's own error
/// (a team that is not standby, a depot short of stock), handed back
/// through [`StoreError::Refused`] for the caller to downcast.
pub type Refusal = Box<dyn std::error::Error + Send + Sync>;

/// The change an [`Edit`] makes to its feature, or its refusal.
pub type Apply = Box<dyn FnOnce(&mut Feature) -> Result<(), Refusal> + Send>;

/// A change to one stored feature decided on the feature as it stands
/// inside the write's transaction, so that a condition it checks (a team
/// still standby, stock still enough) cannot be overtaken by another
/// writer, on this process or on any other sharing the store.
pub struct Edit {
    pub layer: Arc<LayerDef>,
    pub id: i64,
    /// Changes the feature in place, or refuses; leaving it unchanged
    /// writes nothing for it.
    pub apply: Apply,
}

impl Edit {
    pub fn new(
        layer: &Arc<LayerDef>,
        id: i64,
        apply: impl FnOnce(&mut Feature) -> Result<(), Refusal> + Send + 'static,
    ) -> Self {
        Self {
            layer: Arc::clone(layer),
            id,
            apply: Box::new(apply),
        }
    }
}

impl std::fmt::Debug for Edit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Edit({} {})", self.layer.name, self.id)
    }
}

/// Where an import's features came from, for its summary change.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImportSource {
    /// `sha256:` and the hex digest of the file's bytes.
    pub digest: String,
    /// `geojson`, `csv`, `gpkg`, `zip`.
    pub format: String,
    /// The file's name, when the importer gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// What [`Store::import_stream`] reads.
#[derive(Debug)]
pub enum ImportBatch {
    /// Features of the file (without ids), each with its number in the
    /// file and its line where the file has lines; and the features of
    /// that stretch the reader could not read.
    Features {
        features: Vec<Feature>,
        indices: Vec<usize>,
        lines: Vec<Option<usize>>,
        unreadable: Vec<crate::layers::Violation>,
    },
    /// The file ended: what it was.
    End(ImportSource),
    /// The file could not be read on: nothing is written.
    Failed(StoreError),
}

impl ImportSource {
    /// The summary an import's change carries in its `action`.
    pub fn action(&self, count: usize) -> Value {
        let mut v = serde_json::json!({ "kind": IMPORT_ACTION, "count": count });
        if let (Some(obj), Ok(Value::Object(me))) = (v.as_object_mut(), serde_json::to_value(self))
        {
            obj.extend(me);
        }
        v
    }
}

/// The `action.kind` of an import's change.
pub const IMPORT_ACTION: &str = "import";

impl Change {
    /// Whether this is a bulk import's summary change.
    pub fn is_import(&self) -> bool {
        self.action
            .as_ref()
            .and_then(|a| a.get("kind"))
            .and_then(Value::as_str)
            == Some(IMPORT_ACTION)
    }
}

/// A change with the properties before and after: the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    #[serde(flatten)]
    pub change: Change,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// The geometries replaced or deleted (GeoJSON, one per id); absent
    /// for creations and for changes logged before onemap kept them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geometry_before: Option<Value>,
}

/// Which audit entries to read; newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    pub layer: Option<String>,
    pub actor: Option<String>,
    pub feature: Option<i64>,
    /// RFC 3339 bounds on the commit time, inclusive.
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: u64,
}

/// A write's result: the ids written and the change logged with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub ids: Vec<i64>,
    pub change: Change,
}

/// An API token as stored (its secret is never kept, only a digest).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A planning scenario as stored: a run's inputs and results (JSON) under
/// a name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioRecord {
    pub id: i64,
    pub name: String,
    pub actor: String,
    pub created_at: String,
    pub inputs: Value,
    pub results: Value,
}

/// An API token as `onemap copy` moves it: with its digest, which never
/// leaves a store otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredToken {
    pub record: TokenRecord,
    pub digest: String,
}

/// An idempotency key as stored: the write it made once.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKey {
    pub key: String,
    pub layer: String,
    pub seq: i64,
    pub at: String,
}

/// Everything a store keeps besides the features and the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Records {
    pub tokens: Vec<StoredToken>,
    pub keys: Vec<StoredKey>,
    /// In full (inputs and results), by id.
    pub scenarios: Vec<ScenarioRecord>,
}

/// One part of a whole one map being copied into a store
/// ([`Store::restore`]), in the order sent.
#[derive(Debug)]
pub enum CopyPart {
    /// Features of a layer with their ids.
    Features {
        layer: Arc<LayerDef>,
        features: Vec<Feature>,
    },
    /// Log entries with their seqs and images, oldest first.
    Log(Vec<AuditEntry>),
    Records(Records),
    /// The copy is complete: commit it.
    End,
    /// The source could not be read on: nothing is written.
    Failed(StoreError),
}

/// What [`Store::restore`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Restored {
    pub features: u64,
    pub changes: u64,
    pub tokens: u64,
    pub scenarios: u64,
}

/// The highest feature id each layer has ever had, as far as the log
/// knows: a copy must not hand out again the id of a deleted feature.
pub fn logged_ids(entries: &[AuditEntry], high: &mut std::collections::BTreeMap<String, i64>) {
    for e in entries {
        let c = &e.change;
        let mut note = |layer: &str, ids: &[i64]| {
            if let Some(m) = ids.iter().max() {
                let h = high.entry(layer.to_owned()).or_insert(0);
                *h = (*h).max(*m);
            }
        };
        note(&c.layer, &c.ids);
        for t in &c.also {
            note(&t.layer, &t.ids);
        }
    }
}

/// The cluster grid of one tile, for a store that cuts tiles of a layer
/// it serves itself ([`Store::tile_grid`]): where a point lands is
/// `tx = (x - min_x) / unit`, `ty = (max_y - y) / unit` in Web Mercator, and
/// its cell `clamp(floor(t / cell) + 1, 0, side - 1)` each way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TileGrid {
    /// The buffered tile in WGS84 `[west, south, east, north]`.
    pub lonlat: [f64; 4],
    pub min_x: f64,
    pub max_y: f64,
    pub unit: f64,
    pub cell: f64,
    pub side: i32,
}

/// One occupied cell of a [`TileGrid`]: how many points, the sums of
/// their tile positions, one of their ids, and whether every feature
/// there is a point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridCell {
    pub gx: i32,
    pub gy: i32,
    pub n: u64,
    pub sx: f64,
    pub sy: f64,
    pub one: i64,
    pub points_only: bool,
}

/// The union of WGS84 boxes `[min_lon, min_lat, max_lon, max_lat]`.
pub fn bbox_union(boxes: impl IntoIterator<Item = Option<[f64; 4]>>) -> Option<[f64; 4]> {
    boxes.into_iter().flatten().reduce(|a, b| {
        [
            a[0].min(b[0]),
            a[1].min(b[1]),
            a[2].max(b[2]),
            a[3].max(b[3]),
        ]
    })
}

/// Features as they are read, for answers that must not hold a whole layer
/// in memory.
pub type FeatureStream = Pin<Box<dyn Stream<Item = Result<Feature, StoreError>> + Send>>;

/// A place to keep the one map's features.
///
/// Contract for every implementation:
/// - a write is one transaction: it stores everything or nothing;
/// - every feature written is first validated against its layer, and a batch
///   with any invalid feature is refused whole with [`StoreError::Invalid`];
/// - reads return features in ascending id order, properties normalised as
///   [`LayerDef::validate`] returns them.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Create or upgrade the storage of `layers`; idempotent.
    async fn prepare(&self, layers: &[Arc<LayerDef>]) -> Result<(), StoreError>;

    /// Add features to a layer, logging one change by `actor`; returns their
    /// new ids, in order.
    async fn insert(
        &self,
        layer: &LayerDef,
        features: &[Feature],
        actor: &str,
    ) -> Result<Written, StoreError>;

    /// A file's features added to a layer, all or nothing. Logged as one
    /// summary change, `action: {"kind": "import", "count", "digest",
    /// "format", "file"}`, without the after-image of every feature: the
    /// file is the after-image, and its digest says which file it was.
    ///
    /// With a `key`, at most once per key: when the key is already stored
    /// (a client retrying an import after a timeout), nothing is written
    /// and the first write is returned with `true`. The key is stored in
    /// the features' transaction, so concurrent tries write once. A key
    /// first used on another layer is a [`StoreError::Duplicate`].
    async fn import(
        &self,
        layer: &LayerDef,
        features: &[Feature],
        actor: &str,
        key: Option<&str>,
        source: &ImportSource,
    ) -> Result<(Written, bool), StoreError>;

    /// [`Store::import`] of features that arrive in batches: each batch is
    /// validated and written as it comes, in one transaction, so memory
    /// holds a batch, not the file. Every batch is validated even after a
    /// violation (the refusal names every distinct problem); nothing is
    /// written unless all are valid and the stream ends with
    /// [`ImportBatch::End`]. `progress` is told the features written so far.
    async fn import_stream(
        &self,
        layer: &LayerDef,
        batches: tokio::sync::mpsc::Receiver<ImportBatch>,
        actor: &str,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<Written, StoreError>;

    /// One feature by id.
    async fn feature(&self, layer: &LayerDef, id: i64) -> Result<Option<Feature>, StoreError>;

    /// Stream the features `query` selects, in order, buffering only a few.
    /// Dropping the stream stops the read. A stored row that cannot be read
    /// back is one [`StoreError::Corrupt`] item, after which the stream goes
    /// on; any other error ends it.
    fn stream(&self, layer: Arc<LayerDef>, query: Query) -> FeatureStream;

    /// The features `query` selects, collected.
    async fn features(&self, layer: &LayerDef, query: &Query) -> Result<Vec<Feature>, StoreError> {
        self.stream(Arc::new(layer.clone()), query.clone())
            .try_collect()
            .await
    }

    /// The WGS84 bounding box `[min_lon, min_lat, max_lon, max_lat]` of a
    /// layer's features; `None` when it has none.
    async fn extent(&self, layer: &LayerDef) -> Result<Option<[f64; 4]>, StoreError>;

    /// How many features `query` selects, ignoring its limit and offset.
    async fn count(&self, layer: &LayerDef, query: &Query) -> Result<u64, StoreError>;

    /// Replace feature `id` whole; `None` when there is no such feature.
    /// With `if_match`, the write happens only if the stored feature's
    /// [`Feature::etag`] still equals it, checked in the same transaction
    /// ([`StoreError::PreconditionFailed`] otherwise).
    async fn replace(
        &self,
        layer: &LayerDef,
        id: i64,
        feature: &Feature,
        op: Op,
        actor: &str,
        if_match: Option<&str>,
    ) -> Result<Option<Written>, StoreError>;

    /// Delete feature `id`; `None` when there is no such feature.
    /// `if_match` as for [`Store::replace`].
    async fn delete(
        &self,
        layer: &LayerDef,
        id: i64,
        actor: &str,
        if_match: Option<&str>,
    ) -> Result<Option<Written>, StoreError>;

    /// Apply `edits` in order in one transaction: each reads its feature as
    /// stored, lets `apply` change or refuse it, validates and writes it.
    /// A missing feature ([`StoreError::NotFound`]), a refusal
    /// ([`StoreError::Refused`]) or an invalid result writes nothing at
    /// all. What changed is logged as one change by `actor` with `action`,
    /// its `layer` the first edited one's; `None` when no edit changed
    /// anything (nothing is logged then).
    async fn edit(
        &self,
        edits: Vec<Edit>,
        actor: &str,
        action: Option<Value>,
    ) -> Result<Option<Written>, StoreError>;

    /// Changes after `seq`, oldest first, at most `limit`.
    async fn changes_since(&self, seq: i64, limit: u64) -> Result<Vec<Change>, StoreError>;

    /// The newest change's seq (0 when there is none).
    async fn last_seq(&self) -> Result<i64, StoreError>;

    /// The audit trail, newest first.
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;

    /// Keep a new token's digest under a unique name.
    async fn create_token(
        &self,
        name: &str,
        role: Role,
        digest: &str,
    ) -> Result<TokenRecord, StoreError>;

    /// The live (unrevoked) token with this digest.
    async fn token(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Every token, revoked ones included.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revoke the token called `name`; `false` when there is no live one.
    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError>;

    /// Keep a planning scenario; returns it with its new id.
    async fn save_scenario(
        &self,
        name: &str,
        actor: &str,
        inputs: &Value,
        results: &Value,
    ) -> Result<ScenarioRecord, StoreError>;

    /// One scenario.
    async fn scenario(&self, id: i64) -> Result<Option<ScenarioRecord>, StoreError>;

    /// Every scenario without its inputs and results (both `Null`),
    /// newest first, at most `limit`.
    async fn scenarios(&self, limit: u64) -> Result<Vec<ScenarioRecord>, StoreError>;

    /// The log with every column (images included), oldest first: changes
    /// after `seq`, at most `limit`. For `onemap copy`.
    async fn log_page(&self, seq: i64, limit: u64) -> Result<Vec<AuditEntry>, StoreError>;

    /// Tokens (with digests), idempotency keys and scenarios in full. For
    /// `onemap copy`.
    async fn records(&self) -> Result<Records, StoreError>;

    /// Fill this store, which must hold no feature, change, token or
    /// scenario yet, with a copy of another: features with their ids, the
    /// log with its seqs, tokens, keys and scenarios, in one transaction
    /// (all or nothing), ending at [`CopyPart::End`]. Ids and seqs handed
    /// out afterwards continue after the highest copied or logged ones.
    async fn restore(
        &self,
        parts: tokio::sync::mpsc::Receiver<CopyPart>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Restored, StoreError>;

    /// Lay the stored rows out for reading after a bulk load: on
    /// PostgreSQL each layer table in the order of its spatial index
    /// (`CLUSTER`), so a box's rows sit on few pages (items of a layer the
    /// database serves: 3.2× at 1M). It locks each table while it runs:
    /// for a load before serving (`onemap copy`), not a live store.
    async fn lay_out(&self, _catalog: &Catalog) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether this store can cut the tiles of a layer too big to hold in
    /// memory ([`Store::tile_grid`], [`Store::tile_mvt`]) and answer its
    /// items itself.
    fn serves_tiles(&self) -> bool {
        false
    }

    /// The features of `layer` in `grid`'s buffered tile that `filter`
    /// selects (its spatial tests by their boxes), summed by cluster cell.
    async fn tile_grid(
        &self,
        layer: &LayerDef,
        grid: &TileGrid,
        filter: Option<&Expr>,
    ) -> Result<Vec<GridCell>, StoreError> {
        let _ = (grid, filter);
        Err(StoreError::Unsupported {
            what: format!("tiles of {} from the store", layer.name),
        })
    }

    /// Tile z/x/y of `layer` as one MVT layer named after it (extent 4096,
    /// a 64-unit buffer), each feature with its id, an `id` property and
    /// the `columns` given; empty when nothing is there.
    async fn tile_mvt(
        &self,
        layer: &LayerDef,
        zxy: (u8, u32, u32),
        columns: &[&str],
        filter: Option<&Expr>,
    ) -> Result<Vec<u8>, StoreError> {
        let _ = (zxy, columns, filter);
        Err(StoreError::Unsupported {
            what: format!("tiles of {} from the store", layer.name),
        })
    }

    /// Call `wake` whenever a change may have been committed by someone
    /// else (another node announcing its seq, or `0` when unsure), so the
    /// feed reads the log at once rather than at its next poll. Stores
    /// without announcements rely on the poll alone.
    fn listen(&self, wake: Arc<dyn Fn(i64) + Send + Sync>) {
        let _ = wake;
    }

    /// Check that the store answers (for `/healthz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Flush and release the store; later calls fail.
    async fn close(&self);
}

/// Open the store a database URL names (`sqlite://file.gpkg` or
/// `postgres://user@host/db`).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if postgis::is_postgres_url(url) {
        Ok(Arc::new(postgis::PgStore::open(url).await?))
    } else if url.starts_with("sqlite:") || url.ends_with(".gpkg") {
        Ok(Arc::new(gpkg::GpkgStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl {
            url: url.to_owned(),
        })
    }
}

/// Validate a whole batch, collecting every violation (up to the report
/// limit) rather than stopping at the first.
/// [`validate_batch`] on a blocking thread: checking rings of many
/// vertices is CPU work (a 24,000-vertex star takes seconds) that must not
/// hold an async worker, and with it `/healthz` and every other request.
pub async fn validate_off_workers(
    layer: &LayerDef,
    features: &[Feature],
) -> Result<Vec<Feature>, StoreError> {
    let (layer, features) = (layer.clone(), features.to_vec());
    let name = layer.name.clone();
    tokio::task::spawn_blocking(move || validate_batch(&layer, &features))
        .await
        .map_err(|e| StoreError::Interrupted {
            context: format!("validating features of {name} ({e})"),
        })?
        .map_err(StoreError::from)
}

pub fn validate_batch(
    layer: &LayerDef,
    features: &[Feature],
) -> Result<Vec<Feature>, ValidationErrors> {
    let mut errors = ValidationErrors::new(&layer.name);
    let mut valid = Vec::with_capacity(features.len());
    for (i, f) in features.iter().enumerate() {
        match layer.validate(i, f) {
            Ok(f) => valid.push(f),
            Err(vs) => errors.extend(vs),
        }
    }
    if errors.is_empty() {
        Ok(valid)
    } else {
        Err(errors)
    }
}

/// Validate one batch of an [`ImportBatch::Features`] off the async
/// workers: the valid features in normal form, and the violations, each
/// with its line in the file. Shared by every store's `import_stream`.
pub async fn validate_numbered(
    layer: &LayerDef,
    features: Vec<Feature>,
    indices: Vec<usize>,
    lines: Vec<Option<usize>>,
) -> Result<(Vec<Feature>, Vec<crate::layers::Violation>), StoreError> {
    let owned = layer.clone();
    tokio::task::spawn_blocking(move || {
        let mut valid = Vec::with_capacity(features.len());
        let mut violations = Vec::new();
        for ((f, i), line) in features.iter().zip(&indices).zip(&lines) {
            match owned.validate(*i, f) {
                Ok(f) => valid.push(f),
                Err(vs) => violations.extend(vs.into_iter().map(|mut v| {
                    v.line = *line;
                    v
                })),
            }
        }
        (valid, violations)
    })
    .await
    .map_err(|e| StoreError::Interrupted {
        context: format!("validating {} ({e})", layer.name),
    })
}

/// Rows read per checkout of a pooled connection, in both stores. The
/// connection goes back to the pool between chunks, so a client reading
/// slowly holds at most a chunk and a channel of features, never a
/// connection: eight slow readers of long pages once held every
/// connection, and health, reads and writes all waited behind them.
pub const CHUNK: i64 = 500;

/// How a store reads a query's features chunk by chunk. Ordered by id
/// alone (every read of the index, most pages), each chunk starts after
/// the last id seen, an indexed seek; with other sort keys, chunks follow
/// each other by offset. A filter the SQL only approximates (`exact`) is
/// tested here, and so are the query's offset and limit.
pub struct Chunks<'a> {
    query: &'a Query,
    exact: Option<&'a Expr>,
    by_id: bool,
    /// The OFFSET of the next chunk's SQL.
    pub sql_offset: i64,
    sql_remaining: Option<i64>,
    /// The id the next chunk starts after.
    pub after: Option<i64>,
    skipped: u64,
    sent: u64,
}

impl<'a> Chunks<'a> {
    pub fn new(query: &'a Query, exact: Option<&'a Expr>) -> Self {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let (sql_offset, sql_remaining) = match exact {
            None => (clamp(query.offset), query.limit.map(clamp)),
            Some(_) => (0, None),
        };
        Self {
            query,
            exact,
            by_id: query.sort.is_empty(),
            sql_offset,
            sql_remaining,
            after: None,
            skipped: 0,
            sent: 0,
        }
    }

    /// The LIMIT of the next chunk's SQL; `None` once the query is done.
    pub fn take(&self) -> Option<i64> {
        let take = self.sql_remaining.map_or(CHUNK, |r| r.min(CHUNK));
        (take > 0).then_some(take)
    }

    /// Hand one row on (its id, and the feature read from it or why it
    /// could not be read: that is reported and the read goes on, so one
    /// row another tool wrote badly does not stop a start-up load). False
    /// when the read is over: the limit is reached or the reader left.
    pub async fn send(
        &mut self,
        id: Option<i64>,
        read: Result<Feature, StoreError>,
        tx: &tokio::sync::mpsc::Sender<Result<Feature, StoreError>>,
    ) -> bool {
        self.after = id.or(self.after);
        let f = match read {
            Ok(f) => f,
            Err(e) => return tx.send(Err(e)).await.is_ok(),
        };
        if let Some(e) = self.exact {
            if !e.matches(&f) {
                return true;
            }
            if self.skipped < self.query.offset {
                self.skipped += 1;
                return true;
            }
            if self.query.limit.is_some_and(|l| self.sent >= l) {
                return false;
            }
        }
        if tx.send(Ok(f)).await.is_err() {
            // The reader went away (a client disconnected): stop.
            return false;
        }
        self.sent += 1;
        true
    }

    /// After a chunk of `n` rows read with LIMIT `take`: whether another
    /// chunk follows.
    pub fn next_chunk(&mut self, n: i64, take: i64) -> bool {
        if n < take {
            return false;
        }
        if self.by_id {
            self.sql_offset = 0;
        } else {
            self.sql_offset = self.sql_offset.saturating_add(n);
            self.after = None;
        }
        if let Some(r) = self.sql_remaining.as_mut() {
            *r -= n;
        }
        true
    }
}

/// True when no layer of `catalog` holds a feature.
pub async fn is_empty(store: &dyn Store, catalog: &Catalog) -> Result<bool, StoreError> {
    for layer in catalog.layers() {
        if store.count(layer, &Query::default()).await? > 0 {
            return Ok(false);
        }
    }
    Ok(true)
}
