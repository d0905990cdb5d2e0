//! The autotune agent: a background task that keeps trying configurations near each
//! index's champion and promotes a better one.
//!
//! It is woken by `CALL autotune_enqueue('idx')`, by its period (every index), and
//! when rows are appended to an index's table (INSERT). Each wake runs at most one
//! trial per queued index, subject to a rate limit (trials per hour, all indexes) and
//! a cooldown per index; its builds run in a thread pool sized to its share of the
//! cores, so queries keep the rest. `lakehouse.toml`:
//!
//! ```toml
//! [agent]
//! enabled = false            # default
//! max_trials_per_hour = 12
//! cooldown_secs = 300        # between two trials on one index
//! period_secs = 3600         # every index is queued this often (0: never)
//! min_recall = 0.9           # a new champion must reach it
//! max_cpu_share = 0.5        # share of the cores its builds may use
//! ```

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use serde::Deserialize;

use super::{EF_CONSTRUCTION_BOUNDS, EF_SEARCH_BOUNDS, FNV_OFFSET, M_BOUNDS, Rng, TrialConfig, fnv};
use crate::catalog::trials::TrialRecord;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    pub enabled: bool,
    pub max_trials_per_hour: u32,
    pub cooldown_secs: u64,
    pub period_secs: u64,
    pub min_recall: f64,
    pub max_cpu_share: f64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig { enabled: false, max_trials_per_hour: 12, cooldown_secs: 300, period_secs: 3600, min_recall: super::DEFAULT_MIN_RECALL, max_cpu_share: 0.5 }
    }
}

impl AgentConfig {
    /// Threads the agent's builds may use.
    pub fn threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        ((cores as f64 * self.max_cpu_share).floor() as usize).clamp(1, cores)
    }

    pub fn validate(&self) -> crate::error::Result<()> {
        if !(self.max_cpu_share > 0.0 && self.max_cpu_share <= 1.0) {
            return Err(crate::error::Error::Configuration(format!("[agent] max_cpu_share must be in (0, 1], got {}", self.max_cpu_share)));
        }
        if !(0.0..=1.0).contains(&self.min_recall) {
            return Err(crate::error::Error::Configuration(format!("[agent] min_recall must be in [0, 1], got {}", self.min_recall)));
        }
        Ok(())
    }
}

/// Probability of a random configuration instead of a step from the champion.
pub const EXPLORE: f64 = 0.25;
const M_STEP: usize = 4;
const EF_CONSTRUCTION_STEP: usize = 20;
const EF_SEARCH_STEP: usize = 10;

/// The next configuration to try for `index`: the champion itself if it was never
/// measured, else ε-greedy around it — with probability 0.25 a random configuration
/// within the bounds, otherwise a small step on each axis — skipping everything the
/// journal already holds. The same journal always gives the same proposal. None when
/// no untried configuration turns up.
pub fn propose(index: &str, journal: &[TrialRecord], champion: TrialConfig) -> Option<TrialConfig> {
    let tried: HashSet<TrialConfig> = journal.iter().map(|t| TrialConfig::new(t.m, t.ef_construction, t.ef_search)).collect();
    if !tried.contains(&champion) {
        return Some(champion);
    }
    let mut seed = fnv(index.as_bytes(), FNV_OFFSET);
    for t in journal {
        seed = fnv(&[t.m as u64, t.ef_construction as u64, t.ef_search as u64].map(u64::to_le_bytes).concat(), seed);
    }
    let mut rng = Rng::new(seed);
    let step = |rng: &mut Rng, v: usize, by: usize, (lo, hi): (usize, usize)| -> usize {
        match rng.below(3) {
            0 => v.saturating_sub(by).max(lo),
            1 => v,
            _ => (v + by).min(hi),
        }
    };
    let in_range = |rng: &mut Rng, (lo, hi): (usize, usize), unit: usize| lo + rng.below((hi - lo) / unit + 1) * unit;
    for _ in 0..256 {
        let c = if rng.unit() < EXPLORE {
            TrialConfig::new(in_range(&mut rng, M_BOUNDS, 4), in_range(&mut rng, EF_CONSTRUCTION_BOUNDS, 10), in_range(&mut rng, EF_SEARCH_BOUNDS, 10))
        } else {
            TrialConfig::new(
                step(&mut rng, champion.m, M_STEP, M_BOUNDS),
                step(&mut rng, champion.ef_construction, EF_CONSTRUCTION_STEP, EF_CONSTRUCTION_BOUNDS),
                step(&mut rng, champion.ef_search, EF_SEARCH_STEP, EF_SEARCH_BOUNDS),
            )
        };
        if !tried.contains(&c) && c.check().is_ok() {
            return Some(c);
        }
    }
    None
}

