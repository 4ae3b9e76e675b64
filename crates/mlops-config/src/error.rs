//! Errors of loading and validating `mlops.yaml`.
//!
//! Messages name the file and, where the YAML gives one, the line and column. The fix goes into
//! [`ConfigError::hint`], so the binary can print it on its own `hint:` line. Messages name keys
//! such as `token` but never show their values, and they include no excerpt of the file.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A 1-based line and column in the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Line number, starting at 1.
    pub line: u64,
    /// Column number in characters, starting at 1.
    pub column: u64,
}

/// One semantic problem: what is wrong, where, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Position of the offending value, when there is one.
    pub position: Option<Position>,
    /// What is wrong, naming the key and the value unless the value may be a secret.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// Failure to load `mlops.yaml`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read configuration file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The path could not be made absolute, so relative paths in the file cannot be resolved.
    #[error("failed to resolve the absolute path of configuration file `{}`", path.display())]
    ResolvePath {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The file is not UTF-8 text.
    #[error("configuration file `{}` is not valid UTF-8", path.display())]
    NotUtf8 {
        path: PathBuf,
        #[source]
        source: std::str::Utf8Error,
    },

    /// The file contains no YAML document: it is empty, blank or only comments.
    #[error("configuration file `{}` is empty", path.display())]
    Empty { path: PathBuf },

    /// The text is not well-formed YAML.
    #[error("{}: invalid YAML syntax: {message}", Located(path, *position))]
    Syntax {
        path: PathBuf,
        position: Option<Position>,
        message: String,
    },

    /// A mapping has the same key twice.
    #[error("{}: duplicate key `{key}`", Located(path, *position))]
    DuplicateKey {
        path: PathBuf,
        position: Option<Position>,
        key: String,
    },

    /// A mapping has a key that this level does not accept.
    #[error("{}: unknown key `{key}`", Located(path, *position))]
    UnknownKey {
        path: PathBuf,
        position: Option<Position>,
        key: String,
        /// The keys accepted at this level.
        allowed: Vec<String>,
    },

    /// A value has the wrong type, or a required key is missing.
    #[error("{}: {message}", Located(path, *position))]
    Schema {
        path: PathBuf,
        position: Option<Position>,
        message: String,
        hint: Option<String>,
    },

    /// The YAML is well-formed but breaks one or more rules. Every problem found is listed.
    #[error("{}", Problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// Keys that would contain a credential if they were accepted, with the key to use instead.
const CREDENTIAL_KEYS: [(&str, &str); 3] = [
    ("token", "token_env"),
    ("password", "token_env"),
    ("client_secret", "client_secret_env"),
];

impl ConfigError {
    /// Returns how to fix the error, when there is a known fix.
    ///
    /// A [`ConfigError::Invalid`] with more than one problem returns `None`, because its
    /// message already carries one hint per problem.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Read { .. } | Self::ResolvePath { .. } => None,
            Self::NotUtf8 { .. } => Some("save the file as UTF-8".to_owned()),
            Self::Empty { .. } => Some(
                "write at least `version: 1` and a `workspaces:` mapping, as in the example \
                 in docs/configuration.md"
                    .to_owned(),
            ),
            Self::Syntax { .. } => Some(
                "check the indentation (spaces only, no tabs), quotes and brackets at that position"
                    .to_owned(),
            ),
            Self::DuplicateKey { key, .. } => {
                Some(format!("keep one `{key}` entry in this mapping and remove or rename the other"))
            }
            Self::UnknownKey { key, allowed, .. } => Some(unknown_key_hint(key, allowed)),
            Self::Schema { hint, .. } => hint.clone(),
            Self::Invalid { problems, .. } => match problems.as_slice() {
                [problem] => problem.hint.clone(),
                _ => None,
            },
        }
    }

    /// Returns the semantic problems, empty for every other kind of error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// Builds the hint for an unknown key, with a pointed fix for keys that would hold a credential.
fn unknown_key_hint(key: &str, allowed: &[String]) -> String {
    let credential = CREDENTIAL_KEYS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(key));
    if let Some((_, replacement)) = credential {
        return format!(
            "credentials come from the environment or a profile: use {replacement} (the name of \
             an environment variable) or profile, never the secret itself"
        );
    }

    if allowed.is_empty() {
        return "remove this key".to_owned();
    }
    format!("allowed keys here: {}", allowed.join(", "))
}

/// Renders `file:line:column`, or `file` alone when the position is unknown.
struct Located<'a>(&'a PathBuf, Option<Position>);

impl fmt::Display for Located<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Located(path, position) = self;
        match position {
            Some(position) => {
                write!(
                    formatter,
                    "{}:{}:{}",
                    path.display(),
                    position.line,
                    position.column
                )
            }
            None => write!(formatter, "{}", path.display()),
        }
    }
}

/// Renders one problem on one line, or a numbered list with a hint under each problem.
struct Problems<'a>(&'a PathBuf, &'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Problems(path, problems) = self;
        if let [problem] = problems {
            return write!(
                formatter,
                "{}: {}",
                Located(path, problem.position),
                problem.message
            );
        }

        write!(
            formatter,
            "configuration file `{}` has {} problems:",
            path.display(),
            problems.len()
        )?;
        for problem in problems.iter() {
            write!(
                formatter,
                "\n  {}: {}",
                Located(path, problem.position),
                problem.message
            )?;
            if let Some(hint) = &problem.hint {
                write!(formatter, "\n    hint: {hint}")?;
            }
        }
        Ok(())
    }
}
