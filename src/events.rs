//! Change events as Server-Sent Events (`GET /api/events`).
//!
//! Writers publish each committed change to a broadcast channel and never
//! wait: a client too slow to keep up falls behind the channel and catches
//! up from the change log, which also serves reconnecting clients
//! (`Last-Event-ID`). A gap longer than the replay window gets an explicit
//! `reset` event, so a client always knows whether it has seen everything.

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
};

use axum::{
    extract::{ConnectInfo, RawQuery, State},
    http::{HeaderMap, HeaderName, HeaderValue},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse,
    },
    routing::get,
    Router,
};
use serde_json::json;
use tokio::sync::broadcast;

use crate::{auth::Caller, error::AppError, store::Change, AppState};

/// Live changes held for subscribers that are momentarily busy.
const CHANNEL: usize = 1024;
/// Changes read from the log per round when catching up.
const REPLAY_PAGE: u64 = 500;
/// The response header that tells a client the heartbeat period in
/// seconds (`events_heartbeat`): its watchdog declares the stream dead
/// after two periods of silence, whatever the operator configured.
pub const HEARTBEAT_HEADER: HeaderName = HeaderName::from_static("x-heartbeat-seconds");

pub struct EventHub {
    sender: broadcast::Sender<Arc<Change>>,
    /// Open streams, in all and by client address: each holds a task, a
    /// channel receiver and a socket, so their number is bounded (one
    /// client once opened 19,971 of them and exhausted the descriptors).
    open: Mutex<OpenStreams>,
}

#[derive(Default)]
struct OpenStreams {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// One open stream, counted until it is dropped (the client went away or
/// the server is closing).
pub struct StreamPermit {
    hub: Arc<EventHub>,
    client: IpAddr,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.hub.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

/// Why a stream was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamRefused {
    Total(usize),
    PerClient(usize),
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new()
    }
}

impl EventHub {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(CHANNEL);
        Self {
            sender,
            open: Mutex::new(OpenStreams::default()),
        }
    }

    /// Count a new stream of `client`, unless that would pass `total` open
    /// streams or `per_client` from one address.
    pub fn open_stream(
        self: &Arc<Self>,
        client: IpAddr,
        total: usize,
        per_client: usize,
    ) -> Result<StreamPermit, StreamRefused> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= total {
            return Err(StreamRefused::Total(total));
        }
        let mine = open.by_client.entry(client).or_insert(0);
        if *mine >= per_client {
            return Err(StreamRefused::PerClient(per_client));
        }
        *mine += 1;
        open.total += 1;
        Ok(StreamPermit {
            hub: Arc::clone(self),
            client,
        })
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Publish a committed change; never blocks.
    pub fn publish(&self, change: Change) {
        // No subscriber is not an error: nobody is watching.
        let _ = self.sender.send(Arc::new(change));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.sender.subscribe()
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/events", get(stream_events))
}

/// A change as an SSE event. `tiles` names the tile range at
/// [`crate::tiles::EVENT_ZOOM`] that the write touched (what was there
/// before and what is there after), so a map reloads just those tiles.
fn event(change: &Change) -> Event {
    if change.is_import() {
        return import_event(change);
    }
    let mut data = serde_json::to_value(change).unwrap_or_default();
    let touched = crate::store::bbox_union([change.bbox_before, change.bbox_after]);
    if let (Some(bbox), Some(obj)) = (touched, data.as_object_mut()) {
        obj.insert("tiles".into(), crate::tiles::tile_range(bbox));
    }
    Event::default()
        .id(change.seq.to_string())
        .event("change")
        .data(data.to_string())
}

/// A bulk import as one `reset` event for its layer: a client reloads the
/// layer instead of reading a million ids, and a client that does not know
/// the layer-scoped form reloads everything, which is also right.
fn import_event(change: &Change) -> Event {
    let data = json!({
        "seq": change.seq,
        "at": change.at,
        "actor": change.actor,
        "layers": [change.layer],
        "reason": "import",
        "count": change.ids.len(),
        "bbox": change.bbox_after,
        "action": change.action,
    });
    Event::default()
        .id(change.seq.to_string())
        .event("reset")
        .data(data.to_string())
}

/// Where a client resumes, and which layers it wants.
struct Subscription {
    last: i64,
    layers: Option<HashSet<String>>,
    /// Counts the stream as open until the stream is dropped.
    _permit: StreamPermit,
}

impl Subscription {
    fn wants(&self, c: &Change) -> bool {
        c.seq > self.last
            && self
                .layers
                .as_ref()
                .is_none_or(|l| c.layers().any(|name| l.iter().any(|k| k == name)))
    }
}

