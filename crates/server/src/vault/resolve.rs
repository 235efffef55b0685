//! Resolve, the hot path for agents (`GET`/`POST /api/resolve`, a use case of [`Vault`]): a
//! prompt by name (or id), or by an agent's capability through links (the agent's own links
//! first, then global ones, highest priority; the first prompt the caller may serve wins, the
//! others are skipped unseen); then a label (default `production`, now or `at` a past time;
//! splits pick by `request_key`) or a version number; optionally rendered with `params` in the
//! same call.
//!
//! A miss costs one store call ([`promptvault_store::Store::serve_candidates`]); the answer is
//! kept in the [`ServeCache`](crate::serve_cache::ServeCache) with each version's outgoing
//! (redacted) form, so a hit reads nothing from the database. With Redis configured, a local
//! miss asks the shared cache ([`crate::redis_cache`]) before the store. Access, deprecation and
//! the audit of confidential reads are decided on every request; time travel (`at`) bypasses
//! the caches.

use std::sync::Arc;

use promptvault_api::{
    convert::split_entries,
    preserialized::Preserialized,
    prompts::{ResolveQuery, ResolveRequest, ResolveResponse, ResolvedPrompt, VersionResponse},
};
use promptvault_core::{
    access::{Action, decide},
    ident::{self, LabelName},
    model::PromptVersion,
};
use promptvault_store::{
    StoreError,
    types::{PromptKey, ServeCandidate, ServeSubject, VersionSelector},
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    actor::Actor,
    error::{AppError, AppResult},
    redis_cache::Lookup,
    serve_cache::{Selector, ServeKey, Served, ServedCandidate, ServedVersion},
    vault::{Vault, guard, labels::pick, parse_key, redact_content, redact_rendered},
};

/// The query of `GET /api/resolve` as the body of `POST /api/resolve` (`params` parsed from its
/// URL-encoded JSON).
pub fn resolve_request(query: ResolveQuery) -> AppResult<ResolveRequest> {
    let params = match query.params.as_deref() {
        None => None,
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(map)) => Some(map),
            _ => {
                return Err(AppError::unprocessable(
                    "invalid_query",
                    "params must be a URL-encoded JSON object, e.g. params=%7B%22name%22%3A%22Ada%22%7D",
                ));
            }
        },
    };
    Ok(ResolveRequest {
        name: query.name,
        agent: query.agent,
        capability: query.capability,
        label: query.label,
        version: query.version,
        at: query.at,
        request_key: query.request_key,
        params,
        undefined: query.undefined,
        record: query.record,
        session_id: query.session_id,
    })
}

