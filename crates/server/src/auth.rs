//! Authentication: turns an `Authorization: Bearer …` header into a [`Principal`].
//!
//! - Opaque tokens (`pv_…`) are looked up by their SHA-256; revoked or expired ones are refused;
//!   a token never grants more than its user's role.
//! - JWTs are verified with the one configured algorithm (HS256 with a shared secret, or RS256
//!   with a public key): the algorithm is pinned, so `alg: none` and algorithm confusion are
//!   refused; `exp` is required; `sub` must name an existing user.
//! - Failed attempts are counted per client address; past the configured number per minute
//!   further failures are answered 429 (a valid credential still passes, so a shared address
//!   cannot lock its legitimate users out).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use promptvault_core::{
    access::{CredentialRestriction, Principal, strongest_role, weaker_role},
    model::{ApiToken, User},
    secret::{TOKEN_PREFIX, token_hash},
};
use promptvault_store::{Store, StoreError};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{actor::ActorKind, settings::AuthSettings};

/// Who a credential authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub principal: Principal,
    pub kind: ActorKind,
    pub token_id: Option<Uuid>,
}

/// Why authentication failed; the message is safe to show (it never echoes the credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Invalid(String),
    RateLimited,
}

struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

pub struct Authenticator {
    store: Arc<dyn Store>,
    /// Verified opaque tokens by hash, for a few seconds: most requests then need no lookup.
    /// Revocation and user changes through this server flush it at once; other servers (and
    /// the CLI on the same database) are seen within [`TOKEN_CACHE_TTL`].
    tokens: moka::sync::Cache<String, Arc<(ApiToken, Option<User>)>>,
    jwt: Option<JwtVerifier>,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
    max_failures_per_minute: u32,
}

const WINDOW: Duration = Duration::from_secs(60);

/// How long a verified token is trusted without asking the database again.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, settings: &AuthSettings) -> anyhow::Result<Self> {
        let jwt = match (
            &settings.jwt_hs256_secret,
            &settings.jwt_rs256_public_key_file,
        ) {
            (Some(_), Some(_)) => anyhow::bail!(
                "configure one JWT algorithm: auth.jwt_hs256_secret or auth.jwt_rs256_public_key_file, not both"
            ),
            (Some(secret), None) => {
                anyhow::ensure!(
                    secret.0.len() >= 32,
                    "auth.jwt_hs256_secret must be at least 32 bytes"
                );
                Some((
                    DecodingKey::from_secret(secret.0.as_bytes()),
                    Algorithm::HS256,
                ))
            }
            (None, Some(path)) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let key = DecodingKey::from_rsa_pem(&pem).with_context(|| {
                    format!("{} is not an RSA public key in PEM", path.display())
                })?;
                Some((key, Algorithm::RS256))
            }
            (None, None) => None,
        };
        let jwt = jwt.map(|(key, algorithm)| {
            let mut validation = Validation::new(algorithm);
            validation.algorithms = vec![algorithm];
            validation.validate_exp = true;
            validation.set_required_spec_claims(&["exp", "sub"]);
            validation.leeway = 30;
            validation.validate_aud = false;
            if let Some(issuer) = &settings.jwt_issuer {
                validation.set_issuer(&[issuer]);
            }
            JwtVerifier { key, validation }
        });
        Ok(Authenticator {
            store,
            tokens: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(TOKEN_CACHE_TTL)
                .build(),
            jwt,
            failures: Mutex::new(HashMap::new()),
            max_failures_per_minute: settings.max_failures_per_minute,
        })
    }

    /// Authenticates the value of an `Authorization` header sent from `source` (the client
    /// address; failures without one are counted together, as `unknown`).
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        source: Option<std::net::IpAddr>,
    ) -> Result<Authenticated, AuthFailure> {
        let result = match header {
            None => Err(AuthFailure::Missing),
            Some(header) => match header.strip_prefix("Bearer ").map(str::trim) {
                Some(token) if token.starts_with(TOKEN_PREFIX) => self.opaque(token).await,
                // Boxed, like a token's store lookup: kept out of the opaque-token path's future.
                Some(token) if !token.is_empty() => Box::pin(self.jwt(token)).await,
                _ => Err(AuthFailure::Invalid(
                    "the Authorization header must be `Bearer <token>`".into(),
                )),
            },
        };
        // A valid credential always passes, so failures from a shared address (a proxy, a NAT)
        // never lock its legitimate users out; past the limit, failures are answered 429 and no
        // longer counted (or audited) one by one.
        let failure = match result {
            Ok(authenticated) => return Ok(authenticated),
            Err(failure) => failure,
        };
        let source = source.map_or_else(|| "unknown".to_string(), |address| address.to_string());
        if self.is_rate_limited(&source) {
            return Err(AuthFailure::RateLimited);
        }
        self.record_failure(&source);
        Err(failure)
    }

    async fn opaque(&self, token: &str) -> Result<Authenticated, AuthFailure> {
        let hash = token_hash(token);
        if let Some(cached) = self.tokens.get(&hash) {
            let (record, user) = cached.as_ref();
            check_usable(record)?;
            return Ok(principal_of_token(record, user.as_ref()));
        }
        // Boxed: the lookup's future would otherwise be carried by every request's.
        Box::pin(self.opaque_uncached(hash)).await
    }

    /// [`Authenticator::opaque`] for a token not in the cache: from the store, then cached.
    async fn opaque_uncached(&self, hash: String) -> Result<Authenticated, AuthFailure> {
        let record = self
            .store
            .find_token_by_hash(&hash)
            .await
            .map_err(|error| unavailable(&error))?
            .ok_or_else(|| AuthFailure::Invalid("unknown token".into()))?;
        check_usable(&record)?;
        let user = match record.user_id {
            Some(user_id) => Some(self.user(user_id).await?),
            None => None,
        };
        self.touch(record.id);
        let authenticated = principal_of_token(&record, user.as_ref());
        self.tokens.insert(hash, Arc::new((record, user)));
        Ok(authenticated)
    }

    /// Forgets every cached token (after a revocation or a change to users).
    pub fn forget_cached_tokens(&self) {
        self.tokens.invalidate_all();
    }

    async fn jwt(&self, token: &str) -> Result<Authenticated, AuthFailure> {
        let Some(verifier) = &self.jwt else {
            return Err(AuthFailure::Invalid(
                "JWT authentication is not configured on this server".into(),
            ));
        };
        let data = jsonwebtoken::decode::<Claims>(token, &verifier.key, &verifier.validation)
            .map_err(|error| AuthFailure::Invalid(format!("invalid JWT: {error}")))?;
        let user_id = Uuid::parse_str(&data.claims.sub)
            .map_err(|_| AuthFailure::Invalid("the JWT's sub is not a user id".into()))?;
        let user = self.user(user_id).await?;
        let role = strongest_role(&user.roles)
            .ok_or_else(|| AuthFailure::Invalid("the user has no role".into()))?;
        Ok(Authenticated {
            principal: Principal {
                role,
                user_id: Some(user.id),
                agent_id: None,
                permissions: user.permissions.clone(),
                restriction: CredentialRestriction::default(),
            },
            kind: ActorKind::User,
            token_id: None,
        })
    }

    async fn user(&self, id: Uuid) -> Result<User, AuthFailure> {
        match self.store.get_user(id).await {
            Ok(user) => Ok(user),
            Err(StoreError::NotFound { .. }) => Err(AuthFailure::Invalid(
                "the credential's user does not exist".into(),
            )),
            Err(error) => Err(unavailable(&error)),
        }
    }

    /// Records the token's use without delaying the request.
    fn touch(&self, token_id: Uuid) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store.touch_token(token_id).await {
                tracing::debug!(error = %error, "could not record token use");
            }
        });
    }

    fn is_rate_limited(&self, source: &str) -> bool {
        let Ok(failures) = self.failures.lock() else {
            return false;
        };
        failures.get(source).is_some_and(|(since, count)| {
            since.elapsed() < WINDOW && *count >= self.max_failures_per_minute
        })
    }

    fn record_failure(&self, source: &str) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() > 10_000 {
            failures.retain(|_, (since, _)| since.elapsed() < WINDOW);
        }
        let entry = failures
            .entry(source.to_string())
            .or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

