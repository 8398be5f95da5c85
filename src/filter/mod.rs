//! Feature filters: OGC CQL2-text (OGC API – Features Part 3) and the simple
//! `?property=value` filters of Part 1, resolved against a layer's schema
//! into one typed expression.
//!
//! The same [`Expr`] is translated to SQL by each store (values always bound
//! as parameters, never spliced) and evaluated in memory by [`Expr::matches`]
//! for exact spatial tests and for tiles. Its `Display` is a canonical text,
//! so equal filters make equal cache keys.
//!
//! Hand-written rather than the `cql2` crate: that crate brings JSON-schema
//! validation, an SQL parser and a second geozero major for what is here a
//! few hundred lines over our own schema types.

mod lex;
mod parse;
#[cfg(test)]
mod proptests;
mod spatial;

use std::fmt;

use serde_json::Value;

use crate::{
    index::Scalar,
    layers::{Feature, LayerDef, PropertyType},
};

pub use parse::{parse_cql2, parse_cql2_each};
pub use spatial::Shape;

/// The deepest a filter may nest. In the text each `(`…`)` group and each
/// `NOT` is one level; in the parsed [`Expr`] each `AND`, `OR` and `NOT`
/// node is one (and its canonical text nests exactly as deep). Every walk of
/// an `Expr` (evaluation, SQL, `Display`, drop) recurses, so this bound is
/// what keeps them within a thread's stack.
pub const MAX_DEPTH: usize = 64;
/// The most terms one filter may hold: each predicate counts one, an `IN`
/// list one per value. Bounds the work per feature and the parameters bound
/// in SQL.
pub const MAX_TERMS: usize = 1_024;
/// The longest filter text, in bytes: as much as a URI holds (HTTP refuses
/// longer ones before a handler runs), held for every other caller too.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// The most positions the geometry literals of one filter may hold in all.
pub const MAX_POSITIONS: usize = 10_000;

/// The name by which filters refer to a feature's geometry.
pub const GEOMETRY: &str = "geometry";
/// The name by which filters refer to a feature's id.
pub const ID: &str = "id";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// The operator that means the same with its operands swapped.
    fn flipped(self) -> Self {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            other => other,
        }
    }

    fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Eq => ord == Equal,
            CmpOp::Ne => ord != Equal,
            CmpOp::Lt => ord == Less,
            CmpOp::Le => ord != Greater,
            CmpOp::Gt => ord == Greater,
            CmpOp::Ge => ord != Less,
        }
    }
}

/// A literal, already converted to the type of the property it meets.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Integer(i64),
    Number(f64),
    Bool(bool),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Literal::Integer(i) => write!(f, "{i}"),
            Literal::Number(n) => write!(f, "{n:?}"),
            Literal::Bool(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
        }
    }
}

/// A filter over one layer's features.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// `property op literal`; `property` is a schema property or [`ID`].
    Compare {
        property: String,
        op: CmpOp,
        value: Literal,
    },
    /// An array property holds `value` among its items.
    Contains {
        property: String,
        value: String,
    },
    /// CQL2 `LIKE`: `%` any run, `_` one character, `\` escapes; case-sensitive.
    Like {
        property: String,
        pattern: String,
    },
    In {
        property: String,
        values: Vec<Literal>,
    },
    IsNull {
        property: String,
    },
    /// The feature's geometry meets this WGS84 geometry.
    Intersects(Shape),
    Const(bool),
}

