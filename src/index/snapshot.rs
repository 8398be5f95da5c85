//! The index written next to the GeoPackage (`<file>.gpkg.index`), so a
//! start-up reads one file of flat columns instead of every row through
//! SQL: a million points load in a fraction of a second instead of tens.
//!
//! A snapshot records the change-log position it holds (its sequence
//! number and that change's commit time) and a fingerprint of each layer's
//! schema. It is used only when the store's log still has that change with
//! that time (the same history: not another file, not a log rewritten by
//! hand) and the schemas are the same; the changes committed since (by
//! onemap, or by QGIS through the layer triggers) are then applied by the
//! change feed as on any other day. A snapshot whose bytes do not match its
//! checksum, of another format or build, or of another history is ignored,
//! and the index is read from the store and the snapshot written again.

use std::{collections::HashMap, path::Path, path::PathBuf, sync::Arc};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{Rows, Slot, SpatialIndex};
use crate::{
    layers::{Catalog, LayerDef},
    store::{Store, StoreError},
};

const MAGIC: &[u8; 8] = b"ONEMAPIX";
/// Bumped with every change to the layout below.
const FORMAT: u32 = 2;

/// Where the snapshot of a store lives: beside a GeoPackage file; none for
/// other stores.
pub fn path_for(database: &str) -> Option<PathBuf> {
    let file = database
        .strip_prefix("sqlite://")
        .or_else(|| database.strip_prefix("sqlite:"))?;
    let file = file.split('?').next().unwrap_or(file);
    if file.is_empty() || file == ":memory:" {
        return None;
    }
    Some(PathBuf::from(format!("{file}.index")))
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Header {
    build: String,
    seq: i64,
    /// Commit time of change `seq` (`None` when the log was empty).
    at: Option<String>,
    layers: Vec<LayerHeader>,
    /// The rows the index left out when it was read from the store.
    skipped: std::collections::BTreeMap<String, super::SkippedRows>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct LayerHeader {
    name: String,
    fingerprint: String,
    rows: usize,
}

fn fingerprint(layer: &LayerDef) -> String {
    let schema = serde_json::to_string(layer).unwrap_or_default();
    super::super::formats::digest(schema.as_bytes())
}

/// Why a snapshot was not used (logged; the index is then read whole).
#[derive(Debug, thiserror::Error)]
pub enum Stale {
    #[error("no snapshot")]
    Missing,
    #[error("unreadable: {0}")]
    Io(String),
    #[error("damaged: {0}")]
    Damaged(String),
    #[error("of another build or format")]
    OtherBuild,
    #[error("the layers' schemas changed")]
    OtherSchema,
    #[error("the GeoPackage's history differs (replaced, or its log rewritten)")]
    OtherHistory,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Flat little-endian encoding of the columns.
#[derive(Default)]
pub(super) struct Out {
    pub buf: Vec<u8>,
}

impl Out {
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.buf.extend_from_slice(b);
    }
    pub fn i64s(&mut self, v: &[i64]) {
        self.len(v.len());
        self.buf.reserve(v.len() * 8);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub fn u64s(&mut self, v: &[u64]) {
        self.len(v.len());
        self.buf.reserve(v.len() * 8);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub fn u32s(&mut self, v: &[u32]) {
        self.len(v.len());
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub fn f64s(&mut self, v: &[f64]) {
        self.len(v.len());
        self.buf.reserve(v.len() * 8);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub fn json<T: Serialize>(&mut self, v: &T) {
        let text = serde_json::to_vec(v).unwrap_or_default();
        self.bytes(&text);
    }
}

/// Reading [`Out`]'s encoding back; every length is checked against what
/// is left, so a damaged file is an error, never a huge allocation.
pub(super) struct In<'a> {
    pub buf: &'a [u8],
}

pub(super) type Decoded<T> = Result<T, String>;

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Decoded<&'a [u8]> {
        if n > self.buf.len() {
            return Err(format!("{n} bytes wanted, {} left", self.buf.len()));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    pub fn u32(&mut self) -> Decoded<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Decoded<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub fn len(&mut self, width: usize) -> Decoded<usize> {
        let n = usize::try_from(self.u64()?).map_err(|e| e.to_string())?;
        if n.saturating_mul(width) > self.buf.len() {
            return Err(format!("a length of {n} past the end"));
        }
        Ok(n)
    }
    pub fn bytes(&mut self) -> Decoded<&'a [u8]> {
        let n = self.len(1)?;
        self.take(n)
    }
    fn words<const W: usize, T>(&mut self, f: impl Fn([u8; W]) -> T) -> Decoded<Vec<T>> {
        let n = self.len(W)?;
        let raw = self.take(n * W)?;
        Ok(raw
            .chunks_exact(W)
            .map(|c| {
                let mut a = [0u8; W];
                a.copy_from_slice(c);
                f(a)
            })
            .collect())
    }
    pub fn i64s(&mut self) -> Decoded<Vec<i64>> {
        self.words::<8, _>(i64::from_le_bytes)
    }
    pub fn u64s(&mut self) -> Decoded<Vec<u64>> {
        self.words::<8, _>(u64::from_le_bytes)
    }
    pub fn u32s(&mut self) -> Decoded<Vec<u32>> {
        self.words::<4, _>(u32::from_le_bytes)
    }
    pub fn f64s(&mut self) -> Decoded<Vec<f64>> {
        self.words::<8, _>(f64::from_le_bytes)
    }
    pub fn json<T: for<'de> Deserialize<'de>>(&mut self) -> Decoded<T> {
        serde_json::from_slice(self.bytes()?).map_err(|e| e.to_string())
    }
}

fn build() -> String {
    format!("onemap {} format {FORMAT}", env!("CARGO_PKG_VERSION"))
}

/// The change at `seq` as the store's log has it: its commit time.
async fn commit_time(store: &dyn Store, seq: i64) -> Result<Option<String>, StoreError> {
    if seq <= 0 {
        return Ok(None);
    }
    let change = store.changes_since(seq - 1, 1).await?;
    Ok(change.into_iter().find(|c| c.seq == seq).map(|c| c.at))
}

impl SpatialIndex {
    /// Write the index to `path` as of change `seq` (the caller read `seq`
    /// before the index could move past it: changes after it are applied
    /// again at the next start, which is harmless). Written to a temporary
    /// file and renamed, so a crash leaves the old snapshot or the new one.
    pub async fn write_snapshot(
        self: Arc<Self>,
        store: &dyn Store,
        catalog: Arc<Catalog>,
        seq: i64,
        path: &Path,
    ) -> Result<usize, Stale> {
        let at = commit_time(store, seq).await?;
        let (path, tmp) = (path.to_path_buf(), path.with_extension("index.tmp"));
        // Encoding, hashing and writing a gigabyte are blocking work.
        tokio::task::spawn_blocking(move || {
            let bytes = self.encode(&catalog, seq, at);
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &path)?;
            Ok::<_, std::io::Error>(bytes.len())
        })
        .await
        .map_err(|e| Stale::Io(e.to_string()))?
        .map_err(|e| Stale::Io(e.to_string()))
    }

    /// The snapshot's bytes: the layers first, straight into the buffer (a
    /// second copy of a ten-million-point body was a gigabyte); the header,
    /// which counts them, after them; the checksum last.
    fn encode(&self, catalog: &Catalog, seq: i64, at: Option<String>) -> Vec<u8> {
        let mut layers = Vec::new();
        let mut out = Out::default();
        out.buf.extend_from_slice(MAGIC);
        out.u32(FORMAT);
        for layer in catalog.layers() {
            let Some(slot) = self.layers.get(&layer.name) else {
                continue;
            };
            let rows = slot.read();
            layers.push(LayerHeader {
                name: layer.name.clone(),
                fingerprint: fingerprint(layer),
                rows: rows.len(),
            });
            rows.encode(&mut out);
        }
        let header = Header {
            build: build(),
            seq,
            at,
            layers,
            skipped: self.skipped(),
        };
        let start = out.buf.len();
        out.json(&header);
        let header_len = out.buf.len() - start;
        out.len(header_len);
        let sum = sha2::Sha256::digest(&out.buf);
        out.buf.extend_from_slice(&sum);
        out.buf
    }

    /// The index from the snapshot at `path`, and the change it is as of,
    /// when the snapshot belongs to this store's history and schemas.
    pub async fn read_snapshot(
        store: &dyn Store,
        catalog: &Catalog,
        path: &Path,
    ) -> Result<(Self, i64), Stale> {
        // Reading, hashing and decoding a gigabyte are blocking work; only
        // the history check below asks the store.
        let (owned, layers) = (path.to_path_buf(), catalog.layers().to_vec());
        let (index, seq, at) =
            tokio::task::spawn_blocking(move || Self::decode_file(&owned, &layers))
                .await
                .map_err(|e| Stale::Io(e.to_string()))??;
        // The same history: the log has change `seq` with the same time,
        // and nothing was taken out before it.
        let last = store.last_seq().await?;
        if seq > last || commit_time(store, seq).await? != at {
            return Err(Stale::OtherHistory);
        }
        Ok((index, seq))
    }

    /// The index a snapshot file holds, with its log position and that
    /// change's time, when it is whole and of this build and these schemas.
    fn decode_file(
        path: &Path,
        catalog: &[Arc<LayerDef>],
    ) -> Result<(Self, i64, Option<String>), Stale> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Stale::Missing,
            _ => Stale::Io(e.to_string()),
        })?;
        if bytes.len() < MAGIC.len() + 4 + 32 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(Stale::Damaged("not an onemap index snapshot".into()));
        }
        let (content, sum) = bytes.split_at(bytes.len() - 32);
        if sha2::Sha256::digest(content).as_slice() != sum {
            return Err(Stale::Damaged("checksum mismatch".into()));
        }
        let mut input = In {
            buf: &content[MAGIC.len()..],
        };
        if input.u32().map_err(Stale::Damaged)? != FORMAT {
            return Err(Stale::OtherBuild);
        }
        // The header closes the file: its length is the last 8 bytes.
        let (rest, tail) = input.buf.split_at(input.buf.len().saturating_sub(8));
        let header_len = In { buf: tail }.len(0).map_err(Stale::Damaged)?;
        if header_len > rest.len() {
            return Err(Stale::Damaged("a header longer than the file".into()));
        }
        let (layers_bytes, header_bytes) = rest.split_at(rest.len() - header_len);
        let header: Header = In { buf: header_bytes }.json().map_err(Stale::Damaged)?;
        input.buf = layers_bytes;
        if header.build != build() {
            return Err(Stale::OtherBuild);
        }
        let schemas: Vec<(String, String)> = catalog
            .iter()
            .map(|l| (l.name.clone(), fingerprint(l)))
            .collect();
        let recorded: Vec<(String, String)> = header
            .layers
            .iter()
            .map(|l| (l.name.clone(), l.fingerprint.clone()))
            .collect();
        if schemas != recorded {
            return Err(Stale::OtherSchema);
        }
        let mut layers = HashMap::new();
        for (layer, h) in catalog.iter().zip(&header.layers) {
            let rows = Rows::decode(layer, &mut input).map_err(Stale::Damaged)?;
            if rows.len() != h.rows {
                return Err(Stale::Damaged(format!("{}: row count", layer.name)));
            }
            layers.insert(layer.name.clone(), Slot::new(rows));
        }
        if !input.buf.is_empty() {
            return Err(Stale::Damaged("bytes past the last layer".into()));
        }
        Ok((
            Self {
                layers,
                skipped: std::sync::Mutex::new(header.skipped),
            },
            header.seq,
            header.at,
        ))
    }
}
