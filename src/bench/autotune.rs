//! `lakehouse bench autotune`: the grid against the adaptive strategy on the
//! benchmark dataset (issue #3's synthetic 100k x 128 by default).
//!
//! Runs, in one process on one index (m = 16, ef_construction = 64): the old
//! service's default grid (5 trials), a dense grid (m x ef_construction x ef_search,
//! the reference optimum), and the adaptive strategy with a third of the dense
//! grid's trials; then re-measures the dense grid's and the adaptive strategy's best
//! configurations back to back (alternating, median of 3) so that their p50s are
//! compared under the same load; and finally times `CALL autotune` with the
//! adaptive strategy until the promoted configuration is built and swapped in.

use std::time::Instant;

use crate::catalog::trials::TrialRecord;
use crate::engine::tuning::Plan;
use crate::error::{Error, Result};
use crate::tuning::{TrialConfig, default_grid, strategy};
use crate::{Config, Engine};

#[derive(Debug, Clone)]
pub struct AutotuneBench {
    pub rows: usize,
    pub dims: usize,
    pub queries: usize,
    pub k: usize,
    pub min_recall: f64,
    pub seed: u64,
}

const DENSE_M: [usize; 3] = [8, 16, 32];
const DENSE_EFC: [usize; 4] = [40, 80, 160, 320];
const DENSE_EF: [usize; 5] = [10, 20, 40, 80, 160];

fn dense_grid() -> Vec<TrialConfig> {
    let mut g = vec![];
    for m in DENSE_M {
        for efc in DENSE_EFC {
            for ef in DENSE_EF {
                g.push(TrialConfig::new(m, efc, ef));
            }
        }
    }
    g
}

