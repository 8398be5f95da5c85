//! CSV with longitude/latitude columns (points), or a `wkt` column for other
//! geometries. Values are converted by the layer's schema; arrays and
//! records are JSON in their cell (arrays may also be `;`-separated).

use std::io::Write;

use serde_json::{Map, Value};

use crate::{
    crs::Crs,
    layers::{Feature, LayerDef, PropertyType, ValidationErrors, Violation},
    store::gpkg::blob::MAX_GEOMETRY_DEPTH,
};

const LON: &[&str] = &["longitude", "lon", "lng", "x", "经度"];
const LAT: &[&str] = &["latitude", "lat", "y", "纬度"];
const WKT: &[&str] = &["wkt", "geometry", "geom"];
const ID: &[&str] = &["id", "fid"];

/// Parentheses a `wkt` cell may nest. The WKT parser recurses once per
/// level, so the depth is checked (iteratively) before it runs; every
/// geometry level opens at least one parenthesis, so a cell within this
/// bound is within the store's [`MAX_GEOMETRY_DEPTH`] too.
pub const MAX_WKT_DEPTH: usize = MAX_GEOMETRY_DEPTH;

/// Refuse WKT nested deeper than [`MAX_WKT_DEPTH`], without recursion.
pub fn check_wkt_depth(wkt: &str) -> Result<(), String> {
    let mut depth = 0usize;
    for b in wkt.bytes() {
        match b {
            b'(' => {
                depth += 1;
                if depth > MAX_WKT_DEPTH {
                    return Err(format!(
                        "the WKT nests deeper than {MAX_WKT_DEPTH} levels of parentheses"
                    ));
                }
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Parse one WKT geometry within [`MAX_WKT_DEPTH`].
pub fn parse_wkt(wkt: &str) -> Result<geo::Geometry<f64>, String> {
    use geozero::ToGeo;
    check_wkt_depth(wkt)?;
    geozero::wkt::Wkt(wkt)
        .to_geo()
        .map_err(|e| format!("not WKT: {e}"))
}

/// A text cell as a spreadsheet will not run it: one that begins like a
/// formula (`=`, `+`, `-`, `@`, or a tab or carriage return that a
/// spreadsheet strips first) gets a leading `'` (OWASP "CSV Injection").
/// Numbers are written by the caller as numbers and never pass here.
pub fn neutralise_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// A cell as a value of the property's type.
pub fn value_from_text(kind: PropertyType, text: &str) -> Result<Value, String> {
    let t = text.trim();
    match kind {
        PropertyType::String | PropertyType::Enum | PropertyType::Datetime => {
            Ok(Value::String(t.to_owned()))
        }
        PropertyType::Integer => t
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("expected an integer, got `{t}`")),
        PropertyType::Number => match t.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Value::from(n)),
            _ => Err(format!("expected a finite number, got `{t}`")),
        },
        PropertyType::Boolean => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "t" | "是" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "f" | "否" => Ok(Value::Bool(false)),
            _ => Err(format!("expected true or false, got `{t}`")),
        },
        PropertyType::Array if !t.starts_with('[') => Ok(Value::Array(
            t.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        )),
        PropertyType::Array | PropertyType::Records => {
            serde_json::from_str(t).map_err(|e| format!("expected JSON, got `{t}`: {e}"))
        }
    }
}

fn find(headers: &[String], names: &[&str]) -> Option<usize> {
    headers
        .iter()
        .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
}

