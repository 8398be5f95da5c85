//! Settings: command-line flags, `ONEMAP_*` environment variables and an
//! optional TOML file, in that order of precedence, over named defaults.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::{crs::Crs, formats::Format, layers::LayerDef};

fn parse_format(s: &str) -> Result<Format, String> {
    match s.to_ascii_lowercase().as_str() {
        "geojson" | "json" | "ndjson" => Ok(Format::GeoJson),
        "csv" => Ok(Format::Csv),
        "gpkg" | "geopackage" => Ok(Format::Gpkg),
        "shp" | "shapefile" => Ok(Format::Shapefile),
        other => Err(format!(
            "unknown format `{other}`: geojson, csv, gpkg or shp"
        )),
    }
}

pub const DEFAULT_DATABASE: &str = "sqlite://onemap.gpkg";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_WEB_DIR: &str = "web";
pub const DEFAULT_TILES_DIR: &str = "tiles";
/// Largest request body; GeoJSON edits are small, bulk imports go through
/// the CLI or a route with its own limit.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_LOG: &str = "info";
pub const DEFAULT_EVENTS_REPLAY: u64 = 10_000;
/// Seconds between the keep-alive comments of `/api/events`: a client that
/// hears nothing for two of them knows the stream is dead, not quiet.
pub const DEFAULT_EVENTS_HEARTBEAT_SECS: u64 = 15;
/// Features past which a PostgreSQL layer is served by the database
/// rather than held (about 100 bytes a point: 500 MB).
pub const DEFAULT_INDEX_MAX_FEATURES: u64 = 5_000_000;
pub const DEFAULT_IMPORT_LIMIT: usize = 256 * 1024 * 1024;
/// A client has this long to send a request's headers (also the longest a
/// kept-alive connection may sit idle before its next request).
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// A response that the client stops reading is abandoned after this long.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// Open connections at most; beyond, a new one gets a 503 and is closed.
/// The default is kept under the process's file-descriptor limit, which
/// the store's files and the tile archives also need.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Open `/api/events` streams at most, in all and per client address (a
/// wall display holds one, a console one or two; a command centre behind
/// one NAT address has a few dozen).
pub const DEFAULT_MAX_EVENT_STREAMS: usize = 1000;
pub const DEFAULT_MAX_EVENT_STREAMS_PER_CLIENT: usize = 64;

