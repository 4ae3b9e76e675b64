//! Character rules for names, identifiers and secret keys.

/// Maximum length of a secret scope name and of a secret key (Databricks Secrets API).
pub(crate) const MAX_SCOPE_OR_KEY_LENGTH: usize = 128;

/// Maximum length of a secret key prefix.
pub(crate) const MAX_PREFIX_LENGTH: usize = 100;

/// Entitlements that the SCIM API accepts for a service principal.
pub(crate) const ENTITLEMENTS: [&str; 5] = [
    "allow-cluster-create",
    "allow-instance-pool-create",
    "databricks-sql-access",
    "workspace-access",
    "workspace-consume",
];

/// Returns true for `[a-z][a-z0-9_-]{0,62}`.
pub(crate) fn is_workspace_name(name: &str) -> bool {
    let mut characters = name.chars();
    let Some(first) = characters.next() else {
        return false;
    };

    name.len() <= 63
        && first.is_ascii_lowercase()
        && characters.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Returns true for `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_env_var_name(name: &str) -> bool {
    let mut characters = name.chars();
    let Some(first) = characters.next() else {
        return false;
    };

    (first.is_ascii_alphabetic() || first == '_')
        && characters.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Returns true for `[A-Za-z0-9_.@-]{1,128}`, the secret scope names Databricks accepts.
pub(crate) fn is_scope_name(name: &str) -> bool {
    (1..=MAX_SCOPE_OR_KEY_LENGTH).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'))
}

/// Returns true for `[A-Za-z0-9_.-]{1,128}`, the secret keys Databricks accepts.
pub(crate) fn is_secret_key(key: &str) -> bool {
    (1..=MAX_SCOPE_OR_KEY_LENGTH).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Returns the first reason MLflow would reject this secret key prefix, if any.
///
/// MLflow reads the registry URI `databricks://<scope>:<prefix>` and rejects a prefix with `/`,
/// `:` or whitespace.
pub(crate) fn prefix_problem(prefix: &str) -> Option<String> {
    if prefix.is_empty() {
        return Some("is empty".to_owned());
    }
    if prefix.chars().count() > MAX_PREFIX_LENGTH {
        return Some(format!("is longer than {MAX_PREFIX_LENGTH} characters"));
    }

    let forbidden = prefix
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace())?;
    let description = if forbidden.is_whitespace() {
        "whitespace".to_owned()
    } else {
        format!("`{forbidden}`")
    };
    Some(format!("contains {description}"))
}

/// Returns true for a non-empty string of ASCII digits.
pub(crate) fn is_digits(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| c.is_ascii_digit())
}

/// Returns true for a UUID in the 8-4-4-4-12 hexadecimal form.
pub(crate) fn is_uuid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|group| group.len()).collect();

    lengths == [8, 4, 4, 4, 12]
        && groups
            .iter()
            .all(|group| group.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Returns true when the value looks like a Databricks secret rather than a name: personal
/// access tokens start with `dapi` (as `/token/create` returns them) and OAuth client secrets
/// with `dose` (the prefix that secret scanners match).
pub(crate) fn looks_like_secret(value: &str) -> bool {
    // NOTE: a heuristic on two known prefixes; a secret of any other shape is not caught.
    let body = value
        .strip_prefix("dapi")
        .or_else(|| value.strip_prefix("dose"));
    body.is_some_and(|body| {
        body.len() >= 16 && body.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

/// Returns true when a ini section name could hold this profile name.
pub(crate) fn is_profile_name(name: &str) -> bool {
    !name.is_empty()
        && name.trim() == name
        && !name.chars().any(|c| c == '[' || c == ']' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_name_rules() {
        assert!(is_workspace_name("dev"));
        assert!(is_workspace_name("qa-2_b"));
        assert!(is_workspace_name(&format!("a{}", "b".repeat(62))));
        assert!(!is_workspace_name(&format!("a{}", "b".repeat(63))));
        assert!(!is_workspace_name(""));
        assert!(!is_workspace_name("Dev"));
        assert!(!is_workspace_name("1dev"));
        assert!(!is_workspace_name("dev.prod"));
    }

    #[test]
    fn env_var_name_rules() {
        assert!(is_env_var_name("STAGING_TOKEN"));
        assert!(is_env_var_name("_x1"));
        assert!(!is_env_var_name("1X"));
        assert!(!is_env_var_name("MY-TOKEN"));
        assert!(!is_env_var_name(""));
    }

    #[test]
    fn scope_and_key_rules() {
        assert!(is_scope_name("remote-mr-prod"));
        assert!(is_scope_name("a.b@c_d-e"));
        assert!(!is_scope_name("a/b"));
        assert!(!is_scope_name(&"a".repeat(129)));
        assert!(is_secret_key("prod-workspace-id"));
        assert!(!is_secret_key("pr@d-host"));
    }

    #[test]
    fn prefix_rules() {
        assert_eq!(prefix_problem("prod"), None);
        assert_eq!(prefix_problem(""), Some("is empty".to_owned()));
        assert_eq!(prefix_problem("a:b"), Some("contains `:`".to_owned()));
        assert_eq!(prefix_problem("a/b"), Some("contains `/`".to_owned()));
        assert_eq!(
            prefix_problem("a b"),
            Some("contains whitespace".to_owned())
        );
        assert!(prefix_problem(&"a".repeat(101)).is_some());
        assert_eq!(prefix_problem(&"a".repeat(100)), None);
    }

    #[test]
    fn uuid_and_digits() {
        assert!(is_uuid("3f1b2c4d-1a2b-4c3d-8e9f-0a1b2c3d4e5f"));
        assert!(!is_uuid("3f1b2c4d1a2b4c3d8e9f0a1b2c3d4e5f"));
        assert!(!is_uuid("3f1b2c4d-1a2b-4c3d-8e9f-0a1b2c3d4e5g"));
        assert!(is_digits("123"));
        assert!(!is_digits(""));
        assert!(!is_digits("12a"));
    }

    #[test]
    fn secret_heuristic() {
        assert!(looks_like_secret("dapiEXAMPLE0EXAMPLE0EXAMPLE0EXAMPLE"));
        assert!(looks_like_secret("doseEXAMPLE0EXAMPLE0"));
        assert!(!looks_like_secret("DAPI_TOKEN"));
        assert!(!looks_like_secret("dapi"));
    }
}