/// Whether a trial on an index may start at `now` (seconds): Ok, or Err(seconds to
/// wait) when the hourly rate limit (over `recent`, the start times of the agent's
/// trials) or the index's cooldown (since `last_on_index`) says not yet.
pub fn admit(now: f64, recent: &VecDeque<f64>, last_on_index: Option<f64>, config: &AgentConfig) -> Result<(), f64> {
    let in_hour: Vec<f64> = recent.iter().copied().filter(|t| now - t < 3600.0).collect();
    let mut wait: f64 = 0.0;
    if in_hour.len() >= config.max_trials_per_hour as usize {
        // The oldest trial of the window has to leave it first.
        let oldest = in_hour.iter().copied().fold(f64::INFINITY, f64::min);
        wait = wait.max(oldest + 3600.0 - now);
    }
    if let Some(last) = last_on_index {
        wait = wait.max(last + config.cooldown_secs as f64 - now);
    }
    if wait > 0.0 { Err(wait) } else { Ok(()) }
}

/// What `lakehouse.agent` shows.
#[derive(Debug, Clone, Default)]
pub struct AgentState {
    pub queue: VecDeque<String>,
    pub running: Option<String>,
    pub last_run_at: Option<String>,
    pub last_index: Option<String>,
    pub last_result: Option<String>,
    /// Start times (unix seconds) of the agent's trials in the last hour.
    pub recent: VecDeque<f64>,
    /// Last trial start per index (unix seconds).
    pub last_on_index: std::collections::HashMap<String, f64>,
    pub next_wake: Option<String>,
    /// How often the agent has gone to sleep finding nothing it may run (what a
    /// test waits on to know a wake was considered and held).
    pub waits: u64,
    pub trials_run: u64,
    pub promotions: u64,
}

pub struct Agent {
    pub config: AgentConfig,
    pub state: Mutex<AgentState>,
    pub wake: tokio::sync::Notify,
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl Agent {
    pub fn new(config: AgentConfig) -> Agent {
        Agent { config, state: Mutex::default(), wake: tokio::sync::Notify::new() }
    }

    pub fn state(&self) -> AgentState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Queue `index` (once) and wake the agent. Returns the queue position (1-based).
    pub fn enqueue(&self, index: &str) -> usize {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let pos = match st.queue.iter().position(|q| q == index) {
            Some(p) => p + 1,
            None => {
                st.queue.push_back(index.to_string());
                st.queue.len()
            }
        };
        drop(st);
        self.wake.notify_one();
        pos
    }

    /// Take the first queued index that may run now; else the seconds until one may.
    pub fn next(&self, now: f64) -> Result<String, Option<f64>> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.recent.retain(|t| now - t < 3600.0);
        let mut soonest: Option<f64> = None;
        for i in 0..st.queue.len() {
            let name = st.queue[i].clone();
            match admit(now, &st.recent, st.last_on_index.get(&name).copied(), &self.config) {
                Ok(()) => {
                    st.queue.remove(i);
                    st.recent.push_back(now);
                    st.last_on_index.insert(name.clone(), now);
                    st.running = Some(name.clone());
                    return Ok(name);
                }
                Err(w) => soonest = Some(soonest.map_or(w, |s: f64| s.min(w))),
            }
        }
        Err(soonest)
    }

