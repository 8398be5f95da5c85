//! Part 1 §7.15–7.16: `/items` and `/items/{id}`, streamed as RFC 7946
//! GeoJSON.

use axum::{
    body::{Body, Bytes},
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use futures_util::StreamExt;
use serde_json::json;

use super::{
    query::{parse_items, ItemsRequest},
    transactions,
};
use crate::{
    auth::Caller,
    crs::Crs,
    error::AppError,
    formats::Format,
    layers::Feature,
    request::{base_url, layer_or_404},
    store::FeatureStream,
    AppState,
};

pub const GEOJSON: &str = "application/geo+json";

/// Downloads (`f=csv|gpkg`) prepared at once; each holds its selection.
pub const MAX_CONCURRENT_EXPORTS: usize = 2;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/ogc/collections/{layer}/items",
            get(list_items).post(transactions::create_item),
        )
        .route(
            "/ogc/collections/{layer}/items/{id}",
            get(get_item)
                .put(transactions::replace_item)
                .patch(transactions::update_item)
                .delete(transactions::delete_item),
        )
}

pub use crate::request::query_pairs;

/// A feature as GeoJSON text, coordinates in `crs`.
pub fn feature_json(f: &Feature, crs: Crs) -> Vec<u8> {
    let shifted;
    let f = if crs == Crs::Wgs84 {
        f
    } else {
        shifted = Feature {
            geometry: crs.geometry_from_wgs84(&f.geometry),
            ..f.clone()
        };
        &shifted
    };
    serde_json::to_vec(&f.to_geojson()).unwrap_or_default()
}

/// `GET /ogc/collections/{layer}/items`
async fn list_items(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    caller.require_reader(&state)?;
    let layer = layer_or_404(&state, &name)?;
    let pairs = query_pairs(raw.as_deref());
    let request = parse_items(&layer, &pairs)?;
    if request.format != Format::GeoJson {
        return download(&state, layer, request).await;
    }
    // From the index when it has every committed change and can order the
    // answer; else the store counts and pages itself.
    let page = if index_is_current(&state).await? {
        // Off the async workers: a filter without a bbox visits every row
        // of the layer (ten million on a province).
        let (index, layer_name, query) = (state.index.clone(), name.clone(), request.query.clone());
        tokio::task::spawn_blocking(move || super::indexed::page(&index, &layer_name, &query))
            .await
            .map_err(|e| AppError::Internal(format!("paging {name} from the index: {e}")))?
    } else {
        None
    };
    let (matched, query) = match page {
        Some(page) => (page.matched, page.query()),
        None => (
            state.store.count(&layer, &request.query).await?,
            request.query.clone(),
        ),
    };
    let base = base_url(&state, &headers);
    let head = collection_head(&base, &name, &pairs, &request, matched);
    let features = state.store.stream(layer, query);
    let mut response = Response::new(collection_body(head, features, request.crs));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(GEOJSON));
    Ok(response)
}

/// How long an items request waits for the change feed to apply a change
/// another program committed (the feed polls every 250 ms; a wake makes it
/// read at once).
const FEED_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the index holds every change committed so far, waiting briefly
/// for the feed when it is behind: a client that wrote through another
/// program (or another connection) reads its write, as from the store.
async fn index_is_current(state: &AppState) -> Result<bool, AppError> {
    let last = state.store.last_seq().await?;
    if state.feed.applied() >= last {
        return Ok(true);
    }
    state.feed.wake();
    Ok(state.feed.wait_for(last, FEED_WAIT).await)
}

