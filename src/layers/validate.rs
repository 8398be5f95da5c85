//! Validation of features against a layer's schema.
//!
//! Every write path (store, import, HTTP) goes through [`feature`], so a
//! refusal reads the same everywhere: which feature, which field, what is
//! wrong.

use std::fmt;

use geo::{
    kernels::{Kernel, Orientation, RobustKernel},
    Coord, CoordsIter, Intersects, Line, LineString,
};
use rstar::{primitives::GeomWithData, primitives::Rectangle, RTree, AABB};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Feature, GeometryKind, LayerDef, PropertyDef, PropertyType};

/// A batch's report lists at most this many violations; the total is kept.
pub const MAX_REPORTED_VIOLATIONS: usize = 100;

/// One thing wrong with one feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// Position of the feature in its batch (0-based).
    pub index: usize,
    /// Line of the source file, for line-oriented imports (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The feature's name, when it has a readable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `geometry`, a property name, or a path such as `inventory[2].quantity`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}")?,
            None => write!(f, "feature #{}", self.index)?,
        }
        if let Some(name) = &self.name {
            write!(f, " ({name})")?;
        }
        write!(f, ", {}: {}", self.field, self.message)
    }
}

/// A refusal names each distinct problem once, with this many of the
/// features that have it.
pub const PROBLEM_EXAMPLES: usize = 5;

/// A refusal summarises at most this many distinct problems; violations
/// past them still count in the total.
pub const MAX_PROBLEMS: usize = 50;

/// One distinct thing wrong with a batch: the same field wrong the same way
/// in `count` features. A file whose columns differ from the layer's schema
/// has a handful of these, not one line per feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub field: String,
    /// The message of its first occurrence.
    pub message: String,
    pub count: usize,
    /// The first features that have it (0-based positions in the batch).
    pub features: Vec<usize>,
    /// Their lines in the source file, for line-oriented imports (1-based).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<usize>,
    /// What makes two violations the same problem: the field and the
    /// message with its numbers and quoted values blanked out, so
    /// "latitude 95 is outside" and "latitude 97 is outside" are one.
    #[serde(skip)]
    key: String,
}

/// The grouping key of a violation (see [`Problem::key`]).
fn problem_key(field: &str, message: &str) -> String {
    fn blank(text: &str, key: &mut String) {
        let mut quoted = false;
        let mut last_digit = false;
        for c in text.chars() {
            if c == '"' {
                quoted = !quoted;
                key.push('"');
                last_digit = false;
            } else if quoted {
                continue;
            } else if c.is_ascii_digit() || (last_digit && (c == '.' || c == '-')) {
                if !last_digit {
                    key.push('#');
                }
                last_digit = true;
            } else {
                key.push(c);
                last_digit = false;
            }
        }
    }
    let mut key = String::with_capacity(field.len() + message.len() + 1);
    blank(field, &mut key);
    key.push('\u{1f}');
    blank(message, &mut key);
    key
}

/// Why a batch of features was refused: every violation found, up to
/// [`MAX_REPORTED_VIOLATIONS`], and the same summarised as distinct
/// problems with their counts.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
pub struct ValidationErrors {
    pub layer: String,
    pub violations: Vec<Violation>,
    /// How many violations there were in all, reported or not.
    pub total: usize,
    /// The distinct problems, in the order first seen.
    pub problems: Vec<Problem>,
}

impl ValidationErrors {
    pub fn new(layer: &str) -> Self {
        Self {
            layer: layer.to_owned(),
            violations: Vec::new(),
            total: 0,
            problems: Vec::new(),
        }
    }

    pub fn push(&mut self, v: Violation) {
        self.total += 1;
        let key = problem_key(&v.field, &v.message);
        // Few distinct problems by construction (capped), so a scan is
        // cheaper than hashing every key of a million-feature refusal.
        let full = self.problems.len() >= MAX_PROBLEMS;
        match self.problems.iter_mut().find(|p| p.key == key) {
            Some(p) => {
                p.count += 1;
                if p.features.len() < PROBLEM_EXAMPLES {
                    p.features.push(v.index);
                    p.lines.extend(v.line);
                }
            }
            None if !full => self.problems.push(Problem {
                field: v.field.clone(),
                message: v.message.clone(),
                count: 1,
                features: vec![v.index],
                lines: v.line.into_iter().collect(),
                key,
            }),
            None => {}
        }
        if self.violations.len() < MAX_REPORTED_VIOLATIONS {
            self.violations.push(v);
        }
    }

