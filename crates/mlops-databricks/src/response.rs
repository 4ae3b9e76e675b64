//! Turning raw HTTP responses into decoded values or [`Error`]s.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::Error;
use crate::mask::{MAX_QUOTED_CHARS, mask_tokens, quote_body, truncate};

/// Schema URN that marks a SCIM error body.
const SCIM_ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Response header that some deployments fill with the error message.
const REASON_PHRASE_HEADER: &str = "x-databricks-reason-phrase";

/// A complete HTTP response with its body read into memory.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Identifies the call that produced a response, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct CallId {
    pub method: String,
    pub path: String,
}

impl CallId {
    pub(crate) fn decode_error(&self, message: impl Into<String>) -> Error {
        Error::Decode {
            method: self.method.clone(),
            path: self.path.clone(),
            message: message.into(),
        }
    }
}

/// Decodes a successful JSON body into `T`.
///
/// An empty body (a 204, or a 200 without content) decodes as `{}`, so that types whose
/// fields all have defaults accept it.
pub(crate) fn decode_json<T: DeserializeOwned>(
    call: &CallId,
    response: &RawResponse,
) -> Result<T, Error> {
    let body = trimmed(&response.body);
    if body.is_empty() {
        return serde_json::from_slice(b"{}").map_err(|error| {
            call.decode_error(format!("empty response body: {}", serde_message(&error)))
        });
    }

    if let Some(content_type) = non_json_content_type(&response.headers) {
        return Err(call.decode_error(format!(
            "expected JSON but the content type is `{content_type}`, body starts with: {}",
            quote_body(&String::from_utf8_lossy(body))
        )));
    }

    serde_json::from_slice(body).map_err(|error| call.decode_error(serde_message(&error)))
}

/// Checks a successful response whose content the caller does not need.
///
/// An empty body or any JSON body passes. A non-empty body of another content type
/// (such as a proxy's HTML login page) fails, because it usually means the request
/// never reached the API.
pub(crate) fn check_void(call: &CallId, response: &RawResponse) -> Result<(), Error> {
    let body = trimmed(&response.body);
    match non_json_content_type(&response.headers) {
        Some(content_type) if !body.is_empty() => Err(call.decode_error(format!(
            "expected JSON or an empty body but the content type is `{content_type}`, body starts with: {}",
            quote_body(&String::from_utf8_lossy(body))
        ))),
        _ => Ok(()),
    }
}

/// Builds the error for a non-success response.
pub(crate) fn error_from_response(call: &CallId, response: &RawResponse) -> Error {
    let status = response.status.as_u16();
    let (error_code, message) = parse_error_body(response);

    if is_auth_failure(status, &error_code, &message) {
        return Error::Auth {
            method: call.method.clone(),
            path: call.path.clone(),
            status,
            message,
        };
    }

    Error::Api {
        method: call.method.clone(),
        path: call.path.clone(),
        status,
        error_code,
        message,
    }
}

/// Returns `(error_code, message)` from any of the error body forms workspaces send.
fn parse_error_body(response: &RawResponse) -> (String, String) {
    let body = trimmed(&response.body);
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => parse_json_error(response.status, &object),
        Ok(_) => (
            reason_code(response.status),
            quote_body(&String::from_utf8_lossy(body)),
        ),
        Err(_) => parse_text_error(response),
    }
}

fn parse_json_error(status: StatusCode, object: &Map<String, Value>) -> (String, String) {
    if is_scim_error(object) {
        return parse_scim_error(status, object);
    }

    let error_code = match object.get("error_code") {
        Some(Value::String(code)) if !code.is_empty() => code.clone(),
        Some(Value::Number(code)) => code.to_string(),
        _ => reason_code(status),
    };

    let message = ["message", "error_description", "error"]
        .iter()
        .find_map(|key| object.get(*key).and_then(Value::as_str))
        .map(|text| truncate(text, 4 * MAX_QUOTED_CHARS))
        .unwrap_or_else(|| reason_text(status));

    (error_code, message)
}

fn is_scim_error(object: &Map<String, Value>) -> bool {
    let has_error_schema = object
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|schemas| schemas.iter().any(|schema| schema == SCIM_ERROR_SCHEMA));
    has_error_schema || (object.contains_key("detail") && !object.contains_key("error_code"))
}

/// Reads a SCIM error: `status` is a string or a number, `scimType` is optional.
fn parse_scim_error(status: StatusCode, object: &Map<String, Value>) -> (String, String) {
    let scim_status = match object.get("status") {
        Some(Value::String(text)) if !text.trim().is_empty() => text.trim().to_owned(),
        Some(Value::Number(number)) => number.to_string(),
        _ => status.as_u16().to_string(),
    };

    let detail = match object.get("detail").and_then(Value::as_str) {
        Some("null") | None => "SCIM API Internal Error",
        Some(text) => text,
    };
    let scim_type = object.get("scimType").and_then(Value::as_str).unwrap_or("");
    let message = format!("{scim_type} {detail}").trim().to_owned();

    (
        format!("SCIM_{scim_status}"),
        truncate(&message, 4 * MAX_QUOTED_CHARS),
    )
}

