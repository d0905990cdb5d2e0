//! Text → vector: the model registry and the providers behind `embed()`, text indexes
//! and `vector_search` with a text query.
//!
//! [`Models`] resolves a model name (the built-in `hash`, `lakehouse.toml`'s
//! `[[models]]`, or the catalog's `CALL create_model` records), loads each model once
//! per process, and embeds texts: duplicates and recently seen texts are answered
//! from an in-memory cache, the rest go to the provider in batches (`batch_size`,
//! default 64) with several batches in flight. NULL and empty texts give NULL.

pub mod hash;
pub mod http;
pub mod local;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use crate::catalog::Catalog;
use crate::catalog::models::{BUILTIN, ModelRecord, unknown_model};
use crate::error::{Error, Result};

/// One provider instance for one model.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// Embed non-empty texts; one vector per text, in order.
    async fn embed_batch(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>>;
    /// Batches sent at once.
    fn max_in_flight(&self) -> usize;
}

/// Cached vectors, by model then text, evicted oldest first past a byte budget.
/// Looked up for every text `embed` sees: by `&str`, without allocating.
#[derive(Default)]
struct TextCache {
    map: HashMap<String, HashMap<Arc<str>, Arc<[f32]>>>,
    order: VecDeque<(String, Arc<str>)>,
    bytes: usize,
}

const CACHE_BYTES: usize = 64 << 20;

fn entry_bytes(model: &str, text: &str, v: &[f32]) -> usize {
    v.len() * 4 + text.len() + model.len() + 64
}

impl TextCache {
    fn get(&self, model: &str, text: &str) -> Option<Arc<[f32]>> {
        self.map.get(model)?.get(text).cloned()
    }

    fn put(&mut self, model: &str, text: &str, v: Arc<[f32]>) {
        let texts = self.map.entry(model.to_string()).or_default();
        if texts.contains_key(text) {
            return;
        }
        let text: Arc<str> = text.into();
        self.bytes += entry_bytes(model, &text, &v);
        texts.insert(text.clone(), v);
        self.order.push_back((model.to_string(), text));
        while self.bytes > CACHE_BYTES {
            let Some((m, t)) = self.order.pop_front() else { break };
            if let Some(v) = self.map.get_mut(&m).and_then(|texts| texts.remove(&t)) {
                self.bytes = self.bytes.saturating_sub(entry_bytes(&m, &t, &v));
            }
        }
    }

    fn forget(&mut self, model: &str) {
        if let Some(texts) = self.map.remove(model) {
            self.bytes = self.bytes.saturating_sub(texts.iter().map(|(t, v)| entry_bytes(model, t, v)).sum());
            self.order.retain(|(m, _)| m != model);
        }
    }
}

pub struct Models {
    catalog: Arc<Catalog>,
    configured: BTreeMap<String, ModelRecord>,
    /// Loaded providers, with the record they were loaded from.
    loaded: tokio::sync::Mutex<HashMap<String, (ModelRecord, Arc<dyn Embedder>)>>,
    cache: Mutex<TextCache>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models").field("configured", &self.configured.keys()).finish()
    }
}

/// Where a model's record comes from (`lakehouse.models.source`).
pub fn source_of(name: &str, configured: bool) -> &'static str {
    if name == BUILTIN {
        "built-in"
    } else if configured {
        "lakehouse.toml"
    } else {
        "catalog"
    }
}

