//! The HTTP providers: Ollama (`POST {base_url}/api/embed`, `{"model", "input": [..]}`
//! → `{"embeddings": [[..]]}`) and OpenAI-compatible servers (`POST
//! {base_url}/v1/embeddings` → `{"data": [{"index", "embedding"}]}`, bearer key from
//! the environment variable the model names).
//!
//! Transient failures (connection refused or reset, timeouts, HTTP 408/429/5xx) are
//! retried with exponential backoff; what is left is reported with the model's name
//! and URL, never its key: cannot connect → 08001, timeout or HTTP error → 08006.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::Embedder;
use crate::catalog::models::{DEFAULT_TIMEOUT_MS, ModelRecord};
use crate::error::{Error, Result};

/// Attempts per batch (first try + retries) and the first backoff.
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

pub struct HttpEmbedder {
    rec: ModelRecord,
    url: String,
    client: reqwest::Client,
    timeout: Duration,
}

enum Failure {
    /// Worth retrying.
    Transient(Error),
    Permanent(Error),
}

impl HttpEmbedder {
    pub fn new(rec: ModelRecord, client: reqwest::Client) -> Result<HttpEmbedder> {
        let base = rec.base_url.clone().unwrap_or_default();
        let base = base.trim_end_matches('/');
        let url = match rec.provider.as_str() {
            "ollama" => format!("{base}/api/embed"),
            // Accept base URLs given with or without the /v1 suffix.
            _ if base.ends_with("/v1") => format!("{base}/embeddings"),
            _ => format!("{base}/v1/embeddings"),
        };
        let timeout = Duration::from_millis(rec.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS));
        Ok(HttpEmbedder { rec, url, client, timeout })
    }

    fn what(&self) -> String {
        format!("embedding model \"{}\"", self.rec.name)
    }

    async fn attempt(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, Failure> {
        let model = self.rec.model.clone().unwrap_or_default();
        let body = json!({ "model": model, "input": texts });
        let mut req = self.client.post(&self.url).timeout(self.timeout).json(&body);
        if let Some(var) = &self.rec.api_key_env {
            let key = std::env::var(var).map_err(|_| {
                Failure::Permanent(Error::Configuration(format!(
                    "{}: environment variable {var} (its api_key_env) is not set in the server's environment",
                    self.what()
                )))
            })?;
            req = req.bearer_auth(key);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Err(self.transport_failure(e)),
        };
        let status = resp.status();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return Err(self.transport_failure(e)),
        };
        if !status.is_success() {
            let detail: String = text.chars().take(200).collect();
            let err = Error::ConnectionFailure(format!(
                "{} at {} answered HTTP {}: {}",
                self.what(),
                self.url,
                status.as_u16(),
                detail.trim()
            ));
            let transient = status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408;
            return Err(if transient { Failure::Transient(err) } else { Failure::Permanent(err) });
        }
        self.parse(&text, texts.len()).map_err(Failure::Permanent)
    }

    fn transport_failure(&self, e: reqwest::Error) -> Failure {
        let reason = root_cause(&e);
        if e.is_connect() {
            Failure::Transient(Error::Unreachable { what: self.what(), location: self.url.clone(), reason })
        } else if e.is_timeout() {
            Failure::Transient(Error::ConnectionFailure(format!(
                "{} at {} did not answer within {} ms (timeout_ms)",
                self.what(),
                self.url,
                self.timeout.as_millis()
            )))
        } else {
            Failure::Transient(Error::ConnectionFailure(format!("{} at {}: {reason}", self.what(), self.url)))
        }
    }

    fn parse(&self, text: &str, n: usize) -> Result<Vec<Vec<f32>>> {
        let bad = |why: String| Error::ConnectionFailure(format!("{} at {} gave an unusable answer: {why}", self.what(), self.url));
        let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON ({e})")))?;
        let vectors: Vec<&Value> = if self.rec.provider == "ollama" {
            v["embeddings"].as_array().ok_or_else(|| bad("no \"embeddings\" array".into()))?.iter().collect()
        } else {
            let mut data: Vec<&Value> = v["data"].as_array().ok_or_else(|| bad("no \"data\" array".into()))?.iter().collect();
            data.sort_by_key(|d| d["index"].as_u64().unwrap_or(0));
            data.into_iter().map(|d| &d["embedding"]).collect()
        };
        if vectors.len() != n {
            return Err(bad(format!("{} embeddings for {n} texts", vectors.len())));
        }
        vectors
            .into_iter()
            .map(|e| {
                e.as_array()
                    .ok_or_else(|| bad("an embedding is not an array".into()))?
                    .iter()
                    .map(|x| x.as_f64().map(|f| f as f32).ok_or_else(|| bad("an embedding holds a non-number".into())))
                    .collect()
            })
            .collect()
    }
}

/// The innermost error message (reqwest's outer text is just "error sending request").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[async_trait]
impl Embedder for HttpEmbedder {
    async fn embed_batch(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.attempt(&texts).await {
                Ok(v) => return Ok(v),
                Err(Failure::Permanent(e)) => return Err(e),
                Err(Failure::Transient(e)) if attempt >= ATTEMPTS => return Err(e),
                Err(Failure::Transient(e)) => {
                    tracing::warn!("{e}; retrying in {backoff:?} (attempt {attempt} of {ATTEMPTS})");
                    tokio::time::sleep(backoff).await;
                    backoff *= 3;
                    attempt += 1;
                }
            }
        }
    }

    fn max_in_flight(&self) -> usize {
        4
    }
}