impl Expr {
    /// All of `parts`, flattening nested conjunctions; `TRUE` when empty.
    pub fn all(parts: Vec<Expr>) -> Expr {
        let mut flat = Vec::new();
        for p in parts {
            match p {
                Expr::And(inner) => flat.extend(inner),
                Expr::Const(true) => {}
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => Expr::Const(true),
            1 => flat.pop().unwrap_or(Expr::Const(true)),
            _ => Expr::And(flat),
        }
    }

    /// Any of `parts`, flattening nested disjunctions; `FALSE` when empty.
    pub fn any(parts: Vec<Expr>) -> Expr {
        let mut flat = Vec::new();
        for p in parts {
            match p {
                Expr::Or(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => Expr::Const(false),
            1 => flat.pop().unwrap_or(Expr::Const(false)),
            _ => Expr::Or(flat),
        }
    }

    /// How deeply `AND`, `OR` and `NOT` nodes nest (0 for a predicate).
    pub fn depth(&self) -> usize {
        match self {
            Expr::And(v) | Expr::Or(v) => 1 + v.iter().map(Expr::depth).max().unwrap_or(0),
            Expr::Not(e) => 1 + e.depth(),
            _ => 0,
        }
    }

    /// Whether any spatial predicate appears: such filters are only
    /// approximated in SQL (by envelopes) and must be checked exactly.
    pub fn is_spatial(&self) -> bool {
        match self {
            Expr::Intersects(_) => true,
            Expr::And(v) | Expr::Or(v) => v.iter().any(Expr::is_spatial),
            Expr::Not(e) => e.is_spatial(),
            _ => false,
        }
    }

    /// Evaluate against one feature (SQL three-valued logic collapsed:
    /// comparisons with a missing value are false).
    pub fn matches<R: Record + ?Sized>(&self, f: &R) -> bool {
        let value = |p: &str| -> Option<Scalar<'_>> {
            if p == ID {
                f.id().map(Scalar::Integer)
            } else {
                f.scalar(p)
            }
        };
        match self {
            Expr::And(v) => v.iter().all(|e| e.matches(f)),
            Expr::Or(v) => v.iter().any(|e| e.matches(f)),
            Expr::Not(e) => !e.matches(f),
            Expr::Const(b) => *b,
            Expr::Compare {
                property,
                op,
                value: lit,
            } => value(property)
                .and_then(|v| compare(v, lit))
                .is_some_and(|ord| op.holds(ord)),
            Expr::Contains { property, value } => f
                .json(property)
                .and_then(Value::as_array)
                .is_some_and(|items| items.iter().any(|i| i.as_str() == Some(value))),
            Expr::Like { property, pattern } => match value(property) {
                Some(Scalar::Text(s)) => like(pattern, s),
                _ => false,
            },
            Expr::In { property, values } => value(property).is_some_and(|v| {
                values
                    .iter()
                    .any(|l| compare(v, l) == Some(std::cmp::Ordering::Equal))
            }),
            Expr::IsNull { property } => property != ID && f.is_null(property),
            Expr::Intersects(shape) => shape.intersects(&f.geometry()),
        }
    }
}

/// What a filter reads of a feature: a stored [`Feature`], or a row of the
/// in-memory index read from its columns without building one.
pub trait Record {
    fn id(&self) -> Option<i64>;
    /// A property as a string, number or boolean.
    fn scalar(&self, property: &str) -> Option<Scalar<'_>>;
    /// An array (or record) property.
    fn json(&self, property: &str) -> Option<&Value>;
    /// Whether the property is missing or null.
    fn is_null(&self, property: &str) -> bool;
    fn geometry(&self) -> std::borrow::Cow<'_, geo::Geometry<f64>>;
}

impl<R: Record + ?Sized> Record for &R {
    fn id(&self) -> Option<i64> {
        (**self).id()
    }
    fn scalar(&self, property: &str) -> Option<Scalar<'_>> {
        (**self).scalar(property)
    }
    fn json(&self, property: &str) -> Option<&Value> {
        (**self).json(property)
    }
    fn is_null(&self, property: &str) -> bool {
        (**self).is_null(property)
    }
    fn geometry(&self) -> std::borrow::Cow<'_, geo::Geometry<f64>> {
        (**self).geometry()
    }
}

impl Record for Feature {
    fn id(&self) -> Option<i64> {
        self.id
    }
    fn scalar(&self, property: &str) -> Option<Scalar<'_>> {
        self.properties.get(property).and_then(crate::index::scalar)
    }
    fn json(&self, property: &str) -> Option<&Value> {
        self.properties.get(property)
    }
    fn is_null(&self, property: &str) -> bool {
        self.properties.get(property).is_none_or(Value::is_null)
    }
    fn geometry(&self) -> std::borrow::Cow<'_, geo::Geometry<f64>> {
        std::borrow::Cow::Borrowed(&self.geometry)
    }
}

impl Record for crate::index::Row<'_> {
    fn id(&self) -> Option<i64> {
        Some(crate::index::Row::id(self))
    }
    fn scalar(&self, property: &str) -> Option<Scalar<'_>> {
        crate::index::Row::scalar(self, property)
    }
    fn json(&self, property: &str) -> Option<&Value> {
        crate::index::Row::json(self, property)
    }
    fn is_null(&self, property: &str) -> bool {
        crate::index::Row::scalar(self, property).is_none()
            && crate::index::Row::json(self, property).is_none_or(Value::is_null)
    }
    fn geometry(&self) -> std::borrow::Cow<'_, geo::Geometry<f64>> {
        crate::index::Row::geometry(self)
    }
}

