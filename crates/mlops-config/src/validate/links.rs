//! Checks of `links`, or the default links when the key is absent.

use serde_saphyr::Spanned;

use super::workspaces::Declared;
use super::{Report, position};
use crate::Link;
use crate::error::Position;
use crate::formats::{is_scope_name, is_secret_key, prefix_problem};
use crate::raw::{RawLink, RawWorkspaces, Text};

/// Default links as (reader, registry), the Terraform module's topology.
const DEFAULT_LINKS: [(&str, &str); 3] = [("dev", "staging"), ("dev", "prod"), ("staging", "prod")];

/// Suffixes of the three secrets that each link writes under its prefix.
const SECRET_KEY_SUFFIXES: [&str; 3] = ["-host", "-token", "-workspace-id"];

/// A link that passed its own checks, with positions for the checks across links.
struct Checked {
    link: Link,
    position: Option<Position>,
}

/// Checks the declared links, or builds the default ones, and returns the valid links.
pub(crate) fn resolve(
    report: &mut Report,
    links: Option<&Spanned<Vec<Spanned<RawLink>>>>,
    declared: &[Declared],
    workspaces: Option<&Spanned<RawWorkspaces>>,
) -> Vec<Link> {
    let Some(links) = links else {
        return default_links(report, declared, workspaces);
    };
    if links.value.is_empty() {
        report.add(
            position(links),
            "`links` is empty",
            "declare at least one `{ reader: <workspace>, registry: <workspace> }` entry, or remove \
             `links` to use the default dev -> staging, dev -> prod, staging -> prod",
        );
        return Vec::new();
    }

    let checked: Vec<Checked> = links
        .value
        .iter()
        .filter_map(|link| check_link(report, link, declared))
        .collect();
    check_duplicates(report, &checked);
    check_collisions(report, &checked);
    checked.into_iter().map(|checked| checked.link).collect()
}

/// Builds the default links, which need workspaces named `dev`, `staging` and `prod`.
fn default_links(
    report: &mut Report,
    declared: &[Declared],
    workspaces: Option<&Spanned<RawWorkspaces>>,
) -> Vec<Link> {
    if declared.is_empty() {
        // The missing workspaces are already reported; a second problem would add nothing.
        return Vec::new();
    }

    let missing: Vec<String> = ["dev", "staging", "prod"]
        .into_iter()
        .filter(|name| !declared.iter().any(|workspace| workspace.name == *name))
        .map(|name| format!("`{name}`"))
        .collect();
    if !missing.is_empty() {
        report.add(
            workspaces.and_then(position),
            format!(
                "`links` is not set, and the default links need workspaces named `dev`, `staging` and \
                 `prod`, but {} not declared",
                if missing.len() == 1 { format!("{} is", missing[0]) } else { format!("{} are", missing.join(" and ")) }
            ),
            "declare `links:` with one `{ reader: <workspace>, registry: <workspace> }` entry per link",
        );
        return Vec::new();
    }

    DEFAULT_LINKS
        .into_iter()
        .map(|(reader, registry)| Link {
            reader: reader.to_owned(),
            registry: registry.to_owned(),
            scope: default_scope(registry),
            prefix: registry.to_owned(),
        })
        .collect()
}

/// Returns the default secret scope of a link into this registry.
fn default_scope(registry: &str) -> String {
    format!("remote-mr-{registry}")
}

/// Checks one link on its own.
fn check_link(
    report: &mut Report,
    link: &Spanned<RawLink>,
    declared: &[Declared],
) -> Option<Checked> {
    let raw = &link.value;
    let mut valid = check_declared(report, &raw.reader, "reader", declared);
    valid &= check_declared(report, &raw.registry, "registry", declared);

    let reader = raw.reader.value.as_str();
    let registry = raw.registry.value.as_str();
    if reader == registry {
        report.add(
            position(link),
            format!("link `{reader}` -> `{registry}` reads from itself"),
            "a workspace cannot be its own remote registry, so set `registry` to another workspace",
        );
        valid = false;
    }

    // The default scope and prefix derive from a workspace name, which is already checked.
    let scope = raw
        .scope
        .as_ref()
        .map_or_else(|| default_scope(registry), |scope| scope.value.clone());
    valid &= raw
        .scope
        .as_ref()
        .is_none_or(|scope| check_scope(report, scope));
    let prefix = raw
        .prefix
        .as_ref()
        .map_or_else(|| registry.to_owned(), |prefix| prefix.value.clone());
    valid &= raw
        .prefix
        .as_ref()
        .is_none_or(|prefix| check_prefix(report, prefix));

    valid.then(|| Checked {
        link: Link {
            reader: reader.to_owned(),
            registry: registry.to_owned(),
            scope,
            prefix,
        },
        position: position(link),
    })
}

