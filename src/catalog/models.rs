//! Embedding models: what `CALL create_model(…)` registered (persisted here) or
//! `lakehouse.toml` declares (`[[models]]`, not persisted), plus the built-in `hash`.
//!
//! A record holds where the model is and how to call it, never a secret: an OpenAI
//! key is read at call time from the environment variable the record names.

use serde::{Deserialize, Serialize};

use super::Catalog;
use crate::error::{Error, Result};

/// The built-in lexical model: always present, the default for `embed(text)`.
pub const BUILTIN: &str = "hash";
pub const HASH_DIMS: usize = 256;
pub const PROVIDERS: &[&str] = &["hash", "local", "ollama", "openai"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelRecord {
    pub name: String,
    /// `hash`, `local`, `ollama` or `openai`.
    pub provider: String,
    /// HTTP providers: `http://host:port` (the API path is the provider's).
    #[serde(default)]
    pub base_url: Option<String>,
    /// HTTP providers: the model name the server knows.
    #[serde(default)]
    pub model: Option<String>,
    /// `local`: the model directory.
    #[serde(default)]
    pub path: Option<String>,
    /// `openai`: the environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Output dimension (probed at creation when not given).
    #[serde(default)]
    pub dims: Option<usize>,
    /// Texts per provider request (default 64).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Requests in flight at once (default 4 for HTTP, 1 for local).
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// Per-request timeout in milliseconds (default 30000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub created_at: String,
}

pub const DEFAULT_BATCH: usize = 64;
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

impl ModelRecord {
    pub fn builtin() -> ModelRecord {
        ModelRecord { name: BUILTIN.into(), provider: "hash".into(), dims: Some(HASH_DIMS), ..Default::default() }
    }

    /// Where the model lives, for messages and `lakehouse.models` (never a secret).
    pub fn location(&self) -> String {
        match self.provider.as_str() {
            "local" => self.path.clone().unwrap_or_default(),
            "hash" => "built-in".into(),
            _ => self.base_url.clone().unwrap_or_default(),
        }
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size.unwrap_or(DEFAULT_BATCH).max(1)
    }

    /// Check a record's fields before it is stored or used.
    pub fn validate(&self) -> Result<()> {
        super::buckets::validate_name("model", &self.name)?;
        let need = |field: &Option<String>, what: &str| {
            if field.as_deref().is_none_or(str::is_empty) {
                Err(Error::invalid(format!(
                    "model \"{}\": provider {} needs {what}",
                    self.name, self.provider
                )))
            } else {
                Ok(())
            }
        };
        match self.provider.as_str() {
            "hash" => {}
            "local" => need(&self.path, "path => '/dir/with/config.json,tokenizer.json,model.safetensors'")?,
            "ollama" | "openai" => {
                need(&self.base_url, "base_url => 'http://host:port'")?;
                need(&self.model, "model => 'name the server knows'")?;
                let url = self.base_url.as_deref().unwrap_or_default();
                let parsed = url::Url::parse(url)
                    .map_err(|e| Error::invalid(format!("model \"{}\": base_url {url:?} is not a URL ({e})", self.name)))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(Error::invalid(format!("model \"{}\": base_url must be http:// or https://", self.name)));
                }
                if !parsed.username().is_empty() || parsed.password().is_some() {
                    return Err(Error::invalid(format!(
                        "model \"{}\": base_url must not carry credentials (use api_key_env)",
                        self.name
                    )));
                }
            }
            other => {
                return Err(Error::invalid(format!(
                    "unknown provider \"{other}\" for model \"{}\"; use one of {}",
                    self.name,
                    PROVIDERS.join(", ")
                )));
            }
        }
        if self.api_key_env.is_some() && self.provider != "openai" {
            return Err(Error::invalid("api_key_env applies to provider openai only"));
        }
        if let Some(d) = self.dims {
            if d == 0 || d > crate::udf::vector::MAX_DIMS {
                return Err(Error::invalid(format!("dims must be between 1 and {}", crate::udf::vector::MAX_DIMS)));
            }
        }
        if self.batch_size.is_some_and(|b| b == 0 || b > 2048) {
            return Err(Error::invalid("batch_size must be between 1 and 2048"));
        }
        if self.max_in_flight.is_some_and(|b| b == 0 || b > 64) {
            return Err(Error::invalid("max_in_flight must be between 1 and 64"));
        }
        Ok(())
    }
}

pub fn unknown_model(name: &str) -> Error {
    Error::UndefinedObject(format!(
        "embedding model \"{name}\" does not exist; see SELECT name FROM lakehouse.models, or CALL create_model('{name}', provider => …)"
    ))
}

impl Catalog {
    pub fn model(&self, name: &str) -> Option<ModelRecord> {
        self.snapshot().models.get(name).cloned()
    }

    pub fn add_model(&self, record: ModelRecord) -> Result<()> {
        self.update(|s| {
            if s.models.contains_key(&record.name) {
                return Err(Error::DuplicateObject(format!("embedding model \"{}\"", record.name)));
            }
            s.models.insert(record.name.clone(), record);
            Ok(())
        })
    }

    /// Remove a model no index uses.
    pub fn remove_model(&self, name: &str) -> Result<Option<ModelRecord>> {
        self.update(|s| {
            let users: Vec<&str> = s.indexes.values().filter(|i| i.model.as_deref() == Some(name)).map(|i| i.name.as_str()).collect();
            if !users.is_empty() {
                return Err(Error::DependentObjects(format!(
                    "cannot drop embedding model \"{name}\" because index {} uses it; DROP INDEX first",
                    users.join(", ")
                )));
            }
            Ok(s.models.remove(name))
        })
    }
}