/// A value against a literal of its property's type.
fn compare(v: Scalar<'_>, l: &Literal) -> Option<std::cmp::Ordering> {
    match (v, l) {
        (Scalar::Text(a), Literal::Text(b)) => Some(a.cmp(b.as_str())),
        (Scalar::Integer(a), Literal::Integer(b)) => Some(a.cmp(b)),
        (Scalar::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        (Scalar::Integer(a), Literal::Number(b)) => (a as f64).partial_cmp(b),
        (Scalar::Number(a), Literal::Integer(b)) => a.partial_cmp(&(*b as f64)),
        (Scalar::Number(a), Literal::Number(b)) => a.partial_cmp(b),
        _ => None,
    }
}

/// CQL2 LIKE matching over characters.
pub fn like(pattern: &str, s: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Any,
        One,
        Lit(char),
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '%' => Tok::Any,
            '_' => Tok::One,
            '\\' => Tok::Lit(chars.next().unwrap_or('\\')),
            c => Tok::Lit(c),
        });
    }
    let s: Vec<char> = s.chars().collect();
    // Classic two-pointer wildcard match with backtracking to the last `%`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match toks.get(j) {
            Some(Tok::One) => {
                i += 1;
                j += 1;
            }
            Some(Tok::Lit(c)) if *c == s[i] => {
                i += 1;
                j += 1;
            }
            Some(Tok::Any) => {
                star = Some((j, i));
                j += 1;
            }
            _ => match star {
                Some((sj, si)) => {
                    j = sj + 1;
                    i = si + 1;
                    star = Some((sj, si + 1));
                }
                None => return false,
            },
        }
    }
    toks[j..].iter().all(|t| *t == Tok::Any)
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, parts: &[Expr], op: &str| -> fmt::Result {
            write!(f, "(")?;
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "{p}")?;
            }
            write!(f, ")")
        };
        match self {
            Expr::And(v) => join(f, v, "AND"),
            Expr::Or(v) => join(f, v, "OR"),
            Expr::Not(e) => write!(f, "NOT {e}"),
            Expr::Const(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Expr::Compare {
                property,
                op,
                value,
            } => {
                write!(f, "\"{property}\" {} {value}", op.sql())
            }
            // Equality with an array property means "contains": written
            // so, the text parses back to the same expression.
            Expr::Contains { property, value } => {
                write!(f, "\"{property}\" = '{}'", value.replace('\'', "''"))
            }
            Expr::Like { property, pattern } => {
                write!(f, "\"{property}\" LIKE '{}'", pattern.replace('\'', "''"))
            }
            Expr::In { property, values } => {
                write!(f, "\"{property}\" IN (")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, ")")
            }
            Expr::IsNull { property } => write!(f, "\"{property}\" IS NULL"),
            Expr::Intersects(s) => write!(f, "S_INTERSECTS(geometry, {})", wkt(s.geometry())),
        }
    }
}

/// The WKT of a filter geometry as the parser reads it back: positions
/// joined by `,`, each number in its shortest exact form (an exponent only
/// below 1e-4, where the plain form would be long).
fn wkt(g: &geo::Geometry<f64>) -> String {
    use std::fmt::Write as _;
    fn num(out: &mut String, n: f64) {
        let _ = if n != 0.0 && n.abs() < 1e-4 {
            write!(out, "{n:e}")
        } else {
            write!(out, "{n}")
        };
    }
    fn ring(out: &mut String, coords: &[geo::Coord<f64>]) {
        out.push('(');
        for (i, c) in coords.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            num(out, c.x);
            out.push(' ');
            num(out, c.y);
        }
        out.push(')');
    }
    fn polygon(out: &mut String, p: &geo::Polygon<f64>) {
        out.push('(');
        for (i, r) in std::iter::once(p.exterior())
            .chain(p.interiors())
            .enumerate()
        {
            if i > 0 {
                out.push(',');
            }
            ring(out, &r.0);
        }
        out.push(')');
    }
    let mut out = String::new();
    match g {
        geo::Geometry::Point(p) => {
            out.push_str("POINT");
            ring(&mut out, &[p.0]);
        }
        geo::Geometry::LineString(l) => {
            out.push_str("LINESTRING");
            ring(&mut out, &l.0);
        }
        geo::Geometry::Polygon(p) => {
            out.push_str("POLYGON");
            polygon(&mut out, p);
        }
        geo::Geometry::MultiPolygon(mp) => {
            out.push_str("MULTIPOLYGON(");
            for (i, p) in mp.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                polygon(&mut out, p);
            }
            out.push(')');
        }
        // Not made by the parser; written so the key stays distinct.
        other => {
            use geozero::ToWkt;
            out = other.to_wkt().unwrap_or_else(|_| format!("{other:?}"));
        }
    }
    out
}

/// Why a filter was refused; the text says what and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

