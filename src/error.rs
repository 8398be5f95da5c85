//! The HTTP boundary's one error type and its RFC 9457 problem+json form.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

use crate::{layers::ValidationErrors, store::StoreError};

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error("{0}")]
    Conflict(String),
    /// A 409 that names the state it met (`team_status`, …) as problem
    /// extension members, for clients to act on without parsing text.
    #[error("{detail}")]
    ConflictWith {
        detail: String,
        extra: serde_json::Map<String, Value>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the service is unavailable: {0}")]
    Unavailable(String),
    #[error("storage failure")]
    Store(#[source] StoreError),
    /// A failure of the server itself (a panicked worker): logged where it
    /// happened; the text is for the log, the client gets a generic detail.
    #[error("{0}")]
    Internal(String),
}

impl From<crate::request::FieldError> for AppError {
    fn from(e: crate::request::FieldError) -> Self {
        AppError::BadRequest(e.to_string())
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(v) => AppError::Invalid(v),
            StoreError::UnknownLayer { layer } => AppError::NotFound {
                what: format!("layer `{layer}`"),
            },
            e @ StoreError::PreconditionFailed { .. } => AppError::PreconditionFailed(format!(
                "{e}: read it again and retry with its current ETag"
            )),
            e @ StoreError::Duplicate { .. } => AppError::Conflict(e.to_string()),
            e @ StoreError::TooMuch { .. } => AppError::BadRequest(e.to_string()),
            // The database is down, unreachable or closing (a PostgreSQL
            // server restarting, every connection busy): the request may
            // succeed later or on another node, so 503, not 500.
            e if e.is_unreachable() => AppError::unavailable("the database does not answer", e),
            other => AppError::Store(other),
        }
    }
}

impl AppError {
    /// A 503 whose cause is logged here and kept from the client: internal
    /// error text (paths, SQL, OS errors) tells an attacker about the
    /// machine and tells a user nothing they can act on.
    pub fn unavailable(public: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "{public}");
        AppError::Unavailable(public.to_owned())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound { .. } => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Conflict(_) | AppError::ConflictWith { .. } => StatusCode::CONFLICT,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Store(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A problem document (RFC 9457) with `status`, a `title` from the status
/// and `detail` saying what was wrong.
pub fn problem(status: StatusCode, detail: &str, extra: Option<(&str, Value)>) -> Response {
    let members = extra
        .map(|(k, v)| std::iter::once((k.to_owned(), v)).collect())
        .unwrap_or_default();
    problem_with(status, detail, members)
}

/// [`problem`] with extension members (RFC 9457 §3.2) beside the standard
/// ones, which they never replace.
pub fn problem_with(
    status: StatusCode,
    detail: &str,
    members: serde_json::Map<String, Value>,
) -> Response {
    let mut body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    if let Some(obj) = body.as_object_mut() {
        for (k, v) in members {
            obj.entry(k).or_insert(v);
        }
    }
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            AppError::Store(source) => {
                // Logged once with its chain; the client learns nothing internal.
                tracing::error!(error = ?source, "store failure");
                problem(
                    status,
                    "the request could not be completed; the failure is logged",
                    None,
                )
            }
            AppError::Internal(what) => {
                problem(status, &format!("{what}; the failure is logged"), None)
            }
            AppError::Invalid(errors) => {
                // `errors`: each violation (up to the report limit);
                // `problems`: the same grouped, one per distinct problem
                // with its count, which is what a refused file needs read.
                let mut members = serde_json::Map::new();
                members.insert("total".into(), json!(errors.total));
                if let Ok(v) = serde_json::to_value(&errors.problems) {
                    members.insert("problems".into(), v);
                }
                if let Ok(v) = serde_json::to_value(&errors.violations) {
                    members.insert("errors".into(), v);
                }
                problem_with(status, &self.to_string(), members)
            }
            AppError::Unauthorized(_) => {
                let mut r = problem(status, &self.to_string(), None);
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"onemap\""),
                );
                r
            }
            AppError::ConflictWith { detail, extra } => problem_with(status, detail, extra.clone()),
            AppError::Unavailable(_) => {
                let mut r = problem(status, &self.to_string(), None);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                r
            }
            _ => problem(status, &self.to_string(), None),
        }
    }
}
