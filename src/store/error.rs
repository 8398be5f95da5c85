use crate::layers::ValidationErrors;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The features broke their layer's schema; nothing was written.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The layer was never prepared in this store.
    #[error("layer `{layer}` does not exist in the store")]
    UnknownLayer { layer: String },
    /// A stored row cannot be read back as a feature (e.g. a GIS client wrote
    /// a text into a numeric column).
    #[error("layer `{layer}`, feature {id}: stored {column} cannot be read: {reason}")]
    Corrupt {
        layer: String,
        id: i64,
        column: String,
        reason: String,
    },
    /// An `If-Match` precondition failed: the feature changed meanwhile.
    #[error("layer `{layer}`, feature {id} has changed since it was read")]
    PreconditionFailed { layer: String, id: i64 },
    /// An edit's feature does not exist; nothing was written.
    #[error("layer `{layer}` has no feature {id}")]
    NotFound { layer: String, id: i64 },
    /// An edit declined to change its feature; nothing was written.
    #[error("layer `{layer}`, feature {id}: {reason}")]
    Refused {
        layer: String,
        id: i64,
        #[source]
        reason: super::Refusal,
    },
    /// This store cannot do what was asked.
    #[error("this store does not serve {what}")]
    Unsupported { what: String },
    /// A read would return more than a request may hold.
    #[error("{what}")]
    TooMuch { what: String },
    /// A copy's target already holds data.
    #[error("the target store is not empty: it already holds {what}")]
    NotEmpty { what: String },
    /// A unique name is taken.
    #[error("{what} already exists")]
    Duplicate { what: String },
    #[error("no store understands the database URL `{url}` (expected sqlite://FILE.gpkg or postgres://USER@HOST/DATABASE)")]
    UnsupportedUrl { url: String },
    #[error("cannot upgrade the database schema")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A read stopped part-way through (its task failed); what was sent
    /// before is incomplete.
    #[error("{context} stopped part-way")]
    Interrupted { context: String },
    #[error("database failure while {context}")]
    Database {
        context: String,
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    /// Whether the database cannot be reached now (down, restarting,
    /// every connection busy, the store closing), as opposed to a failure
    /// of what was asked: worth trying again later or on another node.
    pub fn is_unreachable(&self) -> bool {
        let StoreError::Database { source, .. } = self else {
            return false;
        };
        match source {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
            // PostgreSQL's "operator intervention" (57P: shutting down,
            // cannot connect now) and "connection exception" (08) classes.
            sqlx::Error::Database(d) => d
                .code()
                .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")),
            _ => false,
        }
    }

    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
        let context = context.into();
        move |source| StoreError::Database { context, source }
    }
}
