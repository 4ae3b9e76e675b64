//! Checks of the `workspaces` mapping: names, hosts, ids and credentials.

use serde_saphyr::Spanned;

use super::{Report, position};
use crate::error::Position;
use crate::formats::{
    is_digits, is_env_var_name, is_profile_name, is_uuid, is_workspace_name, looks_like_secret,
};
use crate::host::normalise_host;
use crate::raw::{RawWorkspace, RawWorkspaces, Text};
use crate::{Auth, Link, Workspace};

/// A declared workspace, kept even when its settings are invalid so that links to it do not
/// report a second, misleading problem.
#[derive(Debug)]
pub(crate) struct Declared {
    pub name: String,
    pub name_position: Option<Position>,
    /// True when `workspace_id` is written, valid or not.
    pub has_workspace_id: bool,
    /// The resolved workspace, `None` when any of its settings is invalid.
    pub resolved: Option<Workspace>,
}

/// Checks every workspace and returns them in declaration order.
pub(crate) fn declare(
    report: &mut Report,
    workspaces: Option<&Spanned<RawWorkspaces>>,
) -> Vec<Declared> {
    let entries = workspaces
        .map(|workspaces| workspaces.value.0.as_slice())
        .unwrap_or_default();
    if entries.is_empty() {
        report.add(
            workspaces.and_then(position),
            "no workspaces declared",
            "declare at least one workspace under `workspaces:`, such as \
             `dev: { host: https://dbc-1234abcd-5678.cloud.databricks.com, profile: dev }`",
        );
        return Vec::new();
    }

    let declared: Vec<Declared> = entries
        .iter()
        .map(|(name, raw)| declare_one(report, name, raw))
        .collect();
    check_unique_hosts_and_ids(report, &declared, entries);
    declared
}

/// Checks one workspace.
fn declare_one(report: &mut Report, name: &Text, raw: &RawWorkspace) -> Declared {
    let name_valid = is_workspace_name(&name.value);
    if !name_valid {
        report.add(
            position(name),
            format!("invalid workspace name `{}`", name.value.escape_debug()),
            "use 1 to 63 characters: a lowercase letter, then lowercase letters, digits, `_` or `-`",
        );
    }

    let host = check_host(report, &name.value, &raw.host);
    let workspace_id = raw
        .workspace_id
        .as_ref()
        .and_then(|id| check_workspace_id(report, &name.value, id));
    let auth = resolve_auth(report, name, raw);
    let application_id = raw
        .service_principal_application_id
        .as_ref()
        .map(|id| check_application_id(report, &name.value, id));

    // `Some(None)` is an application id that failed its check.
    let application_id_valid = !matches!(application_id, Some(None));
    let resolved = match (name_valid && application_id_valid, host, auth) {
        (true, Some(host), Some(auth)) => Some(Workspace {
            name: name.value.clone(),
            host,
            workspace_id,
            auth,
            service_principal_application_id: application_id.flatten(),
        }),
        _ => None,
    };

    Declared {
        name: name.value.clone(),
        name_position: position(name),
        has_workspace_id: raw.workspace_id.is_some(),
        resolved,
    }
}

/// Checks the host and returns its origin.
fn check_host(report: &mut Report, workspace: &str, host: &Text) -> Option<String> {
    match normalise_host(&host.value) {
        Ok(origin) => Some(origin),
        Err(problem) => {
            report.add(
                position(host),
                format!("workspace `{workspace}`: host {}", problem.message),
                problem.hint,
            );
            None
        }
    }
}

/// Checks that the workspace id is a non-negative 64-bit number written in digits.
fn check_workspace_id(report: &mut Report, workspace: &str, id: &Text) -> Option<String> {
    if is_digits(&id.value) && id.value.parse::<i64>().is_ok() {
        return Some(id.value.clone());
    }

    report.add(
        position(id),
        format!(
            "workspace `{workspace}`: `workspace_id` `{}` must contain digits only",
            id.value.escape_debug()
        ),
        "write the numeric workspace id, the `o=` value in the workspace URL, such as \
         `workspace_id: \"123456789\"`",
    );
    None
}

