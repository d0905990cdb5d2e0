//! The engine side of tuning: eval sets, trials, autotune, promote / rollback with
//! the background rebuild and swap, and the agent's loop.
//!
//! A promotion is one catalog update (durable on return) that also sets the index's
//! ef_search. When it changes m or ef_construction, the index is rebuilt with them
//! on a blocking thread while queries keep using the current graph; the new
//! generation is swapped in (catalog record, then the registry) only when complete.
//! Rows appended during the rebuild are added right after the swap. A restart with a
//! promotion not yet built starts the rebuild again.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Float32Type;

use super::index_ddl::run_blocking;
use super::{Engine, Session};
use crate::catalog::eval_sets::{EvalData, EvalSetRecord, unknown_eval_set};
use crate::catalog::indexes::{self, unknown_index};
use crate::catalog::promotions::{Promotion, PromotionState};
use crate::catalog::trials::{TrialRecord, tuning_dir};
use crate::error::{Error, Result};
use crate::table_providers::hnsw::HnswIndex;
use crate::tuning::agent::unix_now;
use crate::tuning::trial::TrialRunner;
use crate::tuning::{TrialConfig, Tuning, eval, strategy};

/// What `create_eval_set` was asked for.
#[derive(Debug, Clone)]
pub struct EvalSpec {
    pub index: String,
    pub name: Option<String>,
    pub queries: usize,
    pub k: usize,
    pub seed: u64,
    pub from_table: Option<String>,
    pub column: Option<String>,
    pub replace: bool,
}

impl EvalSpec {
    /// The defaults (100 held-out queries, k = 10, seed 42) for `index`.
    pub fn default_for(index: &str) -> EvalSpec {
        EvalSpec { index: index.into(), name: None, queries: 100, k: 10, seed: 42, from_table: None, column: None, replace: false }
    }
}

/// The trials a tuning run makes.
#[derive(Debug, Clone)]
pub enum Plan {
    /// These configurations, grouped so that ef_search-only variants share a build.
    Configs(Vec<TrialConfig>),
    /// The adaptive search toward `min_recall`, at most `budget` trials.
    Adaptive { min_recall: f64, budget: usize },
}

impl Engine {
    pub fn tuning(&self) -> &Arc<Tuning> {
        &self.tuning
    }

    fn live_index(&self, name: &str) -> Result<Arc<HnswIndex>> {
        self.indexes.get(name).ok_or_else(|| unknown_index(name))
    }

