//! The strict serde pass: YAML text to [`RawConfig`], with serde-saphyr errors mapped to
//! [`ConfigError`].

use std::path::Path;

use serde::de::IgnoredAny;
use serde_saphyr::{Error as YamlError, Location, MessageFormatter, Options, UserMessageFormatter};

use crate::error::{ConfigError, Position};
use crate::raw::RawConfig;

/// Parses the text into the raw structs.
///
/// The first pass reads the whole stream into [`IgnoredAny`], so syntax errors and duplicate keys
/// are reported as such even when a type error comes earlier in the file. The second pass fills
/// the typed structs.
pub(crate) fn read_raw(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    if has_no_document(text) {
        return Err(ConfigError::Empty {
            path: path.to_owned(),
        });
    }

    serde_saphyr::from_str_with_options::<IgnoredAny>(text, options())
        .map_err(|error| syntax_error(path, &error))?;

    serde_saphyr::from_str_with_options::<RawConfig>(text, options())
        .map_err(|error| schema_error(path, &error))
}

/// Returns the parser options: duplicate keys are errors (the serde-saphyr default, kept on
/// purpose) and source snippets are off, because a snippet shows the lines around the error and
/// could print a credential written on one of them.
fn options() -> Options {
    serde_saphyr::options! {
        with_snippet: false,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    }
}

/// Returns true when every line is blank or a comment, so the stream contains no document.
fn has_no_document(text: &str) -> bool {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#'))
}

/// Maps an error of the first pass: a syntax error, a duplicate key, a second document or an
/// exceeded parser budget.
fn syntax_error(path: &Path, error: &YamlError) -> ConfigError {
    let path = path.to_owned();
    let error = error.without_snippet();
    let position = position_of(error);

    match error {
        YamlError::DuplicateMappingKey { key, .. } => ConfigError::DuplicateKey {
            path,
            position,
            key: key.clone().unwrap_or_else(|| "(complex key)".to_owned()),
        },
        YamlError::MultipleDocuments { .. } => multiple_documents(path, position),
        other => ConfigError::Syntax {
            path,
            position,
            message: plain_message(other),
        },
    }
}

/// Maps an error of the second pass: a key or value that does not fit the expected structure.
fn schema_error(path: &Path, error: &YamlError) -> ConfigError {
    let path = path.to_owned();
    let error = error.without_snippet();
    let position = position_of(error);
    let schema = |message: String, hint: Option<String>| ConfigError::Schema {
        path: path.clone(),
        position,
        message,
        hint,
    };

    match error {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => ConfigError::UnknownKey {
            path: path.clone(),
            position,
            key: field.clone(),
            allowed: expected.iter().map(|key| (*key).to_owned()).collect(),
        },
        YamlError::DuplicateMappingKey { key, .. } => ConfigError::DuplicateKey {
            path: path.clone(),
            position,
            key: key.clone().unwrap_or_else(|| "(complex key)".to_owned()),
        },
        YamlError::MultipleDocuments { .. } => multiple_documents(path.clone(), position),
        YamlError::SerdeMissingField { field, .. } => schema(
            format!("missing key `{field}`"),
            Some(format!("add `{field}:` with a value to this mapping")),
        ),
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => schema(
            format!("unknown value `{variant}`"),
            Some(format!("allowed values: {}", expected.join(", "))),
        ),
        YamlError::Unexpected { expected, .. } => {
            let (noun, hint) = describe_expected(expected);
            schema(
                format!("invalid type: expected {noun}"),
                Some(hint.to_owned()),
            )
        }
        YamlError::InvalidScalar { ty, .. } => {
            let (noun, hint) = describe_scalar(ty);
            schema(
                format!("invalid value: expected {noun}"),
                Some(hint.to_owned()),
            )
        }
        YamlError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => schema(
            format!(
                "invalid type: expected {expected}, found {}",
                redact_found(unexpected)
            ),
            None,
        ),
        YamlError::NullIntoString { .. } => schema(
            "missing value: expected a string".to_owned(),
            Some("write a value after the `:`".to_owned()),
        ),
        other => schema(plain_message(other), None),
    }
}

/// Builds the error for a stream with more than one document.
fn multiple_documents(path: std::path::PathBuf, position: Option<Position>) -> ConfigError {
    ConfigError::Schema {
        path,
        position,
        message: "the file contains more than one YAML document".to_owned(),
        hint: Some("remove the `---` separator and everything after it".to_owned()),
    }
}

/// Returns the wording and hint for serde-saphyr's `expected` token names.
fn describe_expected(expected: &str) -> (&str, &'static str) {
    match expected {
        "mapping start" => (
            "a mapping",
            "write `key: value` pairs, one per line and indented, or `{ key: value }` on one line",
        ),
        "sequence start" => (
            "a list",
            "write a list as `[a, b]` on one line, or one `- item` per line",
        ),
        "string scalar" => (
            "a single value",
            "write one value here, not a list or a mapping",
        ),
        other => (
            other,
            "check the value at this position against docs/configuration.md",
        ),
    }
}

/// Returns the wording and hint for a scalar that does not parse into the Rust type `ty`.
fn describe_scalar(ty: &str) -> (&'static str, &'static str) {
    match ty {
        "i64" | "u64" | "i32" | "u32" => (
            "a whole number",
            "write digits only, such as `100`, without quotes or a decimal point",
        ),
        "bool" => ("`true` or `false`", "write `true` or `false`"),
        _ => (
            "a different kind of value",
            "check the value at this position against docs/configuration.md",
        ),
    }
}

/// Shortens serde's description of a found value so that a string value is not echoed.
fn redact_found(unexpected: &str) -> &str {
    if unexpected.starts_with("string") {
        "a string"
    } else {
        unexpected
    }
}

/// Returns serde-saphyr's user-facing text, with control characters removed.
fn plain_message(error: &YamlError) -> String {
    let message = UserMessageFormatter.format_message(error);
    message
        .chars()
        .filter(|character| !character.is_control())
        .collect()
}

/// Returns the error's position, or `None` when serde-saphyr does not know it.
fn position_of(error: &YamlError) -> Option<Position> {
    error.location().and_then(position_from)
}

/// Converts a serde-saphyr location, which uses line 0 for an unknown position.
pub(crate) fn position_from(location: Location) -> Option<Position> {
    if location.line() == 0 {
        return None;
    }
    Some(Position {
        line: location.line(),
        column: location.column(),
    })
}
