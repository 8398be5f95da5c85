use serde_json::{Map, Value};

/// One feature of a layer: a WGS84 geometry and its properties.
///
/// `properties` holds every schema property that has a value, `name`
/// included; absent and null mean the same.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// The store's id; `None` before the feature is first stored.
    pub id: Option<i64>,
    pub geometry: geo::Geometry<f64>,
    pub properties: Map<String, Value>,
}

impl Feature {
    pub fn new(geometry: impl Into<geo::Geometry<f64>>, properties: Map<String, Value>) -> Self {
        Self {
            id: None,
            geometry: geometry.into(),
            properties,
        }
    }

    /// The feature's display name, when it has one.
    pub fn name(&self) -> Option<&str> {
        self.properties.get(super::NAME).and_then(Value::as_str)
    }

    /// A strong HTTP entity tag of the stored feature: any change to its
    /// geometry or properties changes it.
    pub fn etag(&self) -> String {
        crate::etag::strong(&serde_json::to_vec(&self.to_geojson()).unwrap_or_default())
    }

    /// The feature as an RFC 7946 GeoJSON feature.
    pub fn to_geojson(&self) -> geojson::Feature {
        geojson::Feature {
            bbox: None,
            geometry: Some(geojson::Geometry::new(geojson::Value::from(&self.geometry))),
            id: self.id.map(|id| geojson::feature::Id::Number(id.into())),
            properties: Some(self.properties.clone()),
            foreign_members: None,
        }
    }
}