    pub fn extend(&mut self, vs: impl IntoIterator<Item = Violation>) {
        vs.into_iter().for_each(|v| self.push(v));
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Name the source lines of the reported features, for a batch read
    /// from a line-oriented file after the store found it invalid.
    pub fn locate(&mut self, line_of: impl Fn(usize) -> Option<usize>) {
        for v in &mut self.violations {
            v.line = line_of(v.index);
        }
        for p in &mut self.problems {
            p.lines = p.features.iter().filter_map(|&i| line_of(i)).collect();
        }
    }
}

impl fmt::Display for ValidationErrors {
    /// One clause per distinct problem: "3 invalid in layer `x`: `foo` is
    /// not a property … (1,000 features: #0, #1, #2, #3, #4, …)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} invalid in layer `{}`", self.total, self.layer)?;
        let mut summarised = 0;
        for (i, p) in self.problems.iter().enumerate() {
            summarised += p.count;
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "{}: {} (", p.field, p.message)?;
            if p.count > 1 {
                write!(f, "{} features: ", p.count)?;
            }
            let (what, at): (&str, &[usize]) = if p.lines.len() == p.features.len() {
                ("line ", &p.lines)
            } else {
                ("feature #", &p.features)
            };
            for (j, n) in at.iter().enumerate() {
                if j > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{what}{n}")?;
            }
            if p.count > at.len() {
                f.write_str(", …")?;
            }
            f.write_str(")")?;
        }
        if self.total > summarised {
            write!(f, "; … {} more of other kinds", self.total - summarised)?;
        }
        Ok(())
    }
}

pub(super) fn feature(
    layer: &LayerDef,
    index: usize,
    feature: &Feature,
) -> Result<Feature, Vec<Violation>> {
    let name = feature.name().map(str::to_owned);
    let violation = |field: &str, message: String| Violation {
        index,
        line: None,
        name: name.clone(),
        field: field.to_owned(),
        message,
    };
    let mut violations = Vec::new();

    if let Err(message) = geometry(layer, &feature.geometry) {
        violations.push(violation("geometry", message));
    }

    let mut properties = Map::new();
    for key in feature.properties.keys() {
        if layer.property(key).is_none() {
            violations.push(violation(
                key,
                format!(
                    "is not a property of layer `{}` (it has: {})",
                    layer.name,
                    layer.property_names()
                ),
            ));
        }
    }
    for def in &layer.properties {
        match feature.properties.get(&def.name) {
            None | Some(Value::Null) => {
                if def.required {
                    violations.push(violation(&def.name, "is required".into()));
                }
            }
            Some(value) => match property(def, value, &def.name) {
                Ok(v) => {
                    properties.insert(def.name.clone(), v);
                }
                Err((field, message)) => violations.push(violation(&field, message)),
            },
        }
    }
    if violations.is_empty() {
        Ok(Feature {
            id: feature.id,
            geometry: feature.geometry.clone(),
            properties,
        })
    } else {
        Err(violations)
    }
}

