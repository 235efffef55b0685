//! The access use cases: users, API tokens (the secret shown once, only its hash stored), the
//! audit log (listing, verification, retention behind signed checkpoints) and the first-start
//! admin token.

use promptvault_api::access::{
    AuditEntryResponse, AuditListResponse, AuditQuery, AuditVerifyResponse, CreateTokenRequest,
    CreateUserRequest, KeysRotatedResponse, TokenResponse, UpdateUserRequest, UserResponse,
};
use promptvault_core::{
    access::Action,
    audit::{AuditOutcome, ChainVerifier, Checkpoint, sign_checkpoint},
    error::DomainError,
    ident,
    model::Role,
    secret::{TOKEN_PREFIX, token_display_prefix, token_hash},
};
use promptvault_store::{
    StoreError,
    types::{AuditQuery as StoreAuditQuery, NewApiToken, NewUser, PromptKey, UserPatch},
};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{
    actor::Actor,
    auth::generate_token,
    error::{AppError, AppResult},
    vault::{Vault, guard::Audited, parse_key},
};

const MAX_AUDIT_PAGE: i64 = 1000;
const VERIFY_PAGE: i64 = 1000;

impl Vault {
    pub async fn create_user(
        &self,
        actor: &Actor,
        request: CreateUserRequest,
    ) -> AppResult<UserResponse> {
        self.authorize(actor, Action::ManageAccess, None).await?;
        if request.roles.is_empty() {
            return Err(DomainError::InvalidField {
                field: "roles",
                reason: "a user needs at least one role".into(),
            }
            .into());
        }
        for (field, value) in [
            ("email", &request.email),
            ("external_user_id", &request.external_user_id),
            ("did", &request.did),
            ("at_protocol_handle", &request.at_protocol_handle),
            ("first_name", &request.first_name),
            ("last_name", &request.last_name),
        ] {
            if let Some(value) = value {
                ident::check_text(field, value, 320)?;
            }
        }
        if let Some(email) = &request.email
            && !email.contains('@')
        {
            return Err(DomainError::InvalidField {
                field: "email",
                reason: "not an email address".into(),
            }
            .into());
        }
        let permissions = parse_permissions(&request.permissions)?;
        let data = request.data.unwrap_or_else(|| json!({}));
        ident::check_no_nul("data", &data)?;
        let user = self
            .store
            .create_user(NewUser {
                email: request.email,
                external_user_id: request.external_user_id,
                did: request.did,
                at_protocol_handle: request.at_protocol_handle,
                first_name: request.first_name,
                last_name: request.last_name,
                roles: request.roles,
                permissions,
                data,
            })
            .await?;
        self.audit(
            actor,
            Audited::ok("user.create", None)
                .detail(json!({"user_id": user.id, "roles": user.roles})),
        )
        .await?;
        Ok(UserResponse::from(&user))
    }

    pub async fn list_users(&self, actor: &Actor) -> AppResult<Vec<UserResponse>> {
        self.authorize(actor, Action::ManageAccess, None).await?;
        Ok(self
            .store
            .list_users()
            .await?
            .iter()
            .map(UserResponse::from)
            .collect())
    }

    pub async fn get_user(&self, actor: &Actor, id: Uuid) -> AppResult<UserResponse> {
        self.authorize(actor, Action::ManageAccess, None).await?;
        Ok(UserResponse::from(&self.store.get_user(id).await?))
    }

    pub async fn update_user(
        &self,
        actor: &Actor,
        id: Uuid,
        request: UpdateUserRequest,
    ) -> AppResult<UserResponse> {
        self.authorize(actor, Action::ManageAccess, None).await?;
        if request.roles.as_ref().is_some_and(Vec::is_empty) {
            return Err(DomainError::InvalidField {
                field: "roles",
                reason: "a user needs at least one role".into(),
            }
            .into());
        }
        for (field, value) in [
            ("email", &request.email),
            ("first_name", &request.first_name),
            ("last_name", &request.last_name),
        ] {
            if let Some(Some(value)) = value {
                ident::check_text(field, value, 320)?;
            }
        }
        if let Some(data) = &request.data {
            ident::check_no_nul("data", data)?;
        }
        let patch = UserPatch {
            email: request.email,
            first_name: request.first_name,
            last_name: request.last_name,
            roles: request.roles,
            permissions: request
                .permissions
                .as_deref()
                .map(parse_permissions)
                .transpose()?,
            data: request.data,
            ..UserPatch::default()
        };
        let user = self.store.update_user(id, patch).await?;
        self.audit(
            actor,
            Audited::ok("user.update", None).detail(json!({"user_id": id, "roles": user.roles})),
        )
        .await?;
        Ok(UserResponse::from(&user))
    }

