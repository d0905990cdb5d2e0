//! Running trials: build a candidate graph per (m, ef_construction) — once for all
//! the trials that differ only in ef_search — measure it, and journal the result.
//! Runs on a blocking thread; a cancel stops it between chunks of a build or between
//! queries.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::TrialConfig;
use super::eval::measure;
use crate::catalog::Catalog;
use crate::catalog::eval_sets::EvalData;
use crate::catalog::indexes::IndexRecord;
use crate::catalog::trials::{TrialJournal, TrialRecord};
use crate::error::Result;
use crate::table_providers::hnsw::{HnswIndex, Progress, TableRows};

pub struct TrialRunner<'a> {
    pub catalog: &'a Catalog,
    pub journal: &'a TrialJournal,
    /// The live index (searched as is when a trial asks for its own parameters).
    pub live: Arc<HnswIndex>,
    pub record: IndexRecord,
    pub rows: Arc<TableRows>,
    pub eval: Arc<EvalData>,
    pub eval_name: String,
    pub k: usize,
    pub source: String,
    /// Builds run in this pool (the agent's share of the cores); None: all cores.
    pub pool: Option<rayon::ThreadPool>,
    pub progress: Progress<'a>,
    pub cancel: &'a AtomicBool,
    /// The last candidate graph built, with its build seconds.
    built: Option<((usize, usize), Arc<HnswIndex>, f64)>,
    /// Trials run so far, in order.
    pub done: Vec<TrialRecord>,
}

impl<'a> TrialRunner<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        catalog: &'a Catalog,
        journal: &'a TrialJournal,
        live: Arc<HnswIndex>,
        eval: Arc<EvalData>,
        eval_name: String,
        k: usize,
        source: &str,
        pool: Option<rayon::ThreadPool>,
        progress: Progress<'a>,
        cancel: &'a AtomicBool,
    ) -> TrialRunner<'a> {
        let (record, rows) = live.snapshot();
        TrialRunner { catalog, journal, live, record, rows, eval, eval_name, k, source: source.into(), pool, progress, cancel, built: None, done: vec![] }
    }

    /// The graph for `key`: the live index's own, the last one built, or a new build.
    fn graph(&mut self, key: (usize, usize)) -> Result<(Arc<HnswIndex>, f64)> {
        if key == (self.record.m, self.record.ef_construction) {
            return Ok((self.live.clone(), self.record.build_secs));
        }
        if let Some((k, g, secs)) = &self.built {
            if *k == key {
                return Ok((g.clone(), *secs));
            }
        }
        self.built = None;
        let mut rec = self.record.clone();
        (rec.m, rec.ef_construction) = key;
        (self.progress)(format!("trial build: m = {}, ef_construction = {} over {} rows", key.0, key.1, self.rows.len()));
        let quiet = |_: String| {};
        let rows = self.rows.clone();
        let cancel = self.cancel;
        let build = || HnswIndex::build_in_memory(rec, rows, &quiet, cancel);
        let g = Arc::new(match &self.pool {
            Some(pool) => pool.install(build)?,
            None => build()?,
        });
        let secs = g.record().build_secs;
        self.built = Some((key, g.clone(), secs));
        Ok((g, secs))
    }

    /// Run one trial and journal it.
    pub fn run(&mut self, config: TrialConfig) -> Result<TrialRecord> {
        let (graph, build_secs) = self.graph(config.build_key())?;
        let m = measure(&graph, &self.eval, self.k, config.ef_search, self.cancel)?;
        let trial = TrialRecord {
            trial_id: 0,
            index_name: self.record.name.clone(),
            m: config.m,
            ef_construction: config.ef_construction,
            ef_search: config.ef_search,
            recall: round(m.recall, 1e6),
            k: self.k,
            queries: self.eval.queries.len(),
            // Microseconds and milliseconds are all the precision these carry.
            p50_ms: round(m.p50_ms, 1e3),
            p95_ms: round(m.p95_ms, 1e3),
            build_secs: round(build_secs, 1e3),
            memory_bytes: graph.memory_bytes() as u64,
            rows: self.rows.len(),
            eval_set: self.eval_name.clone(),
            source: self.source.clone(),
            created_at: crate::catalog::now_rfc3339(),
        };
        let trial = self.journal.append(self.catalog, &self.record, trial)?;
        (self.progress)(format!(
            "trial {}: {config}: recall@{} {:.4}, p50 {:.3} ms, p95 {:.3} ms, build {:.2} s",
            trial.trial_id, self.k, trial.recall, trial.p50_ms, trial.p95_ms, trial.build_secs
        ));
        self.done.push(trial.clone());
        Ok(trial)
    }
}

fn round(v: f64, scale: f64) -> f64 {
    (v * scale).round() / scale
}
