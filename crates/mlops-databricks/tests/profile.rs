//! Reading `~/.databrickscfg` profiles from temporary files.

use std::path::PathBuf;

use mlops_databricks::ExposeSecret;
use mlops_databricks::profile::{ProfileError, config_file_path, load_profile_from};

const SAMPLE: &str = r#"# written by the Databricks CLI
; a comment in the other style
[__settings__]
default_profile = dev

[DEFAULT]
host = https://default.cloud.databricks.com
token = dapi-default-token

[dev]
host = "https://dbc-aaaa.cloud.databricks.com"   # inline comment
token = 'dapi-dev-token'
client_id =

[prod]
host=https://dbc-cccc.cloud.databricks.com
client_id = 0b9f1a52-1111-4222-8333-944455556666
client_secret = "dose-prod-secret"
"#;

/// Writes `content` to a file unique to this process and test.
fn write_config(test: &str, content: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!(
        "mlops-databricks-profile-{}-{test}",
        std::process::id()
    ));
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join("databrickscfg");
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn quoted_values_and_comments() {
    let path = write_config("quoted", SAMPLE);

    let dev = load_profile_from(&path, "dev").unwrap();
    let prod = load_profile_from(&path, "prod").unwrap();

    assert_eq!(
        dev.host.as_deref(),
        Some("https://dbc-aaaa.cloud.databricks.com")
    );
    assert_eq!(
        dev.token.as_ref().unwrap().expose_secret(),
        "dapi-dev-token"
    );
    assert_eq!(dev.client_id, None);
    assert!(dev.client_secret.is_none());
    assert_eq!(
        prod.host.as_deref(),
        Some("https://dbc-cccc.cloud.databricks.com")
    );
    assert_eq!(
        prod.client_id.as_deref(),
        Some("0b9f1a52-1111-4222-8333-944455556666")
    );
    assert_eq!(
        prod.client_secret.as_ref().unwrap().expose_secret(),
        "dose-prod-secret"
    );
    assert!(prod.token.is_none());
}

#[test]
fn missing_profile_lists_existing_ones() {
    let path = write_config("missing-profile", SAMPLE);

    let error = load_profile_from(&path, "staging").unwrap_err();

    let ProfileError::MissingProfile {
        profile, available, ..
    } = &error
    else {
        panic!("expected a missing profile error, got {error:?}");
    };
    assert_eq!(profile, "staging");
    assert_eq!(available, &["DEFAULT", "dev", "prod"]);
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains("profiles `DEFAULT`, `dev`, `prod`"),
        "{message}"
    );
    assert!(message.contains("add a `[staging]` section"), "{message}");
}

#[test]
fn settings_section_is_not_a_profile() {
    let path = write_config("settings", SAMPLE);

    let error = load_profile_from(&path, "__settings__").unwrap_err();

    assert!(
        matches!(error, ProfileError::MissingProfile { .. }),
        "{error:?}"
    );
}

#[test]
fn no_fallback_to_default_profile() {
    let path = write_config(
        "no-default",
        "[DEFAULT]\nhost = https://h\ntoken = dapi-x\n",
    );

    let error = load_profile_from(&path, "dev").unwrap_err();

    assert!(
        matches!(error, ProfileError::MissingProfile { .. }),
        "{error:?}"
    );
}

#[test]
fn empty_file_has_no_profiles() {
    let path = write_config("empty", "");

    let error = load_profile_from(&path, "dev").unwrap_err();

    assert!(
        error.to_string().contains("which has no profiles"),
        "{error}"
    );
}

#[test]
fn missing_file_names_path_and_fix() {
    let path = std::env::temp_dir().join(format!("mlops-databricks-absent-{}", std::process::id()));

    let error = load_profile_from(&path, "dev").unwrap_err();

    assert!(
        matches!(error, ProfileError::MissingFile { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("DATABRICKS_CONFIG_FILE"), "{message}");
    assert!(message.contains("`[dev]`"), "{message}");
}

#[test]
fn repeated_section_later_keys_win() {
    let path = write_config(
        "repeated",
        "[dev]\nhost = https://old\ntoken = dapi-a\n[dev]\nhost = https://new\n",
    );

    let dev = load_profile_from(&path, "dev").unwrap();

    assert_eq!(dev.host.as_deref(), Some("https://new"));
    assert_eq!(dev.token.as_ref().unwrap().expose_secret(), "dapi-a");
}

#[test]
fn profile_debug_hides_secrets() {
    let path = write_config("debug", SAMPLE);

    let prod = load_profile_from(&path, "prod").unwrap();
    let debug = format!("{prod:?}");

    assert!(!debug.contains("dose-prod-secret"), "{debug}");
}

#[test]
fn invalid_file_is_parse_error() {
    let path = write_config("invalid", "[dev\nhost = https://h\n");

    let error = load_profile_from(&path, "dev").unwrap_err();

    assert!(matches!(error, ProfileError::Parse { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

#[test]
fn config_path_prefers_override() {
    let home = Some(PathBuf::from("/home/u"));

    assert_eq!(
        config_file_path(Some("/etc/dbcfg".into()), home.clone()),
        Some(PathBuf::from("/etc/dbcfg"))
    );
    assert_eq!(
        config_file_path(Some("".into()), home.clone()),
        Some(PathBuf::from("/home/u/.databrickscfg"))
    );
    assert_eq!(
        config_file_path(None, home),
        Some(PathBuf::from("/home/u/.databrickscfg"))
    );
    assert_eq!(config_file_path(None, None), None);
}
