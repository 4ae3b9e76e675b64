//! Tests of `load` and `parse` on whole files.

use std::path::{Path, PathBuf};

use crate::{Auth, Config, ConfigError, Position, TokenUsageMode, load, parse};

/// Folder of the configuration file in the tests; never read from disk.
const FOLDER: &str = "/srv/mlops";

/// The full example, with every key written.
const FULL_EXAMPLE: &str = r#"version: 1
workspaces:
  dev:     { host: https://dbc-aaaa.cloud.databricks.com, profile: dev }
  staging: { host: https://dbc-bbbb.cloud.databricks.com, workspace_id: "123456789", token_env: STAGING_TOKEN }
  prod:    { host: https://dbc-cccc.cloud.databricks.com, workspace_id: "987654321",
             client_id_env: PROD_CLIENT_ID, client_secret_env: PROD_CLIENT_SECRET,
             service_principal_application_id: "3F1B2C4D-1A2B-4C3D-8E9F-0A1B2C3D4E5F" }
additional_token_usage_groups: [users]
token_usage: { mode: additive }
tokens: { lifetime_days: 100, rotate_before_days: 30 }
names:
  group: mlops-service-principals
  service_principal: READ-only Model Registry Service Principal
  service_principal_entitlements: [allow-cluster-create]
  scope_readers: [users]
links:
  - { reader: dev, registry: staging }
  - { reader: dev, registry: prod }
  - { reader: staging, registry: prod }
state: state/mlops.state.json
emulator: { data: state/emulator.json }
"#;

/// The smallest valid file: three workspaces and nothing else.
const MINIMAL: &str = r#"version: 1
workspaces:
  dev: { host: https://dbc-aaaa.cloud.databricks.com, profile: dev }
  staging: { host: https://dbc-bbbb.cloud.databricks.com, workspace_id: "123456789", token_env: STAGING_TOKEN }
  prod: { host: https://dbc-cccc.cloud.databricks.com, workspace_id: "987654321", client_id_env: PROD_ID, client_secret_env: PROD_SECRET }
"#;

fn config_path() -> PathBuf {
    Path::new(FOLDER).join("mlops.yaml")
}

fn parse_text(text: &str) -> Result<Config, ConfigError> {
    parse(&config_path(), text)
}

fn parse_ok(text: &str) -> Config {
    match parse_text(text) {
        Ok(config) => config,
        Err(error) => panic!(
            "expected a valid configuration, got: {error}\nhint: {:?}",
            error.hint()
        ),
    }
}

fn parse_err(text: &str) -> ConfigError {
    match parse_text(text) {
        Ok(config) => panic!("expected an error, got {config:#?}"),
        Err(error) => error,
    }
}

/// Returns `MINIMAL` with extra top-level lines appended.
fn minimal_with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

/// Returns `MINIMAL` with one substring replaced, failing if it is not there.
fn minimal_replacing(from: &str, to: &str) -> String {
    assert!(MINIMAL.contains(from), "`{from}` is not in MINIMAL");
    MINIMAL.replacen(from, to, 1)
}

#[test]
fn full_example_resolves() {
    let config = parse_ok(FULL_EXAMPLE);

    assert_eq!(config.path, config_path());
    let names: Vec<&str> = config
        .workspaces
        .iter()
        .map(|workspace| workspace.name.as_str())
        .collect();
    assert_eq!(names, ["dev", "staging", "prod"]);

    let dev = config.workspace("dev").unwrap();
    assert_eq!(dev.host, "https://dbc-aaaa.cloud.databricks.com");
    assert_eq!(dev.workspace_id, None);
    assert_eq!(dev.auth, Auth::Profile("dev".to_owned()));

    let staging = config.workspace("staging").unwrap();
    assert_eq!(staging.workspace_id.as_deref(), Some("123456789"));
    assert_eq!(staging.auth, Auth::TokenEnv("STAGING_TOKEN".to_owned()));

    let prod = config.workspace("prod").unwrap();
    assert_eq!(
        prod.auth,
        Auth::OAuthEnv {
            client_id_env: "PROD_CLIENT_ID".to_owned(),
            client_secret_env: "PROD_CLIENT_SECRET".to_owned()
        }
    );
    assert_eq!(
        prod.service_principal_application_id.as_deref(),
        Some("3f1b2c4d-1a2b-4c3d-8e9f-0a1b2c3d4e5f")
    );

    assert_eq!(config.additional_token_usage_groups, ["users"]);
    assert_eq!(config.token_usage.mode, TokenUsageMode::Additive);
    assert!(config.token_usage.allow_revoke.is_empty());
    assert_eq!(config.tokens.lifetime_days, 100);
    assert_eq!(config.tokens.rotate_before_days, 30);
    assert_eq!(
        config.state_path,
        Path::new("/srv/mlops/state/mlops.state.json")
    );
    assert_eq!(
        config
            .emulator
            .as_ref()
            .map(|emulator| emulator.data.clone()),
        Some(PathBuf::from("/srv/mlops/state/emulator.json"))
    );

    let links: Vec<(&str, &str, &str, &str)> = config
        .links
        .iter()
        .map(|link| {
            (
                link.reader.as_str(),
                link.registry.as_str(),
                link.scope.as_str(),
                link.prefix.as_str(),
            )
        })
        .collect();
    assert_eq!(
        links,
        [
            ("dev", "staging", "remote-mr-staging", "staging"),
            ("dev", "prod", "remote-mr-prod", "prod"),
            ("staging", "prod", "remote-mr-prod", "prod"),
        ]
    );
}

#[test]
fn minimal_gets_defaults() {
    let config = parse_ok(MINIMAL);

    assert!(config.additional_token_usage_groups.is_empty());
    assert_eq!(config.token_usage.mode, TokenUsageMode::Additive);
    assert!(config.token_usage.allow_revoke.is_empty());
    assert_eq!(config.tokens.lifetime_days, 100);
    assert_eq!(config.tokens.rotate_before_days, 30);
    assert_eq!(config.names.group, "mlops-service-principals");
    assert_eq!(
        config.names.service_principal,
        "READ-only Model Registry Service Principal"
    );
    assert_eq!(
        config.names.service_principal_entitlements,
        ["allow-cluster-create"]
    );
    assert_eq!(config.names.scope_readers, ["users"]);
    assert_eq!(
        config.state_path,
        Path::new("/srv/mlops/state/mlops.state.json")
    );
    assert!(config.emulator.is_none());

    let links: Vec<(&str, &str, &str, &str)> = config
        .links
        .iter()
        .map(|link| {
            (
                link.reader.as_str(),
                link.registry.as_str(),
                link.scope.as_str(),
                link.prefix.as_str(),
            )
        })
        .collect();
    assert_eq!(
        links,
        [
            ("dev", "staging", "remote-mr-staging", "staging"),
            ("dev", "prod", "remote-mr-prod", "prod"),
            ("staging", "prod", "remote-mr-prod", "prod"),
        ]
    );
    let registries: Vec<&str> = config
        .registry_workspaces()
        .iter()
        .map(|workspace| workspace.name.as_str())
        .collect();
    assert_eq!(registries, ["staging", "prod"]);
}

#[test]
fn sha256_is_of_the_bytes() {
    let config = parse_ok(MINIMAL);
    let other = parse_ok(&format!("{MINIMAL}# a comment changes the digest\n"));

    // Digest of `MINIMAL`, computed with `sha256sum`.
    assert_eq!(
        config.sha256,
        "c647b5d058c249aebb58fffc7bc4415effa847c47f876e46bf47b257100c62fa"
    );
    assert_ne!(config.sha256, other.sha256);
}

#[test]
fn declaration_order_is_kept() {
    let text = r#"version: 1
workspaces:
  zeta: { host: https://z.example.com, workspace_id: "3", profile: z }
  alpha: { host: https://a.example.com, profile: a }
  mid: { host: https://m.example.com, workspace_id: "2", profile: m }
links:
  - { reader: alpha, registry: zeta }
  - { reader: alpha, registry: mid }
"#;
    let config = parse_ok(text);

    let names: Vec<&str> = config
        .workspaces
        .iter()
        .map(|workspace| workspace.name.as_str())
        .collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
    let registries: Vec<&str> = config
        .registry_workspaces()
        .iter()
        .map(|workspace| workspace.name.as_str())
        .collect();
    assert_eq!(registries, ["zeta", "mid"]);
    assert_eq!(config.links_from("alpha").count(), 2);
}

#[test]
fn relative_config_path_becomes_absolute() {
    let config = parse(Path::new("conf/mlops.yaml"), MINIMAL).unwrap();
    let current = std::env::current_dir().unwrap();

    assert!(config.path.is_absolute());
    assert_eq!(config.path, current.join("conf/mlops.yaml"));
    assert_eq!(
        config.state_path,
        current.join("conf/state/mlops.state.json")
    );
}

#[test]
fn absolute_state_path_is_kept() {
    let config = parse_ok(&minimal_with("state: /var/lib/mlops/state.json\n"));

    assert_eq!(config.state_path, Path::new("/var/lib/mlops/state.json"));
}

#[test]
fn emulator_key_without_value_enables_it() {
    let config = parse_ok(&minimal_with("emulator:\n"));

    let data = config.emulator.map(|emulator| emulator.data);
    assert_eq!(data, Some(PathBuf::from("/srv/mlops/state/emulator.json")));
}

#[test]
fn explicit_default_profile_is_accepted() {
    let config = parse_ok(&minimal_replacing("profile: dev", "profile: DEFAULT"));

    assert_eq!(
        config.workspace("dev").unwrap().auth,
        Auth::Profile("DEFAULT".to_owned())
    );
}

#[test]
fn hosts_are_normalised_to_origins() {
    let text = minimal_replacing(
        "host: https://dbc-aaaa.cloud.databricks.com,",
        "host: \"HTTPS://DBC-AAAA.Cloud.Databricks.com/\",",
    );
    let config = parse_ok(&text);

    assert_eq!(
        config.workspace("dev").unwrap().host,
        "https://dbc-aaaa.cloud.databricks.com"
    );
}

#[test]
fn loopback_http_is_accepted() {
    let text = minimal_replacing(
        "host: https://dbc-aaaa.cloud.databricks.com",
        "host: http://127.0.0.1:8080/",
    );
    let config = parse_ok(&text);

    assert_eq!(
        config.workspace("dev").unwrap().host,
        "http://127.0.0.1:8080"
    );
}

#[test]
fn unquoted_workspace_id_is_read_as_text() {
    let config = parse_ok(&minimal_replacing(
        "workspace_id: \"123456789\"",
        "workspace_id: 123456789",
    ));

    assert_eq!(
        config.workspace("staging").unwrap().workspace_id.as_deref(),
        Some("123456789")
    );
}

#[test]
fn same_scope_with_other_prefix_is_accepted() {
    let links = "links:\n  - { reader: dev, registry: staging, scope: shared, prefix: staging }\n  \
                 - { reader: dev, registry: prod, scope: shared, prefix: prod }\n";
    let config = parse_ok(&minimal_with(links));

    assert_eq!(config.links.len(), 2);
    assert!(config.links.iter().all(|link| link.scope == "shared"));
}

#[test]
fn authoritative_mode_accepts_allow_revoke() {
    let config = parse_ok(&minimal_with(
        "token_usage: { mode: authoritative, allow_revoke: [data-team] }\n",
    ));

    assert_eq!(config.token_usage.mode, TokenUsageMode::Authoritative);
    assert_eq!(config.token_usage.allow_revoke, ["data-team"]);
}

#[test]
fn load_reads_file_and_resolves_paths() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("mlops.yaml");
    std::fs::write(
        &path,
        minimal_with("emulator: { data: data/emulator.json }\n"),
    )
    .unwrap();

    let config = load(&path).unwrap();

    assert_eq!(config.path, path);
    assert_eq!(
        config.state_path,
        folder.path().join("state/mlops.state.json")
    );
    assert_eq!(
        config.emulator.unwrap().data,
        folder.path().join("data/emulator.json")
    );
}

#[test]
fn load_missing_file_fails() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("absent.yaml");

    let error = load(&path).unwrap_err();

    assert!(matches!(error, ConfigError::Read { .. }), "{error:?}");
    assert!(error.to_string().contains("absent.yaml"), "{error}");
}

#[test]
fn load_non_utf8_fails() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("mlops.yaml");
    std::fs::write(&path, b"version: 1\nworkspaces: \xff\n").unwrap();

    let error = load(&path).unwrap_err();

    assert!(matches!(error, ConfigError::NotUtf8 { .. }), "{error:?}");
}

#[test]
fn duplicate_top_level_key_fails() {
    let error = parse_err(&format!("version: 1\n{MINIMAL}"));

    let ConfigError::DuplicateKey { key, position, .. } = &error else {
        panic!("expected a duplicate key error, got {error:?}");
    };
    assert_eq!(key, "version");
    assert_eq!(*position, Some(Position { line: 2, column: 1 }));
    assert_eq!(
        error.to_string(),
        "/srv/mlops/mlops.yaml:2:1: duplicate key `version`"
    );
}

#[test]
fn duplicate_workspace_fails() {
    let text = minimal_with("");
    let text = text.replacen(
        "  staging:",
        "  dev: { host: https://dbc-dddd.cloud.databricks.com, profile: x }\n  staging:",
        1,
    );
    let error = parse_err(&text);

    let ConfigError::DuplicateKey { key, position, .. } = &error else {
        panic!("expected a duplicate key error, got {error:?}");
    };
    assert_eq!(key, "dev");
    assert_eq!(*position, Some(Position { line: 4, column: 3 }));
}

#[test]
fn duplicate_key_inside_workspace_fails() {
    let text = minimal_replacing("profile: dev", "profile: dev, profile: other");
    let error = parse_err(&text);

    assert!(
        matches!(&error, ConfigError::DuplicateKey { key, .. } if key == "profile"),
        "{error:?}"
    );
}

#[test]
fn duplicate_key_wins_over_earlier_type_error() {
    let text = "version: one\nversion: 1\n";
    let error = parse_err(text);

    assert!(
        matches!(&error, ConfigError::DuplicateKey { key, .. } if key == "version"),
        "{error:?}"
    );
}

#[test]
fn unknown_key_lists_allowed_keys() {
    let error = parse_err(&minimal_replacing("profile: dev", "profile: dev, hots: x"));

    let ConfigError::UnknownKey { key, position, .. } = &error else {
        panic!("expected an unknown key error, got {error:?}");
    };
    assert_eq!(key, "hots");
    assert_eq!(
        *position,
        Some(Position {
            line: 3,
            column: 69
        })
    );
    let hint = error.hint().unwrap();
    assert!(
        hint.contains("host, workspace_id, profile, token_env"),
        "{hint}"
    );
}

#[test]
fn credential_keys_get_a_pointed_hint() {
    let secret = "dapiEXAMPLE0EXAMPLE0EXAMPLE0EXAMPLE";
    for (key, replacement) in [
        ("token", "token_env"),
        ("password", "token_env"),
        ("client_secret", "client_secret_env"),
    ] {
        let error = parse_err(&minimal_replacing(
            "profile: dev",
            &format!("{key}: {secret}"),
        ));

        assert!(
            matches!(&error, ConfigError::UnknownKey { key: found, .. } if found == key),
            "{error:?}"
        );
        let hint = error.hint().unwrap();
        assert!(
            hint.starts_with("credentials come from the environment or a profile: use "),
            "{hint}"
        );
        assert!(hint.contains(replacement), "{hint}");
        assert!(!error.to_string().contains(secret), "{error}");
        assert!(!hint.contains(secret), "{hint}");
        assert!(!format!("{error:?}").contains(secret), "{error:?}");
    }
}

#[test]
fn secret_in_name_field_is_not_echoed() {
    let secret = "dapiEXAMPLE0EXAMPLE0EXAMPLE0EXAMPLE";
    let error = parse_err(&minimal_replacing(
        "token_env: STAGING_TOKEN",
        &format!("token_env: {secret}"),
    ));

    let text = format!("{error} {:?} {error:?}", error.hint());
    assert!(text.contains("looks like a secret"), "{text}");
    assert!(!text.contains(secret), "{text}");
}

#[test]
fn password_in_host_is_not_echoed() {
    let text = minimal_replacing("https://dbc-aaaa", "https://admin:hunter2@dbc-aaaa");
    let error = parse_err(&text);

    let text = format!("{error} {:?} {error:?}", error.hint());
    assert!(text.contains("user info"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn empty_files_fail() {
    for text in [
        "",
        "\n\n",
        "# only a comment\n  # and another\n",
        "\u{feff}",
    ] {
        let error = parse_err(text);

        assert!(
            matches!(error, ConfigError::Empty { .. }),
            "{text:?}: {error:?}"
        );
        assert!(error.to_string().ends_with("is empty"), "{error}");
        assert!(error.hint().is_some());
    }
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let error = parse_err(&minimal_with("links: [ { reader: dev\n"));

    assert!(matches!(error, ConfigError::Syntax { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with("/srv/mlops/mlops.yaml:6:10: "),
        "{message}"
    );
    assert!(message.contains("invalid YAML syntax"), "{message}");
    assert!(error.hint().unwrap().contains("indentation"));
}

#[test]
fn several_problems_are_reported_together() {
    let text = minimal_replacing("version: 1", "version: 2").replacen(
        "https://dbc-bbbb.cloud.databricks.com",
        "http://dbc-bbbb.cloud.databricks.com",
        1,
    ) + "tokens: { lifetime_days: 0 }\n";
    let error = parse_err(&text);

    let problems = error.problems();
    assert_eq!(problems.len(), 3, "{error}");
    let lines: Vec<u64> = problems
        .iter()
        .map(|problem| problem.position.unwrap().line)
        .collect();
    assert_eq!(lines, [1, 4, 6]);
    assert_eq!(error.hint(), None);
    let message = error.to_string();
    assert!(message.contains("has 3 problems"), "{message}");
    assert!(message.contains("unsupported version 2"), "{message}");
    assert!(message.contains("plain http"), "{message}");
    assert!(message.contains("lifetime_days"), "{message}");
    assert_eq!(message.matches("hint: ").count(), 3, "{message}");
}

/// One rejected configuration: the text, a substring of the message, and the expected position.
struct Case {
    name: &'static str,
    text: String,
    message: &'static str,
    position: Option<(u64, u64)>,
}

fn case(
    name: &'static str,
    text: impl Into<String>,
    message: &'static str,
    position: Option<(u64, u64)>,
) -> Case {
    Case {
        name,
        text: text.into(),
        message,
        position,
    }
}

/// Returns the position of a single-position error, or of the only semantic problem.
fn error_position(error: &ConfigError) -> Option<Position> {
    match error {
        ConfigError::Syntax { position, .. }
        | ConfigError::DuplicateKey { position, .. }
        | ConfigError::UnknownKey { position, .. }
        | ConfigError::Schema { position, .. } => *position,
        ConfigError::Invalid { problems, .. } => {
            problems.first().and_then(|problem| problem.position)
        }
        _ => None,
    }
}

fn rejected_cases() -> Vec<Case> {
    let links = |body: &str| minimal_with(&format!("links:\n{body}"));
    vec![
        // Types and structure.
        case(
            "workspaces as list",
            "version: 1\nworkspaces: [dev]\n",
            "invalid type: expected a mapping",
            Some((2, 13)),
        ),
        case(
            "lifetime as text",
            minimal_with("tokens: { lifetime_days: abc }\n"),
            "expected a whole number",
            Some((6, 26)),
        ),
        case(
            "lifetime as float",
            minimal_with("tokens: { lifetime_days: 1.5 }\n"),
            "expected a whole number",
            Some((6, 26)),
        ),
        case(
            "groups as string",
            minimal_with("additional_token_usage_groups: users\n"),
            "expected a list",
            Some((6, 32)),
        ),
        case(
            "host as list",
            minimal_replacing("host: https://dbc-aaaa.cloud.databricks.com", "host: [a]"),
            "expected a single value",
            Some((3, 16)),
        ),
        case(
            "missing host",
            minimal_replacing("host: https://dbc-aaaa.cloud.databricks.com, ", ""),
            "missing key `host`",
            Some((3, 10)),
        ),
        case(
            "unknown mode",
            minimal_with("token_usage: { mode: everything }\n"),
            "unknown value `everything`",
            Some((6, 22)),
        ),
        case(
            "link as string",
            links("  - dev\n"),
            "invalid type: expected a mapping",
            Some((7, 5)),
        ),
        case(
            "two documents",
            format!("{MINIMAL}---\nversion: 1\n"),
            "more than one YAML document",
            Some((7, 1)),
        ),
        case(
            "root scalar",
            "hello\n",
            "invalid type: expected a mapping",
            Some((1, 1)),
        ),
        case(
            "tab indentation",
            "version: 1\nworkspaces:\n\tdev: {}\n",
            "invalid YAML syntax",
            Some((3, 2)),
        ),
        case(
            "unclosed quote",
            minimal_replacing("profile: dev", "profile: \"dev"),
            "invalid YAML syntax",
            None,
        ),
        // Version and workspaces.
        case(
            "missing version",
            MINIMAL.replacen("version: 1\n", "", 1),
            "missing `version`",
            None,
        ),
        case(
            "version 2",
            minimal_replacing("version: 1", "version: 2"),
            "unsupported version 2",
            Some((1, 10)),
        ),
        case(
            "version 0",
            minimal_replacing("version: 1", "version: 0"),
            "unsupported version 0",
            Some((1, 10)),
        ),
        case(
            "no workspaces key",
            "version: 1\n",
            "no workspaces declared",
            None,
        ),
        case(
            "empty workspaces",
            "version: 1\nworkspaces: {}\n",
            "no workspaces declared",
            Some((2, 13)),
        ),
        case(
            "uppercase name",
            minimal_replacing("  dev:", "  Dev:") + "links: [{ reader: Dev, registry: prod }]\n",
            "invalid workspace name `Dev`",
            Some((3, 3)),
        ),
        case(
            "name with digit first",
            minimal_with("links: [{ reader: 1dev, registry: prod }]\n")
                .replacen("  dev:", "  1dev:", 1),
            "invalid workspace name `1dev`",
            Some((3, 3)),
        ),
        case(
            "duplicate host",
            minimal_replacing("dbc-bbbb", "dbc-aaaa"),
            "have the same host",
            Some((4, 20)),
        ),
        case(
            "duplicate workspace_id",
            minimal_replacing("987654321", "123456789"),
            "have the same workspace_id `123456789`",
            Some((5, 70)),
        ),
        // Hosts.
        case(
            "http host",
            minimal_replacing("https://dbc-aaaa", "http://dbc-aaaa"),
            "uses plain http",
            Some((3, 16)),
        ),
        case(
            "host with path",
            minimal_replacing("databricks.com, profile", "databricks.com/api, profile"),
            "has the path `/api`",
            Some((3, 16)),
        ),
        case(
            "host with query",
            minimal_replacing("databricks.com, profile", "\"databricks.com?o=1\", profile")
                .replacen("https://dbc-aaaa.cloud.\"", "\"https://dbc-aaaa.cloud.", 1),
            "query or a fragment",
            Some((3, 16)),
        ),
        case(
            "host without scheme",
            minimal_replacing("https://dbc-aaaa", "dbc-aaaa"),
            "has no scheme",
            Some((3, 16)),
        ),
        // Workspace ids and service principal pin.
        case(
            "registry without id",
            minimal_replacing("workspace_id: \"987654321\", ", ""),
            "is the registry of link `dev` -> `prod` but has no `workspace_id`",
            Some((5, 3)),
        ),
        case(
            "non-numeric id",
            minimal_replacing("\"987654321\"", "\"98765-4321\""),
            "`workspace_id` `98765-4321` must contain digits only",
            Some((5, 70)),
        ),
        case(
            "id out of range",
            minimal_replacing("\"987654321\"", "\"99999999999999999999\""),
            "must contain digits only",
            Some((5, 70)),
        ),
        case(
            "application id not uuid",
            minimal_replacing(
                "profile: dev",
                "profile: dev, service_principal_application_id: abc",
            ),
            "is not a UUID",
            Some((3, 103)),
        ),
        // Credentials.
        case(
            "two auth methods",
            minimal_replacing("profile: dev", "profile: dev, token_env: DEV_TOKEN"),
            "more than one way to authenticate: `profile` and `token_env`",
            Some((3, 80)),
        ),
        case(
            "no auth",
            minimal_replacing(", profile: dev", ""),
            "workspace `dev` has no credentials",
            Some((3, 3)),
        ),
        case(
            "client id alone",
            minimal_replacing(", client_secret_env: PROD_SECRET", ""),
            "sets `client_id_env` without `client_secret_env`",
            Some((5, 98)),
        ),
        case(
            "client secret alone",
            minimal_replacing("client_id_env: PROD_ID, ", ""),
            "sets `client_secret_env` without `client_id_env`",
            Some((5, 102)),
        ),
        case(
            "bad env var",
            minimal_replacing("STAGING_TOKEN", "STAGING-TOKEN"),
            "`token_env` value `STAGING-TOKEN` is not a valid environment variable name",
            Some((4, 97)),
        ),
        case(
            "env var with digit first",
            minimal_replacing("PROD_ID", "1PROD"),
            "`client_id_env` value `1PROD` is not a valid environment variable name",
            None,
        ),
        case(
            "bad profile",
            minimal_replacing("profile: dev", "profile: \"[dev]\""),
            "invalid profile name `[dev]`",
            Some((3, 64)),
        ),
        // Token permissions and groups.
        case(
            "admins in groups",
            minimal_with("additional_token_usage_groups: [users, admins]\n"),
            "`additional_token_usage_groups` must not list `admins`",
            Some((6, 40)),
        ),
        case(
            "duplicate group",
            minimal_with("additional_token_usage_groups: [users, users]\n"),
            "lists `users` twice",
            Some((6, 40)),
        ),
        case(
            "empty group",
            minimal_with("additional_token_usage_groups: [\"\"]\n"),
            "empty or starts or ends with whitespace",
            Some((6, 33)),
        ),
        case(
            "service principal group in groups",
            minimal_with("additional_token_usage_groups: [mlops-service-principals]\n"),
            "the service principal group",
            Some((6, 33)),
        ),
        case(
            "allow_revoke in additive mode",
            minimal_with("token_usage: { allow_revoke: [data-team] }\n"),
            "`token_usage.allow_revoke` is set but `token_usage.mode` is `additive`",
            Some((6, 30)),
        ),
        case(
            "admins in allow_revoke",
            minimal_with("token_usage: { mode: authoritative, allow_revoke: [Admins] }\n"),
            "`token_usage.allow_revoke` must not list `admins`",
            Some((6, 52)),
        ),
        case(
            "duplicate allow_revoke",
            minimal_with("token_usage: { mode: authoritative, allow_revoke: [a, a] }\n"),
            "lists `a` twice",
            Some((6, 55)),
        ),
        // Token lifetime.
        case(
            "lifetime 0",
            minimal_with("tokens: { lifetime_days: 0 }\n"),
            "`tokens.lifetime_days` is 0: it must be between 1 and 730",
            Some((6, 26)),
        ),
        case(
            "lifetime 731",
            minimal_with("tokens: { lifetime_days: 731 }\n"),
            "`tokens.lifetime_days` is 731",
            Some((6, 26)),
        ),
        case(
            "negative lifetime",
            minimal_with("tokens: { lifetime_days: -5 }\n"),
            "`tokens.lifetime_days` is -5",
            Some((6, 26)),
        ),
        case(
            "rotate equals lifetime",
            minimal_with("tokens: { lifetime_days: 30, rotate_before_days: 30 }\n"),
            "`tokens.rotate_before_days` (30) must be less than `tokens.lifetime_days` (30)",
            Some((6, 50)),
        ),
        case(
            "default rotate above lifetime",
            minimal_with("tokens: { lifetime_days: 20 }\n"),
            "(30, the default) must be less than `tokens.lifetime_days` (20)",
            Some((6, 26)),
        ),
        case(
            "negative rotate",
            minimal_with("tokens: { rotate_before_days: -1 }\n"),
            "`tokens.rotate_before_days` is -1: it must be 0 or more",
            Some((6, 31)),
        ),
        // Names.
        case(
            "empty group name",
            minimal_with("names: { group: \"\" }\n"),
            "`names.group` is empty",
            Some((6, 17)),
        ),
        case(
            "blank service principal",
            minimal_with("names: { service_principal: \"  \" }\n"),
            "`names.service_principal` is empty",
            Some((6, 29)),
        ),
        case(
            "unknown entitlement",
            minimal_with("names: { service_principal_entitlements: [cluster-create] }\n"),
            "unknown entitlement `cluster-create`",
            Some((6, 43)),
        ),
        case(
            "duplicate scope reader",
            minimal_with("names: { scope_readers: [users, users] }\n"),
            "`names.scope_readers` lists `users` twice",
            Some((6, 33)),
        ),
        // Links.
        case(
            "default links need names",
            "version: 1\nworkspaces:\n  dev: { host: https://a.example.com, profile: dev }\n  prod: { host: https://b.example.com, workspace_id: \"1\", profile: prod }\n",
            "`staging` is not declared",
            Some((3, 3)),
        ),
        case(
            "empty links",
            links("  []\n").replace("links:\n  []", "links: []"),
            "`links` is empty",
            Some((6, 8)),
        ),
        case(
            "unknown reader",
            links("  - { reader: qa, registry: prod }\n"),
            "link reader `qa` is not a declared workspace",
            Some((7, 15)),
        ),
        case(
            "unknown registry",
            links("  - { reader: dev, registry: stage }\n"),
            "link registry `stage` is not a declared workspace",
            Some((7, 30)),
        ),
        case(
            "self link",
            links("  - { reader: dev, registry: dev }\n"),
            "link `dev` -> `dev` reads from itself",
            Some((7, 5)),
        ),
        case(
            "duplicate link",
            links(
                "  - { reader: dev, registry: prod }\n  - { reader: dev, registry: prod, prefix: p2 }\n",
            ),
            "duplicate link `dev` -> `prod`",
            Some((8, 5)),
        ),
        case(
            "same scope and prefix",
            links(
                "  - { reader: dev, registry: staging, scope: shared, prefix: mr }\n  - { reader: dev, registry: prod, scope: SHARED, prefix: mr }\n",
            ),
            "both write secret scope `SHARED` with prefix `mr`",
            Some((8, 5)),
        ),
        case(
            "bad scope name",
            links("  - { reader: dev, registry: prod, scope: \"remote/prod\" }\n"),
            "invalid secret scope name `remote/prod`",
            Some((7, 43)),
        ),
        case(
            "long scope name",
            links(&format!(
                "  - {{ reader: dev, registry: prod, scope: {} }}\n",
                "s".repeat(129)
            )),
            "invalid secret scope name",
            Some((7, 43)),
        ),
        case(
            "prefix with colon",
            links("  - { reader: dev, registry: prod, prefix: \"prod:mr\" }\n"),
            "invalid secret key prefix `prod:mr`: it contains `:`",
            Some((7, 44)),
        ),
        case(
            "prefix with slash",
            links("  - { reader: dev, registry: prod, prefix: prod/mr }\n"),
            "it contains `/`",
            Some((7, 44)),
        ),
        case(
            "prefix with space",
            links("  - { reader: dev, registry: prod, prefix: \"prod mr\" }\n"),
            "it contains whitespace",
            Some((7, 44)),
        ),
        case(
            "empty prefix",
            links("  - { reader: dev, registry: prod, prefix: \"\" }\n"),
            "it is empty",
            Some((7, 44)),
        ),
        case(
            "long prefix",
            links(&format!(
                "  - {{ reader: dev, registry: prod, prefix: {} }}\n",
                "p".repeat(101)
            )),
            "is longer than 100 characters",
            Some((7, 44)),
        ),
        case(
            "prefix makes bad key",
            links("  - { reader: dev, registry: prod, prefix: \"prod@mr\" }\n"),
            "makes the invalid secret key `prod@mr-host`",
            Some((7, 44)),
        ),
        // Paths.
        case(
            "empty state",
            minimal_with("state: \"\"\n"),
            "`state` is empty",
            Some((6, 8)),
        ),
        case(
            "empty emulator data",
            minimal_with("emulator: { data: \"\" }\n"),
            "`emulator.data` is empty",
            Some((6, 19)),
        ),
    ]
}

#[test]
fn rejected_configurations() {
    let mut failures = Vec::new();
    for case in rejected_cases() {
        failures.extend(
            check_case(&case)
                .err()
                .map(|failure| format!("{}: {failure}", case.name)),
        );
    }

    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Checks one rejected case and describes the first mismatch.
fn check_case(case: &Case) -> Result<(), String> {
    let error = parse_text(&case.text).err().ok_or("expected an error")?;
    let message = error.to_string();

    if !message.contains(case.message) {
        return Err(format!("`{message}` lacks `{}`", case.message));
    }
    if !message.contains("/srv/mlops/mlops.yaml") {
        return Err(format!("`{message}` does not name the file"));
    }
    if error.problems().len() > 1 {
        return Err(format!("expected one problem: `{message}`"));
    }
    if error.hint().is_none() {
        return Err(format!("no hint for `{message}`"));
    }
    let Some((line, column)) = case.position else {
        return Ok(());
    };
    if error_position(&error) != Some(Position { line, column }) {
        return Err(format!("`{message}` is not at {line}:{column}"));
    }
    if !message.contains(&format!(":{line}:{column}: ")) {
        return Err(format!("`{message}` does not show {line}:{column}"));
    }
    Ok(())
}

/// Folder of the malformed configuration fixtures shared with the binary's tests.
fn fixtures_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/config")
}

#[test]
fn fixtures_fail_with_expected_message() {
    let mut count = 0;
    for entry in std::fs::read_dir(fixtures_folder()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|extension| extension != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: first line is not `# expect: ...`", path.display()));

        let error = load(&path).expect_err(&path.display().to_string());

        assert!(
            error.to_string().contains(expected),
            "{}: `{error}` lacks `{expected}`",
            path.display()
        );
        assert!(
            error.problems().len() <= 1,
            "{}: expected one problem: `{error}`",
            path.display()
        );
        count += 1;
    }
    assert!(count >= 24, "only {count} fixtures");
}
