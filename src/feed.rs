//! The change feed: one task per server that reads the store's change log
//! in commit order and applies each change to the in-memory index (and so
//! to the tiles, whose keys carry the index's versions) and to the event
//! stream.
//!
//! The log is the single source of committed changes. onemap's own writes
//! log themselves in their transaction; every other writer of the file
//! (QGIS, GDAL, `onemap import` beside a running server) is logged by the
//! layer tables' triggers in its own. A handler that wrote waits for the
//! feed to pass its change (so its client reads its own write), but the
//! feed does not depend on the handler: a request cut off by the timeout
//! after its commit still reaches the index and the event stream.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{watch, Notify};

use crate::{store::Change, AppState};

/// How often the log is read when nothing woke the feed: the delay before
/// another program's write shows.
const POLL: Duration = Duration::from_millis(250);
/// Changes read per round.
const PAGE: u64 = 500;
/// Tries at applying one change before it is skipped (and logged): a store
/// that fails a moment must not lose a change, and a change that can never
/// be applied must not stop every later one.
const ATTEMPTS: u32 = 3;

pub struct ChangeFeed {
    applied: watch::Sender<i64>,
    wake: Notify,
    stop: Notify,
}

impl ChangeFeed {
    /// A feed that has applied every change up to `seq` (what the index was
    /// loaded from).
    pub fn new(seq: i64) -> Self {
        Self {
            applied: watch::Sender::new(seq),
            wake: Notify::new(),
            stop: Notify::new(),
        }
    }

    /// The last change applied.
    pub fn applied(&self) -> i64 {
        *self.applied.borrow()
    }

    /// Read the log now (a write of this server just committed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// End the task (the server is closing its store).
    pub fn stop(&self) {
        self.stop.notify_one();
    }

    /// Wait until change `seq` is applied, at most `limit`; whether it was.
    pub async fn wait_for(&self, seq: i64, limit: Duration) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|applied| *applied >= seq))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Run the feed of `state` until [`ChangeFeed::stop`].
pub async fn run(state: AppState) {
    let feed = Arc::clone(&state.feed);
    loop {
        let page = match state.store.changes_since(feed.applied(), PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = ?e, "the change feed cannot read the change log");
                Vec::new()
            }
        };
        let (last, full) = (page.last().map(|c| c.seq), page.len() as u64 == PAGE);
        if let Some(last) = last {
            apply(&state, page).await;
            feed.applied.send_replace(last);
        }
        if full {
            continue;
        }
        tokio::select! {
            () = feed.wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            () = feed.stop.notified() => return,
        }
    }
}

/// Bring the index up to date with a page of changes, then publish each in
/// order. The page is applied layer by layer, each layer's ids refreshed
/// once: another program's bulk append logs a change per row, and a
/// refresh (a store read, a tile-cache invalidation) per row would make a
/// 10,000-row append cost 10,000 of them. A change by another program has
/// no boxes in the log (its triggers cannot compute them): they are taken
/// from the index before and after.
async fn apply(state: &AppState, mut page: Vec<Change>) {
    let started = Instant::now();
    let external = |c: &Change| c.bbox_before.is_none() && c.bbox_after.is_none();
    let outside: Vec<bool> = page.iter().map(external).collect();
    for (c, outside) in page.iter_mut().zip(&outside) {
        if *outside {
            c.bbox_before = state.index.bbox_of(&c.layer, &c.ids);
        }
    }
    let mut by_layer: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for c in &page {
        by_layer.entry(c.layer.as_str()).or_default().extend(&c.ids);
        for t in &c.also {
            by_layer.entry(t.layer.as_str()).or_default().extend(&t.ids);
        }
    }
    // Layers the store serves: their tiles' versions move where each change
    // was and is (nothing of them is held to refresh).
    for c in &page {
        let parts = std::iter::once((&c.layer, c.bbox_before, c.bbox_after)).chain(
            c.also
                .iter()
                .map(|t| (&t.layer, t.bbox_before, t.bbox_after)),
        );
        for (layer, before, after) in parts {
            if state.index.in_store(layer) {
                let boxes: Vec<[f64; 4]> = before.into_iter().chain(after).collect();
                state.index.touch_in_store(layer, &boxes);
            }
        }
    }
    for (name, ids) in by_layer {
        // A table onemap does not serve: nothing to index.
        let Some(layer) = state.catalog.get(name).cloned() else {
            continue;
        };
        let ids: Vec<i64> = ids.into_iter().collect();
        for attempt in 1..=ATTEMPTS {
            match state
                .index
                .refresh(state.store.as_ref(), &layer, &ids)
                .await
            {
                Ok(()) => break,
                Err(e) if attempt < ATTEMPTS => {
                    tracing::warn!(error = ?e, layer = %name, "cannot apply changes yet; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(e) => {
                    tracing::error!(
                        error = ?e,
                        layer = %name,
                        "changes could not be applied to the index; their features may show stale until restart"
                    );
                    state.metrics.feed_failed();
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64() / page.len().max(1) as f64;
    for (mut c, outside) in page.into_iter().zip(outside) {
        if outside {
            c.bbox_after = state.index.bbox_of(&c.layer, &c.ids);
        }
        state.metrics.feed_applied(seconds);
        if state.catalog.get(&c.layer).is_some() {
            state.events.publish(c);
        }
    }
}
