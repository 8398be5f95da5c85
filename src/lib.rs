//! onemap: the emergency-command "one map" server.
//!
//! [`App::build`] opens the store, prepares the layer catalog, loads the demo
//! when asked and binds the listener; [`App::serve`] answers until a
//! shutdown signal. Tests build an `App` on port 0 and talk to it over HTTP.

pub mod api;
pub mod auth;
pub mod commands;
pub mod crs;
pub mod demo;
pub mod dispatch;
pub mod error;
pub mod etag;
pub mod events;
pub mod features;
pub mod feed;
pub mod filter;
pub mod formats;
pub mod http;
pub mod index;
pub mod layers;
pub mod metrics;
pub mod planning;
pub mod replay;
pub mod request;
pub mod settings;
pub mod store;
#[cfg(test)]
mod test_shapes;
pub mod tiles;
pub mod web;

use std::{future::Future, net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;

use crate::{layers::Catalog, metrics::Metrics, settings::Settings, store::Store};

/// What every handler can reach: one `Arc`, so the per-request clones
/// that axum's `State` makes cost one counter, not one per field (under
/// load, the many shared counters were a tenth of the server's CPU).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub settings: Arc<Settings>,
    pub catalog: Arc<Catalog>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub events: Arc<events::EventHub>,
    /// Places for downloads being prepared ([`features::MAX_CONCURRENT_EXPORTS`]).
    pub exports: tokio::sync::Semaphore,
    /// Applies the change log to the index and the event stream.
    pub feed: Arc<feed::ChangeFeed>,
    pub index: Arc<index::SpatialIndex>,
    /// Where the index came from at start (for `/healthz`).
    pub index_origin: IndexOrigin,
    pub tiles: tiles::TileCache,
    /// Offline basemaps found in the tiles folder, by name.
    pub basemaps: Arc<std::collections::BTreeMap<String, Arc<tiles::basemap::Basemap>>>,
}

impl AppState {
    /// After a write commits: wait until the change feed has applied it
    /// to the index (so the writer's next tile shows it) and the event
    /// stream. The feed does the work; a handler cut off here loses nothing.
    pub async fn committed(&self, layer: &Arc<layers::LayerDef>, written: &store::Written) {
        self.feed.wake();
        if !self
            .feed
            .wait_for(written.change.seq, COMMIT_VISIBLE_WITHIN)
            .await
        {
            tracing::warn!(
                layer = %layer.name,
                seq = written.change.seq,
                "a committed change is not yet in the index; answering anyway"
            );
        }
    }
}