    pub async fn delete_user(&self, actor: &Actor, id: Uuid) -> AppResult<()> {
        self.authorize(actor, Action::ManageAccess, None).await?;
        self.store.delete_user(id).await?;
        self.audit(
            actor,
            Audited::ok("user.delete", None).detail(json!({"user_id": id})),
        )
        .await
    }

    /// Creates a token; the answer is the only time its secret is shown.
    pub async fn create_token(
        &self,
        actor: &Actor,
        request: CreateTokenRequest,
    ) -> AppResult<TokenResponse> {
        self.authorize(actor, Action::ManageAccess, None).await?;
        ident::check_text("name", &request.name, 255)?;
        if request.name.trim().is_empty() {
            return Err(DomainError::InvalidField {
                field: "name",
                reason: "must not be empty".into(),
            }
            .into());
        }
        if let Some(user_id) = request.user_id {
            self.store.get_user(user_id).await?;
        }
        let agent_id = request
            .agent_id
            .as_deref()
            .map(|agent| ident::parse_identifier("agent_id", agent, 128))
            .transpose()?;
        let expires_at = match request.expires_in {
            Some(seconds) if seconds <= 0 => {
                return Err(DomainError::InvalidField {
                    field: "expires_in",
                    reason: "must be a positive number of seconds".into(),
                }
                .into());
            }
            Some(seconds) => Some(
                OffsetDateTime::now_utc()
                    .checked_add(Duration::seconds(seconds))
                    .ok_or_else(|| {
                        AppError::unprocessable("invalid_field", "expires_in is too large")
                    })?,
            ),
            None => None,
        };
        let secret = generate_token().map_err(|error| AppError::internal(error.as_ref()))?;
        let record = self
            .store
            .create_token(NewApiToken {
                name: request.name,
                token_hash: token_hash(&secret),
                token_prefix: token_display_prefix(&secret),
                role: request.role,
                user_id: request.user_id,
                agent_id,
                scopes: request.scopes,
                prompt_names: request.prompt_names,
                expires_at,
                created_by: actor.user_id(),
            })
            .await?;
        self.audit(
            actor,
            Audited::ok("token.create", None)
                .detail(json!({"token_id": record.id, "role": record.role})),
        )
        .await?;
        let mut response = TokenResponse::from(&record);
        response.token = Some(secret);
        Ok(response)
    }

    pub async fn list_tokens(&self, actor: &Actor) -> AppResult<Vec<TokenResponse>> {
        self.authorize(actor, Action::ManageAccess, None).await?;
        Ok(self
            .store
            .list_tokens()
            .await?
            .iter()
            .map(TokenResponse::from)
            .collect())
    }

    pub async fn revoke_token(&self, actor: &Actor, id: Uuid) -> AppResult<TokenResponse> {
        self.authorize(actor, Action::ManageAccess, None).await?;
        let token = self.store.revoke_token(id).await?;
        self.audit(
            actor,
            Audited::ok("token.revoke", None).detail(json!({"token_id": id})),
        )
        .await?;
        Ok(TokenResponse::from(&token))
    }

