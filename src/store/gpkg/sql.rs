//! Filter expressions as SQLite WHERE clauses. Every value is a bound
//! parameter; names are schema identifiers checked by the catalog.
//!
//! Spatial predicates become R-tree envelope tests, which select a superset;
//! the store then checks such filters exactly with [`Expr::matches`]. Under
//! NOT a superset turns into a subset, so each subexpression is translated
//! both as a superset (`sup`) and a subset (`sub`) of its true set.

use crate::{
    filter::{Expr, Literal, ID},
    layers::LayerDef,
};

use super::schema;

/// A parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Integer(i64),
    Real(f64),
    Bool(bool),
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

fn column(property: &str) -> String {
    if property == ID {
        "fid".into()
    } else {
        format!("\"{property}\"")
    }
}

/// A WHERE condition selecting at least every feature `e` matches (exactly
/// those when `e` has no spatial predicate).
pub fn superset(layer: &LayerDef, e: &Expr, binds: &mut Vec<Bind>) -> String {
    translate(layer, e, binds, true)
}

fn translate(layer: &LayerDef, e: &Expr, binds: &mut Vec<Bind>, sup: bool) -> String {
    // Atomic predicates are made two-valued (a missing value is false, not
    // NULL) so that SQL and `Expr::matches` agree under NOT.
    let two_valued = |sql: String| format!("coalesce(({sql}), 0)");
    // The id is never NULL: a test of it is two-valued as it stands, and
    // left bare SQLite answers it from the primary key (wrapped in
    // `coalesce`, `fid IN (…)` scanned the whole table: a page of 100
    // features read by id took 70 ms of a million-row layer).
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
                (" AND ", "1")
            } else {
                (" OR ", "0")
            };
            let inner: Vec<String> = parts
                .iter()
                .map(|p| translate(layer, p, binds, sup))
                .collect();
            if inner.is_empty() {
                return empty.into();
            }
            balanced(&inner, op)
        }
        Expr::Not(inner) => match &**inner {
            // NOT NOT x is x (sup flips twice): a chain of NOTs costs SQLite's
            // parser at most one level.
            Expr::Not(x) => translate(layer, x, binds, sup),
            inner => format!("(NOT {})", translate(layer, inner, binds, !sup)),
        },
        Expr::Const(b) => if *b { "1" } else { "0" }.into(),
        Expr::Compare {
            property,
            op,
            value,
        } => {
            binds.push(value.into());
            on_id(property, format!("{} {} ?", column(property), op.sql()))
        }
        Expr::Contains { property, value } => {
            binds.push(Bind::Text(value.clone()));
            format!(
                "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid({c}) THEN {c} ELSE '[]' END) WHERE value = ?)",
                c = column(property)
            )
        }
        Expr::Like { property, pattern } => {
            binds.push(Bind::Text(pattern.clone()));
            two_valued(format!("{} LIKE ? ESCAPE '\\'", column(property)))
        }
        Expr::In { property, values } => {
            let marks = vec!["?"; values.len()].join(", ");
            binds.extend(values.iter().map(Bind::from));
            on_id(property, format!("{} IN ({marks})", column(property)))
        }
        Expr::IsNull { property } => {
            if property == ID {
                "0".into()
            } else {
                format!("({} IS NULL)", column(property))
            }
        }
        Expr::Intersects(shape) => {
            if !sup {
                return "0".into();
            }
            match shape.bounding_rect() {
                Some(r) => {
                    binds.extend([r.max().x, r.min().x, r.max().y, r.min().y].map(Bind::Real));
                    format!(
                        "fid IN (SELECT id FROM \"{}\" WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?)",
                        schema::rtree(layer)
                    )
                }
                None => "0".into(),
            }
        }
    }
}

/// `a op b op c op d` as `((a op b) op (c op d))`: SQLite limits an
/// expression tree to 1,000 levels, and a flat run of n terms is n deep,
/// where the balanced form is log2(n). `parts` is not empty; the order of
/// the terms (and so of their bound parameters) is kept.
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
    fn strings_are_bound_never_spliced() {
        let catalog = Catalog::builtin().expect("catalog");
        let layer = catalog.get("rescue_teams").expect("layer");
        let e = parse_cql2("name = 'x'' OR 1=1 --' AND leader LIKE '%王%'", layer).expect("parses");
        let mut binds = Vec::new();
        let sql = superset(layer, &e, &mut binds);
        assert!(!sql.contains("OR 1=1"), "{sql}");
        assert_eq!(binds[0], Bind::Text("x' OR 1=1 --".into()));
        assert_eq!(sql.matches('?').count(), binds.len());
    }

    /// The deepest parenthesis nesting of `sql`.
    fn nesting(sql: &str) -> usize {
        let (mut depth, mut deepest) = (0usize, 0);
        for c in sql.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            deepest = deepest.max(depth);
        }
        deepest
    }

    #[test]
    fn long_runs_nest_logarithmically_and_not_pairs_cancel() {
        let catalog = Catalog::builtin().expect("catalog");
        let layer = catalog.get("rescue_teams").expect("layer");
        let ors = vec!["id = 1"; crate::filter::MAX_TERMS].join(" OR ");
        let mut binds = Vec::new();
        let sql = superset(layer, &parse_cql2(&ors, layer).expect("parses"), &mut binds);
        assert_eq!(binds.len(), crate::filter::MAX_TERMS);
        // log2(1,024) levels of OR, plus `coalesce((…), 0)` around each term.
        assert!(nesting(&sql) <= 10 + 2, "{}", nesting(&sql));

        let nots = format!("{}id = 1", "NOT ".repeat(crate::filter::MAX_DEPTH - 1));
        let sql = superset(
            layer,
            &parse_cql2(&nots, layer).expect("parses"),
            &mut binds,
        );
        assert_eq!(sql, "(NOT (fid = ?))");
    }

    #[test]
    fn spatial_predicates_under_not_never_narrow_the_superset() {
        let catalog = Catalog::builtin().expect("catalog");
        let layer = catalog.get("rescue_teams").expect("layer");
        let e = parse_cql2("NOT S_INTERSECTS(geometry, BBOX(118, 34, 119, 35))", layer)
            .expect("parses");
        let mut binds = Vec::new();
        assert_eq!(superset(layer, &e, &mut binds), "(NOT 0)");
    }
}