fn geometry(layer: &LayerDef, g: &geo::Geometry<f64>) -> Result<(), String> {
    let kind =
        GeometryKind::of(g).ok_or_else(|| "this geometry type is not supported".to_owned())?;
    if !layer.geometry.contains(&kind) {
        let allowed: Vec<String> = layer.geometry.iter().map(|k| k.to_string()).collect();
        return Err(format!(
            "a {kind} is not allowed here; layer `{}` takes {}",
            layer.name,
            allowed.join(" or ")
        ));
    }
    if g.coords_count() == 0 {
        return Err("the geometry is empty".into());
    }
    for (i, c) in g.coords_iter().enumerate() {
        if !c.x.is_finite() || !c.y.is_finite() {
            return Err(format!("position {i} is not a finite number"));
        }
        if !(-180.0..=180.0).contains(&c.x) {
            return Err(format!(
                "position {i}: longitude {} is outside -180…180",
                c.x
            ));
        }
        if !(-90.0..=90.0).contains(&c.y) {
            return Err(format!("position {i}: latitude {} is outside -90…90", c.y));
        }
    }
    let polygons: Vec<&geo::Polygon<f64>> = match g {
        geo::Geometry::Polygon(p) => vec![p],
        geo::Geometry::MultiPolygon(mp) => mp.0.iter().collect(),
        _ => Vec::new(),
    };
    for (pi, polygon) in polygons.iter().enumerate() {
        let rings = std::iter::once(polygon.exterior()).chain(polygon.interiors());
        for (ri, ring) in rings.enumerate() {
            if let Err(e) = simple_ring(ring) {
                let part = if polygons.len() > 1 {
                    format!("polygon {pi}, ")
                } else {
                    String::new()
                };
                let which = if ri == 0 {
                    "exterior ring".to_owned()
                } else {
                    format!("hole {}", ri - 1)
                };
                return Err(format!("{part}{which}: {e}"));
            }
        }
    }
    Ok(())
}

/// Edge pairs one ring's check compares at most (about a second of CPU):
/// a county boundary needs a few per edge.
pub const MAX_EDGE_PAIRS: usize = 4_000_000;

/// Check that a closed ring is simple: at least three distinct corners and no
/// two edges meeting except neighbours at their shared corner.
///
/// An R-tree over edge envelopes keeps this O(n log n) for real boundaries
/// (county rings run to thousands of vertices, each edge's box meeting a few
/// others). A ring drawn so that edge boxes overlap wholesale (a star or a
/// comb of long edges) would make it quadratic: past [`MAX_EDGE_PAIRS`]
/// compared pairs it is refused as too intricate, in bounded time.
pub(crate) fn simple_ring(ring: &LineString<f64>) -> Result<(), String> {
    let mut pts: Vec<Coord<f64>> = Vec::with_capacity(ring.0.len());
    for c in &ring.0 {
        if pts.last() != Some(c) {
            pts.push(*c);
        }
    }
    if pts.len() < 4 || pts.first() != pts.last() {
        return Err("a ring needs at least 4 positions, the last equal to the first".into());
    }
    let n = pts.len() - 1;
    let edges: Vec<GeomWithData<Rectangle<[f64; 2]>, usize>> = (0..n)
        .map(|i| {
            let (a, b) = (pts[i], pts[i + 1]);
            GeomWithData::new(
                Rectangle::from_corners([a.x.min(b.x), a.y.min(b.y)], [a.x.max(b.x), a.y.max(b.y)]),
                i,
            )
        })
        .collect();
    let tree = RTree::bulk_load(edges);
    let mut compared = 0usize;
    for i in 0..n {
        let (a, b) = (pts[i], pts[i + 1]);
        let envelope =
            AABB::from_corners([a.x.min(b.x), a.y.min(b.y)], [a.x.max(b.x), a.y.max(b.y)]);
        for other in tree.locate_in_envelope_intersecting(&envelope) {
            let j = other.data;
            if j <= i {
                continue;
            }
            compared += 1;
            if compared > MAX_EDGE_PAIRS {
                return Err(format!(
                    "the ring is too intricate to check: more than {MAX_EDGE_PAIRS} pairs of its \
                     {n} edges lie in each other's boxes; simplify it"
                ));
            }
            let (c, d) = (pts[j], pts[j + 1]);
            let adjacent = j == i + 1 || (i == 0 && j == n - 1);
            if adjacent {
                // Neighbours share one corner; they must not fold back over
                // each other (a zero-width spike).
                let (shared, p, q) = if j == i + 1 { (b, a, d) } else { (a, b, c) };
                let collinear = RobustKernel::orient2d(p, shared, q) == Orientation::Collinear;
                let same_side =
                    (p.x - shared.x) * (q.x - shared.x) + (p.y - shared.y) * (q.y - shared.y) > 0.0;
                if collinear && same_side && n > 2 {
                    return Err(format!(
                        "the ring folds back on itself at ({}, {})",
                        shared.x, shared.y
                    ));
                }
            } else if Line::new(a, b).intersects(&Line::new(c, d)) {
                return Err(format!(
                    "the ring crosses or touches itself (edges {i} and {j}, near ({}, {}))",
                    a.x, a.y
                ));
            }
        }
    }
    Ok(())
}

