//! A real onemap server on 127.0.0.1:0 over a temporary GeoPackage, or,
//! with `ONEMAP_TEST_STORE=postgis`, over a fresh schema of the PostgreSQL
//! database `ONEMAP_TEST_POSTGRES_URL` names (see the README).

use std::{path::PathBuf, sync::Arc};

use onemap::{layers::Catalog, settings::Settings, store::Store, App};
use tempfile::TempDir;
use tokio::{sync::oneshot, task::JoinHandle};

pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    pub db_path: PathBuf,
    /// The database URL the server runs on (a second node uses the same).
    pub database: String,
    pub catalog: Arc<Catalog>,
    pub store: Arc<dyn Store>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    // Held so the folder outlives the server.
    pub dir: TempDir,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("the server answers")
    }

    /// GET a JSON document (asserting it is one).
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path).await.json().await.expect("a JSON answer")
    }

    /// GET `path` and assert a problem document with `status`.
    pub async fn assert_problem(&self, path: &str, status: u16) {
        let r = self.get(path).await;
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
    }

    /// Stop the server the way SIGTERM does and wait until it has closed
    /// the store.
    pub async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("the server task ends cleanly");
        }
        self.dir
    }
}

pub async fn spawn_app(demo: bool) -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary folder");
    spawn_app_in(dir, demo).await
}

/// Start a server on `dir/onemap.gpkg`, which may already exist.
pub async fn spawn_app_in(dir: TempDir, demo: bool) -> TestApp {
    spawn_app_with(dir, demo, |_| {}).await
}

/// Start a server with settings adjusted by `tweak`.
pub async fn spawn_app_with(
    dir: TempDir,
    demo: bool,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let db_path = dir.path().join("onemap.gpkg");
    let mut settings = Settings::for_database(database_url(&dir).await);
    settings.demo = demo;
    // The test's own (empty) basemap folder, not the checkout's `tiles/`,
    // which `make run` fills.
    settings.tiles_dir = dir.path().join("tiles");
    tweak(&mut settings);
    settings.web_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web");
    let database = settings.database.clone();
    let app = App::build(settings).await.expect("the server starts");
    let base_url = format!("http://{}", app.local_addr());
    let catalog = app.state().catalog.clone();
    let store = app.state().store.clone();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.serve_until(async {
            let _ = rx.await;
        })
        .await
        .expect("the server runs until shutdown");
    });
    TestApp {
        base_url,
        client: reqwest::Client::new(),
        db_path,
        database,
        catalog,
        store,
        shutdown: Some(tx),
        server: Some(server),
        dir,
    }
}

/// A second node on the same store as `first` (its own folder, pool,
/// index, tile cache and event stream).
pub async fn spawn_node(first: &TestApp) -> TestApp {
    let database = first.database.clone();
    spawn_app_with(
        tempfile::tempdir().expect("a temporary folder"),
        false,
        |s| {
            s.database = database;
        },
    )
    .await
}

impl TestApp {
    /// A fresh bearer token with `role`, as `onemap token create` makes one.
    pub async fn token(&self, role: onemap::auth::Role) -> String {
        let secret = onemap::auth::new_token();
        let name = format!("{role}-{}", &secret[3..11]);
        self.store
            .create_token(&name, role, &onemap::auth::digest(&secret))
            .await
            .expect("token stored");
        secret
    }
}

impl TestApp {
    /// GET a JSON document with a bearer token.
    pub async fn get_json_as(&self, path: &str, token: &str) -> serde_json::Value {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("the server answers")
            .json()
            .await
            .expect("a JSON answer")
    }

    /// Store `features` in `layer` directly, as another writer of the file would.
    pub async fn insert(&self, layer: &str, features: &[onemap::layers::Feature]) {
        let layer = self.catalog.get(layer).expect("a layer of the catalog");
        self.store
            .insert(layer, features, "test")
            .await
            .expect("stored");
    }
}

/// A feature from a geometry and a JSON object of properties.
pub fn feature(
    geometry: impl Into<geo::Geometry<f64>>,
    properties: serde_json::Value,
) -> onemap::layers::Feature {
    onemap::layers::Feature::new(
        geometry,
        properties.as_object().cloned().unwrap_or_default(),
    )
}

impl TestApp {
    /// `/healthz` answers 200 within a second; its JSON.
    pub async fn healthy_at_once(&self) -> serde_json::Value {
        self.healthy_by(std::time::Instant::now(), std::time::Duration::from_secs(1))
            .await
    }

    /// `/healthz`, asked at `due`, answers 200 within `within` of it. Timed
    /// from when it was due, not from when this task got to ask: the test's
    /// runtime has one thread, shared with the server, so a handler that
    /// blocks it delays the asking too.
    pub async fn healthy_by(
        &self,
        due: std::time::Instant,
        within: std::time::Duration,
    ) -> serde_json::Value {
        tokio::time::sleep_until(due.into()).await;
        let r = tokio::time::timeout(within * 2, self.get("/healthz"))
            .await
            .expect("/healthz answers");
        let took = due.elapsed();
        assert_eq!(r.status(), 200);
        assert!(took < within, "/healthz answered {took:?} after it was due");
        r.json().await.expect("health JSON")
    }
}

/// Whether this run of the suite is against PostGIS.
pub fn on_postgis() -> bool {
    std::env::var("ONEMAP_TEST_STORE").is_ok_and(|s| s == "postgis")
}

/// The PostgreSQL server of the PostGIS run.
pub fn postgres_url() -> String {
    std::env::var("ONEMAP_TEST_POSTGRES_URL")
        .expect("ONEMAP_TEST_STORE=postgis needs ONEMAP_TEST_POSTGRES_URL (see the README)")
}

/// The store a test's folder stands for: its GeoPackage, or its own schema
/// of the test database, made on first use and named in the folder, so a
/// server restarted on the same folder (or a second node) finds the same
/// data.
pub async fn database_url(dir: &TempDir) -> String {
    if !on_postgis() {
        return format!("sqlite://{}", dir.path().join("onemap.gpkg").display());
    }
    let named = dir.path().join("postgres-schema");
    let schema = match std::fs::read_to_string(&named) {
        Ok(s) => s,
        Err(_) => {
            let schema = fresh_schema().await;
            std::fs::write(&named, &schema).expect("the schema's name is kept");
            schema
        }
    };
    with_schema(&postgres_url(), &schema)
}

/// `url` with `search_path` set to `schema` (then PostGIS in `public`).
pub fn with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema},public")
}

/// A new empty schema, after dropping those left by runs more than an hour
/// old (each test's schema is kept for its own restarts).
async fn fresh_schema() -> String {
    use sqlx::Connection;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let schema = format!(
        "t_{now}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut conn = sqlx::PgConnection::connect(&postgres_url())
        .await
        .expect("the test PostgreSQL answers (ONEMAP_TEST_POSTGRES_URL)");
    let old: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^t_[0-9]+_[0-9]+_[0-9]+$' \
         AND split_part(nspname, '_', 2)::bigint < $1",
    )
    .bind(i64::try_from(now).unwrap_or_default() - 3600)
    .fetch_all(&mut conn)
    .await
    .expect("schemas listed");
    for s in old {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"))
            .execute(&mut conn)
            .await;
    }
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&mut conn)
        .await
        .expect("a schema of its own");
    schema
}
