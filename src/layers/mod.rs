//! The layer catalog: which layers the one map has, their typed schemas and
//! display names, and the validation every write goes through.
//!
//! The built-in layers are declared in `builtin.toml`, in the same format
//! operators use for extra layers in the settings file, so both are parsed and
//! checked by one code path.

mod feature;
mod role;
mod validate;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::Arc,
};

use serde::{Deserialize, Serialize};

pub use feature::Feature;
pub use role::Role;
pub(crate) use validate::simple_ring;
pub use validate::{geometry_from_geojson, ValidationErrors, Violation, MAX_REPORTED_VIOLATIONS};

/// The property every layer has: a feature's display name.
pub const NAME: &str = "name";

/// Property names taken by the feature table's own columns.
const RESERVED_COLUMNS: &[&str] = &["fid", "geom"];
/// Table-name prefixes that belong to GeoPackage, SQLite or onemap itself.
const RESERVED_PREFIXES: &[&str] = &["gpkg_", "rtree_", "sqlite_", "onemap_", "_"];

/// Who may edit a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LayerGroup {
    /// Day-to-day resources and incidents: dispatchers edit them.
    #[default]
    Operational,
    /// Shelters, risk zones and population: planners edit them.
    Planning,
    /// Boundaries and other base data: administrators only.
    Reference,
}

/// A simple-features geometry type a layer may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GeometryKind {
    Point,
    LineString,
    Polygon,
    MultiPoint,
    MultiLineString,
    MultiPolygon,
}

impl GeometryKind {
    /// The kind of a concrete geometry, or `None` for kinds no layer stores
    /// (collections, lines, rectangles, triangles).
    pub fn of(geometry: &geo::Geometry<f64>) -> Option<Self> {
        Some(match geometry {
            geo::Geometry::Point(_) => Self::Point,
            geo::Geometry::LineString(_) => Self::LineString,
            geo::Geometry::Polygon(_) => Self::Polygon,
            geo::Geometry::MultiPoint(_) => Self::MultiPoint,
            geo::Geometry::MultiLineString(_) => Self::MultiLineString,
            geo::Geometry::MultiPolygon(_) => Self::MultiPolygon,
            _ => return None,
        })
    }

    /// The name GeoPackage (and OGC simple features) use.
    pub fn sql_name(self) -> &'static str {
        match self {
            Self::Point => "POINT",
            Self::LineString => "LINESTRING",
            Self::Polygon => "POLYGON",
            Self::MultiPoint => "MULTIPOINT",
            Self::MultiLineString => "MULTILINESTRING",
            Self::MultiPolygon => "MULTIPOLYGON",
        }
    }
}

impl fmt::Display for GeometryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The value type of a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropertyType {
    String,
    Integer,
    Number,
    Boolean,
    /// RFC 3339 date-time, stored normalised to UTC.
    Datetime,
    /// One string of `values`.
    Enum,
    /// An array of strings (restricted to `values` when given).
    Array,
    /// An array of objects, each with the properties in `fields`.
    Records,
}

/// One property of a layer's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyDef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: PropertyType,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_zh: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_en: Option<String>,
    /// Allowed values of an `enum`, or of the items of an `array`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// Display names of `values` (value → name), for maps and lists that
    /// speak the user's language; a value without one is shown as stored.
    /// Every key is one of `values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_titles_zh: Option<BTreeMap<String, String>>,
    /// … in English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_titles_en: Option<BTreeMap<String, String>>,
    /// Values an earlier catalog used, each with the value that replaced
    /// it: a store rewrites them in its features when it is prepared, so
    /// a GeoPackage of an older release reads and edits without errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_values: Option<BTreeMap<String, String>>,
    /// The fields of each item of a `records` property.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<PropertyDef>>,
    /// Unit of a numeric value (`persons`, `m`, `m²`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
}