/// onemap: the emergency-command "one map" server.
#[derive(Debug, Parser)]
#[command(name = "onemap", version, about, long_about = None)]
pub struct Cli {
    /// TOML settings file (keys as the long flags, with `_` for `-`, plus
    /// `[[layer]]` tables declaring extra layers).
    #[arg(long, env = "ONEMAP_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Database URL: `sqlite://FILE.gpkg` for the embedded GeoPackage store
    /// [default: sqlite://onemap.gpkg].
    #[arg(long, env = "ONEMAP_DATABASE", global = true)]
    pub database: Option<String>,
    /// Log filter, in `RUST_LOG` syntax [default: info].
    #[arg(long, env = "ONEMAP_LOG", global = true)]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the map, the API and the tiles.
    Serve(Box<ServeArgs>),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Import a GeoJSON FeatureCollection or newline-delimited GeoJSON into a
    /// layer; all or nothing.
    Import(ImportArgs),
    /// Export a layer as a GeoJSON FeatureCollection.
    Export(ExportArgs),
    /// Write an offline vector basemap (MBTiles) of the district boundaries,
    /// for the tiles folder.
    Basemap(BasemapArgs),
    /// Manage API tokens (stored hashed; shown once).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Copy a whole one map into an empty store: every layer's features
    /// with their ids, the change log, tokens and scenarios (GeoPackage to
    /// PostgreSQL and back), in one transaction.
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The store to copy [default: --database].
    #[arg(long)]
    pub from: Option<String>,
    /// The store to fill: `sqlite://FILE.gpkg` (created if absent) or
    /// `postgres://USER@HOST/DB`; it must hold no data yet.
    #[arg(long)]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct BasemapArgs {
    /// The file to write (replaced if present): PMTiles when it ends in
    /// `.pmtiles`, else MBTiles.
    #[arg(long, short, default_value = "tiles/linyi-basemap.mbtiles")]
    pub output: PathBuf,
    /// The deepest zoom to cut.
    #[arg(long, default_value_t = 12)]
    pub max_zoom: u8,
    /// Load the demo data set first when the database is empty.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once, alone on the last line.
    Create {
        /// viewer, dispatcher (operational layers), planner (planning
        /// layers) or admin (everything, audit trail).
        #[arg(long, value_enum)]
        role: crate::layers::Role,
        /// A unique name for whoever holds it (written to the audit trail).
        #[arg(long)]
        name: String,
    },
    /// List tokens (names, roles, dates; never the secrets).
    List,
    /// Revoke a token by name.
    Revoke {
        /// The token's name.
        name: String,
    },
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "ONEMAP_BIND")]
    pub bind: Option<SocketAddr>,
    /// Fill an empty or absent database with the generated Luozhuang demo
    /// data set; a database with features is left alone.
    #[arg(long, env = "ONEMAP_DEMO")]
    pub demo: bool,
    /// Folder of the web map's static files [default: web].
    #[arg(long, env = "ONEMAP_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Folder of offline basemaps (.mbtiles, .pmtiles) [default: tiles].
    #[arg(long, env = "ONEMAP_TILES_DIR")]
    pub tiles_dir: Option<PathBuf>,
    /// Origins allowed by CORS, comma-separated; `*` for any. Empty (the
    /// default) allows none: the web map is served from the same origin.
    #[arg(long, env = "ONEMAP_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// Largest request body in bytes [default: 16 MiB].
    #[arg(long, env = "ONEMAP_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// Seconds before a request is answered 408 [default: 30].
    #[arg(long, env = "ONEMAP_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
    /// Require a bearer token (any role) for reads too.
    #[arg(long, env = "ONEMAP_READ_REQUIRES_TOKEN")]
    pub read_requires_token: bool,
    /// How many missed change events a reconnecting client is sent before
    /// it gets a `reset` instead [default: 10000].
    #[arg(long, env = "ONEMAP_EVENTS_REPLAY")]
    pub events_replay: Option<u64>,
    /// Seconds between the heartbeat comments of `/api/events`, announced
    /// to clients in its `X-Heartbeat-Seconds` header; from 1 [default: 15].
    #[arg(long, env = "ONEMAP_EVENTS_HEARTBEAT", value_parser = clap::value_parser!(u64).range(1..))]
    pub events_heartbeat: Option<u64>,
    /// Largest body of `POST /api/import/{layer}` in bytes [default: 256 MiB].
    #[arg(long, env = "ONEMAP_IMPORT_LIMIT")]
    pub import_limit: Option<usize>,
    /// On PostgreSQL, a layer of more features than this is not held in
    /// memory: the database cuts its tiles and answers its items
    /// [default: 5000000]. The GeoPackage store holds every layer.
    #[arg(long, env = "ONEMAP_INDEX_MAX_FEATURES")]
    pub index_max_features: Option<u64>,
    /// An online basemap for sites that have one: a raster XYZ URL template
    /// such as Tianditu's with its key, or the TileJSON URL (`….json`) of a
    /// vector basemap on the operator's own tile server (drawn in the
    /// OpenMapTiles schema). Drawn under the layers; the offline basemaps
    /// stay available.
    #[arg(long, env = "ONEMAP_BASEMAP_URL")]
    pub basemap_url: Option<String>,
    /// Attribution shown for `--basemap-url`.
    #[arg(long, env = "ONEMAP_BASEMAP_ATTRIBUTION")]
    pub basemap_attribution: Option<String>,
    /// Benchmarks only: answer `GET /bench/fixed` with this many bytes held
    /// in memory, the baseline a cached tile is measured against.
    #[arg(long, hide = true)]
    pub bench_fixed_body: Option<usize>,
    /// The URL clients reach this server at, for links in answers (e.g.
    /// behind a reverse proxy); by default taken from each request's Host.
    #[arg(long, env = "ONEMAP_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Host names (with or without port) a request's `Host` may carry when
    /// no `--public-url` is set, comma-separated; besides them, the bound
    /// address, `localhost` and the loopback addresses are accepted. Other
    /// hosts get a 400, so no link is built from a forged Host.
    #[arg(long, env = "ONEMAP_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Option<Vec<String>>,
    /// Who may read `/metrics`: open, token (any role) or off [default:
    /// open, or token with --read-requires-token].
    #[arg(long, env = "ONEMAP_METRICS", value_enum)]
    pub metrics: Option<MetricsAccess>,
    /// Seconds a client has to send a request's headers, and the longest a
    /// kept-alive connection may idle [default: 10].
    #[arg(long, env = "ONEMAP_HEADER_TIMEOUT")]
    pub header_timeout: Option<u64>,
    /// Seconds a response may wait for a client that stopped reading
    /// [default: 60].
    #[arg(long, env = "ONEMAP_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// Open connections at most [default: 4096, less when the file-descriptor
    /// limit is lower].
    #[arg(long, env = "ONEMAP_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Open event streams at most [default: 1000].
    #[arg(long, env = "ONEMAP_MAX_EVENT_STREAMS")]
    pub max_event_streams: Option<usize>,
    /// Open event streams per client address at most [default: 64].
    #[arg(long, env = "ONEMAP_MAX_EVENT_STREAMS_PER_CLIENT")]
    pub max_event_streams_per_client: Option<usize>,
}

