//! The version lifecycle (SPEC §6): which status changes exist and who may make them, as one
//! table ([`TRANSITIONS`]) and one decision over it ([`transition`]).
//!
//! ```text
//! draft ──submit──► review ──approve──► approved ──deprecate──► deprecated ──archive──► archived
//!   ▲                 │
//!   └─request_changes─┘ (withdraw, when the author takes their own version back)
//! ```
//!
//! Agents never change a status. Users submit, request changes and withdraw; deprecating and
//! archiving need an admin, and nobody approves a version they wrote. Approving is a row here
//! (the move exists, for admins and users who are not the author), but who may approve, and
//! how many approvals it takes, is decided per step by the version's approval workflow
//! (`crate::workflow`): the move happens through the approve use case once the workflow is
//! complete, never as a plain transition.
//! Whether the principal may write the prompt at all is `access::decide` (`Action::Write`),
//! asked before this.

use std::fmt;

use crate::model::{Role, VersionStatus};

/// A named status change (what the actor did).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleAction {
    /// draft → review.
    Submit,
    /// review → draft, by the version's author (taking it back).
    Withdraw,
    /// review → draft, by a reviewer (someone other than the author).
    RequestChanges,
    /// review → approved.
    Approve,
    /// approved → deprecated.
    Deprecate,
    /// deprecated → archived.
    Archive,
}

impl LifecycleAction {
    pub const ALL: &'static [LifecycleAction] = &[
        LifecycleAction::Submit,
        LifecycleAction::Withdraw,
        LifecycleAction::RequestChanges,
        LifecycleAction::Approve,
        LifecycleAction::Deprecate,
        LifecycleAction::Archive,
    ];

    /// The stable name (snake_case), as recorded in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleAction::Submit => "submit",
            LifecycleAction::Withdraw => "withdraw",
            LifecycleAction::RequestChanges => "request_changes",
            LifecycleAction::Approve => "approve",
            LifecycleAction::Deprecate => "deprecate",
            LifecycleAction::Archive => "archive",
        }
    }
}

impl fmt::Display for LifecycleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the actor must (or must not) be the version's author.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorship {
    Any,
    AuthorOnly,
    NotAuthor,
}

impl Authorship {
    fn admits(self, actor_is_author: bool) -> bool {
        match self {
            Authorship::Any => true,
            Authorship::AuthorOnly => actor_is_author,
            Authorship::NotAuthor => !actor_is_author,
        }
    }
}

/// One row of the lifecycle table: a status change, its name, and who may make it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: VersionStatus,
    pub to: VersionStatus,
    pub action: LifecycleAction,
    pub roles: &'static [Role],
    pub authorship: Authorship,
}

const WRITERS: &[Role] = &[Role::Admin, Role::User];
const ADMINS: &[Role] = &[Role::Admin];

/// Every status change there is. A (from, to) pair absent here is invalid for everyone; a pair
/// present is allowed to whoever matches one of its rows (first match names the action).
pub const TRANSITIONS: &[Transition] = &[
    Transition {
        from: VersionStatus::Draft,
        to: VersionStatus::Review,
        action: LifecycleAction::Submit,
        roles: WRITERS,
        authorship: Authorship::Any,
    },
    Transition {
        from: VersionStatus::Review,
        to: VersionStatus::Draft,
        action: LifecycleAction::Withdraw,
        roles: WRITERS,
        authorship: Authorship::AuthorOnly,
    },
    Transition {
        from: VersionStatus::Review,
        to: VersionStatus::Draft,
        action: LifecycleAction::RequestChanges,
        roles: WRITERS,
        authorship: Authorship::NotAuthor,
    },
    Transition {
        from: VersionStatus::Review,
        to: VersionStatus::Approved,
        action: LifecycleAction::Approve,
        // The workflow narrows this per step (`crate::workflow::decide_approval`).
        roles: WRITERS,
        authorship: Authorship::NotAuthor,
    },
    Transition {
        from: VersionStatus::Approved,
        to: VersionStatus::Deprecated,
        action: LifecycleAction::Deprecate,
        roles: ADMINS,
        authorship: Authorship::Any,
    },
    Transition {
        from: VersionStatus::Deprecated,
        to: VersionStatus::Archived,
        action: LifecycleAction::Archive,
        roles: ADMINS,
        authorship: Authorship::Any,
    },
];

/// Why a status change was refused. `code()` is stable and part of the public API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleError {
    /// No such transition for anyone (answer 422).
    InvalidTransition {
        from: VersionStatus,
        to: VersionStatus,
        /// The statuses `from` may move to (for someone).
        allowed: Vec<VersionStatus>,
    },
    /// The transition exists but not for this actor (answer 403).
    ForbiddenTransition {
        from: VersionStatus,
        to: VersionStatus,
        role: Role,
        actor_is_author: bool,
    },
}

impl LifecycleError {
    pub fn code(&self) -> &'static str {
        match self {
            LifecycleError::InvalidTransition { .. } => "invalid_transition",
            LifecycleError::ForbiddenTransition { .. } => "forbidden_transition",
        }
    }
}

