//! Approval workflows (SPEC §6): what `review → approved` needs. A workflow is a list of ordered
//! steps, each naming the roles that may approve at it and how many approvals it takes. The
//! workflow of a version comes from its prompt's classification ([`ApprovalPolicy`]), unless the
//! prompt's type overrides it.
//!
//! One decision, [`decide_approval`], answers an approval attempt given the workflow, the
//! approvals of the current review round, the approver and the version's author: recorded at
//! step `i` (and whether that completes the workflow), or a typed [`ApprovalRefusal`]. An
//! approval always counts toward the first incomplete step. Nobody approves their own version,
//! and an approver counts once per review round (across all steps, so a two-step workflow always
//! takes two different people). [`decide_rejection`] answers a rejection the same way: whoever
//! could approve at the current step may instead send the version back to draft.
//!
//! A review round starts each time a version is submitted for review; a rejection (or any other
//! way back to draft) ends it, so a resubmitted version starts with no approvals.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    error::DomainError,
    model::{Classification, Role, VersionStatus},
};

/// The most steps a workflow may have, and the most approvals one step may ask for.
pub const MAX_STEPS: usize = 10;
pub const MAX_COUNT: u32 = 20;

/// One step of a workflow: `count` approvals by principals holding one of `roles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApprovalStep {
    /// Who may approve at this step (`admin`, `user`; never `agent`).
    pub roles: Vec<Role>,
    /// How many approvals (by different approvers) the step takes, at least 1.
    pub count: u32,
}

/// What `review → approved` takes: every step, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApprovalWorkflow {
    pub steps: Vec<ApprovalStep>,
}

impl ApprovalWorkflow {
    /// A workflow of one step.
    pub fn one_step(roles: &[Role], count: u32) -> Self {
        ApprovalWorkflow {
            steps: vec![ApprovalStep {
                roles: roles.to_vec(),
                count,
            }],
        }
    }

    /// Checks the workflow: at least one step (at most [`MAX_STEPS`]), each with a count of 1 to
    /// [`MAX_COUNT`] and a non-empty list of roles without `agent` and without repeats. `field`
    /// names the setting or request field in the error.
    pub fn validate(&self, field: &'static str) -> Result<(), DomainError> {
        let invalid = |reason: String| DomainError::InvalidField { field, reason };
        if self.steps.is_empty() {
            return Err(invalid("steps: a workflow needs at least one step".into()));
        }
        if self.steps.len() > MAX_STEPS {
            return Err(invalid(format!(
                "steps: at most {MAX_STEPS} steps, {} given",
                self.steps.len()
            )));
        }
        for (index, step) in self.steps.iter().enumerate() {
            if step.count == 0 || step.count > MAX_COUNT {
                return Err(invalid(format!(
                    "steps[{index}].count: must be 1 to {MAX_COUNT}, {} given",
                    step.count
                )));
            }
            if step.roles.is_empty() {
                return Err(invalid(format!(
                    "steps[{index}].roles: name at least one role (admin, user)"
                )));
            }
            if step.roles.contains(&Role::Agent) {
                return Err(invalid(format!(
                    "steps[{index}].roles: agents never approve"
                )));
            }
            for (at, role) in step.roles.iter().enumerate() {
                if step.roles[..at].contains(role) {
                    return Err(invalid(format!(
                        "steps[{index}].roles: {role} is listed twice"
                    )));
                }
            }
        }
        Ok(())
    }

    /// How many approvals the whole workflow takes.
    pub fn required(&self) -> u32 {
        self.steps.iter().map(|step| step.count).sum()
    }
}

/// The workflow for each classification (`[approvals]` in the settings). The defaults: public
/// and internal prompts need one approval by an admin or a user; confidential ones two; restricted
/// ones two steps, one approval by an admin or a user, then one by an admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalPolicy {
    pub public: ApprovalWorkflow,
    pub internal: ApprovalWorkflow,
    pub confidential: ApprovalWorkflow,
    pub restricted: ApprovalWorkflow,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        const WRITERS: &[Role] = &[Role::Admin, Role::User];
        ApprovalPolicy {
            public: ApprovalWorkflow::one_step(WRITERS, 1),
            internal: ApprovalWorkflow::one_step(WRITERS, 1),
            confidential: ApprovalWorkflow::one_step(WRITERS, 2),
            restricted: ApprovalWorkflow {
                steps: vec![
                    ApprovalStep {
                        roles: WRITERS.to_vec(),
                        count: 1,
                    },
                    ApprovalStep {
                        roles: vec![Role::Admin],
                        count: 1,
                    },
                ],
            },
        }
    }
}

