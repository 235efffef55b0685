//! Authorization, in one place (SPEC §7): [`decide`] answers whether a principal may perform an
//! action on a prompt, from the role matrix, the prompt's scope and owner, its per-prompt rules
//! (`owner_only`, `allowed_roles`, `restricted_deployments`), its classification and explicit
//! grants, and the restrictions of the credential used. [`is_visible`] is the part that decides
//! whether a prompt exists at all for the principal; storage applies the same rule to lists
//! (through [`VisibilityFilter`]) so that lists and counts never leak what a principal cannot
//! read.
//!
//! Deny by default: every action not granted below is refused.

use uuid::Uuid;

use crate::model::{Classification, DeploymentModel, Grantee, Prompt, Role, Scope};

/// Who is acting, as far as authorization is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    pub user_id: Option<Uuid>,
    pub agent_id: Option<String>,
    /// Extra permissions of the user (e.g. `link`).
    pub permissions: Vec<String>,
    /// Restrictions of the credential used (an API token scoped to some prompts).
    pub restriction: CredentialRestriction,
}

/// What a credential limits its holder to, whatever the role allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialRestriction {
    /// Only prompts of these scopes.
    pub scopes: Option<Vec<Scope>>,
    /// Only prompts whose name starts with one of these.
    pub name_prefixes: Option<Vec<String>>,
}

impl Principal {
    /// The operator working on the local database with the CLI: they hold the database file
    /// anyway, so they act as an unrestricted admin.
    pub fn local_operator() -> Self {
        Principal {
            role: Role::Admin,
            user_id: None,
            agent_id: None,
            permissions: Vec::new(),
            restriction: CredentialRestriction::default(),
        }
    }

    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|held| held == permission)
    }

    fn is_granted(&self, grants: &[Grantee]) -> bool {
        grants.iter().any(|grantee| match grantee {
            Grantee::User(user) => self.user_id == Some(*user),
            Grantee::Agent(agent) => self.agent_id.as_deref() == Some(agent.as_str()),
        })
    }

    fn owns(&self, prompt: &Prompt) -> bool {
        self.user_id.is_some() && prompt.owner_id == self.user_id
    }
}

/// The strongest of some roles (admin > user > agent).
pub fn strongest_role(roles: &[Role]) -> Option<Role> {
    roles.iter().copied().max_by_key(|role| rank(*role))
}

/// The weaker of two roles: a credential never grants more than its holder has.
pub fn weaker_role(left: Role, right: Role) -> Role {
    if rank(left) <= rank(right) {
        left
    } else {
        right
    }
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Agent => 0,
        Role::User => 1,
        Role::Admin => 2,
    }
}

/// Everything a principal can ask to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// See a prompt, its versions and their text.
    Read,
    /// Render or resolve a prompt for use (a read that also honours `restricted_deployments`).
    Serve,
    /// Create a prompt (`restricted_creation` says whether its type restricts creation).
    Create {
        restricted_creation: bool,
    },
    /// Change metadata, add versions, move labels.
    Write,
    /// Attach a prompt to an agent capability.
    Link,
    Delete,
    /// Create, change or delete prompt types.
    ManagePromptTypes,
    /// Manage users and tokens.
    ManageAccess,
    /// Read and verify the audit log.
    ReadAudit,
    /// Import a bundle.
    Import,
    /// Scrape the server's operational metrics (`GET /metrics`).
    ReadMetrics,
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The prompt does not exist for this principal (answer 404, never reveal it).
    NotVisible,
    /// The principal sees the prompt but may not do this (answer 403).
    Forbidden(&'static str),
}

/// Whether the credential used reaches a prompt with this name and scope (a token restricted to
/// some scopes or name prefixes reaches nothing else — to read, to write or to create).
pub fn credential_reaches(principal: &Principal, name: &str, scope: Scope) -> bool {
    let restriction = &principal.restriction;
    restriction
        .scopes
        .as_ref()
        .is_none_or(|scopes| scopes.contains(&scope))
        && restriction.name_prefixes.as_ref().is_none_or(|prefixes| {
            prefixes
                .iter()
                .any(|prefix| name.starts_with(prefix.as_str()))
        })
}

impl CredentialRestriction {
    /// A credential without restrictions (needed for admin work beyond prompts: users, tokens,
    /// prompt types, imports, the audit log — a restricted token must not widen itself).
    pub fn is_unrestricted(&self) -> bool {
        self.scopes.is_none() && self.name_prefixes.is_none()
    }
}