/// `?f=csv|gpkg`: the selection as a file to save.
async fn download(
    state: &AppState,
    layer: std::sync::Arc<crate::layers::LayerDef>,
    request: ItemsRequest,
) -> Result<Response, AppError> {
    // A download holds its whole selection while it is written: a few at
    // a time, the rest told to come back (six GeoPackages of a 200,000-
    // feature layer at once once held 5 GB).
    let Ok(_slot) = state.exports.try_acquire() else {
        return Err(AppError::Unavailable(format!(
            "{MAX_CONCURRENT_EXPORTS} downloads are being prepared; retry shortly"
        )));
    };
    let mut query = request.query.clone();
    query.limit = (request.limit != u64::MAX).then_some(request.limit);
    let features = state.store.features(&layer, &query).await?;
    let body = match request.format {
        Format::Csv => {
            let mut out = Vec::new();
            crate::formats::csv::write(&mut out, &layer, &features, request.crs)
                .map_err(|e| AppError::unavailable("cannot write CSV", e))?;
            Body::from(out)
        }
        _ => {
            let dir = tempfile::tempdir()
                .map_err(|e| AppError::unavailable("no room for the export", e))?;
            let path = dir.path().join("export.gpkg");
            // Shifted in place: no second copy of the selection.
            let shifted: Vec<Feature> = features
                .into_iter()
                .map(|mut f| {
                    f.geometry = request.crs.geometry_from_wgs84(&f.geometry);
                    f
                })
                .collect();
            crate::formats::gpkg::write(&layer, &shifted, &path)
                .await
                .map_err(|e| AppError::unavailable("cannot write the GeoPackage", e))?;
            drop(shifted);
            // Streamed from the file, which lives as long as the stream.
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| AppError::unavailable("cannot read the export back", e))?;
            let stream = tokio_util::io::ReaderStream::new(file).map(move |chunk| {
                let _keep = &dir;
                chunk
            });
            Body::from_stream(stream)
        }
    };
    let disposition = format!(
        "attachment; filename=\"{}.{}\"",
        layer.name,
        request.format.extension()
    );
    Ok((
        [
            (header::CONTENT_TYPE, request.format.media_type().to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// Everything of the FeatureCollection before its features.
fn collection_head(
    base: &str,
    layer: &str,
    pairs: &[(String, String)],
    r: &ItemsRequest,
    matched: u64,
) -> String {
    let page_url = |offset: u64| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs.iter().filter(|(k, _)| k != "offset" && k != "limit") {
            q.append_pair(k, v);
        }
        q.append_pair("limit", &r.limit.to_string());
        q.append_pair("offset", &offset.to_string());
        format!("{base}/ogc/collections/{layer}/items?{}", q.finish())
    };
    let mut links = vec![
        json!({ "href": page_url(r.offset), "rel": "self", "type": super::items::GEOJSON }),
        json!({ "href": format!("{base}/ogc/collections/{layer}"), "rel": "collection", "type": "application/json" }),
    ];
    // Checked: an offset near the top of the range must not wrap into a
    // `next` link that points back to the first page.
    if let Some(next) = r.offset.checked_add(r.limit).filter(|n| *n < matched) {
        links.push(json!({ "href": page_url(next), "rel": "next", "type": GEOJSON }));
    }
    if r.offset > 0 {
        links.push(json!({ "href": page_url(r.offset.saturating_sub(r.limit)), "rel": "prev", "type": GEOJSON }));
    }
    let head = json!({
        "type": "FeatureCollection",
        "timeStamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "numberMatched": matched,
        "links": links,
    });
    let mut text = head.to_string();
    text.pop(); // reopen the object for the features that follow
    text.push_str(",\"features\":[");
    text
}

/// Stream `head`, the features, and the closing `numberReturned`: memory
/// stays at one feature plus the store's small buffer, whatever the page.
fn collection_body(head: String, features: FeatureStream, crs: Crs) -> Body {
    enum Stage {
        Head(String, FeatureStream),
        Features(FeatureStream, u64),
        Done,
    }
    let stream =
        futures_util::stream::unfold(Stage::Head(head, features), move |stage| async move {
            match stage {
                Stage::Head(head, features) => {
                    Some((Ok(Bytes::from(head)), Stage::Features(features, 0)))
                }
                Stage::Features(mut features, n) => match features.next().await {
                    Some(Ok(f)) => {
                        let mut chunk = Vec::with_capacity(512);
                        if n > 0 {
                            chunk.push(b',');
                        }
                        chunk.extend(feature_json(&f, crs));
                        Some((Ok(Bytes::from(chunk)), Stage::Features(features, n + 1)))
                    }
                    Some(Err(e)) => {
                        // Too late for a status code: end the body short so the
                        // client sees broken JSON rather than a silent truncation.
                        tracing::error!(error = ?e, "store failure while streaming items");
                        Some((Err(std::io::Error::other("store failure")), Stage::Done))
                    }
                    None => Some((
                        Ok(Bytes::from(format!("],\"numberReturned\":{n}}}"))),
                        Stage::Done,
                    )),
                },
                Stage::Done => None,
            }
        });
    // Fused: compression layers may poll once more after the end.
    Body::from_stream(stream.fuse())
}

/// `GET /ogc/collections/{layer}/items/{id}`
async fn get_item(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    caller.require_reader(&state)?;
    let layer = layer_or_404(&state, &name)?;
    let mut crs = Crs::Wgs84;
    for (k, v) in query_pairs(raw.as_deref()) {
        match k.as_str() {
            "crs" => crs = super::query::parse_crs("crs", &v)?,
            "f" if v == "json" || v == "geojson" => {}
            other => {
                return Err(AppError::BadRequest(format!(
                    "unknown query parameter `{other}` for an item"
                )))
            }
        }
    }
    let not_found = || AppError::NotFound {
        what: format!("feature `{id}` of `{name}`"),
    };
    let fid: i64 = id.parse().map_err(|_| not_found())?;
    let feature = state
        .store
        .feature(&layer, fid)
        .await?
        .ok_or_else(not_found)?;
    // The ETag is of the stored (WGS84) feature, whatever the crs asked for.
    let tag = feature.etag();
    let etag_header = crate::etag::header(&tag);
    if crate::etag::none_match(&headers, &tag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header)]).into_response());
    }
    let base = base_url(&state, &headers);
    let mut body: serde_json::Value =
        serde_json::from_slice(&feature_json(&feature, crs)).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            "links".into(),
            json!([
                { "href": format!("{base}/ogc/collections/{name}/items/{fid}"), "rel": "self", "type": GEOJSON },
                { "href": format!("{base}/ogc/collections/{name}"), "rel": "collection", "type": "application/json" },
            ]),
        );
    }
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(GEOJSON)),
            (header::ETAG, etag_header),
        ],
        body.to_string(),
    )
        .into_response())
}
