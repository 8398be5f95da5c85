//! GeoPackage geometry blobs (spec §2.1.3 "GeoPackageBinary"): a small
//! header, then an ISO WKB geometry. Every blob onemap reads back — from its
//! own file at start-up and on each read, and from a foreign GeoPackage being
//! imported — goes through [`decode`].
//!
//! geozero's WKB reader recurses once per nested collection and sizes its
//! buffers by the counts a blob claims, so it is only handed a blob that an
//! iterative scan has already walked: nesting at most
//! [`MAX_GEOMETRY_DEPTH`], every claimed count backed by the bytes that
//! remain, every coordinate finite.

use geozero::{wkb::GpkgWkb, ToGeo};

/// How deeply geometries may nest: a point is depth 1, a polygon in a
/// multipolygon depth 2, each enclosing collection one more. Real data
/// stays under 4; the bound keeps every recursive walk over a
/// `geo::Geometry` (decoding, projection, clipping, drop) shallow.
pub const MAX_GEOMETRY_DEPTH: usize = 32;

/// Why a geometry blob was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    #[error("not a GeoPackage geometry: {0}")]
    Header(&'static str),
    #[error("the geometry ends early, at byte {at}")]
    Truncated { at: usize },
    #[error("the geometry claims {count} parts at byte {at}, more than its remaining {remaining} bytes can hold")]
    Count {
        at: usize,
        count: u32,
        remaining: usize,
    },
    #[error("the geometry nests deeper than {MAX_GEOMETRY_DEPTH} levels")]
    TooDeep,
    #[error("unsupported WKB geometry type {0} (expected points, lines, polygons, their multi forms or collections)")]
    Type(u32),
    #[error("a {parent} holds a part of WKB type {child}")]
    Part { parent: &'static str, child: u32 },
    #[error("a coordinate is not a finite number, at byte {at}")]
    NotFinite { at: usize },
    #[error("{0}")]
    Decode(String),
}

/// The geometry of a GeoPackage blob.
///
/// The blob is scanned first (iteratively, see the module doc); only a blob
/// that passes reaches geozero.
pub fn decode(blob: &[u8]) -> Result<geo::Geometry<f64>, BlobError> {
    let start = header_len(blob)?;
    let wkb = &blob[start..];
    scan_wkb(wkb)?;
    GpkgWkb(blob)
        .to_geo()
        .map_err(|e| BlobError::Decode(e.to_string()))
}

/// The bounding box `[min_x, min_y, max_x, max_y]` of a GeoPackage blob;
/// `None` for an empty geometry.
///
/// The header's envelope when it has one (onemap writes one on every blob),
/// the coordinates of a bare point, else the decoded geometry's. This is
/// what the R-tree triggers' `ST_MinX`… ask for on every write, so the
/// common cases read a few bytes, not the geometry.
pub fn envelope(blob: &[u8]) -> Result<Option<[f64; 4]>, BlobError> {
    let start = header_len(blob)?;
    let flags = blob[3];
    // Spec §2.1.3.1.1: bit 4 marks an empty geometry.
    if flags & 0b0001_0000 != 0 {
        return Ok(None);
    }
    let little = flags & 1 == 1;
    let f64_at = |at: usize| -> f64 {
        let b: [u8; 8] = blob[at..at + 8]
            .try_into()
            .expect("the header length covers the envelope");
        if little {
            f64::from_le_bytes(b)
        } else {
            f64::from_be_bytes(b)
        }
    };
    if start > 8 {
        // minx, maxx, miny, maxy.
        let [a, b, c, d] = [8, 16, 24, 32].map(f64_at);
        if [a, b, c, d].iter().all(|v| v.is_finite()) {
            return Ok(Some([a, c, b, d]));
        }
    }
    let wkb = &blob[start..];
    if wkb.len() >= 21 && (wkb[0] == 0 || wkb[0] == 1) {
        let le = wkb[0] == 1;
        let word = |b: &[u8]| -> [u8; 8] { b.try_into().expect("eight bytes") };
        let code: [u8; 4] = wkb[1..5].try_into().expect("four bytes");
        let code = if le {
            u32::from_le_bytes(code)
        } else {
            u32::from_be_bytes(code)
        };
        if code % 1000 == 1 {
            let read = |b: &[u8]| {
                if le {
                    f64::from_le_bytes(word(b))
                } else {
                    f64::from_be_bytes(word(b))
                }
            };
            let (x, y) = (read(&wkb[5..13]), read(&wkb[13..21]));
            // WKB writes an empty point as NaN coordinates.
            return Ok((x.is_finite() && y.is_finite()).then_some([x, y, x, y]));
        }
    }
    use geo::BoundingRect;
    Ok(decode(blob)?
        .bounding_rect()
        .map(|r| [r.min().x, r.min().y, r.max().x, r.max().y]))
}

/// The length of the GeoPackageBinary header, after checking it.
fn header_len(blob: &[u8]) -> Result<usize, BlobError> {
    if blob.len() < 8 {
        return Err(BlobError::Header("shorter than its 8-byte header"));
    }
    if &blob[..2] != b"GP" {
        return Err(BlobError::Header("no `GP` magic"));
    }
    if blob[2] != 0 {
        return Err(BlobError::Header("unknown version"));
    }
    let flags = blob[3];
    if flags & 0b0010_0000 != 0 {
        return Err(BlobError::Header("an extended (non-standard) geometry"));
    }
    // Envelope contents indicator, spec table 7: none, xy, xyz, xym, xyzm.
    let envelope = match (flags >> 1) & 0b111 {
        0 => 0,
        1 => 32,
        2 | 3 => 48,
        4 => 64,
        _ => return Err(BlobError::Header("an invalid envelope code")),
    };
    let len = 8 + envelope;
    if blob.len() < len {
        return Err(BlobError::Truncated { at: blob.len() });
    }
    Ok(len)
}

/// What a WKB geometry type code means to the scan.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Point,
    LineString,
    Polygon,
    /// A multi geometry or collection; its parts must be of this base type
    /// (`None`: any).
    Collection(&'static str, Option<u32>),
}

/// The smallest WKB geometry: byte order, type, a count of zero.
const MIN_GEOMETRY: usize = 9;

/// A cursor over WKB bytes that never reads past the end.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&[u8], BlobError> {
        if n > self.remaining() {
            return Err(BlobError::Truncated {
                at: self.bytes.len(),
            });
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn u32(&mut self, little: bool) -> Result<u32, BlobError> {
        let b: [u8; 4] = self
            .take(4)?
            .try_into()
            .expect("take(4) returns four bytes");
        Ok(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    /// A count of items of at least `each` bytes, checked against the rest.
    fn count(&mut self, little: bool, each: usize) -> Result<u32, BlobError> {
        let at = self.at;
        let count = self.u32(little)?;
        let remaining = self.remaining();
        let need = (count as u64).saturating_mul(each as u64);
        if need > remaining as u64 {
            return Err(BlobError::Count {
                at,
                count,
                remaining,
            });
        }
        Ok(count)
    }

    /// `n` coordinates of `dims` values, each finite.
    fn coords(&mut self, little: bool, n: u32, dims: usize) -> Result<(), BlobError> {
        for _ in 0..n {
            let at = self.at;
            let values = self.take(8 * dims)?;
            for v in values.chunks_exact(8) {
                let b: [u8; 8] = v.try_into().expect("chunks of eight bytes");
                let v = if little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                if !v.is_finite() {
                    return Err(BlobError::NotFinite { at });
                }
            }
        }
        Ok(())
    }

    /// One geometry's byte order, base type and coordinate dimensions.
    fn header(&mut self) -> Result<(bool, u32, Kind, usize), BlobError> {
        let order = self.take(1)?[0];
        let little = match order {
            0 => false,
            1 => true,
            _ => return Err(BlobError::Header("a WKB byte order other than 0 or 1")),
        };
        let code = self.u32(little)?;
        // ISO WKB: 1000s add Z, 2000s M, 3000s ZM.
        let dims = match code / 1000 {
            0 => 2,
            1 | 2 => 3,
            3 => 4,
            _ => return Err(BlobError::Type(code)),
        };
        let base = code % 1000;
        let kind = match base {
            1 => Kind::Point,
            2 => Kind::LineString,
            3 => Kind::Polygon,
            4 => Kind::Collection("MultiPoint", Some(1)),
            5 => Kind::Collection("MultiLineString", Some(2)),
            6 => Kind::Collection("MultiPolygon", Some(3)),
            7 => Kind::Collection("GeometryCollection", None),
            _ => return Err(BlobError::Type(code)),
        };
        Ok((little, base, kind, dims))
    }
}

/// Walk a WKB geometry without recursion; the bytes it spans.
///
/// The walk keeps, per open collection, how many parts are still to come
/// and what type they must be; that stack is bounded by
/// [`MAX_GEOMETRY_DEPTH`]. Each step consumes bytes, so the walk is linear
/// in the blob's length whatever counts it claims.
pub fn scan_wkb(wkb: &[u8]) -> Result<usize, BlobError> {
    let mut c = Cursor { bytes: wkb, at: 0 };
    // (parts still to read, the parts' required base type, the parent's name)
    let mut open: Vec<(u32, Option<u32>, &'static str)> = Vec::new();
    loop {
        let (little, base, kind, dims) = c.header()?;
        if let Some(&(_, Some(want), parent)) = open.last() {
            if want != base {
                return Err(BlobError::Part {
                    parent,
                    child: base,
                });
            }
        }
        match kind {
            Kind::Point => {
                let at = c.at;
                let point = c.take(8 * dims)?;
                // An empty point is all NaN (GeoPackage spec, Annex C note).
                let empty = point.chunks_exact(8).all(|v| {
                    let b: [u8; 8] = v.try_into().expect("chunks of eight bytes");
                    let v = if little {
                        f64::from_le_bytes(b)
                    } else {
                        f64::from_be_bytes(b)
                    };
                    v.is_nan()
                });
                if !empty {
                    c.at = at;
                    c.coords(little, 1, dims)?;
                }
            }
            Kind::LineString => {
                let n = c.count(little, 8 * dims)?;
                c.coords(little, n, dims)?;
            }
            Kind::Polygon => {
                let rings = c.count(little, 4)?;
                for _ in 0..rings {
                    let n = c.count(little, 8 * dims)?;
                    c.coords(little, n, dims)?;
                }
            }
            Kind::Collection(name, part) => {
                let n = c.count(little, MIN_GEOMETRY)?;
                if n > 0 {
                    // This collection is one level; its parts one more.
                    if open.len() + 1 >= MAX_GEOMETRY_DEPTH {
                        return Err(BlobError::TooDeep);
                    }
                    open.push((n, part, name));
                    continue;
                }
            }
        }
        // A geometry is complete: count it against its parent, closing
        // every collection whose last part it was.
        loop {
            match open.last_mut() {
                None => return Ok(c.at),
                Some((left, _, _)) => {
                    *left -= 1;
                    if *left > 0 {
                        break;
                    }
                    open.pop();
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use geozero::{CoordDimensions, ToWkb};
    use proptest::prelude::*;

    use super::*;

    fn gpkg_header() -> Vec<u8> {
        // "GP", version 0, flags: little-endian header, no envelope; SRID 4326.
        let mut b = vec![b'G', b'P', 0, 1];
        b.extend(4326i32.to_le_bytes());
        b
    }

    /// `depth` GeometryCollections, each holding the next, around a point.
    pub(crate) fn nested_collections(depth: usize) -> Vec<u8> {
        let mut b = gpkg_header();
        for _ in 0..depth {
            b.push(1);
            b.extend(7u32.to_le_bytes());
            b.extend(1u32.to_le_bytes());
        }
        b.push(1);
        b.extend(1u32.to_le_bytes());
        b.extend(118.3f64.to_le_bytes());
        b.extend(35.0f64.to_le_bytes());
        b
    }

    fn blob_of(g: &geo::Geometry<f64>) -> Vec<u8> {
        g.to_gpkg_wkb(CoordDimensions::xy(), Some(4326), Vec::new())
            .expect("encodes")
    }

    #[test]
    fn geometries_onemap_writes_decode_unchanged() {
        let ring = |c: &[(f64, f64)]| geo::LineString::from(c.to_vec());
        let poly = geo::Polygon::new(
            ring(&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]),
            Vec::new(),
        );
        let samples: Vec<geo::Geometry<f64>> = vec![
            geo::Point::new(118.3, 35.0).into(),
            ring(&[(0.0, 0.0), (1.0, 1.0)]).into(),
            poly.clone().into(),
            geo::MultiPolygon(vec![poly.clone(), poly]).into(),
            geo::Geometry::GeometryCollection(geo::GeometryCollection(vec![geo::Point::new(
                1.0, 2.0,
            )
            .into()])),
        ];
        for g in samples {
            assert_eq!(decode(&blob_of(&g)).expect("decodes"), g);
        }
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        assert!(decode(&nested_collections(MAX_GEOMETRY_DEPTH - 1)).is_ok());
        assert_eq!(
            decode(&nested_collections(MAX_GEOMETRY_DEPTH)),
            Err(BlobError::TooDeep)
        );
        // Far past any stack: refused by the scan before geozero sees it.
        assert_eq!(
            decode(&nested_collections(100_000)),
            Err(BlobError::TooDeep)
        );
    }

    #[test]
    fn claimed_counts_must_fit_the_bytes() {
        let mut b = gpkg_header();
        b.push(1);
        b.extend(2u32.to_le_bytes());
        b.extend(u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&b),
            Err(BlobError::Count {
                count: u32::MAX,
                ..
            })
        ));
    }

    #[test]
    fn non_finite_coordinates_and_odd_parts_are_refused() {
        let mut b = gpkg_header();
        b.push(1);
        b.extend(1u32.to_le_bytes());
        b.extend(f64::INFINITY.to_le_bytes());
        b.extend(1.0f64.to_le_bytes());
        assert!(matches!(decode(&b), Err(BlobError::NotFinite { .. })));
        // A MultiPoint whose part is a LineString.
        let mut b = gpkg_header();
        b.push(1);
        b.extend(4u32.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        b.push(1);
        b.extend(2u32.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        assert!(matches!(decode(&b), Err(BlobError::Part { .. })));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
            let mut b = gpkg_header();
            b.extend(&bytes);
            let _ = decode(&b);
        }

        #[test]
        fn every_truncation_of_a_valid_blob_is_refused_or_decodes(
            cut in 0usize..200,
            depth in 0usize..40,
        ) {
            let full = nested_collections(depth);
            let cut = cut.min(full.len());
            let r = decode(&full[..cut]);
            if cut < full.len() {
                prop_assert!(r.is_err());
            }
        }

        #[test]
        fn huge_claimed_counts_are_refused_before_any_allocation(
            kind in 2u32..8,
            count in 1_000u32..,
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut b = gpkg_header();
            b.push(1);
            b.extend(kind.to_le_bytes());
            b.extend(count.to_le_bytes());
            b.extend(&tail);
            prop_assert!(decode(&b).is_err());
        }

        #[test]
        fn any_coordinate_values_decode_or_are_refused_as_not_finite(
            values in proptest::collection::vec(any::<f64>(), 2..12),
        ) {
            // A LineString of the values taken in pairs: huge, tiny,
            // infinite and NaN numbers alike.
            let mut b = gpkg_header();
            b.push(1);
            b.extend(2u32.to_le_bytes());
            b.extend(((values.len() / 2) as u32).to_le_bytes());
            for v in &values[..values.len() / 2 * 2] {
                b.extend(v.to_le_bytes());
            }
            let finite = values[..values.len() / 2 * 2].iter().all(|v| v.is_finite());
            match decode(&b) {
                Ok(_) => prop_assert!(finite),
                Err(e) => prop_assert_eq!(e, BlobError::NotFinite { at: 9 }),
            }
        }

        #[test]
        fn random_mixes_of_collections_are_bounded(
            kinds in proptest::collection::vec(4u32..8, 0..80),
        ) {
            // Each level a multi geometry or collection of one part: only
            // GeometryCollections may hold one another, so most mixes are
            // refused as odd parts; none may panic or recurse.
            let mut b = gpkg_header();
            for k in &kinds {
                b.push(1);
                b.extend(k.to_le_bytes());
                b.extend(1u32.to_le_bytes());
            }
            b.push(1);
            b.extend(1u32.to_le_bytes());
            b.extend(1.0f64.to_le_bytes());
            b.extend(2.0f64.to_le_bytes());
            let r = decode(&b);
            if kinds.len() >= MAX_GEOMETRY_DEPTH {
                prop_assert!(r.is_err());
            }
        }

        #[test]
        fn random_geometries_round_trip(
            coords in proptest::collection::vec((-180.0f64..180.0, -90.0f64..90.0), 1..20),
            nest in 0usize..(MAX_GEOMETRY_DEPTH - 2),
        ) {
            let line: geo::LineString<f64> = coords.into_iter().collect();
            let mut g: geo::Geometry<f64> = geo::MultiLineString(vec![line]).into();
            for _ in 0..nest {
                g = geo::Geometry::GeometryCollection(geo::GeometryCollection(vec![g]));
            }
            prop_assert_eq!(decode(&blob_of(&g)).expect("decodes"), g);
        }
    }
}