/// Who may read the Prometheus metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    Open,
    Token,
    Off,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The layer to import into.
    #[arg(long)]
    pub layer: String,
    /// The datum of the file's coordinates.
    #[arg(long, default_value = "wgs84")]
    pub crs: Crs,
    /// The file's format; by default from its extension (.geojson/.json,
    /// .ndjson/.geojsonl, .csv, .gpkg, .shp or a .zip of a shapefile).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<Format>,
    /// Rename a file's column to one of the layer's properties,
    /// `--map 名称=name`; repeat for more columns.
    #[arg(long = "map", value_name = "SRC=DST")]
    pub maps: Vec<String>,
    /// Drop the file's columns that are not properties of the layer
    /// (after `--map`) instead of refusing the file.
    #[arg(long)]
    pub drop_unknown: bool,
    /// GeoJSON, newline-delimited GeoJSON, CSV (longitude/latitude or wkt
    /// columns) or GeoPackage; `-` for GeoJSON on standard input.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The layer to export.
    #[arg(long)]
    pub layer: String,
    /// The datum to write coordinates in.
    #[arg(long, default_value = "wgs84")]
    pub crs: Crs,
    /// geojson, csv or gpkg; by default from the output's extension, else
    /// geojson.
    #[arg(long, value_parser = parse_format)]
    pub format: Option<Format>,
    /// Output file; standard output when absent (not for gpkg).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// The settings file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database: Option<String>,
    bind: Option<SocketAddr>,
    demo: Option<bool>,
    web_dir: Option<PathBuf>,
    tiles_dir: Option<PathBuf>,
    cors_origins: Option<Vec<String>>,
    body_limit: Option<usize>,
    request_timeout: Option<u64>,
    public_url: Option<String>,
    basemap_url: Option<String>,
    basemap_attribution: Option<String>,
    read_requires_token: Option<bool>,
    events_replay: Option<u64>,
    events_heartbeat: Option<u64>,
    import_limit: Option<usize>,
    index_max_features: Option<u64>,
    allowed_hosts: Option<Vec<String>>,
    metrics: Option<MetricsAccess>,
    header_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    max_connections: Option<usize>,
    max_event_streams: Option<usize>,
    max_event_streams_per_client: Option<usize>,
    log: Option<String>,
    #[serde(default)]
    dispatch: DispatchSettings,
    #[serde(default)]
    planning: PlanningSettings,
    #[serde(default)]
    layer: Vec<LayerDef>,
}

