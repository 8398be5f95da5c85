//! The one-shot commands of the CLI: migrate, import, export.

use std::{
    fs::File,
    io::{BufWriter, Read, Write},
    path::Path,
};

use crate::{
    auth,
    formats::{self, Format},
    layers::ValidationErrors,
    open_store,
    settings::{BasemapArgs, CopyArgs, ExportArgs, ImportArgs, Settings, TokenCommand},
    store::{self, ImportSource, StoreError},
    StartupError,
};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("unknown layer `{0}`")]
    UnknownLayer(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write: {0}")]
    Write(#[from] std::io::Error),
    #[error("nothing was imported: {0}")]
    Invalid(ValidationErrors),
    #[error("{0}")]
    BadArgument(String),
    #[error("nothing was imported: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<formats::ReadError> for CommandError {
    fn from(e: formats::ReadError) -> Self {
        match e {
            formats::ReadError::Invalid(v) => CommandError::Invalid(v),
            other => CommandError::Unreadable(other.to_string()),
        }
    }
}

impl From<formats::gpkg::GpkgFileError> for CommandError {
    fn from(e: formats::gpkg::GpkgFileError) -> Self {
        CommandError::Unreadable(e.to_string())
    }
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(v) => CommandError::Invalid(v),
            other => CommandError::Store(other),
        }
    }
}

/// Create or upgrade the schema of the configured database.
pub async fn migrate(settings: &Settings) -> Result<(), CommandError> {
    let (_, store) = open_store(settings).await?;
    store.close().await;
    Ok(())
}

/// Copy the one map of `--from` (or `--database`) into the empty `--to`,
/// then check that both hold the same number of features and changes.
pub async fn copy(settings: &Settings, args: &CopyArgs) -> Result<store::Restored, CommandError> {
    let from_url = args
        .from
        .clone()
        .unwrap_or_else(|| settings.database.clone());
    if from_url == args.to {
        return Err(CommandError::BadArgument(
            "--from and --to name the same store".into(),
        ));
    }
    let mut from_settings = settings.clone();
    from_settings.database = from_url;
    let (catalog, from) = open_store(&from_settings).await?;
    let mut to_settings = settings.clone();
    to_settings.database = args.to.clone();
    let (_, to) = open_store(&to_settings).await?;
    let bar = Progress::new("copying", None);
    let copied = store::copy::between(
        std::sync::Arc::clone(&from),
        to.as_ref(),
        catalog.clone(),
        &|n| bar.set(n),
    )
    .await;
    bar.finish();
    let copied = copied?;
    let bar = Progress::new("laying out the tables", None);
    to.lay_out(&catalog).await?;
    bar.finish();
    for layer in catalog.layers() {
        let (a, b) = (
            from.count(layer, &store::Query::default()).await?,
            to.count(layer, &store::Query::default()).await?,
        );
        if a != b {
            return Err(CommandError::Unreadable(format!(
                "the copy of {} holds {b} features, the source {a}",
                layer.name
            )));
        }
    }
    from.close().await;
    to.close().await;
    Ok(copied)
}

/// What an import stored, and what its column map did.
#[derive(Debug)]
pub struct Imported {
    pub count: usize,
    pub columns: formats::columns::Applied,
}