/// Convert a GeoJSON geometry, refusing what the conversion would silently
/// mend: unclosed rings and positions without two coordinates.
pub fn geometry_from_geojson(g: &geojson::Geometry) -> Result<geo::Geometry<f64>, String> {
    use geojson::Value as G;
    fn position(p: &[f64], at: &str) -> Result<(), String> {
        if p.len() < 2 {
            return Err(format!("{at}: a position needs longitude and latitude"));
        }
        Ok(())
    }
    fn ring(r: &[Vec<f64>], at: &str) -> Result<(), String> {
        for p in r {
            position(p, at)?;
        }
        if r.len() < 4 {
            return Err(format!("{at}: a ring needs at least 4 positions"));
        }
        if r.first() != r.last() {
            return Err(format!(
                "{at}: the ring is not closed (its last position must equal its first)"
            ));
        }
        Ok(())
    }
    match &g.value {
        G::Point(p) => position(p, "point")?,
        G::MultiPoint(ps) | G::LineString(ps) => {
            for p in ps {
                position(p, "position")?;
            }
        }
        G::MultiLineString(ls) => {
            for p in ls.iter().flatten() {
                position(p, "position")?;
            }
        }
        G::Polygon(rings) => {
            for (i, r) in rings.iter().enumerate() {
                ring(r, &ring_name(None, i))?;
            }
        }
        G::MultiPolygon(polys) => {
            for (pi, rings) in polys.iter().enumerate() {
                for (i, r) in rings.iter().enumerate() {
                    ring(r, &ring_name(Some(pi), i))?;
                }
            }
        }
        G::GeometryCollection(_) => {
            return Err("a GeometryCollection is not supported".into());
        }
    }
    geo::Geometry::<f64>::try_from(g.value.clone()).map_err(|e| e.to_string())
}

fn ring_name(polygon: Option<usize>, ring: usize) -> String {
    let part = polygon
        .map(|p| format!("polygon {p}, "))
        .unwrap_or_default();
    if ring == 0 {
        format!("{part}exterior ring")
    } else {
        format!("{part}hole {}", ring - 1)
    }
}

type PropertyResult = Result<Value, (String, String)>;

/// Longest text a string property may hold, in bytes: a description or an
/// address, not a file.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// Why a text may not be stored: a NUL byte (GDAL and C readers end the
/// string there and show a truncated name), or a length past
/// [`MAX_TEXT_BYTES`].
fn text_problem(text: &str) -> Option<String> {
    if text.contains('\0') {
        Some("a text must not contain a NUL character (U+0000)".into())
    } else if text.len() > MAX_TEXT_BYTES {
        Some(format!(
            "a text may hold at most {MAX_TEXT_BYTES} bytes, this one has {}",
            text.len()
        ))
    } else {
        None
    }
}

