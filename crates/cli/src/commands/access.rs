//! `prompt user`, `prompt token` and `prompt audit`: users, API tokens and the audit log.

use std::str::FromStr;

use promptvault_api::{
    Role, Scope,
    access::{AuditQuery, CreateTokenRequest, CreateUserRequest},
};

use crate::{
    args::{
        AuditArgs, AuditCommand, KeysArgs, KeysCommand, TokenArgs, TokenCommand, UserArgs,
        UserCommand,
    },
    backend::Backend,
    error::{CliError, CliResult},
    output::{self, Table, or_dash, timestamp},
};

fn parse<T: FromStr>(flag: &str, value: &str) -> CliResult<T>
where
    T::Err: std::fmt::Display,
{
    T::from_str(value)
        .map_err(|error| CliError::invalid("invalid_argument", format!("{flag}: {error}")))
}

fn roles_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|role| role.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn user(backend: &dyn Backend, args: UserArgs, json: bool) -> CliResult<String> {
    match args.command {
        UserCommand::Add {
            email,
            first_name,
            last_name,
            roles,
            permissions,
        } => {
            let roles = roles
                .iter()
                .map(|role| parse::<Role>("--role", role))
                .collect::<CliResult<Vec<_>>>()?;
            let user = backend
                .create_user(CreateUserRequest {
                    email,
                    first_name,
                    last_name,
                    roles,
                    permissions,
                    ..Default::default()
                })
                .await?;
            if json {
                return output::json(&user);
            }
            Ok(format!(
                "added user {} ({})\n",
                user.id,
                roles_text(&user.roles)
            ))
        }
        UserCommand::List => {
            let users = backend.list_users().await?;
            if json {
                return output::json(&users);
            }
            let mut table = Table::new(&["ID", "EMAIL", "NAME", "ROLES", "PERMISSIONS", "CREATED"]);
            for user in &users {
                let name = [user.first_name.as_deref(), user.last_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                table.row(vec![
                    user.id.to_string(),
                    or_dash(user.email.as_deref()),
                    or_dash(Some(name.as_str()).filter(|name| !name.is_empty())),
                    roles_text(&user.roles),
                    or_dash(
                        Some(user.permissions.join(",").as_str()).filter(|text| !text.is_empty()),
                    ),
                    timestamp(user.created_at),
                ]);
            }
            Ok(table.render())
        }
        UserCommand::Delete { id } => {
            backend.delete_user(id).await?;
            if json {
                return output::json(&serde_json::json!({"id": id, "deleted": true}));
            }
            Ok(format!("deleted user {id} and their tokens\n"))
        }
    }
}

pub async fn token(backend: &dyn Backend, args: TokenArgs, json: bool) -> CliResult<String> {
    match args.command {
        TokenCommand::Create {
            name,
            role,
            user,
            agent,
            expires_in,
            scopes,
            prompt_prefixes,
        } => {
            let scopes = scopes
                .iter()
                .map(|scope| parse::<Scope>("--scope", scope))
                .collect::<CliResult<Vec<_>>>()?;
            let token = backend
                .create_token(CreateTokenRequest {
                    name,
                    role: parse::<Role>("--role", &role)?,
                    user_id: user,
                    agent_id: agent,
                    expires_in,
                    scopes: (!scopes.is_empty()).then_some(scopes),
                    prompt_names: (!prompt_prefixes.is_empty()).then_some(prompt_prefixes),
                })
                .await?;
            if json {
                return output::json(&token);
            }
            Ok(format!(
                "created token {} ({}); its secret, shown once:\n{}\n",
                token.id,
                token.role.as_str(),
                token.token.unwrap_or_default()
            ))
        }
        TokenCommand::List => {
            let tokens = backend.list_tokens().await?;
            if json {
                return output::json(&tokens);
            }
            let mut table = Table::new(&[
                "ID",
                "NAME",
                "PREFIX",
                "ROLE",
                "USER",
                "AGENT",
                "EXPIRES",
                "REVOKED",
                "LAST USED",
            ]);
            for token in &tokens {
                table.row(vec![
                    token.id.to_string(),
                    token.name.clone(),
                    token.token_prefix.clone(),
                    token.role.as_str().to_string(),
                    or_dash(token.user_id.map(|id| id.to_string()).as_deref()),
                    or_dash(token.agent_id.as_deref()),
                    token.expires_at.map_or_else(|| "-".to_string(), timestamp),
                    token.revoked_at.map_or_else(|| "-".to_string(), timestamp),
                    token
                        .last_used_at
                        .map_or_else(|| "-".to_string(), timestamp),
                ]);
            }
            Ok(table.render())
        }
        TokenCommand::Revoke { id } => {
            let token = backend.revoke_token(id).await?;
            if json {
                return output::json(&token);
            }
            Ok(format!("revoked token {id}\n"))
        }
    }
}

pub async fn audit(backend: &dyn Backend, args: AuditArgs, json: bool) -> CliResult<String> {
    if let Some(AuditCommand::Verify) = args.command {
        let report = backend.verify_audit().await?;
        if json {
            return output::json(&report);
        }
        if report.ok {
            return Ok(format!(
                "audit log intact: {} entries verified ({} purged earlier behind a signed checkpoint); head {} {}\n",
                report.checked,
                report.purged_before,
                report
                    .head_seq
                    .map_or_else(|| "-".to_string(), |seq| seq.to_string()),
                report.head_hash.as_deref().unwrap_or("-")
            ));
        }
        return Err(CliError::invalid(
            "audit_chain_broken",
            format!(
                "the audit log is broken at entry {}: {}",
                report.first_broken_seq.unwrap_or_default(),
                report.reason.unwrap_or_default()
            ),
        ));
    }
    let query = AuditQuery {
        actor: args.actor,
        actor_role: args
            .actor_role
            .as_deref()
            .map(|role| parse::<Role>("--actor-role", role))
            .transpose()?,
        prompt: args.prompt,
        action: args.action,
        outcome: args.outcome,
        scope: args
            .scope
            .as_deref()
            .map(|scope| parse::<Scope>("--scope", scope))
            .transpose()?,
        since: args.since,
        until: args.until,
        after: None,
        limit: args.limit,
    };
    let page = backend.list_audit(query).await?;
    if json {
        return output::json(&page);
    }
    let mut table = Table::new(&["SEQ", "AT", "ACTOR", "ROLE", "ACTION", "OUTCOME", "PROMPT"]);
    for entry in &page.entries {
        table.row(vec![
            entry.seq.to_string(),
            timestamp(entry.at),
            entry
                .actor_id
                .clone()
                .unwrap_or_else(|| entry.actor_kind.clone()),
            or_dash(entry.actor_role.map(|role| role.as_str())),
            entry.action.clone(),
            entry.outcome.clone(),
            or_dash(entry.prompt_name.as_deref()),
        ]);
    }
    Ok(table.render())
}

pub async fn keys(backend: &dyn Backend, args: KeysArgs, json: bool) -> CliResult<String> {
    match args.command {
        KeysCommand::Rotate => {
            let rotated = backend.rotate_keys().await?;
            if json {
                return output::json(&rotated);
            }
            Ok(format!(
                "re-encrypted {} version(s) under the current key\n",
                rotated.reencrypted
            ))
        }
    }
}
