//! GeoJSON read as a stream of bounded batches: a FeatureCollection's
//! `features` array is walked one feature at a time (serde's sequence
//! access, never the whole document in memory), newline-delimited GeoJSON
//! line by line. The file's SHA-256 is computed from the same bytes as they
//! are read, so a large file is read once.
//!
//! Runs on a blocking thread and hands each batch to the writer through a
//! bounded channel: memory holds a couple of batches, whatever the file's
//! size.

use std::{
    fmt,
    io::{BufRead, BufReader, Read},
    path::Path,
};

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sha2::Digest;
use tokio::sync::mpsc;

use crate::{
    crs::Crs,
    layers::{Feature, Violation},
};

/// Features read per batch.
pub const BATCH: usize = 10_000;
/// A first line longer than this is not one feature of newline-delimited
/// GeoJSON: the file is read as one document.
const MAX_FIRST_LINE: usize = 1 << 20;

/// One batch: features with their numbers in the file (from 0), and the
/// features of that stretch that could not be read.
#[derive(Debug, Default)]
pub struct Batch {
    pub features: Vec<Feature>,
    pub indices: Vec<usize>,
    pub lines: Vec<Option<usize>>,
    pub unreadable: Vec<Violation>,
}

impl Batch {
    fn len(&self) -> usize {
        self.features.len() + self.unreadable.len()
    }
}

/// What the reader sends.
#[derive(Debug)]
pub enum Message {
    Batch(Batch),
    /// The end of the file: its digest and how many features it had.
    End {
        digest: String,
        count: usize,
    },
    /// The file cannot be read (I/O, or not JSON where a document must be).
    Failed(String),
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: sha2::Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

struct Sink<'a> {
    tx: &'a mpsc::Sender<Message>,
    crs: Crs,
    batch: Batch,
    next: usize,
    closed: bool,
}

impl Sink<'_> {
    fn take(&mut self, raw: Result<geojson::Feature, String>, line: Option<usize>) {
        let index = self.next;
        self.next += 1;
        match super::geojson::feature_of(raw, index, line, self.crs) {
            Ok(f) => {
                self.batch.features.push(f);
                self.batch.indices.push(index);
                self.batch.lines.push(line);
            }
            Err(v) => self.batch.unreadable.push(v),
        }
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.batch.len() > 0 && !self.closed {
            let batch = std::mem::take(&mut self.batch);
            // The writer stopped listening (it failed): stop reading.
            self.closed = self.tx.blocking_send(Message::Batch(batch)).is_err();
        }
    }
}

/// Read `path` and send its features in batches to `tx`, then `End`.
pub fn read(path: &Path, crs: Crs, tx: mpsc::Sender<Message>) {
    let failed = |tx: &mpsc::Sender<Message>, why: String| {
        let _ = tx.blocking_send(Message::Failed(why));
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return failed(&tx, e.to_string()),
    };
    let mut reader = BufReader::with_capacity(
        1 << 16,
        Hashing {
            inner: file,
            hasher: sha2::Sha256::new(),
        },
    );
    let mut sink = Sink {
        tx: &tx,
        crs,
        batch: Batch::default(),
        next: 0,
        closed: false,
    };
    let outcome = match first_line_is_a_feature(&mut reader) {
        Ok(Some((first, number))) => lines(&mut reader, first, number, &mut sink),
        Ok(None) => document(&mut reader, &mut sink),
        Err(e) => Err(e),
    };
    if let Err(why) = outcome {
        return failed(&tx, why);
    }
    sink.flush();
    if sink.closed {
        return;
    }
    // The digest covers every byte: read what the parser left (trailing
    // whitespace).
    let mut rest = Vec::new();
    if let Err(e) = reader.read_to_end(&mut rest) {
        return failed(&tx, e.to_string());
    }
    let count = sink.next;
    let digest = super::hex_digest(reader.into_inner().hasher.finalize().as_slice());
    let _ = tx.blocking_send(Message::End { digest, count });
}