/// Checks the pinned service principal application id and returns it in lowercase.
fn check_application_id(report: &mut Report, workspace: &str, id: &Text) -> Option<String> {
    if is_uuid(&id.value) {
        return Some(id.value.to_ascii_lowercase());
    }

    report.add(
        position(id),
        format!(
            "workspace `{workspace}`: `service_principal_application_id` `{}` is not a UUID",
            id.value.escape_debug()
        ),
        "write the service principal's application id, such as `3f1b2c4d-1a2b-4c3d-8e9f-0a1b2c3d4e5f`, \
         or remove the key to find the service principal by display name",
    );
    None
}

/// Resolves the single way this workspace authenticates.
///
/// The `DEFAULT` profile is never implied: a workspace with no credential setting is an error.
fn resolve_auth(report: &mut Report, name: &Text, raw: &RawWorkspace) -> Option<Auth> {
    let workspace = name.value.as_str();
    let oauth_key = raw
        .client_id_env
        .as_ref()
        .or(raw.client_secret_env.as_ref());
    let methods: Vec<(&str, &Text)> = [
        ("profile", raw.profile.as_ref()),
        ("token_env", raw.token_env.as_ref()),
        ("client_id_env and client_secret_env", oauth_key),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.map(|value| (key, value)))
    .collect();

    let mut valid = check_method_count(report, name, &methods);
    valid &= check_oauth_pair(report, workspace, raw);
    valid &= raw
        .profile
        .as_ref()
        .is_none_or(|profile| check_profile(report, workspace, profile));
    for (key, value) in [
        ("token_env", &raw.token_env),
        ("client_id_env", &raw.client_id_env),
        ("client_secret_env", &raw.client_secret_env),
    ] {
        valid &= value
            .as_ref()
            .is_none_or(|value| check_env_var(report, workspace, key, value));
    }

    if !valid {
        return None;
    }
    build_auth(raw)
}

/// Requires exactly one way to authenticate.
fn check_method_count(report: &mut Report, name: &Text, methods: &[(&str, &Text)]) -> bool {
    match methods {
        [_] => true,
        [] => {
            report.add(
                position(name),
                format!("workspace `{}` has no credentials", name.value),
                "set one of `profile`, `token_env`, or `client_id_env` with `client_secret_env`. \
                 The `DEFAULT` profile is used only when written as `profile: DEFAULT`",
            );
            false
        }
        [(first, _), (second, value), ..] => {
            report.add(
                position(value),
                format!(
                    "workspace `{}` sets more than one way to authenticate: `{first}` and `{second}`",
                    name.value
                ),
                "keep exactly one of `profile`, `token_env`, or `client_id_env` with `client_secret_env`",
            );
            false
        }
    }
}

/// Requires `client_id_env` and `client_secret_env` together.
fn check_oauth_pair(report: &mut Report, workspace: &str, raw: &RawWorkspace) -> bool {
    let (present, missing, value) = match (&raw.client_id_env, &raw.client_secret_env) {
        (Some(value), None) => ("client_id_env", "client_secret_env", value),
        (None, Some(value)) => ("client_secret_env", "client_id_env", value),
        _ => return true,
    };

    report.add(
        position(value),
        format!("workspace `{workspace}` sets `{present}` without `{missing}`"),
        format!("OAuth machine-to-machine needs both variables: add `{missing}`"),
    );
    false
}

/// Checks a profile name. `DEFAULT` is accepted here because it is written explicitly.
fn check_profile(report: &mut Report, workspace: &str, profile: &Text) -> bool {
    if looks_like_secret(&profile.value) {
        report_secret_value(report, workspace, "profile", profile);
        return false;
    }
    if is_profile_name(&profile.value) {
        return true;
    }

    report.add(
        position(profile),
        format!(
            "workspace `{workspace}`: invalid profile name `{}`",
            profile.value.escape_debug()
        ),
        "write the name of a section of ~/.databrickscfg (or of $DATABRICKS_CONFIG_FILE), \
         without brackets or surrounding spaces",
    );
    false
}

