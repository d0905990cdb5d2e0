//! A BERT encoder forward pass on the CPU, in f32, for sentence embeddings.
//!
//! No padding: the tokens of every text in a batch are laid end to end, so the dense
//! layers run as one matrix product over exactly the real tokens (sgemm from
//! `matrixmultiply`, AVX2/FMA at run time), and attention runs per text over its own
//! tokens. Padding to the longest text — what batched runtimes do — costs up to 2–3×
//! on a corpus of mixed lengths. Work is split across threads by text, balanced by
//! token count.

use std::collections::HashMap;
use std::path::Path;

use super::gemm::{self, Packed};
use super::pool::Helpers;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct BertConfig {
    pub hidden: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub eps: f32,
    pub max_positions: usize,
}

impl BertConfig {
    pub fn from_json(text: &str) -> Result<BertConfig> {
        let bad = |why: String| Error::Configuration(format!("config.json: {why}"));
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let n = |key: &str| v[key].as_u64().map(|x| x as usize).ok_or_else(|| bad(format!("{key} is missing")));
        let kind = v["model_type"].as_str().unwrap_or("bert");
        if kind != "bert" {
            return Err(bad(format!("model_type {kind} is not supported (BERT-family sentence-transformers only)")));
        }
        if let Some(act) = v["hidden_act"].as_str() {
            if act != "gelu" {
                return Err(bad(format!("hidden_act {act} is not supported (gelu only)")));
            }
        }
        let c = BertConfig {
            hidden: n("hidden_size")?,
            heads: n("num_attention_heads")?,
            intermediate: n("intermediate_size")?,
            layers: n("num_hidden_layers")?,
            eps: v["layer_norm_eps"].as_f64().unwrap_or(1e-12) as f32,
            max_positions: n("max_position_embeddings")?,
        };
        if c.heads == 0 || c.hidden % c.heads != 0 {
            return Err(bad("hidden_size must be a multiple of num_attention_heads".into()));
        }
        Ok(c)
    }
}

struct Linear {
    /// `[out, in]`, as PyTorch stores it (for `matrixmultiply`, many rows).
    w: Vec<f32>,
    /// The same, packed in panels (few rows; see gemm.rs).
    packed: Packed,
    b: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl Linear {
    fn new(w: Vec<f32>, b: Vec<f32>, inputs: usize, outputs: usize) -> Linear {
        let packed = Packed::new(&w, outputs, inputs);
        Linear { w, packed, b, inputs, outputs }
    }
}

/// Up to this many rows a product uses the pre-packed panels; above, `matrixmultiply`
/// (whose own packing is then a small share; measured crossover ≈ 100 rows).
const FEW_ROWS: usize = 64;

struct Norm {
    g: Vec<f32>,
    b: Vec<f32>,
}

struct Layer {
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    up: Linear,
    down: Linear,
    out_norm: Norm,
}

/// How token vectors become one text vector (sentence-transformers' `1_Pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
}

pub struct Bert {
    config: BertConfig,
    pub pooling: Pooling,
    /// Helper threads for splitting one small batch's products (taken by one call at
    /// a time; a concurrent call spawns scoped threads instead).
    helpers: std::sync::Mutex<Option<Helpers>>,
    word: Vec<f32>,
    vocab: usize,
    position: Vec<f32>,
    token_type: Vec<f32>,
    emb_norm: Norm,
    layers: Vec<Layer>,
}

impl std::fmt::Debug for Bert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bert").field("config", &self.config).finish()
    }
}

