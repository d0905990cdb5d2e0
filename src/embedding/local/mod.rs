//! The `local` provider: a BERT-family sentence-transformer run in-process, loaded
//! once per process from a directory with `config.json`, `tokenizer.json` and
//! `model.safetensors` (as sentence-transformers saves it). Mean pooling and L2
//! normalisation, as sentence-transformers' default pipeline does.

mod bert;
mod gemm;
mod tokenizer;
mod unicode_tables;

use std::path::Path;

use crate::error::{Error, Result};

pub use bert::{Bert, BertConfig};
pub use tokenizer::WordPiece;

#[derive(Debug)]
pub struct LocalModel {
    tokenizer: WordPiece,
    bert: Bert,
    max_tokens: usize,
    threads: usize,
}

impl LocalModel {
    pub fn load(dir: &Path) -> Result<LocalModel> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read_to_string(&p).map_err(|e| {
                Error::Configuration(format!(
                    "local model directory {}: cannot read {name} ({e}); it needs config.json, tokenizer.json and model.safetensors",
                    dir.display()
                ))
            })
        };
        let config = BertConfig::from_json(&read("config.json")?)?;
        let tokenizer = WordPiece::from_json(&read("tokenizer.json")?)?;
        let weights = dir.join("model.safetensors");
        if !weights.exists() {
            return Err(Error::Configuration(format!("local model directory {}: model.safetensors is missing", dir.display())));
        }
        let bert = Bert::load(config, &weights)?;
        // sentence-transformers' own limit when it is given, else the model's.
        let max_tokens = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .map(|n| n as usize)
            .unwrap_or(bert.max_positions())
            .min(bert.max_positions());
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Ok(LocalModel { tokenizer, bert, max_tokens, threads })
    }

    pub fn dims(&self) -> usize {
        self.bert.hidden()
    }

    /// Use at most `n` threads per call (benchmarks).
    pub fn set_threads(&mut self, n: usize) {
        self.threads = n.max(1);
    }

    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, self.max_tokens)
    }

    /// Embeddings of `texts` (CPU-bound: call from a blocking thread).
    pub fn embed(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| self.tokenize(t)).collect();
        self.bert.embed(&ids, self.threads)
    }
}
