//! The one-shot commands of the CLI: migrate, import, export.

use std::{
    fs::File,
    io::{BufWriter, Read, Write},
    path::Path,
};

use crate::{
    formats,
    layers::ValidationErrors,
    open_store,
    settings::{ExportArgs, ImportArgs, Settings},
    store::{self, StoreError},
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
    #[error(transparent)]
    Store(StoreError),
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

/// Import a GeoJSON or newline-delimited GeoJSON file into a layer, all or
/// nothing. Returns how many features were stored.
pub async fn import(settings: &Settings, args: &ImportArgs) -> Result<usize, CommandError> {
    let (catalog, store) = open_store(settings).await?;
    let layer = catalog
        .get(&args.layer)
        .cloned()
        .ok_or_else(|| CommandError::UnknownLayer(args.layer.clone()))?;
    let text = read_input(&args.file)?;
    let result = async {
        let parsed =
            formats::geojson::parse(&layer.name, &text, args.crs).map_err(CommandError::Invalid)?;
        match store.insert(&layer, &parsed.features).await {
            Ok(ids) => Ok(ids.len()),
            Err(StoreError::Invalid(e)) => Err(CommandError::Invalid(parsed.locate(e))),
            Err(e) => Err(e.into()),
        }
    }
    .await;
    store.close().await;
    result
}

/// Export a layer as a GeoJSON FeatureCollection.
pub async fn export(settings: &Settings, args: &ExportArgs) -> Result<usize, CommandError> {
    let (catalog, store) = open_store(settings).await?;
    let layer = catalog
        .get(&args.layer)
        .cloned()
        .ok_or_else(|| CommandError::UnknownLayer(args.layer.clone()))?;
    let features = store.features(&layer, &store::Query::default()).await;
    store.close().await;
    let features = features?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(File::create(path)?)),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    formats::geojson::write_collection(&mut out, &features, args.crs)?;
    out.flush()?;
    Ok(features.len())
}

fn read_input(path: &Path) -> Result<String, CommandError> {
    let mut text = String::new();
    let read = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        File::open(path).and_then(|mut f| f.read_to_string(&mut text).map(|_| ()))
    };
    read.map_err(|source| CommandError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(text)
}
