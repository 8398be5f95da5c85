//! Filter expressions as PostgreSQL WHERE clauses. Every value is a bound
//! parameter (`$n`, typed); names are schema identifiers checked by the
//! catalog.
//!
//! As in the GeoPackage (see `gpkg::sql`), a spatial predicate becomes an
//! envelope test (`&&` on the GIST index) that selects a superset, and the
//! store checks such filters exactly with [`Expr::matches`]: both stores
//! then answer a filter with the same features, decided by the same code.
//! Under NOT a superset turns into a subset, so each subexpression is
//! translated both ways. One spatial test is exact in SQL: a point against
//! a box (a bbox query of a point layer, the commonest), by its
//! coordinates, so such a query is counted and paged by the database.

use crate::filter::{Expr, Literal, ID};

use super::schema::GEOM;

/// A parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Integer(i64),
    Real(f64),
    Bool(bool),
}

impl Bind {
    /// The cast that types the parameter, so that PostgreSQL never has to
    /// guess (an untyped parameter beside an expression is an error).
    fn cast(&self) -> &'static str {
        match self {
            Bind::Text(_) => "text",
            Bind::Integer(_) => "bigint",
            Bind::Real(_) => "double precision",
            Bind::Bool(_) => "boolean",
        }
    }
}

impl From<&Literal> for Bind {
    fn from(l: &Literal) -> Self {
        match l {
            Literal::Text(s) => Bind::Text(s.clone()),
            Literal::Integer(i) => Bind::Integer(*i),
            Literal::Number(n) => Bind::Real(*n),
            Literal::Bool(b) => Bind::Bool(*b),
        }
    }
}

/// Push `b` and return its typed placeholder.
pub fn param(binds: &mut Vec<Bind>, b: Bind) -> String {
    let cast = b.cast();
    binds.push(b);
    format!("${}::{cast}", binds.len())
}

pub fn column(property: &str) -> String {
    if property == ID {
        "fid".into()
    } else {
        format!("\"{property}\"")
    }
}

/// A WHERE condition selecting at least every feature `e` matches: exactly
/// those when [`is_exact`] (no spatial predicate, or only boxes against a
/// layer of `points` only, whose geometry column holds nothing else).
/// Placeholders continue after the `binds` already there.
pub fn condition(e: &Expr, points: bool, binds: &mut Vec<Bind>) -> String {
    translate(e, binds, true, points)
}

/// Whether [`condition`] selects exactly the features `e` matches, so no
/// feature need be tested again by [`Expr::matches`].
pub fn is_exact(e: &Expr, points: bool) -> bool {
    match e {
        Expr::Intersects(shape) => points && shape.rectangle().is_some(),
        Expr::And(v) | Expr::Or(v) => v.iter().all(|x| is_exact(x, points)),
        Expr::Not(x) => is_exact(x, points),
        _ => true,
    }
}

fn translate(e: &Expr, binds: &mut Vec<Bind>, sup: bool, points: bool) -> String {
    // Atomic predicates are made two-valued (a missing value is false, not
    // NULL) so that SQL and `Expr::matches` agree under NOT. The id is
    // never NULL and stays bare, so the primary key answers it.
    let two_valued = |sql: String| format!("coalesce(({sql}), false)");
    let on_id = |property: &str, sql: String| {
        if property == ID {
            format!("({sql})")
        } else {
            two_valued(sql)
        }
    };
    match e {
        Expr::And(parts) | Expr::Or(parts) => {
            let (op, empty) = if matches!(e, Expr::And(_)) {
                (" AND ", "true")
            } else {
                (" OR ", "false")
            };
            let inner: Vec<String> = parts
                .iter()
                .map(|p| translate(p, binds, sup, points))
                .collect();
            if inner.is_empty() {
                return empty.into();
            }
            balanced(&inner, op)
        }
        Expr::Not(inner) => match &**inner {
            Expr::Not(x) => translate(x, binds, sup, points),
            inner => format!("(NOT {})", translate(inner, binds, !sup, points)),
        },
        Expr::Const(b) => if *b { "true" } else { "false" }.into(),
        Expr::Compare {
            property,
            op,
            value,
        } => {
            let p = param(binds, value.into());
            on_id(property, format!("{} {} {p}", column(property), op.sql()))
        }
        Expr::Contains { property, value } => {
            // Array properties are jsonb arrays of strings.
            let p = param(binds, Bind::Text(value.clone()));
            two_valued(format!(
                "jsonb_typeof({c}) = 'array' AND {c} @> jsonb_build_array({p})",
                c = column(property)
            ))
        }
        Expr::Like { property, pattern } => {
            let p = param(binds, Bind::Text(pattern.clone()));
            two_valued(format!("{} LIKE {p} ESCAPE '\\'", column(property)))
        }
        Expr::In { property, values } => {
            let marks: Vec<String> = values.iter().map(|v| param(binds, Bind::from(v))).collect();
            if marks.is_empty() {
                return "false".into();
            }
            on_id(
                property,
                format!("{} IN ({})", column(property), marks.join(", ")),
            )
        }
        Expr::IsNull { property } => {
            if property == ID {
                "false".into()
            } else {
                format!("({} IS NULL)", column(property))
            }
        }
        Expr::Intersects(shape) => {
            if let Some(r) = shape.rectangle().filter(|_| points) {
                // Exact either way: the envelope test finds the candidates
                // on the GIST index (its boxes are rounded outward to
                // float4), the coordinates decide, as `Shape::intersects`
                // does for a point.
                let [a, b, c, d] = [r.min().x, r.min().y, r.max().x, r.max().y]
                    .map(|v| param(binds, Bind::Real(v)));
                // The envelope test stays bare (never NULL: the column is
                // NOT NULL), or the planner cannot take it to the index: a
                // `coalesce` round it cost a scan of the whole table.
                return format!(
                    "(\"{GEOM}\" && ST_MakeEnvelope({a}, {b}, {c}, {d}, 4326) AND coalesce(ST_X(\"{GEOM}\") BETWEEN {a} AND {c} AND ST_Y(\"{GEOM}\") BETWEEN {b} AND {d}, false))"
                );
            }
            if !sup {
                return "false".into();
            }
            match shape.bounding_rect() {
                Some(r) => {
                    let [a, b, c, d] = [r.min().x, r.min().y, r.max().x, r.max().y]
                        .map(|v| param(binds, Bind::Real(v)));
                    format!("(\"{GEOM}\" && ST_MakeEnvelope({a}, {b}, {c}, {d}, 4326))")
                }
                None => "false".into(),
            }
        }
    }
}