impl Models {
    pub fn new(catalog: Arc<Catalog>, configured: Vec<ModelRecord>) -> Result<Models> {
        let mut map = BTreeMap::new();
        for mut m in configured {
            m.validate()?;
            if m.name == BUILTIN {
                return Err(Error::Configuration(format!("[[models]]: \"{BUILTIN}\" is the built-in model's name")));
            }
            if m.provider == "local" && m.dims.is_none() {
                m.dims = local_dims(&m).ok();
            }
            if map.insert(m.name.clone(), m).is_some() {
                return Err(Error::Configuration("[[models]]: a model name appears twice".into()));
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::Internal(format!("http client: {e}")))?;
        Ok(Models { catalog, configured: map, loaded: Default::default(), cache: Default::default(), http })
    }

    /// Learn the dimension of `lakehouse.toml` HTTP models declared without `dims`
    /// (one request each, at start). A server that is down leaves it unknown: the
    /// model then fails with 08001 until a restart finds the server.
    pub async fn learn_configured_dims(&mut self) {
        let missing: Vec<ModelRecord> = self.configured.values().filter(|m| m.dims.is_none()).cloned().collect();
        for rec in missing {
            match self.probe(&rec).await {
                Ok(d) => {
                    if let Some(m) = self.configured.get_mut(&rec.name) {
                        m.dims = Some(d);
                    }
                }
                Err(e) => tracing::warn!("model {}: dimension unknown until its server answers at start: {e}", rec.name),
            }
        }
    }

    /// The record of model `name` (42704 when there is none).
    pub fn record(&self, name: &str) -> Result<ModelRecord> {
        if name == BUILTIN {
            return Ok(ModelRecord::builtin());
        }
        if let Some(m) = self.configured.get(name) {
            return Ok(m.clone());
        }
        self.catalog.model(name).ok_or_else(|| unknown_model(name))
    }

    pub fn is_configured(&self, name: &str) -> bool {
        name == BUILTIN || self.configured.contains_key(name)
    }

    /// Every model: built-in, configured, then the catalog's.
    pub fn all(&self) -> Vec<ModelRecord> {
        let mut out = vec![ModelRecord::builtin()];
        out.extend(self.configured.values().cloned());
        out.extend(self.catalog.snapshot().models.values().filter(|m| !self.configured.contains_key(&m.name)).cloned());
        out
    }

    /// The dimension `name` produces (known once created; probed for configured HTTP
    /// models on first use).
    pub fn dims(&self, name: &str) -> Result<usize> {
        known_dims(&self.record(name)?)
    }

    /// Drop the loaded provider and cached vectors of `name` (dropped or replaced).
    pub async fn forget(&self, name: &str) {
        self.loaded.lock().await.remove(name);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).forget(name);
    }

    /// The provider for `rec`, loading it the first time (a local model is read from
    /// disk once per process).
    async fn embedder(&self, rec: &ModelRecord) -> Result<Arc<dyn Embedder>> {
        let mut loaded = self.loaded.lock().await;
        if let Some((r, e)) = loaded.get(&rec.name) {
            if r == rec {
                return Ok(e.clone());
            }
        }
        let e: Arc<dyn Embedder> = match rec.provider.as_str() {
            "hash" => Arc::new(hash::HashEmbedder::new(rec.dims.unwrap_or(crate::catalog::models::HASH_DIMS))),
            "local" => {
                let path = std::path::PathBuf::from(rec.path.clone().unwrap_or_default());
                let model = tokio::task::spawn_blocking(move || local::LocalModel::load(&path))
                    .await
                    .map_err(|e| Error::Internal(format!("model load task: {e}")))??;
                Arc::new(LocalEmbedder(Arc::new(model)))
            }
            "ollama" | "openai" => Arc::new(http::HttpEmbedder::new(rec.clone(), self.http.clone())?),
            other => return Err(Error::invalid(format!("unknown provider {other}"))),
        };
        loaded.insert(rec.name.clone(), (rec.clone(), e.clone()));
        Ok(e)
    }

    /// Embed one text into a vector of the model's dimension, learning it (creation).
    pub async fn probe(&self, rec: &ModelRecord) -> Result<usize> {
        let e = self.embedder(rec).await?;
        let out = e.embed_batch(vec!["lakehouse dimension probe".into()]).await;
        self.loaded.lock().await.remove(&rec.name);
        let v = out?.pop().ok_or_else(|| bad_answer(rec, "no embedding"))?;
        if v.is_empty() {
            return Err(bad_answer(rec, "an empty embedding"));
        }
        Ok(v.len())
    }

