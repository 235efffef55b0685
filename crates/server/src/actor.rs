//! Who is asking. Every use case takes an [`Actor`] first, so authentication can fill it in and
//! authorization can decide from it without changing any handler or use-case signature.

use uuid::Uuid;

/// The principal behind a request or a CLI command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user acting, when known; recorded as author/creator/label mover.
    pub user_id: Option<Uuid>,
    pub kind: ActorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// An HTTP caller before access control exists (the API is open on loopback).
    Anonymous,
    /// The CLI working directly on the local database.
    LocalCli,
}

impl Actor {
    pub fn anonymous() -> Self {
        Actor {
            user_id: None,
            kind: ActorKind::Anonymous,
        }
    }

    pub fn local_cli() -> Self {
        Actor {
            user_id: None,
            kind: ActorKind::LocalCli,
        }
    }
}
