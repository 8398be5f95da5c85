//! The query parameters of `/items`, parsed and checked against the layer
//! into a store [`Query`]. Plain functions: unit tests call them directly.

use std::collections::HashSet;

use crate::{
    crs::Crs,
    error::AppError,
    filter::{self, CmpOp, Expr, Literal, Shape, ID},
    formats::Format,
    layers::{LayerDef, PropertyType},
    store::{Query, SortKey},
};

pub const DEFAULT_LIMIT: u64 = 100;
/// Larger limits are clipped to this, not refused (Part 1 §7.15.3).
pub const MAX_LIMIT: u64 = 10_000;

/// A parsed `/items` request.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemsRequest {
    pub query: Query,
    pub limit: u64,
    pub offset: u64,
    /// The datum of the coordinates in the answer.
    pub crs: Crs,
    pub format: Format,
}

fn bad(msg: impl Into<String>) -> AppError {
    AppError::BadRequest(msg.into())
}

/// `CRS84`/`wgs84`/`gcj02`/`bd09`, the URI form included.
pub fn parse_crs(name: &str, value: &str) -> Result<Crs, AppError> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("http://www.opengis.net/def/crs/OGC/1.3/CRS84")
        || v.eq_ignore_ascii_case("CRS84")
    {
        return Ok(Crs::Wgs84);
    }
    v.parse::<Crs>().map_err(|e| bad(format!("`{name}`: {e}")))
}

fn parse_bbox(value: &str, crs: Crs) -> Result<Expr, AppError> {
    let nums: Result<Vec<f64>, _> = value.split(',').map(|s| s.trim().parse::<f64>()).collect();
    let nums = nums.map_err(|_| {
        bad(format!(
            "`bbox` must be 4 or 6 comma-separated numbers, got `{value}`"
        ))
    })?;
    let [x0, y0, x1, y1] = match nums.as_slice() {
        [a, b, c, d] => [*a, *b, *c, *d],
        [a, b, _, c, d, _] => [*a, *b, *c, *d],
        _ => {
            return Err(bad(format!(
                "`bbox` must have 4 or 6 numbers, got {}",
                nums.len()
            )))
        }
    };
    if nums.iter().any(|n| !n.is_finite()) {
        return Err(bad("`bbox` numbers must be finite"));
    }
    if !(-180.0..=180.0).contains(&x0)
        || !(-180.0..=180.0).contains(&x1)
        || !(-90.0..=90.0).contains(&y0)
        || !(-90.0..=90.0).contains(&y1)
    {
        return Err(bad(format!("`bbox` {value} is outside -180…180, -90…90")));
    }
    if y0 > y1 {
        return Err(bad(
            "`bbox`: the southern latitude comes before the northern one",
        ));
    }
    if x0 > x1 {
        return Err(bad("`bbox` crossing the antimeridian is not supported"));
    }
    let (x0, y0) = crs.to_wgs84(x0, y0);
    let (x1, y1) = crs.to_wgs84(x1, y1);
    let rect = geo::Rect::new(geo::coord! { x: x0, y: y0 }, geo::coord! { x: x1, y: y1 });
    Ok(Expr::Intersects(Shape::new(rect.to_polygon().into())))
}

/// The property `datetime` filters on: the layer's first date-time.
pub fn time_property(layer: &LayerDef) -> Option<&str> {
    layer
        .properties
        .iter()
        .find(|p| p.kind == PropertyType::Datetime)
        .map(|p| p.name.as_str())
}

