//! `GET /ogc/api`: the OpenAPI 3.0 definition of the whole HTTP API,
//! generated from the layer catalog (each collection's paths, parameters and
//! feature schema) and the query parameters the handlers accept.

use axum::{
    extract::State,
    http::{header, HeaderMap},
    response::IntoResponse,
};
use serde_json::{json, Map, Value};

use super::queryables_schema;
use crate::{layers::LayerDef, request::base_url, AppState};

pub const MEDIA_TYPE: &str = "application/vnd.oai.openapi+json;version=3.0";

pub async fn definition(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let base = base_url(&state, &headers);
    let doc = document(&base, state.catalog.layers());
    ([(header::CONTENT_TYPE, MEDIA_TYPE)], doc.to_string())
}

fn problem(description: &str) -> Value {
    json!({ "description": description, "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } })
}

fn param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema, "style": "form", "explode": false })
}

fn items_parameters(layer: &LayerDef) -> Vec<Value> {
    let mut ps = vec![
        param("bbox", "Features meeting this box: min lon, min lat, max lon, max lat (4 or 6 numbers)", json!({ "type": "array", "minItems": 4, "maxItems": 6, "items": { "type": "number" } })),
        param("bbox-crs", "Datum of bbox: CRS84 (default), gcj02 or bd09", json!({ "type": "string" })),
        param("limit", "Page size; larger values are clipped to 10000", json!({ "type": "integer", "minimum": 1, "default": 100 })),
        param("offset", "Features to skip", json!({ "type": "integer", "minimum": 0, "default": 0 })),
        param("datetime", "An instant or interval (a/b, a/.., ../b) on the layer's time property", json!({ "type": "string" })),
        param("filter", "CQL2-text filter (OGC API – Features Part 3)", json!({ "type": "string" })),
        param("filter-lang", "Only cql2-text", json!({ "type": "string", "enum": ["cql2-text"] })),
        param("filter-crs", "Only CRS84", json!({ "type": "string" })),
        param("sortby", "Comma-separated properties, each with an optional + or - prefix", json!({ "type": "string" })),
        param("crs", "Datum of the answer: wgs84 (default), gcj02 (AMap, Tencent) or bd09 (Baidu)", json!({ "type": "string", "enum": ["wgs84", "gcj02", "bd09"] })),
        param("f", "Format: json (default), csv or gpkg (csv and gpkg hold the whole selection unless limit is given)", json!({ "type": "string", "enum": ["json", "geojson", "csv", "gpkg"] })),
    ];
    for p in &layer.properties {
        ps.push(param(
            &p.name,
            "Equality filter (membership for arrays)",
            json!({ "type": "string" }),
        ));
    }
    ps
}

fn id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } })
}