/// Peek at the first non-empty line: when it is a whole Feature of its own
/// the file is newline-delimited, and the line is returned (consumed).
fn first_line_is_a_feature(r: &mut impl BufRead) -> Result<Option<(String, usize)>, String> {
    // Look without consuming: the buffer holds the start of the file.
    let head = r.fill_buf().map_err(|e| e.to_string())?;
    let start = head.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Ok(None);
    };
    let end = head[start..].iter().position(|b| *b == b'\n');
    let Some(end) = end else {
        // No newline in the first 64 KiB: one document.
        return Ok(None);
    };
    let line = &head[start..start + end];
    let is_feature = line.len() < MAX_FIRST_LINE
        && serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .is_some_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("Feature"));
    if !is_feature {
        return Ok(None);
    }
    // Consume up to and including that line, counting the blank ones.
    let mut number = 0;
    let mut first = String::new();
    while first.trim().is_empty() {
        first.clear();
        if read_line(r, &mut first)? == 0 {
            return Ok(None);
        }
        number += 1;
    }
    Ok(Some((first, number)))
}

/// The longest line of newline-delimited GeoJSON read: one feature.
pub const MAX_LINE: usize = 64 << 20;

/// One line, at most [`MAX_LINE`] bytes: a file without newlines must not be
/// read into memory whole as one "line".
fn read_line(r: &mut impl BufRead, line: &mut String) -> Result<usize, String> {
    let n = r
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_line(line)
        .map_err(|e| e.to_string())?;
    if n > MAX_LINE {
        return Err(format!("a line is longer than {MAX_LINE} bytes"));
    }
    Ok(n)
}

/// Newline-delimited features from `first` (line `number`, counting from 1
/// with blank lines) on.
fn lines(
    r: &mut impl BufRead,
    first: String,
    mut number: usize,
    sink: &mut Sink,
) -> Result<(), String> {
    let mut line = first;
    loop {
        if !line.trim().is_empty() {
            sink.take(
                line.trim()
                    .parse::<geojson::Feature>()
                    .map_err(|e| e.to_string()),
                Some(number),
            );
            if sink.closed {
                return Ok(());
            }
        }
        line.clear();
        if read_line(r, &mut line)? == 0 {
            return Ok(());
        }
        number += 1;
    }
}

fn document(r: &mut impl BufRead, sink: &mut Sink) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_reader(r);
    let found = Top { sink }
        .deserialize(&mut de)
        .map_err(|e| format!("not GeoJSON: {e}"))?;
    de.end().map_err(|e| format!("not GeoJSON: {e}"))?;
    match found {
        TopKind::Collection => Ok(()),
        TopKind::Feature(f) => {
            let raw = serde_json::from_value::<geojson::Feature>(serde_json::Value::Object(f))
                .map_err(|e| e.to_string());
            sink.take(raw, None);
            Ok(())
        }
        TopKind::Geometry => {
            Err("expected a FeatureCollection or Features, got a bare Geometry".into())
        }
        TopKind::Other(t) => Err(format!(
            "not GeoJSON: expected a FeatureCollection or a Feature, got type {t:?}"
        )),
    }
}

enum TopKind {
    Collection,
    /// A single Feature document, kept whole (it is one feature).
    Feature(serde_json::Map<String, serde_json::Value>),
    Geometry,
    Other(String),
}

struct Top<'s, 'a> {
    sink: &'s mut Sink<'a>,
}