impl ApprovalPolicy {
    /// Checks every classification's workflow (errors name `approvals.<classification>`).
    pub fn validate(&self) -> Result<(), DomainError> {
        self.public.validate("approvals.public")?;
        self.internal.validate("approvals.internal")?;
        self.confidential.validate("approvals.confidential")?;
        self.restricted.validate("approvals.restricted")
    }

    /// The workflow of a version: its prompt type's, if the type sets one, else its
    /// classification's.
    pub fn workflow_for<'a>(
        &'a self,
        classification: Classification,
        type_override: Option<&'a ApprovalWorkflow>,
    ) -> &'a ApprovalWorkflow {
        if let Some(workflow) = type_override {
            return workflow;
        }
        match classification {
            Classification::Public => &self.public,
            Classification::Internal => &self.internal,
            Classification::Confidential => &self.confidential,
            Classification::Restricted => &self.restricted,
        }
    }
}

/// What a reviewer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Approve,
    Reject,
}

impl ReviewDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewDecision::Approve => "approve",
            ReviewDecision::Reject => "reject",
        }
    }

    pub fn parse(value: &str) -> Result<Self, DomainError> {
        match value {
            "approve" => Ok(ReviewDecision::Approve),
            "reject" => Ok(ReviewDecision::Reject),
            other => Err(DomainError::InvalidField {
                field: "decision",
                reason: format!("{other:?} is not one of approve, reject"),
            }),
        }
    }
}

/// One recorded decision on a version: who approved or rejected it, at which step of which
/// review round, when, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRecord {
    /// The review round (each submission for review starts a new one).
    pub round: i64,
    /// The workflow step (0-based) the decision counted toward.
    pub step: u32,
    /// The stable id of the reviewer ([`Reviewer::id`]).
    pub reviewer_id: String,
    pub reviewer_role: Role,
    pub decision: ReviewDecision,
    pub comment: Option<String>,
    pub at: OffsetDateTime,
}

/// Who is reviewing: their role and a stable id (the user id, else `token:<id>`, else
/// `operator` for the CLI on the local database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewer {
    pub role: Role,
    pub id: String,
}

impl Reviewer {
    pub fn new(role: Role, user_id: Option<Uuid>, token_id: Option<Uuid>) -> Self {
        let id = match (user_id, token_id) {
            (Some(user), _) => user.to_string(),
            (None, Some(token)) => format!("token:{token}"),
            (None, None) => "operator".to_string(),
        };
        Reviewer { role, id }
    }

    /// Whether this reviewer wrote the version (`author`: the author's user id; a version
    /// written by a credential without a user has no author to compare).
    pub fn is_author(&self, author: Option<Uuid>) -> bool {
        author.is_some_and(|author| author.to_string() == self.id)
    }

    /// Whether this reviewer is an API token bound to no user: a credential that cannot be told
    /// apart from the unknown author of a version written without a user.
    pub fn is_userless_token(&self) -> bool {
        self.id.starts_with("token:")
    }
}

/// How far a review round got: approvals per step, and the first step still short of its count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Approvals recorded at each step of the workflow.
    pub approved: Vec<u32>,
    /// The first incomplete step; `None` when every step has its approvals.
    pub current_step: Option<usize>,
}

impl Progress {
    /// Approvals so far (toward the workflow's steps).
    pub fn total(&self) -> u32 {
        self.approved.iter().sum()
    }
}

/// Counts the approvals of one review round against the workflow.
pub fn progress(workflow: &ApprovalWorkflow, round: &[ReviewRecord]) -> Progress {
    let mut approved = vec![0; workflow.steps.len()];
    for record in round
        .iter()
        .filter(|record| record.decision == ReviewDecision::Approve)
    {
        if let Some(count) = approved.get_mut(record.step as usize) {
            *count += 1;
        }
    }
    let current_step = workflow
        .steps
        .iter()
        .zip(&approved)
        .position(|(step, approved)| *approved < step.count);
    Progress {
        approved,
        current_step,
    }
}

/// An approval (or rejection) that was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The step (0-based) it counted toward.
    pub step: usize,
    /// Whether the workflow is now complete (the version becomes approved).
    pub complete: bool,
}

