//! A layer's properties in typed columns, one value per row slot: integers
//! and numbers as plain arrays, booleans as bytes, strings as codes into a
//! dictionary while a column has few distinct values (a town, an industry)
//! and into one shared byte buffer once it has many (a name, a credit
//! code). A row costs a few bytes a property instead of a JSON map's
//! hundreds, which is what lets a million points live in memory.
//!
//! Every value the store returns is kept exactly: a value that does not fit
//! its column's type (another tool wrote it) is kept aside as JSON, so the
//! feature read back from the columns equals the one that went in.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::layers::{LayerDef, PropertyType};

/// A borrowed scalar of a row: what filters compare and tiles encode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Text(&'a str),
    Integer(i64),
    Number(f64),
    Bool(bool),
}

/// Below this many distinct strings a text column stays a dictionary.
const DICTIONARY_MAX: usize = 4096;
/// Code of a missing value.
const NONE: u32 = u32::MAX;

#[derive(Debug, Default)]
struct Dictionary {
    strings: Vec<Box<str>>,
    lookup: HashMap<Box<str>, u32>,
}

/// Strings by code: a dictionary, or (many distinct values) a byte buffer
/// where each written value gets its own code.
#[derive(Debug)]
enum Pool {
    Dictionary(Dictionary),
    Heap { bytes: Vec<u8>, starts: Vec<u64> },
}

#[derive(Debug)]
struct Texts {
    codes: Vec<u32>,
    pool: Pool,
}

impl Texts {
    fn get(&self, slot: usize) -> Option<&str> {
        let code = *self.codes.get(slot)?;
        if code == NONE {
            return None;
        }
        let code = code as usize;
        match &self.pool {
            Pool::Dictionary(d) => d.strings.get(code).map(|s| &**s),
            Pool::Heap { bytes, starts } => {
                let (a, b) = (*starts.get(code)?, *starts.get(code + 1)?);
                // Only whole strings are ever appended, so the range is a
                // valid UTF-8 string.
                std::str::from_utf8(bytes.get(a as usize..b as usize)?).ok()
            }
        }
    }

    fn code_of(&mut self, s: &str, rows: usize) -> u32 {
        if let Pool::Dictionary(d) = &mut self.pool {
            if let Some(c) = d.lookup.get(s) {
                return *c;
            }
            if d.strings.len() < DICTIONARY_MAX || d.strings.len() * 4 < rows {
                let c = d.strings.len() as u32;
                d.strings.push(s.into());
                d.lookup.insert(s.into(), c);
                return c;
            }
            self.move_to_heap();
        }
        match &mut self.pool {
            Pool::Heap { bytes, starts } => {
                bytes.extend_from_slice(s.as_bytes());
                starts.push(bytes.len() as u64);
                (starts.len() - 2) as u32
            }
            Pool::Dictionary(_) => NONE,
        }
    }

    /// From codes into a dictionary to one string per row in a buffer.
    fn move_to_heap(&mut self) {
        let Pool::Dictionary(d) = &self.pool else {
            return;
        };
        let mut bytes = Vec::new();
        let mut starts = vec![0u64];
        let mut codes = Vec::with_capacity(self.codes.len());
        for &c in &self.codes {
            match d.strings.get(c as usize) {
                Some(s) if c != NONE => {
                    bytes.extend_from_slice(s.as_bytes());
                    starts.push(bytes.len() as u64);
                    codes.push((starts.len() - 2) as u32);
                }
                _ => codes.push(NONE),
            }
        }
        self.codes = codes;
        self.pool = Pool::Heap { bytes, starts };
    }

    fn set(&mut self, slot: usize, s: Option<&str>) {
        let rows = self.codes.len();
        let code = s.map_or(NONE, |s| self.code_of(s, rows));
        put(&mut self.codes, slot, code, NONE);
    }
}

fn put<T: Copy>(v: &mut Vec<T>, slot: usize, value: T, fill: T) {
    if slot >= v.len() {
        v.resize(slot + 1, fill);
    }
    v[slot] = value;
}

#[derive(Debug)]
enum Values {
    /// `i64::MIN` marks a missing value unless `present` says otherwise.
    Integer(Vec<i64>),
    /// NaN marks a missing value (JSON has no NaN).
    Number(Vec<f64>),
    /// 0 false, 1 true, 2 missing.
    Bool(Vec<u8>),
    Text(Texts),
    /// Arrays and records: JSON, only where a row has one.
    Json(HashMap<u32, Value>),
}

