//! Roles: who may edit which group of layers. The catalog owns them (they
//! are stated in terms of layer groups) so the store can keep tokens with
//! their role without knowing anything of HTTP or authentication.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::LayerGroup;

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