/// Import a GeoJSON, newline-delimited GeoJSON, CSV or GeoPackage file into
/// a layer, all or nothing.
pub async fn import(settings: &Settings, args: &ImportArgs) -> Result<Imported, CommandError> {
    let (catalog, store) = open_store(settings).await?;
    let layer = catalog
        .get(&args.layer)
        .cloned()
        .ok_or_else(|| CommandError::UnknownLayer(args.layer.clone()))?;
    let columns = match formats::ColumnMap::new(&layer, &args.maps, args.drop_unknown) {
        Ok(c) => c,
        Err(why) => {
            store.close().await;
            return Err(CommandError::BadArgument(why));
        }
    };
    let format = args.format.or_else(|| Format::of_path(&args.file));
    if args.file != Path::new("-") && format == Some(Format::GeoJson) {
        // GeoJSON files stream: memory holds a batch, whatever the size.
        let result = import_streamed(store.as_ref(), &layer, &columns, args).await;
        store.close().await;
        return result;
    }
    let result = async {
        let (mut parsed, source) = if args.file == Path::new("-") {
            let text = read_stdin()?.into_bytes();
            let source = ImportSource {
                digest: formats::digest(&text),
                format: Format::GeoJson.extension().to_owned(),
                file: None,
            };
            (
                formats::read_text(&layer, Format::GeoJson, text, args.crs).await?,
                source,
            )
        } else {
            let format = args
                .format
                .or_else(|| Format::of_path(&args.file))
                .ok_or_else(|| {
                    CommandError::BadArgument(format!(
                        "cannot tell the format of {}: use --format",
                        args.file.display()
                    ))
                })?;
            let path = args.file.clone();
            let digest = tokio::task::spawn_blocking(move || formats::digest_file(&path))
                .await
                .map_err(|e| CommandError::Unreadable(e.to_string()))?
                .map_err(|source| CommandError::Read {
                    path: args.file.display().to_string(),
                    source,
                })?;
            let source = ImportSource {
                digest,
                format: format.extension().to_owned(),
                file: args
                    .file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned()),
            };
            (
                formats::read_file(&layer, format, &args.file, args.crs).await?,
                source,
            )
        };
        let applied = columns.apply(&layer, &mut parsed.features);
        match store
            .import(
                &layer,
                &parsed.features,
                &cli_actor("import"),
                None,
                &source,
            )
            .await
        {
            Ok((written, _)) => Ok(Imported {
                count: written.ids.len(),
                columns: applied,
            }),
            Err(StoreError::Invalid(e)) => Err(CommandError::Invalid(parsed.locate(e))),
            Err(e) => Err(e.into()),
        }
    }
    .await;
    store.close().await;
    result
}

/// A progress bar on the terminal for work over a second long: features
/// done, the rate, and (when known) of how many. Hidden when stderr is not a
/// terminal, and until the work has taken a second.
pub struct Progress {
    bar: indicatif::ProgressBar,
    started: std::time::Instant,
    shown: std::sync::atomic::AtomicBool,
}