fn show(t: &TrialRecord) -> String {
    format!("trial {:>3}: m {:>2} efc {:>3} ef {:>3}  recall {:.4}  p50 {:.3} ms  p95 {:.3} ms  build {:.1} s", t.trial_id, t.m, t.ef_construction, t.ef_search, t.recall, t.p50_ms, t.p95_ms, t.build_secs)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub async fn run(o: AutotuneBench) -> Result<()> {
    let started = Instant::now();
    println!("lakehouse bench autotune: synthetic {} x {} (seed {}), eval set {} held-out queries, recall@{} target {}", o.rows, o.dims, o.seed, o.queries, o.k, o.min_recall);
    println!("machine: {} cores; {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), if cfg!(debug_assertions) { "DEBUG build: figures are not meaningful, use --release" } else { "release build" });
    let (data, _) = super::synthetic(o.rows, 0, o.dims, o.seed);
    let dir = super::tempfile_dir()?;
    let src = dir.join("src");
    std::fs::create_dir_all(&src).map_err(|e| Error::io(src.display(), e))?;
    super::write_parquet(&src.join("vectors.parquet"), &data, o.dims)?;
    let mut config = Config::default();
    config.storage.data_dir = dir.join("data");
    let engine = Engine::open(config).await?;
    let s = engine.new_session("bench", "lakehouse");
    engine
        .execute_collect(
            &s,
            &format!(
                "CREATE EXTERNAL TABLE src STORED AS PARQUET LOCATION '{}/';
                 CREATE TABLE bench AS SELECT id, emb FROM src;
                 CREATE INDEX bench_idx ON bench USING hnsw (emb vector_l2_ops) WITH (m = 16, ef_construction = 64);
                 CALL create_eval_set('bench_idx', queries => {}, k => {}, seed => {});",
                src.display(),
                o.queries,
                o.k,
                o.seed
            ),
        )
        .await?;
    s.take_notices();
    println!("index m 16 / ef_construction 64 and eval set ready in {:.1} s", started.elapsed().as_secs_f64());
    let tune = |plan: Plan| {
        let engine = engine.clone();
        async move {
            let t = Instant::now();
            let trials = engine.run_tuning(None, "bench_idx", None, "autotune", plan).await?;
            Ok::<_, Error>((trials, t.elapsed().as_secs_f64()))
        }
    };

    let (grid, grid_secs) = tune(Plan::Configs(default_grid())).await?;
    println!("\n== default grid (the old service's 5 configurations), {grid_secs:.1} s");
    grid.iter().for_each(|t| println!("  {}", show(t)));
    match strategy::grid_winner(&grid, 0.9) {
        Some(w) => println!("  winner at min_recall 0.9 (highest recall, then p50): {}", show(w)),
        None => println!("  no winner at min_recall 0.9"),
    }
    match strategy::fastest_at(&grid, o.min_recall) {
        Some(w) => println!("  fastest reaching {}: {}", o.min_recall, show(w)),
        None => println!("  no configuration reaches {}", o.min_recall),
    }

    let dense = dense_grid();
    let (dense_trials, dense_secs) = tune(Plan::Configs(dense.clone())).await?;
    println!("\n== dense grid: m {DENSE_M:?} x ef_construction {DENSE_EFC:?} x ef_search {DENSE_EF:?} = {} trials, {dense_secs:.1} s", dense.len());
    let dense_best = strategy::fastest_at(&dense_trials, o.min_recall).cloned();
    match &dense_best {
        Some(w) => println!("  fastest reaching {}: {}", o.min_recall, show(w)),
        None => println!("  no configuration reaches {}", o.min_recall),
    }

    let budget = dense.len() / 3;
    let (adaptive, adaptive_secs) = tune(Plan::Adaptive { min_recall: o.min_recall, budget }).await?;
    println!("\n== adaptive (budget {budget} = a third of the dense grid), {} trials, {adaptive_secs:.1} s", adaptive.len());
    adaptive.iter().for_each(|t| println!("  {}", show(t)));
    let adaptive_best = strategy::fastest_at(&adaptive, o.min_recall).cloned();
    match &adaptive_best {
        Some(w) => println!("  fastest reaching {}: {}", o.min_recall, show(w)),
        None => println!("  no configuration reaches {}", o.min_recall),
    }

    if let (Some(d), Some(a)) = (&dense_best, &adaptive_best) {
        // Same load for both: alternate, three times each, median p50.
        let (dc, ac) = (TrialConfig::new(d.m, d.ef_construction, d.ef_search), TrialConfig::new(a.m, a.ef_construction, a.ef_search));
        let (mut dp, mut ap, mut dr, mut ar) = (vec![], vec![], vec![], vec![]);
        for _ in 0..3 {
            let (t, _) = tune(Plan::Configs(vec![dc])).await?;
            dp.push(t[0].p50_ms);
            dr.push(t[0].recall);
            let (t, _) = tune(Plan::Configs(vec![ac])).await?;
            ap.push(t[0].p50_ms);
            ar.push(t[0].recall);
        }
        let (dp, ap) = (median(dp), median(ap));
        println!(
            "\n== re-measured back to back (median of 3): dense grid's best {dc}: p50 {dp:.3} ms (recall {:.4}); adaptive's {ac}: p50 {ap:.3} ms (recall {:.4}); ratio {:.3} ({} within 5%) in {} vs {} trials",
            median(dr),
            median(ar),
            ap / dp,
            if ap <= dp * 1.05 { "" } else { "NOT" },
            adaptive.len(),
            dense.len()
        );
    }

    // The agent's share of the cores: queries per second of a search loop while a
    // trial builds with the agent's pool (max_cpu_share 0.5) and with all cores.
    let (_, queries) = super::synthetic(0, 500, o.dims, o.seed + 1);
    let qps_during = |source: &'static str, cfg: Option<TrialConfig>| {
        let engine = engine.clone();
        let queries = queries.clone();
        let dims = o.dims;
        async move {
            let index = engine.index("bench_idx").ok_or_else(|| Error::Internal("bench index missing".into()))?;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = stop.clone();
            let searcher = tokio::task::spawn_blocking(move || {
                let (mut n, t) = (0usize, Instant::now());
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    let q = &queries[(n % 500) * dims..(n % 500 + 1) * dims];
                    let _ = index.search(q, 10, 40, None);
                    n += 1;
                }
                n as f64 / t.elapsed().as_secs_f64()
            });
            match cfg {
                Some(c) => {
                    engine.run_tuning(None, "bench_idx", None, source, Plan::Configs(vec![c])).await?;
                }
                None => tokio::time::sleep(std::time::Duration::from_secs(5)).await,
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            searcher.await.map_err(|e| Error::Internal(e.to_string()))
        }
    };
    let idle = qps_during("bench", None).await?;
    let agent = qps_during("agent", Some(TrialConfig::new(24, 200, 40))).await?;
    let full = qps_during("autotune", Some(TrialConfig::new(24, 210, 40))).await?;
    println!(
        "\n== queries during a trial build (one search thread, ef 40): idle {idle:.0} QPS; agent build on {} thread(s) (max_cpu_share {}) {agent:.0} QPS ({:.2}x); autotune build on all cores {full:.0} QPS ({:.2}x)",
        crate::tuning::agent::AgentConfig::default().threads(),
        crate::tuning::agent::AgentConfig::default().max_cpu_share,
        agent / idle,
        full / idle
    );

    let t = Instant::now();
    let out = engine
        .execute_collect(&s, &format!("CALL autotune('bench_idx', min_recall => {}, strategy => 'adaptive', max_trials => {budget}, wait => true)", o.min_recall))
        .await?;
    let decision = out
        .last()
        .and_then(|(_, b)| b.last())
        .and_then(|b| {
            use datafusion::arrow::array::AsArray;
            b.column_by_name("outcome").map(|c| c.as_string::<i32>().value(b.num_rows() - 1).to_string())
        })
        .unwrap_or_default();
    println!("\n== CALL autotune(strategy => 'adaptive', wait => true): {:.1} s from the call to the promoted configuration built and swapped in: {decision}", t.elapsed().as_secs_f64());
    let params = engine.index("bench_idx").map(|i| i.record().params()).unwrap_or_default();
    println!("   index now: {params}");
    println!("\ntotal {:.0} s", started.elapsed().as_secs_f64());
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
