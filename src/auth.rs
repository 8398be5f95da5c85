//! Bearer tokens and roles.
//!
//! Tokens are 256 random bits shown once; the store keeps only their SHA-256
//! digest (a fast hash is enough for secrets of full entropy, as for GitHub
//! tokens). Reads are open unless a setting requires a viewer; writes need
//! the role that owns the layer's group.

use std::fmt;

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{error::AppError, layers::LayerGroup, AppState};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Edit operational layers (teams, depots, incidents, …).
    Dispatcher,
    /// Edit planning layers (shelters, risk zones, population).
    Planner,
    /// Edit every layer, read the audit trail.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Dispatcher => "dispatcher",
            Role::Planner => "planner",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "dispatcher" => Role::Dispatcher,
            "planner" => Role::Planner,
            "admin" => Role::Admin,
            _ => return None,
        })
    }

    /// Whether this role may write to layers of `group`.
    pub fn may_edit(self, group: LayerGroup) -> bool {
        matches!(
            (self, group),
            (Role::Admin, _)
                | (Role::Dispatcher, LayerGroup::Operational)
                | (Role::Planner, LayerGroup::Planning)
        )
    }

    /// The role a layer group's writers need, for messages.
    pub fn editor_of(group: LayerGroup) -> Role {
        match group {
            LayerGroup::Operational => Role::Dispatcher,
            LayerGroup::Planning => Role::Planner,
            LayerGroup::Reference => Role::Admin,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