impl Vault {
    /// `GET`/`POST /api/resolve`.
    pub async fn resolve(
        &self,
        actor: &Actor,
        request: ResolveRequest,
    ) -> AppResult<ResolveResponse> {
        if request.version.is_some() && (request.label.is_some() || request.at.is_some()) {
            return Err(AppError::unprocessable(
                "invalid_query",
                "give either version, or label (optionally with at), not both",
            ));
        }
        let subject = match (&request.name, &request.agent, &request.capability) {
            (Some(name), None, None) => ServeSubject::Prompt(parse_key(name)?),
            (None, agent, Some(capability)) => ServeSubject::Capability {
                agent_id: agent
                    .as_deref()
                    .map(|agent| ident::parse_identifier("agent", agent, 128))
                    .transpose()?,
                capability: ident::parse_identifier("capability", capability, 128)?,
            },
            (Some(_), _, _) => {
                return Err(AppError::unprocessable(
                    "invalid_query",
                    "give either name, or capability (optionally with agent), not both",
                ));
            }
            (None, Some(_), None) => {
                return Err(AppError::unprocessable(
                    "invalid_query",
                    "agent goes with capability: give capability too",
                ));
            }
            (None, None, None) => {
                return Err(AppError::unprocessable(
                    "invalid_query",
                    "give name, or capability (optionally with agent)",
                ));
            }
        };
        let at = request
            .at
            .as_deref()
            .map(|text| {
                OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                    AppError::unprocessable(
                        "invalid_query",
                        format!("at must be an RFC 3339 time, not {text:?}"),
                    )
                })
            })
            .transpose()?;
        // Only a render of what is served now is a use: a run is asked for with params and
        // without at.
        if request.record == Some(true) && (request.params.is_none() || at.is_some()) {
            return Err(AppError::unprocessable(
                "invalid_query",
                "record=true goes with params (a render) and not with at",
            ));
        }
        let wish = match at {
            None => Some(self.run_wish(request.record, request.session_id)?),
            Some(_) => None,
        };
        // Parsed before any read, so a bad label is a 422 whoever asks.
        let label = match (request.version, &request.label) {
            (Some(_), _) => None,
            (None, Some(label)) => Some(LabelName::parse(label)?),
            (None, None) => Some(LabelName::production()),
        };
        let selector = match (&label, request.version) {
            (Some(label), _) => VersionSelector::Label(label.clone()),
            (None, number) => VersionSelector::Number(number.unwrap_or_default()),
        };
        let served = self.served(&subject, &selector, at).await?;
        let candidate = self.servable(actor, &subject, &served).await?;
        let prompt = &candidate.prompt;
        // Time travel: where the label pointed then (not cached, not a hot path).
        let at_target = match (at, &label) {
            (Some(at), Some(label)) => {
                Some(self.store.label_target(prompt.id, label, Some(at)).await?)
            }
            _ => None,
        };
        let target = match &at_target {
            Some(then) => then.as_ref(),
            None => candidate.target.as_ref(),
        };
        let (number, split, picked) = match (&label, target) {
            (None, _) => (request.version.unwrap_or_default(), None, None),
            (Some(label), None) => {
                let when = at
                    .and_then(|at| at.format(&Rfc3339).ok())
                    .map(|at| format!(" at {at}"))
                    .unwrap_or_default();
                return Err(AppError::not_found(
                    "label_not_found",
                    format!(
                        "label {:?} of prompt {:?} not found{when}",
                        label.as_str(),
                        prompt.name.as_str()
                    ),
                ));
            }
            (Some(label), Some(target)) => {
                let (number, picked) = pick(prompt, label, target, request.request_key.as_deref())?;
                (number, target.split().map(split_entries), picked)
            }
        };
        let loaded;
        let served_version: &ServedVersion = match candidate.version(number) {
            Some(served) => served,
            None if at_target.is_some() => {
                loaded =
                    self.served_version(prompt, self.store.get_version(prompt.id, number).await?)?;
                &loaded
            }
            None => {
                return Err(AppError::not_found(
                    "version_not_found",
                    format!(
                        "version {number} of prompt {:?} not found",
                        prompt.name.as_str()
                    ),
                ));
            }
        };
        // Serving now follows the deprecation rules (a notice, or 410 past the sunset or when
        // archived); a question about the past answers what was served, whatever it is now.
        let deprecation = match at {
            None => self.serving_notice(&served_version.version)?,
            Some(_) => None,
        };
        self.audit_text_read(actor, prompt, "resolve").await?;
        let (rendered, rendered_redactions, run_id) = match request.params {
            None => (None, None, None),
            Some(params) => {
                let compiled = self.compiled(
                    &served_version.version,
                    request.undefined.unwrap_or_default(),
                )?;
                let (rendered, params) = self.render_compiled(compiled, params).await?;
                let (rendered, redactions) =
                    if self.compliance.redact.contains(&prompt.classification) {
                        redact_rendered(rendered)
                    } else {
                        (rendered, 0)
                    };
                let rendered =
                    serde_json::to_value(rendered).map_err(|error| AppError::internal(&error))?;
                // A resolve that renders is a use of the version, noted like a render's (not
                // for a question about the past).
                let run_id = match wish {
                    Some(wish) => self.note_use(
                        actor,
                        prompt,
                        &served_version.version,
                        params,
                        &rendered,
                        wish,
                    ),
                    None => None,
                };
                (Some(rendered), Some(redactions), run_id)
            }
        };
        Ok(ResolveResponse {
            prompt: candidate.resolved.clone(),
            version: served_version.response.clone(),
            label: label.map(|label| label.to_string()),
            at,
            split,
            picked,
            deprecation,
            redactions: served_version.redactions,
            rendered,
            rendered_redactions,
            run_id,
        })
    }

    /// The candidates for (subject, selector): from the cache, else from the store (and cached,
    /// unless this is a question about the past).
    async fn served(
        &self,
        subject: &ServeSubject,
        selector: &VersionSelector,
        at: Option<OffsetDateTime>,
    ) -> AppResult<Arc<Served>> {
        let key = cache_key(subject, selector);
        if at.is_none()
            && let Some(hit) = self.serve_cache.get(&key)
        {
            return Ok(hit);
        }
        // The miss path (Redis, the store) is boxed: its future is most of this one's size,
        // and a hit would carry it on every request otherwise.
        Box::pin(self.load_served(key, subject, selector, at)).await
    }

    /// [`Vault::served`] on a miss of the local cache (or for a time in the past).
    async fn load_served(
        &self,
        key: ServeKey,
        subject: &ServeSubject,
        selector: &VersionSelector,
        at: Option<OffsetDateTime>,
    ) -> AppResult<Arc<Served>> {
        let epoch = self.serve_cache.epoch();
        // The shared cache (Redis), when there is one: a hit fills the local cache; a miss
        // gives the ticket that stamps what is loaded next (see `redis_cache`).
        let ticket = match (&self.shared_cache, at) {
            (Some(shared), None) => match shared.lookup(&key).await {
                Lookup::Hit(candidates) => {
                    let served = Arc::new(self.served_from(candidates)?);
                    self.serve_cache.insert(key, served.clone(), epoch);
                    return Ok(served);
                }
                Lookup::Miss(ticket) => Some(ticket),
                Lookup::Skipped => None,
            },
            _ => None,
        };
        // A missing prompt is `NotFound` with the same words as a hidden one.
        let candidates = self.store.serve_candidates(subject, selector).await?;
        let served = Arc::new(self.served_from(candidates)?);
        // Nothing is cached for a capability without links: a new link invalidates by
        // capability anyway, but an empty answer is cheap to recompute and never grows the cache.
        if at.is_none() && !served.candidates.is_empty() {
            self.serve_cache.insert(key, served.clone(), epoch);
            if let (Some(shared), Some(ticket)) = (&self.shared_cache, ticket) {
                shared.fill(ticket, &served);
            }
        }
        Ok(served)
    }

    /// The candidates with each version's outgoing form.
    fn served_from(&self, candidates: Vec<ServeCandidate>) -> AppResult<Served> {
        Ok(Served {
            candidates: candidates
                .into_iter()
                .map(|candidate| {
                    let prompt = &candidate.prompt;
                    let resolved = Preserialized::new(&ResolvedPrompt {
                        id: prompt.id,
                        name: prompt.name.to_string(),
                        title: prompt.title.clone(),
                        kind: prompt.kind,
                        scope: prompt.scope,
                        classification: prompt.classification,
                        status: prompt.status,
                        prompt_type: prompt.prompt_type.clone(),
                    })
                    .map_err(|error| AppError::internal(&error))?;
                    Ok(ServedCandidate {
                        resolved,
                        versions: candidate
                            .versions
                            .into_iter()
                            .map(|version| self.served_version(&candidate.prompt, version))
                            .collect::<AppResult<_>>()?,
                        prompt: candidate.prompt,
                        target: candidate.target,
                    })
                })
                .collect::<AppResult<_>>()?,
        })
    }

    /// A version with its outgoing form (content redacted per `compliance.redact`), serialized
    /// once for every hit to come.
    fn served_version(
        &self,
        prompt: &promptvault_core::model::Prompt,
        version: PromptVersion,
    ) -> AppResult<ServedVersion> {
        let mut response = VersionResponse::from(&version);
        let redactions = if self.compliance.redact.contains(&prompt.classification) {
            redact_content(&mut response.content)
        } else {
            0
        };
        Ok(ServedVersion {
            version,
            response: Preserialized::new(&response).map_err(|error| AppError::internal(&error))?,
            redactions,
        })
    }

    /// The candidate this actor is served: by name, the prompt (refusals audited, a hidden one
    /// answered as missing); by capability, the first the actor may serve (the others skipped
    /// without a word), else 404.
    async fn servable<'a>(
        &self,
        actor: &Actor,
        subject: &ServeSubject,
        served: &'a Served,
    ) -> AppResult<&'a ServedCandidate> {
        match subject {
            ServeSubject::Prompt(key) => {
                let candidate = served
                    .candidates
                    .first()
                    .ok_or_else(|| AppError::from(StoreError::not_found(key.to_string())))?;
                self.authorize(actor, Action::Serve, Some(&candidate.prompt))
                    .await
                    .map_err(|error| guard::as_addressed(error, key))?;
                Ok(candidate)
            }
            ServeSubject::Capability {
                agent_id,
                capability,
            } => served
                .candidates
                .iter()
                .find(|candidate| {
                    decide(
                        &actor.principal,
                        Action::Serve,
                        Some(&candidate.prompt),
                        self.deployment,
                    )
                    .is_ok()
                })
                .ok_or_else(|| {
                    let agent = agent_id
                        .as_deref()
                        .map(|agent| format!(" for agent {agent:?}"))
                        .unwrap_or_default();
                    AppError::not_found(
                        "link_not_found",
                        format!(
                            "no prompt you may use is linked to capability {capability:?}{agent}"
                        ),
                    )
                }),
        }
    }
}

fn cache_key(subject: &ServeSubject, selector: &VersionSelector) -> ServeKey {
    let selector = match selector {
        VersionSelector::Label(label) => Selector::Label(label.to_string()),
        VersionSelector::Number(number) => Selector::Number(*number),
    };
    match subject {
        ServeSubject::Prompt(PromptKey::Id(id)) => ServeKey::Id { id: *id, selector },
        ServeSubject::Prompt(PromptKey::Name(name)) => ServeKey::Name {
            name: name.to_string(),
            selector,
        },
        ServeSubject::Capability {
            agent_id,
            capability,
        } => ServeKey::Capability {
            agent: agent_id.clone(),
            capability: capability.clone(),
            selector,
        },
    }
}
