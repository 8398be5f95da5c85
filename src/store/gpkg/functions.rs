//! The SQL functions the GeoPackage R-tree triggers call (spec Annex F.3:
//! `ST_IsEmpty`, `ST_MinX`, `ST_MaxX`, `ST_MinY`, `ST_MaxY`), registered on
//! every connection onemap opens.
//!
//! Why: SQLite has no spatial functions, and a statement that would fire a
//! trigger calling one cannot even be prepared. Without them onemap had to
//! drop the layer's triggers in each write transaction and re-create them
//! before commit; that DDL made every pooled connection re-read the schema
//! and was most of a write's cost (89 single writes a second). With them
//! the triggers stay in place and keep the R-tree themselves, for onemap as
//! for GDAL and QGIS.

// The one module allowed `unsafe` (Cargo.toml [lints]): SQLite's C API.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void, CStr};

use libsqlite3_sys as ffi;
use sqlx::SqliteConnection;

use super::blob;

/// Which function one registration answers, passed as its user data.
#[derive(Clone, Copy)]
enum Which {
    IsEmpty = 0,
    MinX = 1,
    MaxX = 2,
    MinY = 3,
    MaxY = 4,
}

const FUNCTIONS: [(&CStr, Which); 5] = [
    (c"ST_IsEmpty", Which::IsEmpty),
    (c"ST_MinX", Which::MinX),
    (c"ST_MaxX", Which::MaxX),
    (c"ST_MinY", Which::MinY),
    (c"ST_MaxY", Which::MaxY),
];