impl fmt::Display for LifecycleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LifecycleError::InvalidTransition { from, to, allowed } => {
                let allowed = if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed
                        .iter()
                        .map(|status| status.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                write!(
                    f,
                    "a version cannot go from {from} to {to}; from {from} it may go to: {allowed}"
                )
            }
            LifecycleError::ForbiddenTransition {
                from,
                to,
                role,
                actor_is_author,
            } => {
                let who = TRANSITIONS
                    .iter()
                    .filter(|rule| rule.from == *from && rule.to == *to)
                    .map(describe_rule)
                    .collect::<Vec<_>>()
                    .join("; or ");
                let author = if *actor_is_author {
                    " (the version's author)"
                } else {
                    ""
                };
                write!(
                    f,
                    "role {role}{author} may not move a version from {from} to {to}: {who}"
                )
            }
        }
    }
}

impl std::error::Error for LifecycleError {}

fn describe_rule(rule: &Transition) -> String {
    let roles = rule
        .roles
        .iter()
        .map(|role| role.as_str())
        .collect::<Vec<_>>()
        .join(" or ");
    let authorship = match rule.authorship {
        Authorship::Any => "",
        Authorship::AuthorOnly => ", the version's author",
        Authorship::NotAuthor => ", not the version's author",
    };
    format!("{} needs {roles}{authorship}", rule.action)
}

/// The statuses a version in `from` may move to (for someone), in table order.
pub fn targets(from: VersionStatus) -> Vec<VersionStatus> {
    let mut targets = Vec::new();
    for rule in TRANSITIONS.iter().filter(|rule| rule.from == from) {
        if !targets.contains(&rule.to) {
            targets.push(rule.to);
        }
    }
    targets
}