fn layer_paths(paths: &mut Map<String, Value>, layer: &LayerDef) {
    let name = &layer.name;
    let feature_ref = json!({ "$ref": format!("#/components/schemas/{name}") });
    let geojson_body = json!({ "required": true, "content": {
        "application/geo+json": { "schema": feature_ref },
        "application/json": { "schema": feature_ref } } });
    let feature_answer = |d: &str| {
        json!({ "description": d, "headers": { "ETag": { "schema": { "type": "string" } } },
        "content": { "application/geo+json": { "schema": feature_ref } } })
    };
    let write_security = json!([{ "bearer": [] }]);
    let tag = format!("{} {}", layer.title_zh, layer.title_en);
    paths.insert(
        format!("/ogc/collections/{name}"),
        json!({ "get": { "tags": [tag], "summary": format!("Describe {}", layer.title_en), "operationId": format!("describe_{name}"),
            "responses": { "200": { "description": "The collection", "content": { "application/json": { "schema": { "type": "object" } } } },
                           "404": problem("Unknown collection") } } }),
    );
    paths.insert(
        format!("/ogc/collections/{name}/queryables"),
        json!({ "get": { "tags": [tag], "summary": "Queryable properties as JSON Schema", "operationId": format!("queryables_{name}"),
            "responses": { "200": { "description": "JSON Schema", "content": { "application/schema+json": { "schema": { "type": "object" } } } } } } }),
    );
    paths.insert(
        format!("/ogc/collections/{name}/items"),
        json!({
            "get": { "tags": [tag], "summary": format!("{} features", layer.title_en), "operationId": format!("list_{name}"),
                "parameters": items_parameters(layer),
                "responses": {
                    "200": { "description": "A FeatureCollection (or a csv/gpkg download)", "content": {
                        "application/geo+json": { "schema": { "$ref": "#/components/schemas/FeatureCollection" } },
                        "text/csv": { "schema": { "type": "string" } },
                        "application/geopackage+sqlite3": { "schema": { "type": "string", "format": "binary" } } } },
                    "400": problem("A bad parameter, bbox, limit or filter"),
                    "404": problem("Unknown collection") } },
            "post": { "tags": [tag], "summary": "Create one feature (or a FeatureCollection, all or nothing)", "operationId": format!("create_{name}"),
                "security": write_security, "requestBody": geojson_body,
                "parameters": [param("crs", "Datum of the body's coordinates", json!({ "type": "string", "enum": ["wgs84", "gcj02", "bd09"] }))],
                "responses": { "201": feature_answer("Created; Location names it"), "400": problem("Not GeoJSON"), "401": problem("No valid token"),
                    "403": problem("The token's role may not edit this layer"), "413": problem("Body too large"),
                    "415": problem("Not JSON"), "422": problem("A feature breaks the layer's schema") } } }),
    );
    paths.insert(
        format!("/ogc/collections/{name}/items/{{id}}"),
        json!({
            "parameters": [id_param()],
            "get": { "tags": [tag], "summary": "One feature", "operationId": format!("get_{name}"),
                "parameters": [param("crs", "Datum of the answer", json!({ "type": "string", "enum": ["wgs84", "gcj02", "bd09"] }))],
                "responses": { "200": feature_answer("The feature"), "304": { "description": "Unchanged (If-None-Match)" }, "404": problem("No such feature") } },
            "put": { "tags": [tag], "summary": "Replace the feature", "operationId": format!("replace_{name}"), "security": write_security,
                "requestBody": geojson_body,
                "parameters": [{ "name": "If-Match", "in": "header", "schema": { "type": "string" } }],
                "responses": { "200": feature_answer("Replaced"), "404": problem("No such feature"), "412": problem("The ETag is stale"), "422": problem("Breaks the schema") } },
            "patch": { "tags": [tag], "summary": "JSON merge patch (RFC 7396) of the feature", "operationId": format!("patch_{name}"), "security": write_security,
                "requestBody": { "required": true, "content": { "application/merge-patch+json": { "schema": { "type": "object" } } } },
                "parameters": [{ "name": "If-Match", "in": "header", "schema": { "type": "string" } }],
                "responses": { "200": feature_answer("Updated"), "404": problem("No such feature"), "412": problem("The ETag is stale"), "422": problem("Breaks the schema") } },
            "delete": { "tags": [tag], "summary": "Delete the feature", "operationId": format!("delete_{name}"), "security": write_security,
                "parameters": [{ "name": "If-Match", "in": "header", "schema": { "type": "string" } }],
                "responses": { "204": { "description": "Deleted" }, "404": problem("No such feature"), "412": problem("The ETag is stale") } } }),
    );
}