/// How long a writer waits for its change to reach the index.
const COMMIT_VISIBLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Catalog(#[from] layers::CatalogError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot load the demo data set: {0}")]
    Demo(#[from] demo::DemoError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// A built server, bound and ready to serve.
pub struct App {
    listener: TcpListener,
    state: AppState,
}

/// Open the store named in `settings` and prepare every layer of the catalog.
pub async fn open_store(
    settings: &Settings,
) -> Result<(Arc<Catalog>, Arc<dyn Store>), StartupError> {
    let catalog = Arc::new(Catalog::with_extra(settings.layers.clone())?);
    let store = store::open(&settings.database).await?;
    store.prepare(catalog.layers()).await?;
    Ok((catalog, store))
}

/// Where the index was loaded from at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexSource {
    /// The snapshot beside the GeoPackage, then the changes logged since.
    Snapshot,
    /// Every row, read through the store.
    Store,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IndexOrigin {
    pub source: IndexSource,
    /// The change-log position the index was loaded as of (the feed
    /// applies what came after).
    pub seq: i64,
    pub seconds: f64,
    /// Why the snapshot was not used, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_refused: Option<String>,
}

/// The index from the snapshot when it belongs to this store, else from
/// the store's rows (`applied`: the log position read before loading).
async fn load_index(
    settings: &Settings,
    store: &dyn Store,
    catalog: &Catalog,
    applied: i64,
) -> Result<(index::SpatialIndex, IndexOrigin), StartupError> {
    let started = std::time::Instant::now();
    let mut refused = None;
    if let Some(path) = index::snapshot::path_for(&settings.database) {
        match index::SpatialIndex::read_snapshot(store, catalog, &path).await {
            Ok((index, seq)) => {
                // What was written since (by QGIS, or by a server that
                // stopped without writing its snapshot) before serving.
                let seq = index.catch_up(store, catalog, seq).await?;
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(seq, seconds, path = %path.display(), "index read from its snapshot");
                return Ok((
                    index,
                    IndexOrigin {
                        source: IndexSource::Snapshot,
                        seq,
                        seconds,
                        snapshot_refused: None,
                    },
                ));
            }
            Err(index::snapshot::Stale::Missing) => {}
            Err(why) => {
                tracing::warn!(reason = %why, path = %path.display(), "index snapshot not used; reading every row");
                refused = Some(why.to_string());
            }
        }
    }
    let mut held: Vec<String> = dispatch::HELD.iter().map(|l| (*l).to_owned()).collect();
    held.extend(planning::held_layers(&settings.planning));
    let index =
        index::SpatialIndex::load_holding(store, catalog, Some(settings.index_max_features), &held)
            .await?;
    Ok((
        index,
        IndexOrigin {
            source: IndexSource::Store,
            seq: applied,
            seconds: started.elapsed().as_secs_f64(),
            snapshot_refused: refused,
        },
    ))
}

/// Write the index's snapshot as of change `seq`, when the store has a place
/// for one; a failure is logged (the next start reads the rows instead).
async fn write_snapshot(state: &AppState, seq: i64) {
    let Some(path) = index::snapshot::path_for(&state.settings.database) else {
        return;
    };
    let started = std::time::Instant::now();
    match Arc::clone(&state.index)
        .write_snapshot(state.store.as_ref(), Arc::clone(&state.catalog), seq, &path)
        .await
    {
        Ok(bytes) => tracing::info!(
            seq,
            bytes,
            seconds = started.elapsed().as_secs_f64(),
            path = %path.display(),
            "index snapshot written"
        ),
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot write the index snapshot")
        }
    }
}

/// How often a changed index is written to its snapshot while serving, so
/// a start after a crash replays at most this much of the log.
const SNAPSHOT_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

async fn keep_snapshot(state: AppState) {
    let mut written = state.feed.applied();
    loop {
        tokio::time::sleep(SNAPSHOT_EVERY).await;
        let seq = state.feed.applied();
        if seq > written {
            write_snapshot(&state, seq).await;
            written = seq;
        }
    }
}

impl App {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        // Bind first: a taken port should fail fast, before any data is written.
        let listener =
            TcpListener::bind(settings.bind)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: settings.bind,
                    source,
                })?;
        // While the store opens and the index loads, every request is
        // answered 503 "starting" with Retry-After (see `answer_starting`).
        let (ready, wait) = tokio::sync::oneshot::channel();
        let starting = tokio::spawn(http::serve::answer_starting(listener, wait));
        let loaded = async {
            let (catalog, store) = open_store(&settings).await?;
            if settings.demo {
                match demo::load_if_empty(store.as_ref(), &catalog).await? {
                    Some(n) => tracing::info!(features = n, "loaded the Luozhuang demo data set"),
                    None => tracing::info!("the database has features: demo not loaded"),
                }
            }
            // The log position first: a change committed while the index
            // loads is applied again by the feed (applying is idempotent),
            // never lost.
            let applied = store.last_seq().await?;
            let (index, origin) = load_index(&settings, store.as_ref(), &catalog, applied).await?;
            Ok::<_, StartupError>((catalog, store, origin.seq, index, origin))
        }
        .await;
        let _ = ready.send(());
        let listener = starting
            .await
            .map_err(|e| StartupError::Serve(std::io::Error::other(e.to_string())))?;
        let (catalog, store, applied, index, origin) = loaded?;
        let basemaps = tiles::basemap::open_all(&settings.tiles_dir).await;
        let metrics = Metrics::new();
        for (layer, skipped) in index.skipped() {
            metrics.set_skipped_rows(&layer, skipped.count);
        }
        let state = AppState(Arc::new(Shared {
            settings: Arc::new(settings),
            catalog,
            store,
            metrics: Arc::new(metrics),
            events: Arc::new(events::EventHub::new()),
            feed: Arc::new(feed::ChangeFeed::new(applied)),
            exports: tokio::sync::Semaphore::new(features::MAX_CONCURRENT_EXPORTS),
            index: Arc::new(index),
            index_origin: origin,
            tiles: tiles::cache(),
            basemaps: Arc::new(basemaps),
        }));
        if state.index_origin.source == IndexSource::Store {
            // Written in the background: the next start reads it.
            let state = state.clone();
            tokio::spawn(async move { write_snapshot(&state, applied).await });
        }
        Ok(Self { listener, state })
    }

    /// The address actually bound (the port is chosen by the OS for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until SIGTERM or Ctrl-C, finishing requests in flight.
    pub async fn serve(self) -> Result<(), StartupError> {
        self.serve_until(shutdown_signal()).await
    }

    /// Serve until `shutdown` completes, then close the store.
    pub async fn serve_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let store = self.state.store.clone();
        let feed = self.state.feed.clone();
        let feeding = tokio::spawn(feed::run(self.state.clone()));
        // Another node's commit wakes the feed at once (PostgreSQL's
        // LISTEN); the feed's poll covers whatever an announcement missed.
        let woken = Arc::clone(&feed);
        store.listen(Arc::new(move |seq| {
            if seq == 0 || seq > woken.applied() {
                woken.wake();
            }
        }));
        let snapshots = tokio::spawn(keep_snapshot(self.state.clone()));
        let limits = http::serve::Limits {
            header_timeout: self.state.settings.header_timeout,
            idle_timeout: self.state.settings.idle_timeout,
            max_connections: self.state.settings.max_connections,
        };
        let state = self.state.clone();
        let router = http::router(self.state);
        let served = http::serve::serve(self.listener, router, limits, shutdown).await;
        snapshots.abort();
        feed.stop();
        let _ = feeding.await;
        // The feed has stopped: the index is exactly as of its last change.
        write_snapshot(&state, feed.applied()).await;
        store.close().await;
        served.map_err(StartupError::Serve)
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