    /// On first start (no token at all), creates an admin token — `fixed` if given (it must start
    /// with `pv_`), else a random one — and returns its secret to print once.
    pub async fn bootstrap_admin_token(&self, fixed: Option<&str>) -> AppResult<Option<String>> {
        if self.store.count_tokens().await? > 0 {
            return Ok(None);
        }
        let secret = match fixed {
            Some(secret)
                if secret.starts_with(TOKEN_PREFIX) && secret.len() >= TOKEN_PREFIX.len() + 32 =>
            {
                secret.to_string()
            }
            Some(_) => {
                return Err(AppError::unprocessable(
                    "invalid_bootstrap_token",
                    "PROMPTVAULT_BOOTSTRAP_TOKEN must start with pv_ and have at least 32 more characters",
                ));
            }
            None => generate_token().map_err(|error| AppError::internal(error.as_ref()))?,
        };
        self.store
            .create_token(NewApiToken {
                name: "bootstrap admin".into(),
                token_hash: token_hash(&secret),
                token_prefix: token_display_prefix(&secret),
                role: Role::Admin,
                user_id: None,
                agent_id: None,
                scopes: None,
                prompt_names: None,
                expires_at: None,
                created_by: None,
            })
            .await?;
        self.audit(&Actor::system(), Audited::ok("token.bootstrap", None))
            .await?;
        Ok(Some(secret))
    }

    pub async fn list_audit(
        &self,
        actor: &Actor,
        query: AuditQuery,
    ) -> AppResult<AuditListResponse> {
        self.authorize(actor, Action::ReadAudit, None).await?;
        let limit = query.limit.unwrap_or(100);
        if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
            return Err(AppError::unprocessable(
                "invalid_query",
                format!("limit must be between 1 and {MAX_AUDIT_PAGE}"),
            ));
        }
        let (prompt_id, prompt_name) = match query.prompt.as_deref().map(parse_key).transpose() {
            Ok(Some(PromptKey::Id(id))) => (Some(id), None),
            Ok(Some(PromptKey::Name(name))) => (None, Some(name.to_string())),
            Ok(None) => (None, None),
            Err(_) => (None, query.prompt.clone()),
        };
        let outcome = match query.outcome.as_deref() {
            Some(outcome) => Some(AuditOutcome::parse(outcome).ok_or_else(|| {
                AppError::unprocessable("invalid_query", "outcome is one of ok, denied, failed")
            })?),
            None => None,
        };
        let now = OffsetDateTime::now_utc();
        let entries = self
            .store
            .list_audit(&StoreAuditQuery {
                actor_id: query.actor,
                actor_role: query.actor_role,
                prompt_id,
                prompt_name,
                action: query.action,
                outcome,
                prompt_scope: query.scope,
                since: query
                    .since
                    .as_deref()
                    .map(|since| parse_time_or_age("since", since, now))
                    .transpose()?,
                until: query
                    .until
                    .as_deref()
                    .map(|until| parse_time_or_age("until", until, now))
                    .transpose()?,
                after_seq: query.after,
                limit,
            })
            .await?;
        let next_after = (entries.len() as i64 == limit)
            .then(|| entries.last().map(|entry| entry.seq))
            .flatten();
        Ok(AuditListResponse {
            entries: entries.iter().map(AuditEntryResponse::from).collect(),
            next_after,
        })
    }

    /// Walks the whole log from the latest checkpoint and names the first broken entry.
    pub async fn verify_audit(&self, actor: &Actor) -> AppResult<AuditVerifyResponse> {
        self.authorize(actor, Action::ReadAudit, None).await?;
        let checkpoint = self.store.latest_checkpoint().await?;
        let mut verifier = ChainVerifier::new(&self.audit_key, checkpoint.as_ref());
        let mut head: Option<(i64, String)> = None;
        let mut after = checkpoint
            .as_ref()
            .map_or(0, |checkpoint| checkpoint.up_to_seq);
        loop {
            let page = self.store.audit_chain(after, VERIFY_PAGE).await?;
            for entry in &page {
                verifier.push(entry);
            }
            if let Some(last) = page.last() {
                head = Some((last.seq, last.hash.clone()));
            }
            match page.last() {
                Some(last) if page.len() as i64 == VERIFY_PAGE && !verifier.is_broken() => {
                    after = last.seq
                }
                _ => break,
            }
        }
        let report = verifier.finish();
        Ok(AuditVerifyResponse {
            ok: report.ok,
            checked: report.checked,
            purged_before: checkpoint.map_or(0, |checkpoint| checkpoint.up_to_seq),
            first_broken_seq: report.first_broken.as_ref().map(|broken| broken.seq),
            reason: report.first_broken.map(|broken| broken.reason),
            head_seq: head.as_ref().map(|(seq, _)| *seq),
            head_hash: head.map(|(_, hash)| hash),
        })
    }

    /// Purges entries older than `retention` behind a signed checkpoint; returns how many went.
    pub async fn apply_audit_retention(&self, retention: Duration) -> AppResult<i64> {
        let cutoff = OffsetDateTime::now_utc() - retention;
        let Some((up_to_seq, up_to_hash)) = self.store.last_audit_before(cutoff).await? else {
            return Ok(0);
        };
        let previous = self
            .store
            .latest_checkpoint()
            .await?
            .map_or(0, |checkpoint| checkpoint.up_to_seq);
        if up_to_seq <= previous {
            return Ok(0);
        }
        let purged = up_to_seq - previous;
        let at = OffsetDateTime::now_utc();
        let signature = sign_checkpoint(&self.audit_key, up_to_seq, &up_to_hash, purged, at);
        match self
            .store
            .purge_audit(Checkpoint {
                up_to_seq,
                up_to_hash,
                purged,
                at,
                signature,
            })
            .await
        {
            Ok(()) => Ok(purged),
            Err(StoreError::Conflict { what }) => Err(AppError::new(
                axum::http::StatusCode::CONFLICT,
                "conflict",
                what,
            )),
            Err(other) => Err(other.into()),
        }
    }
}

