//! CQL2-text (OGC 21-065) parsing: the Basic CQL2 conformance class plus
//! LIKE, IN, BETWEEN, IS NULL (advanced comparison operators) and
//! S_INTERSECTS with POINT, LINESTRING, POLYGON, MULTIPOLYGON and BBOX
//! literals (basic spatial functions).

use std::collections::HashMap;

use crate::layers::{simple_ring, LayerDef, PropertyType};

use super::{
    coerce, comparable,
    lex::{lex, Tok},
    CmpOp, Expr, FilterError, Literal, Shape, GEOMETRY, MAX_DEPTH, MAX_POSITIONS, MAX_TERMS,
    MAX_TEXT_BYTES,
};

/// Geometry literals already read, by the token they start at: the shape,
/// the token after it and the positions it holds. A literal reads the same
/// whatever the layer, so parsing one filter for several layers validates
/// and indexes each geometry once.
type Shapes = HashMap<usize, (Shape, usize, usize)>;

struct Parser<'a> {
    toks: &'a [(usize, Tok)],
    shapes: &'a mut Shapes,
    pos: usize,
    layer: &'a LayerDef,
    len: usize,
    /// The `(` groups and `NOT`s open where the parser stands.
    depth: usize,
    /// Terms read so far (see [`MAX_TERMS`]).
    terms: usize,
    /// Positions read so far in geometry literals.
    positions: usize,
}

fn too_deep() -> FilterError {
    FilterError(format!(
        "the filter nests deeper than {MAX_DEPTH} levels (each parenthesis, NOT, AND or OR counts)"
    ))
}

/// Parse CQL2-text against `layer`: unknown properties, values of the wrong
/// type and unsupported constructs are refused with a message, and so is a
/// filter past [`MAX_TEXT_BYTES`], [`MAX_DEPTH`], [`MAX_TERMS`] or
/// [`MAX_POSITIONS`]: each bound is checked before the parser goes past it.
pub fn parse_cql2(text: &str, layer: &LayerDef) -> Result<Expr, FilterError> {
    parse_cql2_each(text, [layer])?
        .pop()
        .unwrap_or_else(|| Err(FilterError("no layer to filter".into())))
}

/// Parse one CQL2-text for each of `layers` (as [`parse_cql2`] does), the
/// text read once: the outer error is one that holds for every layer (too
/// long, not lexically CQL2, empty), each inner result that layer's own.
pub fn parse_cql2_each<'l>(
    text: &str,
    layers: impl IntoIterator<Item = &'l LayerDef>,
) -> Result<Vec<Result<Expr, FilterError>>, FilterError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(FilterError(format!(
            "the filter is {} bytes long; at most {MAX_TEXT_BYTES} are allowed",
            text.len()
        )));
    }
    let toks = lex(text)?;
    if toks.is_empty() {
        return Err(FilterError("the filter is empty".into()));
    }
    let len = text.chars().count();
    let mut shapes = Shapes::new();
    Ok(layers
        .into_iter()
        .map(|layer| {
            Parser {
                toks: &toks,
                shapes: &mut shapes,
                pos: 0,
                layer,
                len,
                depth: 0,
                terms: 0,
                positions: 0,
            }
            .filter()
        })
        .collect())
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Quoted(s) => format!("\"{s}\""),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Num(n, _) => format!("{n}"),
        Tok::Op(o) => format!("`{}`", o.sql()),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
    }
}

enum Operand {
    Property(String),
    Value(Literal),
}