/// `a op b op c op d` as `((a op b) op (c op d))`: a flat run of n terms
/// nests n deep in the parser, the balanced form log2(n).
fn balanced(parts: &[String], op: &str) -> String {
    match parts {
        [one] => one.clone(),
        _ => {
            let (left, right) = parts.split_at(parts.len() / 2);
            format!("({}{op}{})", balanced(left, op), balanced(right, op))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{filter::parse_cql2, layers::Catalog};

    #[test]
    fn strings_are_bound_never_spliced_and_every_parameter_is_typed() {
        let catalog = Catalog::builtin().expect("catalog");
        let layer = catalog.get("rescue_teams").expect("layer");
        let e = parse_cql2(
            "name = 'x'' OR 1=1 --' AND leader LIKE '%王%' AND headcount > 3",
            layer,
        )
        .expect("parses");
        let mut binds = Vec::new();
        let sql = condition(&e, false, &mut binds);
        assert!(!sql.contains("OR 1=1"), "{sql}");
        assert_eq!(binds[0], Bind::Text("x' OR 1=1 --".into()));
        assert_eq!(sql.matches('$').count(), binds.len());
        assert!(sql.contains("$3::bigint"), "{sql}");
    }

    #[test]
    fn spatial_predicates_under_not_never_narrow_the_superset() {
        let catalog = Catalog::builtin().expect("catalog");
        let layer = catalog.get("rescue_teams").expect("layer");
        let e = parse_cql2("NOT S_INTERSECTS(geometry, BBOX(118, 34, 119, 35))", layer)
            .expect("parses");
        let mut binds = Vec::new();
        assert_eq!(condition(&e, false, &mut binds), "(NOT false)");
        let e =
            parse_cql2("S_INTERSECTS(geometry, BBOX(118, 34, 119, 35))", layer).expect("parses");
        let sql = condition(&e, false, &mut binds);
        assert!(sql.contains("&& ST_MakeEnvelope("), "{sql}");
        assert_eq!(binds.len(), 4);
    }

    #[test]
    fn a_box_is_exact_for_points_only() {
        let catalog = Catalog::builtin().expect("catalog");
        let layer = catalog.get("rescue_teams").expect("layer");
        let boxed = parse_cql2(
            "NOT S_INTERSECTS(geometry, BBOX(118, 34, 119, 35)) AND headcount > 3",
            layer,
        )
        .expect("parses");
        let mut binds = Vec::new();
        let sql = condition(&boxed, true, &mut binds);
        assert!(is_exact(&boxed, true));
        assert!(
            sql.contains("ST_X(") && sql.starts_with("((NOT (\"geom\" && "),
            "{sql}"
        );
        assert!(!is_exact(&boxed, false), "a box is a superset for areas");
        let polygon = parse_cql2(
            "S_INTERSECTS(geometry, POLYGON((118 34, 119 34, 118.5 35, 118 34)))",
            layer,
        )
        .expect("parses");
        assert!(
            !is_exact(&polygon, true),
            "a triangle is tested by the store"
        );
    }
}