/// The OpenAPI document for `layers`, with `base` as the server URL.
pub fn document(base: &str, layers: &[std::sync::Arc<LayerDef>]) -> Value {
    let mut paths = Map::new();
    let json_ok = |d: &str| json!({ "200": { "description": d, "content": { "application/json": { "schema": { "type": "object" } } } } });
    paths.insert("/ogc".into(), json!({ "get": { "tags": ["OGC API"], "summary": "Landing page", "operationId": "landing", "responses": json_ok("Links to the API") } }));
    paths.insert("/ogc/conformance".into(), json!({ "get": { "tags": ["OGC API"], "summary": "Conformance classes", "operationId": "conformance", "responses": json_ok("conformsTo") } }));
    paths.insert("/ogc/api".into(), json!({ "get": { "tags": ["OGC API"], "summary": "This document", "operationId": "api", "responses": json_ok("OpenAPI 3.0") } }));
    paths.insert("/ogc/collections".into(), json!({ "get": { "tags": ["OGC API"], "summary": "Every layer", "operationId": "collections", "responses": json_ok("The collections") } }));
    let mut schemas = Map::new();
    for layer in layers {
        layer_paths(&mut paths, layer);
        let props = queryables_schema(layer, &format!("#/components/schemas/{}", layer.name));
        let mut properties = props["properties"].clone();
        if let Some(obj) = properties.as_object_mut() {
            obj.remove("geometry");
            obj.remove("id");
        }
        schemas.insert(
            layer.name.clone(),
            json!({ "type": "object", "required": ["type", "geometry", "properties"], "properties": {
                "type": { "type": "string", "enum": ["Feature"] },
                "id": { "type": "integer" },
                "geometry": { "$ref": "#/components/schemas/Geometry" },
                "properties": { "type": "object", "required": props["required"], "properties": properties, "additionalProperties": false } } }),
        );
    }
    paths.insert("/api/layers".into(), json!({ "get": { "tags": ["onemap"], "summary": "The layer catalog with feature counts", "operationId": "layers", "responses": json_ok("Layers") } }));
    paths.insert("/api/events".into(), json!({ "get": { "tags": ["onemap"], "summary": "Change events (Server-Sent Events); Last-Event-ID resumes",
        "operationId": "events",
        "parameters": [param("layers", "Only these layers (comma-separated)", json!({ "type": "string" })),
                       { "name": "Last-Event-ID", "in": "header", "schema": { "type": "string" } }],
        "responses": { "200": { "description": "text/event-stream of `change` and `reset` events", "content": { "text/event-stream": { "schema": { "type": "string" } } } } } } }));
    paths.insert("/api/audit".into(), json!({ "get": { "tags": ["onemap"], "summary": "The audit trail (admin)", "operationId": "audit", "security": [{ "bearer": [] }],
        "parameters": [param("layer", "Layer", json!({ "type": "string" })), param("actor", "Actor prefix", json!({ "type": "string" })),
                       param("feature", "Feature id", json!({ "type": "integer" })), param("since", "RFC 3339", json!({ "type": "string", "format": "date-time" })),
                       param("until", "RFC 3339", json!({ "type": "string", "format": "date-time" })), param("limit", "At most (default 100)", json!({ "type": "integer" }))],
        "responses": { "200": { "description": "Entries, newest first" }, "401": problem("No token"), "403": problem("Not an admin") } } }));
    paths.insert("/api/import/{layer}".into(), json!({ "post": { "tags": ["onemap"], "summary": "Import a file into a layer, all or nothing", "operationId": "import",
        "security": [{ "bearer": [] }],
        "parameters": [{ "name": "layer", "in": "path", "required": true, "schema": { "type": "string" } },
                       param("crs", "Datum of the file's coordinates", json!({ "type": "string", "enum": ["wgs84", "gcj02", "bd09"] })),
                       { "name": "map", "in": "query", "description": "A file column read as a layer property, `source=property`; repeatable", "schema": { "type": "array", "items": { "type": "string" } }, "style": "form", "explode": true },
                       param("drop_unknown", "Drop the columns the layer does not have instead of refusing the file", json!({ "type": "boolean" }))],
        "requestBody": { "required": true, "content": {
            "application/geo+json": { "schema": { "type": "object" } }, "application/x-ndjson": { "schema": { "type": "string" } },
            "text/csv": { "schema": { "type": "string" } }, "application/geopackage+sqlite3": { "schema": { "type": "string", "format": "binary" } },
            "application/zip": { "schema": { "type": "string", "format": "binary" } } } },
        "responses": { "201": { "description": "Imported" }, "422": problem("The report of every bad feature (index or line, field)") } } }));
    paths.insert("/healthz".into(), json!({ "get": { "tags": ["operations"], "summary": "Health", "operationId": "health", "responses": json_ok("ok") } }));
    paths.insert("/metrics".into(), json!({ "get": { "tags": ["operations"], "summary": "Prometheus metrics", "operationId": "metrics",
        "responses": { "200": { "description": "OpenMetrics text", "content": { "application/openmetrics-text": { "schema": { "type": "string" } } } } } } }));
    schemas.insert("Problem".into(), json!({ "type": "object", "description": "RFC 9457 problem details", "properties": {
        "type": { "type": "string" }, "title": { "type": "string" }, "status": { "type": "integer" }, "detail": { "type": "string" },
        "errors": { "type": "array", "items": { "type": "object", "properties": {
            "index": { "type": "integer" }, "line": { "type": "integer" }, "name": { "type": "string" }, "field": { "type": "string" }, "message": { "type": "string" } } } },
        "total": { "type": "integer", "description": "How many violations in all (errors lists the first 100)" },
        "problems": { "type": "array", "description": "The violations grouped: one per distinct problem", "items": { "type": "object", "properties": {
            "field": { "type": "string" }, "message": { "type": "string" }, "count": { "type": "integer" },
            "features": { "type": "array", "items": { "type": "integer" } }, "lines": { "type": "array", "items": { "type": "integer" } } } } } } }));
    schemas.insert("Geometry".into(), json!({ "type": "object", "description": "RFC 7946 geometry, WGS84 unless crs says otherwise",
        "required": ["type", "coordinates"], "properties": { "type": { "type": "string", "enum": ["Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon"] },
        "coordinates": { "type": "array", "items": {} } } }));
    schemas.insert("FeatureCollection".into(), json!({ "type": "object", "required": ["type", "features"], "properties": {
        "type": { "type": "string", "enum": ["FeatureCollection"] }, "features": { "type": "array", "items": { "type": "object" } },
        "numberMatched": { "type": "integer" }, "numberReturned": { "type": "integer" }, "links": { "type": "array", "items": { "type": "object" } },
        "timeStamp": { "type": "string", "format": "date-time" } } }));
    json!({
        "openapi": "3.0.3",
        "info": { "title": "onemap 应急资源一张图", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Emergency resources, hazards and shelters as OGC API – Features, with change events and audit" },
        "servers": [{ "url": base }],
        "paths": paths,
        "components": { "schemas": schemas, "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
    })
}
