//! Export and import of bundles (`promptvault.bundle/v1`, the wire type in
//! `promptvault_api::bundle`): the use cases behind `GET /api/export`, `POST /api/import`,
//! `prompt export --all` and `prompt import`.
//!
//! Export writes every prompt, whatever its status, with all its versions (oldest first), labels
//! and links, plus every prompt type.
//!
//! Import is all or nothing at the validation step: the bundle is checked on its own and then
//! against the database (prompt types, kinds of existing prompts, prompt-type contracts), every
//! problem is reported at once as `invalid_bundle` with JSON pointers, and nothing is written
//! unless there is none. Then:
//! - a prompt that does not exist here is created and **every** bundle version is replayed in
//!   `version_number` order, so a reverted history A, B, A comes back as three versions (the
//!   store only folds a version identical to the one right before it, which an export never
//!   contains); labels point at the same numbers, and the prompt's `status` is carried over;
//! - a prompt that exists here keeps its metadata and status; a bundle version is matched by
//!   `diff_hash` — to the local version with the same number if that one has the same hash, else
//!   to the newest local version with that hash — and only unmatched versions are added, so
//!   importing the same bundle twice creates nothing and moves no label.
//! - protected labels (`[labels] protected`, or every label of a prompt whose type requires
//!   approval) are set only on a version that is already approved here, by an importer who may
//!   deploy; imported versions are drafts, so such labels are otherwise skipped and listed in
//!   the report's `labels_skipped` rather than failing the bundle.
//!
//! Imported versions get the time of the import as `created_at` (the store sets it), and the
//! store computes their `semver` and `diff_hash` again.

use std::collections::{BTreeMap, BTreeSet};

use promptvault_api::{
    bundle::{
        BUNDLE_FORMAT, Bundle, BundleLink, BundlePrompt, BundleVersion, ImportReport, SkippedLabel,
    },
    problem::ProblemItem,
    prompts::{CreatePromptTypeRequest, ListPromptsQuery},
};
use promptvault_core::{
    access::Action,
    compliance::ComplianceRules,
    deploy::LabelTarget,
    error::DomainError,
    ident::{self, LabelName, PromptName},
    model::{
        Classification, Content, Kind, PromptDetail, PromptStatus, Scope, Source, VersionStatus,
    },
    testcase::{self, TestCase},
    version::VersionDraft,
};
use promptvault_store::{
    StoreError,
    types::{LinkFilter, NewLink, NewPrompt, NewPromptType, NewVersion, PromptKey, PromptPatch},
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    MAX_LONG_TEXT, MAX_PER_PAGE, MAX_TEXT, MAX_TITLE, Vault, checked_text, guard::Audited,
    parse_tags, type_contract_problems, validate_prompt_type,
};
use crate::{
    actor::Actor,
    error::{AppError, AppResult},
};