/// The travel-time model and bounds of dispatch (`[dispatch]` in the
/// settings file). ETA = great-circle distance × `road_factor` ÷ the team
/// type's speed, so within a team type ETA is proportional to distance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchSettings {
    /// Road distance over great-circle distance. 1.3 is the usual
    /// detour index of a Chinese county road network (between 1.2 on a
    /// plain grid and 1.4 in hills).
    pub road_factor: f64,
    /// Driving speed by team type (`team_type` values), km/h.
    pub speed_kmh: std::collections::BTreeMap<String, f64>,
    /// Speed of a team type missing from `speed_kmh`, and of supply trucks.
    pub default_speed_kmh: f64,
    /// The run card proposes no team that needs longer than this.
    pub max_eta_min: f64,
    /// A position report further than this from the district boundary's
    /// box is refused as a faulty fix.
    pub position_margin_m: f64,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        // Urban-rural driving with lights and sirens; water-rescue teams
        // tow boats, volunteers come in private cars.
        let speeds = [
            ("comprehensive_fire_rescue", 45.0),
            ("professional_fire", 45.0),
            ("water_rescue", 35.0),
            ("mine_rescue", 40.0),
            ("hazchem_rescue", 40.0),
            ("medical", 50.0),
            ("power_repair", 40.0),
            ("communications", 40.0),
            ("militia", 30.0),
            ("volunteer", 25.0),
            ("other", 30.0),
        ];
        Self {
            road_factor: 1.3,
            speed_kmh: speeds.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            default_speed_kmh: 40.0,
            max_eta_min: 60.0,
            position_margin_m: 20_000.0,
        }
    }
}

impl DispatchSettings {
    /// Team types the file leaves out keep their default speed: a
    /// `[dispatch.speed_kmh]` table naming one type must not slow every
    /// other type down to `default_speed_kmh`.
    fn completed(mut self) -> Self {
        for (k, v) in Self::default().speed_kmh {
            self.speed_kmh.entry(k).or_insert(v);
        }
        self
    }

    fn check(&self) -> Result<(), String> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !(self.road_factor.is_finite() && self.road_factor >= 1.0) {
            return Err(format!("road_factor must be ≥ 1, got {}", self.road_factor));
        }
        if let Some((k, v)) = self.speed_kmh.iter().find(|(_, v)| !positive(**v)) {
            return Err(format!("speed_kmh.{k} must be > 0, got {v}"));
        }
        for (what, v) in [
            ("default_speed_kmh", self.default_speed_kmh),
            ("max_eta_min", self.max_eta_min),
            ("position_margin_m", self.position_margin_m),
        ] {
            if !positive(v) {
                return Err(format!("{what} must be > 0, got {v}"));
            }
        }
        Ok(())
    }
}

/// A figure per shelter category (`emergency`, `fixed`, `central`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerCategory {
    pub emergency: f64,
    pub fixed: f64,
    pub central: f64,
}

impl PerCategory {
    pub fn get(&self, category: &str) -> Option<f64> {
        match category {
            "emergency" => Some(self.emergency),
            "fixed" => Some(self.fixed),
            "central" => Some(self.central),
            _ => None,
        }
    }
}

/// The standards and bounds of shelter planning (`[planning]` in the
/// settings file). Every default is a figure of a Chinese standard, named
/// next to it; a request may override each (see `planning::standards`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanningSettings {
    /// Service radius (walking distance, great-circle metres) by category.
    /// emergency 500 m (≈ 10 min walk) and fixed 2,000 m (2–3 km, the
    /// lower end; ≈ 1 h walk): GB 50413-2007 城市抗震防灾规划标准 §8.2, as
    /// quoted by secondary sources. central 4,000 m: derived, not a code
    /// figure — the general code (§4.2.1) asks for one central shelter per
    /// ≤ 50 km² of built-up land, and a circle of 50 km² has a radius of
    /// √(50/π) ≈ 3.99 km.
    pub radius_m: PerCategory,
    /// Minimum effective area per person, m²: emergency ≥ 1, fixed ≥ 2
    /// (GB 50413-2007 §8.2.8, secondary sources); central shelters are
    /// fixed shelters and take the fixed figure. A shelter's capacity,
    /// when none is recorded, is its effective area ÷ this figure.
    pub area_per_person_m2: PerCategory,
    /// The largest service radius a request may ask for.
    pub max_radius_m: f64,
    /// Instances up to this many (demand, candidate) pairs in reach are
    /// solved exactly (a MILP) when `exact` is `auto`.
    pub exact_max_pairs: usize,
    /// The longest a siting solve may run, seconds; past it the best
    /// answer found is returned with its gap.
    pub time_limit_s: f64,
    /// The layer of population cells.
    pub population_layer: String,
    /// The layer of existing shelters.
    pub shelters_layer: String,
}