impl Parser<'_> {
    /// The whole filter, with the checks on the tree it makes.
    fn filter(mut self) -> Result<Expr, FilterError> {
        let e = self.or()?;
        if let Some((at, t)) = self.toks.get(self.pos) {
            return Err(FilterError(format!(
                "unexpected {} at character {at}",
                show(t)
            )));
        }
        // The text's nesting bounds the tree's to a few levels more (a bare
        // `OR`, `BETWEEN` and `NOT LIKE` make nodes without a parenthesis);
        // the tree is held to the same bound so that its canonical text,
        // which nests exactly as deep as the tree, parses again.
        if e.depth() > MAX_DEPTH {
            return Err(too_deep());
        }
        // Likewise the canonical text (quoted names, spaced operators) is
        // held to the text bound: it is what a cache key or a link carries.
        let canonical = e.to_string().len();
        if canonical > MAX_TEXT_BYTES {
            return Err(FilterError(format!(
                "the filter is {canonical} bytes long written out in full; at most {MAX_TEXT_BYTES} are allowed"
            )));
        }
        Ok(e)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.len, |(at, _)| *at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        t
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.keyword(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<(), FilterError> {
        let at = self.at();
        match self.next() {
            Some(t) if t == want => Ok(()),
            Some(t) => Err(FilterError(format!(
                "expected {what} at character {at}, found {}",
                show(&t)
            ))),
            None => Err(FilterError(format!(
                "expected {what} at the end of the filter"
            ))),
        }
    }

    /// One more level of nesting, refused past [`MAX_DEPTH`] before the
    /// parser recurses into it.
    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok(())
    }

    fn count_terms(&mut self, e: &Expr) -> Result<(), FilterError> {
        // A term is a leaf, `BETWEEN`'s pair of comparisons, or either
        // under the `NOT` of `NOT LIKE`, `NOT IN`, `NOT BETWEEN`.
        fn weight(e: &Expr) -> usize {
            match e {
                Expr::In { values, .. } => values.len(),
                Expr::And(v) => v.len(),
                Expr::Not(e) => weight(e),
                _ => 1,
            }
        }
        self.terms += weight(e);
        if self.terms > MAX_TERMS {
            return Err(FilterError(format!(
                "the filter has more than {MAX_TERMS} terms (each predicate and each IN value counts)"
            )));
        }
        Ok(())
    }

    // Parenthesised runs of the same operator are flattened into one n-ary
    // node: `(a OR b) OR c` is `a OR b OR c`, so nesting grows only where
    // the operator changes.
    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut parts = vec![self.and()?];
        while self.eat_keyword("OR") {
            parts.push(self.and()?);
        }
        Ok(Expr::any(parts))
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut parts = vec![self.not()?];
        while self.eat_keyword("AND") {
            parts.push(self.not()?);
        }
        Ok(Expr::all(parts))
    }

    /// A run of `NOT`s is read in a loop, not by recursion.
    fn not(&mut self) -> Result<Expr, FilterError> {
        let mut nots = 0;
        while self.eat_keyword("NOT") {
            self.enter()?;
            nots += 1;
        }
        let mut e = self.predicate()?;
        for _ in 0..nots {
            e = Expr::Not(Box::new(e));
        }
        self.depth -= nots;
        Ok(e)
    }

    fn predicate(&mut self) -> Result<Expr, FilterError> {
        if self.peek() == Some(&Tok::LParen) {
            self.enter()?;
            self.pos += 1;
            let e = self.or()?;
            self.expect(Tok::RParen, "`)`")?;
            self.depth -= 1;
            return Ok(e);
        }
        let e = self.term()?;
        self.count_terms(&e)?;
        Ok(e)
    }

    /// One predicate (no parentheses around it).
    fn term(&mut self) -> Result<Expr, FilterError> {
        for spatial in ["S_INTERSECTS", "INTERSECTS"] {
            if self.eat_keyword(spatial) {
                return self.intersects();
            }
        }
        if let Some(Tok::Ident(s)) = self.peek() {
            let upper = s.to_ascii_uppercase();
            if upper.starts_with("S_") || upper.starts_with("T_") || upper.starts_with("A_") {
                return Err(FilterError(format!(
                    "`{s}` at character {} is not supported; spatial filters use S_INTERSECTS",
                    self.at()
                )));
            }
        }
        let at = self.at();
        let left = self.operand()?;
        // Predicates that need a property on the left.
        let negated = self.eat_keyword("NOT");
        if self.eat_keyword("LIKE") {
            let property = self.property_of(left, at, "LIKE")?;
            let kind = comparable(self.layer, &property)?;
            if !matches!(
                kind,
                PropertyType::String | PropertyType::Enum | PropertyType::Datetime
            ) {
                return Err(FilterError(format!(
                    "LIKE needs a text property; `{property}` is not one"
                )));
            }
            let pattern = match self.next() {
                Some(Tok::Str(s)) => s,
                _ => {
                    return Err(FilterError(format!(
                        "LIKE at character {at} needs a quoted pattern"
                    )))
                }
            };
            return Ok(not_if(negated, Expr::Like { property, pattern }));
        }
        if self.eat_keyword("BETWEEN") {
            let property = self.property_of(left, at, "BETWEEN")?;
            let kind = comparable(self.layer, &property)?;
            let low = self.literal_for(&property, kind)?;
            if !self.eat_keyword("AND") {
                return Err(FilterError(format!(
                    "BETWEEN at character {at} needs `AND`"
                )));
            }
            let high = self.literal_for(&property, kind)?;
            let range = Expr::And(vec![
                Expr::Compare {
                    property: property.clone(),
                    op: CmpOp::Ge,
                    value: low,
                },
                Expr::Compare {
                    property,
                    op: CmpOp::Le,
                    value: high,
                },
            ]);
            return Ok(not_if(negated, range));
        }
        if self.eat_keyword("IN") {
            let property = self.property_of(left, at, "IN")?;
            let kind = comparable(self.layer, &property)?;
            self.expect(Tok::LParen, "`(` after IN")?;
            let mut values = vec![self.literal_for(&property, kind)?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                values.push(self.literal_for(&property, kind)?);
            }
            self.expect(Tok::RParen, "`)` closing the IN list")?;
            return Ok(not_if(negated, Expr::In { property, values }));
        }
        if negated {
            return Err(FilterError(format!(
                "NOT at character {at} must be followed by LIKE, BETWEEN or IN here"
            )));
        }
        if self.eat_keyword("IS") {
            let property = self.property_of(left, at, "IS NULL")?;
            comparable(self.layer, &property)?;
            let negated = self.eat_keyword("NOT");
            if !self.eat_keyword("NULL") {
                return Err(FilterError(format!(
                    "expected NULL after IS at character {}",
                    self.at()
                )));
            }
            return Ok(not_if(negated, Expr::IsNull { property }));
        }
        // A boolean literal alone is a predicate (CQL2 `booleanLiteral`).
        if let Operand::Value(Literal::Bool(b)) = left {
            if !matches!(self.peek(), Some(Tok::Op(_))) {
                return Ok(Expr::Const(b));
            }
        }
        let op_at = self.at();
        let op = match self.next() {
            Some(Tok::Op(op)) => op,
            Some(t) => {
                return Err(FilterError(format!(
                    "expected a comparison at character {op_at}, found {}",
                    show(&t)
                )))
            }
            None => {
                return Err(FilterError(
                    "the filter ends where a comparison was expected".into(),
                ))
            }
        };
        let right_at = self.at();
        let right = self.operand()?;
        match (left, right) {
            (Operand::Property(p), Operand::Value(v)) => self.compare(p, op, v),
            (Operand::Value(v), Operand::Property(p)) => self.compare(p, op.flipped(), v),
            (Operand::Property(_), Operand::Property(_)) => Err(FilterError(format!(
                "comparing two properties (character {right_at}) is not supported"
            ))),
            (Operand::Value(_), Operand::Value(_)) => Err(FilterError(format!(
                "a comparison at character {at} needs a property on one side"
            ))),
        }
    }

    fn compare(&self, property: String, op: CmpOp, value: Literal) -> Result<Expr, FilterError> {
        let kind = comparable(self.layer, &property)?;
        if kind == PropertyType::Array {
            return match (op, value) {
                (CmpOp::Eq, Literal::Text(v)) => Ok(Expr::Contains { property, value: v }),
                _ => Err(FilterError(format!(
                    "`{property}` is an array: only `{property} = 'value'` (contains) is supported"
                ))),
            };
        }
        let value = coerce(&property, kind, value, self.layer)?;
        Ok(Expr::Compare {
            property,
            op,
            value,
        })
    }

    fn property_of(&self, o: Operand, at: usize, what: &str) -> Result<String, FilterError> {
        match o {
            Operand::Property(p) => Ok(p),
            Operand::Value(v) => Err(FilterError(format!(
                "{what} at character {at} needs a property on its left, not {v}"
            ))),
        }
    }

    fn literal_for(&mut self, property: &str, kind: PropertyType) -> Result<Literal, FilterError> {
        let at = self.at();
        match self.operand()? {
            Operand::Value(v) => coerce(property, kind, v, self.layer),
            Operand::Property(p) => Err(FilterError(format!(
                "expected a value at character {at}, found the property `{p}`"
            ))),
        }
    }

    fn operand(&mut self) -> Result<Operand, FilterError> {
        let at = self.at();
        match self.next() {
            Some(Tok::Str(s)) => Ok(Operand::Value(Literal::Text(s))),
            Some(Tok::Num(n, true)) if n.abs() < 9e15 => {
                Ok(Operand::Value(Literal::Integer(n as i64)))
            }
            Some(Tok::Num(n, _)) => Ok(Operand::Value(Literal::Number(n))),
            Some(Tok::Quoted(name)) => Ok(Operand::Property(name)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("TRUE") => {
                Ok(Operand::Value(Literal::Bool(true)))
            }
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("FALSE") => {
                Ok(Operand::Value(Literal::Bool(false)))
            }
            Some(Tok::Ident(s))
                if s.eq_ignore_ascii_case("TIMESTAMP") || s.eq_ignore_ascii_case("DATE") =>
            {
                self.expect(Tok::LParen, "`(`")?;
                let v = match self.next() {
                    Some(Tok::Str(v)) => v,
                    _ => {
                        return Err(FilterError(format!(
                            "{s} at character {at} needs a quoted value"
                        )))
                    }
                };
                self.expect(Tok::RParen, "`)`")?;
                Ok(Operand::Value(Literal::Text(v)))
            }
            Some(Tok::Ident(s))
                if ["AND", "OR", "NOT", "LIKE", "IN", "BETWEEN", "IS", "NULL"]
                    .iter()
                    .any(|k| s.eq_ignore_ascii_case(k)) =>
            {
                Err(FilterError(format!(
                    "unexpected keyword `{s}` at character {at}"
                )))
            }
            Some(Tok::Ident(s)) => Ok(Operand::Property(s)),
            Some(t) => Err(FilterError(format!(
                "expected a property or a value at character {at}, found {}",
                show(&t)
            ))),
            None => Err(FilterError(
                "the filter ends where a property or a value was expected".into(),
            )),
        }
    }

    fn intersects(&mut self) -> Result<Expr, FilterError> {
        self.expect(Tok::LParen, "`(` after S_INTERSECTS")?;
        let first_at = self.at();
        let a = self.geometry_operand()?;
        self.expect(Tok::Comma, "`,` between the two geometries")?;
        let b = self.geometry_operand()?;
        self.expect(Tok::RParen, "`)` closing S_INTERSECTS")?;
        match (a, b) {
            (None, Some(shape)) | (Some(shape), None) => Ok(Expr::Intersects(shape)),
            _ => Err(FilterError(format!(
                "S_INTERSECTS at character {first_at} needs the `{GEOMETRY}` property and one geometry literal"
            ))),
        }
    }

    /// `None` for the feature geometry property, `Some` for a literal.
    fn geometry_operand(&mut self) -> Result<Option<Shape>, FilterError> {
        let start = self.pos;
        if let Some((shape, end, held)) = self.shapes.get(&start) {
            let (shape, end, held) = (shape.clone(), *end, *held);
            self.add_positions(held)?;
            self.pos = end;
            return Ok(Some(shape));
        }
        let before = self.positions;
        let Some(g) = self.geometry_literal()? else {
            return Ok(None);
        };
        let shape = Shape::new(g);
        let held = self.positions - before;
        self.shapes.insert(start, (shape.clone(), self.pos, held));
        Ok(Some(shape))
    }

    fn add_positions(&mut self, n: usize) -> Result<(), FilterError> {
        self.positions += n;
        if self.positions > MAX_POSITIONS {
            return Err(FilterError(format!(
                "the filter's geometries have more than {MAX_POSITIONS} positions"
            )));
        }
        Ok(())
    }

    /// `None` for the feature geometry property, `Some` for a literal.
    fn geometry_literal(&mut self) -> Result<Option<geo::Geometry<f64>>, FilterError> {
        let at = self.at();
        let name = match self.next() {
            Some(Tok::Ident(s)) | Some(Tok::Quoted(s)) => s,
            Some(t) => {
                return Err(FilterError(format!(
                    "expected a geometry at character {at}, found {}",
                    show(&t)
                )))
            }
            None => {
                return Err(FilterError(
                    "the filter ends where a geometry was expected".into(),
                ))
            }
        };
        let upper = name.to_ascii_uppercase();
        let g: geo::Geometry<f64> = match upper.as_str() {
            "GEOMETRY" | "GEOM" => return Ok(None),
            "POINT" => {
                self.expect(Tok::LParen, "`(`")?;
                let c = self.coord()?;
                self.expect(Tok::RParen, "`)`")?;
                geo::Point::from(c).into()
            }
            "LINESTRING" => {
                let line = self.coord_list()?;
                if line.iter().all(|c| *c == line[0]) {
                    return Err(FilterError(format!(
                        "the LINESTRING at character {at} needs two distinct positions"
                    )));
                }
                geo::LineString::new(line).into()
            }
            "POLYGON" => self.polygon()?.into(),
            "MULTIPOLYGON" => {
                self.expect(Tok::LParen, "`(`")?;
                let mut polys = vec![self.polygon()?];
                while self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                    polys.push(self.polygon()?);
                }
                self.expect(Tok::RParen, "`)`")?;
                geo::MultiPolygon::new(polys).into()
            }
            "BBOX" | "ENVELOPE" => {
                self.expect(Tok::LParen, "`(`")?;
                let mut v = vec![self.number()?];
                while self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                    v.push(self.number()?);
                }
                self.expect(Tok::RParen, "`)`")?;
                let [x0, y0, x1, y1] = match v.as_slice() {
                    [a, b, c, d] => [*a, *b, *c, *d],
                    [a, b, _, c, d, _] => [*a, *b, *c, *d],
                    _ => {
                        return Err(FilterError(format!(
                            "BBOX at character {at} needs 4 (or 6) numbers"
                        )))
                    }
                };
                if x0 > x1 || y0 > y1 {
                    return Err(FilterError(format!(
                        "BBOX at character {at}: the minimum corner comes first"
                    )));
                }
                // Written back as a POLYGON, a box without area would be a
                // degenerate ring.
                if x0 == x1 || y0 == y1 {
                    return Err(FilterError(format!("BBOX at character {at} has no area")));
                }
                for (x, y) in [(x0, y0), (x1, y1)] {
                    position_in_range(geo::coord! { x: x, y: y }, at)?;
                }
                geo::Rect::new(geo::coord! { x: x0, y: y0 }, geo::coord! { x: x1, y: y1 })
                    .to_polygon()
                    .into()
            }
            _ => {
                return Err(FilterError(format!(
                    "`{name}` at character {at} is not `geometry` or a supported geometry literal \
                     (POINT, LINESTRING, POLYGON, MULTIPOLYGON, BBOX)"
                )))
            }
        };
        Ok(Some(g))
    }

    fn number(&mut self) -> Result<f64, FilterError> {
        let at = self.at();
        match self.next() {
            Some(Tok::Num(n, _)) => Ok(n),
            _ => Err(FilterError(format!("expected a number at character {at}"))),
        }
    }

    fn coord(&mut self) -> Result<geo::Coord<f64>, FilterError> {
        let at = self.at();
        self.add_positions(1)?;
        let x = self.number()?;
        let y = self.number()?;
        // A third ordinate (height) is allowed and ignored.
        if matches!(self.peek(), Some(Tok::Num(..))) {
            self.pos += 1;
        }
        let c = geo::coord! { x: x, y: y };
        position_in_range(c, at)?;
        Ok(c)
    }

    fn coord_list(&mut self) -> Result<Vec<geo::Coord<f64>>, FilterError> {
        self.expect(Tok::LParen, "`(`")?;
        let mut v = vec![self.coord()?];
        while self.peek() == Some(&Tok::Comma) {
            self.pos += 1;
            v.push(self.coord()?);
        }
        self.expect(Tok::RParen, "`)`")?;
        Ok(v)
    }

    fn polygon(&mut self) -> Result<geo::Polygon<f64>, FilterError> {
        let at = self.at();
        self.expect(Tok::LParen, "`(`")?;
        let mut rings = vec![self.coord_list()?];
        while self.peek() == Some(&Tok::Comma) {
            self.pos += 1;
            rings.push(self.coord_list()?);
        }
        self.expect(Tok::RParen, "`)`")?;
        let rings: Vec<geo::LineString<f64>> =
            rings.into_iter().map(geo::LineString::new).collect();
        // The checks writes get: closed, at least three corners, no
        // self-crossing or zero-width spike.
        for (i, r) in rings.iter().enumerate() {
            if r.0.len() < 4 || r.0.first() != r.0.last() {
                return Err(FilterError(format!(
                    "the polygon at character {at} has a ring that is not closed or has fewer than 4 positions"
                )));
            }
            simple_ring(r).map_err(|e| {
                let which = if i == 0 {
                    "exterior ring".to_owned()
                } else {
                    format!("hole {}", i - 1)
                };
                FilterError(format!("the polygon at character {at}, {which}: {e}"))
            })?;
        }
        // Corners that are collinear only up to rounding pass the ring
        // checks yet enclose nothing.
        let exterior = &rings[0];
        if let Some(bounds) = geo::BoundingRect::bounding_rect(exterior) {
            let area = geo::Area::unsigned_area(&geo::Polygon::new(exterior.clone(), vec![]));
            if area <= 1e-9 * bounds.width() * bounds.height() {
                return Err(FilterError(format!(
                    "the polygon at character {at} has no area"
                )));
            }
        }
        let mut rings = rings.into_iter();
        let exterior = rings.next().unwrap_or_else(|| geo::LineString::new(vec![]));
        Ok(geo::Polygon::new(exterior, rings.collect()))
    }
}