/// Decides a status change: the action it is, or why it is refused (no such transition, or not
/// for this role / authorship).
pub fn transition(
    from: VersionStatus,
    to: VersionStatus,
    actor_role: Role,
    actor_is_author: bool,
) -> Result<LifecycleAction, LifecycleError> {
    let mut rules = TRANSITIONS
        .iter()
        .filter(|rule| rule.from == from && rule.to == to)
        .peekable();
    if rules.peek().is_none() {
        return Err(LifecycleError::InvalidTransition {
            from,
            to,
            allowed: targets(from),
        });
    }
    rules
        .find(|rule| rule.roles.contains(&actor_role) && rule.authorship.admits(actor_is_author))
        .map(|rule| rule.action)
        .ok_or(LifecycleError::ForbiddenTransition {
            from,
            to,
            role: actor_role,
            actor_is_author,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use VersionStatus::{Approved, Archived, Deprecated, Draft, Review};

    /// What one cell of the table must answer.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Cell {
        /// No such transition (422 `invalid_transition`).
        I,
        /// Exists, but not for this actor (403 `forbidden_transition`).
        F,
        Ok(LifecycleAction),
    }
    use Cell::{F, I};
    const SUB: Cell = Cell::Ok(LifecycleAction::Submit);
    const WDR: Cell = Cell::Ok(LifecycleAction::Withdraw);
    const REQ: Cell = Cell::Ok(LifecycleAction::RequestChanges);
    const APP: Cell = Cell::Ok(LifecycleAction::Approve);
    const DEP: Cell = Cell::Ok(LifecycleAction::Deprecate);
    const ARC: Cell = Cell::Ok(LifecycleAction::Archive);

    /// The expected answer of every (from, to) for, in order: admin author, admin not author,
    /// user author, user not author, agent author, agent not author.
    #[rustfmt::skip]
    const EXPECTED: &[(VersionStatus, VersionStatus, [Cell; 6])] = &[
        //                       admin/a admin/n user/a user/n agent/a agent/n
        (Draft,      Draft,      [I,     I,      I,     I,     I,      I]),
        (Draft,      Review,     [SUB,   SUB,    SUB,   SUB,   F,      F]),
        (Draft,      Approved,   [I,     I,      I,     I,     I,      I]),
        (Draft,      Deprecated, [I,     I,      I,     I,     I,      I]),
        (Draft,      Archived,   [I,     I,      I,     I,     I,      I]),
        (Review,     Draft,      [WDR,   REQ,    WDR,   REQ,   F,      F]),
        (Review,     Review,     [I,     I,      I,     I,     I,      I]),
        (Review,     Approved,   [F,     APP,    F,     APP,   F,      F]),
        (Review,     Deprecated, [I,     I,      I,     I,     I,      I]),
        (Review,     Archived,   [I,     I,      I,     I,     I,      I]),
        (Approved,   Draft,      [I,     I,      I,     I,     I,      I]),
        (Approved,   Review,     [I,     I,      I,     I,     I,      I]),
        (Approved,   Approved,   [I,     I,      I,     I,     I,      I]),
        (Approved,   Deprecated, [DEP,   DEP,    F,     F,     F,      F]),
        (Approved,   Archived,   [I,     I,      I,     I,     I,      I]),
        (Deprecated, Draft,      [I,     I,      I,     I,     I,      I]),
        (Deprecated, Review,     [I,     I,      I,     I,     I,      I]),
        (Deprecated, Approved,   [I,     I,      I,     I,     I,      I]),
        (Deprecated, Deprecated, [I,     I,      I,     I,     I,      I]),
        (Deprecated, Archived,   [ARC,   ARC,    F,     F,     F,      F]),
        (Archived,   Draft,      [I,     I,      I,     I,     I,      I]),
        (Archived,   Review,     [I,     I,      I,     I,     I,      I]),
        (Archived,   Approved,   [I,     I,      I,     I,     I,      I]),
        (Archived,   Deprecated, [I,     I,      I,     I,     I,      I]),
        (Archived,   Archived,   [I,     I,      I,     I,     I,      I]),
    ];

    const ACTORS: [(Role, bool); 6] = [
        (Role::Admin, true),
        (Role::Admin, false),
        (Role::User, true),
        (Role::User, false),
        (Role::Agent, true),
        (Role::Agent, false),
    ];

    fn expected(from: VersionStatus, to: VersionStatus, role: Role, author: bool) -> Cell {
        let rows: Vec<_> = EXPECTED
            .iter()
            .filter(|(f, t, _)| *f == from && *t == to)
            .collect();
        assert_eq!(
            rows.len(),
            1,
            "the expected table has one row for {from} → {to}"
        );
        let column = ACTORS
            .iter()
            .position(|actor| *actor == (role, author))
            .expect("every role × authorship has a column");
        rows[0].2[column]
    }

    /// Every state × target state × role × authorship, against the table above.
    #[test]
    fn every_cell_of_the_transition_table() {
        let mut checked = 0;
        for &from in VersionStatus::ALL {
            for &to in VersionStatus::ALL {
                for &role in Role::ALL {
                    for author in [true, false] {
                        let want = expected(from, to, role, author);
                        let got = transition(from, to, role, author);
                        let context = format!("{from} → {to} by {role} (author: {author})");
                        match (want, &got) {
                            (Cell::Ok(action), Ok(got_action)) => {
                                assert_eq!(*got_action, action, "{context}")
                            }
                            (I, Err(error @ LifecycleError::InvalidTransition { .. })) => {
                                assert_eq!(error.code(), "invalid_transition", "{context}");
                                let message = error.to_string();
                                assert!(message.contains(from.as_str()), "{context}: {message}");
                                assert!(message.contains(to.as_str()), "{context}: {message}");
                                for target in targets(from) {
                                    assert!(
                                        message.contains(target.as_str()),
                                        "{context}: {message}"
                                    );
                                }
                            }
                            (F, Err(error @ LifecycleError::ForbiddenTransition { .. })) => {
                                assert_eq!(error.code(), "forbidden_transition", "{context}");
                                let message = error.to_string();
                                assert!(
                                    message.contains(&format!("role {role}")),
                                    "{context}: {message}"
                                );
                            }
                            _ => panic!("{context}: expected {want:?}, got {got:?}"),
                        }
                        checked += 1;
                    }
                }
            }
        }
        let size = VersionStatus::ALL.len() * VersionStatus::ALL.len() * Role::ALL.len() * 2;
        assert_eq!(checked, size);
        assert_eq!(EXPECTED.len(), VersionStatus::ALL.len().pow(2));
        println!(
            "lifecycle transition table: {checked} cells checked ({} states × {} states × {} \
             roles × author or not)",
            VersionStatus::ALL.len(),
            VersionStatus::ALL.len(),
            Role::ALL.len()
        );
    }

    /// Every state × action × role: an action is only ever answered from its own state, to its
    /// own target, and only to the roles its row names.
    #[test]
    fn every_state_action_and_role() {
        let mut checked = 0;
        for &from in VersionStatus::ALL {
            for &action in LifecycleAction::ALL {
                let rule = TRANSITIONS
                    .iter()
                    .find(|rule| rule.action == action)
                    .expect("every action has a row");
                for &role in Role::ALL {
                    for author in [true, false] {
                        let answer = transition(from, rule.to, role, author);
                        let yields_action = answer == Ok(action);
                        let should = from == rule.from
                            && rule.roles.contains(&role)
                            && rule.authorship.admits(author);
                        assert_eq!(
                            yields_action, should,
                            "{action} from {from} by {role} (author: {author}): {answer:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        println!("lifecycle state × action × role: {checked} cells checked");
    }

    #[test]
    fn errors_name_what_was_asked() {
        let invalid = transition(Draft, Approved, Role::Admin, false).expect_err("refused");
        assert_eq!(
            invalid.to_string(),
            "a version cannot go from draft to approved; from draft it may go to: review"
        );
        let terminal = transition(Archived, Draft, Role::Admin, false).expect_err("refused");
        assert!(terminal.to_string().ends_with("may go to: none"));
        let own = transition(Review, Approved, Role::Admin, true).expect_err("refused");
        assert_eq!(own.code(), "forbidden_transition");
        assert_eq!(
            own.to_string(),
            "role admin (the version's author) may not move a version from review to approved: \
             approve needs admin or user, not the version's author"
        );
        let agent = transition(Draft, Review, Role::Agent, false).expect_err("refused");
        assert!(agent.to_string().starts_with("role agent may not"));
    }
}
