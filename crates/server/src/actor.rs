//! Who is asking. Every use case takes an [`Actor`] first: the authenticated [`Principal`] the
//! access policy decides for, plus what the audit log records about the request.

use promptvault_core::{access::Principal, model::Role};
use uuid::Uuid;

/// The principal behind a request or a CLI command, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub principal: Principal,
    pub kind: ActorKind,
    /// The API token used, if any.
    pub token_id: Option<Uuid>,
    /// The client address (written out only when something is audited).
    pub source: Option<std::net::IpAddr>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// A user, authenticated by JWT or by a token bound to the user.
    User,
    /// An agent, authenticated by a token bound to an agent id.
    Agent,
    /// An API client token bound to neither.
    Token,
    /// The operator running the CLI on the local database.
    LocalCli,
    /// The server acting on its own.
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Agent => "agent",
            ActorKind::Token => "token",
            ActorKind::LocalCli => "cli",
            ActorKind::System => "system",
        }
    }
}

impl Actor {
    /// The CLI on the local database: an unrestricted admin (it holds the database file anyway).
    pub fn local_cli() -> Self {
        Actor {
            principal: Principal::local_operator(),
            kind: ActorKind::LocalCli,
            token_id: None,
            source: None,
            request_id: None,
        }
    }

    /// The server itself (first-start bootstrap, retention).
    pub fn system() -> Self {
        Actor {
            kind: ActorKind::System,
            ..Actor::local_cli()
        }
    }

    pub fn user_id(&self) -> Option<Uuid> {
        self.principal.user_id
    }

    pub fn role(&self) -> Role {
        self.principal.role
    }

    /// The id the audit log records: the user, else the agent, else the token.
    pub fn audit_id(&self) -> Option<String> {
        self.principal
            .user_id
            .map(|id| id.to_string())
            .or_else(|| self.principal.agent_id.clone())
            .or_else(|| self.token_id.map(|id| format!("token:{id}")))
    }
}
