//! The workspace model registry endpoints that a remote reader calls.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64_URL;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::Caller;
use crate::model::{ModelVersion, RegisteredModel, Workspace};
use crate::permissions::REGISTRY_LEVELS;
use crate::server::{AppState, Params, parse_body};

/// Default page size of registered-model search.
const DEFAULT_MODEL_PAGE: usize = 100;

/// Maximum page size of registered-model search.
const MAX_MODEL_PAGE: usize = 1000;

/// Default and maximum page size of model-version search.
const MAX_VERSION_PAGE: usize = 10_000;

/// Stages in the order `get-latest-versions` reports them.
const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];

/// Routes of the registry endpoints.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/2.0/mlflow/registered-models/search",
            get(search_models),
        )
        .route("/api/2.0/mlflow/registered-models/get", get(get_model))
        .route(
            "/api/2.0/mlflow/databricks/registered-models/get",
            get(get_databricks_model),
        )
        .route(
            "/api/2.0/mlflow/registered-models/get-latest-versions",
            post(get_latest_versions),
        )
        .route("/api/2.0/mlflow/model-versions/get", get(get_model_version))
        .route(
            "/api/2.0/mlflow/model-versions/get-download-uri",
            get(get_download_uri),
        )
        .route(
            "/api/2.0/mlflow/model-versions/search",
            get(search_model_versions),
        )
}

/// Returns the caller's level on the registry root: `CAN_MANAGE` for admins, otherwise the
/// highest level granted to the caller or one of its groups.
fn caller_level(ws: &Workspace, caller: &Caller) -> Option<&'static str> {
    if caller.is_admin(ws) {
        return Some("CAN_MANAGE");
    }
    ws.acl_levels(&ws.registry_permissions, caller.principal)
        .into_iter()
        .filter_map(|level| REGISTRY_LEVELS.iter().position(|known| *known == level))
        .max()
        .map(|rank| REGISTRY_LEVELS[rank])
}

/// Fails with 403 unless the caller has at least `CAN_READ` on the registry root.
fn require_read(ws: &Workspace, caller: &Caller) -> ApiResult<&'static str> {
    // NOTE: the real message is unconfirmed; PERMISSION_DENIED is documented.
    caller_level(ws, caller).ok_or_else(|| {
        ApiError::permission_denied(format!(
            "User {} does not have permission to read registered models.",
            caller.user_name
        ))
    })
}

/// Returns the 404 for a missing model, in the Databricks wording.
fn model_missing(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "RegisteredModel '{name}' does not exist. It might have been deleted."
    ))
}

/// Finds a model by exact name.
fn find_model<'a>(ws: &'a Workspace, name: &str) -> ApiResult<&'a RegisteredModel> {
    ws.models.get(name).ok_or_else(|| model_missing(name))
}

/// Renders a model version.
fn render_version(model: &RegisteredModel, version: &ModelVersion) -> Value {
    json!({
        "name": model.name,
        "version": version.version.to_string(),
        "creation_timestamp": version.creation_timestamp,
        "last_updated_timestamp": version.last_updated_timestamp,
        "user_id": version.user_id,
        "current_stage": version.current_stage,
        "description": version.description,
        "source": version.source,
        "run_id": version.run_id,
        "status": version.status,
    })
}

/// Returns the latest version in each of `stages` that has one, in the order of `stages`.
fn latest_versions<'a>(model: &'a RegisteredModel, stages: &[&str]) -> Vec<&'a ModelVersion> {
    stages
        .iter()
        .filter_map(|stage| {
            model
                .versions
                .iter()
                .filter(|version| version.current_stage.eq_ignore_ascii_case(stage))
                .max_by_key(|version| version.version)
        })
        .collect()
}

/// Renders a model in the MLflow shape.
fn render_model(model: &RegisteredModel) -> Value {
    let latest: Vec<Value> = latest_versions(model, &STAGES)
        .into_iter()
        .map(|version| render_version(model, version))
        .collect();
    let tags: Vec<Value> = model
        .tags
        .iter()
        .map(|tag| json!({ "key": tag.key, "value": tag.value }))
        .collect();
    json!({
        "name": model.name,
        "creation_timestamp": model.creation_timestamp,
        "last_updated_timestamp": model.last_updated_timestamp,
        "user_id": model.user_id,
        "description": model.description,
        "latest_versions": latest,
        "tags": tags,
    })
}

/// A parsed MLflow search filter on the model name.
#[derive(Debug)]
enum NameFilter {
    Any,
    Equals(String),
    Like {
        pattern: String,
        case_insensitive: bool,
    },
}