impl Default for PlanningSettings {
    fn default() -> Self {
        Self {
            radius_m: PerCategory {
                emergency: 500.0,
                fixed: 2_000.0,
                central: 4_000.0,
            },
            area_per_person_m2: PerCategory {
                emergency: 1.0,
                fixed: 2.0,
                central: 2.0,
            },
            max_radius_m: 50_000.0,
            exact_max_pairs: 500_000,
            time_limit_s: 10.0,
            population_layer: "population_grid".into(),
            shelters_layer: "shelters".into(),
        }
    }
}

impl PlanningSettings {
    fn check(&self) -> Result<(), String> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        for (table, figures) in [
            ("radius_m", self.radius_m),
            ("area_per_person_m2", self.area_per_person_m2),
        ] {
            for (category, v) in [
                ("emergency", figures.emergency),
                ("fixed", figures.fixed),
                ("central", figures.central),
            ] {
                if !positive(v) {
                    return Err(format!("{table}.{category} must be > 0, got {v}"));
                }
            }
        }
        if !positive(self.max_radius_m) || self.max_radius_m > 200_000.0 {
            return Err(format!(
                "max_radius_m must be in (0, 200000], got {}",
                self.max_radius_m
            ));
        }
        if !positive(self.time_limit_s) || self.time_limit_s > 600.0 {
            return Err(format!(
                "time_limit_s must be in (0, 600], got {}",
                self.time_limit_s
            ));
        }
        Ok(())
    }
}

