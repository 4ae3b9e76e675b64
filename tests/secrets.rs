//! Secret hygiene: every command runs at the highest verbosity (`-vvv` and `RUST_LOG=trace`),
//! and no token value that the emulator issued appears in the state, a saved plan, stdout or the
//! logs. The state file and saved plans are readable by their owner only.

use std::path::Path;

use crate::reliability::{FIRST_APPLY_TIME, LINKS, ROTATION_TIME, Setup};
use crate::support::{copy_example, run_in, token_shaped};

/// Everything the commands printed, and the files they wrote.
#[derive(Default)]
struct Evidence {
    printed: String,
    files: Vec<(String, String)>,
}

impl Evidence {
    /// Runs a command at the highest verbosity and keeps what it printed.
    fn run(&mut self, setup: &Setup, args: &[&str], expected_code: i32) {
        let mut verbose: Vec<&str> = args.to_vec();
        verbose.push("-vvv");
        let run = setup.run_with(&verbose, &[("RUST_LOG", "trace")]);
        run.expect_code(expected_code);
        self.printed.push_str(&format!("\n$ mlops {}\n{}\n{}", verbose.join(" "), run.stdout, run.stderr));
    }

    /// Keeps the text of a file that a command wrote.
    fn file(&mut self, path: &Path) {
        let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        self.files.push((path.display().to_string(), text));
    }

    /// Fails when any of `values` appears in what was printed or written.
    fn assert_free_of(&self, values: &[String]) {
        for value in values {
            assert!(!self.printed.contains(value.as_str()), "a token value was printed (by the command shown before it)");
            for (path, text) in &self.files {
                assert!(!text.contains(value.as_str()), "a token value is in {path}");
            }
        }
        assert_eq!(token_shaped(&self.printed), Vec::<String>::new(), "something token-shaped was printed");
        for (path, text) in &self.files {
            assert_eq!(token_shaped(text), Vec::<String>::new(), "something token-shaped is in {path}");
        }
    }
}

/// Returns the token values that the reader scopes hold now.
fn reader_tokens(setup: &Setup) -> Vec<String> {
    LINKS
        .iter()
        .map(|(reader, scope, _, prefix)| setup.admin(reader).secret(scope, &format!("{prefix}-token")).expect("reader token"))
        .collect()
}

/// Checks that only the owner may read or write a file.
#[cfg(unix)]
fn assert_owner_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
}

#[test]
fn no_token_value_in_output_state_or_plans() {
    let mut setup = Setup::start(FIRST_APPLY_TIME, "");
    let mut evidence = Evidence::default();
    let mut issued: Vec<String> = setup.served.workspaces.iter().map(|workspace| workspace.token.clone()).collect();

    evidence.run(&setup, &["validate"], 0);
    evidence.run(&setup, &["plan", "--format", "json"], 0);
    evidence.run(&setup, &["plan", "--format", "markdown", "--out", "first.plan"], 0);
    evidence.run(&setup, &["apply", "first.plan"], 0);
    issued.extend(reader_tokens(&setup));
    for args in [&["plan"][..], &["drift"], &["drift", "--format", "json"], &["drift", "--format", "markdown"], &["verify"], &["state", "list"]] {
        evidence.run(&setup, args, 0);
    }
    for address in ["staging/token", "prod/token", "dev/secret/remote-mr-prod/prod-token"] {
        evidence.run(&setup, &["state", "show", address], 0);
    }
    evidence.run(&setup, &["output", "--format", "json"], 0);
    evidence.run(&setup, &["output"], 0);

    setup.move_clock(ROTATION_TIME);
    evidence.run(&setup, &["drift"], 2);
    evidence.run(&setup, &["plan", "--out", "rotation.plan"], 0);
    evidence.file(&setup.path().join("rotation.plan"));
    #[cfg(unix)]
    assert_owner_only(&setup.path().join("rotation.plan"));
    evidence.run(&setup, &["apply", "rotation.plan"], 0);
    issued.extend(reader_tokens(&setup));
    evidence.run(&setup, &["verify"], 0);
    evidence.run(&setup, &["force-unlock", "00000000-0000-4000-8000-000000000000"], 1);
    evidence.run(&setup, &["destroy", "--auto-approve"], 0);

    evidence.file(&setup.path().join("first.plan"));
    evidence.file(&setup.state_path());
    #[cfg(unix)]
    {
        assert_owner_only(&setup.path().join("first.plan"));
        assert_owner_only(&setup.state_path());
    }
    assert!(evidence.printed.contains("TRACE"), "the commands did not log at trace level");
    assert!(evidence.printed.contains("DEBUG"), "the commands did not log at debug level");
    assert_eq!(issued.len(), 3 + 2 * LINKS.len());
    evidence.assert_free_of(&issued);
}

#[test]
fn embedded_run_prints_nothing_token_shaped() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());
    let mut printed = String::new();

    for args in [&["plan", "--out", "saved.plan"][..], &["apply", "--auto-approve"], &["drift"], &["verify"], &["output"]] {
        let mut verbose = args.to_vec();
        verbose.push("-vvv");
        let run = run_in(dir.path(), &verbose, &[("RUST_LOG", "trace")]);
        run.expect_code(0);
        printed.push_str(&run.stdout);
        printed.push_str(&run.stderr);
    }

    assert_eq!(token_shaped(&printed), Vec::<String>::new(), "something token-shaped was printed");
    for file in ["saved.plan", "state/mlops.state.json"] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert_eq!(token_shaped(&text), Vec::<String>::new(), "something token-shaped is in {file}");
        #[cfg(unix)]
        assert_owner_only(&dir.path().join(file));
    }
}
