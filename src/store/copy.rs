//! `onemap copy`: a whole one map from one store into another (GeoPackage
//! to PostgreSQL when a district joins a city, and back for an offline
//! copy): every layer's features with their ids, the change log with its
//! seqs and images, tokens, idempotency keys and scenarios.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{CopyPart, Query, Restored, Store, StoreError};
use crate::layers::Catalog;

/// Features per part: memory holds a couple of parts, not a layer.
const FEATURES_PER_PART: usize = 5_000;
/// Log entries per part (an entry can hold a large before-image).
const CHANGES_PER_PART: u64 = 500;

/// Copy everything `from` holds of `catalog`'s layers into `to`, which is
/// prepared for them and must be empty; one transaction on `to`.
pub async fn between(
    from: Arc<dyn Store>,
    to: &dyn Store,
    catalog: Arc<Catalog>,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Restored, StoreError> {
    let (tx, rx) = mpsc::channel(2);
    let reader = tokio::spawn(async move {
        if let Err(e) = read_all(from, &catalog, &tx).await {
            let _ = tx.send(CopyPart::Failed(e)).await;
        }
    });
    let restored = to.restore(rx, progress).await;
    reader.abort();
    restored
}

async fn read_all(
    from: Arc<dyn Store>,
    catalog: &Catalog,
    tx: &mpsc::Sender<CopyPart>,
) -> Result<(), StoreError> {
    let gone = || StoreError::Interrupted {
        context: "copying (the writer stopped)".into(),
    };
    for layer in catalog.layers() {
        let mut features = from.stream(Arc::clone(layer), Query::default());
        let mut part = Vec::with_capacity(FEATURES_PER_PART);
        while let Some(f) = features.next().await {
            match f {
                Ok(f) => part.push(f),
                // A layer the source never had: nothing to copy of it.
                Err(StoreError::UnknownLayer { .. }) => break,
                Err(e) => return Err(e),
            }
            if part.len() == FEATURES_PER_PART {
                let full = std::mem::replace(&mut part, Vec::with_capacity(FEATURES_PER_PART));
                tx.send(CopyPart::Features {
                    layer: Arc::clone(layer),
                    features: full,
                })
                .await
                .map_err(|_| gone())?;
            }
        }
        if !part.is_empty() {
            tx.send(CopyPart::Features {
                layer: Arc::clone(layer),
                features: part,
            })
            .await
            .map_err(|_| gone())?;
        }
    }
    let mut seq = 0;
    loop {
        let page = from.log_page(seq, CHANGES_PER_PART).await?;
        let Some(last) = page.last().map(|e| e.change.seq) else {
            break;
        };
        seq = last;
        tx.send(CopyPart::Log(page)).await.map_err(|_| gone())?;
    }
    let records = from.records().await?;
    tx.send(CopyPart::Records(records))
        .await
        .map_err(|_| gone())?;
    tx.send(CopyPart::End).await.map_err(|_| gone())?;
    Ok(())
}
