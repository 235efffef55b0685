//! Explicit conversions from domain records to wire types.

use promptvault_core::{diff, model, retire, template};

use crate::prompts::{
    DeprecationResponse, DiffResponse, FieldDiff, LabelEventResponse, LinkResponse, PromptResponse,
    PromptTypeResponse, ReplacementResponse, VersionResponse, WordChange,
};

impl From<&model::PromptVersion> for VersionResponse {
    fn from(version: &model::PromptVersion) -> Self {
        VersionResponse {
            id: version.id,
            prompt_id: version.prompt_id,
            version_number: version.version_number,
            semver: version.semver.to_string(),
            content: if version.lifecycle.purged_at.is_some() {
                serde_json::Value::Null
            } else {
                version.content.to_json()
            },
            config: version.config.clone(),
            parameter_schema: version.parameter_schema.clone(),
            diff_hash: version.diff_hash.clone(),
            notes: version.notes.clone(),
            author_id: version.author_id,
            status: version.status,
            created_at: version.created_at,
            variables: template::analyze(&version.content)
                .map(|info| info.variables.into_iter().collect())
                .unwrap_or_default(),
            findings: version.findings.clone(),
            token_count: version.token_count,
            approved_at: version.lifecycle.approved_at,
            deprecation: version
                .lifecycle
                .deprecation
                .as_ref()
                .map(DeprecationResponse::from),
            archived_at: version.lifecycle.archived_at,
            purged_at: version.lifecycle.purged_at,
        }
    }
}

impl From<&retire::Deprecation> for DeprecationResponse {
    fn from(deprecation: &retire::Deprecation) -> Self {
        DeprecationResponse {
            deprecated_at: deprecation.deprecated_at,
            sunset_at: deprecation.sunset_at,
            replacement: deprecation
                .replacement
                .as_ref()
                .map(|replacement| ReplacementResponse {
                    prompt_id: replacement.prompt_id,
                    name: replacement.name.clone(),
                }),
        }
    }
}

impl From<&model::PromptDetail> for PromptResponse {
    fn from(detail: &model::PromptDetail) -> Self {
        let prompt = &detail.prompt;
        PromptResponse {
            id: prompt.id,
            name: prompt.name.to_string(),
            title: prompt.title.clone(),
            description: prompt.description.clone(),
            long_description_markdown: prompt.long_description_markdown.clone(),
            scope: prompt.scope,
            agent_id: prompt.agent_id.clone(),
            owner_id: prompt.owner_id,
            creator_id: prompt.creator_id,
            prompt_type: prompt.prompt_type.clone(),
            kind: prompt.kind,
            tags: prompt.tags.clone(),
            source: prompt.source.as_str().to_string(),
            classification: prompt.classification,
            status: prompt.status,
            access: prompt.access.clone(),
            revision: prompt.revision,
            created_at: prompt.created_at,
            updated_at: prompt.updated_at,
            labels: detail.labels.clone(),
            label_splits: detail
                .label_splits
                .iter()
                .map(|(label, split)| (label.clone(), split_entries(split)))
                .collect(),
            versions: detail.versions.iter().map(VersionResponse::from).collect(),
        }
    }
}

impl From<&model::LabelEvent> for LabelEventResponse {
    fn from(event: &model::LabelEvent) -> Self {
        LabelEventResponse {
            label: event.label.to_string(),
            from_version: event.from_version,
            to_version: event.to_version,
            action: event.action.as_str().to_string(),
            split: event.split.as_ref().map(split_entries),
            actor_id: event.actor_id,
            at: event.at,
        }
    }
}

impl From<&model::Link> for LinkResponse {
    fn from(link: &model::Link) -> Self {
        LinkResponse {
            id: link.id,
            prompt_id: link.prompt_id,
            prompt_name: link.prompt_name.to_string(),
            capability: link.capability.clone(),
            agent_id: link.agent_id.clone(),
            priority: link.priority,
            created_at: link.created_at,
        }
    }
}