/// One layer of the one map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerDef {
    /// Table name, collection id and tile layer id: `[a-z][a-z0-9_]*`.
    pub name: String,
    pub title_zh: String,
    pub title_en: String,
    /// The geometry types the layer accepts.
    pub geometry: Vec<GeometryKind>,
    #[serde(default)]
    pub group: LayerGroup,
    /// The schema, `name` first (added when a declaration leaves it out).
    #[serde(default)]
    pub properties: Vec<PropertyDef>,
    /// Whether the layer's named areas get a label point in tiles
    /// (`{layer}_label`); off for areas too many or too small to name.
    #[serde(default = "yes")]
    pub area_labels: bool,
}

fn yes() -> bool {
    true
}

impl LayerDef {
    /// The property called `name`, if the schema has one.
    pub fn property(&self, name: &str) -> Option<&PropertyDef> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// The property names, comma-separated, for a message that tells a
    /// user which names the layer has.
    pub fn property_names(&self) -> String {
        self.properties
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether the layer's named areas get a label point in tiles
    /// (`{layer}_label`): areas with a `name`, unless the catalog turns
    /// them off.
    pub fn labels_areas(&self) -> bool {
        self.area_labels
            && self
                .geometry
                .iter()
                .any(|g| matches!(g, GeometryKind::Polygon | GeometryKind::MultiPolygon))
            && self.property("name").is_some()
    }

    /// One GeoPackage geometry type for the column: the single kind, or
    /// `GEOMETRY` when a layer takes several.
    pub fn geometry_sql_type(&self) -> &'static str {
        match self.geometry.as_slice() {
            [one] => one.sql_name(),
            _ => "GEOMETRY",
        }
    }

    /// Validate a feature against this layer's schema and return it in
    /// normal form (date-times in UTC, integral numbers as integers).
    ///
    /// `index` is the feature's position in its batch, used in messages.
    pub fn validate(&self, index: usize, feature: &Feature) -> Result<Feature, Vec<Violation>> {
        validate::feature(self, index, feature)
    }

    fn check(&self) -> Result<(), CatalogError> {
        let fail = |what: String| CatalogError::Invalid {
            layer: self.name.clone(),
            what,
        };
        check_identifier(&self.name).map_err(&fail)?;
        if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| self.name.starts_with(*p)) {
            return Err(fail(format!("layer names may not start with `{prefix}`")));
        }
        if self.geometry.is_empty() {
            return Err(fail("`geometry` lists no geometry type".into()));
        }
        check_properties(&self.properties).map_err(fail)
    }
}

fn check_identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !starts_well
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        || name.len() > 63
    {
        return Err(format!(
            "`{name}` is not a valid name: use 1–63 characters of a–z, 0–9 and _, starting with a letter"
        ));
    }
    Ok(())
}

fn check_properties(properties: &[PropertyDef]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for p in properties {
        check_identifier(&p.name)?;
        if RESERVED_COLUMNS.contains(&p.name.as_str()) {
            return Err(format!("`{}` is reserved for the feature table", p.name));
        }
        if !seen.insert(p.name.as_str()) {
            return Err(format!("property `{}` is declared twice", p.name));
        }
        match p.kind {
            PropertyType::Enum if p.values.as_ref().is_none_or(|v| v.is_empty()) => {
                return Err(format!("enum property `{}` needs `values`", p.name));
            }
            PropertyType::Records => match &p.fields {
                Some(fields) if !fields.is_empty() => check_properties(fields)?,
                _ => return Err(format!("records property `{}` needs `fields`", p.name)),
            },
            _ => {}
        }
        if let Some(renamed) = &p.renamed_values {
            let values = p.values.as_deref().unwrap_or_default();
            if p.kind != PropertyType::Enum {
                return Err(format!(
                    "only an enum property renames values (`{}`)",
                    p.name
                ));
            }
            if let Some((old, new)) = renamed
                .iter()
                .find(|(old, new)| !values.contains(new) || values.contains(old))
            {
                return Err(format!(
                    "property `{}` renames `{old}` to `{new}`: the new value must be one of its `values`, the old one not",
                    p.name
                ));
            }
        }
        for titles in [&p.value_titles_zh, &p.value_titles_en]
            .into_iter()
            .flatten()
        {
            let values = p.values.as_deref().unwrap_or_default();
            if let Some(stray) = titles.keys().find(|k| !values.contains(k)) {
                return Err(format!(
                    "property `{}` names value `{stray}`, which is not one of its `values`",
                    p.name
                ));
            }
        }
    }
    Ok(())
}

