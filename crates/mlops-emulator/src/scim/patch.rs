//! SCIM PATCH requests: parsing `Operations` and applying them to attribute values.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::filter::{self, Filter, Operator};
use crate::api_error::{ApiError, ApiResult};

/// Body of a SCIM PATCH request; `Operations` has a capital O.
#[derive(Deserialize)]
pub(crate) struct PatchRequest {
    #[serde(rename = "Operations", alias = "operations", default)]
    operations: Vec<RawOperation>,
}

/// One operation as sent.
#[derive(Deserialize)]
struct RawOperation {
    op: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    value: Option<Value>,
}

/// The kind of a PATCH operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchOp {
    Add,
    Remove,
    Replace,
}

/// One operation on one attribute, with its attribute name in the resource's spelling.
#[derive(Clone, Debug)]
pub(crate) struct Operation {
    pub op: PatchOp,
    pub attribute: String,
    /// The value of a `[value eq "..."]` selector in the path.
    pub selector: Option<String>,
    pub value: Option<Value>,
}

/// 400 `invalidPath` for an attribute the resource does not have, in the real server's words.
pub(crate) fn no_such_attribute(attribute: &str) -> ApiError {
    ApiError::scim_typed(
        StatusCode::BAD_REQUEST,
        "invalidPath",
        format!("No such attribute with the name : {attribute} in the current resource"),
    )
}

/// 400 `invalidValue`.
pub(crate) fn invalid_value(detail: impl Into<String>) -> ApiError {
    ApiError::scim_typed(StatusCode::BAD_REQUEST, "invalidValue", detail)
}

/// Parses the operations of a PATCH body for a resource with the attributes in `allowed`.
/// An `add` or `replace` without a path is split into one operation per attribute of its value.
pub(crate) fn parse_operations(
    request: PatchRequest,
    allowed: &[&str],
) -> ApiResult<Vec<Operation>> {
    if request.operations.is_empty() {
        return Err(ApiError::scim_typed(
            StatusCode::BAD_REQUEST,
            "invalidSyntax",
            "Operations must not be empty.",
        ));
    }
    let mut operations = Vec::new();
    for raw in request.operations {
        let op = match raw.op.to_ascii_lowercase().as_str() {
            "add" => PatchOp::Add,
            "remove" => PatchOp::Remove,
            "replace" => PatchOp::Replace,
            other => {
                return Err(invalid_value(format!(
                    "Unsupported PATCH op {other}: expected add, remove or replace."
                )));
            }
        };
        match raw
            .path
            .as_deref()
            .map(str::trim)
            .filter(|path| !path.is_empty())
        {
            Some(path) => operations.push(operation_with_path(op, path, raw.value, allowed)?),
            None => operations.extend(operations_without_path(op, raw.value, allowed)?),
        }
    }
    Ok(operations)
}

/// Parses an operation whose path is `attribute` or `attribute[value eq "x"]`.
fn operation_with_path(
    op: PatchOp,
    path: &str,
    value: Option<Value>,
    allowed: &[&str],
) -> ApiResult<Operation> {
    let (name, selector) = match path.split_once('[') {
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix(']')
                .ok_or_else(|| no_such_attribute(path))?;
            (name, Some(parse_selector(inner, path)?))
        }
        None => (path, None),
    };
    let attribute = canonical_attribute(name, allowed)?;
    if op != PatchOp::Remove && value.is_none() {
        return Err(invalid_value(format!(
            "The {attribute} operation needs a value."
        )));
    }
    Ok(Operation {
        op,
        attribute,
        selector,
        value,
    })
}

/// Parses the `value eq "x"` selector inside brackets.
fn parse_selector(inner: &str, path: &str) -> ApiResult<String> {
    match filter::parse(inner, &["value"]) {
        Ok(Filter::Compare {
            operator: Operator::Equal,
            value,
            ..
        }) => Ok(value),
        _ => Err(ApiError::scim_typed(
            StatusCode::BAD_REQUEST,
            "invalidFilter",
            format!("Unsupported path filter {path}: expected [value eq \"...\"]."),
        )),
    }
}

/// Splits a path-less `add` or `replace` into one operation per attribute of the value object.
fn operations_without_path(
    op: PatchOp,
    value: Option<Value>,
    allowed: &[&str],
) -> ApiResult<Vec<Operation>> {
    let Some(Value::Object(attributes)) = value else {
        return Err(invalid_value(
            "An operation without a path needs an object value.",
        ));
    };
    if op == PatchOp::Remove {
        return Err(ApiError::scim_typed(
            StatusCode::BAD_REQUEST,
            "noTarget",
            "A remove operation needs a path.",
        ));
    }
    attributes
        .into_iter()
        .filter(|(name, _)| name != "schemas" && name != "id")
        .map(|(name, value)| {
            let attribute = canonical_attribute(&name, allowed)?;
            Ok(Operation {
                op,
                attribute,
                selector: None,
                value: Some(value),
            })
        })
        .collect()
}