/// Filter geometries are WGS84 longitude, latitude (CQL2's default CRS84).
fn position_in_range(c: geo::Coord<f64>, at: usize) -> Result<(), FilterError> {
    if !(-180.0..=180.0).contains(&c.x) {
        return Err(FilterError(format!(
            "the position at character {at}: longitude {} is outside -180…180",
            c.x
        )));
    }
    if !(-90.0..=90.0).contains(&c.y) {
        return Err(FilterError(format!(
            "the position at character {at}: latitude {} is outside -90…90",
            c.y
        )));
    }
    Ok(())
}

fn not_if(negated: bool, e: Expr) -> Expr {
    if negated {
        Expr::Not(Box::new(e))
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Catalog;

    fn teams() -> std::sync::Arc<LayerDef> {
        Catalog::builtin()
            .expect("catalog")
            .get("rescue_teams")
            .cloned()
            .expect("layer")
    }

    fn ok(text: &str) -> Expr {
        parse_cql2(text, &teams()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) -> String {
        parse_cql2(text, &teams()).expect_err(text).0
    }

    #[test]
    fn comparisons_and_logic_parse_with_precedence() {
        let e = ok("status = 'standby' AND headcount >= 20 OR NOT team_type = 'militia'");
        assert!(matches!(e, Expr::Or(ref v) if v.len() == 2 && matches!(v[0], Expr::And(_))));
        let e = ok("20 < headcount");
        assert_eq!(
            e,
            Expr::Compare {
                property: "headcount".into(),
                op: CmpOp::Gt,
                value: Literal::Integer(20)
            }
        );
    }

    #[test]
    fn advanced_comparisons_parse() {
        assert!(matches!(ok("name LIKE '罗庄%'"), Expr::Like { .. }));
        assert!(matches!(ok("name NOT LIKE '%队'"), Expr::Not(_)));
        assert!(
            matches!(ok("status IN ('standby', 'returning')"), Expr::In { ref values, .. } if values.len() == 2)
        );
        assert!(matches!(ok("headcount BETWEEN 10 AND 30"), Expr::And(_)));
        assert!(matches!(ok("leader IS NOT NULL"), Expr::Not(_)));
        assert!(matches!(
            ok("capabilities = 'water_rescue'"),
            Expr::Contains { .. }
        ));
        assert!(matches!(ok("\"status\"='standby'"), Expr::Compare { .. }));
    }

    #[test]
    fn spatial_literals_parse() {
        for text in [
            "S_INTERSECTS(geometry, POINT(118.3 35.0))",
            "S_INTERSECTS(geometry, BBOX(118.2, 34.9, 118.4, 35.1))",
            "s_intersects(POLYGON((118 34, 119 34, 119 35, 118 34)), geometry)",
            "S_INTERSECTS(geometry, MULTIPOLYGON(((118 34, 119 34, 119 35, 118 34))))",
        ] {
            assert!(matches!(ok(text), Expr::Intersects(_)), "{text}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        assert!(err("colour = 'red'").contains("colour"));
        assert!(err("status = 'flying'").contains("flying"));
        assert!(err("headcount > 'many'").contains("number"));
        assert!(err("status = ").contains("end"));
        assert!(err("status = 'standby").contains("unterminated"));
        assert!(err("name = 'a'; DROP TABLE rescue_teams").contains(";"));
        assert!(err("S_WITHIN(geometry, POINT(1 2))").contains("not supported"));
        assert!(err("S_INTERSECTS(geometry, POLYGON((1 1, 2 2, 3 1)))").contains("closed"));
        assert!(err("status = 'standby' AND").contains("end"));
    }

    #[test]
    fn each_bound_is_refused_by_name_just_past_it() {
        // Written as the canonical text is, so that is no longer.
        let name = format!("\"name\" = '{}'", "x".repeat(MAX_TEXT_BYTES - 11));
        assert_eq!(name.len(), MAX_TEXT_BYTES);
        ok(&name);
        assert!(err(&format!("{name} ")).contains(&format!("{MAX_TEXT_BYTES} are allowed")));

        let levels = format!("{MAX_DEPTH} levels");
        let parens = |n: usize| format!("{}id = 1{}", "(".repeat(n), ")".repeat(n));
        let nots = |n: usize| format!("{}id = 1", "NOT ".repeat(n));
        assert_eq!(ok(&parens(MAX_DEPTH)), ok("id = 1"));
        assert_eq!(ok(&nots(MAX_DEPTH)).depth(), MAX_DEPTH);
        assert!(err(&parens(MAX_DEPTH + 1)).contains(&levels));
        assert!(err(&nots(MAX_DEPTH + 1)).contains(&levels));
        // Far past the bound the parser stops at it, not at the stack's end.
        assert!(err(&parens(30_000)).contains(&levels));
        assert!(err(&nots(12_000)).contains(&levels));
        // Nodes made without a parenthesis count in the tree.
        assert!(
            err(&nots(MAX_DEPTH - 1).replace("id = 1", "(id = 1 OR name NOT LIKE 'x')"))
                .contains(&levels)
        );

        let terms = format!("{MAX_TERMS} terms");
        let ors = |n: usize| vec!["id = 1"; n].join(" OR ");
        assert!(matches!(ok(&ors(MAX_TERMS)), Expr::Or(v) if v.len() == MAX_TERMS));
        assert!(err(&ors(MAX_TERMS + 1)).contains(&terms));
        let between = vec!["headcount BETWEEN 1 AND 2"; MAX_TERMS / 2 + 1].join(" OR ");
        assert!(err(&between).contains(&terms));
        let list = |n: usize| format!("id IN ({})", vec!["1"; n].join(", "));
        ok(&list(MAX_TERMS));
        assert!(err(&list(MAX_TERMS + 1)).contains(&terms));
    }

    #[test]
    fn runs_of_one_operator_are_flattened() {
        let e = ok("(id = 1 OR (id = 2 OR id = 3)) OR ((id = 4))");
        assert!(matches!(&e, Expr::Or(v) if v.len() == 4), "{e:?}");
        let e = ok("id = 1 AND headcount BETWEEN 1 AND 2 AND (id = 2 AND id = 3)");
        assert!(matches!(&e, Expr::And(v) if v.len() == 5), "{e:?}");
        assert_eq!(e.depth(), 1);
    }

    #[test]
    fn boolean_literals_are_predicates_anywhere() {
        assert_eq!(ok("TRUE"), Expr::Const(true));
        assert!(matches!(ok("(FALSE OR id = 1)"), Expr::Or(v) if v[0] == Expr::Const(false)));
        assert!(matches!(ok("NOT TRUE AND id = 1"), Expr::And(_)));
    }

    #[test]
    fn canonical_text_parses_back_to_the_same_expression() {
        for text in [
            "status = 'standby' AND headcount >= 20 OR NOT team_type = 'militia'",
            "name NOT LIKE '%队' OR headcount NOT BETWEEN 1 AND 9",
            "capabilities = 'water_rescue' AND leader IS NOT NULL",
            "status NOT IN ('standby', 'returning') AND id = 3 AND TRUE",
            "name = 'it''s' OR \"name\" = '\u{1F600}\u{200B}'",
            "S_INTERSECTS(geometry, BBOX(118.2, 34.9, 118.4, 35.1)) OR NOT (id < -7)",
            "S_INTERSECTS(geometry, LINESTRING(118 35, -0.0 1e-7))",
            "S_INTERSECTS(geometry, MULTIPOLYGON(((118 34, 119 34, 119 35, 118 34))))",
        ] {
            let first = ok(text);
            let again = ok(&first.to_string());
            assert_eq!(again, first, "{text} → {first}");
            assert_eq!(again.to_string(), first.to_string());
        }
    }

    #[test]
    fn filter_geometries_are_checked_like_writes() {
        for (geometry, named) in [
            ("POINT(200 100)", "longitude 200"),
            ("POINT(118 -90.5)", "latitude -90.5"),
            ("POINT(1e308 1e308)", "longitude"),
            ("POINT(1e400 1)", "finite"),
            ("POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))", "crosses"),
            ("POLYGON((0 0, 1 1, 2 2, 0 0))", "folds back"),
            (
                "POLYGON((0 0, 1 0, 1 1, 0 0), (0 0, 0.5 0.5, 0.25 0.25, 0 0))",
                "hole 0",
            ),
            ("BBOX(0, 0, 0, 1)", "no area"),
        ] {
            let e = err(&format!("S_INTERSECTS(geometry, {geometry})"));
            assert!(e.contains(named), "{geometry}: {e}");
        }
        // Back and forth between two corners: the shortest text per position.
        let zigzag = |n: usize| {
            let line: Vec<&str> = (0..n)
                .map(|i| if i % 2 == 0 { "0 0" } else { "1 1" })
                .collect();
            format!("S_INTERSECTS(geometry, LINESTRING({}))", line.join(","))
        };
        assert!(zigzag(MAX_POSITIONS + 1).len() < MAX_TEXT_BYTES);
        assert!(matches!(ok(&zigzag(MAX_POSITIONS)), Expr::Intersects(_)));
        let two = format!("{} OR {}", zigzag(2), zigzag(MAX_POSITIONS - 1));
        assert!(err(&two).contains(&format!("{MAX_POSITIONS} positions")));
    }
}
