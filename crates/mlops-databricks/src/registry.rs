//! Workspace model registry (MLflow) reads.

use std::collections::HashSet;

use reqwest::Method;
use serde::Deserialize;

use crate::{Error, WorkspaceClient, lenient};

/// Page size of registered-model search, which is the API maximum.
const SEARCH_PAGE_SIZE: &str = "1000";

/// A registered model as returned by search.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegisteredModel {
    /// Model name.
    pub name: String,
    /// Creation time in milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "lenient::optional_integer")]
    pub creation_timestamp: Option<i64>,
    /// Last update time in milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "lenient::optional_integer")]
    pub last_updated_timestamp: Option<i64>,
    /// User who created the model.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Latest version per stage.
    #[serde(default, deserialize_with = "lenient::list")]
    pub latest_versions: Vec<ModelVersion>,
}

/// A model version summary.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ModelVersion {
    /// Model name.
    #[serde(default)]
    pub name: String,
    /// Version number as text.
    #[serde(deserialize_with = "lenient::string")]
    pub version: String,
    /// `None`, `Staging`, `Production` or `Archived`.
    #[serde(default)]
    pub current_stage: Option<String>,
    /// `READY`, `PENDING_REGISTRATION` or `FAILED_REGISTRATION`.
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Deserialize)]
struct SearchPage {
    #[serde(default, deserialize_with = "lenient::list")]
    registered_models: Vec<RegisteredModel>,
    #[serde(default)]
    next_page_token: Option<String>,
}

impl WorkspaceClient {
    /// Searches registered models, following `next_page_token` to the last page.
    ///
    /// `filter` uses MLflow syntax such as `name LIKE '%churn%'`.
    pub async fn search_registered_models(
        &self,
        filter: Option<&str>,
    ) -> Result<Vec<RegisteredModel>, Error> {
        let mut models = Vec::new();
        let mut seen_tokens = HashSet::new();
        let mut page_token: Option<String> = None;

        loop {
            let mut call = self
                .call(Method::GET, &["mlflow", "registered-models", "search"])
                .query("max_results", SEARCH_PAGE_SIZE);
            if let Some(filter) = filter {
                call = call.query("filter", filter);
            }
            if let Some(token) = &page_token {
                call = call.query("page_token", token);
            }

            let page: SearchPage = self.send_json(call).await?;
            models.extend(page.registered_models);

            // A repeated token would loop forever, so it ends the search like an empty one.
            match page.next_page_token.filter(|token| !token.is_empty()) {
                Some(token) if seen_tokens.insert(token.clone()) => page_token = Some(token),
                _ => return Ok(models),
            }
        }
    }
}