    /// Record how a run ended.
    pub fn finished(&self, index: &str, result: String, promoted: bool, ran: bool) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.running = None;
        st.last_run_at = Some(crate::catalog::now_rfc3339());
        st.last_index = Some(index.to_string());
        st.last_result = Some(result);
        st.trials_run += u64::from(ran);
        st.promotions += u64::from(promoted);
    }

    pub fn forget(&self, index: &str) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.queue.retain(|q| q != index);
        st.last_on_index.remove(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(c: TrialConfig) -> TrialRecord {
        TrialRecord {
            trial_id: 0,
            index_name: "i".into(),
            m: c.m,
            ef_construction: c.ef_construction,
            ef_search: c.ef_search,
            recall: 0.9,
            k: 10,
            queries: 1,
            p50_ms: 0.1,
            p95_ms: 0.1,
            build_secs: 0.0,
            memory_bytes: 0,
            rows: 0,
            eval_set: "e".into(),
            source: "agent".into(),
            created_at: String::new(),
        }
    }

    #[test]
    fn proposals_are_deterministic_new_and_within_bounds() {
        let champion = TrialConfig::new(16, 64, 40);
        // Never measured: the champion first.
        assert_eq!(propose("i", &[], champion), Some(champion));
        let mut journal = vec![t(champion)];
        let mut seen = HashSet::from([champion]);
        let (mut steps, mut random) = (0, 0);
        for _ in 0..200 {
            let p = propose("i", &journal, champion).unwrap();
            // Deterministic for a given journal.
            assert_eq!(propose("i", &journal, champion), Some(p));
            assert!(p.check().is_ok(), "{p}");
            assert!(seen.insert(p), "{p} proposed twice");
            let near = p.m.abs_diff(16) <= M_STEP && p.ef_construction.abs_diff(64) <= EF_CONSTRUCTION_STEP && p.ef_search.abs_diff(40) <= EF_SEARCH_STEP;
            if near { steps += 1 } else { random += 1 }
            journal.push(t(p));
        }
        // The 26 neighbours are used up early; the rest are random draws.
        assert!(steps <= 26 && random >= 150, "steps {steps}, random {random}");
        // Another index, same journal shape: another sequence.
        assert_ne!(propose("j", &journal[..1], champion), propose("i", &journal[..1], champion));
    }

    #[test]
    fn rate_limit_and_cooldown() {
        let c = AgentConfig { max_trials_per_hour: 3, cooldown_secs: 60, ..AgentConfig::default() };
        let now = 10_000.0;
        assert_eq!(admit(now, &VecDeque::new(), None, &c), Ok(()));
        // Cooldown: 20 s after the last trial on this index, 40 s to go.
        assert_eq!(admit(now, &VecDeque::from([now - 20.0]), Some(now - 20.0), &c), Err(40.0));
        assert_eq!(admit(now, &VecDeque::from([now - 61.0]), Some(now - 61.0), &c), Ok(()));
        // Rate limit: three in the last hour; the oldest leaves the window in 100 s.
        let recent = VecDeque::from([now - 3500.0, now - 1000.0, now - 500.0]);
        assert_eq!(admit(now, &recent, None, &c), Err(100.0));
        // Trials older than an hour do not count.
        let recent = VecDeque::from([now - 4000.0, now - 1000.0, now - 500.0]);
        assert_eq!(admit(now, &recent, None, &c), Ok(()));

        let agent = Agent::new(c);
        assert_eq!(agent.enqueue("a"), 1);
        assert_eq!(agent.enqueue("b"), 2);
        assert_eq!(agent.enqueue("a"), 1, "queued once");
        assert_eq!(agent.next(now), Ok("a".to_string()));
        agent.finished("a", "done".into(), false, true);
        assert_eq!(agent.enqueue("a"), 2);
        assert_eq!(agent.next(now + 1.0), Ok("b".to_string()));
        // a is cooling down (59 s left), nothing else is queued.
        assert_eq!(agent.next(now + 1.0), Err(Some(59.0)));
        assert_eq!(agent.next(now + 60.0), Ok("a".to_string()));
        // Three trials this hour: the limit holds c and a until the first leaves the window.
        agent.enqueue("c");
        assert_eq!(agent.next(now + 61.0), Err(Some(3539.0)));
        assert_eq!(agent.next(now + 3600.0), Ok("c".to_string()));
    }
}
