//! Index tuning: eval sets and recall, trials, the grid and adaptive strategies of
//! `CALL autotune`, and the background agent.
//!
//! A trial builds a candidate graph (in memory, never in the catalog) over the
//! index's rows with one (m, ef_construction), searches it with the eval set's queries
//! at one ef_search, and records recall@k and the latency of each search in the trial
//! journal (catalog::trials). Promotion (catalog::promotions) is what changes the real
//! index; engine/tuning.rs rebuilds it in the background and swaps it in.

pub mod agent;
pub mod eval;
pub mod strategy;
pub mod trial;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::catalog::trials::TrialJournal;
use crate::error::{Error, Result};

/// Bounds of a tuning configuration (the old service's, plus m).
pub const M_BOUNDS: (usize, usize) = (4, 64);
pub const EF_CONSTRUCTION_BOUNDS: (usize, usize) = (10, 400);
pub const EF_SEARCH_BOUNDS: (usize, usize) = (10, 200);
/// m of the default grid (the old service kept m fixed).
pub const DEFAULT_M: usize = 16;
/// recall@k an autotune winner must reach unless told otherwise.
pub const DEFAULT_MIN_RECALL: f64 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrialConfig {
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
}

impl TrialConfig {
    pub const fn new(m: usize, ef_construction: usize, ef_search: usize) -> TrialConfig {
        TrialConfig { m, ef_construction, ef_search }
    }

    /// 22023 for a value outside the bounds.
    pub fn check(&self) -> Result<()> {
        let within = |name: &str, v: usize, (lo, hi): (usize, usize)| {
            if v < lo || v > hi {
                Err(Error::InvalidParameter(format!("{name} = {v} is out of bounds; valid values are between {lo} and {hi}")))
            } else {
                Ok(())
            }
        };
        within("m", self.m, M_BOUNDS)?;
        within("ef_construction", self.ef_construction, EF_CONSTRUCTION_BOUNDS)?;
        within("ef_search", self.ef_search, EF_SEARCH_BOUNDS)
    }

    /// Trials with the same build key share one graph.
    pub fn build_key(&self) -> (usize, usize) {
        (self.m, self.ef_construction)
    }
}

impl std::fmt::Display for TrialConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "m={} ef_construction={} ef_search={}", self.m, self.ef_construction, self.ef_search)
    }
}

/// The old service's default grid: 5 configurations, m fixed.
pub fn default_grid() -> Vec<TrialConfig> {
    [(20, 30), (40, 30), (80, 30), (80, 60), (160, 30)]
        .into_iter()
        .map(|(efc, ef)| TrialConfig::new(DEFAULT_M, efc, ef))
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GridEntry {
    m: Option<usize>,
    #[serde(alias = "efc")]
    ef_construction: usize,
    #[serde(alias = "ef")]
    ef_search: usize,
}

/// `grid => '[{"m": 16, "ef_construction": 40, "ef_search": 30}, …]'` (m defaults to
/// 16; `efc` and `ef` are accepted as short names). Every entry is bounds-checked.
pub fn parse_grid(text: &str) -> Result<Vec<TrialConfig>> {
    let entries: Vec<GridEntry> = serde_json::from_str(text).map_err(|e| {
        Error::InvalidParameter(format!(
            "grid must be a JSON array of {{\"m\": …, \"ef_construction\": …, \"ef_search\": …}} objects: {e}"
        ))
    })?;
    if entries.is_empty() {
        return Err(Error::InvalidParameter("grid is empty".into()));
    }
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let c = TrialConfig::new(e.m.unwrap_or(DEFAULT_M), e.ef_construction, e.ef_search);
        c.check()?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// SplitMix64: a small, stable generator (sampling and the agent's proposals must
/// not change with a dependency's version).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// FNV-1a, for seeds derived from names and journals.
pub fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Tuning state shared by the engine: the trial journal, the agent, one trial at a
/// time per index, and eval sets loaded in memory.
pub struct Tuning {
    pub journal: TrialJournal,
    pub agent: agent::Agent,
    running: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    evals: Mutex<HashMap<String, (usize, Arc<crate::catalog::eval_sets::EvalData>)>>,
}

impl Tuning {
    pub fn new(journal: TrialJournal, agent: agent::Agent) -> Tuning {
        Tuning { journal, agent, running: Mutex::default(), evals: Mutex::default() }
    }

    /// Held while trials run on `index`: never two at once on one index.
    pub fn trial_lock(&self, index: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).entry(index.to_string()).or_default().clone()
    }

    /// Held while `index` is rebuilt for a promotion: one rebuild at a time.
    pub fn rebuild_lock(&self, index: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).entry(format!("\0rebuild {index}")).or_default().clone()
    }

    /// An eval set's data loaded for `rows` index rows, if cached.
    pub fn cached_eval(&self, name: &str, rows: usize) -> Option<Arc<crate::catalog::eval_sets::EvalData>> {
        let map = self.evals.lock().unwrap_or_else(|p| p.into_inner());
        map.get(name).filter(|(r, _)| *r == rows).map(|(_, d)| d.clone())
    }

    pub fn cache_eval(&self, name: &str, rows: usize, data: Arc<crate::catalog::eval_sets::EvalData>) {
        self.evals.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), (rows, data));
    }

    pub fn forget_evals(&self, names: &[String]) {
        let mut map = self.evals.lock().unwrap_or_else(|p| p.into_inner());
        for n in names {
            map.remove(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_are_parsed_and_bounds_checked() {
        let g = parse_grid(r#"[{"ef_construction": 40, "ef_search": 30}, {"m": 8, "efc": 10, "ef": 200}]"#).unwrap();
        assert_eq!(g, vec![TrialConfig::new(16, 40, 30), TrialConfig::new(8, 10, 200)]);
        for bad in [
            r#"[{"ef_construction": 9, "ef_search": 30}]"#,
            r#"[{"ef_construction": 401, "ef_search": 30}]"#,
            r#"[{"ef_construction": 40, "ef_search": 201}]"#,
            r#"[{"ef_construction": 40, "ef_search": 9}]"#,
            r#"[{"m": 3, "ef_construction": 40, "ef_search": 30}]"#,
            r#"[{"m": 65, "ef_construction": 40, "ef_search": 30}]"#,
            r#"[]"#,
            r#"{"m": 1}"#,
            r#"[{"ef_construction": 40, "ef_search": 30, "x": 1}]"#,
        ] {
            assert_eq!(parse_grid(bad).unwrap_err().sqlstate(), "22023", "{bad}");
        }
        assert_eq!(default_grid().len(), 5);
        assert!(default_grid().iter().all(|c| c.check().is_ok()));
    }

    #[test]
    fn rng_is_stable() {
        let mut r = Rng::new(42);
        let a: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        let mut r = Rng::new(42);
        let b: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(a, b);
        assert_eq!(a[0], 0xBDD7_3226_2FEB_6E95);
    }
}
