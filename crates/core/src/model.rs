//! The domain records: prompts, versions, labels and their history, links and prompt types, with
//! the small closed vocabularies (kind, scope, classification, source, status) they use.

use std::{collections::BTreeMap, fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    error::DomainError,
    ident::{LabelName, PromptName},
    version::Semver,
};

/// Declares a closed string vocabulary with `as_str`, `FromStr`, `Display` and serde.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = DomainError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($text => Ok($name::$variant),)+
                    other => Err(DomainError::InvalidField {
                        field: stringify!($name),
                        reason: format!(
                            "{other:?} is not one of {}",
                            [$($text),+].join(", ")
                        ),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary!(
    /// Whether a prompt's content is one text or a list of chat messages.
    Kind { Text => "text", Chat => "chat" }
);
vocabulary!(
    /// Whose library a prompt belongs to.
    Scope { Global => "global", Agent => "agent", User => "user" }
);
vocabulary!(
    /// Who may read a prompt, where it may be served and whether its text is encrypted at rest.
    Classification {
        Public => "public",
        Internal => "internal",
        Confidential => "confidential",
        Restricted => "restricted",
    }
);
impl Classification {
    /// Whether the content of this prompt's versions is encrypted at rest (`confidential` and
    /// `restricted`).
    pub fn is_sealed_at_rest(self) -> bool {
        matches!(
            self,
            Classification::Confidential | Classification::Restricted
        )
    }
}

vocabulary!(
    /// A version's place in the review lifecycle.
    VersionStatus {
        Draft => "draft",
        Review => "review",
        Approved => "approved",
        Deprecated => "deprecated",
        Archived => "archived",
    }
);
vocabulary!(
    /// A prompt's overall status; archived prompts are hidden from lists (unless asked for by
    /// `status`). Refusing to serve archived prompts comes with the lifecycle rules.
    PromptStatus { Active => "active", Deprecated => "deprecated", Archived => "archived" }
);

vocabulary!(
    /// A principal's role (SPEC §7): admins do everything, users read and write, agents read.
    Role { Admin => "admin", User => "user", Agent => "agent" }
);
vocabulary!(
    /// How a deployment serves prompts (SPEC §10).
    DeploymentModel {
        WebApplication => "web_application",
        ElectronRemote => "electron_remote",
        ElectronLocal => "electron_local",
    }
);

/// Who an explicit grant on a prompt is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Grantee {
    User(Uuid),
    Agent(String),
}

/// Per-prompt access rules, on top of the role matrix, scope and classification (SPEC §7).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct PromptAccess {
    /// Only the owner (and admins) may see the prompt.
    pub owner_only: bool,
    /// If not empty, only principals with one of these roles (and admins) may see it.
    pub allowed_roles: Vec<Role>,
    /// Deployment models that may not serve (render/resolve) this prompt.
    pub restricted_deployments: Vec<DeploymentModel>,
    /// Explicit grants: needed to read `restricted` prompts, and for agents to read
    /// `confidential` ones.
    pub grants: Vec<Grantee>,
}

/// A person or service account that can be given credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub email: Option<String>,
    pub external_user_id: Option<String>,
    pub did: Option<String>,
    pub at_protocol_handle: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// At least one role; the highest one applies.
    pub roles: Vec<Role>,
    /// Extra permissions beyond the roles (e.g. `link`).
    pub permissions: Vec<String>,
    pub data: Value,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// An opaque API token's record (the secret itself is never stored, only its hash).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the secret, to recognise a token in lists.
    pub token_prefix: String,
    pub role: Role,
    pub user_id: Option<Uuid>,
    pub agent_id: Option<String>,
    /// If set, the token only reaches prompts of these scopes.
    pub scopes: Option<Vec<Scope>>,
    /// If set, the token only reaches prompts whose name starts with one of these.
    pub prompt_names: Option<Vec<String>>,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub created_by: Option<Uuid>,
    pub last_used_at: Option<OffsetDateTime>,
}

/// Where a prompt came from: `human`, `system`, `gen`, `file` or `sync:<library>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source(String);