fn property(def: &PropertyDef, value: &Value, path: &str) -> PropertyResult {
    let fail = |message: String| Err((path.to_owned(), message));
    let describe = |v: &Value| -> String {
        let s = v.to_string();
        if s.chars().count() > 60 {
            format!("{}…", s.chars().take(60).collect::<String>())
        } else {
            s
        }
    };
    match def.kind {
        PropertyType::String => match value {
            Value::String(text) => match text_problem(text) {
                Some(why) => fail(why),
                None if def.name == super::NAME && text.trim().is_empty() => {
                    fail("a name must not be empty".into())
                }
                None => Ok(value.clone()),
            },
            other => fail(format!("expected a string, got {}", describe(other))),
        },
        PropertyType::Integer => {
            let n = match value {
                Value::Number(n) => n.as_i64().or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                }),
                _ => None,
            };
            match n {
                Some(n) => range(def, n as f64, path).map(|_| Value::from(n)),
                None => fail(format!("expected an integer, got {}", describe(value))),
            }
        }
        PropertyType::Number => match value.as_f64().filter(|f| f.is_finite()) {
            Some(f) if value.is_number() => range(def, f, path).map(|_| value.clone()),
            _ => fail(format!("expected a finite number, got {}", describe(value))),
        },
        PropertyType::Boolean => match value {
            Value::Bool(_) => Ok(value.clone()),
            other => fail(format!("expected true or false, got {}", describe(other))),
        },
        PropertyType::Datetime => match value.as_str().map(chrono::DateTime::parse_from_rfc3339) {
            Some(Ok(t)) => Ok(Value::String(
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
            )),
            _ => fail(format!(
                "expected an RFC 3339 date-time such as 2026-07-12T21:30:00+08:00, got {}",
                describe(value)
            )),
        },
        PropertyType::Enum => match value.as_str() {
            Some(s) if allowed(def, s) => Ok(value.clone()),
            _ => fail(format!(
                "{} is not one of {}",
                describe(value),
                def.values.as_deref().unwrap_or_default().join(", ")
            )),
        },
        PropertyType::Array => {
            let Some(items) = value.as_array() else {
                return fail(format!(
                    "expected an array of strings, got {}",
                    describe(value)
                ));
            };
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) if text_problem(s).is_some() => {
                        return Err((format!("{path}[{i}]"), text_problem(s).unwrap_or_default()))
                    }
                    Some(s) if def.values.is_none() || allowed(def, s) => {}
                    Some(_) => {
                        return Err((
                            format!("{path}[{i}]"),
                            format!(
                                "{} is not one of {}",
                                describe(item),
                                def.values.as_deref().unwrap_or_default().join(", ")
                            ),
                        ))
                    }
                    None => {
                        return Err((
                            format!("{path}[{i}]"),
                            format!("expected a string, got {}", describe(item)),
                        ))
                    }
                }
            }
            Ok(value.clone())
        }
        PropertyType::Records => {
            let Some(items) = value.as_array() else {
                return fail(format!(
                    "expected an array of objects, got {}",
                    describe(value)
                ));
            };
            let fields = def.fields.as_deref().unwrap_or_default();
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let at = format!("{path}[{i}]");
                let Some(obj) = item.as_object() else {
                    return Err((at, format!("expected an object, got {}", describe(item))));
                };
                if let Some(unknown) = obj.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
                    return Err((format!("{at}.{unknown}"), "is not a known field".into()));
                }
                let mut record = Map::new();
                for field in fields {
                    let fpath = format!("{at}.{}", field.name);
                    match obj.get(&field.name) {
                        None | Some(Value::Null) if field.required => {
                            return Err((fpath, "is required".into()))
                        }
                        None | Some(Value::Null) => {}
                        Some(v) => {
                            record.insert(field.name.clone(), property(field, v, &fpath)?);
                        }
                    }
                }
                out.push(Value::Object(record));
            }
            Ok(Value::Array(out))
        }
    }
}

fn allowed(def: &PropertyDef, s: &str) -> bool {
    def.values
        .as_ref()
        .is_some_and(|vs| vs.iter().any(|v| v == s))
}