    /// `CALL create_eval_set`: sample the queries, compute their exact answers, store
    /// both in the index's bucket and the record in the catalog.
    pub async fn create_eval_set(&self, session: Option<&Session>, spec: EvalSpec) -> Result<EvalSetRecord> {
        if !(1..=10_000).contains(&spec.queries) {
            return Err(Error::InvalidParameter(format!("queries must be between 1 and 10000, got {}", spec.queries)));
        }
        if !(1..=1000).contains(&spec.k) {
            return Err(Error::InvalidParameter(format!("k must be between 1 and 1000, got {}", spec.k)));
        }
        let live = self.live_index(&spec.index)?;
        let name = spec.name.clone().unwrap_or_else(|| format!("{}_eval", spec.index));
        crate::catalog::buckets::validate_name("eval set", &name)?;
        if !spec.replace && self.catalog.eval_set(&name).is_some() {
            return Err(Error::DuplicateObject(format!("eval set \"{name}\" (replace => true recomputes it)")));
        }
        let (record, rows) = live.snapshot();
        let (queries, self_ids, source) = match &spec.from_table {
            None => {
                let ids = eval::sample_rows(&rows, spec.queries, spec.seed);
                if ids.is_empty() {
                    return Err(Error::DataException(format!("index \"{}\" has no rows to take queries from; insert rows first", spec.index)));
                }
                let q: Vec<Vec<f32>> = ids.iter().map(|i| rows.vector(*i).map(<[f32]>::to_vec).unwrap_or_default()).collect();
                (q, ids.into_iter().map(Some).collect::<Vec<_>>(), "held-out rows".to_string())
            }
            Some(table) => {
                let session = session.ok_or_else(|| Error::NotSupported("from_table outside a session".into()))?;
                let q = self.query_vectors(session, table, spec.column.as_deref(), record.dims, spec.queries, spec.seed).await?;
                let n = q.len();
                (q, vec![None; n], format!("table {table}"))
            }
        };
        if let Some(s) = session {
            s.notice(format!("eval set {name}: exact {}-NN of {} queries over {} rows", spec.k, queries.len(), rows.len()));
        }
        let metric = record.metric;
        let k = spec.k;
        let rows2 = rows.clone();
        let cancel = AtomicBool::new(false);
        let data = tokio::task::spawn_blocking(move || eval::ground_truth(&rows2, metric, &queries, &self_ids, k, &cancel))
            .await
            .map_err(|e| Error::Internal(format!("eval set task failed: {e}")))??;
        let dir = tuning_dir(&self.catalog, &record)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let path = dir.join(format!("eval-{name}-{}.arrow", &id[..12]));
        let rec = EvalSetRecord {
            name: name.clone(),
            index: spec.index.clone(),
            k,
            queries: data.queries.len(),
            seed: spec.seed,
            source,
            rows: rows.len(),
            location: url::Url::from_file_path(&path).map(|u| u.to_string()).map_err(|_| Error::Internal(format!("no URL for {}", path.display())))?,
            created_at: crate::catalog::now_rfc3339(),
        };
        let data = Arc::new(data);
        let (d2, p2, dims) = (data.clone(), path.clone(), record.dims);
        let catalog = self.catalog.clone();
        let (r2, replace) = (rec.clone(), spec.replace);
        let replaced = crate::catalog::blocking(move || {
            std::fs::create_dir_all(p2.parent().expect("file in a directory")).map_err(|e| Error::io(p2.display(), e))?;
            d2.write(&p2, dims)?;
            catalog.put_eval_set(r2, replace).inspect_err(|_| {
                let _ = std::fs::remove_file(&p2);
            })
        })
        .await?;
        if let Some(old) = replaced {
            if let Some(p) = crate::catalog::datasets::local_dir(&old.location) {
                let _ = std::fs::remove_file(p);
            }
        }
        self.tuning.cache_eval(&name, rows.len(), data);
        Ok(rec)
    }

    /// Up to `n` vectors of `dims` dimensions from a table's vector column (sampled
    /// with `seed` when it has more rows).
    async fn query_vectors(&self, session: &Session, table: &str, column: Option<&str>, dims: usize, n: usize, seed: u64) -> Result<Vec<Vec<f32>>> {
        let sql = format!("SELECT * FROM {table}");
        let results = self.execute_collect(session, &sql).await?;
        let Some((schema, batches)) = results.into_iter().next() else { return Err(Error::TableNotFound(table.into())) };
        let pick = schema.fields().iter().position(|f| match column {
            Some(c) => f.name() == c,
            None => crate::udf::vector::vector_dims_of(f.data_type()).is_some(),
        });
        let Some(col) = pick else {
            return Err(match column {
                Some(c) => Error::ColumnNotFound(format!("\"{c}\" does not exist in {table}")),
                None => Error::UndefinedObject(format!("table {table} has no vector column to take queries from")),
            });
        };
        let field = schema.field(col);
        if crate::udf::vector::vector_dims_of(field.data_type()) != Some(dims) {
            return Err(Error::DataException(format!(
                "column \"{}\" of {table} is {}, the index has {dims} dimensions",
                field.name(),
                field.data_type()
            )));
        }
        let mut all = vec![];
        for b in &batches {
            let list = b.column(col).as_fixed_size_list();
            for i in 0..list.len() {
                if list.is_valid(i) {
                    all.push(list.value(i).as_primitive::<Float32Type>().values().to_vec());
                }
            }
        }
        if all.is_empty() {
            return Err(Error::DataException(format!("table {table} has no query vectors")));
        }
        if all.len() > n {
            let mut rng = crate::tuning::Rng::new(seed);
            for i in 0..n {
                let j = i + rng.below(all.len() - i);
                all.swap(i, j);
            }
            all.truncate(n);
        }
        Ok(all)
    }