impl<'de> DeserializeSeed<'de> for Top<'_, '_> {
    type Value = TopKind;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<TopKind, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = TopKind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a GeoJSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopKind, A::Error> {
        let mut kind: Option<String> = None;
        let mut saw_features = false;
        let mut rest = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "features" => {
                    map.next_value_seed(Features {
                        sink: &mut *self.sink,
                    })?;
                    saw_features = true;
                }
                "type" => kind = Some(map.next_value()?),
                // A Feature's own members are kept (it is one feature); a
                // collection's foreign members are skipped unread.
                "geometry" | "properties" | "id" | "bbox" => {
                    rest.insert(key, map.next_value()?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match kind.as_deref() {
            Some("FeatureCollection") if saw_features => TopKind::Collection,
            Some("FeatureCollection") => {
                return Err(serde::de::Error::missing_field("features"));
            }
            Some("Feature") => {
                rest.insert("type".into(), "Feature".into());
                TopKind::Feature(rest)
            }
            Some(
                "Point" | "MultiPoint" | "LineString" | "MultiLineString" | "Polygon"
                | "MultiPolygon" | "GeometryCollection",
            ) => TopKind::Geometry,
            other => TopKind::Other(other.unwrap_or_default().to_owned()),
        })
    }
}

struct Features<'s, 'a> {
    sink: &'s mut Sink<'a>,
}

impl<'de> DeserializeSeed<'de> for Features<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Features<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of GeoJSON Features")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Each element as a JSON value first: a malformed feature is one
        // violation, not the end of the read.
        while let Some(v) = seq.next_element::<serde_json::Value>()? {
            if self.sink.closed {
                continue;
            }
            let raw = serde_json::from_value::<geojson::Feature>(v).map_err(|e| e.to_string());
            self.sink.take(raw, None);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> (Vec<Batch>, Option<(String, usize)>, Option<String>) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("f.geojson");
        std::fs::write(&path, text).expect("written");
        let (tx, mut rx) = mpsc::channel(2);
        let reader = std::thread::spawn(move || read(&path, Crs::Wgs84, tx));
        let (mut batches, mut end, mut failed) = (Vec::new(), None, None);
        while let Some(m) = rx.blocking_recv() {
            match m {
                Message::Batch(b) => batches.push(b),
                Message::End { digest, count } => end = Some((digest, count)),
                Message::Failed(why) => failed = Some(why),
            }
        }
        reader.join().expect("the reader ends");
        (batches, end, failed)
    }

    fn point(i: usize) -> String {
        format!(
            r#"{{"type":"Feature","geometry":{{"type":"Point","coordinates":[118.{i:04},35.0]}},"properties":{{"name":"p{i}"}}}}"#
        )
    }

    #[test]
    fn a_collection_is_read_in_batches_with_its_digest() {
        let n = BATCH * 2 + 17;
        let features: Vec<String> = (0..n).map(point).collect();
        // Foreign members before and after the array, and a broken feature.
        let text = format!(
            "{{\"type\":\"FeatureCollection\",\"name\":\"x\",\"features\":[{},{{\"type\":\"Feature\"}}],\"crs\":{{}}}}\n",
            features.join(",")
        );
        let (batches, end, failed) = read_all(&text);
        assert_eq!(failed, None);
        let (digest, count) = end.expect("the end");
        assert_eq!(count, n + 1);
        assert_eq!(digest, super::super::digest(text.as_bytes()));
        assert_eq!(batches.len(), 3);
        assert!(batches.iter().all(|b| b.len() <= BATCH));
        let read: usize = batches.iter().map(|b| b.features.len()).sum();
        assert_eq!(read, n);
        let last = batches.last().expect("a batch");
        assert_eq!(last.unreadable.len(), 1);
        assert_eq!(last.unreadable[0].index, n);
        assert_eq!(
            batches[1].features[0].properties["name"],
            format!("p{BATCH}").as_str()
        );
        assert_eq!(batches[1].indices[0], BATCH);
    }

    #[test]
    fn newline_delimited_features_keep_their_line_numbers() {
        let text = format!("\n{}\n\n{}\nnot json\n{}", point(0), point(1), point(2));
        let (batches, end, failed) = read_all(&text);
        assert_eq!(failed, None);
        assert_eq!(end.map(|e| e.1), Some(4));
        let b = &batches[0];
        assert_eq!(b.lines, vec![Some(2), Some(4), Some(6)]);
        assert_eq!(b.unreadable[0].line, Some(5));
    }

    #[test]
    fn a_line_past_the_bound_fails_the_read_instead_of_filling_memory() {
        let text = format!("{}\n{}", point(0), "x".repeat(MAX_LINE + 1));
        let (_, end, failed) = read_all(&text);
        assert_eq!(end, None);
        assert!(failed.is_some_and(|f| f.contains("longer than")));
    }

    #[test]
    fn what_is_not_a_collection_or_a_feature_fails_the_read() {
        for text in [
            r#"{"type":"Point","coordinates":[1,2]}"#,
            r#"{"type":"FeatureCollection"}"#,
            "[1, 2",
            "",
        ] {
            let (_, end, failed) = read_all(text);
            assert!(failed.is_some() || end.is_some_and(|e| e.1 == 0), "{text}");
        }
        let (batches, end, _) = read_all(&point(3));
        assert_eq!(end.map(|e| e.1), Some(1));
        assert_eq!(batches[0].features.len(), 1);
    }
}