/// Whether the prompt exists for the principal: credential restrictions, then (for non-admins)
/// scope, `owner_only`, `allowed_roles` and classification.
pub fn is_visible(principal: &Principal, prompt: &Prompt) -> bool {
    if !credential_reaches(principal, prompt.name.as_str(), prompt.scope) {
        return false;
    }
    if principal.role == Role::Admin {
        return true;
    }
    let in_scope = match prompt.scope {
        Scope::Global => true,
        Scope::User => principal.owns(prompt),
        Scope::Agent => {
            principal.owns(prompt)
                || (principal.agent_id.is_some() && principal.agent_id == prompt.agent_id)
        }
    };
    let access = &prompt.access;
    in_scope
        && (!access.owner_only || principal.owns(prompt))
        && (access.allowed_roles.is_empty() || access.allowed_roles.contains(&principal.role))
        && match prompt.classification {
            Classification::Restricted => principal.is_granted(&access.grants),
            Classification::Confidential => {
                principal.role != Role::Agent || principal.is_granted(&access.grants)
            }
            Classification::Public | Classification::Internal => true,
        }
}

/// Decides whether `principal` may do `action` (on `prompt`, for prompt-bound actions) in a
/// server running as `deployment`.
pub fn decide(
    principal: &Principal,
    action: Action,
    prompt: Option<&Prompt>,
    deployment: DeploymentModel,
) -> Result<(), Denial> {
    if let Some(prompt) = prompt
        && !is_visible(principal, prompt)
    {
        return Err(Denial::NotVisible);
    }
    let admin = principal.role == Role::Admin;
    let writer = matches!(principal.role, Role::Admin | Role::User);
    match action {
        Action::Read => Ok(()),
        Action::Serve => match prompt {
            Some(prompt) if prompt.access.restricted_deployments.contains(&deployment) => Err(
                Denial::Forbidden("this prompt may not be served by this deployment model"),
            ),
            _ => Ok(()),
        },
        Action::Create {
            restricted_creation,
        } => {
            if !writer {
                Err(Denial::Forbidden("the agent role cannot create prompts"))
            } else if restricted_creation && !admin {
                Err(Denial::Forbidden(
                    "this prompt type restricts creation to admins",
                ))
            } else {
                Ok(())
            }
        }
        Action::Write if writer => Ok(()),
        Action::Write => Err(Denial::Forbidden("the agent role cannot change prompts")),
        Action::Link if admin || principal.has_permission("link") => Ok(()),
        Action::Link => Err(Denial::Forbidden(
            "linking prompts to agents needs the admin role or the link permission",
        )),
        Action::Delete => match prompt {
            _ if admin => Ok(()),
            Some(prompt) if principal.role == Role::User && principal.owns(prompt) => Ok(()),
            _ => Err(Denial::Forbidden(
                "only admins and the prompt's owner can delete it",
            )),
        },
        Action::ManagePromptTypes
        | Action::ManageAccess
        | Action::ReadAudit
        | Action::Import
        | Action::ReadMetrics => {
            if !admin {
                Err(Denial::Forbidden("this needs the admin role"))
            } else if !principal.restriction.is_unrestricted() {
                Err(Denial::Forbidden(
                    "this needs an admin credential without scope or prompt-name restrictions",
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// The visibility rule of [`is_visible`] as data, for storage to apply in list queries.
/// `None` from [`visibility_filter`] means the principal sees everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibilityFilter {
    /// Apply the role/scope/classification rules (false for admins: only the credential
    /// restrictions apply).
    pub restricted_role: bool,
    pub role: Role,
    pub user_id: Option<Uuid>,
    pub agent_id: Option<String>,
    pub scopes: Option<Vec<Scope>>,
    pub name_prefixes: Option<Vec<String>>,
}

pub fn visibility_filter(principal: &Principal) -> Option<VisibilityFilter> {
    let unrestricted = principal.role == Role::Admin
        && principal.restriction.scopes.is_none()
        && principal.restriction.name_prefixes.is_none();
    (!unrestricted).then(|| VisibilityFilter {
        restricted_role: principal.role != Role::Admin,
        role: principal.role,
        user_id: principal.user_id,
        agent_id: principal.agent_id.clone(),
        scopes: principal.restriction.scopes.clone(),
        name_prefixes: principal.restriction.name_prefixes.clone(),
    })
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::{
        ident::PromptName,
        model::{Kind, PromptAccess, PromptStatus, Source},
    };

    const OWNER: Uuid = Uuid::from_u128(1);
    const OTHER: Uuid = Uuid::from_u128(2);

    fn prompt(scope: Scope, classification: Classification, access: PromptAccess) -> Prompt {
        Prompt {
            id: Uuid::from_u128(99),
            name: PromptName::parse("team/p").expect("name"),
            title: None,
            description: None,
            long_description_markdown: None,
            scope,
            agent_id: (scope == Scope::Agent).then(|| "bot".to_string()),
            owner_id: Some(OWNER),
            creator_id: Some(OWNER),
            prompt_type: None,
            kind: Kind::Text,
            tags: Vec::new(),
            source: Source::human(),
            classification,
            status: PromptStatus::Active,
            access,
            revision: 1,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn principal(role: Role, user_id: Option<Uuid>, agent_id: Option<&str>) -> Principal {
        Principal {
            role,
            user_id,
            agent_id: agent_id.map(str::to_string),
            permissions: Vec::new(),
            restriction: CredentialRestriction::default(),
        }
    }

    /// Who: admin, the owner (user), another user, the prompt's agent, another agent.
    fn cast() -> Vec<(&'static str, Principal)> {
        vec![
            ("admin", principal(Role::Admin, Some(OTHER), None)),
            ("owner", principal(Role::User, Some(OWNER), None)),
            ("other user", principal(Role::User, Some(OTHER), None)),
            ("its agent", principal(Role::Agent, None, Some("bot"))),
            (
                "other agent",
                principal(Role::Agent, None, Some("other-bot")),
            ),
        ]
    }

    /// Expected visibility per (scope, classification), as a string over the cast in order:
    /// `A` admin, `O` owner, `U` other user, `G` its agent, `X` other agent; `.` = hidden.
    #[test]
    fn visibility_follows_scope_and_classification_for_every_role() {
        let table: &[(Scope, Classification, &str)] = &[
            (Scope::Global, Classification::Public, "AOUGX"),
            (Scope::Global, Classification::Internal, "AOUGX"),
            (Scope::Global, Classification::Confidential, "AOU.."),
            (Scope::Global, Classification::Restricted, "A...."),
            (Scope::User, Classification::Internal, "AO..."),
            (Scope::User, Classification::Confidential, "AO..."),
            (Scope::User, Classification::Restricted, "A...."),
            (Scope::Agent, Classification::Internal, "AO.G."),
            (Scope::Agent, Classification::Confidential, "AO..."),
            (Scope::Agent, Classification::Restricted, "A...."),
        ];
        let letters = ['A', 'O', 'U', 'G', 'X'];
        for (scope, classification, expected) in table {
            let prompt = prompt(*scope, *classification, PromptAccess::default());
            let got: String = cast()
                .iter()
                .zip(letters)
                .map(|((_, who), letter)| {
                    if is_visible(who, &prompt) {
                        letter
                    } else {
                        '.'
                    }
                })
                .collect();
            assert_eq!(&got, expected, "{scope} {classification}");
        }
        println!("visibility table: {} cells", table.len() * letters.len());
    }

    #[test]
    fn grants_open_restricted_prompts_and_confidential_ones_to_agents() {
        let access = PromptAccess {
            grants: vec![Grantee::User(OTHER), Grantee::Agent("bot".into())],
            ..PromptAccess::default()
        };
        let restricted = prompt(Scope::Global, Classification::Restricted, access.clone());
        let confidential = prompt(Scope::Global, Classification::Confidential, access);
        let visible: Vec<&str> = cast()
            .iter()
            .filter(|(_, who)| is_visible(who, &restricted))
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(visible, vec!["admin", "other user", "its agent"]);
        let visible: Vec<&str> = cast()
            .iter()
            .filter(|(_, who)| is_visible(who, &confidential))
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(visible, vec!["admin", "owner", "other user", "its agent"]);
    }

    #[test]
    fn per_prompt_rules_narrow_visibility() {
        let owner_only = prompt(
            Scope::Global,
            Classification::Internal,
            PromptAccess {
                owner_only: true,
                ..Default::default()
            },
        );
        let visible: Vec<&str> = cast()
            .iter()
            .filter(|(_, who)| is_visible(who, &owner_only))
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(visible, vec!["admin", "owner"]);
        let agents_only = prompt(
            Scope::Global,
            Classification::Internal,
            PromptAccess {
                allowed_roles: vec![Role::Agent],
                ..Default::default()
            },
        );
        let visible: Vec<&str> = cast()
            .iter()
            .filter(|(_, who)| is_visible(who, &agents_only))
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(visible, vec!["admin", "its agent", "other agent"]);
    }

    /// The role matrix of SPEC §7 on a visible global prompt owned by `owner`.
    #[test]
    fn the_role_matrix_decides_actions() {
        let prompt = prompt(
            Scope::Global,
            Classification::Internal,
            PromptAccess::default(),
        );
        let actions: &[(Action, &str)] = &[
            (Action::Read, "AOUGX"),
            (Action::Serve, "AOUGX"),
            (
                Action::Create {
                    restricted_creation: false,
                },
                "AOU..",
            ),
            (
                Action::Create {
                    restricted_creation: true,
                },
                "A....",
            ),
            (Action::Write, "AOU.."),
            (Action::Link, "A...."),
            (Action::Delete, "AO..."),
            (Action::ManagePromptTypes, "A...."),
            (Action::ManageAccess, "A...."),
            (Action::ReadAudit, "A...."),
            (Action::Import, "A...."),
            (Action::ReadMetrics, "A...."),
        ];
        let letters = ['A', 'O', 'U', 'G', 'X'];
        for (action, expected) in actions {
            let got: String = cast()
                .iter()
                .zip(letters)
                .map(|((_, who), letter)| {
                    let prompt_bound = matches!(
                        action,
                        Action::Read
                            | Action::Serve
                            | Action::Write
                            | Action::Link
                            | Action::Delete
                    );
                    let target = if prompt_bound { Some(&prompt) } else { None };
                    if decide(who, *action, target, DeploymentModel::WebApplication).is_ok() {
                        letter
                    } else {
                        '.'
                    }
                })
                .collect();
            assert_eq!(&got, expected, "{action:?}");
        }
    }

    #[test]
    fn hidden_prompts_are_not_visible_rather_than_forbidden() {
        let prompt = prompt(
            Scope::User,
            Classification::Internal,
            PromptAccess::default(),
        );
        let stranger = principal(Role::User, Some(OTHER), None);
        assert_eq!(
            decide(
                &stranger,
                Action::Delete,
                Some(&prompt),
                DeploymentModel::WebApplication
            ),
            Err(Denial::NotVisible)
        );
    }

    #[test]
    fn roles_order_admin_over_user_over_agent() {
        assert_eq!(
            strongest_role(&[Role::Agent, Role::Admin, Role::User]),
            Some(Role::Admin)
        );
        assert_eq!(strongest_role(&[]), None);
        assert_eq!(weaker_role(Role::Admin, Role::Agent), Role::Agent);
        assert_eq!(weaker_role(Role::User, Role::Admin), Role::User);
    }

    #[test]
    fn the_link_permission_lets_a_user_link() {
        let prompt = prompt(
            Scope::Global,
            Classification::Internal,
            PromptAccess::default(),
        );
        let mut user = principal(Role::User, Some(OTHER), None);
        assert!(
            decide(
                &user,
                Action::Link,
                Some(&prompt),
                DeploymentModel::WebApplication
            )
            .is_err()
        );
        user.permissions.push("link".into());
        assert!(
            decide(
                &user,
                Action::Link,
                Some(&prompt),
                DeploymentModel::WebApplication
            )
            .is_ok()
        );
    }

    #[test]
    fn restricted_deployments_refuse_serving_but_not_reading() {
        let access = PromptAccess {
            restricted_deployments: vec![DeploymentModel::ElectronLocal],
            ..Default::default()
        };
        let prompt = prompt(Scope::Global, Classification::Internal, access);
        let admin = principal(Role::Admin, None, None);
        assert!(
            decide(
                &admin,
                Action::Serve,
                Some(&prompt),
                DeploymentModel::ElectronLocal
            )
            .is_err()
        );
        assert!(
            decide(
                &admin,
                Action::Serve,
                Some(&prompt),
                DeploymentModel::WebApplication
            )
            .is_ok()
        );
        assert!(
            decide(
                &admin,
                Action::Read,
                Some(&prompt),
                DeploymentModel::ElectronLocal
            )
            .is_ok()
        );
    }

    #[test]
    fn a_restricted_admin_credential_cannot_do_admin_work_beyond_its_prompts() {
        let mut admin = principal(Role::Admin, None, None);
        admin.restriction.name_prefixes = Some(vec!["team/".into()]);
        for action in [
            Action::ManageAccess,
            Action::ManagePromptTypes,
            Action::ReadAudit,
            Action::Import,
            Action::ReadMetrics,
        ] {
            assert!(
                matches!(
                    decide(&admin, action, None, DeploymentModel::WebApplication),
                    Err(Denial::Forbidden(_))
                ),
                "{action:?}"
            );
        }
        assert!(credential_reaches(&admin, "team/x", Scope::Global));
        assert!(!credential_reaches(&admin, "other/x", Scope::Global));
    }

    #[test]
    fn credential_restrictions_apply_even_to_admins() {
        let prompt = prompt(
            Scope::Global,
            Classification::Internal,
            PromptAccess::default(),
        );
        let mut admin = principal(Role::Admin, None, None);
        admin.restriction.name_prefixes = Some(vec!["other/".into()]);
        assert!(!is_visible(&admin, &prompt));
        admin.restriction.name_prefixes = Some(vec!["team/".into()]);
        assert!(is_visible(&admin, &prompt));
        admin.restriction.scopes = Some(vec![Scope::Agent]);
        assert!(!is_visible(&admin, &prompt));
        assert!(visibility_filter(&admin).is_some());
        assert!(visibility_filter(&principal(Role::Admin, None, None)).is_none());
    }
}