    /// The eval set trials of `index` use: the one named, else the newest, else a new
    /// default one. Its ground truth is recomputed when rows were added since.
    pub async fn eval_for(&self, session: Option<&Session>, index: &str, name: Option<&str>) -> Result<(EvalSetRecord, Arc<EvalData>)> {
        let live = self.live_index(index)?;
        let rec = match name {
            Some(n) => {
                let rec = self.catalog.eval_set(n).ok_or_else(|| unknown_eval_set(n))?;
                if rec.index != index {
                    return Err(Error::InvalidParameter(format!("eval set \"{n}\" belongs to index \"{}\", not \"{index}\"", rec.index)));
                }
                rec
            }
            None => match self.catalog.eval_sets_of(index).into_iter().next() {
                Some(rec) => rec,
                None => {
                    if let Some(s) = session {
                        s.notice(format!("index {index} has no eval set: creating {index}_eval (100 held-out queries, k = 10, seed 42)"));
                    }
                    self.create_eval_set(session, EvalSpec::default_for(index)).await?
                }
            },
        };
        let (record, rows) = live.snapshot();
        let now_rows = rows.len();
        if let Some(d) = self.tuning.cached_eval(&rec.name, now_rows) {
            return Ok((rec, d));
        }
        let path = crate::catalog::datasets::local_dir(&rec.location).ok_or_else(|| Error::NotSupported(rec.location.clone()))?;
        let stale = rec.rows != now_rows;
        let (metric, k) = (record.metric, rec.k);
        let data = tokio::task::spawn_blocking(move || -> Result<EvalData> {
            let stored = EvalData::read(&path)?;
            if !stale {
                return Ok(stored);
            }
            // Rows were appended: the nearest neighbours may have changed.
            eval::ground_truth(&rows, metric, &stored.queries, &stored.self_ids, k, &AtomicBool::new(false))
        })
        .await
        .map_err(|e| Error::Internal(format!("eval set task failed: {e}")))??;
        if stale {
            if let Some(s) = session {
                s.notice(format!("eval set {}: ground truth recomputed for {now_rows} rows (it was computed over {})", rec.name, rec.rows));
            }
        }
        let data = Arc::new(data);
        self.tuning.cache_eval(&rec.name, now_rows, data.clone());
        Ok((rec, data))
    }

