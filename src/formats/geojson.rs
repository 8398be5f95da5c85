//! GeoJSON (RFC 7946) FeatureCollections and newline-delimited GeoJSON.

use std::io::Write;

use geojson::GeoJson;

use crate::{
    crs::Crs,
    layers::{geometry_from_geojson, Feature, ValidationErrors, Violation},
};

/// Features read from a file, each with the line it started on when the
/// file was newline-delimited.
#[derive(Debug)]
pub struct Parsed {
    pub features: Vec<Feature>,
    pub lines: Option<Vec<usize>>,
}

impl Parsed {
    /// Point each violation at its source line, when there are lines.
    pub fn locate(&self, mut errors: ValidationErrors) -> ValidationErrors {
        if let Some(lines) = &self.lines {
            errors.locate(|index| lines.get(index).copied());
        }
        errors
    }
}

/// Read a FeatureCollection, a single Feature, or newline-delimited
/// Features, converting coordinates from `crs` to WGS84.
///
/// Every feature that cannot be read is reported (up to the report limit);
/// schema validation is the store's.
pub fn parse(layer: &str, text: &str, crs: Crs) -> Result<Parsed, ValidationErrors> {
    let mut errors = ValidationErrors::new(layer);
    // A document is one JSON value; newline-delimited GeoJSON is one Feature
    // per line. A document that fails to parse is reported as such, unless
    // its first line is a complete value of its own (then it is NDJSON).
    let first_line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let line_delimited = first_line.len() < text.trim().len()
        && serde_json::from_str::<serde_json::Value>(first_line).is_ok();
    let whole = if line_delimited {
        None
    } else {
        match text.parse::<GeoJson>() {
            Ok(g) => Some(g),
            Err(e) => {
                errors.push(Violation {
                    index: 0,
                    line: None,
                    name: None,
                    field: "document".into(),
                    message: format!("not GeoJSON: {e}"),
                });
                return Err(errors);
            }
        }
    };
    let (raw, lines): (Vec<Result<geojson::Feature, String>>, Option<Vec<usize>>) = match whole {
        Some(GeoJson::FeatureCollection(fc)) => (fc.features.into_iter().map(Ok).collect(), None),
        Some(GeoJson::Feature(f)) => (vec![Ok(f)], None),
        Some(GeoJson::Geometry(_)) => {
            errors.push(Violation {
                index: 0,
                line: None,
                name: None,
                field: "document".into(),
                message: "expected a FeatureCollection or Features, got a bare Geometry".into(),
            });
            return Err(errors);
        }
        None => {
            let mut raw = Vec::new();
            let mut lines = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                lines.push(i + 1);
                raw.push(line.parse::<geojson::Feature>().map_err(|e| e.to_string()));
            }
            (raw, Some(lines))
        }
    };

    let mut features = Vec::with_capacity(raw.len());
    for (index, item) in raw.into_iter().enumerate() {
        let line = lines.as_ref().and_then(|l| l.get(index).copied());
        match feature_of(item, index, line, crs) {
            Ok(f) => features.push(f),
            Err(v) => errors.push(v),
        }
    }
    if errors.is_empty() {
        Ok(Parsed { features, lines })
    } else {
        Err(errors)
    }
}

/// Write features as one FeatureCollection, feature by feature, with
/// coordinates in `crs`.
pub fn write_collection<'a>(
    out: &mut impl Write,
    features: impl IntoIterator<Item = &'a Feature>,
    crs: Crs,
) -> std::io::Result<()> {
    out.write_all(b"{\"type\":\"FeatureCollection\",\"features\":[")?;
    for (i, f) in features.into_iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        let shifted = Feature {
            geometry: crs.geometry_from_wgs84(&f.geometry),
            ..f.clone()
        };
        serde_json::to_writer(&mut *out, &shifted.to_geojson())?;
    }
    out.write_all(b"]}\n")
}

/// One GeoJSON Feature as a feature to store (coordinates from `crs` to
/// WGS84), or the violation that names why it cannot be: feature `index`
/// of the file, on `line` when the file has lines. Schema validation is the
/// store's.
pub(super) fn feature_of(
    raw: Result<geojson::Feature, String>,
    index: usize,
    line: Option<usize>,
    crs: Crs,
) -> Result<Feature, Violation> {
    let fail = |field: &str, message: String, name: Option<String>| Violation {
        index,
        line,
        name,
        field: field.into(),
        message,
    };
    let f = raw.map_err(|m| fail("feature", format!("not a GeoJSON Feature: {m}"), None))?;
    let properties = f.properties.unwrap_or_default();
    let name = properties
        .get(crate::layers::NAME)
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let Some(g) = &f.geometry else {
        return Err(fail("geometry", "the feature has no geometry".into(), name));
    };
    let geometry = geometry_from_geojson(g).map_err(|m| fail("geometry", m, name))?;
    Ok(Feature {
        id: None,
        geometry: crs.geometry_to_wgs84(&geometry),
        properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newline_delimited_errors_carry_their_line() {
        let text = "{\"type\":\"Feature\",\"geometry\":{\"type\":\"Point\",\"coordinates\":[1,2]},\"properties\":{}}\n\n\
                    not json\n";
        let e = parse("x", text, Crs::Wgs84).expect_err("bad line");
        assert_eq!(e.violations[0].line, Some(3));
    }

    #[test]
    fn deeply_nested_documents_are_refused_not_a_stack_overflow() {
        // serde_json stops at 128 levels; nested GeometryCollections are
        // refused by the geometry conversion whatever their depth.
        let arrays = format!(
            r#"{{"type":"Feature","properties":{{}},"geometry":{{"type":"Point","coordinates":{}1{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(parse("x", &arrays, Crs::Wgs84).is_err());
        let mut g = r#"{"type":"Point","coordinates":[1,2]}"#.to_owned();
        for _ in 0..40 {
            g = format!(r#"{{"type":"GeometryCollection","geometries":[{g}]}}"#);
        }
        let doc = format!(r#"{{"type":"Feature","properties":{{}},"geometry":{g}}}"#);
        assert!(parse("x", &doc, Crs::Wgs84).is_err());
    }

    #[test]
    fn collections_round_trip_through_the_writer() {
        let text = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","geometry":{"type":"Point","coordinates":[118.3,35.0]},"properties":{"name":"a"}}]}"#;
        let parsed = parse("x", text, Crs::Gcj02).expect("parses");
        let mut out = Vec::new();
        write_collection(&mut out, &parsed.features, Crs::Gcj02).expect("writes");
        let again =
            parse("x", std::str::from_utf8(&out).expect("utf-8"), Crs::Gcj02).expect("reparses");
        let (a, b) = (&parsed.features[0].geometry, &again.features[0].geometry);
        let (geo::Geometry::Point(a), geo::Geometry::Point(b)) = (a, b) else {
            panic!("points")
        };
        assert!((a.x() - b.x()).abs() < 1e-9 && (a.y() - b.y()).abs() < 1e-9);
        assert!(
            (a.x() - 118.3).abs() > 1e-3,
            "GCJ-02 input was shifted to WGS84"
        );
    }
}