/// The effective settings of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub database: String,
    pub bind: SocketAddr,
    pub demo: bool,
    pub web_dir: PathBuf,
    pub tiles_dir: PathBuf,
    pub cors_origins: Vec<String>,
    pub body_limit: usize,
    #[serde(serialize_with = "secs")]
    pub request_timeout: Duration,
    pub public_url: Option<String>,
    pub basemap_url: Option<String>,
    pub basemap_attribution: Option<String>,
    pub read_requires_token: bool,
    pub bench_fixed_body: Option<usize>,
    pub events_replay: u64,
    #[serde(serialize_with = "secs")]
    pub events_heartbeat: Duration,
    pub import_limit: usize,
    pub index_max_features: u64,
    pub allowed_hosts: Vec<String>,
    pub metrics: MetricsAccess,
    #[serde(serialize_with = "secs")]
    pub header_timeout: Duration,
    #[serde(serialize_with = "secs")]
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_event_streams: usize,
    pub max_event_streams_per_client: usize,
    pub log: String,
    pub dispatch: DispatchSettings,
    pub planning: PlanningSettings,
    /// Operator-declared layers, added to the built-in catalog.
    #[serde(skip)]
    pub layers: Vec<LayerDef>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read settings file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("settings file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("settings file: [dispatch] {0}")]
    Dispatch(String),
    #[error("settings file: [planning] {0}")]
    Planning(String),
    #[error("settings file: {key} {reason}")]
    OutOfRange { key: &'static str, reason: String },
    #[error("invalid default {what}: {reason}")]
    Default { what: &'static str, reason: String },
}

impl Settings {
    /// Resolve flags and environment (already in `cli`), the settings file
    /// they name, and the defaults.
    pub fn resolve(cli: &Cli, serve: Option<&ServeArgs>) -> Result<Self, SettingsError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let none = ServeArgs::default();
        let serve = serve.unwrap_or(&none);
        let bind = match serve.bind.or(file.bind) {
            Some(b) => b,
            None => DEFAULT_BIND
                .parse()
                .map_err(|e: std::net::AddrParseError| SettingsError::Default {
                    what: "bind",
                    reason: e.to_string(),
                })?,
        };
        file.dispatch.check().map_err(SettingsError::Dispatch)?;
        file.planning.check().map_err(SettingsError::Planning)?;
        // The flag's own parser refuses 0; a 0 in the file would make the
        // server send nothing but heartbeats.
        if file.events_heartbeat == Some(0) {
            return Err(SettingsError::OutOfRange {
                key: "events_heartbeat",
                reason: "must be at least 1 second".into(),
            });
        }
        Ok(Self {
            database: cli
                .database
                .clone()
                .or(file.database)
                // The variable every PostgreSQL tool reads, last.
                .or_else(|| std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()))
                .unwrap_or_else(|| DEFAULT_DATABASE.into()),
            bind,
            demo: serve.demo || file.demo.unwrap_or(false),
            web_dir: serve
                .web_dir
                .clone()
                .or(file.web_dir)
                .unwrap_or_else(|| DEFAULT_WEB_DIR.into()),
            tiles_dir: serve
                .tiles_dir
                .clone()
                .or(file.tiles_dir)
                .unwrap_or_else(|| DEFAULT_TILES_DIR.into()),
            cors_origins: serve
                .cors_origins
                .clone()
                .or(file.cors_origins)
                .unwrap_or_default()
                .into_iter()
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            body_limit: serve
                .body_limit
                .or(file.body_limit)
                .unwrap_or(DEFAULT_BODY_LIMIT),
            request_timeout: Duration::from_secs(
                serve
                    .request_timeout
                    .or(file.request_timeout)
                    .unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECS),
            ),
            public_url: serve.public_url.clone().or(file.public_url),
            basemap_url: serve.basemap_url.clone().or(file.basemap_url),
            basemap_attribution: serve
                .basemap_attribution
                .clone()
                .or(file.basemap_attribution),
            bench_fixed_body: serve.bench_fixed_body,
            read_requires_token: serve.read_requires_token
                || file.read_requires_token.unwrap_or(false),
            events_replay: serve
                .events_replay
                .or(file.events_replay)
                .unwrap_or(DEFAULT_EVENTS_REPLAY),
            events_heartbeat: Duration::from_secs(
                serve
                    .events_heartbeat
                    .or(file.events_heartbeat)
                    .unwrap_or(DEFAULT_EVENTS_HEARTBEAT_SECS),
            ),
            import_limit: serve
                .import_limit
                .or(file.import_limit)
                .unwrap_or(DEFAULT_IMPORT_LIMIT),
            index_max_features: serve
                .index_max_features
                .or(file.index_max_features)
                .unwrap_or(DEFAULT_INDEX_MAX_FEATURES),
            allowed_hosts: serve
                .allowed_hosts
                .clone()
                .or(file.allowed_hosts)
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            metrics: serve.metrics.or(file.metrics).unwrap_or(
                if serve.read_requires_token || file.read_requires_token.unwrap_or(false) {
                    MetricsAccess::Token
                } else {
                    MetricsAccess::Open
                },
            ),
            header_timeout: Duration::from_secs(
                serve
                    .header_timeout
                    .or(file.header_timeout)
                    .unwrap_or(DEFAULT_HEADER_TIMEOUT_SECS)
                    .max(1),
            ),
            idle_timeout: Duration::from_secs(
                serve
                    .idle_timeout
                    .or(file.idle_timeout)
                    .unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS)
                    .max(1),
            ),
            max_connections: serve
                .max_connections
                .or(file.max_connections)
                .unwrap_or_else(default_max_connections)
                .max(1),
            max_event_streams: serve
                .max_event_streams
                .or(file.max_event_streams)
                .unwrap_or(DEFAULT_MAX_EVENT_STREAMS),
            max_event_streams_per_client: serve
                .max_event_streams_per_client
                .or(file.max_event_streams_per_client)
                .unwrap_or(DEFAULT_MAX_EVENT_STREAMS_PER_CLIENT),
            log: cli
                .log
                .clone()
                .or(file.log)
                .unwrap_or_else(|| DEFAULT_LOG.into()),
            dispatch: file.dispatch.completed(),
            planning: file.planning,
            layers: file.layer,
        })
    }

    /// Settings for a server on `database` with every default: what tests
    /// and embedders start from.
    pub fn for_database(database: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            demo: false,
            web_dir: DEFAULT_WEB_DIR.into(),
            tiles_dir: DEFAULT_TILES_DIR.into(),
            cors_origins: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            public_url: None,
            basemap_url: None,
            basemap_attribution: None,
            read_requires_token: false,
            bench_fixed_body: None,
            events_replay: DEFAULT_EVENTS_REPLAY,
            events_heartbeat: Duration::from_secs(DEFAULT_EVENTS_HEARTBEAT_SECS),
            import_limit: DEFAULT_IMPORT_LIMIT,
            index_max_features: DEFAULT_INDEX_MAX_FEATURES,
            allowed_hosts: Vec::new(),
            metrics: MetricsAccess::Open,
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            max_connections: default_max_connections(),
            max_event_streams: DEFAULT_MAX_EVENT_STREAMS,
            max_event_streams_per_client: DEFAULT_MAX_EVENT_STREAMS_PER_CLIENT,
            log: DEFAULT_LOG.into(),
            dispatch: DispatchSettings::default(),
            planning: PlanningSettings::default(),
            layers: Vec::new(),
        }
    }

    /// The settings as they may be logged: passwords in URLs masked.
    pub fn redacted(&self) -> Self {
        Self {
            database: mask_password(&self.database),
            basemap_url: self.basemap_url.as_deref().map(mask_keys),
            ..self.clone()
        }
    }
}

