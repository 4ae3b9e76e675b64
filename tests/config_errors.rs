//! Each malformed configuration under `tests/fixtures/config/` fails `validate` and `plan` with
//! exit 1, names the file and the problem, and writes nothing.

use std::path::Path;

use crate::support::run_in;

/// Runs `validate` and `plan` on one fixture and checks the error and that nothing was written.
fn check_bad_config(case: &str) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../tests/fixtures/config/{case}.yaml"));
    let text = std::fs::read_to_string(&fixture).unwrap();
    let expected = text
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{case}.yaml has no `# expect:` first line"))
        .trim()
        .to_owned();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mlops.yaml"), &text).unwrap();
    for command in ["validate", "plan"] {
        let run = run_in(dir.path(), &[command], &[]);
        run.expect_code(1);
        assert!(run.stderr.starts_with("error: "), "{case}: {}", run.stderr);
        assert!(run.stderr.contains("mlops.yaml"), "{case}: the error does not name the file:\n{}", run.stderr);
        assert!(run.stderr.contains(&expected), "{case}: expected `{expected}` in:\n{}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{case}: {}", run.stderr);
    }
    let mut entries: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect();
    entries.sort();
    assert_eq!(entries, ["mlops.yaml"], "{case}: a bad configuration wrote files");
}

macro_rules! bad_config_tests {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                check_bad_config(stringify!($case));
            }
        )*
    };
}

bad_config_tests!(
    admins_in_additional_groups,
    allow_revoke_additive,
    bad_env_var_name,
    bad_scope_name,
    default_links_missing_workspace,
    duplicate_key_in_workspace,
    duplicate_key_in_workspaces,
    duplicate_key_top_level,
    duplicate_link,
    empty_file,
    half_oauth_pair,
    host_with_path,
    host_with_user_info,
    http_host_not_loopback,
    lifetime_zero,
    literal_token_key,
    missing_version,
    no_auth,
    prefix_with_colon,
    registry_without_workspace_id,
    rotate_not_below_lifetime,
    self_link,
    syntax_error,
    two_auth_methods,
    unknown_key,
    unknown_link_workspace,
    version_2,
    workspace_id_not_numeric,
    wrong_type,
    wrong_type_workspaces,
);
