//! Hostile input: damaged or inconsistent state files (`tests/fixtures/state/`), damaged, edited
//! or stale saved plans (`tests/fixtures/plan/`), and malformed responses from a workspace (a
//! small server in this file). Every case exits 1 with an error that names the input and a hint with
//! the fix, panics nowhere and changes no file. Bad configurations are in `config_errors.rs`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::support::{Run, copy_example, run_in};

/// A token-shaped string written into a state fixture at run time, so that no token-shaped text
/// is committed to the repository.
fn token_shaped_value() -> String {
    format!("dapi{}", "0123456789abcdef".repeat(2))
}

/// Returns the text of a fixture under `tests/fixtures/`.
fn fixture(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Returns every file under `dir` with its content.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let content = std::fs::read(&path).unwrap();
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), content);
            }
        }
    }
    files
}

/// Checks one failed run: exit 1, an `error:` naming `input`, a hint, every expected text, and
/// no panic.
fn check_failure(run: &Run, case: &str, input: &str, expected: &[&str]) {
    assert_eq!(run.code, 1, "{case}: expected exit 1\n--- stdout\n{}\n--- stderr\n{}", run.stdout, run.stderr);
    assert!(run.stderr.starts_with("error: "), "{case}: {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{case}: {}", run.stderr);
    assert!(run.stderr.contains(input), "{case}: the error does not name `{input}`:\n{}", run.stderr);
    assert!(run.stderr.contains("\nhint: "), "{case}: the error gives no fix:\n{}", run.stderr);
    for text in expected {
        assert!(run.stderr.contains(text), "{case}: expected `{text}` in:\n{}", run.stderr);
    }
}

/// Runs plan, apply and drift on the example configuration with a state fixture, and checks each
/// failure and that no file changed.
fn check_bad_state(case: &str, expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());
    let text = fixture(&format!("state/{case}.json")).replace("@TOKEN_SHAPED@", &token_shaped_value());
    std::fs::create_dir(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/mlops.state.json"), &text).unwrap();
    let before = snapshot(dir.path());

    for args in [&["plan"][..], &["apply", "--auto-approve"], &["drift"]] {
        let run = run_in(dir.path(), args, &[]);
        check_failure(&run, &format!("{case} ({})", args[0]), "mlops.state.json", expected);
        assert!(!run.stderr.contains(&token_shaped_value()), "{case}: the error repeats a token-shaped value");
    }
    assert!(snapshot(dir.path()) == before, "{case}: a file changed");
}

