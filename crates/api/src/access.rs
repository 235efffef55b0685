//! Bodies of the access endpoints: users (`/api/users`), API tokens (`/api/tokens`) and the audit
//! log (`/api/audit`, `/api/audit/verify`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{Role, Scope};

/// `POST /api/users`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub did: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_protocol_handle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// At least one; the strongest applies (admin > user > agent).
    pub roles: Vec<Role>,
    /// Extra permissions, e.g. `link`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

/// `PUT /api/users/{id}`: absent fields stay; `null` clears a nullable one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(
        default,
        deserialize_with = "crate::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, nullable)]
    pub email: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "crate::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, nullable)]
    pub first_name: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "crate::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, nullable)]
    pub last_name: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    pub email: Option<String>,
    pub external_user_id: Option<String>,
    pub did: Option<String>,
    pub at_protocol_handle: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub roles: Vec<Role>,
    pub permissions: Vec<String>,
    #[schema(value_type = Object)]
    pub data: Value,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// `POST /api/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub name: String,
    pub role: Role,
    /// The user the token acts for (its role is capped by the user's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    /// The agent the token is for (agent-scoped prompts of this agent become visible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Lifetime in seconds; absent: no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
    /// Only prompts of these scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<Scope>>,
    /// Only prompts whose name starts with one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_names: Option<Vec<String>>,
}

/// A token's record; `token` (the secret) is present only in the answer that created it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub id: Uuid,
    /// The secret, shown once. Store it now: only its hash is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub token_prefix: String,
    pub role: Role,
    pub user_id: Option<Uuid>,
    pub agent_id: Option<String>,
    pub scopes: Option<Vec<Scope>>,
    pub prompt_names: Option<Vec<String>>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<OffsetDateTime>,
}

/// Query of `GET /api/audit`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// User id, agent id or `token:<id>`.
    pub actor: Option<String>,
    pub actor_role: Option<Role>,
    /// Prompt id or name.
    pub prompt: Option<String>,
    /// Exact action, or a prefix ending in `.` (`label.`).
    pub action: Option<String>,
    /// `ok`, `denied` or `failed`.
    pub outcome: Option<String>,
    /// The scope of the prompt concerned.
    pub scope: Option<Scope>,
    /// RFC 3339 time, or a duration back from now: `30m`, `12h`, `7d`.
    pub since: Option<String>,
    /// RFC 3339 time.
    pub until: Option<String>,
    /// Only entries after this `seq` (paging).
    pub after: Option<i64>,
    /// 1–1000, default 100.
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryResponse {
    pub seq: i64,
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub actor_role: Option<Role>,
    pub action: String,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
    pub prompt_id: Option<Uuid>,
    pub prompt_name: Option<String>,
    pub prompt_scope: Option<Scope>,
    pub classification: Option<crate::Classification>,
    pub before_hash: Option<String>,
    pub after_hash: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Value,
    pub source: Option<String>,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditListResponse {
    pub entries: Vec<AuditEntryResponse>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// `GET /api/audit/verify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditVerifyResponse {
    pub ok: bool,
    /// Entries checked.
    pub checked: i64,
    /// Entries purged by retention before the checkpoint the check started from.
    pub purged_before: i64,
    pub first_broken_seq: Option<i64>,
    pub reason: Option<String>,
    /// The newest entry (`seq` and `hash`): the chain cannot show that entries were cut off its
    /// end, so keep these outside the database and compare them at the next verification.
    pub head_seq: Option<i64>,
    pub head_hash: Option<String>,
}

/// `POST /api/keys/rotate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeysRotatedResponse {
    /// Versions re-encrypted under the current key.
    pub reencrypted: u64,
}