/// The type a property's values compare as, or `None` for properties that
/// filters cannot address (records).
pub fn comparable(layer: &LayerDef, property: &str) -> Result<PropertyType, FilterError> {
    if property == ID {
        return Ok(PropertyType::Integer);
    }
    let def = layer.property(property).ok_or_else(|| {
        FilterError(format!(
            "`{property}` is not a queryable of `{}` (see /ogc/collections/{}/queryables)",
            layer.name, layer.name
        ))
    })?;
    match def.kind {
        PropertyType::Records => Err(FilterError(format!(
            "`{property}` holds records and cannot be filtered on"
        ))),
        k => Ok(k),
    }
}

/// Convert a literal for comparison with a property of type `kind`.
pub fn coerce(
    property: &str,
    kind: PropertyType,
    lit: Literal,
    layer: &LayerDef,
) -> Result<Literal, FilterError> {
    let wrong = |want: &str, lit: &Literal| {
        Err(FilterError(format!(
            "`{property}` is {want}; {lit} cannot be compared with it"
        )))
    };
    match (kind, lit) {
        (PropertyType::Integer, Literal::Integer(i)) => Ok(Literal::Integer(i)),
        (PropertyType::Integer, Literal::Number(n)) if n.fract() == 0.0 && n.abs() < 9e15 => {
            Ok(Literal::Integer(n as i64))
        }
        (PropertyType::Number, Literal::Integer(i)) => Ok(Literal::Number(i as f64)),
        (PropertyType::Number, Literal::Number(n)) => Ok(Literal::Number(n)),
        (PropertyType::Integer | PropertyType::Number, Literal::Text(s)) => {
            match s.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => coerce(property, kind, Literal::Number(n), layer),
                _ => wrong("a number", &Literal::Text(s)),
            }
        }
        (PropertyType::Boolean, Literal::Bool(b)) => Ok(Literal::Bool(b)),
        (PropertyType::Boolean, Literal::Text(s)) => match s.as_str() {
            "true" | "TRUE" | "1" => Ok(Literal::Bool(true)),
            "false" | "FALSE" | "0" => Ok(Literal::Bool(false)),
            _ => wrong("true or false", &Literal::Text(s)),
        },
        (PropertyType::Datetime, Literal::Text(s)) => chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| {
                Literal::Text(
                    t.with_timezone(&chrono::Utc)
                        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                        .to_string(),
                )
            })
            .or_else(|_| {
                // A bare date means its first instant (UTC).
                chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                    .map(|d| Literal::Text(format!("{d}T00:00:00.000Z")))
            })
            .map_err(|_| {
                FilterError(format!(
                    "`{property}` is a date-time; '{s}' is not RFC 3339"
                ))
            }),
        (PropertyType::Enum, Literal::Text(s)) => {
            let def = layer.property(property);
            match def.and_then(|d| d.values.as_ref()) {
                Some(values) if !values.contains(&s) => Err(FilterError(format!(
                    "'{s}' is not a value of `{property}` (one of {})",
                    values.join(", ")
                ))),
                _ => Ok(Literal::Text(s)),
            }
        }
        (PropertyType::String | PropertyType::Array, Literal::Text(s)) => Ok(Literal::Text(s)),
        (PropertyType::String, other) => wrong("a string", &other),
        (PropertyType::Enum, other) => wrong("an enumeration", &other),
        (PropertyType::Datetime, other) => wrong("a date-time", &other),
        (PropertyType::Boolean, other) => wrong("a boolean", &other),
        (PropertyType::Integer | PropertyType::Number, other) => wrong("a number", &other),
        (PropertyType::Array, other) => wrong("an array of strings", &other),
        (PropertyType::Records, other) => wrong("records", &other),
    }
}

/// A Part 1 simple filter `?property=value`: equality, or membership for
/// array properties.
pub fn equals(layer: &LayerDef, property: &str, text: &str) -> Result<Expr, FilterError> {
    let kind = comparable(layer, property)?;
    if kind == PropertyType::Array {
        return Ok(Expr::Contains {
            property: property.to_owned(),
            value: text.to_owned(),
        });
    }
    let value = coerce(property, kind, Literal::Text(text.to_owned()), layer)?;
    Ok(Expr::Compare {
        property: property.to_owned(),
        op: CmpOp::Eq,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_follows_cql2() {
        assert!(like("罗庄%", "罗庄区消防救援大队"));
        assert!(like("%消防%", "罗庄区消防救援大队"));
        assert!(like("a_c", "abc"));
        assert!(!like("a_c", "abbc"));
        assert!(like("100\\%", "100%"));
        assert!(!like("100\\%", "1000"));
        assert!(!like("abc", "ABC"), "case-sensitive");
        assert!(like("%", ""));
    }
}