/// Applies a saved-plan fixture against the matching state fixture, and checks the failure and
/// that no file changed.
fn check_bad_plan(case: &str, expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let config = copy_example(dir.path());
    let config_sha256 = hex_sha256(&std::fs::read(config).unwrap());
    std::fs::create_dir(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/mlops.state.json"), fixture("plan/state.json")).unwrap();
    let plan = fixture(&format!("plan/{case}.json")).replace("@CONFIG_SHA256@", &config_sha256);
    std::fs::write(dir.path().join("saved.plan"), plan).unwrap();
    let before = snapshot(dir.path());

    let run = run_in(dir.path(), &["apply", "saved.plan"], &[]);

    check_failure(&run, case, "saved.plan", expected);
    assert!(run.stderr.contains("mlops plan --out"), "{case}: the hint does not say how to make a new plan:\n{}", run.stderr);
    assert!(snapshot(dir.path()) == before, "{case}: a file changed");
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

macro_rules! bad_state_tests {
    ($($case:ident: [$($expected:expr),* $(,)?]),* $(,)?) => {
        mod state {
            $(
                #[test]
                fn $case() {
                    super::check_bad_state(stringify!($case), &[$($expected),*]);
                }
            )*
        }
    };
}

macro_rules! bad_plan_tests {
    ($($case:ident: [$($expected:expr),* $(,)?]),* $(,)?) => {
        mod saved_plan {
            $(
                #[test]
                fn $case() {
                    super::check_bad_plan(stringify!($case), &[$($expected),*]);
                }
            )*
        }
    };
}

bad_state_tests!(
    truncated: ["is not valid JSON", "ends early"],
    empty: ["is not valid JSON"],
    merge_conflict: ["is not valid JSON", "conflict markers"],
    unknown_version: ["format version 2", "upgrade mlops"],
    version_zero: ["format version 0"],
    lineage_not_uuid: ["lineage `my-project` is not a UUID"],
    unknown_field: ["unknown field `outputs`"],
    serial_as_text: ["does not match the state format"],
    duplicate_address: ["`staging/group` appears more than once"],
    unsorted: ["must be sorted by address"],
    token_value: ["looks like a Databricks token", "revoke"],
    secret_attribute: ["`value`, a field that holds a secret value"],
    remote_id_without_intent: ["empty `remote_id`"],
    intent_time_invalid: ["`yesterday`, which is not an RFC 3339 timestamp"],
    workspace_id_not_numeric: ["`staging-ws`, which is not all decimal digits"],
    unknown_kind: ["kind `cluster` is not a kind that mlops manages"],
    unknown_workspace: ["workspace `qa` is not in the configuration"],
    address_kind_mismatch: ["`staging/group`", "does not match its workspace"],
    other_workspace_id: ["recorded in workspace id 111111111", "is now 123456789"],
);

bad_plan_tests!(
    not_json: ["is not valid JSON"],
    truncated: ["is not valid JSON"],
    format_version_2: ["format version 2"],
    format_version_missing: ["format version (missing)"],
    unknown_field: ["is damaged", "approved_by"],
    unknown_action: ["is damaged", "obliterate"],
    unknown_kind: ["is damaged", "cluster"],
    other_lineage: ["state lineage 0d6f3c2e-8a41-4b7e-9c55-7f1e2d3a4b5c"],
    state_went_back: ["serial 9", "serial 7"],
    stale: ["is stale", "serial 5"],
    config_changed: ["changed since the saved plan"],
    destroy_plan: ["not an apply plan"],
);

/// What the hostile workspace sends back.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// `Me` returns 200 with a body that is not JSON.
    MeInvalidJson,
    /// `Me` returns 200 with an HTML login page, as a proxy in front of the workspace would.
    MeHtmlPage,
    /// `Me` returns 200 with JSON labelled `text/plain`.
    MeWrongContentType,
    /// `Me` returns no `userName`.
    MeMissingField,
    /// `Me` comes without `X-Databricks-Org-Id`.
    MeMissingOrgId,
    /// `Me` comes with another workspace id.
    MeOtherWorkspace,
    /// `Me` announces a body larger than the client reads.
    MeOversizedBody,
    /// `Me` returns 502 with an HTML error page.
    MeHtmlErrorPage,
    /// `Me` is fine, and every list returns objects without their ids.
    ListsMissingIds,
}

/// Serves one workspace that answers every request as `answer` says, on a loopback port, and
/// returns its base URL. The thread ends with the test process.
fn serve_hostile(workspace_id: &'static str, answer: Answer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || answer_request(stream, workspace_id, answer));
        }
    });
    base
}

/// Reads one request and writes the hostile response.
fn answer_request(mut stream: TcpStream, workspace_id: &str, answer: Answer) {
    let Some(path) = read_request_path(&stream) else { return };
    let is_me = path.starts_with("/api/2.0/preview/scim/v2/Me");
    let me_json = r#"{"id":"100","userName":"admin@example.com"}"#;
    let org = format!("X-Databricks-Org-Id: {workspace_id}\r\n");

    let (status, headers, body): (&str, String, String) = match (answer, is_me) {
        (Answer::MeInvalidJson, true) => ("200 OK", format!("{org}Content-Type: application/json\r\n"), "{\"id\": 100, \"userName\": ".to_owned()),
        (Answer::MeHtmlPage, true) => ("200 OK", format!("{org}Content-Type: text/html\r\n"), "<html><body><h1>Sign in to continue</h1></body></html>".to_owned()),
        (Answer::MeWrongContentType, true) => ("200 OK", format!("{org}Content-Type: text/plain\r\n"), me_json.to_owned()),
        (Answer::MeMissingField, true) => ("200 OK", format!("{org}Content-Type: application/json\r\n"), r#"{"id":"100"}"#.to_owned()),
        (Answer::MeMissingOrgId, true) => ("200 OK", "Content-Type: application/json\r\n".to_owned(), me_json.to_owned()),
        (Answer::MeOtherWorkspace, true) => ("200 OK", "X-Databricks-Org-Id: 1\r\nContent-Type: application/json\r\n".to_owned(), me_json.to_owned()),
        (Answer::MeOversizedBody, true) => {
            let head = format!("HTTP/1.1 200 OK\r\n{org}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", 64 * 1024 * 1024);
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&[b' '; 4096]);
            return;
        }
        (Answer::MeHtmlErrorPage, true) => ("502 Bad Gateway", "Content-Type: text/html\r\n".to_owned(), "<html><body><pre>upstream connect error</pre></body></html>".to_owned()),
        (_, true) => ("200 OK", format!("{org}Content-Type: application/json\r\n"), me_json.to_owned()),
        (Answer::ListsMissingIds, false) => (
            "200 OK",
            format!("{org}Content-Type: application/json\r\n"),
            r#"{"Resources":[{"displayName":"mlops-service-principals"}],"token_infos":[{"comment":"mlops:prod/token"}],"scopes":[{"backend_type":"DATABRICKS"}],"secrets":[{"last_updated_timestamp":1}],"items":[{"permission":"READ"}],"access_control_list":[{"all_permissions":[]}]}"#.to_owned(),
        ),
        (_, false) => ("200 OK", format!("{org}Content-Type: application/json\r\n"), "{}".to_owned()),
    };
    let response = format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let _ = stream.write_all(response.as_bytes());
}