    /// Run trials on `index` (one tuning run at a time per index; the agent's builds
    /// use its share of the cores). Every trial is journaled as it finishes.
    pub async fn run_tuning(&self, session: Option<&Session>, index: &str, eval_name: Option<&str>, source: &str, plan: Plan) -> Result<Vec<TrialRecord>> {
        let live = self.live_index(index)?;
        if let Plan::Configs(c) = &plan {
            for cfg in c {
                cfg.check()?;
            }
        }
        let lock = self.tuning.trial_lock(index);
        let _one = match lock.clone().try_lock_owned() {
            Ok(g) => g,
            Err(_) if source == "agent" => return Err(Error::ObjectInUse(format!("trials are running on index \"{index}\""))),
            Err(_) => {
                if let Some(s) = session {
                    s.notice(format!("waiting for the trials running on {index} to finish"));
                }
                lock.lock_owned().await
            }
        };
        // Under the lock: two first runs do not both create the default eval set.
        let (erec, data) = self.eval_for(session, index, eval_name).await?;
        let pool = if source == "agent" {
            let threads = self.config.agent.threads();
            Some(rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("agent-build-{i}")).build().map_err(|e| Error::Internal(e.to_string()))?)
        } else {
            None
        };
        let catalog = self.catalog.clone();
        let tuning = self.tuning.clone();
        let source = source.to_string();
        let work = move |progress: &(dyn Fn(String) + Sync), cancel: &AtomicBool| -> Result<Vec<TrialRecord>> {
            let mut runner = TrialRunner::new(&catalog, &tuning.journal, live, data, erec.name.clone(), erec.k, &source, pool, progress, cancel);
            match plan {
                Plan::Configs(mut configs) => {
                    // ef_search-only variants next to each other: one build each.
                    let order: Vec<TrialConfig> = configs.clone();
                    configs.sort_by_key(|c| {
                        let first = order.iter().position(|o| o.build_key() == c.build_key()).unwrap_or(0);
                        (first, order.iter().position(|o| o == c).unwrap_or(0))
                    });
                    for c in configs {
                        runner.run(c)?;
                    }
                    Ok(runner.done)
                }
                Plan::Adaptive { min_recall, budget } => {
                    let start = (runner.record.m, runner.record.ef_construction);
                    let start_ef = runner.record.ef_search.unwrap_or(crate::table_providers::hnsw_scan::DEFAULT_EF_SEARCH);
                    strategy::adaptive(|c| runner.run(c), start, start_ef, min_recall, budget)
                }
            }
        };
        run_blocking(session, work).await
    }

    /// Make `p` the index's current configuration (durable on return), then rebuild
    /// the index with it: in the background, or before returning with `wait`.
    pub async fn promote_config(&self, session: Option<&Session>, index: &str, p: Promotion, wait: bool) -> Result<PromotionState> {
        let live = self.live_index(index)?;
        let state = {
            let _w = self.index_writes.lock().await;
            let catalog = self.catalog.clone();
            let name = index.to_string();
            let ef = p.ef_search;
            let st = crate::catalog::blocking(move || catalog.promote(&name, p)).await?;
            live.set_tuned_ef_search(Some(ef));
            st
        };
        self.apply_promotion(session, index, wait).await?;
        Ok(state)
    }

    /// Back to the previous promotion (or, with none, to the index's original
    /// parameters and the default ef_search).
    pub async fn rollback_config(&self, session: Option<&Session>, index: &str, wait: bool) -> Result<PromotionState> {
        let live = self.live_index(index)?;
        let state = {
            let _w = self.index_writes.lock().await;
            let catalog = self.catalog.clone();
            let name = index.to_string();
            let st = crate::catalog::blocking(move || catalog.rollback(&name)).await?;
            live.set_tuned_ef_search(st.current.as_ref().map(|c| c.ef_search));
            st
        };
        self.apply_promotion(session, index, wait).await?;
        Ok(state)
    }

    /// Rebuild `index` if its parameters differ from its promotion target.
    async fn apply_promotion(&self, session: Option<&Session>, index: &str, wait: bool) -> Result<()> {
        let Some((m, efc, _)) = self.catalog.promotions(index).target() else { return Ok(()) };
        let rec = self.live_index(index)?.record();
        if (rec.m, rec.ef_construction) == (m, efc) {
            return Ok(());
        }
        if wait {
            self.rebuild_index(session, index).await?;
            return Ok(());
        }
        if let Some(s) = session {
            s.notice(format!(
                "{index}: rebuilding with m = {m}, ef_construction = {efc} in the background; queries use the current graph until the new one is ready (lakehouse.promotions.applied)"
            ));
        }
        let Some(me) = self.me.upgrade() else { return Ok(()) };
        let name = index.to_string();
        tokio::spawn(async move {
            if let Err(e) = me.rebuild_index(None, &name).await {
                tracing::warn!("rebuild of {name} for its promotion failed: {e}");
            }
        });
        Ok(())
    }

    /// Build `index` anew with its promotion target's parameters and swap it in.
    /// Returns whether a new generation was swapped in.
    pub async fn rebuild_index(&self, session: Option<&Session>, index: &str) -> Result<bool> {
        let lock = self.tuning.rebuild_lock(index);
        let _one = lock.lock().await;
        let Some((m, efc, _)) = self.catalog.promotions(index).target() else { return Ok(false) };
        let live = self.live_index(index)?;
        let (base, rows) = live.snapshot();
        if (base.m, base.ef_construction) == (m, efc) {
            return Ok(false);
        }
        let bucket = self.catalog.bucket(&base.bucket)?;
        let mut rec = base.clone();
        rec.m = m;
        rec.ef_construction = efc;
        rec.location = indexes::new_location(&bucket.url, index);
        rec.updated_at = None;
        let location = rec.location.clone();
        let covered = base.files.clone();
        let what = format!("{index}: rebuilding with m = {m}, ef_construction = {efc} over {} rows", rows.len());
        let work = move |progress: &(dyn Fn(String) + Sync), cancel: &AtomicBool| {
            progress(what);
            HnswIndex::build(rec, (*rows).clone(), covered, progress, cancel)
        };
        let built = run_blocking(session, work).await;
        let new_index = match built {
            Ok(i) => i,
            Err(e) => {
                indexes::remove_files(&location);
                return Err(e);
            }
        };
        // Swap: only if the index is still the one this rebuild started from and its
        // target has not moved on meanwhile.
        {
            let _w = self.index_writes.lock().await;
            let current = self.catalog.index(index);
            let target = self.catalog.promotions(index).target();
            let still = current.as_ref().is_some_and(|c| c.built_at == base.built_at) && target.is_some_and(|(tm, te, _)| (tm, te) == (m, efc));
            if !still {
                indexes::remove_files(&location);
                return Ok(false);
            }
            let mut new_rec = new_index.record();
            new_rec.ef_search = current.and_then(|c| c.ef_search);
            new_index.set_tuned_ef_search(new_rec.ef_search);
            let catalog = self.catalog.clone();
            let r = new_rec.clone();
            let old = match crate::catalog::blocking(move || catalog.replace_index(r)).await {
                Ok(old) => old,
                Err(e) => {
                    indexes::remove_files(&location);
                    return Err(e);
                }
            };
            self.indexes.insert(Arc::new(new_index));
            indexes::remove_files(&old.location);
            let msg = format!("{index}: rebuilt with m = {m}, ef_construction = {efc} in {:.2} s and swapped in", new_rec.build_secs);
            match session {
                Some(s) => s.notice(msg),
                None => tracing::info!("{msg}"),
            }
        }
        // Rows appended while it was building.
        self.catch_up_indexes(session, &base.table).await?;
        Ok(true)
    }

    /// The index is gone: its trials, eval sets, promotions and agent state too.
    pub(super) async fn forget_tuning(&self, rec: &indexes::IndexRecord) {
        let evals: Vec<String> = self.catalog.eval_sets_of(&rec.name).into_iter().map(|e| e.name).collect();
        self.tuning.forget_evals(&evals);
        self.tuning.journal.forget(&self.catalog, rec);
        self.tuning.agent.forget(&rec.name);
        let catalog = self.catalog.clone();
        let name = rec.name.clone();
        if let Err(e) = crate::catalog::blocking(move || catalog.remove_tuning_of(&name)).await {
            tracing::warn!("could not remove the tuning records of {}: {e}", rec.name);
        }
    }

    /// After start: rebuild indexes whose promotion was not applied before a restart.
    pub(super) fn resume_promotions(&self) {
        let snapshot = self.catalog.snapshot();
        for (name, st) in &snapshot.promotions {
            let (Some((m, efc, _)), Some(rec)) = (st.target(), snapshot.indexes.get(name)) else { continue };
            if (rec.m, rec.ef_construction) != (m, efc) && self.indexes.get(name).is_some() {
                let Some(me) = self.me.upgrade() else { return };
                let name = name.clone();
                tracing::info!("{name}: its promoted configuration was not built yet; rebuilding");
                tokio::spawn(async move {
                    if let Err(e) = me.rebuild_index(None, &name).await {
                        tracing::warn!("rebuild of {name} for its promotion failed: {e}");
                    }
                });
            }
        }
    }

    /// The configuration the agent steps around: the current promotion, else the
    /// index's own parameters (clamped to the tuning bounds).
    fn champion(&self, index: &HnswIndex) -> TrialConfig {
        let rec = index.record();
        let c = match self.catalog.promotions(&rec.name).current {
            Some(p) => TrialConfig::new(p.m, p.ef_construction, p.ef_search),
            None => TrialConfig::new(rec.m, rec.ef_construction, rec.ef_search.unwrap_or(crate::table_providers::hnsw_scan::DEFAULT_EF_SEARCH)),
        };
        use crate::tuning::{EF_CONSTRUCTION_BOUNDS as E, EF_SEARCH_BOUNDS as S, M_BOUNDS as M};
        TrialConfig::new(c.m.clamp(M.0, M.1), c.ef_construction.clamp(E.0, E.1), c.ef_search.clamp(S.0, S.1))
    }

    /// One agent step on `index`: propose, run one trial, promote a better champion.
    /// Returns (what happened, promoted, a trial ran).
    async fn agent_step(&self, index: &str) -> (String, bool, bool) {
        let Some(live) = self.indexes.get(index) else { return (format!("index {index} no longer exists"), false, false) };
        let champion = self.champion(&live);
        let journal = self.tuning.journal.of_index(index);
        let Some(proposal) = crate::tuning::agent::propose(index, &journal, champion) else {
            return ("every configuration near the champion has been tried".into(), false, false);
        };
        let trial = match self.run_tuning(None, index, None, "agent", Plan::Configs(vec![proposal])).await {
            Ok(mut t) if !t.is_empty() => t.remove(0),
            Ok(_) => return ("no trial ran".into(), false, false),
            Err(e) => return (format!("trial failed: {e}"), false, false),
        };
        let min_recall = self.config.agent.min_recall;
        if proposal == champion {
            return (format!("measured the champion {proposal} (trial {}): recall {:.4}, p50 {:.3} ms", trial.trial_id, trial.recall, trial.p50_ms), false, true);
        }
        let champ_trial = journal.iter().rev().find(|t| TrialConfig::new(t.m, t.ef_construction, t.ef_search) == champion);
        let better = trial.recall >= min_recall && champ_trial.is_none_or(|c| c.recall < min_recall || trial.p50_ms < c.p50_ms * 0.95);
        if !better {
            return (format!("trial {} ({proposal}): recall {:.4}, p50 {:.3} ms — champion kept", trial.trial_id, trial.recall, trial.p50_ms), false, true);
        }
        let note = match champ_trial {
            Some(c) => format!("agent: recall {:.4} vs {:.4}, p50 {:.3} vs {:.3} ms", trial.recall, c.recall, trial.p50_ms, c.p50_ms),
            None => format!("agent: recall {:.4}, p50 {:.3} ms", trial.recall, trial.p50_ms),
        };
        let p = promotion_of(&trial, "agent", note);
        match self.promote_config(None, index, p, false).await {
            Ok(_) => (format!("promoted trial {} ({proposal})", trial.trial_id), true, true),
            Err(e) => (format!("trial {} was better but promoting it failed: {e}", trial.trial_id), false, true),
        }
    }

    /// Start the agent's loop (when `[agent] enabled`). It holds the engine only
    /// while it works, so a dropped engine ends it at its next wake.
    pub(super) fn start_agent(self: &Arc<Self>) {
        if !self.config.agent.enabled {
            return;
        }
        let weak = Arc::downgrade(self);
        let tuning = self.tuning.clone();
        let period = self.config.agent.period_secs as f64;
        tokio::spawn(async move {
            let mut next_period = if period > 0.0 { unix_now() + period } else { f64::INFINITY };
            loop {
                let Some(engine) = weak.upgrade() else { return };
                let now = unix_now();
                if now >= next_period {
                    for name in engine.catalog.snapshot().indexes.keys() {
                        tuning.agent.enqueue(name);
                    }
                    next_period = now + period;
                }
                match tuning.agent.next(now) {
                    Ok(index) => {
                        let (result, promoted, ran) = engine.agent_step(&index).await;
                        tracing::info!("agent: {index}: {result}");
                        tuning.agent.finished(&index, result, promoted, ran);
                        continue;
                    }
                    Err(wait) => {
                        let until = wait.unwrap_or(f64::INFINITY).min(next_period - now).clamp(0.05, 3600.0);
                        {
                            let mut st = tuning.agent.state.lock().unwrap_or_else(|p| p.into_inner());
                            st.next_wake = Some(
                                (chrono::Utc::now() + chrono::Duration::milliseconds((until * 1000.0) as i64)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            );
                            st.waits += 1;
                        }
                        drop(engine);
                        tokio::select! {
                            _ = tuning.agent.wake.notified() => {}
                            _ = tokio::time::sleep(std::time::Duration::from_secs_f64(until)) => {}
                        }
                    }
                }
            }
        });
    }

    /// Rows were appended to `table`: queue its indexes for the agent.
    pub(super) fn appended(&self, table: &str) {
        if self.config.agent.enabled {
            for index in self.indexes.on_table(table) {
                self.tuning.agent.enqueue(&index.record().name);
            }
        }
    }
}

/// A promotion of `trial`'s configuration.
pub fn promotion_of(trial: &TrialRecord, by: &str, note: String) -> Promotion {
    Promotion {
        trial_id: Some(trial.trial_id),
        m: trial.m,
        ef_construction: trial.ef_construction,
        ef_search: trial.ef_search,
        recall: Some(trial.recall),
        p50_ms: Some(trial.p50_ms),
        promoted_by: by.into(),
        promoted_at: crate::catalog::now_rfc3339(),
        note,
    }
}