/// [`DEFAULT_MAX_CONNECTIONS`], or less where the soft file-descriptor
/// limit would be reached first (256 descriptors kept for the store, the
/// tile archives and the log). Read from `/proc/self/limits`, which needs no
/// unsafe call; elsewhere the default stands.
fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse::<usize>().ok())
        });
    match soft {
        Some(n) => DEFAULT_MAX_CONNECTIONS.min(n.saturating_sub(256)).max(16),
        None => DEFAULT_MAX_CONNECTIONS,
    }
}

fn read_file(path: &Path) -> Result<FileSettings, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| SettingsError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Hide the values of key-like query parameters (`tk=`, `key=`, `token=`…).
pub fn mask_keys(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _))
                if ["tk", "key", "token", "access_token", "ak", "apikey"]
                    .contains(&k.to_ascii_lowercase().as_str()) =>
            {
                format!("{k}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}?{}", masked.join("&"))
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn mask_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_password("postgres://onemap:s3cret@db:5432/onemap"),
            "postgres://onemap:***@db:5432/onemap"
        );
        assert_eq!(
            mask_password("sqlite://onemap.gpkg"),
            "sqlite://onemap.gpkg"
        );
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("onemap.toml");
        std::fs::write(
            &path,
            "database = \"sqlite://from-file.gpkg\"\nbind = \"127.0.0.1:9999\"\nrequest_timeout = 5\n\
             [[layer]]\nname = \"reservoirs\"\ntitle_zh = \"水库\"\ntitle_en = \"Reservoirs\"\ngeometry = [\"Polygon\"]\n",
        )
        .expect("write");
        let cli = Cli::parse_from([
            "onemap",
            "--config",
            path.to_str().expect("utf-8 path"),
            "serve",
            "--bind",
            "127.0.0.1:7000",
        ]);
        let Command::Serve(serve) = &cli.command else {
            panic!("serve")
        };
        let s = Settings::resolve(&cli, Some(serve)).expect("settings");
        assert_eq!(s.bind.port(), 7000);
        assert_eq!(s.database, "sqlite://from-file.gpkg");
        assert_eq!(s.request_timeout, Duration::from_secs(5));
        assert_eq!(s.body_limit, DEFAULT_BODY_LIMIT);
        assert_eq!(s.layers.len(), 1);
    }

    #[test]
    fn dispatch_settings_come_from_the_file_over_the_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("onemap.toml");
        std::fs::write(
            &path,
            "[dispatch]\nroad_factor = 1.5\n[dispatch.speed_kmh]\nwater_rescue = 20\n",
        )
        .expect("write");
        let cli = Cli::parse_from([
            "onemap",
            "--config",
            path.to_str().expect("utf-8"),
            "migrate",
        ]);
        let s = Settings::resolve(&cli, None).expect("settings");
        assert_eq!(s.dispatch.road_factor, 1.5);
        assert_eq!(s.dispatch.speed_kmh["water_rescue"], 20.0);
        let defaults = DispatchSettings::default();
        assert_eq!(
            s.dispatch.speed_kmh["medical"],
            defaults.speed_kmh["medical"]
        );
        assert_eq!(s.dispatch.max_eta_min, defaults.max_eta_min);
        std::fs::write(&path, "[dispatch]\nroad_factor = 0.5\n").expect("write");
        let e = Settings::resolve(&cli, None).expect_err("a road factor under 1");
        assert!(e.to_string().contains("road_factor"), "{e}");
        std::fs::write(&path, "[dispatch.speed_kmh]\nmedical = 0\n").expect("write");
        assert!(Settings::resolve(&cli, None).is_err());
    }

    #[test]
    fn planning_standards_come_from_the_file_and_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("onemap.toml");
        std::fs::write(
            &path,
            "[planning]\ntime_limit_s = 3\nradius_m = { emergency = 400, fixed = 1500, central = 3000 }\n",
        )
        .expect("write");
        let cli = Cli::parse_from([
            "onemap",
            "--config",
            path.to_str().expect("utf-8"),
            "migrate",
        ]);
        let s = Settings::resolve(&cli, None).expect("settings");
        assert_eq!(s.planning.time_limit_s, 3.0);
        assert_eq!(s.planning.radius_m.get("emergency"), Some(400.0));
        assert_eq!(
            s.planning.area_per_person_m2,
            PlanningSettings::default().area_per_person_m2
        );
        std::fs::write(&path, "[planning]\nmax_radius_m = -1\n").expect("write");
        let e = Settings::resolve(&cli, None).expect_err("a negative radius");
        assert!(e.to_string().contains("max_radius_m"), "{e}");
        std::fs::write(
            &path,
            "[planning]\narea_per_person_m2 = { emergency = 0, fixed = 2, central = 2 }\n",
        )
        .expect("write");
        assert!(Settings::resolve(&cli, None).is_err());
    }

    #[test]
    fn the_heartbeat_comes_from_the_flag_over_the_file_and_is_never_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("onemap.toml");
        let config = path.to_str().expect("utf-8 path");
        std::fs::write(&path, "events_heartbeat = 3\n").expect("write");
        let resolve = |args: &[&str]| {
            let cli = Cli::parse_from(["onemap", "--config", config, "serve"].iter().chain(args));
            let Command::Serve(serve) = &cli.command else {
                panic!("serve")
            };
            Settings::resolve(&cli, Some(serve))
        };
        let from_file = resolve(&[]).expect("settings");
        assert_eq!(from_file.events_heartbeat, Duration::from_secs(3));
        let from_flag = resolve(&["--events-heartbeat", "1"]).expect("settings");
        assert_eq!(from_flag.events_heartbeat, Duration::from_secs(1));
        assert!(Cli::try_parse_from(["onemap", "serve", "--events-heartbeat", "0"]).is_err());
        std::fs::write(&path, "events_heartbeat = 0\n").expect("write");
        let e = resolve(&[]).expect_err("a zero heartbeat");
        assert!(e.to_string().contains("events_heartbeat"), "{e}");
        std::fs::write(&path, "").expect("write");
        assert_eq!(
            resolve(&[]).expect("settings").events_heartbeat,
            Duration::from_secs(DEFAULT_EVENTS_HEARTBEAT_SECS)
        );
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("onemap.toml");
        std::fs::write(&path, "databse = \"typo\"\n").expect("write");
        let e = read_file(&path).expect_err("typo refused");
        assert!(e.to_string().contains("databse"), "{e}");
    }
}