impl NameFilter {
    /// Parses `name = 'x'`, `name LIKE '%x%'`, `name ILIKE '...'`, or a plain word, which
    /// the server treats as `name LIKE '%word%'`.
    fn parse(filter: Option<&str>) -> ApiResult<Self> {
        let Some(filter) = filter.map(str::trim).filter(|text| !text.is_empty()) else {
            return Ok(Self::Any);
        };
        let invalid = || {
            ApiError::invalid_parameter(format!(
                "Invalid filter '{filter}': expected name = '...', name LIKE '...' or name ILIKE '...'."
            ))
        };

        let attribute_rest = strip_prefix_ignore_case(filter, "name")
            .filter(|rest| rest.starts_with(|c: char| c.is_whitespace() || c == '='));
        let Some(rest) = attribute_rest else {
            if filter.chars().any(|c| matches!(c, '=' | '\'' | '"' | ' ')) {
                return Err(invalid());
            }
            return Ok(Self::Like {
                pattern: format!("%{filter}%"),
                case_insensitive: false,
            });
        };

        let rest = rest.trim_start();
        let (operator, value) = if let Some(value) = rest.strip_prefix('=') {
            ("=", value)
        } else if let Some(value) = strip_prefix_ignore_case(rest, "ilike ") {
            ("ILIKE", value)
        } else if let Some(value) = strip_prefix_ignore_case(rest, "like ") {
            ("LIKE", value)
        } else {
            return Err(invalid());
        };
        let value = unquote(value.trim()).ok_or_else(invalid)?;

        Ok(match operator {
            "=" => Self::Equals(value),
            "ILIKE" => Self::Like {
                pattern: value,
                case_insensitive: true,
            },
            _ => Self::Like {
                pattern: value,
                case_insensitive: false,
            },
        })
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Equals(expected) => name == expected,
            Self::Like {
                pattern,
                case_insensitive: true,
            } => like(&pattern.to_lowercase(), &name.to_lowercase()),
            Self::Like {
                pattern,
                case_insensitive: false,
            } => like(pattern, name),
        }
    }
}

/// Strips an ASCII prefix without regard to case.
fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Removes matching single or double quotes around a value.
fn unquote(value: &str) -> Option<String> {
    let quote = value.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = value.strip_prefix(quote)?.strip_suffix(quote)?;
    (!inner.contains(quote)).then(|| inner.to_owned())
}

/// SQL LIKE matching: `%` matches any run of characters and `_` any single character.
fn like(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    like_from(&pattern, &text)
}

fn like_from(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('%', rest)) => (0..=text.len()).any(|skip| like_from(rest, &text[skip..])),
        Some(('_', rest)) => !text.is_empty() && like_from(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && like_from(rest, &text[1..]),
    }
}

/// Parses `max_results` with a default and an upper limit.
fn page_size(params: &Params, default: usize, max: usize) -> ApiResult<usize> {
    let Some(text) = params.get("max_results") else {
        return Ok(default);
    };
    match text.parse::<usize>() {
        Ok(size) if (1..=max).contains(&size) => Ok(size),
        _ => Err(ApiError::invalid_parameter(format!(
            "Invalid value {text} for parameter 'max_results': expected 1 to {max}."
        ))),
    }
}

/// Decodes a page token into an offset; tokens are opaque to clients.
fn page_offset(params: &Params) -> ApiResult<usize> {
    let Some(token) = params.get("page_token") else {
        return Ok(0);
    };
    let invalid = || ApiError::invalid_parameter(format!("Invalid page token {token}."));
    let decoded = BASE64_URL.decode(token.as_bytes()).map_err(|_| invalid())?;
    let text = String::from_utf8(decoded).map_err(|_| invalid())?;
    text.strip_prefix("offset:")
        .and_then(|number| number.parse().ok())
        .ok_or_else(invalid)
}

/// Encodes an offset as a page token.
fn page_token(offset: usize) -> String {
    BASE64_URL.encode(format!("offset:{offset}"))
}

/// Builds one page of `items` under `key`, with `next_page_token` when more remain.
fn page(key: &str, items: Vec<Value>, offset: usize, size: usize) -> Value {
    let total = items.len();
    let selected: Vec<Value> = items.into_iter().skip(offset).take(size).collect();
    let mut body = Map::new();
    if !selected.is_empty() {
        body.insert(key.to_owned(), Value::Array(selected));
    }
    if offset + size < total {
        body.insert(
            "next_page_token".to_owned(),
            json!(page_token(offset + size)),
        );
    }
    Value::Object(body)
}

async fn search_models(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let filter = NameFilter::parse(params.get("filter"))?;
    let size = page_size(&params, DEFAULT_MODEL_PAGE, MAX_MODEL_PAGE)?;
    let offset = page_offset(&params)?;
    state.read(|ws, _| {
        require_read(ws, &caller)?;
        let models: Vec<Value> = ws
            .models
            .values()
            .filter(|model| filter.matches(&model.name))
            .map(render_model)
            .collect();
        Ok(Json(page("registered_models", models, offset, size)))
    })
}

async fn get_model(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let name = params.require("name")?.to_owned();
    state.read(|ws, _| {
        require_read(ws, &caller)?;
        Ok(Json(
            json!({ "registered_model": render_model(find_model(ws, &name)?) }),
        ))
    })
}