/// Checks an environment variable name.
fn check_env_var(report: &mut Report, workspace: &str, key: &str, value: &Text) -> bool {
    if looks_like_secret(&value.value) {
        report_secret_value(report, workspace, key, value);
        return false;
    }
    if is_env_var_name(&value.value) {
        return true;
    }

    report.add(
        position(value),
        format!(
            "workspace `{workspace}`: `{key}` value `{}` is not a valid environment variable name",
            value.value.escape_debug()
        ),
        "use letters, digits and `_`, not starting with a digit, such as `STAGING_TOKEN`",
    );
    false
}

/// Reports a credential written where a name belongs, without repeating it.
fn report_secret_value(report: &mut Report, workspace: &str, key: &str, value: &Text) {
    report.add(
        position(value),
        format!("workspace `{workspace}`: `{key}` holds what looks like a secret, not a name"),
        format!(
            "credentials come from the environment or a profile: put the secret in an environment \
             variable or a profile and write its name in `{key}`. Revoke the exposed secret"
        ),
    );
}

/// Builds the credential setting once every check has passed.
fn build_auth(raw: &RawWorkspace) -> Option<Auth> {
    if let Some(profile) = &raw.profile {
        return Some(Auth::Profile(profile.value.clone()));
    }
    if let Some(token_env) = &raw.token_env {
        return Some(Auth::TokenEnv(token_env.value.clone()));
    }

    let client_id_env = raw.client_id_env.as_ref()?.value.clone();
    let client_secret_env = raw.client_secret_env.as_ref()?.value.clone();
    Some(Auth::OAuthEnv {
        client_id_env,
        client_secret_env,
    })
}

/// Rejects two workspaces with the same origin or the same workspace id.
fn check_unique_hosts_and_ids(
    report: &mut Report,
    declared: &[Declared],
    entries: &[(Text, RawWorkspace)],
) {
    let resolved = declared
        .iter()
        .zip(entries)
        .filter_map(|(workspace, (_, raw))| {
            workspace.resolved.as_ref().map(|resolved| (resolved, raw))
        });
    let resolved: Vec<_> = resolved.collect();

    for (index, (workspace, raw)) in resolved.iter().enumerate() {
        let earlier = &resolved[..index];
        if let Some((first, _)) = earlier
            .iter()
            .find(|(other, _)| other.host == workspace.host)
        {
            report.add(
                position(&raw.host),
                format!(
                    "workspaces `{}` and `{}` have the same host `{}`",
                    first.name, workspace.name, workspace.host
                ),
                "each workspace needs its own host, so remove or correct one of them",
            );
        }

        let Some(id) = &workspace.workspace_id else {
            continue;
        };
        if let Some((first, _)) = earlier
            .iter()
            .find(|(other, _)| other.workspace_id.as_ref() == Some(id))
        {
            report.add(
                raw.workspace_id.as_ref().and_then(position),
                format!(
                    "workspaces `{}` and `{}` have the same workspace_id `{id}`",
                    first.name, workspace.name
                ),
                "each workspace has its own numeric id, so correct one of them",
            );
        }
    }
}

/// Requires `workspace_id` on every workspace that is the registry of a link.
pub(crate) fn check_registry_ids(report: &mut Report, declared: &[Declared], links: &[Link]) {
    for workspace in declared
        .iter()
        .filter(|workspace| !workspace.has_workspace_id)
    {
        let Some(link) = links.iter().find(|link| link.registry == workspace.name) else {
            continue;
        };

        report.add(
            workspace.name_position,
            format!(
                "workspace `{}` is the registry of link `{}` -> `{}` but has no `workspace_id`",
                workspace.name, link.reader, link.registry
            ),
            "add `workspace_id: \"<digits>\"`, the `o=` value in the workspace URL. mlops checks it \
             against the workspace before any write and stores it in the reader's secret scope",
        );
    }
}
