//! The gateway's REST API as the benchmark calls it.

use anyhow::{Context, bail};
use serde_json::Value;

#[derive(Clone)]
pub(crate) struct Gateway {
    pub(crate) http: reqwest::Client,
    pub(crate) api: String,
    pub(crate) token: String,
}

impl Gateway {
    pub(crate) async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        json_of(response, path).await
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .send()
            .await?;
        json_of(response, path).await
    }
}

pub(crate) async fn json_of(response: reqwest::Response, path: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{path}: {status} {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{path}: not JSON: {text}"))
}