/// Returns the Databricks view of a model, with its id and the caller's permission level.
async fn get_databricks_model(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let name = params.require("name")?.to_owned();
    state.read(|ws, _| {
        let level = require_read(ws, &caller)?;
        let model = find_model(ws, &name)?;
        let mut body = render_model(model);
        body["id"] = json!(model.id);
        body["permission_level"] = json!(level);
        Ok(Json(json!({ "registered_model_databricks": body })))
    })
}

/// Body of `get-latest-versions`.
#[derive(Deserialize)]
struct LatestVersionsRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    stages: Vec<String>,
}

async fn get_latest_versions(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let request: LatestVersionsRequest = parse_body(&body)?;
    let name = request
        .name
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            ApiError::invalid_parameter("Missing value for required parameter 'name'.")
        })?;
    let stages = requested_stages(&request.stages)?;

    state.read(|ws, _| {
        require_read(ws, &caller)?;
        let model = find_model(ws, &name)?;
        let versions: Vec<Value> = latest_versions(model, &stages)
            .into_iter()
            .map(|version| render_version(model, version))
            .collect();
        let mut body = Map::new();
        if !versions.is_empty() {
            body.insert("model_versions".to_owned(), Value::Array(versions));
        }
        Ok(Json(Value::Object(body)))
    })
}

/// Resolves requested stage names, ignoring case; no stages means all of them.
fn requested_stages(requested: &[String]) -> ApiResult<Vec<&'static str>> {
    if requested.is_empty() {
        return Ok(STAGES.to_vec());
    }
    requested
        .iter()
        .map(|stage| {
            STAGES
                .iter()
                .find(|known| known.eq_ignore_ascii_case(stage))
                .copied()
                .ok_or_else(|| ApiError::invalid_parameter(format!("Invalid Model Version stage: {stage}. Value must be one of None, Staging, Production, Archived.")))
        })
        .collect()
}

async fn get_model_version(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let name = params.require("name")?.to_owned();
    let version = params.require("version")?.to_owned();
    state.read(|ws, _| {
        require_read(ws, &caller)?;
        let model = find_model(ws, &name)?;
        let found = find_version(model, &version)?;
        Ok(Json(
            json!({ "model_version": render_version(model, found) }),
        ))
    })
}

/// Returns where a version's artifacts live, as a remote reader asks before it downloads a model.
/// The emulator stores no artifacts, so this is the version's `source`.
// NOTE: the real service may return a registry-managed location instead of the source.
async fn get_download_uri(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let name = params.require("name")?.to_owned();
    let version = params.require("version")?.to_owned();
    state.read(|ws, _| {
        require_read(ws, &caller)?;
        let found = find_version(find_model(ws, &name)?, &version)?;
        Ok(Json(json!({ "artifact_uri": found.source })))
    })
}

/// Finds a version of a model by its number as text.
fn find_version<'a>(model: &'a RegisteredModel, version: &str) -> ApiResult<&'a ModelVersion> {
    // NOTE: this is the open-source MLflow wording; the Databricks wording is unconfirmed.
    let missing = || {
        ApiError::not_found(format!(
            "Model Version (name={}, version={version}) not found",
            model.name
        ))
    };
    let number = version.parse::<u32>().map_err(|_| missing())?;
    model
        .versions
        .iter()
        .find(|candidate| candidate.version == number)
        .ok_or_else(missing)
}

/// Searches versions by model name (`name='x'` or a LIKE pattern), newest first within a model.
async fn search_model_versions(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let filter = NameFilter::parse(params.get("filter"))?;
    let size = page_size(&params, MAX_VERSION_PAGE, MAX_VERSION_PAGE)?;
    let offset = page_offset(&params)?;
    state.read(|ws, _| {
        require_read(ws, &caller)?;
        let mut versions = Vec::new();
        for model in ws
            .models
            .values()
            .filter(|model| filter.matches(&model.name))
        {
            let mut sorted: Vec<&ModelVersion> = model.versions.iter().collect();
            sorted.sort_by_key(|version| std::cmp::Reverse(version.version));
            versions.extend(
                sorted
                    .into_iter()
                    .map(|version| render_version(model, version)),
            );
        }
        Ok(Json(page("model_versions", versions, offset, size)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_wildcards() {
        assert!(like("%fraud%", "fraud-detector"));
        assert!(like("churn_model", "churn-model"));
        assert!(!like("churn", "churn-model"));
        assert!(like("%", ""));
    }

    #[test]
    fn name_filter_parses_forms() {
        assert!(
            NameFilter::parse(Some("name = 'churn-model'"))
                .unwrap()
                .matches("churn-model")
        );
        assert!(
            NameFilter::parse(Some("name='churn-model'"))
                .unwrap()
                .matches("churn-model")
        );
        assert!(
            NameFilter::parse(Some("name ILIKE '%FRAUD%'"))
                .unwrap()
                .matches("fraud-detector")
        );
        assert!(
            !NameFilter::parse(Some("name LIKE '%FRAUD%'"))
                .unwrap()
                .matches("fraud-detector")
        );
        assert!(
            NameFilter::parse(Some("demand"))
                .unwrap()
                .matches("demand-forecast")
        );
        assert!(NameFilter::parse(Some("tags.team = 'x'")).is_err());
    }
}