/// The f32 tensors of a `.safetensors` file, by name (a leading `bert.` dropped).
fn read_safetensors(path: &Path) -> Result<HashMap<String, (Vec<usize>, Vec<f32>)>> {
    let bad = |why: String| Error::Configuration(format!("{}: {why}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
    if bytes.len() < 8 {
        return Err(bad("too short for a safetensors file".into()));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header = bytes.get(8..8 + n).ok_or_else(|| bad("header runs past the end".into()))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| bad(format!("header: {e}")))?;
    let data = &bytes[8 + n..];
    let mut out = HashMap::new();
    for (name, t) in header {
        if name == "__metadata__" || t["dtype"].as_str() != Some("F32") {
            continue;
        }
        let shape: Vec<usize> = t["shape"].as_array().into_iter().flatten().filter_map(|d| d.as_u64()).map(|d| d as usize).collect();
        let (Some(from), Some(to)) = (t["data_offsets"][0].as_u64(), t["data_offsets"][1].as_u64()) else {
            return Err(bad(format!("tensor {name} has no data_offsets")));
        };
        let raw = data.get(from as usize..to as usize).ok_or_else(|| bad(format!("tensor {name} runs past the end")))?;
        if raw.len() != shape.iter().product::<usize>() * 4 {
            return Err(bad(format!("tensor {name}: size does not match its shape")));
        }
        let values = raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        let name = name.strip_prefix("bert.").unwrap_or(&name).to_string();
        out.insert(name, (shape, values));
    }
    Ok(out)
}

impl Bert {
    pub fn load(config: BertConfig, weights: &Path) -> Result<Bert> {
        let mut t = read_safetensors(weights)?;
        let word_shape = t.get("embeddings.word_embeddings.weight").map(|(s, _)| s.clone()).unwrap_or_default();
        let types = t.get("embeddings.token_type_embeddings.weight").map(|(s, _)| s[0]).unwrap_or(1);
        let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let (s, v) = t.remove(name).ok_or_else(|| {
                Error::Configuration(format!("{}: tensor {name} is missing (not a BERT model?)", weights.display()))
            })?;
            if s != shape {
                return Err(Error::Configuration(format!(
                    "{}: tensor {name} has shape {s:?}, config.json implies {shape:?}",
                    weights.display()
                )));
            }
            Ok(v)
        };
        let h = config.hidden;
        let vocab = word_shape.first().copied().unwrap_or(0);
        let word = take("embeddings.word_embeddings.weight", &[vocab, h])?;
        let position = take("embeddings.position_embeddings.weight", &[config.max_positions, h])?;
        let token_type = take("embeddings.token_type_embeddings.weight", &[types, h])?;
        let mut norm = |prefix: &str| -> Result<Norm> {
            Ok(Norm { g: take(&format!("{prefix}.weight"), &[h])?, b: take(&format!("{prefix}.bias"), &[h])? })
        };
        let emb_norm = norm("embeddings.LayerNorm")?;
        drop(norm);
        let mut layers = vec![];
        for i in 0..config.layers {
            let p = format!("encoder.layer.{i}");
            let mut linear = |name: &str, inputs: usize, outputs: usize| -> Result<Linear> {
                Ok(Linear::new(
                    take(&format!("{p}.{name}.weight"), &[outputs, inputs])?,
                    take(&format!("{p}.{name}.bias"), &[outputs])?,
                    inputs,
                    outputs,
                ))
            };
            let q = linear("attention.self.query", h, h)?;
            let k = linear("attention.self.key", h, h)?;
            let v = linear("attention.self.value", h, h)?;
            let attn_out = linear("attention.output.dense", h, h)?;
            let up = linear("intermediate.dense", h, config.intermediate)?;
            let down = linear("output.dense", config.intermediate, h)?;
            drop(linear);
            // One product for Q, K and V.
            let qkv = Linear::new([q.w, k.w, v.w].concat(), [q.b, k.b, v.b].concat(), h, 3 * h);
            let mut norm = |name: &str| -> Result<Norm> {
                Ok(Norm { g: take(&format!("{p}.{name}.weight"), &[h])?, b: take(&format!("{p}.{name}.bias"), &[h])? })
            };
            let attn_norm = norm("attention.output.LayerNorm")?;
            let out_norm = norm("output.LayerNorm")?;
            layers.push(Layer { qkv, attn_out, attn_norm, up, down, out_norm });
        }
        Ok(Bert { config, pooling: Pooling::Mean, helpers: Default::default(), word, vocab, position, token_type, emb_norm, layers })
    }

    pub fn hidden(&self) -> usize {
        self.config.hidden
    }

    pub fn max_positions(&self) -> usize {
        self.config.max_positions
    }

    /// Pooled, L2-normalised embeddings of tokenised texts, on up to `threads`
    /// threads.
    pub fn embed(&self, texts: &[Vec<u32>], threads: usize) -> Vec<Vec<f32>> {
        let total: usize = texts.iter().map(Vec::len).sum();
        let threads = threads.max(1);
        if texts.len() < threads {
            // Too few texts to give each thread its own: split each matrix product.
            let mut guard = self.helpers.try_lock().ok();
            let helpers = guard.as_mut().map(|g| &*g.get_or_insert_with(|| Helpers::new(threads - 1)));
            let par = Par { threads, helpers: helpers.filter(|h| h.width() >= threads) };
            return self.embed_group(texts, &par);
        }
        // Contiguous groups of roughly equal token counts.
        let mut bounds = vec![0];
        let mut acc = 0;
        for (i, t) in texts.iter().enumerate() {
            acc += t.len();
            if acc * threads >= total * bounds.len() && bounds.len() < threads && i + 1 < texts.len() {
                bounds.push(i + 1);
            }
        }
        bounds.push(texts.len());
        std::thread::scope(|s| {
            let handles: Vec<_> = bounds
                .windows(2)
                .map(|w| {
                    let group = &texts[w[0]..w[1]];
                    s.spawn(move || self.embed_group(group, &Par::ONE))
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("embedding thread panicked")).collect()
        })
    }

    fn embed_group(&self, texts: &[Vec<u32>], par: &Par) -> Vec<Vec<f32>> {
        let h = self.config.hidden;
        let n: usize = texts.iter().map(Vec::len).sum();
        if n == 0 {
            return vec![vec![0.0; h]; texts.len()];
        }
        let mut x = vec![0f32; n * h];
        let mut row = 0;
        for ids in texts {
            for (pos, &id) in ids.iter().enumerate() {
                let id = (id as usize).min(self.vocab - 1);
                let pos = pos.min(self.config.max_positions - 1);
                let out = &mut x[row * h..(row + 1) * h];
                let w = &self.word[id * h..(id + 1) * h];
                let p = &self.position[pos * h..(pos + 1) * h];
                let t = &self.token_type[..h];
                for j in 0..h {
                    out[j] = w[j] + p[j] + t[j];
                }
                row += 1;
            }
        }
        layer_norm(&mut x, &self.emb_norm, h, self.config.eps);
        let mut scratch = Scratch::default();
        for layer in &self.layers {
            self.layer(layer, &mut x, texts, &mut scratch, par);
        }
        // Pooling (mean of the tokens, or the [CLS] token) then L2 normalisation.
        let mut out = Vec::with_capacity(texts.len());
        let mut row = 0;
        for ids in texts {
            let mut v = vec![0f32; h];
            let pooled = match self.pooling {
                Pooling::Mean => row..row + ids.len(),
                Pooling::Cls => row..row + ids.len().min(1),
            };
            for r in pooled {
                for (o, a) in v.iter_mut().zip(&x[r * h..(r + 1) * h]) {
                    *o += a;
                }
            }
            row += ids.len();
            let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|a| *a /= norm);
            }
            out.push(v);
        }
        out
    }

    fn layer(&self, layer: &Layer, x: &mut [f32], texts: &[Vec<u32>], s: &mut Scratch, par: &Par) {
        let h = self.config.hidden;
        let n = x.len() / h;
        let heads = self.config.heads;
        let dh = h / heads;
        let scale = 1.0 / (dh as f32).sqrt();
        linear(x, n, &layer.qkv, resize(&mut s.qkv, n * 3 * h), par);
        let ctx = resize(&mut s.ctx, n * h);
        let mut start = 0;
        for ids in texts {
            let len = ids.len();
            // Attention per head over this text's tokens: direct loops (a text is
            // tens of tokens, a head 32 wide — too small for a matrix product call).
            resize(&mut s.kh, len * dh);
            resize(&mut s.vh, len * dh);
            resize(&mut s.scores, len);
            for head in 0..heads {
                for j in 0..len {
                    let row = (start + j) * 3 * h + head * dh;
                    s.kh[j * dh..(j + 1) * dh].copy_from_slice(&s.qkv[row + h..row + h + dh]);
                    s.vh[j * dh..(j + 1) * dh].copy_from_slice(&s.qkv[row + 2 * h..row + 2 * h + dh]);
                }
                for i in 0..len {
                    let row = (start + i) * 3 * h + head * dh;
                    let q = &s.qkv[row..row + dh];
                    for (j, sc) in s.scores.iter_mut().enumerate() {
                        *sc = crate::udf::distance::dot(q, &s.kh[j * dh..(j + 1) * dh]) * scale;
                    }
                    softmax(&mut s.scores);
                    let c = &mut ctx[(start + i) * h + head * dh..(start + i) * h + (head + 1) * dh];
                    c.fill(0.0);
                    for (j, p) in s.scores.iter().enumerate() {
                        for (o, v) in c.iter_mut().zip(&s.vh[j * dh..(j + 1) * dh]) {
                            *o += p * v;
                        }
                    }
                }
            }
            start += len;
        }
        let attn = resize(&mut s.attn, n * h);
        linear(ctx, n, &layer.attn_out, attn, par);
        add_assign(x, attn);
        layer_norm(x, &layer.attn_norm, h, self.config.eps);
        let up = resize(&mut s.up, n * layer.up.outputs);
        linear(x, n, &layer.up, up, par);
        gelu_all(up);
        let down = resize(&mut s.attn, n * h);
        linear(up, n, &layer.down, down, par);
        add_assign(x, down);
        layer_norm(x, &layer.out_norm, h, self.config.eps);
    }
}