/// Reads a request head and its body, and returns the request path.
fn read_request_path(stream: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let path = request_line.split_whitespace().nth(1)?.to_owned();
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).ok()?;
    Some(path)
}

/// Runs plan, apply and drift against hostile workspaces and checks each failure and that no
/// file changed.
fn check_bad_answer(answer: Answer, expected: &[&str]) {
    let dev = serve_hostile("7515226031", answer);
    let prod = serve_hostile("987654321", answer);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "version: 1\nworkspaces:\n  dev:\n    host: {dev}\n    token_env: DEV_TOKEN\n  prod:\n    host: {prod}\n    workspace_id: \"987654321\"\n    token_env: PROD_TOKEN\nlinks:\n  - {{ reader: dev, registry: prod }}\nstate: state/mlops.state.json\n"
    );
    std::fs::write(dir.path().join("mlops.yaml"), config).unwrap();
    std::fs::create_dir(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/mlops.state.json"), fixture("plan/state.json")).unwrap();
    let before = snapshot(dir.path());
    let env = [("DEV_TOKEN", "hostile-test-credential"), ("PROD_TOKEN", "hostile-test-credential")];

    for args in [&["plan"][..], &["apply", "--auto-approve"], &["drift"]] {
        let run = run_in(dir.path(), args, &env);
        check_failure(&run, &format!("{answer:?} ({})", args[0]), "workspace `", expected);
    }
    assert!(snapshot(dir.path()) == before, "{answer:?}: a file changed");
}

mod server_answer {
    use super::{Answer, check_bad_answer};

    #[test]
    fn invalid_json() {
        check_bad_answer(Answer::MeInvalidJson, &["/api/2.0/preview/scim/v2/Me returned an invalid response", "invalid JSON"]);
    }

    #[test]
    fn html_login_page() {
        check_bad_answer(Answer::MeHtmlPage, &["content type is `text/html`", "Sign in to continue"]);
    }

    #[test]
    fn wrong_content_type() {
        check_bad_answer(Answer::MeWrongContentType, &["content type is `text/plain`"]);
    }

    #[test]
    fn missing_field() {
        check_bad_answer(Answer::MeMissingField, &["missing field `userName`"]);
    }

    #[test]
    fn missing_workspace_header() {
        check_bad_answer(Answer::MeMissingOrgId, &["did not send the X-Databricks-Org-Id header"]);
    }

    #[test]
    fn other_workspace() {
        check_bad_answer(Answer::MeOtherWorkspace, &["is 1, but the configuration says workspace_id 987654321"]);
    }

    #[test]
    fn oversized_body() {
        check_bad_answer(Answer::MeOversizedBody, &["exceeds the 16 MiB limit"]);
    }

    #[test]
    fn html_error_page() {
        check_bad_answer(Answer::MeHtmlErrorPage, &["502", "upstream connect error"]);
    }

    #[test]
    fn list_items_without_ids() {
        check_bad_answer(Answer::ListsMissingIds, &["failed to read workspace", "returned an invalid response"]);
    }
}
