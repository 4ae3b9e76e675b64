//! Validation of workspace hosts and their normalisation to an origin.

use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Reason and fix for a rejected host value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostProblem {
    pub message: String,
    pub hint: String,
}

const EXAMPLE: &str =
    "write the workspace URL, such as `https://dbc-1234abcd-5678.cloud.databricks.com`";

/// Checks a workspace host and returns its origin: lowercase scheme and host, the port only when
/// it is not the scheme's default, no trailing slash.
///
/// Accepted: an `https://` URL with a host, an optional port and an optional trailing slash, or
/// the same with `http://` when the host is loopback (`localhost`, 127.0.0.0/8 or `[::1]`).
/// Messages for user info, a query or a fragment do not repeat the value, since those parts can
/// carry a credential.
pub(crate) fn normalise_host(value: &str) -> Result<String, HostProblem> {
    check_characters(value)?;

    let url = Url::parse(value).map_err(|error| parse_problem(value, &error))?;
    check_scheme(value, &url)?;
    check_path(value)?;

    Ok(url.origin().ascii_serialization())
}

/// Rejects the parts that a plain origin never has, before the URL parser normalises them away.
fn check_characters(value: &str) -> Result<(), HostProblem> {
    if value.contains('@') {
        return Err(problem(
            "contains user info (`...@`)",
            "remove the part up to `@`: credentials come from the environment or a profile",
        ));
    }
    if value.contains('?') || value.contains('#') {
        return Err(problem(
            "contains a query or a fragment",
            "remove everything from the `?` or `#` on",
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c == '\\') {
        return Err(problem(
            &format!("`{value}` contains whitespace or a backslash"),
            "write the URL without spaces or backslashes",
        ));
    }
    Ok(())
}

/// Explains a value that the URL parser rejects.
fn parse_problem(value: &str, error: &url::ParseError) -> HostProblem {
    if !value.contains("://") {
        return problem(&format!("`{value}` has no scheme"), EXAMPLE);
    }
    problem(&format!("`{value}` is not a valid URL: {error}"), EXAMPLE)
}

/// Requires `https`, or `http` for a loopback host.
fn check_scheme(value: &str, url: &Url) -> Result<(), HostProblem> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if url.host().is_some_and(|host| is_loopback(&host)) => Ok(()),
        "http" => Err(problem(
            &format!("`{value}` uses plain http"),
            "use https://, because plain http:// is accepted only for loopback hosts (localhost, \
             127.0.0.0/8, [::1]) such as a local emulator",
        )),
        scheme => Err(problem(
            &format!("`{value}` has the unsupported scheme `{scheme}`"),
            EXAMPLE,
        )),
    }
}

/// Requires nothing after the authority except one optional `/`.
fn check_path(value: &str) -> Result<(), HostProblem> {
    let after_scheme = value.split_once("://").map_or(value, |(_, rest)| rest);
    let path = after_scheme
        .find('/')
        .map_or("", |start| &after_scheme[start..]);

    if path.is_empty() || path == "/" {
        return Ok(());
    }
    Err(problem(
        &format!("`{value}` has the path `{path}`"),
        "write only the scheme and host (and port), such as `https://dbc-1234abcd-5678.cloud.databricks.com`",
    ))
}

/// Returns true for `localhost`, 127.0.0.0/8 and `::1`.
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(domain) => domain.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(address) => Ipv4Addr::is_loopback(address),
        Host::Ipv6(address) => Ipv6Addr::is_loopback(address),
    }
}

fn problem(message: &str, hint: &str) -> HostProblem {
    HostProblem {
        message: message.to_owned(),
        hint: hint.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_is_normalised() {
        let cases = [
            (
                "https://dbc-aaaa.cloud.databricks.com",
                "https://dbc-aaaa.cloud.databricks.com",
            ),
            (
                "https://dbc-aaaa.cloud.databricks.com/",
                "https://dbc-aaaa.cloud.databricks.com",
            ),
            (
                "HTTPS://DBC-AAAA.Cloud.Databricks.com/",
                "https://dbc-aaaa.cloud.databricks.com",
            ),
            ("https://example.com:443", "https://example.com"),
            ("https://example.com:8443/", "https://example.com:8443"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.1.2.3:8080/", "http://127.1.2.3:8080"),
            ("http://localhost:9000", "http://localhost:9000"),
            ("http://[::1]:9000", "http://[::1]:9000"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                normalise_host(input).as_deref(),
                Ok(expected),
                "input {input}"
            );
        }
    }

    #[test]
    fn rejected_hosts() {
        let cases = [
            ("http://example.com", "plain http"),
            ("http://10.0.0.1", "plain http"),
            ("http://[::2]", "plain http"),
            ("https://example.com/path", "has the path `/path`"),
            ("https://example.com//", "has the path `//`"),
            ("https://example.com/a/..", "has the path `/a/..`"),
            ("https://user:secret@example.com", "user info"),
            ("https://example.com?o=1", "query"),
            ("https://example.com#x", "fragment"),
            ("example.com", "no scheme"),
            ("ftp://example.com", "unsupported scheme `ftp`"),
            ("https://", "not a valid URL"),
            ("https://exa mple.com", "whitespace"),
        ];
        for (input, expected) in cases {
            let problem = normalise_host(input).expect_err(input);
            assert!(
                problem.message.contains(expected),
                "input {input}: {}",
                problem.message
            );
        }
    }

    #[test]
    fn user_info_is_not_echoed() {
        let problem = normalise_host("https://user:hunter2@example.com").unwrap_err();

        assert!(!problem.message.contains("hunter2"));
        assert!(!problem.hint.contains("hunter2"));
    }
}