impl Progress {
    pub fn new(what: &str, total: Option<u64>) -> Self {
        let bar = match total {
            Some(n) => indicatif::ProgressBar::with_draw_target(
                Some(n),
                indicatif::ProgressDrawTarget::hidden(),
            ),
            None => indicatif::ProgressBar::hidden(),
        };
        let template = match total {
            Some(_) => "{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)",
            None => "{msg} {pos} ({per_sec}, {elapsed})",
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        Self {
            bar,
            started: std::time::Instant::now(),
            shown: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn set(&self, done: u64) {
        use std::sync::atomic::Ordering;
        if !self.shown.load(Ordering::Relaxed)
            && self.started.elapsed() > std::time::Duration::from_secs(1)
        {
            self.shown.store(true, Ordering::Relaxed);
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        self.bar.set_position(done);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Import a GeoJSON file read and written in batches (see
/// `formats::stream` and `Store::import_stream`): one transaction, one
/// summary change, memory independent of the file's size.
async fn import_streamed(
    store: &dyn store::Store,
    layer: &std::sync::Arc<crate::layers::LayerDef>,
    columns: &formats::ColumnMap,
    args: &ImportArgs,
) -> Result<Imported, CommandError> {
    use formats::stream::Message;
    use store::ImportBatch;
    let (read_tx, mut read_rx) = tokio::sync::mpsc::channel(2);
    let (path, crs) = (args.file.clone(), args.crs);
    let reader = tokio::task::spawn_blocking(move || formats::stream::read(&path, crs, read_tx));
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let file = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let progress = Progress::new(&format!("importing into {}", layer.name), None);
    let forward = async {
        let mut applied = formats::columns::Applied::default();
        while let Some(message) = read_rx.recv().await {
            let batch = match message {
                Message::Batch(mut b) => {
                    applied.add(columns.apply(layer, &mut b.features));
                    ImportBatch::Features {
                        features: b.features,
                        indices: b.indices,
                        lines: b.lines,
                        unreadable: b.unreadable,
                    }
                }
                Message::End { digest, .. } => ImportBatch::End(ImportSource {
                    digest,
                    format: Format::GeoJson.extension().to_owned(),
                    file: file.clone(),
                }),
                Message::Failed(why) => {
                    let mut errors = ValidationErrors::new(&layer.name);
                    errors.push(crate::layers::Violation {
                        index: 0,
                        line: None,
                        name: None,
                        field: "document".into(),
                        message: why,
                    });
                    ImportBatch::Failed(StoreError::Invalid(errors))
                }
            };
            // The writer stopped (it failed): stop reading.
            if tx.send(batch).await.is_err() {
                break;
            }
        }
        drop(tx);
        applied
    };
    let actor = cli_actor("import");
    let report = |n: usize| progress.set(n as u64);
    let write = store.import_stream(layer, rx, &actor, &report);
    let (applied, written) = tokio::join!(forward, write);
    progress.finish();
    drop(read_rx);
    let _ = reader.await;
    let written = written?;
    Ok(Imported {
        count: written.ids.len(),
        columns: applied,
    })
}

/// Export a layer as GeoJSON, CSV or GeoPackage.
pub async fn export(settings: &Settings, args: &ExportArgs) -> Result<usize, CommandError> {
    let (catalog, store) = open_store(settings).await?;
    let layer = catalog
        .get(&args.layer)
        .cloned()
        .ok_or_else(|| CommandError::UnknownLayer(args.layer.clone()))?;
    let features = store.features(&layer, &store::Query::default()).await;
    store.close().await;
    let features = features?;
    let format = args
        .format
        .or_else(|| args.output.as_deref().and_then(Format::of_path))
        .unwrap_or(Format::GeoJson);
    if format == Format::Shapefile {
        return Err(CommandError::BadArgument(
            "shapefiles are read, not written: export as gpkg, csv or geojson".into(),
        ));
    }
    if format == Format::Gpkg {
        let path = args.output.as_ref().ok_or_else(|| {
            CommandError::BadArgument("a GeoPackage export needs --output FILE.gpkg".into())
        })?;
        let shifted: Vec<_> = features
            .iter()
            .map(|f| crate::layers::Feature {
                geometry: args.crs.geometry_from_wgs84(&f.geometry),
                ..f.clone()
            })
            .collect();
        formats::gpkg::write(&layer, &shifted, path).await?;
        return Ok(features.len());
    }
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(File::create(path)?)),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    match format {
        Format::Csv => formats::csv::write(&mut out, &layer, &features, args.crs)
            .map_err(|e| CommandError::Write(std::io::Error::other(e.to_string())))?,
        _ => formats::geojson::write_collection(&mut out, &features, args.crs)?,
    }
    out.flush()?;
    Ok(features.len())
}

/// `onemap token …`: what to print on standard output.
pub async fn token(settings: &Settings, command: &TokenCommand) -> Result<String, CommandError> {
    let (_, store) = open_store(settings).await?;
    let result = async {
        match command {
            TokenCommand::Create { role, name } => {
                if name.trim().is_empty() {
                    return Err(CommandError::BadArgument("--name must not be empty".into()));
                }
                let secret = auth::new_token();
                let record = store.create_token(name.trim(), *role, &auth::digest(&secret)).await?;
                Ok(format!(
                    "created token `{}` with role {} (keep it now: it is not shown again)\n{secret}\n",
                    record.name, record.role
                ))
            }
            TokenCommand::List => {
                let mut out = String::from("id\tname\trole\tcreated\trevoked\n");
                for t in store.tokens().await? {
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\t{}\n",
                        t.id,
                        t.name,
                        t.role,
                        t.created_at,
                        t.revoked_at.as_deref().unwrap_or("-")
                    ));
                }
                Ok(out)
            }
            TokenCommand::Revoke { name } => match store.revoke_token(name).await? {
                true => Ok(format!("revoked token `{name}`\n")),
                false => Err(CommandError::BadArgument(format!("no live token is called `{name}`"))),
            },
        }
    }
    .await;
    store.close().await;
    result
}

/// `onemap basemap`: write the offline basemap of the district boundaries.
pub async fn basemap(settings: &Settings, args: &BasemapArgs) -> Result<usize, CommandError> {
    let (catalog, store) = open_store(settings).await?;
    let result = async {
        if args.demo {
            crate::demo::load_if_empty(store.as_ref(), &catalog)
                .await
                .map_err(|e| CommandError::BadArgument(e.to_string()))?;
        }
        let index = crate::index::SpatialIndex::load(store.as_ref(), &catalog).await?;
        let layer = catalog
            .get("districts")
            .cloned()
            .ok_or_else(|| CommandError::UnknownLayer("districts".into()))?;
        if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        crate::tiles::basemap::write(&index, &layer, args.max_zoom, &args.output)
            .await
            .map_err(|e| CommandError::BadArgument(e.to_string()))
    }
    .await;
    store.close().await;
    result
}

/// Who a CLI write is logged as: the command and the system user.
fn cli_actor(command: &str) -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("cli {command} ({user})")
}

fn read_stdin() -> Result<String, CommandError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|source| CommandError::Read {
            path: "standard input".into(),
            source,
        })?;
    Ok(text)
}