/// Requires the link end to name a declared workspace.
fn check_declared(report: &mut Report, name: &Text, role: &str, declared: &[Declared]) -> bool {
    if declared
        .iter()
        .any(|workspace| workspace.name == name.value)
    {
        return true;
    }

    let names: Vec<String> = declared
        .iter()
        .map(|workspace| format!("`{}`", workspace.name))
        .collect();
    let known = if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    };
    report.add(
        position(name),
        format!(
            "link {role} `{}` is not a declared workspace",
            name.value.escape_debug()
        ),
        format!("use a name declared under `workspaces` (declared: {known})"),
    );
    false
}

/// Checks a secret scope name written in the file.
fn check_scope(report: &mut Report, scope: &Text) -> bool {
    if is_scope_name(&scope.value) {
        return true;
    }

    report.add(
        position(scope),
        format!("invalid secret scope name `{}`", scope.value.escape_debug()),
        "use 1 to 128 characters: letters, digits, `_`, `.`, `@` or `-`",
    );
    false
}

/// Checks a secret key prefix written in the file and the three secret keys built from it.
///
/// The default prefix, a valid workspace name, always passes.
fn check_prefix(report: &mut Report, prefix: &Text) -> bool {
    let position = position(prefix);
    let prefix = prefix.value.as_str();
    if let Some(reason) = prefix_problem(prefix) {
        report.add(
            position,
            format!(
                "invalid secret key prefix `{}`: it {reason}",
                prefix.escape_debug()
            ),
            "MLflow reads the registry URI `databricks://<scope>:<prefix>` and rejects a prefix \
             with `/`, `:` or whitespace. Use at most 100 letters, digits, `_`, `.` or `-`",
        );
        return false;
    }

    let invalid_key = SECRET_KEY_SUFFIXES
        .iter()
        .map(|suffix| format!("{prefix}{suffix}"))
        .find(|key| !is_secret_key(key));
    let Some(key) = invalid_key else {
        return true;
    };

    report.add(
        position,
        format!("secret key prefix `{}` makes the invalid secret key `{}`", prefix.escape_debug(), key.escape_debug()),
        "secret keys allow letters, digits, `_`, `.` and `-`, at most 128 characters, so change `prefix`",
    );
    false
}

/// Rejects a second link with the same reader and registry.
fn check_duplicates(report: &mut Report, checked: &[Checked]) {
    for (index, current) in checked.iter().enumerate() {
        let first = checked[..index].iter().find(|other| {
            other.link.reader == current.link.reader && other.link.registry == current.link.registry
        });
        let Some(first) = first else { continue };

        report.add(
            current.position,
            format!(
                "duplicate link `{}` -> `{}`",
                current.link.reader, current.link.registry
            ),
            format!(
                "remove this entry, because the same link is declared {}",
                described_at(first.position)
            ),
        );
    }
}

/// Rejects two links into the same reader that would write the same secrets.
///
/// Scope names are case-insensitive in Databricks. Prefixes are compared the same way.
// NOTE: whether secret keys are case-sensitive is not confirmed. Comparing prefixes without case
// may reject a pair that would work, but it never lets one link overwrite another's secrets.
fn check_collisions(report: &mut Report, checked: &[Checked]) {
    for (index, current) in checked.iter().enumerate() {
        let first = checked[..index].iter().find(|other| {
            other.link.reader == current.link.reader
                && other.link.registry != current.link.registry
                && other.link.scope.eq_ignore_ascii_case(&current.link.scope)
                && other.link.prefix.eq_ignore_ascii_case(&current.link.prefix)
        });
        let Some(first) = first else { continue };

        report.add(
            current.position,
            format!(
                "links `{}` -> `{}` and `{}` -> `{}` both write secret scope `{}` with prefix `{}`",
                first.link.reader,
                first.link.registry,
                current.link.reader,
                current.link.registry,
                current.link.scope,
                current.link.prefix
            ),
            "give one of them another `scope` or `prefix`, so each keeps its own secrets",
        );
    }
}

/// Describes where an earlier entry is, for hints.
fn described_at(position: Option<Position>) -> String {
    match position {
        Some(position) => format!("at line {}", position.line),
        None => "earlier".to_owned(),
    }
}
