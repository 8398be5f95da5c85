//! Column maps for imports: a file's columns renamed to the layer's
//! properties (`--map src=dst`) and columns the layer does not have dropped
//! (`--drop-unknown`), as ogr2ogr's field maps and `-select` do. Without
//! them a file whose columns differ from the schema is refused whole.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::layers::{Feature, LayerDef, PropertyType};

/// At most this many `src=dst` pairs in one import.
pub const MAX_MAPS: usize = 200;
/// A column name in a map may hold at most this many bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// The import's report names at most this many dropped columns (the rest
/// are counted together).
const MAX_DROPPED_NAMED: usize = 50;

/// How an import renames and drops columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnMap {
    /// Source column → layer property, in the order given.
    renames: Vec<(String, String)>,
    drop_unknown: bool,
}

/// What applying a [`ColumnMap`] did, for the import's report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Applied {
    /// Features that had each mapped column, by source column.
    pub renamed: BTreeMap<String, usize>,
    /// Features that lost each dropped column, by column.
    pub dropped: BTreeMap<String, usize>,
    /// Dropped columns past the named ones, with the features they were in
    /// (summed).
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped_other: usize,
}

impl Applied {
    /// Add what another batch's map did.
    pub fn add(&mut self, other: Applied) {
        for (k, n) in other.renamed {
            *self.renamed.entry(k).or_default() += n;
        }
        for (k, n) in other.dropped {
            if self.dropped.contains_key(&k) || self.dropped.len() < MAX_DROPPED_NAMED {
                *self.dropped.entry(k).or_default() += n;
            } else {
                self.dropped_other += n;
            }
        }
        self.dropped_other += other.dropped_other;
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ColumnMap {
    /// Read `src=dst` pairs for `layer`. Every `dst` must be a property of
    /// the layer; a source or a destination named twice is refused, since
    /// which of the two would win is a guess.
    pub fn new(layer: &LayerDef, maps: &[String], drop_unknown: bool) -> Result<Self, String> {
        if maps.len() > MAX_MAPS {
            return Err(format!(
                "at most {MAX_MAPS} column maps, got {}",
                maps.len()
            ));
        }
        let mut renames: Vec<(String, String)> = Vec::with_capacity(maps.len());
        for m in maps {
            let (src, dst) = m
                .split_once('=')
                .map(|(s, d)| (s.trim(), d.trim()))
                .filter(|(s, d)| !s.is_empty() && !d.is_empty())
                .ok_or_else(|| format!("column map `{}` is not `source=property`", clip(m)))?;
            if src.len() > MAX_NAME_BYTES || dst.len() > MAX_NAME_BYTES {
                return Err(format!(
                    "column map `{}`: a column name may hold at most {MAX_NAME_BYTES} bytes",
                    clip(m)
                ));
            }
            if layer.property(dst).is_none() {
                return Err(format!(
                    "column map `{src}={dst}`: `{dst}` is not a property of layer `{}` (it has: {})",
                    layer.name,
                    layer.property_names()
                ));
            }
            if renames.iter().any(|(s, _)| s == src) {
                return Err(format!("column `{src}` is mapped twice"));
            }
            if let Some((other, _)) = renames.iter().find(|(_, d)| d == dst) {
                return Err(format!(
                    "columns `{other}` and `{src}` are both mapped to `{dst}`"
                ));
            }
            renames.push((src.to_owned(), dst.to_owned()));
        }
        Ok(Self {
            renames,
            drop_unknown,
        })
    }

    /// Whether the map changes nothing.
    pub fn is_identity(&self) -> bool {
        self.renames.is_empty() && !self.drop_unknown
    }

    /// Rename and drop in place. A renamed text value is read as its new
    /// property's type (a CSV or shapefile column the reader did not know
    /// arrives as text), and an integer 0/1 as a boolean for a boolean
    /// property (GeoPackage stores booleans as integers); a mapped column
    /// replaces a column of the destination's name in the same feature.
    pub fn apply(&self, layer: &LayerDef, features: &mut [Feature]) -> Applied {
        let mut applied = Applied::default();
        if self.is_identity() {
            return applied;
        }
        for f in features.iter_mut() {
            for (src, dst) in &self.renames {
                if let Some(value) = f.properties.remove(src) {
                    let kind = layer.property(dst).map(|p| p.kind);
                    f.properties.insert(dst.clone(), coerce(kind, value));
                    *applied.renamed.entry(src.clone()).or_default() += 1;
                }
            }
            if self.drop_unknown {
                let unknown: Vec<String> = f
                    .properties
                    .keys()
                    .filter(|k| layer.property(k).is_none())
                    .cloned()
                    .collect();
                for k in unknown {
                    f.properties.remove(&k);
                    if applied.dropped.contains_key(&k) || applied.dropped.len() < MAX_DROPPED_NAMED
                    {
                        *applied.dropped.entry(k).or_default() += 1;
                    } else {
                        applied.dropped_other += 1;
                    }
                }
            }
        }
        applied
    }
}

/// A value read as the type of the property it is renamed to.
fn coerce(kind: Option<PropertyType>, value: Value) -> Value {
    match (kind, value) {
        (Some(PropertyType::String) | None, v) => v,
        (Some(PropertyType::Boolean), Value::Number(n)) if n.as_i64() == Some(0) => {
            Value::Bool(false)
        }
        (Some(PropertyType::Boolean), Value::Number(n)) if n.as_i64() == Some(1) => {
            Value::Bool(true)
        }
        // A text that does not read as the type stays as it was, so
        // validation names the column and the value.
        (Some(kind), Value::String(s)) => {
            super::csv::value_from_text(kind, &s).unwrap_or(Value::String(s))
        }
        (_, v) => v,
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Catalog;
    use serde_json::json;

    fn layer() -> LayerDef {
        let catalog = Catalog::builtin().expect("the builtin catalog loads");
        let shelters = catalog.get("shelters").expect("a shelters layer");
        LayerDef::clone(shelters)
    }

    fn feature(props: Value) -> Feature {
        Feature {
            id: None,
            geometry: geo::Point::new(118.3, 35.1).into(),
            properties: props.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn renames_coerce_and_unknown_columns_drop_with_counts() {
        let layer = layer();
        let int_prop = layer
            .properties
            .iter()
            .find(|p| p.kind == PropertyType::Integer)
            .map(|p| p.name.clone())
            .expect("a layer with an integer property");
        let map =
            ColumnMap::new(&layer, &[format!("QTY = {int_prop}")], true).expect("a valid map");
        let mut fs = vec![
            feature(json!({"QTY": "12", "junk": 1, "name": "a"})),
            feature(json!({"junk": 2, "other": "x", "name": "b"})),
        ];
        let applied = map.apply(&layer, &mut fs);
        assert_eq!(fs[0].properties[&int_prop], json!(12));
        assert!(!fs[0].properties.contains_key("QTY"));
        assert!(!fs[0].properties.contains_key("junk"));
        assert_eq!(fs[1].properties.get("name"), Some(&json!("b")));
        assert_eq!(applied.renamed.get("QTY"), Some(&1));
        assert_eq!(applied.dropped.get("junk"), Some(&2));
        assert_eq!(applied.dropped.get("other"), Some(&1));
    }

    #[test]
    fn bad_maps_are_refused_naming_the_column() {
        let layer = layer();
        let prop = layer.properties[0].name.clone();
        let cases: Vec<(Vec<String>, &str)> = vec![
            (vec!["nodst=".into()], "is not `source=property`"),
            (vec!["plain".into()], "is not `source=property`"),
            (
                vec!["a=not_a_property".into()],
                "`not_a_property` is not a property",
            ),
            (
                vec![format!("a={prop}"), format!("a={prop}")],
                "`a` is mapped twice",
            ),
            (
                vec![format!("a={prop}"), format!("b={prop}")],
                "are both mapped to",
            ),
            (
                vec![format!("{}={prop}", "x".repeat(200))],
                "at most 128 bytes",
            ),
            (
                vec![format!("a={prop}"); MAX_MAPS + 1],
                "at most 200 column maps",
            ),
        ];
        for (maps, want) in cases {
            let err = ColumnMap::new(&layer, &maps, false).expect_err("refused");
            assert!(err.contains(want), "{maps:?}: {err}");
        }
        assert!(ColumnMap::new(&layer, &[], false)
            .expect("empty is fine")
            .is_identity());
    }
}