/// Why a review decision was refused. `code()` is stable and part of the public API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalRefusal {
    /// Only a version in review can be approved or rejected (answer 409).
    NotInReview { status: VersionStatus },
    /// The reviewer wrote the version (answer 403).
    SelfApproval,
    /// The version's author is unknown (it was written by a credential without a user) and the
    /// approver is such a credential too, so it could be the author (answer 403).
    UnidentifiedApprover,
    /// The reviewer's role may not decide at the current step (answer 403).
    RoleNotAllowed {
        step: usize,
        role: Role,
        allowed: Vec<Role>,
    },
    /// The reviewer already approved in this review round (answer 409).
    AlreadyApproved { step: usize },
}

impl ApprovalRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            ApprovalRefusal::NotInReview { .. } => "not_in_review",
            ApprovalRefusal::SelfApproval => "self_approval",
            ApprovalRefusal::UnidentifiedApprover => "unidentified_approver",
            ApprovalRefusal::RoleNotAllowed { .. } => "approver_role_not_allowed",
            ApprovalRefusal::AlreadyApproved { .. } => "already_approved",
        }
    }
}

impl fmt::Display for ApprovalRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApprovalRefusal::NotInReview { status } => write!(
                f,
                "the version is {status}, not in review; only a version in review can be \
                 approved or rejected"
            ),
            ApprovalRefusal::SelfApproval => f.write_str(
                "nobody approves or rejects their own version (the author may withdraw it: \
                 transition to draft)",
            ),
            ApprovalRefusal::UnidentifiedApprover => f.write_str(
                "the version was written by a credential without a user, so only a user's \
                 credential may approve it (a token without a user could be its author)",
            ),
            ApprovalRefusal::RoleNotAllowed {
                step,
                role,
                allowed,
            } => {
                let allowed = allowed
                    .iter()
                    .map(|role| role.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ");
                write!(
                    f,
                    "role {role} may not decide at step {} of this version's approval workflow; \
                     it needs {allowed}",
                    step + 1
                )
            }
            ApprovalRefusal::AlreadyApproved { step } => write!(
                f,
                "you already approved this version in this review round (at step {}); another \
                 approver is needed",
                step + 1
            ),
        }
    }
}

impl std::error::Error for ApprovalRefusal {}

/// Decides an approval: the version must be in review, the approver not its author and not yet
/// an approver in this round, and their role one the first incomplete step admits. `round` holds
/// the decisions of the current review round only.
pub fn decide_approval(
    workflow: &ApprovalWorkflow,
    status: VersionStatus,
    round: &[ReviewRecord],
    approver: &Reviewer,
    author: Option<Uuid>,
) -> Result<Recorded, ApprovalRefusal> {
    if status != VersionStatus::Review {
        return Err(ApprovalRefusal::NotInReview { status });
    }
    if approver.is_author(author) {
        return Err(ApprovalRefusal::SelfApproval);
    }
    // Who wrote a version without a user is unknown; a token without a user approving it could
    // be that very credential. Users (and the local operator, who holds the database) may.
    if author.is_none() && approver.is_userless_token() {
        return Err(ApprovalRefusal::UnidentifiedApprover);
    }
    if let Some(earlier) = round.iter().find(|record| {
        record.decision == ReviewDecision::Approve && record.reviewer_id == approver.id
    }) {
        return Err(ApprovalRefusal::AlreadyApproved {
            step: earlier.step as usize,
        });
    }
    let progress = progress(workflow, round);
    // A round already complete (the workflow shrank while the version waited) takes the
    // approval at its last step, which completes it.
    let step = progress
        .current_step
        .unwrap_or(workflow.steps.len().saturating_sub(1));
    check_role(workflow, step, approver.role)?;
    let complete = match progress.current_step {
        None => true,
        Some(current) => {
            let last = current + 1 == workflow.steps.len();
            last && progress.approved[current] + 1 >= workflow.steps[current].count
        }
    };
    Ok(Recorded { step, complete })
}

