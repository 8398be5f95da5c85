//! Reading dispatch requests: every field checked and named when wrong,
//! every list bounded, coordinates in range, so a bad request is a 400
//! that says which field, and nothing partial is ever stored.

use serde_json::{Map, Value};

use super::DispatchError;
use crate::crs::Crs;

/// Most entries of a list in one request (capabilities, supplies, lines).
pub const MAX_LIST: usize = 100;
/// Longest free text (a description, a name).
pub const MAX_TEXT_CHARS: usize = 2_000;

pub use crate::request::{json_object as object, only_fields as only, Params};

/// An optional string member, trimmed, bounded.
pub fn opt_text(body: &Map<String, Value>, key: &str) -> Result<Option<String>, DispatchError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > MAX_TEXT_CHARS => Err(
            DispatchError::invalid(key, format!("is longer than {MAX_TEXT_CHARS} characters")),
        ),
        Some(Value::String(s)) if s.contains('\0') => {
            Err(DispatchError::invalid(key, "must not contain NUL"))
        }
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
        Some(other) => Err(DispatchError::invalid(
            key,
            format!("must be a string, got {}", kind(other)),
        )),
    }
}

/// One of `allowed`.
pub fn choice(key: &str, value: &str, allowed: &[String]) -> Result<String, DispatchError> {
    if allowed.iter().any(|a| a == value) {
        Ok(value.to_owned())
    } else {
        Err(DispatchError::invalid(
            key,
            format!("must be one of {}, got `{value}`", allowed.join(", ")),
        ))
    }
}

/// The `{"status": …}` body of a status report, one of `allowed`.
pub fn status(body: &[u8], allowed: &[&str]) -> Result<String, DispatchError> {
    let body = object(body)?;
    only(&body, &["status"])?;
    let to = opt_text(&body, "status")?
        .ok_or_else(|| DispatchError::invalid("status", "is required"))?;
    let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
    choice("status", &to, &allowed)
}

/// A whole number ≥ 1 (an id).
pub fn id(key: &str, v: &Value) -> Result<i64, DispatchError> {
    v.as_i64().filter(|n| *n >= 1).ok_or_else(|| {
        DispatchError::invalid(key, format!("must be an id (a whole number ≥ 1), got {v}"))
    })
}

/// A finite number > 0.
pub fn quantity(key: &str, v: &Value) -> Result<f64, DispatchError> {
    match v.as_f64() {
        Some(q) if q.is_finite() && q > 0.0 && q <= 1e12 => Ok(q),
        Some(q) => Err(DispatchError::invalid(
            key,
            format!("must be a positive quantity, got {q}"),
        )),
        None => Err(DispatchError::invalid(
            key,
            format!("must be a number, got {}", kind(v)),
        )),
    }
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A longitude and latitude in range, turned from `crs` into WGS84.
pub fn lonlat(lon: f64, lat: f64, crs: Crs) -> Result<[f64; 2], DispatchError> {
    if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
        return Err(DispatchError::invalid(
            "lon",
            format!("must be a longitude in [-180, 180], got {lon}"),
        ));
    }
    if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
        return Err(DispatchError::invalid(
            "lat",
            format!("must be a latitude in [-90, 90], got {lat}"),
        ));
    }
    let (lon, lat) = crs.to_wgs84(lon, lat);
    Ok([lon, lat])
}

/// The position of a body: `geometry` (a GeoJSON Point) or `lon`/`lat`.
pub fn position(body: &Map<String, Value>, crs: Crs) -> Result<[f64; 2], DispatchError> {
    if let Some(g) = body.get("geometry").filter(|g| !g.is_null()) {
        let kind_of = g.get("type").and_then(Value::as_str);
        if kind_of != Some("Point") {
            return Err(DispatchError::invalid(
                "geometry",
                format!(
                    "must be a GeoJSON Point, got {}",
                    kind_of.map_or_else(|| kind(g).to_owned(), |t| format!("a {t}"))
                ),
            ));
        }
        let c = g.get("coordinates").and_then(Value::as_array);
        return match c.map(|c| c.iter().map(Value::as_f64).collect::<Vec<_>>()) {
            Some(v) if (2..=3).contains(&v.len()) && v.iter().all(Option::is_some) => {
                lonlat(v[0].unwrap_or(f64::NAN), v[1].unwrap_or(f64::NAN), crs)
            }
            _ => Err(DispatchError::invalid(
                "geometry.coordinates",
                "must be [lon, lat]",
            )),
        };
    }
    let number = |key: &str| -> Result<f64, DispatchError> {
        match body.get(key) {
            Some(v) => v.as_f64().ok_or_else(|| {
                DispatchError::invalid(key, format!("must be a number, got {}", kind(v)))
            }),
            None => Err(DispatchError::invalid(
                key,
                "is required (or give `geometry` as a GeoJSON Point)",
            )),
        }
    };
    lonlat(number("lon")?, number("lat")?, crs)
}

/// The point of `lon`/`lat` in the request's `crs`.
pub fn point(q: &Params) -> Result<[f64; 2], DispatchError> {
    let crs = q.crs()?;
    lonlat(q.required_number("lon")?, q.required_number("lat")?, crs)
}

/// The `crs` query parameter of a write (`?crs=gcj02`).
pub fn crs_of(raw: Option<&str>) -> Result<Crs, DispatchError> {
    Ok(Params::parse(raw, &["crs"])?.crs()?)
}