impl Vault {
    /// Re-encrypts every sealed version not under the current key (in small batches, so serving
    /// goes on); returns how many were re-encrypted.
    pub async fn rotate_keys(&self, actor: &Actor) -> AppResult<KeysRotatedResponse> {
        self.authorize(actor, Action::ManageAccess, None).await?;
        let reencrypted = self.store.reencrypt().await?;
        self.audit(
            actor,
            Audited::ok("keys.rotate", None).detail(json!({"reencrypted": reencrypted})),
        )
        .await?;
        Ok(KeysRotatedResponse { reencrypted })
    }
}

/// Permissions are short words (`link`).
fn parse_permissions(permissions: &[String]) -> Result<Vec<String>, DomainError> {
    permissions
        .iter()
        .map(|permission| ident::parse_identifier("permission", permission, 64))
        .collect()
}

/// An RFC 3339 time, or an age back from `now` (`30m`, `12h`, `7d`).
pub fn parse_time_or_age(
    field: &'static str,
    value: &str,
    now: OffsetDateTime,
) -> AppResult<OffsetDateTime> {
    if let Ok(time) = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339) {
        return Ok(time);
    }
    let invalid = || {
        AppError::unprocessable(
            "invalid_query",
            format!("{field} is an RFC 3339 time or an age like 30m, 12h, 7d"),
        )
    };
    let units: [(char, i64); 4] = [('s', 1), ('m', 60), ('h', 3_600), ('d', 86_400)];
    let (number, seconds_per_unit) = units
        .iter()
        .find_map(|(unit, seconds)| value.strip_suffix(*unit).map(|number| (number, *seconds)))
        .ok_or_else(invalid)?;
    let amount: i64 = number.parse().map_err(|_| invalid())?;
    let seconds = amount.checked_mul(seconds_per_unit).ok_or_else(invalid)?;
    let age = Duration::seconds(seconds);
    now.checked_sub(age).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_times_parse_for_audit_queries() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(30);
        let cases = [
            ("7d", Some(now - Duration::days(7))),
            ("12h", Some(now - Duration::hours(12))),
            ("30m", Some(now - Duration::minutes(30))),
            (
                "1970-01-02T00:00:00Z",
                Some(OffsetDateTime::UNIX_EPOCH + Duration::days(1)),
            ),
            ("7w", None),
            ("d", None),
            ("", None),
            ("1é", None),
            ("9999999999999999d", None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                parse_time_or_age("since", value, now).ok(),
                expected,
                "{value}"
            );
        }
    }
}