/// Read CSV rows as features; every unreadable row is reported with its line.
pub fn parse(
    layer: &LayerDef,
    text: &str,
    crs: Crs,
) -> Result<super::geojson::Parsed, ValidationErrors> {
    let mut errors = ValidationErrors::new(&layer.name);
    let fail = |index: usize, line: usize, field: &str, message: String| Violation {
        index,
        line: Some(line),
        name: None,
        field: field.to_owned(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_owned).collect(),
        Err(e) => {
            errors.push(fail(
                0,
                1,
                "header",
                format!("cannot read the header row: {e}"),
            ));
            return Err(errors);
        }
    };
    let (lon, lat, wkt) = (
        find(&headers, LON),
        find(&headers, LAT),
        find(&headers, WKT),
    );
    if wkt.is_none() && (lon.is_none() || lat.is_none()) {
        errors.push(fail(
            0,
            1,
            "header",
            "needs longitude and latitude columns (or a wkt column)".into(),
        ));
        return Err(errors);
    }
    let skip: Vec<usize> = [lon, lat, wkt, find(&headers, ID)]
        .into_iter()
        .flatten()
        .collect();
    let mut features = Vec::new();
    let mut lines = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(fail(index, line, "row", e.to_string()));
                continue;
            }
        };
        let cell = |i: usize| record.get(i).unwrap_or_default().trim();
        let geometry = match (wkt, lon, lat) {
            (Some(w), _, _) if !cell(w).is_empty() => match parse_wkt(cell(w)) {
                Ok(g) => g,
                Err(e) => {
                    errors.push(fail(index, line, "wkt", e));
                    continue;
                }
            },
            (_, Some(x), Some(y)) => match (cell(x).parse::<f64>(), cell(y).parse::<f64>()) {
                (Ok(x), Ok(y)) => geo::Point::new(x, y).into(),
                _ => {
                    errors.push(fail(
                        index,
                        line,
                        "geometry",
                        format!(
                            "longitude `{}` / latitude `{}` are not numbers",
                            cell(x),
                            cell(y)
                        ),
                    ));
                    continue;
                }
            },
            _ => {
                errors.push(fail(
                    index,
                    line,
                    "geometry",
                    "the row has no geometry".into(),
                ));
                continue;
            }
        };
        let mut properties = Map::new();
        let mut bad = false;
        for (i, h) in headers.iter().enumerate() {
            let text = cell(i);
            if skip.contains(&i) || text.is_empty() {
                continue;
            }
            let name = h.trim();
            let kind = layer
                .property(name)
                .map(|p| p.kind)
                .unwrap_or(PropertyType::String);
            match value_from_text(kind, text) {
                Ok(v) => {
                    properties.insert(name.to_owned(), v);
                }
                Err(message) => {
                    errors.push(fail(index, line, name, message));
                    bad = true;
                }
            }
        }
        if !bad {
            features.push(Feature {
                id: None,
                geometry: crs.geometry_to_wgs84(&geometry),
                properties,
            });
            lines.push(line);
        }
    }
    if errors.is_empty() {
        Ok(super::geojson::Parsed {
            features,
            lines: Some(lines),
        })
    } else {
        Err(errors)
    }
}