/// Decides a rejection: the version must be in review, and the reviewer someone who could
/// approve at the current step (not its author; the author withdraws instead). Having approved
/// an earlier step does not prevent rejecting at a later one.
pub fn decide_rejection(
    workflow: &ApprovalWorkflow,
    status: VersionStatus,
    round: &[ReviewRecord],
    reviewer: &Reviewer,
    author: Option<Uuid>,
) -> Result<Recorded, ApprovalRefusal> {
    if status != VersionStatus::Review {
        return Err(ApprovalRefusal::NotInReview { status });
    }
    if reviewer.is_author(author) {
        return Err(ApprovalRefusal::SelfApproval);
    }
    let step = progress(workflow, round)
        .current_step
        .unwrap_or(workflow.steps.len().saturating_sub(1));
    check_role(workflow, step, reviewer.role)?;
    Ok(Recorded {
        step,
        complete: false,
    })
}

fn check_role(workflow: &ApprovalWorkflow, step: usize, role: Role) -> Result<(), ApprovalRefusal> {
    let allowed = workflow
        .steps
        .get(step)
        .map(|step| step.roles.clone())
        .unwrap_or_default();
    if allowed.contains(&role) {
        Ok(())
    } else {
        Err(ApprovalRefusal::RoleNotAllowed {
            step,
            role,
            allowed,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use VersionStatus::{Approved, Archived, Deprecated, Draft, Review};

    const AUTHOR: Uuid = Uuid::from_u128(1);
    const ALICE: Uuid = Uuid::from_u128(2);
    const BOB: Uuid = Uuid::from_u128(3);

    fn reviewer(role: Role, user: Uuid) -> Reviewer {
        Reviewer::new(role, Some(user), None)
    }

    fn approval(round: i64, step: u32, who: &Reviewer) -> ReviewRecord {
        ReviewRecord {
            round,
            step,
            reviewer_id: who.id.clone(),
            reviewer_role: who.role,
            decision: ReviewDecision::Approve,
            comment: None,
            at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn restricted() -> ApprovalWorkflow {
        ApprovalPolicy::default().restricted
    }

    fn two_of_writers() -> ApprovalWorkflow {
        ApprovalPolicy::default().confidential
    }

    /// A version written without a user has an unknown author: a token without a user (which
    /// could be that author) may not approve it; a user or the local operator may. A version
    /// with a known author may be approved by a token without a user.
    #[test]
    fn a_token_without_a_user_never_approves_a_version_whose_author_is_unknown() {
        let token = Reviewer::new(Role::Admin, None, Some(Uuid::from_u128(9)));
        let operator = Reviewer::new(Role::Admin, None, None);
        let user = reviewer(Role::Admin, ALICE);
        let cases: &[(&Reviewer, Option<Uuid>, Result<(), &str>)] = &[
            (&token, None, Err("unidentified_approver")),
            (&token, Some(AUTHOR), Ok(())),
            (&user, None, Ok(())),
            (&operator, None, Ok(())),
        ];
        let workflow = ApprovalPolicy::default().internal;
        for (who, author, expected) in cases {
            let got = decide_approval(&workflow, Review, &[], who, *author)
                .map(|_| ())
                .map_err(|refusal| refusal.code());
            assert_eq!(&got, expected, "{} approving (author {author:?})", who.id);
        }
    }

    /// (workflow, approvals so far as (step, role, user), approver role, approver user, expected).
    #[test]
    fn approvals_are_decided_step_by_step() {
        type Row = (
            fn() -> ApprovalWorkflow,
            &'static [(u32, Role, Uuid)],
            Role,
            Uuid,
            Result<Recorded, &'static str>,
        );
        const fn done(step: usize) -> Result<Recorded, &'static str> {
            Ok(Recorded {
                step,
                complete: true,
            })
        }
        const fn more(step: usize) -> Result<Recorded, &'static str> {
            Ok(Recorded {
                step,
                complete: false,
            })
        }
        fn single() -> ApprovalWorkflow {
            ApprovalPolicy::default().internal
        }
        #[rustfmt::skip]
        let table: &[Row] = &[
            // One step, one approval by admin or user.
            (single, &[], Role::Admin, ALICE, done(0)),
            (single, &[], Role::User, ALICE, done(0)),
            (single, &[], Role::Agent, ALICE, Err("approver_role_not_allowed")),
            (single, &[], Role::User, AUTHOR, Err("self_approval")),
            (single, &[], Role::Admin, AUTHOR, Err("self_approval")),
            // Two approvals at one step: the first does not complete it, the same person twice
            // counts once.
            (two_of_writers, &[], Role::User, ALICE, more(0)),
            (two_of_writers, &[(0, Role::User, ALICE)], Role::User, BOB, done(0)),
            (two_of_writers, &[(0, Role::User, ALICE)], Role::Admin, ALICE, Err("already_approved")),
            (two_of_writers, &[(0, Role::User, ALICE)], Role::User, AUTHOR, Err("self_approval")),
            // Two steps: the first takes a writer, the second an admin, and they are different
            // people.
            (restricted, &[], Role::User, ALICE, more(0)),
            (restricted, &[], Role::Admin, ALICE, more(0)),
            (restricted, &[(0, Role::User, ALICE)], Role::User, BOB, Err("approver_role_not_allowed")),
            (restricted, &[(0, Role::User, ALICE)], Role::Admin, BOB, done(1)),
            (restricted, &[(0, Role::Admin, ALICE)], Role::Admin, ALICE, Err("already_approved")),
            (restricted, &[(0, Role::User, ALICE)], Role::Admin, AUTHOR, Err("self_approval")),
            (restricted, &[(0, Role::User, ALICE)], Role::Agent, BOB, Err("approver_role_not_allowed")),
        ];
        for (index, (workflow, so_far, role, user, expected)) in table.iter().enumerate() {
            let workflow = workflow();
            let round: Vec<ReviewRecord> = so_far
                .iter()
                .map(|(step, role, user)| approval(1, *step, &reviewer(*role, *user)))
                .collect();
            let got = decide_approval(
                &workflow,
                Review,
                &round,
                &reviewer(*role, *user),
                Some(AUTHOR),
            );
            match (expected, &got) {
                (Ok(want), Ok(got)) => assert_eq!(got, want, "row {index}"),
                (Err(code), Err(refusal)) => {
                    assert_eq!(refusal.code(), *code, "row {index}: {refusal}")
                }
                _ => panic!("row {index}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn only_a_version_in_review_is_approved_or_rejected() {
        for status in [Draft, Approved, Deprecated, Archived] {
            let who = reviewer(Role::Admin, ALICE);
            let approve = decide_approval(&restricted(), status, &[], &who, Some(AUTHOR));
            assert_eq!(approve, Err(ApprovalRefusal::NotInReview { status }));
            let reject = decide_rejection(&restricted(), status, &[], &who, Some(AUTHOR));
            assert_eq!(reject, Err(ApprovalRefusal::NotInReview { status }));
        }
    }

    #[test]
    fn every_role_against_every_step_of_every_default_workflow() {
        let policy = ApprovalPolicy::default();
        let mut checked = 0;
        for &classification in Classification::ALL {
            let workflow = policy.workflow_for(classification, None);
            for (index, step) in workflow.steps.iter().enumerate() {
                // Fill the earlier steps with distinct admins.
                let round: Vec<ReviewRecord> = workflow.steps[..index]
                    .iter()
                    .enumerate()
                    .flat_map(|(at, earlier)| {
                        (0..earlier.count).map(move |n| {
                            approval(
                                1,
                                at as u32,
                                &reviewer(
                                    Role::Admin,
                                    Uuid::from_u128(100 + (at * 10) as u128 + n as u128),
                                ),
                            )
                        })
                    })
                    .collect();
                for &role in Role::ALL {
                    let got = decide_approval(
                        workflow,
                        Review,
                        &round,
                        &reviewer(role, ALICE),
                        Some(AUTHOR),
                    );
                    if step.roles.contains(&role) {
                        let recorded = got.expect("an allowed role is recorded");
                        assert_eq!(recorded.step, index, "{classification} step {index} {role}");
                        let last = index + 1 == workflow.steps.len();
                        assert_eq!(recorded.complete, last && step.count == 1);
                    } else {
                        let refusal = got.expect_err("a role the step does not name is refused");
                        assert_eq!(refusal.code(), "approver_role_not_allowed");
                        assert!(refusal.to_string().contains(role.as_str()), "{refusal}");
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 0);
    }

    #[test]
    fn a_rejection_needs_a_reviewer_of_the_current_step_who_is_not_the_author() {
        let workflow = restricted();
        let alice = reviewer(Role::User, ALICE);
        let first = [approval(1, 0, &alice)];
        assert_eq!(
            decide_rejection(&workflow, Review, &[], &alice, Some(AUTHOR)),
            Ok(Recorded {
                step: 0,
                complete: false
            })
        );
        assert_eq!(
            decide_rejection(&workflow, Review, &first, &alice, Some(AUTHOR))
                .map_err(|refusal| refusal.code()),
            Err("approver_role_not_allowed")
        );
        let admin = reviewer(Role::Admin, ALICE);
        assert_eq!(
            decide_rejection(&workflow, Review, &first, &admin, Some(AUTHOR)).map(|r| r.step),
            Ok(1),
            "having approved step 1 does not prevent rejecting at step 2"
        );
        assert_eq!(
            decide_rejection(
                &workflow,
                Review,
                &[],
                &reviewer(Role::Admin, AUTHOR),
                Some(AUTHOR)
            ),
            Err(ApprovalRefusal::SelfApproval)
        );
    }

    #[test]
    fn rejections_and_unknown_steps_do_not_count_as_approvals() {
        let workflow = two_of_writers();
        let mut rejected = approval(1, 0, &reviewer(Role::User, BOB));
        rejected.decision = ReviewDecision::Reject;
        let stray = approval(1, 7, &reviewer(Role::User, Uuid::from_u128(9)));
        let got = progress(&workflow, &[rejected, stray]);
        assert_eq!(got.approved, vec![0]);
        assert_eq!(got.current_step, Some(0));
        assert_eq!(got.total(), 0);
    }

    #[test]
    fn a_round_completed_by_a_smaller_workflow_is_completed_by_one_more_approval() {
        let workflow = ApprovalPolicy::default().internal;
        let round = [approval(1, 0, &reviewer(Role::User, BOB))];
        assert_eq!(
            decide_approval(
                &workflow,
                Review,
                &round,
                &reviewer(Role::User, ALICE),
                None
            ),
            Ok(Recorded {
                step: 0,
                complete: true
            })
        );
    }

    #[test]
    fn reviewer_ids_are_the_user_else_the_token_else_the_operator() {
        let token = Uuid::from_u128(77);
        assert_eq!(
            Reviewer::new(Role::User, Some(ALICE), Some(token)).id,
            ALICE.to_string()
        );
        assert_eq!(
            Reviewer::new(Role::Admin, None, Some(token)).id,
            format!("token:{token}")
        );
        assert_eq!(Reviewer::new(Role::Admin, None, None).id, "operator");
        assert!(!Reviewer::new(Role::Admin, None, None).is_author(None));
    }

    #[test]
    fn invalid_workflows_are_refused_naming_the_field() {
        let cases = [
            (json!({"steps": []}), "at least one step"),
            (
                json!({"steps": [{"roles": ["admin"], "count": 0}]}),
                "steps[0].count",
            ),
            (
                json!({"steps": [{"roles": [], "count": 1}]}),
                "steps[0].roles",
            ),
            (
                json!({"steps": [{"roles": ["admin"], "count": 1}, {"roles": ["agent"], "count": 1}]}),
                "steps[1].roles: agents never approve",
            ),
            (
                json!({"steps": [{"roles": ["user", "user"], "count": 1}]}),
                "listed twice",
            ),
            (
                json!({"steps": [{"roles": ["admin"], "count": 21}]}),
                "1 to 20",
            ),
        ];
        for (value, expected) in cases {
            let workflow: ApprovalWorkflow = serde_json::from_value(value.clone()).expect("shape");
            let error = workflow
                .validate("approval_workflow")
                .expect_err("invalid workflow");
            assert_eq!(error.code(), "invalid_field");
            let message = error.to_string();
            assert!(message.contains("approval_workflow"), "{message}");
            assert!(message.contains(expected), "{value}: {message}");
        }
        assert!(
            serde_json::from_value::<ApprovalWorkflow>(json!({"steps": [], "extra": 1})).is_err()
        );
    }

    #[test]
    fn the_default_policy_is_valid_and_a_type_overrides_it() {
        let policy = ApprovalPolicy::default();
        policy.validate().expect("defaults are valid");
        assert_eq!(
            policy
                .workflow_for(Classification::Internal, None)
                .required(),
            1
        );
        assert_eq!(
            policy
                .workflow_for(Classification::Confidential, None)
                .required(),
            2
        );
        assert_eq!(
            policy
                .workflow_for(Classification::Restricted, None)
                .steps
                .len(),
            2
        );
        let own = ApprovalWorkflow::one_step(&[Role::Admin], 3);
        assert_eq!(
            policy.workflow_for(Classification::Public, Some(&own)),
            &own
        );
        let mut broken = policy.clone();
        broken.restricted.steps.clear();
        let error = broken.validate().expect_err("no steps");
        assert!(
            error.to_string().contains("approvals.restricted"),
            "{error}"
        );
    }
}