impl Values {
    fn empty_like(&self) -> Values {
        match self {
            Values::Integer(_) => Values::Integer(Vec::new()),
            Values::Number(_) => Values::Number(Vec::new()),
            Values::Bool(_) => Values::Bool(Vec::new()),
            Values::Text(_) => Values::Text(Texts {
                codes: Vec::new(),
                pool: Pool::Dictionary(Dictionary::default()),
            }),
            Values::Json(_) => Values::Json(HashMap::new()),
        }
    }
}

#[derive(Debug)]
struct Column {
    name: String,
    values: Values,
    /// Rows whose value did not fit the column's type, kept as they were.
    odd: HashMap<u32, Value>,
    /// Rows whose integer is `i64::MIN` itself (rare; keeps it exact).
    min_ints: HashMap<u32, ()>,
}

/// One layer's property columns.
#[derive(Debug)]
pub struct Columns {
    columns: Vec<Column>,
    /// Properties a row holds outside the schema (kept as they were).
    extra: HashMap<u32, Map<String, Value>>,
}

impl Columns {
    pub fn new(layer: &LayerDef) -> Self {
        let columns = layer
            .properties
            .iter()
            .map(|p| Column {
                name: p.name.clone(),
                values: match p.kind {
                    PropertyType::Integer => Values::Integer(Vec::new()),
                    PropertyType::Number => Values::Number(Vec::new()),
                    PropertyType::Boolean => Values::Bool(Vec::new()),
                    PropertyType::String | PropertyType::Enum | PropertyType::Datetime => {
                        Values::Text(Texts {
                            codes: Vec::new(),
                            pool: Pool::Dictionary(Dictionary::default()),
                        })
                    }
                    PropertyType::Array | PropertyType::Records => Values::Json(HashMap::new()),
                },
                odd: HashMap::new(),
                min_ints: HashMap::new(),
            })
            .collect();
        Self {
            columns,
            extra: HashMap::new(),
        }
    }