impl From<&model::PromptType> for PromptTypeResponse {
    fn from(prompt_type: &model::PromptType) -> Self {
        PromptTypeResponse {
            key: prompt_type.key.clone(),
            name: prompt_type.name.clone(),
            schema: prompt_type.schema.clone(),
            restricted_creation: prompt_type.restricted_creation,
            requires_approval: prompt_type.requires_approval,
            created_at: prompt_type.created_at,
            updated_at: prompt_type.updated_at,
            review_every_days: prompt_type.review_every_days,
            approval_workflow: prompt_type.approval_workflow.clone(),
        }
    }
}

impl From<&diff::FieldDiff> for FieldDiff {
    fn from(field: &diff::FieldDiff) -> Self {
        FieldDiff {
            changed: field.changed,
            unified: field.unified.clone(),
            words: field
                .words
                .iter()
                .map(|word| WordChange {
                    op: word.op,
                    text: word.text.clone(),
                })
                .collect(),
        }
    }
}

impl From<&diff::VersionDiff> for DiffResponse {
    fn from(version_diff: &diff::VersionDiff) -> Self {
        DiffResponse {
            from: version_diff.from,
            to: version_diff.to,
            content: (&version_diff.content).into(),
            config: (&version_diff.config).into(),
            parameter_schema: (&version_diff.parameter_schema).into(),
        }
    }
}

impl From<&model::User> for crate::access::UserResponse {
    fn from(user: &model::User) -> Self {
        crate::access::UserResponse {
            id: user.id,
            email: user.email.clone(),
            external_user_id: user.external_user_id.clone(),
            did: user.did.clone(),
            at_protocol_handle: user.at_protocol_handle.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            roles: user.roles.clone(),
            permissions: user.permissions.clone(),
            data: user.data.clone(),
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

impl From<&model::ApiToken> for crate::access::TokenResponse {
    fn from(token: &model::ApiToken) -> Self {
        crate::access::TokenResponse {
            id: token.id,
            token: None,
            name: token.name.clone(),
            token_prefix: token.token_prefix.clone(),
            role: token.role,
            user_id: token.user_id,
            agent_id: token.agent_id.clone(),
            scopes: token.scopes.clone(),
            prompt_names: token.prompt_names.clone(),
            expires_at: token.expires_at,
            revoked_at: token.revoked_at,
            created_at: token.created_at,
            last_used_at: token.last_used_at,
        }
    }
}

impl From<&promptvault_core::audit::AuditEntry> for crate::access::AuditEntryResponse {
    fn from(stored: &promptvault_core::audit::AuditEntry) -> Self {
        let entry = &stored.entry;
        crate::access::AuditEntryResponse {
            seq: stored.seq,
            id: entry.id,
            at: entry.at,
            actor_kind: entry.actor_kind.clone(),
            actor_id: entry.actor_id.clone(),
            actor_role: entry.actor_role,
            action: entry.action.clone(),
            outcome: entry.outcome.as_str().to_string(),
            prompt_id: entry.prompt_id,
            prompt_name: entry.prompt_name.clone(),
            prompt_scope: entry.prompt_scope,
            classification: entry.classification,
            before_hash: entry.before_hash.clone(),
            after_hash: entry.after_hash.clone(),
            detail: entry.detail.clone(),
            source: entry.source.clone(),
            request_id: entry.request_id.clone(),
            prev_hash: stored.prev_hash.clone(),
            hash: stored.hash.clone(),
        }
    }
}

/// The wire form of a split.
pub fn split_entries(split: &promptvault_core::deploy::Split) -> Vec<crate::prompts::SplitEntry> {
    split
        .entries()
        .iter()
        .map(|entry| crate::prompts::SplitEntry {
            version: entry.version,
            weight: entry.weight,
        })
        .collect()
}

/// A workflow step as numbered on the wire (from 1).
pub fn review_step(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX - 1) + 1
}

impl crate::reviews::ReviewProgress {
    /// The progress of a round (`round`: its decisions) against `workflow`; `in_review`: whether
    /// the version is in review at all (else there is no current step).
    pub fn of(
        workflow: &promptvault_core::workflow::ApprovalWorkflow,
        round: &[promptvault_core::workflow::ReviewRecord],
        in_review: bool,
    ) -> Self {
        let progress = promptvault_core::workflow::progress(workflow, round);
        crate::reviews::ReviewProgress {
            steps: workflow.steps.clone(),
            current_step: progress.current_step.filter(|_| in_review).map(review_step),
            approvals: progress.total(),
            required: workflow.required(),
        }
    }
}