#[derive(Default)]
struct Scratch {
    qkv: Vec<f32>,
    kh: Vec<f32>,
    vh: Vec<f32>,
    ctx: Vec<f32>,
    scores: Vec<f32>,
    attn: Vec<f32>,
    up: Vec<f32>,
}

fn resize(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    v.resize(n, 0.0);
    &mut v[..n]
}

/// A pointer handed to the threads of one product; each writes its own columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
unsafe impl Send for OutPtr {}
// SAFETY: shared only among parts that write disjoint elements.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so closures capture the Send wrapper, not the field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// How one group's products are split: `threads` parts, run on helper threads when
/// there are some, else on scoped threads.
struct Par<'a> {
    threads: usize,
    helpers: Option<&'a Helpers>,
}

impl Par<'_> {
    const ONE: Par<'static> = Par { threads: 1, helpers: None };

    /// `work(i)` for every part `i < parts`, in parallel.
    fn each(&self, parts: usize, work: &(dyn Fn(usize) + Sync)) {
        match self.helpers {
            Some(h) if parts <= h.width() => h.run(parts, work),
            _ => std::thread::scope(|s| {
                for i in 1..parts {
                    s.spawn(move || work(i));
                }
                work(0);
            }),
        }
    }
}

/// `out = x Wᵀ + b` for `n` rows, split by output columns over `par.threads`.
fn linear(x: &[f32], n: usize, l: &Linear, out: &mut [f32], par: &Par) {
    assert!(x.len() >= n * l.inputs && out.len() >= n * l.outputs);
    for r in out.chunks_exact_mut(l.outputs) {
        r.copy_from_slice(&l.b);
    }
    let out = OutPtr(out.as_mut_ptr());
    if n <= FEW_ROWS {
        let panels = l.packed.panels();
        let parts = par.threads.clamp(1, panels.max(1));
        let per = panels.div_ceil(parts);
        // SAFETY: `out` holds n × outputs values; each part writes only its own panels.
        let work = |i: usize| unsafe { gemm::add_product_raw(x, n, &l.packed, out.get(), l.outputs, (i * per).min(panels)..((i + 1) * per).min(panels)) };
        if parts == 1 {
            work(0);
        } else {
            par.each(parts, &work);
        }
        return;
    }
    // Columns [from, to) of the product into `out` (row stride l.outputs).
    let part = |from: usize, to: usize| unsafe {
        matrixmultiply::sgemm(
            n, l.inputs, to - from, 1.0,
            x.as_ptr(), l.inputs as isize, 1,
            l.w.as_ptr().add(from * l.inputs), 1, l.inputs as isize,
            1.0, out.get().add(from), l.outputs as isize, 1,
        );
    };
    if par.threads <= 1 {
        part(0, l.outputs);
        return;
    }
    // Ranges in multiples of 16 columns (whole sgemm tiles).
    let step = l.outputs.div_ceil(par.threads).div_ceil(16) * 16;
    let parts = l.outputs.div_ceil(step);
    par.each(parts, &|i| part(i * step, ((i + 1) * step).min(l.outputs)));
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn layer_norm(x: &mut [f32], norm: &Norm, h: usize, eps: f32) {
    for r in x.chunks_exact_mut(h) {
        let mean = r.iter().sum::<f32>() / h as f32;
        let var = r.iter().map(|a| (a - mean) * (a - mean)).sum::<f32>() / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((a, g), b) in r.iter_mut().zip(&norm.g).zip(&norm.b) {
            *a = (*a - mean) * inv * g + b;
        }
    }
}

fn softmax(r: &mut [f32]) {
    let max = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for a in r.iter_mut() {
        *a = (*a - max).exp();
        sum += *a;
    }
    let inv = 1.0 / sum;
    r.iter_mut().for_each(|a| *a *= inv);
}

/// GELU over a slice, in the widest vectors the CPU has (the crate itself targets
/// baseline x86-64, whose 4-lane SSE loop was 12% of a batch-1 profile).
fn gelu_all(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn wide512(v: &mut [f32]) {
            v.iter_mut().for_each(|a| *a = gelu(*a));
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn wide256(v: &mut [f32]) {
            v.iter_mut().for_each(|a| *a = gelu(*a));
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the feature the function is compiled for.
            return unsafe { wide512(v) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { wide256(v) };
        }
    }
    v.iter_mut().for_each(|a| *a = gelu(*a));
}

/// The exact GELU, `x·Φ(x)`, as BERT's `gelu` is.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf in f32 as a branch-free rational function of x² on [-4, 4] (the minimax fit
/// XLA and Eigen use; within 2e-7 of the true value), so the GELU loop vectorises.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_3e-4;
    p = p * x2 + -2.954_600_2e-3;
    p = p * x2 + -1.609_603_3e-2;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329_2e-3;
    q = q * x2 + -1.426_474e-2;
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_and_gelu_match_known_values() {
        for (x, want) in [(0.0f32, 0.0f32), (0.5, 0.5204999), (1.0, 0.8427008), (-2.0, -0.9953223), (3.5, 0.9999993), (6.0, 1.0)] {
            assert!((erf(x) - want).abs() < 4e-7, "erf({x}) = {}", erf(x));
        }
        // Against an independent f64 erf (Numerical Recipes' erfc fit, 1.2e-7) on a grid.
        let reference = |x: f64| {
            let z = x.abs();
            let t = 1.0 / (1.0 + 0.5 * z);
            let c = [1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277];
            let poly = c.iter().rev().fold(0.0, |acc, k| acc * t + k);
            let erfc = t * (-z * z - 1.26551223 + t * poly).exp();
            if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
        };
        for i in -600..=600 {
            let x = i as f64 / 100.0;
            assert!((erf(x as f32) as f64 - reference(x)).abs() < 5e-7, "erf({x})");
        }
        assert!((gelu(1.0) - 0.8413447).abs() < 1e-6);
        // The wide-vector loop gives what the scalar function gives.
        let mut v: Vec<f32> = (-700..=700).map(|i| i as f32 / 100.0).collect();
        let want: Vec<f32> = v.iter().map(|x| gelu(*x)).collect();
        gelu_all(&mut v);
        assert!(v.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6));
        assert!((gelu(-1.0) + 0.1586553).abs() < 1e-6);
    }

    #[test]
    fn split_products_equal_whole_ones() {
        // Few rows (packed panels) and many rows (matrixmultiply).
        for n in [5, FEW_ROWS + 36] {
            split_products_case(n);
        }
    }

    fn split_products_case(n: usize) {
        let (inputs, outputs) = (24, 70);
        let l = Linear::new(
            (0..inputs * outputs).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect(),
            (0..outputs).map(|i| i as f32 / 10.0).collect(),
            inputs,
            outputs,
        );
        let x: Vec<f32> = (0..n * inputs).map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0).collect();
        let mut one = vec![0f32; n * outputs];
        linear(&x, n, &l, &mut one, &Par::ONE);
        let helpers = Helpers::new(2);
        for (threads, with_helpers) in [(2, false), (3, false), (8, false), (2, true), (3, true)] {
            let mut many = vec![0f32; n * outputs];
            let par = Par { threads, helpers: with_helpers.then_some(&helpers) };
            linear(&x, n, &l, &mut many, &par);
            assert!(one.iter().zip(&many).all(|(a, b)| (a - b).abs() < 1e-4), "{threads} threads, {n} rows");
        }
        // And against the definition.
        let want: f32 = (0..inputs).map(|k| x[2 * inputs + k] * l.w[9 * inputs + k]).sum::<f32>() + l.b[9];
        assert!((one[2 * outputs + 9] - want).abs() < 1e-4);
    }

    #[test]
    fn softmax_and_layer_norm() {
        let mut r = vec![1.0, 2.0, 3.0];
        softmax(&mut r);
        assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6 && r[2] > r[1]);
        let mut x = vec![1.0, 3.0];
        layer_norm(&mut x, &Norm { g: vec![1.0, 1.0], b: vec![0.0, 0.5] }, 2, 1e-12);
        assert!((x[0] + 1.0).abs() < 1e-5 && (x[1] - 1.5).abs() < 1e-5);
    }
}