    /// The same columns, empty.
    pub fn empty_like(&self) -> Self {
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                values: c.values.empty_like(),
                odd: HashMap::new(),
                min_ints: HashMap::new(),
            })
            .collect();
        Self {
            columns,
            extra: HashMap::new(),
        }
    }

    /// Give back capacity beyond the rows.
    pub fn shrink(&mut self) {
        for c in &mut self.columns {
            match &mut c.values {
                Values::Integer(v) => v.shrink_to_fit(),
                Values::Number(v) => v.shrink_to_fit(),
                Values::Bool(v) => v.shrink_to_fit(),
                Values::Text(t) => {
                    t.codes.shrink_to_fit();
                    if let Pool::Heap { bytes, starts } = &mut t.pool {
                        bytes.shrink_to_fit();
                        starts.shrink_to_fit();
                    }
                }
                Values::Json(m) => m.shrink_to_fit(),
            }
        }
    }

    pub(super) fn encode(&self, out: &mut super::snapshot::Out) {
        out.len(self.columns.len());
        for c in &self.columns {
            out.bytes(c.name.as_bytes());
            match &c.values {
                Values::Integer(v) => {
                    out.u32(0);
                    out.i64s(v);
                }
                Values::Number(v) => {
                    out.u32(1);
                    out.f64s(v);
                }
                Values::Bool(v) => {
                    out.u32(2);
                    out.bytes(v);
                }
                Values::Text(t) => {
                    out.u32(3);
                    out.u32s(&t.codes);
                    match &t.pool {
                        Pool::Dictionary(d) => {
                            out.u32(0);
                            let all: Vec<&str> = d.strings.iter().map(|s| &**s).collect();
                            out.json(&all);
                        }
                        Pool::Heap { bytes, starts } => {
                            out.u32(1);
                            out.bytes(bytes);
                            out.u64s(starts);
                        }
                    }
                }
                Values::Json(m) => {
                    out.u32(4);
                    out.json(m);
                }
            }
            out.json(&c.odd);
            let mins: Vec<u32> = c.min_ints.keys().copied().collect();
            out.u32s(&mins);
        }
        out.json(&self.extra);
    }

    /// The columns [`Columns::encode`] wrote, for `layer` (whose schema the
    /// snapshot's fingerprint matched), each checked to hold `rows` values
    /// and codes within its pool.
    pub(super) fn decode(
        layer: &LayerDef,
        rows: usize,
        input: &mut super::snapshot::In,
    ) -> super::snapshot::Decoded<Self> {
        let mut columns = Columns::new(layer);
        let n = input.len(1)?;
        if n != columns.columns.len() {
            return Err("the columns do not match the schema".into());
        }
        for c in &mut columns.columns {
            let name = input.bytes()?;
            if name != c.name.as_bytes() {
                return Err(format!("column `{}` out of place", c.name));
            }
            let kind = input.u32()?;
            let sized = |len: usize| -> super::snapshot::Decoded<()> {
                if len == rows {
                    Ok(())
                } else {
                    Err(format!("column `{}` holds {len} of {rows} rows", c.name))
                }
            };
            c.values = match (kind, &c.values) {
                (0, Values::Integer(_)) => {
                    let v = input.i64s()?;
                    sized(v.len())?;
                    Values::Integer(v)
                }
                (1, Values::Number(_)) => {
                    let v = input.f64s()?;
                    sized(v.len())?;
                    Values::Number(v)
                }
                (2, Values::Bool(_)) => {
                    let v = input.bytes()?.to_vec();
                    sized(v.len())?;
                    Values::Bool(v)
                }
                (3, Values::Text(_)) => {
                    let codes = input.u32s()?;
                    sized(codes.len())?;
                    let pool = match input.u32()? {
                        0 => {
                            let strings: Vec<String> = input.json()?;
                            let mut d = Dictionary::default();
                            for (i, s) in strings.into_iter().enumerate() {
                                d.lookup.insert(s.clone().into(), i as u32);
                                d.strings.push(s.into());
                            }
                            Pool::Dictionary(d)
                        }
                        1 => {
                            let bytes = input.bytes()?.to_vec();
                            let starts = input.u64s()?;
                            let ordered = starts.first() == Some(&0)
                                && starts.windows(2).all(|w| w[0] <= w[1])
                                && starts.last().is_some_and(|l| *l as usize == bytes.len());
                            if !ordered || std::str::from_utf8(&bytes).is_err() {
                                return Err(format!("column `{}`: a damaged buffer", c.name));
                            }
                            Pool::Heap { bytes, starts }
                        }
                        _ => return Err(format!("column `{}`: an unknown pool", c.name)),
                    };
                    let size = match &pool {
                        Pool::Dictionary(d) => d.strings.len(),
                        Pool::Heap { starts, .. } => starts.len().saturating_sub(1),
                    };
                    if codes.iter().any(|k| *k != NONE && *k as usize >= size) {
                        return Err(format!("column `{}`: a code past its pool", c.name));
                    }
                    Values::Text(Texts { codes, pool })
                }
                (4, Values::Json(_)) => Values::Json(input.json()?),
                _ => return Err(format!("column `{}` of another type", c.name)),
            };
            c.odd = input.json()?;
            c.min_ints = input.u32s()?.into_iter().map(|k| (k, ())).collect();
        }
        columns.extra = input.json()?;
        Ok(columns)
    }

    /// The columns with row `order[i]` moved to slot `i` (`new_of` is the
    /// inverse): rows near each other on the map then sit near each other
    /// in memory, so a tile reads a few cache lines instead of one per
    /// value.
    pub fn permuted(&self, order: &[u32], new_of: &[u32]) -> Columns {
        let pick = |i: u32| i as usize;
        let remap = |m: &HashMap<u32, Value>| -> HashMap<u32, Value> {
            m.iter()
                .filter_map(|(k, v)| Some((*new_of.get(*k as usize)?, v.clone())))
                .collect()
        };
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                values: match &c.values {
                    Values::Integer(v) => Values::Integer(
                        order
                            .iter()
                            .map(|&o| v.get(pick(o)).copied().unwrap_or(i64::MIN))
                            .collect(),
                    ),
                    Values::Number(v) => Values::Number(
                        order
                            .iter()
                            .map(|&o| v.get(pick(o)).copied().unwrap_or(f64::NAN))
                            .collect(),
                    ),
                    Values::Bool(v) => Values::Bool(
                        order
                            .iter()
                            .map(|&o| v.get(pick(o)).copied().unwrap_or(2))
                            .collect(),
                    ),
                    Values::Text(t) => {
                        let codes_of = |o: u32| t.codes.get(pick(o)).copied().unwrap_or(NONE);
                        match &t.pool {
                            Pool::Dictionary(d) => Values::Text(Texts {
                                codes: order.iter().map(|&o| codes_of(o)).collect(),
                                pool: Pool::Dictionary(Dictionary {
                                    strings: d.strings.clone(),
                                    lookup: d.lookup.clone(),
                                }),
                            }),
                            Pool::Heap { bytes, .. } => {
                                // One string per row, in the new order.
                                let mut out = Vec::with_capacity(bytes.len());
                                let mut starts = vec![0u64];
                                let mut codes = Vec::with_capacity(order.len());
                                for &o in order {
                                    match t.get(pick(o)) {
                                        Some(s) => {
                                            out.extend_from_slice(s.as_bytes());
                                            starts.push(out.len() as u64);
                                            codes.push((starts.len() - 2) as u32);
                                        }
                                        None => codes.push(NONE),
                                    }
                                }
                                Values::Text(Texts {
                                    codes,
                                    pool: Pool::Heap { bytes: out, starts },
                                })
                            }
                        }
                    }
                    Values::Json(m) => Values::Json(remap(m)),
                },
                odd: remap(&c.odd),
                min_ints: c
                    .min_ints
                    .keys()
                    .filter_map(|k| Some((*new_of.get(*k as usize)?, ())))
                    .collect(),
            })
            .collect();
        let extra = self
            .extra
            .iter()
            .filter_map(|(k, v)| Some((*new_of.get(*k as usize)?, v.clone())))
            .collect();
        Columns { columns, extra }
    }

    /// The column of a property, if the schema has it.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Write a row's properties into `slot` (a new slot or one rewritten).
    pub fn set(&mut self, slot: u32, properties: &Map<String, Value>) {
        let s = slot as usize;
        let mut seen = 0;
        for c in &mut self.columns {
            let v = properties.get(&c.name);
            seen += usize::from(v.is_some());
            c.odd.remove(&slot);
            c.min_ints.remove(&slot);
            let fits = match (&mut c.values, v) {
                (Values::Integer(vals), v) => {
                    let i = v.and_then(|v| v.as_i64().filter(|_| v.is_i64() || v.is_u64()));
                    if i == Some(i64::MIN) {
                        c.min_ints.insert(slot, ());
                    }
                    put(vals, s, i.unwrap_or(i64::MIN), i64::MIN);
                    v.is_none() || i.is_some()
                }
                (Values::Number(vals), v) => {
                    let n = v.and_then(|v| v.as_f64().filter(|_| v.is_f64()));
                    put(vals, s, n.unwrap_or(f64::NAN), f64::NAN);
                    v.is_none() || n.is_some()
                }
                (Values::Bool(vals), v) => {
                    let b = v.and_then(Value::as_bool);
                    put(vals, s, b.map_or(2, u8::from), 2);
                    v.is_none() || b.is_some()
                }
                (Values::Text(t), v) => {
                    let text = v.and_then(Value::as_str);
                    t.set(s, text);
                    v.is_none() || text.is_some()
                }
                (Values::Json(map), v) => {
                    match v {
                        Some(v) => map.insert(slot, v.clone()),
                        None => map.remove(&slot),
                    };
                    true
                }
            };
            if !fits {
                if let Some(v) = v {
                    c.odd.insert(slot, v.clone());
                }
            }
        }
        if seen < properties.len() {
            let extra: Map<String, Value> = properties
                .iter()
                .filter(|(k, _)| !self.columns.iter().any(|c| &c.name == *k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            self.extra.insert(slot, extra);
        } else {
            self.extra.remove(&slot);
        }
    }

    /// Forget what a slot holds outside the flat columns (a removed row).
    pub fn clear(&mut self, slot: u32) {
        for c in &mut self.columns {
            c.odd.remove(&slot);
            c.min_ints.remove(&slot);
            if let Values::Json(map) = &mut c.values {
                map.remove(&slot);
            }
        }
        self.extra.remove(&slot);
    }

    /// Whether column `i` holds a value in `slot` that is not a scalar of
    /// its type (an odd value, or an array/record).
    fn odd(&self, i: usize, slot: u32) -> Option<&Value> {
        let c = self.columns.get(i)?;
        if c.odd.is_empty() {
            return None;
        }
        c.odd.get(&slot)
    }

    /// Column `i`'s value in `slot` as a scalar (`None` when missing, or not
    /// a scalar).
    pub fn scalar(&self, i: usize, slot: u32) -> Option<Scalar<'_>> {
        if let Some(v) = self.odd(i, slot) {
            return scalar(v);
        }
        let c = self.columns.get(i)?;
        let s = slot as usize;
        match &c.values {
            Values::Integer(v) => {
                let x = *v.get(s)?;
                (x != i64::MIN || (!c.min_ints.is_empty() && c.min_ints.contains_key(&slot)))
                    .then_some(Scalar::Integer(x))
            }
            Values::Number(v) => {
                let x = *v.get(s)?;
                (!x.is_nan()).then_some(Scalar::Number(x))
            }
            Values::Bool(v) => match v.get(s)? {
                0 => Some(Scalar::Bool(false)),
                1 => Some(Scalar::Bool(true)),
                _ => None,
            },
            Values::Text(t) => t.get(s).map(Scalar::Text),
            Values::Json(_) => None,
        }
    }

    /// Column `i`'s value in `slot` as JSON.
    pub fn value(&self, i: usize, slot: u32) -> Option<Value> {
        if let Some(v) = self.odd(i, slot) {
            return Some(v.clone());
        }
        if let Some(Values::Json(map)) = self.columns.get(i).map(|c| &c.values) {
            return map.get(&slot).cloned();
        }
        self.scalar(i, slot).map(|s| match s {
            Scalar::Text(t) => Value::String(t.to_owned()),
            Scalar::Integer(i) => Value::from(i),
            Scalar::Number(n) => Value::from(n),
            Scalar::Bool(b) => Value::Bool(b),
        })
    }

    /// A JSON value of an array or record column, borrowed.
    pub fn json(&self, i: usize, slot: u32) -> Option<&Value> {
        if let Some(v) = self.odd(i, slot) {
            return Some(v);
        }
        match &self.columns.get(i)?.values {
            Values::Json(map) => map.get(&slot),
            _ => None,
        }
    }

    /// A property held outside the schema's columns.
    pub fn extra(&self, slot: u32, name: &str) -> Option<&Value> {
        if self.extra.is_empty() {
            return None;
        }
        self.extra.get(&slot)?.get(name)
    }

    /// The row's properties as the store gave them.
    pub fn properties(&self, slot: u32) -> Map<String, Value> {
        let mut out = Map::new();
        for (i, c) in self.columns.iter().enumerate() {
            if let Some(v) = self.value(i, slot) {
                out.insert(c.name.clone(), v);
            }
        }
        if let Some(extra) = self.extra.get(&slot) {
            for (k, v) in extra {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }
}

/// A JSON value as a scalar (strings, numbers, booleans).
pub fn scalar(v: &Value) -> Option<Scalar<'_>> {
    match v {
        Value::String(s) => Some(Scalar::Text(s)),
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(Scalar::Integer)
            .or_else(|| n.as_f64().map(Scalar::Number)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::layers::Catalog;

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn every_value_reads_back_exactly_whatever_its_type() {
        let catalog = Catalog::builtin().expect("catalog");
        let layer = catalog.get("rescue_teams").expect("teams");
        let mut cols = Columns::new(layer);
        let rows = [
            props(json!({"name": "甲队", "headcount": 12, "status": "standby"})),
            props(json!({"name": "乙队", "headcount": i64::MIN})),
            // A value of the wrong type and a property outside the schema.
            props(json!({"name": 7, "headcount": "many", "colour": "red"})),
            props(json!({"capabilities": ["flood", "rope"], "headcount": 3.5})),
            props(json!({})),
        ];
        for (i, r) in rows.iter().enumerate() {
            cols.set(i as u32, r);
        }
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(&cols.properties(i as u32), r, "row {i}");
        }
        // Rewriting a row replaces everything it held.
        cols.set(2, &rows[0]);
        assert_eq!(cols.properties(2), rows[0]);
        let name = cols.position("name").expect("name");
        assert_eq!(cols.scalar(name, 0), Some(Scalar::Text("甲队")));
    }

    #[test]
    fn a_text_column_of_many_values_moves_to_one_buffer_and_keeps_them() {
        let catalog = Catalog::builtin().expect("catalog");
        let layer = catalog.get("rescue_teams").expect("teams");
        let mut cols = Columns::new(layer);
        let n = 3 * DICTIONARY_MAX;
        for i in 0..n {
            cols.set(
                i as u32,
                &props(json!({"name": format!("队{i}"), "status": "standby"})),
            );
        }
        let name = cols.position("name").expect("name");
        for i in (0..n).step_by(97) {
            assert_eq!(
                cols.scalar(name, i as u32),
                Some(Scalar::Text(&format!("队{i}")))
            );
        }
        assert!(matches!(
            cols.columns[name].values,
            Values::Text(Texts {
                pool: Pool::Heap { .. },
                ..
            })
        ));
        let status = cols.position("status").expect("status");
        assert!(matches!(
            cols.columns[status].values,
            Values::Text(Texts {
                pool: Pool::Dictionary(_),
                ..
            })
        ));
    }
}
