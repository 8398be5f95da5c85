//! What a write logs, built the same way by every store: the entry of one
//! write, and the entry of an edit that wrote several layers.

use std::sync::Arc;

use serde_json::Value;

use super::{bbox_union, Op, Touched};
use crate::layers::{Feature, LayerDef};

/// The WGS84 box `[min_lon, min_lat, max_lon, max_lat]` of a geometry.
pub fn envelope(g: &geo::Geometry<f64>) -> Option<[f64; 4]> {
    use geo::BoundingRect;
    g.bounding_rect()
        .map(|r| [r.min().x, r.min().y, r.max().x, r.max().y])
}

/// A geometry as the log keeps it (GeoJSON).
pub fn geometry_json(g: &geo::Geometry<f64>) -> Value {
    serde_json::to_value(geojson::Geometry::new(geojson::Value::from(g))).unwrap_or(Value::Null)
}

/// What to log for one write.
pub struct Entry<'a> {
    pub layer: &'a str,
    pub actor: &'a str,
    pub op: Op,
    pub ids: Vec<i64>,
    pub bbox_before: Option<[f64; 4]>,
    pub bbox_after: Option<[f64; 4]>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// The geometries replaced or deleted, one per id (GeoJSON).
    pub geometry_before: Option<Value>,
    /// The other layers the same transaction wrote, with their images.
    pub also: Vec<Touched>,
    /// What a dispatcher did, for the event stream and the audit trail.
    pub action: Option<Value>,
}

/// What one `Store::edit` call wrote of one layer, in the order written.
pub struct EditedLayer {
    pub layer: Arc<LayerDef>,
    ids: Vec<i64>,
    boxes_before: Vec<Option<[f64; 4]>>,
    boxes_after: Vec<Option<[f64; 4]>>,
    before: Vec<Value>,
    after: Vec<Value>,
    geometries_before: Vec<Value>,
}

/// Note that `after` replaced `before` (feature `id` of `layer`) in the
/// groups of an edit call.
pub fn note_edit(
    groups: &mut Vec<EditedLayer>,
    layer: &Arc<LayerDef>,
    id: i64,
    before: Feature,
    after: &Feature,
) {
    let at = match groups.iter().position(|g| g.layer.name == layer.name) {
        Some(at) => at,
        None => {
            groups.push(EditedLayer {
                layer: Arc::clone(layer),
                ids: Vec::new(),
                boxes_before: Vec::new(),
                boxes_after: Vec::new(),
                before: Vec::new(),
                after: Vec::new(),
                geometries_before: Vec::new(),
            });
            groups.len() - 1
        }
    };
    let g = &mut groups[at];
    g.ids.push(id);
    g.boxes_before.push(envelope(&before.geometry));
    g.boxes_after.push(envelope(&after.geometry));
    g.geometries_before.push(geometry_json(&before.geometry));
    g.before.push(Value::Object(before.properties));
    g.after.push(Value::Object(after.properties.clone()));
}

/// The one change an edit call logs: its first layer's features, the
/// others in `also`. `None` when nothing changed.
pub fn edit_entry<'a>(
    groups: Vec<EditedLayer>,
    actor: &'a str,
    action: Option<Value>,
) -> Option<(Arc<LayerDef>, Entry<'a>)> {
    let mut groups = groups.into_iter();
    let main = groups.next()?;
    let also: Vec<Touched> = groups
        .map(|g| Touched {
            layer: g.layer.name.clone(),
            ids: g.ids,
            bbox_before: bbox_union(g.boxes_before),
            bbox_after: bbox_union(g.boxes_after),
            before: Some(Value::Array(g.before)),
            after: Some(Value::Array(g.after)),
            geometry_before: Some(Value::Array(g.geometries_before)),
        })
        .collect();
    let layer = Arc::clone(&main.layer);
    Some((
        layer,
        Entry {
            layer: "",
            actor,
            op: Op::Update,
            ids: main.ids,
            bbox_before: bbox_union(main.boxes_before),
            bbox_after: bbox_union(main.boxes_after),
            before: Some(Value::Array(main.before)),
            after: Some(Value::Array(main.after)),
            geometry_before: Some(Value::Array(main.geometries_before)),
            also,
            action,
        },
    ))
}