/// Reads a non-JSON body: an HTML page, `ERROR_CODE: message` text or anything else.
fn parse_text_error(response: &RawResponse) -> (String, String) {
    let text = String::from_utf8_lossy(trimmed(&response.body)).into_owned();
    let header_reason = response
        .headers
        .get(REASON_PHRASE_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty());

    if let Some(pre) = html_pre_content(&text) {
        return (reason_code(response.status), quote_body(pre));
    }

    if let Some(reason) = header_reason {
        return (reason_code(response.status), quote_body(reason));
    }

    if let Some((code, message)) = split_code_prefix(&text) {
        return (code.to_owned(), quote_body(message));
    }

    if text.is_empty() {
        return (reason_code(response.status), reason_text(response.status));
    }

    (reason_code(response.status), quote_body(&text))
}

/// Returns the text inside the first `<pre>` element of an HTML page.
fn html_pre_content(text: &str) -> Option<&str> {
    let start = text.find("<pre>")? + "<pre>".len();
    let end = text[start..].find("</pre>")? + start;
    Some(text[start..end].trim())
}

/// Splits `RESOURCE_DOES_NOT_EXIST: message` into its code and message.
fn split_code_prefix(text: &str) -> Option<(&str, &str)> {
    let (code, message) = text.split_once(':')?;
    let is_code = code.len() >= 3
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    is_code.then(|| (code, message.trim()))
}

/// Tells whether a response rejects the credentials: any 401, and a 403 whose message
/// reports an invalid or expired token.
fn is_auth_failure(status: u16, error_code: &str, message: &str) -> bool {
    let lowered = message.to_ascii_lowercase();
    let token_rejected = lowered.contains("invalid access token")
        || lowered.contains("invalid token")
        || lowered.contains("token is expired")
        || lowered.contains("token has expired")
        || error_code == "UNAUTHENTICATED"
        || error_code == "403";
    status == 401 || (status == 403 && token_rejected)
}

/// Derives an error code from the HTTP reason phrase, such as `NOT_FOUND`.
fn reason_code(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => reason.to_ascii_uppercase().replace([' ', '-'], "_"),
        None => format!("HTTP_{}", status.as_u16()),
    }
}

fn reason_text(status: StatusCode) -> String {
    status
        .canonical_reason()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP status {}", status.as_u16()))
}

/// Returns the content type when it is present and is not a JSON type.
fn non_json_content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(CONTENT_TYPE)?
        .to_str()
        .unwrap_or("")
        .to_ascii_lowercase();
    let essence = value.split(';').next().unwrap_or("").trim();
    let is_json = essence == "application/json" || essence.ends_with("+json");
    (!is_json).then(|| essence.to_owned())
}

/// Describes a serde error with any quoted content masked and cut.
fn serde_message(error: &serde_json::Error) -> String {
    let category = match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "invalid JSON: ",
        _ => "unexpected JSON: ",
    };
    format!(
        "{category}{}",
        truncate(&mask_tokens(&error.to_string()), MAX_QUOTED_CHARS)
    )
}

fn trimmed(body: &[u8]) -> &[u8] {
    body.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn response(status: u16, content_type: Option<&str>, body: &str) -> RawResponse {
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        }
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn call() -> CallId {
        CallId {
            method: "GET".into(),
            path: "/api/2.0/x".into(),
        }
    }

    #[test]
    fn plain_text_code_prefix() {
        let parsed = parse_error_body(&response(400, Some("text/plain"), "INVALID_STATE: busy"));
        assert_eq!(parsed, ("INVALID_STATE".to_owned(), "busy".to_owned()));
    }

    #[test]
    fn legacy_error_field() {
        let parsed = parse_error_body(&response(500, None, r#"{"error":"boom"}"#));
        assert_eq!(
            parsed,
            ("INTERNAL_SERVER_ERROR".to_owned(), "boom".to_owned())
        );
    }

    #[test]
    fn scim_null_detail() {
        let parsed = parse_error_body(&response(500, None, r#"{"detail":"null","status":"500"}"#));
        assert_eq!(parsed.0, "SCIM_500");
        assert_eq!(parsed.1, "SCIM API Internal Error");
    }

    #[test]
    fn scim_type_prefixes_detail() {
        let body = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"No such attribute","status":400,"scimType":"invalidPath"}"#;
        let parsed = parse_error_body(&response(400, None, body));
        assert_eq!(
            parsed,
            (
                "SCIM_400".to_owned(),
                "invalidPath No such attribute".to_owned()
            )
        );
    }

    #[test]
    fn empty_error_body_uses_reason() {
        let parsed = parse_error_body(&response(404, None, ""));
        assert_eq!(parsed, ("NOT_FOUND".to_owned(), "Not Found".to_owned()));
    }

    #[test]
    fn empty_success_body_decodes_as_empty_object() {
        #[derive(serde::Deserialize)]
        struct Listing {
            #[serde(default)]
            items: Vec<String>,
        }
        let listing: Listing = decode_json(&call(), &response(204, None, "")).unwrap();
        assert!(listing.items.is_empty());
    }

    #[test]
    fn scim_json_content_type_is_json() {
        let decoded: Value =
            decode_json(&call(), &response(200, Some("application/scim+json"), "{}")).unwrap();
        assert_eq!(decoded, Value::Object(Map::new()));
    }
}