impl Source {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let valid = match value.strip_prefix("sync:") {
            Some(library) => crate::ident::parse_identifier("sync library", library, 64).is_ok(),
            None => matches!(value, "human" | "system" | "gen" | "file"),
        };
        if valid {
            Ok(Source(value.to_string()))
        } else {
            Err(DomainError::InvalidField {
                field: "source",
                reason: format!("{value:?} is not one of human, system, gen, file, sync:<library>"),
            })
        }
    }

    pub fn human() -> Self {
        Source("human".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Source::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// One entry of a chat prompt: a message template, or a placeholder that expands to a list of
/// messages passed in at render time (`{"role": "placeholder", "name": "history"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawChatEntry", into = "RawChatEntry")]
pub enum ChatEntry {
    Message { role: String, content: String },
    Placeholder { name: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChatEntry {
    role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

impl TryFrom<RawChatEntry> for ChatEntry {
    type Error = String;

    fn try_from(raw: RawChatEntry) -> Result<Self, Self::Error> {
        match (raw.role.as_str(), raw.content, raw.name) {
            ("placeholder", None, Some(name)) => Ok(ChatEntry::Placeholder { name }),
            ("placeholder", _, _) => {
                Err("a placeholder entry has a `name` and no `content`".to_string())
            }
            ("", _, _) => Err("a chat message needs a non-empty `role`".to_string()),
            (_, Some(content), None) => Ok(ChatEntry::Message {
                role: raw.role,
                content,
            }),
            _ => Err("a chat message has a `role` and a `content` (and no `name`)".to_string()),
        }
    }
}

impl From<ChatEntry> for RawChatEntry {
    fn from(entry: ChatEntry) -> Self {
        match entry {
            ChatEntry::Message { role, content } => RawChatEntry {
                role,
                content: Some(content),
                name: None,
            },
            ChatEntry::Placeholder { name } => RawChatEntry {
                role: "placeholder".into(),
                content: None,
                name: Some(name),
            },
        }
    }
}

/// A version's template content: one text, or a list of chat entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Chat(Vec<ChatEntry>),
}

impl Content {
    pub fn kind(&self) -> Kind {
        match self {
            Content::Text(_) => Kind::Text,
            Content::Chat(_) => Kind::Chat,
        }
    }

    /// Parses content from JSON: a string is text, an array is chat.
    pub fn from_json(value: &Value) -> Result<Self, DomainError> {
        serde_json::from_value(value.clone()).map_err(|error| DomainError::InvalidContent {
            message: format!(
                "content is a string (text) or a list of {{role, content}} messages: {error}"
            ),
        })
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Checks this content may be stored as a version of a prompt of `kind`.
    pub fn check_kind(&self, kind: Kind) -> Result<(), DomainError> {
        if self.kind() == kind {
            Ok(())
        } else {
            Err(DomainError::KindMismatch {
                expected: kind.as_str(),
                given: self.kind().as_str(),
            })
        }
    }
}

impl Scope {
    /// An `agent` prompt names its agent; other scopes name none.
    pub fn check_agent(self, agent_id: Option<&str>) -> Result<(), DomainError> {
        match (self, agent_id) {
            (Scope::Agent, None) => Err(DomainError::InvalidField {
                field: "agent_id",
                reason: "an agent-scoped prompt needs an agent_id".into(),
            }),
            (Scope::Agent, Some(agent)) => {
                crate::ident::parse_identifier("agent_id", agent, 128).map(|_| ())
            }
            (_, Some(_)) => Err(DomainError::InvalidField {
                field: "agent_id",
                reason: "only an agent-scoped prompt has an agent_id".into(),
            }),
            (_, None) => Ok(()),
        }
    }
}

/// A prompt: the named, versioned template and its metadata. (Serde: the shared serve cache keeps
/// it as JSON; the API has its own wire types.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    pub id: Uuid,
    pub name: PromptName,
    pub title: Option<String>,
    pub description: Option<String>,
    pub long_description_markdown: Option<String>,
    pub scope: Scope,
    /// The agent an `agent`-scoped prompt belongs to.
    pub agent_id: Option<String>,
    pub owner_id: Option<Uuid>,
    pub creator_id: Option<Uuid>,
    /// The prompt type's key, if the prompt has one.
    pub prompt_type: Option<String>,
    pub kind: Kind,
    pub tags: Vec<String>,
    pub source: Source,
    pub classification: Classification,
    pub status: PromptStatus,
    pub access: PromptAccess,
    /// Bumped on every change to the prompt (metadata, versions, labels); the ETag is made from it.
    pub revision: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// An immutable snapshot of a prompt's template. (Serde: as for [`Prompt`].)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptVersion {
    pub id: Uuid,
    pub prompt_id: Uuid,
    pub version_number: i64,
    pub semver: Semver,
    pub content: Content,
    /// A JSON object (model, temperature …).
    pub config: Value,
    /// A JSON Schema (2020-12) of the render inputs, if the version declares one.
    pub parameter_schema: Option<Value>,
    pub diff_hash: String,
    pub notes: Option<String>,
    pub author_id: Option<Uuid>,
    pub status: VersionStatus,
    pub created_at: OffsetDateTime,
    /// What the compliance checks found when the version was created (SPEC §9).
    pub findings: Vec<crate::compliance::Finding>,
    /// Tokens of the template, counted when the version was created.
    pub token_count: i64,
    /// Approval, deprecation, archive and purge dates (`retire.rs`).
    pub lifecycle: crate::retire::VersionLifecycle,
}

/// A prompt with everything a reader wants at once: versions (newest first) and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptDetail {
    pub prompt: Prompt,
    pub versions: Vec<PromptVersion>,
    pub labels: BTreeMap<String, i64>,
    /// The labels that split traffic, with their splits (the `labels` map shows the primary).
    pub label_splits: BTreeMap<String, crate::deploy::Split>,
}

/// One move of a label, kept forever in the label's history.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelEvent {
    pub prompt_id: Uuid,
    pub label: LabelName,
    /// The version the label pointed at before the move (`None`: it was created).
    pub from_version: Option<i64>,
    /// The version the label points at after the move (`None`: it was removed).
    pub to_version: Option<i64>,
    pub actor_id: Option<Uuid>,
    pub at: OffsetDateTime,
    /// What kind of move it was.
    pub action: LabelAction,
    /// The split the label serves after the move, if it splits traffic.
    pub split: Option<crate::deploy::Split>,
}

vocabulary!(
    /// What a label-history entry records: a plain move, a removal, a traffic split, the end
    /// of a split (promote) or a rollback.
    LabelAction {
        Set => "set",
        Remove => "remove",
        Split => "split",
        Promote => "promote",
        Rollback => "rollback",
    }
);

/// "For capability `c`, agent `a` (or every agent) uses this prompt", with a priority.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub id: Uuid,
    pub prompt_id: Uuid,
    pub prompt_name: PromptName,
    pub capability: String,
    pub agent_id: Option<String>,
    pub priority: i32,
    pub created_at: OffsetDateTime,
}

/// A kind of prompt whose templates share a parameter contract (`schema`).
#[derive(Debug, Clone, PartialEq)]
pub struct PromptType {
    pub key: String,
    pub name: String,
    pub schema: Option<Value>,
    pub restricted_creation: bool,
    pub requires_approval: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Prompts of this type need a review every this many days (overrides the
    /// classification's interval).
    pub review_every_days: Option<u32>,
    /// The approval workflow of this type's prompts, overriding their classification's.
    pub approval_workflow: Option<crate::workflow::ApprovalWorkflow>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn chat_content_round_trips_messages_and_placeholders() {
        let value = json!([
            {"role": "system", "content": "You are {{ persona }}."},
            {"role": "placeholder", "name": "history"},
            {"role": "user", "content": "{{ question }}"}
        ]);
        let content = Content::from_json(&value).expect("valid chat content");
        assert_eq!(content.kind(), Kind::Chat);
        assert_eq!(content.to_json(), value);
    }

    #[test]
    fn malformed_chat_entries_are_rejected_with_a_reason() {
        let cases = [
            json!([{"role": "user"}]),
            json!([{"role": "placeholder", "content": "x"}]),
            json!([{"role": "", "content": "x"}]),
            json!([{"role": "user", "content": "x", "extra": 1}]),
            json!(42),
        ];
        for case in cases {
            assert!(Content::from_json(&case).is_err(), "{case}");
        }
    }

    #[test]
    fn only_agent_prompts_name_an_agent() {
        assert!(Scope::Agent.check_agent(Some("support-bot")).is_ok());
        assert!(Scope::Agent.check_agent(None).is_err());
        assert!(Scope::Global.check_agent(Some("support-bot")).is_err());
        assert!(Scope::User.check_agent(None).is_ok());
    }

    #[test]
    fn vocabularies_parse_their_own_words_only() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(*scope));
        }
        assert!("Global".parse::<Scope>().is_err());
        assert!(Source::parse("sync:langfuse").is_ok());
        assert!(Source::parse("sync:").is_err());
        assert!(Source::parse("robot").is_err());
    }
}