/// Part 1 §7.15.4: an instant or a closed or half-bounded interval.
fn parse_datetime(layer: &LayerDef, value: &str) -> Result<Expr, AppError> {
    let property = time_property(layer).ok_or_else(|| {
        bad(format!(
            "`datetime`: collection `{}` has no time property",
            layer.name
        ))
    })?;
    let bound = |s: &str| -> Result<Option<Literal>, AppError> {
        if s.is_empty() || s == ".." {
            return Ok(None);
        }
        filter::coerce(
            property,
            PropertyType::Datetime,
            Literal::Text(s.to_owned()),
            layer,
        )
        .map(Some)
        .map_err(|e| bad(format!("`datetime`: {e}")))
    };
    let cmp = |op, value| Expr::Compare {
        property: property.to_owned(),
        op,
        value,
    };
    match value.split_once('/') {
        None => match bound(value)? {
            Some(t) => Ok(cmp(CmpOp::Eq, t)),
            None => Err(bad("`datetime` needs an instant or an interval")),
        },
        Some((a, b)) => {
            let (start, end) = (bound(a)?, bound(b)?);
            // Both are normalised to one UTC format, so text order is time
            // order.
            if let (Some(Literal::Text(s)), Some(Literal::Text(e))) = (&start, &end) {
                if s > e {
                    return Err(bad(format!(
                        "`datetime`: the interval starts ({s}) after it ends ({e})"
                    )));
                }
            }
            let mut parts = Vec::new();
            if let Some(t) = start {
                parts.push(cmp(CmpOp::Ge, t));
            }
            if let Some(t) = end {
                parts.push(cmp(CmpOp::Le, t));
            }
            Ok(Expr::all(parts))
        }
    }
}

fn parse_sortby(layer: &LayerDef, value: &str) -> Result<Vec<SortKey>, AppError> {
    value
        .split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (descending, name) = match s.as_bytes().first() {
                Some(b'-') => (true, &s[1..]),
                Some(b'+') => (false, &s[1..]),
                _ => (false, s),
            };
            let name = name.trim();
            match filter::comparable(layer, name) {
                Ok(PropertyType::Array) | Err(_) => Err(bad(format!(
                    "`sortby`: `{name}` is not a sortable property of `{}`",
                    layer.name
                ))),
                Ok(_) => Ok(SortKey {
                    property: name.to_owned(),
                    descending,
                }),
            }
        })
        .collect()
}

/// A count of features: 0 up to what a database row number can hold
/// (SQLite and PostgreSQL count in signed 64 bits).
fn parse_count(name: &str, value: &str) -> Result<u64, AppError> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| i64::try_from(*n).is_ok())
        .ok_or_else(|| {
            bad(format!(
                "`{name}` must be a whole number from 0 to {}, got `{value}`",
                i64::MAX
            ))
        })
}