impl Vault {
    /// Every prompt — active, deprecated and archived — with all versions, labels and links,
    /// sorted by name, plus every prompt type.
    pub async fn export_all(&self, actor: &Actor) -> AppResult<Bundle> {
        // Listing without a status hides archived prompts, so list each status in turn.
        let mut ids: BTreeMap<String, Uuid> = BTreeMap::new();
        for status in PromptStatus::ALL {
            let mut cursor: Option<String> = None;
            loop {
                let page = self
                    .list_prompts(
                        actor,
                        ListPromptsQuery {
                            status: Some(*status),
                            per_page: Some(MAX_PER_PAGE),
                            cursor: cursor.take(),
                            ..Default::default()
                        },
                    )
                    .await?;
                ids.extend(page.items.iter().map(|item| (item.name.clone(), item.id)));
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        let mut prompts = Vec::with_capacity(ids.len());
        for id in ids.into_values() {
            match self.export_prompt(actor, id).await {
                Ok(prompt) => prompts.push(prompt),
                // Deleted since it was listed: it is no longer part of what there is to export.
                Err(error) if error.code == "prompt_not_found" => {}
                Err(error) => return Err(error),
            }
        }
        let prompt_types = self
            .store
            .list_prompt_types()
            .await?
            .into_iter()
            .map(|prompt_type| CreatePromptTypeRequest {
                key: prompt_type.key,
                name: prompt_type.name,
                schema: prompt_type.schema,
                restricted_creation: prompt_type.restricted_creation,
                requires_approval: prompt_type.requires_approval,
                review_every_days: prompt_type.review_every_days,
                approval_workflow: prompt_type.approval_workflow,
            })
            .collect();
        Ok(Bundle {
            format: BUNDLE_FORMAT.to_string(),
            exported_at: Some(time::OffsetDateTime::now_utc()),
            prompt_types,
            prompts,
        })
    }

    async fn export_prompt(&self, actor: &Actor, id: Uuid) -> AppResult<BundlePrompt> {
        let prompt = self
            .authorized_prompt_by_id(actor, id, Action::Read)
            .await?;
        self.audit_text_read(actor, &prompt, "export").await?;
        let detail = self.store.get_prompt(&PromptKey::Id(id)).await?;
        let links = self
            .store
            .list_links(&LinkFilter {
                prompt_id: Some(id),
                ..Default::default()
            })
            .await?;
        let tests = self.store.get_tests(id).await?;
        let prompt = &detail.prompt;
        let mut versions: Vec<BundleVersion> = detail
            .versions
            .iter()
            .map(|version| BundleVersion {
                version_number: version.version_number,
                semver: Some(version.semver.to_string()),
                content: version.content.to_json(),
                config: Some(version.config.clone()),
                parameter_schema: version.parameter_schema.clone(),
                notes: version.notes.clone(),
                diff_hash: Some(version.diff_hash.clone()),
                created_at: Some(version.created_at),
            })
            .collect();
        versions.reverse();
        Ok(BundlePrompt {
            name: prompt.name.to_string(),
            title: prompt.title.clone(),
            description: prompt.description.clone(),
            long_description_markdown: prompt.long_description_markdown.clone(),
            scope: Some(prompt.scope),
            agent_id: prompt.agent_id.clone(),
            owner_id: prompt.owner_id,
            prompt_type: prompt.prompt_type.clone(),
            kind: Some(prompt.kind),
            tags: prompt.tags.clone(),
            source: Some(prompt.source.as_str().to_string()),
            classification: Some(prompt.classification),
            status: Some(prompt.status),
            access: (prompt.access != Default::default()).then(|| prompt.access.clone()),
            versions,
            labels: detail
                .labels
                .iter()
                .filter(|(label, _)| label.as_str() != ident::LATEST)
                .map(|(l, v)| (l.clone(), *v))
                .collect(),
            links: links
                .iter()
                .map(|link| BundleLink {
                    capability: link.capability.clone(),
                    agent_id: link.agent_id.clone(),
                    priority: link.priority,
                })
                .collect(),
            tests: (!tests.is_empty()).then_some(tests),
        })
    }

    /// Imports a bundle (see the module documentation for the rules). Every problem — in the
    /// bundle itself or against the database — is reported at once as `invalid_bundle`, before
    /// anything is written.
    pub async fn import(&self, actor: &Actor, bundle: Bundle) -> AppResult<ImportReport> {
        self.authorize(actor, Action::Import, None).await?;
        let plan = self.plan_import(&bundle).await?;
        let mut report = ImportReport::default();
        for prompt_type in plan.new_prompt_types {
            let created = self.store.create_prompt_type(prompt_type).await?;
            report.prompt_types_created += 1;
            self.audit(
                actor,
                Audited::ok("prompt_type.create", None)
                    .detail(json!({"key": created.key, "via": "import"})),
            )
            .await?;
        }
        for prompt in plan.prompts {
            self.import_prompt(actor, prompt, &mut report).await?;
        }
        self.audit(
            actor,
            Audited::ok("bundle.import", None)
                .detail(serde_json::to_value(&report).unwrap_or_default()),
        )
        .await?;
        Ok(report)
    }

    /// Validates the whole bundle, on its own and against the database, without writing.
    async fn plan_import(&self, bundle: &Bundle) -> AppResult<PlannedBundle> {
        let mut problems = Problems::default();
        if bundle.format != BUNDLE_FORMAT {
            problems.push(
                "/format".into(),
                format!("expected {BUNDLE_FORMAT:?}, got {:?}", bundle.format),
            );
        }

        // Prompt types: a local type wins over the bundle's type with the same key; the bundle's
        // other types are created. `schemas` is every type that will exist after the import.
        let mut schemas: BTreeMap<String, Option<Value>> = self
            .store
            .list_prompt_types()
            .await?
            .into_iter()
            .map(|prompt_type| (prompt_type.key, prompt_type.schema))
            .collect();
        let mut new_prompt_types: Vec<NewPromptType> = Vec::new();
        let mut broken_types: BTreeSet<&str> = BTreeSet::new();
        let mut keys: BTreeSet<&str> = BTreeSet::new();
        for (index, prompt_type) in bundle.prompt_types.iter().enumerate() {
            if !keys.insert(prompt_type.key.as_str()) {
                problems.push(
                    format!("/prompt_types/{index}/key"),
                    format!("{:?} appears twice in the bundle", prompt_type.key),
                );
                continue;
            }
            match validate_prompt_type(prompt_type.clone()) {
                Ok(valid) if schemas.contains_key(&valid.key) => {}
                Ok(valid) => {
                    schemas.insert(valid.key.clone(), valid.schema.clone());
                    new_prompt_types.push(valid);
                }
                Err(error) => {
                    broken_types.insert(prompt_type.key.as_str());
                    problems.push(format!("/prompt_types/{index}"), error.detail);
                }
            }
        }

        let mut names: BTreeSet<&str> = BTreeSet::new();
        let mut prompts = Vec::new();
        for (index, prompt) in bundle.prompts.iter().enumerate() {
            let at = |rest: &str| format!("/prompts/{index}{rest}");
            if !names.insert(prompt.name.as_str()) {
                problems.push(
                    at("/name"),
                    format!("{:?} appears twice in the bundle", prompt.name),
                );
                continue;
            }
            let planned = match plan_prompt(prompt) {
                Ok(planned) => planned,
                Err(errors) => {
                    for (pointer, message) in errors {
                        problems.push(at(&pointer), message);
                    }
                    continue;
                }
            };
            let existing = match self
                .store
                .get_prompt(&PromptKey::Name(planned.prompt.name.clone()))
                .await
            {
                Ok(detail) => Some(detail),
                Err(StoreError::NotFound { .. }) => None,
                Err(other) => return Err(other.into()),
            };
            if let Some(key) = &planned.prompt.prompt_type
                && !schemas.contains_key(key)
                && !broken_types.contains(key.as_str())
            {
                problems.push(
                    at("/type"),
                    format!("prompt type {key:?} exists neither here nor in the bundle"),
                );
            }
            // The type whose contract the written versions must satisfy, and which versions
            // will be written.
            let (contract, written): (Option<&String>, Vec<&PlannedVersion>) = match &existing {
                None => (
                    planned.prompt.prompt_type.as_ref(),
                    planned.versions.iter().collect(),
                ),
                Some(detail) => {
                    if detail.prompt.kind != planned.prompt.kind {
                        problems.push(
                            at(if prompt.kind.is_some() {
                                "/kind"
                            } else {
                                "/versions/0/content"
                            }),
                            format!(
                                "prompt {:?} is a {} prompt here; the bundle's is {}",
                                prompt.name, detail.prompt.kind, planned.prompt.kind
                            ),
                        );
                    }
                    let known: BTreeSet<&str> = detail
                        .versions
                        .iter()
                        .map(|version| version.diff_hash.as_str())
                        .collect();
                    (
                        detail.prompt.prompt_type.as_ref(),
                        planned
                            .versions
                            .iter()
                            .filter(|version| !known.contains(version.draft.diff_hash()))
                            .collect(),
                    )
                }
            };
            if let Some(Some(type_schema)) = contract.and_then(|key| schemas.get(key)) {
                for version in written {
                    problems.extend(type_contract_problems(
                        Some(type_schema),
                        version.draft.parameter_schema(),
                        &at(&format!("/versions/{}/parameter_schema", version.index)),
                    )?);
                }
            }
            prompts.push(PromptImport { planned, existing });
        }

        if problems.0.is_empty() {
            Ok(PlannedBundle {
                new_prompt_types,
                prompts,
            })
        } else {
            Err(AppError::unprocessable(
                "invalid_bundle",
                format!(
                    "the bundle has {} problem(s); nothing was imported",
                    problems.0.len()
                ),
            )
            .with_errors(problems.0))
        }
    }

    async fn import_prompt(
        &self,
        actor: &Actor,
        import: PromptImport,
        report: &mut ImportReport,
    ) -> AppResult<()> {
        let PromptImport { planned, existing } = import;
        let PlannedPrompt {
            prompt,
            status,
            versions,
            labels,
            links,
            tests,
        } = planned;
        // Bundle version number → local version number.
        let mut numbers: BTreeMap<i64, i64> = BTreeMap::new();
        let prompt_id = match existing {
            None => {
                self.replay(actor, prompt, status, versions, &mut numbers, report)
                    .await?
            }
            Some(detail) => {
                self.merge(actor, &detail, versions, &mut numbers, report)
                    .await?;
                detail.prompt.id
            }
        };
        // Every mutation of the import is audited like its single-item use case.
        let target = self.store.find_prompt(&PromptKey::Id(prompt_id)).await?;
        for (label, bundle_number) in labels {
            let Some(local) = numbers.get(&bundle_number) else {
                continue;
            };
            // Imported versions are drafts: a protected label is set only when its version is
            // already approved here and the importer may deploy; otherwise it is skipped and
            // reported, rather than failing the whole bundle.
            let protected = self.is_protected(&target, &label).await?;
            let skip = |reason: &str| SkippedLabel {
                prompt: target.name.to_string(),
                label: label.to_string(),
                version_number: *local,
                reason: reason.to_string(),
            };
            if protected && !self.label_policy.may_deploy(actor.role()) {
                report.labels_skipped.push(skip("deploy_forbidden"));
                continue;
            }
            let moved = self
                .store
                .set_label_target(
                    prompt_id,
                    &label,
                    &LabelTarget::Version(*local),
                    protected.then_some(VersionStatus::Approved),
                    actor.user_id(),
                )
                .await;
            self.changed(crate::serve_cache::CacheEvent::Prompt(prompt_id));
            let moved = match moved {
                Err(StoreError::Domain(DomainError::LabelRequiresApproval { .. })) => {
                    report.labels_skipped.push(skip("label_requires_approval"));
                    continue;
                }
                other => other?,
            };
            if let Some(event) = moved {
                report.labels_moved += 1;
                let audited = Audited::ok("label.set", Some(&target)).detail(json!({
                    "label": label.as_str(), "from": event.from_version, "to": event.to_version, "via": "import"
                }));
                self.audit(actor, audited).await?;
            }
        }
        for link in links {
            let link = self
                .store
                .upsert_link(NewLink { prompt_id, ..link })
                .await?;
            self.changed(crate::serve_cache::CacheEvent::Capability(
                link.capability.clone(),
            ));
            report.links_set += 1;
            let audited = Audited::ok("link.set", Some(&target)).detail(json!({
                "capability": link.capability, "agent_id": link.agent_id, "priority": link.priority, "via": "import"
            }));
            self.audit(actor, audited).await?;
        }
        if let Some(tests) = tests {
            let before = self.store.get_tests(prompt_id).await?;
            if before != tests {
                let updated = self.store.replace_tests(prompt_id, tests.clone()).await?;
                let audited = Audited::ok("tests.set", Some(&updated))
                    .hashes(
                        Some(testcase::cases_hash(&before)),
                        Some(testcase::cases_hash(&tests)),
                    )
                    .detail(json!({"cases": tests.len(), "via": "import"}));
                self.audit(actor, audited).await?;
            }
        }
        Ok(())
    }

    /// A prompt new here: created with every bundle version in order, then given its status.
    async fn replay(
        &self,
        actor: &Actor,
        prompt: NewPrompt,
        status: Option<PromptStatus>,
        versions: Vec<PlannedVersion>,
        numbers: &mut BTreeMap<i64, i64>,
        report: &mut ImportReport,
    ) -> AppResult<Uuid> {
        let mut versions = versions.into_iter();
        let Some(first) = versions.next() else {
            // `plan_prompt` refuses a prompt without versions.
            return Err(AppError::unprocessable(
                "invalid_bundle",
                format!("prompt {:?} has no versions", prompt.name.as_str()),
            ));
        };
        let first_number = first.number;
        let detail = self
            .store
            .create_prompt(prompt, first.into_new_version(actor, &self.compliance))
            .await?;
        let prompt_id = detail.prompt.id;
        self.changed(crate::serve_cache::CacheEvent::Prompt(prompt_id));
        report.prompts_created += 1;
        report.versions_created += 1;
        let mut latest_hash = detail
            .versions
            .first()
            .map(|version| version.diff_hash.clone());
        self.audit(
            actor,
            Audited::ok("prompt.create", Some(&detail.prompt))
                .hashes(None, latest_hash.clone())
                .detail(json!({"via": "import"})),
        )
        .await?;
        let created = detail
            .versions
            .first()
            .map_or(1, |version| version.version_number);
        numbers.insert(first_number, created);
        for version in versions {
            let number = version.number;
            let added = self
                .store
                .add_version(prompt_id, version.into_new_version(actor, &self.compliance))
                .await;
            self.changed(crate::serve_cache::CacheEvent::Prompt(prompt_id));
            let added = added?;
            if added.created {
                report.versions_created += 1;
                let after = Some(added.version.diff_hash.clone());
                let audited = Audited::ok("version.create", Some(&detail.prompt))
                    .hashes(latest_hash.replace(added.version.diff_hash.clone()), after)
                    .detail(json!({"version": added.version.version_number, "via": "import"}));
                self.audit(actor, audited).await?;
            } else {
                // Identical to the version right before it: the store keeps one.
                report.versions_unchanged += 1;
            }
            numbers.insert(number, added.version.version_number);
        }
        if let Some(status) = status
            && status != detail.prompt.status
        {
            self.store
                .update_prompt(
                    prompt_id,
                    PromptPatch {
                        status: Some(status),
                        ..Default::default()
                    },
                    None,
                )
                .await?;
            self.changed(crate::serve_cache::CacheEvent::Prompt(prompt_id));
            self.audit(
                actor,
                Audited::ok("prompt.update", Some(&detail.prompt))
                    .detail(json!({"status": status, "via": "import"})),
            )
            .await?;
        }
        Ok(prompt_id)
    }

    /// A prompt that exists here: only versions whose `diff_hash` it lacks are added.
    async fn merge(
        &self,
        actor: &Actor,
        detail: &PromptDetail,
        versions: Vec<PlannedVersion>,
        numbers: &mut BTreeMap<i64, i64>,
        report: &mut ImportReport,
    ) -> AppResult<()> {
        let mut local = LocalVersions::default();
        for version in &detail.versions {
            local.remember(version.version_number, &version.diff_hash);
        }
        for version in versions {
            if let Some(matched) = local.matching(version.number, version.draft.diff_hash()) {
                numbers.insert(version.number, matched);
                report.versions_unchanged += 1;
                continue;
            }
            let number = version.number;
            let added = self
                .store
                .add_version(
                    detail.prompt.id,
                    version.into_new_version(actor, &self.compliance),
                )
                .await;
            self.changed(crate::serve_cache::CacheEvent::Prompt(detail.prompt.id));
            let added = added?;
            if added.created {
                report.versions_created += 1;
                let audited = Audited::ok("version.create", Some(&detail.prompt))
                    .hashes(
                        detail
                            .versions
                            .first()
                            .map(|version| version.diff_hash.clone()),
                        Some(added.version.diff_hash.clone()),
                    )
                    .detail(json!({"version": added.version.version_number, "via": "import"}));
                self.audit(actor, audited).await?;
            } else {
                report.versions_unchanged += 1;
            }
            local.remember(added.version.version_number, &added.version.diff_hash);
            numbers.insert(number, added.version.version_number);
        }
        Ok(())
    }
}

/// The versions of a prompt that exists here, by number and by `diff_hash`.
#[derive(Default)]
struct LocalVersions {
    hash_of: BTreeMap<i64, String>,
    newest_with: BTreeMap<String, i64>,
}

impl LocalVersions {
    fn remember(&mut self, number: i64, hash: &str) {
        self.hash_of.insert(number, hash.to_string());
        let newest = self.newest_with.entry(hash.to_string()).or_insert(number);
        *newest = (*newest).max(number);
    }

    /// The local version a bundle version with this number and hash stands for: the one with the
    /// same number if it has the same hash (a bundle exported from here, or from a faithful
    /// copy), else the newest one with the hash; `None` if no local version has it.
    fn matching(&self, bundle_number: i64, hash: &str) -> Option<i64> {
        if self.hash_of.get(&bundle_number).map(String::as_str) == Some(hash) {
            return Some(bundle_number);
        }
        self.newest_with.get(hash).copied()
    }
}

/// Problems found while checking a bundle, in bundle order.
#[derive(Default)]
struct Problems(Vec<ProblemItem>);

impl Problems {
    fn push(&mut self, pointer: String, message: impl Into<String>) {
        self.0.push(ProblemItem {
            pointer,
            message: message.into(),
        });
    }

    fn extend(&mut self, items: Vec<ProblemItem>) {
        self.0.extend(items);
    }
}

/// A bundle checked against the database, ready to write.
struct PlannedBundle {
    /// The bundle's prompt types that do not exist here yet.
    new_prompt_types: Vec<NewPromptType>,
    prompts: Vec<PromptImport>,
}

/// One prompt to import, and what the database held under its name when it was checked.
struct PromptImport {
    planned: PlannedPrompt,
    existing: Option<PromptDetail>,
}

/// One bundle prompt, validated on its own.
struct PlannedPrompt {
    prompt: NewPrompt,
    status: Option<PromptStatus>,
    /// In `version_number` order.
    versions: Vec<PlannedVersion>,
    /// Label → bundle version number (`latest` left out: the store keeps it).
    labels: Vec<(LabelName, i64)>,
    links: Vec<NewLink>,
    /// The test cases to set (validated), if the bundle carries them.
    tests: Option<Vec<TestCase>>,
}

struct PlannedVersion {
    /// Its place in the bundle's `versions` list (for error pointers).
    index: usize,
    /// Its `version_number` in the bundle.
    number: i64,
    draft: VersionDraft,
    notes: Option<String>,
}

impl PlannedVersion {
    fn into_new_version(self, actor: &Actor, compliance: &ComplianceRules) -> NewVersion {
        NewVersion {
            draft: self.draft,
            notes: self.notes,
            author_id: actor.user_id(),
            labels: Vec::new(),
            // A bundle version is a full snapshot: nothing is carried over.
            carry_over: Default::default(),
            compliance: compliance.clone(),
        }
    }
}

/// Validates one bundle prompt without the database; errors are (pointer under the prompt,
/// message).
fn plan_prompt(prompt: &BundlePrompt) -> Result<PlannedPrompt, Vec<(String, String)>> {
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut check = |pointer: &str, result: Result<(), DomainError>| {
        if let Err(error) = result {
            errors.push((pointer.to_string(), error.to_string()));
        }
    };
    let name = PromptName::parse(&prompt.name);
    check("/name", name.as_ref().map(|_| ()).map_err(Clone::clone));
    let scope = prompt.scope.unwrap_or(Scope::Global);
    check("/agent_id", scope.check_agent(prompt.agent_id.as_deref()));
    let source = match &prompt.source {
        Some(source) => Source::parse(source),
        None => Ok(Source::parse("file").unwrap_or_else(|_| Source::human())),
    };
    check("/source", source.as_ref().map(|_| ()).map_err(Clone::clone));
    let tags = parse_tags(&prompt.tags);
    check("/tags", tags.as_ref().map(|_| ()).map_err(Clone::clone));
    for (pointer, field, text, max) in [
        ("/title", "title", &prompt.title, MAX_TITLE),
        ("/description", "description", &prompt.description, MAX_TEXT),
        (
            "/long_description_markdown",
            "long_description_markdown",
            &prompt.long_description_markdown,
            MAX_LONG_TEXT,
        ),
    ] {
        check(pointer, checked_text(field, text.clone(), max).map(|_| ()));
    }
    if prompt.versions.is_empty() {
        errors.push((
            "/versions".into(),
            "a prompt needs at least one version".into(),
        ));
    }
    let mut kind: Option<Kind> = prompt.kind;
    let mut versions = Vec::new();
    let mut numbers = BTreeSet::new();
    for (index, version) in prompt.versions.iter().enumerate() {
        let at = format!("/versions/{index}");
        if !numbers.insert(version.version_number) {
            errors.push((
                format!("{at}/version_number"),
                "duplicate version number".into(),
            ));
        }
        if let Err(error) = checked_text("notes", version.notes.clone(), MAX_TEXT) {
            errors.push((format!("{at}/notes"), error.to_string()));
        }
        let draft = Content::from_json(&version.content).and_then(|content| {
            let expected = *kind.get_or_insert(content.kind());
            content.check_kind(expected)?;
            VersionDraft::new(
                content,
                version
                    .config
                    .clone()
                    .unwrap_or_else(|| Value::Object(Default::default())),
                version.parameter_schema.clone(),
                None,
            )
        });
        match draft {
            Ok(draft) => versions.push(PlannedVersion {
                index,
                number: version.version_number,
                draft,
                notes: version.notes.clone(),
            }),
            Err(error) => errors.push((at, error.to_string())),
        }
    }
    versions.sort_by_key(|version| version.number);
    let mut labels = Vec::new();
    for (label, number) in &prompt.labels {
        if label == ident::LATEST {
            continue;
        }
        let at = format!("/labels/{}", pointer_token(label));
        match LabelName::parse(label) {
            Ok(parsed) if numbers.contains(number) => labels.push((parsed, *number)),
            Ok(_) => errors.push((
                at,
                format!("points at version {number}, which the bundle does not have"),
            )),
            Err(error) => errors.push((at, error.to_string())),
        }
    }
    let mut links = Vec::new();
    for (index, link) in prompt.links.iter().enumerate() {
        let capability = ident::parse_identifier("capability", &link.capability, 128);
        let agent = link
            .agent_id
            .as_deref()
            .map(|agent| ident::parse_identifier("agent_id", agent, 128))
            .transpose();
        match (capability, agent) {
            (Ok(capability), Ok(agent_id)) => links.push(NewLink {
                prompt_id: Uuid::nil(),
                capability,
                agent_id,
                priority: link.priority,
            }),
            (Err(error), _) | (_, Err(error)) => {
                errors.push((format!("/links/{index}"), error.to_string()))
            }
        }
    }
    if let Some(tests) = &prompt.tests
        && let Err(problems) = testcase::validate(tests)
    {
        for problem in problems {
            let pointer = problem.pointer.replacen("/cases", "/tests", 1);
            errors.push((pointer, problem.message));
        }
    }
    match (name, source, tags) {
        (Ok(name), Ok(source), Ok(tags)) if errors.is_empty() => Ok(PlannedPrompt {
            prompt: NewPrompt {
                name,
                title: prompt.title.clone(),
                description: prompt.description.clone(),
                long_description_markdown: prompt.long_description_markdown.clone(),
                scope,
                agent_id: prompt.agent_id.clone(),
                owner_id: prompt.owner_id,
                creator_id: None,
                prompt_type: prompt.prompt_type.clone(),
                kind: kind.unwrap_or(Kind::Text),
                tags,
                source,
                classification: prompt.classification.unwrap_or(Classification::Internal),
                access: prompt.access.clone().unwrap_or_default(),
            },
            status: prompt.status,
            versions,
            labels,
            links,
            tests: prompt.tests.clone(),
        }),
        _ => Err(errors),
    }
}

/// A JSON pointer reference token (RFC 6901): `~` and `/` escaped.
fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