/// The principal an API token stands for: its role capped by its user's, its user's
/// permissions, its agent, and its restrictions.
pub fn principal_of_token(token: &ApiToken, user: Option<&User>) -> Authenticated {
    let role = match user.and_then(|user| strongest_role(&user.roles)) {
        Some(user_role) => weaker_role(token.role, user_role),
        None => token.role,
    };
    let kind = if token.agent_id.is_some() {
        ActorKind::Agent
    } else if token.user_id.is_some() {
        ActorKind::User
    } else {
        ActorKind::Token
    };
    Authenticated {
        principal: Principal {
            role,
            user_id: token.user_id,
            agent_id: token.agent_id.clone(),
            permissions: user
                .map(|user| user.permissions.clone())
                .unwrap_or_default(),
            restriction: CredentialRestriction {
                scopes: token.scopes.clone(),
                name_prefixes: token.prompt_names.clone(),
            },
        },
        kind,
        token_id: Some(token.id),
    }
}

/// A revoked or expired token is refused, cached or not.
fn check_usable(record: &ApiToken) -> Result<(), AuthFailure> {
    if record.revoked_at.is_some() {
        return Err(AuthFailure::Invalid("the token was revoked".into()));
    }
    if record
        .expires_at
        .is_some_and(|expires| expires <= OffsetDateTime::now_utc())
    {
        return Err(AuthFailure::Invalid("the token expired".into()));
    }
    Ok(())
}

fn unavailable(error: &StoreError) -> AuthFailure {
    tracing::error!(error = %error, "authentication could not reach the database");
    AuthFailure::Invalid("authentication is unavailable".into())
}

/// A new opaque token: `pv_` + 64 hex digits from the operating system's CSPRNG.
pub fn generate_token() -> anyhow::Result<String> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random)
        .map_err(|error| anyhow::anyhow!("no randomness available: {error}"))?;
    Ok(promptvault_core::secret::format_token(&random))
}