/// Parse the query string pairs of `/items` for `layer`.
pub fn parse_items(layer: &LayerDef, pairs: &[(String, String)]) -> Result<ItemsRequest, AppError> {
    let mut seen = HashSet::new();
    for (k, _) in pairs {
        if !seen.insert(k.as_str()) {
            return Err(bad(format!("`{k}` is given more than once")));
        }
    }
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());

    let crs = get("crs")
        .map(|v| parse_crs("crs", v))
        .transpose()?
        .unwrap_or_default();
    let bbox_crs = get("bbox-crs")
        .map(|v| parse_crs("bbox-crs", v))
        .transpose()?
        .unwrap_or_default();
    let mut parts = Vec::new();
    if let Some(b) = get("bbox") {
        parts.push(parse_bbox(b, bbox_crs)?);
    }
    if let Some(d) = get("datetime") {
        parts.push(parse_datetime(layer, d)?);
    }
    if let Some(lang) = get("filter-lang") {
        if lang != "cql2-text" {
            return Err(bad(format!(
                "`filter-lang` `{lang}` is not supported; use cql2-text"
            )));
        }
    }
    if let Some(fc) = get("filter-crs") {
        if parse_crs("filter-crs", fc)? != Crs::Wgs84 {
            return Err(bad("`filter-crs` must be CRS84"));
        }
    }
    if let Some(f) = get("filter") {
        parts.push(filter::parse_cql2(f, layer).map_err(|e| bad(format!("`filter`: {e}")))?);
    }
    let format = match get("f") {
        None | Some("json") | Some("geojson") => Format::GeoJson,
        Some("csv") => Format::Csv,
        Some("gpkg") => Format::Gpkg,
        Some(other) => {
            return Err(bad(format!(
                "`f={other}` is not an output format of items (json, csv, gpkg)"
            )))
        }
    };
    // Downloads (csv, gpkg) hold the whole selection unless a limit is given.
    let limit = match get("limit") {
        Some(v) => match parse_count("limit", v)? {
            0 => return Err(bad("`limit` must be at least 1")),
            n if format == Format::GeoJson => n.min(MAX_LIMIT),
            n => n,
        },
        None if format == Format::GeoJson => DEFAULT_LIMIT,
        None => u64::MAX,
    };
    let offset = get("offset")
        .map(|v| parse_count("offset", v))
        .transpose()?
        .unwrap_or(0);
    let sort = get("sortby")
        .map(|v| parse_sortby(layer, v))
        .transpose()?
        .unwrap_or_default();

    const KNOWN: &[&str] = &[
        "bbox",
        "bbox-crs",
        "datetime",
        "filter",
        "filter-lang",
        "filter-crs",
        "limit",
        "offset",
        "sortby",
        "crs",
        "f",
    ];
    for (k, v) in pairs {
        if KNOWN.contains(&k.as_str()) {
            continue;
        }
        if k == ID || layer.property(k).is_some() {
            parts.push(filter::equals(layer, k, v).map_err(|e| bad(format!("`{k}`: {e}")))?);
        } else {
            return Err(bad(format!(
                "unknown query parameter `{k}`: items take {} or a queryable of `{}`",
                KNOWN.join(", "),
                layer.name
            )));
        }
    }
    let filter = Expr::all(parts);
    Ok(ItemsRequest {
        query: Query {
            filter: (filter != Expr::Const(true)).then_some(filter),
            sort,
            limit: Some(limit),
            offset,
        },
        limit,
        offset,
        crs,
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Catalog;

    fn pairs(q: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    fn parse(layer: &str, q: &str) -> Result<ItemsRequest, AppError> {
        let catalog = Catalog::builtin().expect("catalog");
        parse_items(catalog.get(layer).expect("layer"), &pairs(q))
    }

    #[test]
    fn limits_default_clip_and_refuse_nonsense() {
        assert_eq!(
            parse("shelters", "").map(|r| r.limit).ok(),
            Some(DEFAULT_LIMIT)
        );
        assert_eq!(
            parse("shelters", "limit=50000").map(|r| r.limit).ok(),
            Some(MAX_LIMIT)
        );
        assert!(parse("shelters", "limit=0").is_err());
        assert!(parse("shelters", "limit=-3").is_err());
        assert!(parse("shelters", "offset=x").is_err());
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        assert!(parse("shelters", "colour=red").is_err());
        assert!(parse("shelters", "limit=1&limit=2").is_err());
        assert!(parse("shelters", "status=open").is_ok());
    }

    #[test]
    fn bbox_datetime_and_filters_combine() {
        let r = parse(
            "incidents",
            "bbox=118,34,119,35&datetime=2026-07-12T00:00:00Z/..&status=reported&filter=severity%3D%27major%27",
        )
        .expect("parses");
        match r.query.filter {
            Some(Expr::And(parts)) => assert_eq!(parts.len(), 4),
            other => panic!("{other:?}"),
        }
        assert!(
            parse("incidents", "bbox=119,34,118,35").is_err(),
            "antimeridian"
        );
        assert!(parse("incidents", "bbox=1,2,3").is_err());
        assert!(parse("incidents", "datetime=yesterday").is_err());
        assert!(
            parse(
                "incidents",
                "datetime=2026-07-12T00:00:00Z/2026-07-01T00:00:00Z"
            )
            .is_err(),
            "inverted"
        );
        assert!(parse("incidents", "datetime=2026-07-01/2026-07-01T00:00:00Z").is_ok());
        assert!(
            parse("shelters", "datetime=2026-07-12T00:00:00Z").is_err(),
            "no time property"
        );
    }

    #[test]
    fn sortby_takes_signed_property_names() {
        let r = parse("rescue_teams", "sortby=-headcount,+name").expect("parses");
        assert_eq!(
            r.query.sort,
            vec![
                SortKey {
                    property: "headcount".into(),
                    descending: true
                },
                SortKey {
                    property: "name".into(),
                    descending: false
                }
            ]
        );
        assert!(parse("rescue_teams", "sortby=capabilities").is_err());
        assert!(parse("rescue_teams", "sortby=nope").is_err());
    }
}