/// Register the functions on one connection (the pool's `after_connect`).
pub async fn register(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    for (name, which) in FUNCTIONS {
        // SAFETY: `db` is the live connection the lock holds; the name is a
        // static C string; the callback only reads its argument and sets
        // the result, and catches every panic (see `call`).
        let rc = unsafe {
            ffi::sqlite3_create_function_v2(
                db,
                name.as_ptr(),
                1,
                ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC,
                which as usize as *mut c_void,
                Some(call),
                None,
                None,
                None,
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(sqlx::Error::Configuration(
                format!(
                    "registering the SQL function {} (SQLite code {rc})",
                    name.to_string_lossy()
                )
                .into(),
            ));
        }
    }
    Ok(())
}

/// Whether the connection is outside any transaction (SQLite's autocommit
/// mode), as it must be when it goes back to the pool.
///
/// Why: a request cut off by its client drops its future at any await,
/// and sqlx has a window (the `BEGIN` answered but its reply dropped with
/// the future) in which the connection goes back to the pool inside a
/// transaction that nothing will end, holding the file's write lock: every
/// later write then failed with "database is locked". The pool discards
/// such a connection instead (closing it rolls the transaction back).
pub async fn is_idle(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is the live connection the lock holds; the call only
    // reads its state.
    Ok(unsafe { ffi::sqlite3_get_autocommit(db) } != 0)
}

/// What a function answers for one blob; `None` is SQL NULL.
fn answer(which: usize, blob: Option<&[u8]>) -> Option<Answer> {
    // Not a geometry blob (NULL, text, garbage): NULL, as GDAL answers, so
    // the triggers' `WHEN` is false and the R-tree is left alone.
    let envelope = blob::envelope(blob?).ok()?;
    Some(match which {
        0 => Answer::Int(i32::from(envelope.is_none())),
        1 => Answer::Real(envelope?[0]),
        2 => Answer::Real(envelope?[2]),
        3 => Answer::Real(envelope?[1]),
        4 => Answer::Real(envelope?[3]),
        _ => return None,
    })
}

enum Answer {
    Int(i32),
    Real(f64),
}

unsafe extern "C" fn call(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY (whole body): SQLite passes `argc` valid values in `argv`
    // for the length of this call, and a blob pointer valid for its byte
    // count until the value is next converted.
    let which = ffi::sqlite3_user_data(ctx) as usize;
    let blob = if argc == 1 && !argv.is_null() {
        let value = *argv;
        if ffi::sqlite3_value_type(value) == ffi::SQLITE_BLOB {
            let p = ffi::sqlite3_value_blob(value).cast::<u8>();
            let n = usize::try_from(ffi::sqlite3_value_bytes(value)).unwrap_or(0);
            Some(if p.is_null() || n == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(p, n)
            })
        } else {
            None
        }
    } else {
        None
    };
    // A panic must not unwind into SQLite's C frames.
    match std::panic::catch_unwind(|| answer(which, blob)) {
        Ok(Some(Answer::Int(v))) => ffi::sqlite3_result_int(ctx, v),
        Ok(Some(Answer::Real(v))) => ffi::sqlite3_result_double(ctx, v),
        Ok(None) | Err(_) => ffi::sqlite3_result_null(ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geozero::{CoordDimensions, ToWkb};
    use sqlx::{Connection, Row};

    fn blob_of(g: geo::Geometry<f64>, envelope: bool) -> Vec<u8> {
        use geo::BoundingRect;
        let env = match (envelope, g.bounding_rect()) {
            (true, Some(r)) => vec![r.min().x, r.max().x, r.min().y, r.max().y],
            _ => Vec::new(),
        };
        g.to_gpkg_wkb(CoordDimensions::xy(), Some(4326), env)
            .expect("encodes")
    }

    #[tokio::test]
    async fn the_trigger_functions_read_envelopes_points_and_shapes() {
        let mut conn = SqliteConnection::connect("sqlite::memory:")
            .await
            .expect("opens");
        register(&mut conn).await.expect("registers");
        let line: geo::Geometry<f64> =
            geo::LineString::from(vec![(118.2, 35.1), (118.5, 34.9), (118.3, 35.4)]).into();
        let point: geo::Geometry<f64> = geo::Point::new(118.35, 35.05).into();
        for (g, want) in [
            (line.clone(), [118.2, 34.9, 118.5, 35.4]),
            (point.clone(), [118.35, 35.05, 118.35, 35.05]),
        ] {
            for with_envelope in [true, false] {
                let row = sqlx::query(
                    "SELECT ST_IsEmpty(?1), ST_MinX(?1), ST_MinY(?1), ST_MaxX(?1), ST_MaxY(?1)",
                )
                .bind(blob_of(g.clone(), with_envelope))
                .fetch_one(&mut conn)
                .await
                .expect("answers");
                assert_eq!(row.get::<i64, _>(0), 0);
                let got: Vec<f64> = (1..5).map(|i| row.get::<f64, _>(i)).collect();
                assert_eq!(got, want, "{g:?} envelope {with_envelope}");
            }
        }
        // Not geometries: NULL, never an error, so a trigger skips them.
        for bad in [
            sqlx::query("SELECT ST_MinX(?1), ST_IsEmpty(?1)").bind(b"GPxx".to_vec()),
            sqlx::query("SELECT ST_MinX(?1), ST_IsEmpty(?1)").bind("text"),
            sqlx::query("SELECT ST_MinX(?1), ST_IsEmpty(?1)").bind(None::<Vec<u8>>),
        ] {
            let row = bad.fetch_one(&mut conn).await.expect("answers");
            assert_eq!(row.get::<Option<f64>, _>(0), None);
            assert_eq!(row.get::<Option<i64>, _>(1), None);
        }
        // An empty geometry is empty and has no bounds.
        let empty = blob_of(
            geo::Geometry::GeometryCollection(geo::GeometryCollection::<f64>::new_from(vec![])),
            false,
        );
        let row = sqlx::query("SELECT ST_IsEmpty(?1), ST_MinX(?1)")
            .bind(empty)
            .fetch_one(&mut conn)
            .await
            .expect("answers");
        assert_eq!(row.get::<i64, _>(0), 1);
        assert_eq!(row.get::<Option<f64>, _>(1), None);
    }
}
