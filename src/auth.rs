//! Bearer tokens and roles.
//!
//! Tokens are 256 random bits shown once; the store keeps only their SHA-256
//! digest (a fast hash is enough for secrets of full entropy, as for GitHub
//! tokens). Reads are open unless a setting requires a viewer; writes need
//! the role that owns the layer's group.

use std::sync::Arc;

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub use crate::layers::Role;
use crate::{
    error::AppError,
    layers::{LayerDef, LayerGroup},
    AppState,
};

/// A new random token: `om_` and 64 hex digits.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("om_{hex}")
}

/// The digest under which a token is stored.
pub fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Who is calling: a named token with its role, or nobody.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    Anonymous,
    Token { name: String, role: Role },
}

impl Caller {
    /// The name written to the change log and audit trail.
    pub fn actor(&self) -> String {
        match self {
            Caller::Anonymous => "anonymous".into(),
            Caller::Token { name, role } => format!("{name} ({role})"),
        }
    }

    /// 401 without a token, 403 with one whose role does not cover `group`.
    pub fn require_editor(&self, group: LayerGroup, layer: &str) -> Result<(), AppError> {
        match self {
            Caller::Anonymous => Err(AppError::Unauthorized(format!(
                "writing to `{layer}` needs a bearer token with role {} or admin",
                Role::editor_of(group)
            ))),
            Caller::Token { role, .. } if role.may_edit(group) => Ok(()),
            Caller::Token { role, .. } => Err(AppError::Forbidden(format!(
                "role {role} may not write to `{layer}`; it needs {} or admin",
                Role::editor_of(group)
            ))),
        }
    }

    pub fn require_admin(&self, what: &str) -> Result<(), AppError> {
        match self {
            Caller::Anonymous => Err(AppError::Unauthorized(format!(
                "{what} needs an admin token"
            ))),
            Caller::Token {
                role: Role::Admin, ..
            } => Ok(()),
            Caller::Token { role, .. } => Err(AppError::Forbidden(format!(
                "{what} needs an admin token, not {role}"
            ))),
        }
    }

    /// When reads require a token, refuse anonymous callers.
    pub fn require_reader(&self, state: &AppState) -> Result<(), AppError> {
        if state.settings.read_requires_token && *self == Caller::Anonymous {
            return Err(AppError::Unauthorized(
                "reading needs a bearer token (viewer or above)".into(),
            ));
        }
        Ok(())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Already resolved by the read guard (one token look-up a request).
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(Caller::Anonymous);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                AppError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?;
        match state.store.token(&digest(token)).await? {
            Some(t) => Ok(Caller::Token {
                name: t.name,
                role: t.role,
            }),
            None => Err(AppError::Unauthorized(
                "the token is unknown or revoked".into(),
            )),
        }
    }
}

/// A caller allowed to write to the layer the route names (`{layer}`),
/// decided from the request line and headers alone. Handlers take it
/// before their body, so an anonymous or under-privileged client is
/// refused before a byte of its upload is read (eight anonymous 250 MB
/// imports once held 2 GB just to be told 401).
pub struct Editor {
    pub caller: Caller,
    pub layer: Arc<LayerDef>,
}

impl FromRequestParts<AppState> for Editor {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?;
        let name = params
            .iter()
            .find(|(k, _)| *k == "layer")
            .map(|(_, v)| v.to_owned())
            .ok_or_else(|| AppError::Internal("a write route without a `{layer}`".into()))?;
        let layer = state
            .catalog
            .get(&name)
            .cloned()
            .ok_or_else(|| AppError::NotFound {
                what: format!("collection `{name}`"),
            })?;
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require_editor(layer.group, &name)?;
        Ok(Editor { caller, layer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_edit_their_own_groups() {
        assert!(Role::Dispatcher.may_edit(LayerGroup::Operational));
        assert!(!Role::Dispatcher.may_edit(LayerGroup::Planning));
        assert!(Role::Planner.may_edit(LayerGroup::Planning));
        assert!(!Role::Planner.may_edit(LayerGroup::Reference));
        assert!(Role::Admin.may_edit(LayerGroup::Reference));
        assert!(!Role::Viewer.may_edit(LayerGroup::Operational));
    }

    #[test]
    fn tokens_are_random_and_stored_as_digests() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with("om_") && a.len() == 67);
        assert_eq!(digest(&a).len(), 64);
        assert_ne!(digest(&a), digest(&b));
    }
}