fn range(def: &PropertyDef, f: f64, path: &str) -> Result<(), (String, String)> {
    if let Some(min) = def.minimum {
        if f < min {
            return Err((path.to_owned(), format!("{f} is below the minimum {min}")));
        }
    }
    if let Some(max) = def.maximum {
        if f > max {
            return Err((path.to_owned(), format!("{f} is above the maximum {max}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Catalog;
    use serde_json::json;

    fn teams() -> std::sync::Arc<LayerDef> {
        Catalog::builtin()
            .expect("builtin catalog")
            .get("rescue_teams")
            .cloned()
            .expect("rescue_teams")
    }

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn team(p: Value) -> Feature {
        Feature::new(geo::point! { x: 118.3, y: 35.0 }, props(p))
    }

    fn fields_of(r: Result<Feature, Vec<Violation>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn a_refusal_summarises_each_distinct_problem_once_with_its_count() {
        let layer = teams();
        let mut errors = ValidationErrors::new(&layer.name);
        // 1,000 features with the same unknown column and a bad latitude
        // that differs per feature, plus one required field missing.
        for i in 0..1000 {
            let mut f = team(
                json!({"name": "t", "status": "standby", "team_type": "militia", "手机": "1"}),
            );
            f.geometry = geo::point! { x: 118.3, y: 91.0 + f64::from(i) / 10.0 }.into();
            if let Err(vs) = feature(&layer, i as usize, &f) {
                errors.extend(vs);
            }
        }
        if let Err(vs) = feature(
            &layer,
            1000,
            &team(json!({"status": "standby", "team_type": "militia"})),
        ) {
            errors.extend(vs);
        }
        assert_eq!(errors.total, 2001, "{errors}");
        assert_eq!(errors.violations.len(), MAX_REPORTED_VIOLATIONS);
        let summary: Vec<(&str, usize)> = errors
            .problems
            .iter()
            .map(|p| (p.field.as_str(), p.count))
            .collect();
        assert_eq!(
            summary,
            [("geometry", 1000), ("手机", 1000), ("name", 1)],
            "{errors}"
        );
        assert_eq!(errors.problems[0].features, [0, 1, 2, 3, 4]);
        assert_eq!(errors.problems[2].features, [1000]);
        // The text a CLI user reads: one clause per problem, not 2,001.
        let text = errors.to_string();
        assert_eq!(text.matches("; ").count(), 2, "{text}");
        assert!(
            text.contains("1000 features: feature #0, feature #1"),
            "{text}"
        );
        // Lines named after the fact (a line-oriented file) replace the
        // positions in both the list and the summary.
        errors.locate(|i| Some(i + 10));
        assert_eq!(errors.problems[1].lines, [10, 11, 12, 13, 14]);
        assert_eq!(errors.violations[0].line, Some(10));
        assert!(errors.to_string().contains("line 10, line 11"), "{errors}");
    }

    #[test]
    fn distinct_problems_past_the_cap_still_count() {
        let mut errors = ValidationErrors::new("x");
        for i in 0..(MAX_PROBLEMS + 10) {
            errors.push(Violation {
                index: i,
                line: None,
                name: None,
                field: format!("col_{}", "x".repeat(i)),
                message: "is not a property".into(),
            });
        }
        assert_eq!(errors.problems.len(), MAX_PROBLEMS);
        assert_eq!(errors.total, MAX_PROBLEMS + 10);
        assert!(
            errors.to_string().ends_with("… 10 more of other kinds"),
            "{errors}"
        );
    }

    #[test]
    fn a_good_team_passes_and_is_normalised() {
        let f = team(
            json!({"name": "罗庄区消防救援大队", "team_type": "comprehensive_fire_rescue",
            "status": "standby", "headcount": 42.0, "capabilities": ["firefighting"], "leader": null}),
        );
        let ok = teams().validate(0, &f).expect("valid");
        assert_eq!(ok.properties["headcount"], json!(42));
        assert!(!ok.properties.contains_key("leader"));
    }

    #[test]
    fn each_schema_violation_names_its_field() {
        let l = teams();
        let base = json!({"name": "t", "team_type": "militia", "status": "standby"});
        let with = |k: &str, v: Value| {
            let mut p = base.clone();
            p[k] = v;
            team(p)
        };
        assert_eq!(
            fields_of(l.validate(0, &with("headcount", json!("ten")))),
            ["headcount"]
        );
        assert_eq!(
            fields_of(l.validate(0, &with("status", json!("flying")))),
            ["status"]
        );
        assert_eq!(
            fields_of(l.validate(0, &with("capabilities", json!(["teleport"])))),
            ["capabilities[0]"]
        );
        assert_eq!(
            fields_of(l.validate(0, &with("headcount", json!(-1)))),
            ["headcount"]
        );
        assert_eq!(
            fields_of(l.validate(0, &with("colour", json!("red")))),
            ["colour"]
        );
        assert_eq!(
            fields_of(l.validate(0, &team(json!({"name": "t", "team_type": "militia"})))),
            ["status"]
        );
    }

    #[test]
    fn datetimes_are_rfc3339_and_stored_in_utc() {
        let catalog = Catalog::builtin().expect("catalog");
        let incidents = catalog.get("incidents").expect("incidents");
        let f = Feature::new(
            geo::point! { x: 118.3, y: 35.0 },
            props(
                json!({"name": "x", "type": "flood", "status": "reported", "reported_at": "2026-07-12T21:30:00+08:00"}),
            ),
        );
        let ok = incidents.validate(0, &f).expect("valid");
        assert_eq!(
            ok.properties["reported_at"],
            json!("2026-07-12T13:30:00.000Z")
        );
        let mut bad = f.clone();
        bad.properties
            .insert("reported_at".into(), json!("yesterday"));
        assert_eq!(fields_of(incidents.validate(0, &bad)), ["reported_at"]);
    }

    #[test]
    fn records_are_checked_field_by_field() {
        let catalog = Catalog::builtin().expect("catalog");
        let depots = catalog.get("supply_depots").expect("depots");
        let f = Feature::new(
            geo::point! { x: 118.3, y: 35.0 },
            props(json!({"name": "d", "level": "town", "inventory": [
                {"item": "sandbags", "unit": "bag", "quantity": 5000},
                {"item": "masks", "quantity": "many"}]})),
        );
        assert_eq!(fields_of(depots.validate(0, &f)), ["inventory[1].quantity"]);
    }

    #[test]
    fn bad_coordinates_and_geometry_types_are_refused() {
        let l = teams();
        let p = props(json!({"name": "t", "team_type": "militia", "status": "standby"}));
        for g in [
            geo::Geometry::from(geo::point! { x: 181.0, y: 35.0 }),
            geo::point! { x: 118.0, y: -91.0 }.into(),
            geo::point! { x: f64::NAN, y: 35.0 }.into(),
            geo::point! { x: 118.0, y: f64::INFINITY }.into(),
            geo::Polygon::new(
                LineString::from(vec![(0.0, 0.0), (1.0, 0.0), (1.0, 0.0), (0.0, 0.0)]),
                vec![],
            )
            .into(),
        ] {
            let f = Feature::new(g.clone(), p.clone());
            assert_eq!(fields_of(l.validate(0, &f)), ["geometry"], "{g:?}");
        }
    }

    #[test]
    fn self_crossing_rings_are_refused_and_simple_ones_pass() {
        let bowtie = LineString::from(vec![
            (0.0, 0.0),
            (1.0, 1.0),
            (1.0, 0.0),
            (0.0, 1.0),
            (0.0, 0.0),
        ]);
        assert!(simple_ring(&bowtie).is_err());
        let square = LineString::from(vec![
            (0.0, 0.0),
            (1.0, 0.0),
            (1.0, 1.0),
            (0.0, 1.0),
            (0.0, 0.0),
        ]);
        assert!(simple_ring(&square).is_ok());
        let spike = LineString::from(vec![
            (0.0, 0.0),
            (2.0, 0.0),
            (1.0, 0.0),
            (1.0, 1.0),
            (0.0, 0.0),
        ]);
        assert!(simple_ring(&spike).is_err());
        let touching = LineString::from(vec![
            (0.0, 0.0),
            (2.0, 0.0),
            (2.0, 2.0),
            (1.0, 0.0),
            (0.0, 2.0),
            (0.0, 0.0),
        ]);
        assert!(simple_ring(&touching).is_err());
    }

    #[test]
    fn unclosed_geojson_rings_are_refused() {
        let open: geojson::Geometry = serde_json::from_value(json!({"type": "Polygon",
            "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]]}))
        .expect("parses");
        let e = geometry_from_geojson(&open).expect_err("open ring");
        assert!(e.contains("not closed"), "{e}");
    }

    #[test]
    fn rings_too_intricate_to_check_are_refused_in_bounded_time() {
        // A star of 24,000 vertices: simple, but its near-radial edges'
        // boxes overlap by the thousand (a quadratic check took seconds).
        let coords = crate::test_shapes::star(12_000, 1000.0, 400.0);
        let e = super::simple_ring(&coords).expect_err("refused");
        assert!(e.contains("too intricate"), "{e}");
        // A real-sized simple ring of 10,000 vertices passes.
        let circle: Vec<Coord<f64>> = (0..=10_000)
            .map(|i| {
                let a = (i % 10_000) as f64 * std::f64::consts::TAU / 10_000.0;
                Coord {
                    x: a.cos(),
                    y: a.sin(),
                }
            })
            .collect();
        assert!(super::simple_ring(&LineString::new(circle)).is_ok());
    }
}
