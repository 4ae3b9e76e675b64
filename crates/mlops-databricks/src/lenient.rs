//! Serde helpers for fields that workspaces send in more than one JSON form.
//!
//! Ids and timestamps arrive as JSON numbers from some endpoints and as strings from
//! others, and empty lists arrive as `null` or not at all.

use serde::Deserialize;
use serde::de::{Deserializer, Error as _};
use serde_json::Value;

/// Deserializes a string, or a JSON number rendered as its decimal text.
pub(crate) fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(text) => Ok(text),
        Value::Number(number) => Ok(number.to_string()),
        other => Err(D::Error::custom(format!(
            "invalid type: {}, expected a string or a number",
            kind(&other)
        ))),
    }
}

/// Deserializes an optional string or number, where `null` becomes `None`.
pub(crate) fn optional_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text)),
        Value::Number(number) => Ok(Some(number.to_string())),
        other => Err(D::Error::custom(format!(
            "invalid type: {}, expected a string or a number",
            kind(&other)
        ))),
    }
}

/// Deserializes a string where `null` means the empty string.
pub(crate) fn string_or_null<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    Ok(optional_string(deserializer)?.unwrap_or_default())
}

/// Deserializes an integer sent as a JSON number or as a decimal string.
pub(crate) fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let value = Value::deserialize(deserializer)?;
    integer_from_value(&value).map_err(D::Error::custom)
}

/// Deserializes an optional integer sent as a number or a decimal string.
pub(crate) fn optional_integer<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    if value.is_null() {
        return Ok(None);
    }
    integer_from_value(&value)
        .map(Some)
        .map_err(D::Error::custom)
}

/// Deserializes a boolean sent as `true`/`false` or as the strings `"true"`/`"false"`.
pub(crate) fn boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Bool(flag) => Ok(flag),
        Value::String(text) if text.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(text) if text.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(D::Error::custom(format!(
            "invalid type: {}, expected a boolean",
            kind(&other)
        ))),
    }
}

/// Deserializes a list where `null` means an empty list.
pub(crate) fn list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Converts a JSON number or decimal string into an `i64`.
pub(crate) fn integer_from_value(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .ok_or_else(|| format!("number {number} is not a 64-bit integer")),
        Value::String(text) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| "string is not a decimal integer".to_owned()),
        other => Err(format!(
            "invalid type: {}, expected an integer or a decimal string",
            kind(other)
        )),
    }
}

/// Names the JSON type of a value without quoting its content.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