    /// Embed `texts` with model `name`: NULL or empty text → None.
    pub async fn embed(&self, name: &str, texts: &[Option<&str>], batch_size: Option<usize>) -> Result<Vec<Option<Arc<[f32]>>>> {
        let rec = self.record(name)?;
        let dims = known_dims(&rec)?;
        let mut out: Vec<Option<Arc<[f32]>>> = vec![None; texts.len()];
        // Distinct texts not in the cache, and the rows waiting for each.
        let mut wanted: HashMap<&str, Vec<usize>> = HashMap::new();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            for (i, t) in texts.iter().enumerate() {
                let Some(t) = t.filter(|t| !t.is_empty()) else { continue };
                if let Some(rows) = wanted.get_mut(t) {
                    rows.push(i);
                } else if let Some(v) = cache.get(name, t) {
                    out[i] = Some(v);
                } else {
                    wanted.insert(t, vec![i]);
                }
            }
        }
        if wanted.is_empty() {
            return Ok(out);
        }
        let embedder = self.embedder(&rec).await?;
        let distinct: Vec<&str> = wanted.keys().copied().collect();
        let batch = batch_size.unwrap_or_else(|| rec.batch_size()).max(1);
        let in_flight = rec.max_in_flight.unwrap_or_else(|| embedder.max_in_flight()).max(1);
        let batches: Vec<Vec<String>> = distinct.chunks(batch).map(|c| c.iter().map(|s| s.to_string()).collect()).collect();
        let calls: Vec<_> = batches
            .iter()
            .map(|texts| {
                let e = embedder.clone();
                let texts = texts.clone();
                async move { e.embed_batch(texts).await }
            })
            .collect();
        let mut results = futures::stream::iter(calls).buffered(in_flight);
        let mut chunks = batches.iter();
        while let Some(vectors) = results.next().await {
            let Some(chunk) = chunks.next() else { break };
            let vectors = vectors?;
            if vectors.len() != chunk.len() {
                return Err(bad_answer(&rec, &format!("{} embeddings for {} texts", vectors.len(), chunk.len())));
            }
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            for (text, v) in chunk.iter().zip(vectors) {
                if v.len() != dims {
                    return Err(Error::DataException(format!(
                        "embedding model \"{name}\" at {} returned {} dimensions, expected {dims} (as when the model was created); a model that changed needs a new model name and a new index",
                        rec.location(),
                        v.len()
                    )));
                }
                if let Err(e) = crate::udf::vector::check_values(&v) {
                    return Err(bad_answer(&rec, &e.to_string()));
                }
                let v: Arc<[f32]> = v.into();
                cache.put(name, text, v.clone());
                for &row in &wanted[text.as_str()] {
                    out[row] = Some(v.clone());
                }
            }
        }
        Ok(out)
    }

    /// Whether the model can be used now: files present, server accepting connections.
    pub async fn reachable(&self, rec: &ModelRecord) -> bool {
        match rec.provider.as_str() {
            "hash" => true,
            "local" => {
                let dir = std::path::Path::new(rec.path.as_deref().unwrap_or_default());
                ["config.json", "tokenizer.json", "model.safetensors"].iter().all(|f| dir.join(f).is_file())
            }
            _ => {
                let Some(addr) = rec.base_url.as_deref().and_then(|u| url::Url::parse(u).ok()).and_then(|u| {
                    Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?))
                }) else {
                    return false;
                };
                matches!(
                    tokio::time::timeout(Duration::from_millis(800), tokio::net::TcpStream::connect(addr)).await,
                    Ok(Ok(_))
                )
            }
        }
    }
}

/// A model's dimension, or 08001 while it is unknown (a configured HTTP model whose
/// server was down at start).
fn known_dims(rec: &ModelRecord) -> Result<usize> {
    rec.dims.ok_or_else(|| Error::Unreachable {
        what: format!("embedding model \"{}\"", rec.name),
        location: rec.location(),
        reason: "its dimension is not known yet (the server was not reachable); declare dims in lakehouse.toml".into(),
    })
}

fn bad_answer(rec: &ModelRecord, what: &str) -> Error {
    Error::ConnectionFailure(format!(
        "embedding model \"{}\" at {} gave an unusable answer: {what}",
        rec.name,
        rec.location()
    ))
}

/// A local model's output dimension, from its config.json.
pub fn local_dims(rec: &ModelRecord) -> Result<usize> {
    let dir = std::path::Path::new(rec.path.as_deref().unwrap_or_default());
    let text = std::fs::read_to_string(dir.join("config.json")).map_err(|e| {
        Error::Configuration(format!("model \"{}\": cannot read {}/config.json: {e}", rec.name, dir.display()))
    })?;
    Ok(local::BertConfig::from_json(&text)?.hidden)
}

struct LocalEmbedder(Arc<local::LocalModel>);

#[async_trait]
impl Embedder for LocalEmbedder {
    async fn embed_batch(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        let model = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            model.embed(&refs)
        })
        .await
        .map_err(|e| Error::Internal(format!("embedding task: {e}")))
    }

    /// The model already uses every core for one batch.
    fn max_in_flight(&self) -> usize {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_finds_forgets_and_counts_bytes() {
        let mut c = TextCache::default();
        c.put("m", "a", vec![1.0, 2.0].into());
        c.put("m", "a", vec![9.0, 9.0].into()); // already there: kept
        c.put("n", "a", vec![3.0].into());
        assert_eq!(c.get("m", "a").as_deref(), Some(&[1.0, 2.0][..]));
        assert_eq!(c.get("n", "a").as_deref(), Some(&[3.0][..]));
        assert!(c.get("m", "b").is_none());
        c.forget("m");
        assert!(c.get("m", "a").is_none());
        assert_eq!(c.bytes, entry_bytes("n", "a", &[3.0]));
        assert_eq!(c.order.len(), 1);
    }
}
