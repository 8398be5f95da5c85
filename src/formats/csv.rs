//! CSV with longitude/latitude columns (points), or a `wkt` column for other
//! geometries. Values are converted by the layer's schema; arrays and
//! records are JSON in their cell (arrays may also be `;`-separated).

use std::io::Write;

use serde_json::{Map, Value};

use crate::{
    crs::Crs,
    layers::{Feature, LayerDef, PropertyType, ValidationErrors, Violation},
};

const LON: &[&str] = &["longitude", "lon", "lng", "x", "经度"];
const LAT: &[&str] = &["latitude", "lat", "y", "纬度"];
const WKT: &[&str] = &["wkt", "geometry", "geom"];
const ID: &[&str] = &["id", "fid"];

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
            (Some(w), _, _) if !cell(w).is_empty() => {
                use geozero::ToGeo;
                match geozero::wkt::Wkt(cell(w))
                    .to_geo()
                    .map_err(|e| e.to_string())
                {
                    Ok(g) => g,
                    Err(e) => {
                        errors.push(fail(index, line, "wkt", format!("not WKT: {e}")));
                        continue;
                    }
                }
            }
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
                Some(Value::String(s)) => s.clone(),
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
