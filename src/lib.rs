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
            let index = index::SpatialIndex::load(store.as_ref(), &catalog).await?;
            Ok::<_, StartupError>((catalog, store, applied, index))
        }
        .await;
        let _ = ready.send(());
        let listener = starting
            .await
            .map_err(|e| StartupError::Serve(std::io::Error::other(e.to_string())))?;
        let (catalog, store, applied, index) = loaded?;
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
            tiles: tiles::cache(),
            basemaps: Arc::new(basemaps),
        }));
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
        let limits = http::serve::Limits {
            header_timeout: self.state.settings.header_timeout,
            idle_timeout: self.state.settings.idle_timeout,
            max_connections: self.state.settings.max_connections,
        };
        let router = http::router(self.state);
        let served = http::serve::serve(self.listener, router, limits, shutdown).await;
        feed.stop();
        let _ = feeding.await;
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