/// `GET /api/events?layers=a,b` (HTML Living Standard, Server-sent events).
/// A comment line is sent every `events_heartbeat` seconds, the period
/// named in the `X-Heartbeat-Seconds` header.
async fn stream_events(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<impl IntoResponse, AppError> {
    caller.require_reader(&state)?;
    let mut layers = None;
    let mut last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    for (k, v) in crate::request::query_pairs(raw.as_deref()) {
        match k.as_str() {
            "layers" => {
                let set: HashSet<String> = v
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                if let Some(unknown) = set.iter().find(|l| state.catalog.get(l).is_none()) {
                    return Err(AppError::NotFound {
                        what: format!("layer `{unknown}`"),
                    });
                }
                layers = Some(set);
            }
            // For clients that cannot set headers (a plain EventSource
            // reconnecting by hand).
            "last_event_id" => last_event_id = Some(v),
            other => {
                return Err(AppError::BadRequest(format!(
                    "unknown query parameter `{other}` for events"
                )))
            }
        }
    }
    let permit = state
        .events
        .open_stream(
            client.ip(),
            state.settings.max_event_streams,
            state.settings.max_event_streams_per_client,
        )
        .map_err(|refused| {
            AppError::Unavailable(match refused {
                StreamRefused::Total(n) => {
                    format!("the server holds its limit of {n} open event streams; retry shortly")
                }
                StreamRefused::PerClient(n) => format!(
                    "your address holds the limit of {n} open event streams; close one first"
                ),
            })
        })?;
    // Subscribe before reading the log, so nothing committed in between is lost.
    let receiver = state.events.subscribe();
    let newest = state.store.last_seq().await?;
    let mut first = Vec::new();
    let last = match last_event_id {
        None => newest,
        Some(text) => {
            // Event ids are the change log's sequence numbers: 0 and up.
            let seq: i64 = text
                .trim()
                .parse()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    AppError::BadRequest(format!(
                        "Last-Event-ID `{text}` is not an event id (a whole number from 0)"
                    ))
                })?;
            let missed = u64::try_from(newest.saturating_sub(seq)).unwrap_or(0);
            if missed > state.settings.events_replay || seq > newest {
                first.push(
                    Event::default()
                        .event("reset")
                        .id(newest.to_string())
                        .data(json!({ "seq": newest, "reason": "the missed events are beyond the replay window; reload everything" }).to_string()),
                );
                newest
            } else {
                seq
            }
        }
    };
    let heartbeat = state.settings.events_heartbeat;
    let sub = Subscription {
        last,
        layers,
        _permit: permit,
    };
    let stream = futures_util::stream::unfold(
        (state, receiver, sub, first, Vec::<Change>::new(), true),
        |(state, mut rx, mut sub, mut pending_first, mut backlog, mut catching_up)| async move {
            loop {
                if let Some(e) = pending_first.pop() {
                    return Some((
                        Ok::<_, Infallible>(e),
                        (state, rx, sub, pending_first, backlog, catching_up),
                    ));
                }
                if let Some(c) = backlog.first().cloned() {
                    backlog.remove(0);
                    if sub.wants(&c) {
                        sub.last = c.seq;
                        return Some((
                            Ok(event(&c)),
                            (state, rx, sub, pending_first, backlog, catching_up),
                        ));
                    }
                    sub.last = sub.last.max(c.seq);
                    continue;
                }
                if catching_up {
                    match state.store.changes_since(sub.last, REPLAY_PAGE).await {
                        Ok(page) if !page.is_empty() => {
                            backlog = page;
                            continue;
                        }
                        Ok(_) => catching_up = false,
                        Err(e) => {
                            tracing::error!(error = ?e, "cannot read the change log for an event stream");
                            return None;
                        }
                    }
                }
                match rx.recv().await {
                    Ok(c) => {
                        if c.seq > sub.last + 1 {
                            // A change committed before this one is not yet
                            // seen (published out of order): read the log.
                            catching_up = true;
                            continue;
                        }
                        if sub.wants(&c) {
                            sub.last = c.seq;
                            return Some((
                                Ok(event(&c)),
                                (state, rx, sub, pending_first, backlog, catching_up),
                            ));
                        }
                        sub.last = sub.last.max(c.seq);
                    }
                    // Fallen behind the channel: the log has every change.
                    Err(broadcast::error::RecvError::Lagged(_)) => catching_up = true,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok((
        [(HEARTBEAT_HEADER, HeaderValue::from(heartbeat.as_secs()))],
        Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat)),
    ))
}