/// Write features as CSV: id, longitude, latitude for points (a `wkt`
/// column otherwise), then every property of the layer.
pub fn write(
    out: &mut impl Write,
    layer: &LayerDef,
    features: &[Feature],
    crs: Crs,
) -> Result<(), csv::Error> {
    let points = features
        .iter()
        .all(|f| matches!(f.geometry, geo::Geometry::Point(_)));
    let mut w = csv::Writer::from_writer(out);
    let mut header: Vec<&str> = vec!["id"];
    if points {
        header.extend(["longitude", "latitude"]);
    } else {
        header.push("wkt");
    }
    header.extend(layer.properties.iter().map(|p| p.name.as_str()));
    w.write_record(&header)?;
    for f in features {
        let g = crs.geometry_from_wgs84(&f.geometry);
        let mut row = vec![f.id.map(|i| i.to_string()).unwrap_or_default()];
        match &g {
            geo::Geometry::Point(p) if points => {
                row.push(p.x().to_string());
                row.push(p.y().to_string());
            }
            other => {
                use geozero::ToWkt;
                row.push(other.to_wkt().unwrap_or_default());
            }
        }
        for p in &layer.properties {
            row.push(match f.properties.get(&p.name) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => neutralise_formula(s).into_owned(),
                // Numbers stay numbers (a negative one too); arrays and
                // records are JSON, which begins with `[` or `{`.
                Some(v) => v.to_string(),
            });
        }
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Catalog;

    #[test]
    fn rows_become_typed_features_and_round_trip() {
        let catalog = Catalog::builtin().expect("catalog");
        let teams = catalog.get("rescue_teams").expect("layer");
        let text = "name,longitude,latitude,team_type,status,headcount,capabilities\n\
                    蓝天救援队,118.3,35.0,volunteer,standby,20,water_rescue;rope_rescue\n";
        let parsed = parse(teams, text, Crs::Wgs84).expect("parses");
        let f = &parsed.features[0];
        assert_eq!(f.properties["headcount"], 20);
        assert_eq!(
            f.properties["capabilities"],
            serde_json::json!(["water_rescue", "rope_rescue"])
        );
        let valid = teams.validate(0, f).expect("valid");
        let mut out = Vec::new();
        write(
            &mut out,
            teams,
            &[Feature {
                id: Some(1),
                ..valid
            }],
            Crs::Wgs84,
        )
        .expect("writes");
        let again =
            parse(teams, std::str::from_utf8(&out).expect("utf-8"), Crs::Wgs84).expect("reparses");
        assert_eq!(
            again.features[0].properties["capabilities"],
            f.properties["capabilities"]
        );
        assert_eq!(again.features[0].geometry, f.geometry);
    }

    #[test]
    fn deep_wkt_is_refused_with_its_line_and_the_limit() {
        let catalog = Catalog::builtin().expect("catalog");
        let teams = catalog.get("rescue_teams").expect("layer");
        let deep = format!(
            "{}POINT(1 2){}",
            "GEOMETRYCOLLECTION(".repeat(3000),
            ")".repeat(3000)
        );
        let text = format!("name,wkt\nok,POINT(118 35)\nbad,\"{deep}\"\n");
        let e = parse(teams, &text, Crs::Wgs84).expect_err("too deep");
        let v = &e.violations[0];
        assert_eq!((v.line, v.field.as_str()), (Some(3), "wkt"));
        assert!(
            v.message.contains(&MAX_WKT_DEPTH.to_string()),
            "{}",
            v.message
        );
        let nested = |n: usize| {
            format!(
                "{}POINT(1 2){}",
                "GEOMETRYCOLLECTION(".repeat(n),
                ")".repeat(n)
            )
        };
        assert!(parse_wkt(&nested(MAX_WKT_DEPTH - 1)).is_ok());
        assert!(parse_wkt(&nested(MAX_WKT_DEPTH)).is_err());
    }

    #[test]
    fn exported_formulas_are_neutralised_and_numbers_kept() {
        let catalog = Catalog::builtin().expect("catalog");
        let teams = catalog.get("rescue_teams").expect("layer");
        let mut properties = Map::new();
        properties.insert(
            "name".into(),
            Value::String("=HYPERLINK(\"http://evil.example\",\"x\")".into()),
        );
        properties.insert("headcount".into(), Value::from(-3));
        let f = Feature {
            id: Some(1),
            geometry: geo::Point::new(-118.5, 35.0).into(),
            properties,
        };
        let mut out = Vec::new();
        write(&mut out, teams, &[f], Crs::Wgs84).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        let row = text.lines().nth(1).expect("a row");
        assert!(row.contains("'=HYPERLINK"), "{row}");
        assert!(
            row.starts_with("1,-118.5,35,"),
            "coordinates stay numbers: {row}"
        );
        assert!(
            row.contains(",-3"),
            "a negative count stays a number: {row}"
        );
        for (cell, safe) in [
            ("+1", "'+1"),
            ("-x", "'-x"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("蓝天", "蓝天"),
            ("", ""),
        ] {
            assert_eq!(neutralise_formula(cell), safe);
        }
    }

    proptest::proptest! {
        #[test]
        fn wkt_parsing_never_panics(text in "\\PC{0,200}") {
            let _ = parse_wkt(&text);
        }

        #[test]
        fn wkt_of_adversarial_shape_never_panics(
            depth in 0usize..200,
            head in proptest::sample::select(vec![
                "GEOMETRYCOLLECTION(", "MULTIPOLYGON(((", "POLYGON((", "(", "POINT(",
            ]),
            body in "[0-9eE+\\-. ,()]{0,60}",
        ) {
            let text = format!("{}{}{}", head.repeat(depth), body, ")".repeat(depth));
            let r = parse_wkt(&text);
            // Within the bound the parser decides; past it the check refuses.
            if depth * head.matches('(').count() > MAX_WKT_DEPTH {
                proptest::prop_assert!(r.is_err());
            }
        }

        #[test]
        fn wkt_with_any_numbers_never_panics(x in proptest::num::f64::ANY, y in "[0-9]{1,400}(e[0-9]{1,4})?") {
            let _ = parse_wkt(&format!("POINT({x} {y})"));
            let _ = parse_wkt(&format!("LINESTRING({x} {y}, {y} {x})"));
        }

        #[test]
        fn formula_cells_never_start_a_formula(cell in "\\PC{0,20}") {
            let out = neutralise_formula(&cell);
            proptest::prop_assert!(!out.starts_with(['=', '+', '-', '@', '\t', '\r']));
        }
    }

    #[test]
    fn bad_cells_are_reported_with_line_and_column() {
        let catalog = Catalog::builtin().expect("catalog");
        let teams = catalog.get("rescue_teams").expect("layer");
        let text = "name,lon,lat,team_type,status,headcount\na,118,35,militia,standby,many\n";
        let e = parse(teams, text, Crs::Wgs84).expect_err("bad headcount");
        assert_eq!(
            (e.violations[0].line, e.violations[0].field.as_str()),
            (Some(2), "headcount")
        );
        assert!(
            parse(teams, "name,team_type\na,militia\n", Crs::Wgs84).is_err(),
            "no coordinates"
        );
    }
}