/// A layer declaration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error("layer `{layer}`: {what}")]
    Invalid { layer: String, what: String },
    #[error("layer `{layer}` is declared twice")]
    Duplicate { layer: String },
    #[error("cannot parse layer declarations: {0}")]
    Parse(#[from] toml::de::Error),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Declarations {
    layer: Vec<LayerDef>,
}

const BUILTIN: &str = include_str!("builtin.toml");

/// Every layer this server knows, in display order.
#[derive(Debug, Clone)]
pub struct Catalog {
    layers: Vec<Arc<LayerDef>>,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    /// The built-in layers.
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::with_extra(Vec::new())
    }

    /// The built-in layers followed by an operator's own.
    pub fn with_extra(extra: Vec<LayerDef>) -> Result<Self, CatalogError> {
        let builtin: Declarations = toml::from_str(BUILTIN)?;
        let mut catalog = Catalog {
            layers: Vec::new(),
            by_name: HashMap::new(),
        };
        for mut layer in builtin.layer.into_iter().chain(extra) {
            if layer.property(NAME).is_none() {
                layer.properties.insert(
                    0,
                    PropertyDef {
                        name: NAME.into(),
                        kind: PropertyType::String,
                        required: true,
                        title_zh: Some("名称".into()),
                        title_en: Some("Name".into()),
                        values: None,
                        value_titles_zh: None,
                        value_titles_en: None,
                        renamed_values: None,
                        fields: None,
                        unit: None,
                        minimum: None,
                        maximum: None,
                    },
                );
            }
            layer.check()?;
            if catalog.by_name.contains_key(&layer.name) {
                return Err(CatalogError::Duplicate { layer: layer.name });
            }
            catalog
                .by_name
                .insert(layer.name.clone(), catalog.layers.len());
            catalog.layers.push(Arc::new(layer));
        }
        Ok(catalog)
    }

    pub fn layers(&self) -> &[Arc<LayerDef>] {
        &self.layers
    }

    pub fn get(&self, name: &str) -> Option<&Arc<LayerDef>> {
        self.by_name.get(name).map(|&i| &self.layers[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_has_every_layer_of_the_data_model() {
        let catalog = Catalog::builtin().expect("builtin.toml is valid");
        for name in [
            "rescue_teams",
            "experts",
            "supply_depots",
            "equipment",
            "shelters",
            "seismic_stations",
            "cameras",
            "hazard_sources",
            "enterprises",
            "incidents",
            "flood_zones",
            "waterlogging_points",
            "districts",
            "population_grid",
        ] {
            let layer = catalog.get(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(layer.properties[0].name, NAME, "{name} has name first");
            assert!(!layer.title_zh.is_empty() && !layer.title_en.is_empty());
        }
        let status = catalog
            .get("rescue_teams")
            .and_then(|l| l.property("status"))
            .and_then(|p| p.values.clone())
            .unwrap_or_default();
        assert_eq!(
            status,
            ["standby", "dispatched", "on_scene", "returning", "off_duty"]
        );
    }

    #[test]
    fn enumerations_of_dispatch_and_hazards_have_chinese_and_english_names() {
        let catalog = Catalog::builtin().expect("builtin.toml is valid");
        for (layer, property) in [
            ("rescue_teams", "status"),
            ("rescue_teams", "team_type"),
            ("rescue_teams", "capabilities"),
            ("incidents", "type"),
            ("incidents", "severity"),
            ("incidents", "status"),
            ("incidents", "required_capabilities"),
            ("hazard_sources", "class"),
            ("hazard_sources", "risk_level"),
        ] {
            let p = catalog
                .get(layer)
                .and_then(|l| l.property(property))
                .unwrap_or_else(|| panic!("{layer}.{property}"));
            for titles in [&p.value_titles_zh, &p.value_titles_en] {
                let titles = titles
                    .as_ref()
                    .unwrap_or_else(|| panic!("{layer}.{property}"));
                for v in p.values.as_deref().unwrap_or_default() {
                    assert!(titles.contains_key(v), "{layer}.{property} names `{v}`");
                }
            }
        }
        let name = |layer: &str, property: &str, value: &str| {
            catalog
                .get(layer)
                .and_then(|l| l.property(property))
                .and_then(|p| p.value_titles_zh.as_ref())
                .and_then(|t| t.get(value))
                .cloned()
        };
        assert_eq!(
            name("rescue_teams", "status", "standby").as_deref(),
            Some("待命")
        );
        assert_eq!(
            name("incidents", "severity", "especially_major").as_deref(),
            Some("特别重大")
        );
        assert_eq!(
            name("hazard_sources", "class", "major_hazard").as_deref(),
            Some("重大危险源")
        );

        // Served with the schema, as `/api/layers` sends it.
        let served =
            serde_json::to_value(catalog.get("incidents").and_then(|l| l.property("status")))
                .expect("serializable");
        assert_eq!(served["value_titles_zh"]["active"], "处置中");
        assert_eq!(served["value_titles_en"]["cancelled"], "Cancelled");
    }

    #[test]
    fn a_name_for_a_value_the_property_does_not_have_is_refused() {
        let d: Declarations = toml::from_str(
            r#"[[layer]]
            name = "x"
            title_zh = "x"
            title_en = "x"
            geometry = ["Point"]
            properties = [{ name = "k", type = "enum", values = ["a"], value_titles_zh = { a = "甲", b = "乙" } }]"#,
        )
        .expect("parses");
        let refused = Catalog::with_extra(d.layer);
        assert!(
            matches!(&refused, Err(CatalogError::Invalid { what, .. }) if what.contains("`b`")),
            "{refused:?}"
        );
    }

    #[test]
    fn a_rename_must_lead_from_an_old_value_to_a_current_one() {
        let catalog = |renames: &str| {
            let d: Declarations = toml::from_str(&format!(
                r#"[[layer]]
                name = "x"
                title_zh = "x"
                title_en = "x"
                geometry = ["Point"]
                properties = [{{ name = "k", type = "enum", values = ["a", "b"], renamed_values = {{ {renames} }} }}]"#
            ))
            .expect("parses");
            Catalog::with_extra(d.layer)
        };
        assert!(catalog("old = \"a\"").is_ok());
        assert!(
            catalog("old = \"c\"").is_err(),
            "to a value the property lacks"
        );
        assert!(catalog("b = \"a\"").is_err(), "from a value still current");
    }

    #[test]
    fn extra_layers_are_checked() {
        let parse = |s: &str| -> Result<Catalog, CatalogError> {
            let d: Declarations = toml::from_str(s)?;
            Catalog::with_extra(d.layer)
        };
        let ok = parse(
            r#"[[layer]]
            name = "reservoirs"
            title_zh = "水库"
            title_en = "Reservoirs"
            geometry = ["Polygon"]
            group = "planning"
            properties = [{ name = "storage_m3", type = "number", unit = "m³" }]"#,
        )
        .expect("a valid extra layer");
        assert!(ok
            .get("reservoirs")
            .is_some_and(|l| l.property(NAME).is_some()));

        let clash = parse(
            r#"[[layer]]
            name = "shelters"
            title_zh = "x"
            title_en = "x"
            geometry = ["Point"]"#,
        );
        assert!(matches!(clash, Err(CatalogError::Duplicate { .. })));

        let bad_name = parse(
            r#"[[layer]]
            name = "Robert'); DROP TABLE"
            title_zh = "x"
            title_en = "x"
            geometry = ["Point"]"#,
        );
        assert!(matches!(bad_name, Err(CatalogError::Invalid { .. })));

        let enum_without_values = parse(
            r#"[[layer]]
            name = "x"
            title_zh = "x"
            title_en = "x"
            geometry = ["Point"]
            properties = [{ name = "k", type = "enum" }]"#,
        );
        assert!(matches!(
            enum_without_values,
            Err(CatalogError::Invalid { .. })
        ));
    }
}