/// Returns the resource's spelling of an attribute, or 400 `invalidPath`.
fn canonical_attribute(name: &str, allowed: &[&str]) -> ApiResult<String> {
    allowed
        .iter()
        .find(|allowed| allowed.eq_ignore_ascii_case(name.trim()))
        .map(|allowed| (*allowed).to_owned())
        .ok_or_else(|| no_such_attribute(name.trim()))
}

/// Returns the `value` strings of a multi-valued attribute: a list of `{"value": ...}` objects
/// or strings, a single such object, or a single string.
pub(crate) fn values_of(value: &Value) -> ApiResult<Vec<String>> {
    match value {
        Value::Array(items) => items.iter().map(single_value).collect(),
        other => Ok(vec![single_value(other)?]),
    }
}

/// Returns the text of one `{"value": ...}` object or scalar.
fn single_value(value: &Value) -> ApiResult<String> {
    match value {
        Value::Object(object) => object
            .get("value")
            .map(single_value)
            .unwrap_or_else(|| Err(invalid_value("Each item needs a value."))),
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        _ => Err(invalid_value("Each item needs a string value.")),
    }
}

/// Applies an operation to a multi-valued attribute such as `members` or `entitlements`.
pub(crate) fn apply_to_list(list: &mut Vec<String>, operation: &Operation) -> ApiResult<()> {
    let values = operation.value.as_ref().map(values_of).transpose()?;
    match (operation.op, &operation.selector, values) {
        (PatchOp::Add, None, Some(values)) => {
            for value in values {
                if !list.contains(&value) {
                    list.push(value);
                }
            }
        }
        (PatchOp::Replace, None, Some(values)) => {
            list.clear();
            for value in values {
                if !list.contains(&value) {
                    list.push(value);
                }
            }
        }
        (PatchOp::Remove, Some(selector), _) => list.retain(|item| item != selector),
        (PatchOp::Remove, None, Some(values)) => list.retain(|item| !values.contains(item)),
        (PatchOp::Remove, None, None) => list.clear(),
        _ => {
            return Err(invalid_value(format!(
                "Unsupported {:?} of {} with a value filter.",
                operation.op, operation.attribute
            )));
        }
    }
    Ok(())
}

/// Parses `active` from a bool, a `"true"`/`"false"` string, or a one-item list or object
/// holding either.
pub(crate) fn parse_active(value: &Value) -> ApiResult<bool> {
    let invalid = || invalid_value("active must be true or false.");
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::String(text) if text.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(text) if text.eq_ignore_ascii_case("false") => Ok(false),
        Value::Array(items) if items.len() == 1 => parse_active(&items[0]),
        Value::Object(object) => object
            .get("value")
            .map(parse_active)
            .unwrap_or_else(|| Err(invalid())),
        _ => Err(invalid()),
    }
}

/// Returns the text of a single-valued string attribute, or `None` for a remove.
pub(crate) fn string_value(operation: &Operation) -> ApiResult<Option<String>> {
    if operation.op == PatchOp::Remove {
        return Ok(None);
    }
    match &operation.value {
        Some(Value::String(text)) => Ok(Some(text.clone())),
        _ => Err(invalid_value(format!(
            "{} must be a string.",
            operation.attribute
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ATTRIBUTES: &[&str] = &["displayName", "members", "entitlements"];

    fn parse(body: Value) -> ApiResult<Vec<Operation>> {
        parse_operations(serde_json::from_value(body).unwrap(), ATTRIBUTES)
    }

    #[test]
    fn member_remove_selector_parses() {
        let operations = parse(
            json!({ "Operations": [{ "op": "remove", "path": "members[value eq \"42\"]" }] }),
        )
        .unwrap();
        assert_eq!(operations[0].attribute, "members");
        assert_eq!(operations[0].selector.as_deref(), Some("42"));
    }

    #[test]
    fn list_operations_apply() {
        let mut list = vec!["1".to_owned()];
        let add = parse(json!({ "Operations": [{ "op": "Add", "path": "members", "value": [{ "value": "2" }, { "value": "1" }] }] })).unwrap();
        apply_to_list(&mut list, &add[0]).unwrap();
        assert_eq!(list, ["1", "2"]);

        let remove =
            parse(json!({ "Operations": [{ "op": "remove", "path": "members[value eq \"1\"]" }] }))
                .unwrap();
        apply_to_list(&mut list, &remove[0]).unwrap();
        assert_eq!(list, ["2"]);
    }

    #[test]
    fn active_forms_parse() {
        assert!(!parse_active(&json!(false)).unwrap());
        assert!(!parse_active(&json!("False")).unwrap());
        assert!(!parse_active(&json!([{ "value": "false" }])).unwrap());
        assert!(parse_active(&json!([{ "value": true }])).unwrap());
        assert!(parse_active(&json!("maybe")).is_err());
    }

    #[test]
    fn unknown_attribute_is_invalid_path() {
        let error = parse(json!({ "Operations": [{ "op": "add", "path": "roles", "value": [] }] }))
            .unwrap_err();
        assert!(matches!(
            error,
            ApiError::Scim {
                scim_type: Some("invalidPath"),
                ..
            }
        ));
    }
}
