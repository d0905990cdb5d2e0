//! How `CALL autotune` chooses: the grid (every configuration of a list; winner =
//! highest recall, ties by lowest p50, as the old service) and the adaptive search
//! (fewest trials to the fastest configuration that reaches the recall target).

use std::collections::HashMap;

use super::{EF_CONSTRUCTION_BOUNDS, EF_SEARCH_BOUNDS, M_BOUNDS, TrialConfig};
use crate::catalog::trials::TrialRecord;
use crate::error::Result;

/// The grid's winner: among trials that reach `min_recall`, the highest recall, ties
/// broken by the lowest p50. None when no trial reaches it.
pub fn grid_winner(trials: &[TrialRecord], min_recall: f64) -> Option<&TrialRecord> {
    trials
        .iter()
        .filter(|t| t.recall >= min_recall)
        .min_by(|a, b| b.recall.total_cmp(&a.recall).then(a.p50_ms.total_cmp(&b.p50_ms)).then(a.trial_id.cmp(&b.trial_id)))
}

/// The adaptive strategy's winner: the lowest p50 among trials reaching `min_recall`.
pub fn fastest_at(trials: &[TrialRecord], min_recall: f64) -> Option<&TrialRecord> {
    trials
        .iter()
        .filter(|t| t.recall >= min_recall)
        .min_by(|a, b| a.p50_ms.total_cmp(&b.p50_ms).then(b.recall.total_cmp(&a.recall)).then(a.trial_id.cmp(&b.trial_id)))
}

/// ef_search values the adaptive search moves along.
const EF_LADDER: [usize; 13] = [10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 160, 200];

fn ladder_index(ef: usize) -> usize {
    EF_LADDER.iter().position(|e| *e >= ef).unwrap_or(EF_LADDER.len() - 1)
}

/// Adaptive search within `budget` trials, from the build (m, ef_construction)
/// `start` and ef_search `start_ef`:
///
/// 1. on the start build, the smallest ef_search on the ladder that reaches
///    `min_recall` (recall grows with ef_search: a galloping search then bisection);
/// 2. then neighbouring builds — ef_construction doubled, m doubled, m halved,
///    ef_construction halved — each searched for its own smallest passing
///    ef_search starting from the best one so far (given up as soon as a failing
///    trial is already slower than the centre: more ef_search only costs more); a
///    neighbour with a lower p50 becomes the new centre and its neighbours are
///    tried in turn.
///
/// `run` runs (and journals) one trial. Returns every trial run, in order.
pub fn adaptive(mut run: impl FnMut(TrialConfig) -> Result<TrialRecord>, start: (usize, usize), start_ef: usize, min_recall: f64, budget: usize) -> Result<Vec<TrialRecord>> {
    let mut seen: HashMap<TrialConfig, TrialRecord> = HashMap::new();
    let mut order: Vec<TrialRecord> = vec![];
    // Ok(None) once the budget is spent.
    let mut eval = |c: TrialConfig, seen: &mut HashMap<TrialConfig, TrialRecord>, order: &mut Vec<TrialRecord>| -> Result<Option<TrialRecord>> {
        if let Some(t) = seen.get(&c) {
            return Ok(Some(t.clone()));
        }
        if order.len() >= budget {
            return Ok(None);
        }
        let t = run(c)?;
        seen.insert(c, t.clone());
        order.push(t.clone());
        Ok(Some(t))
    };
    // The smallest passing ladder index for one build, from `from`; None if even
    // ef_search 200 falls short, or a failing trial is already slower than `ceiling`
    // (the best p50 so far: a larger ef_search only costs more), or the budget ran out.
    let mut smallest_passing = |build: (usize, usize), from: usize, ceiling: Option<f64>, seen: &mut HashMap<TrialConfig, TrialRecord>, order: &mut Vec<TrialRecord>| -> Result<Option<TrialRecord>> {
        let cfg = |i: usize| TrialConfig::new(build.0, build.1, EF_LADDER[i]);
        let passes = |t: &TrialRecord| t.recall >= min_recall;
        let Some(first) = eval(cfg(from), seen, order)? else { return Ok(None) };
        // Bracket [fail, pass] by galloping away from `from`.
        let (mut fail, mut pass): (Option<usize>, Option<(usize, TrialRecord)>) = if passes(&first) { (None, Some((from, first))) } else { (Some(from), None) };
        let mut step = 1;
        loop {
            match (&fail, &pass) {
                (Some(_), Some(_)) => break,
                (None, Some((p, _))) => {
                    if *p == 0 {
                        break;
                    }
                    let i = p.saturating_sub(step);
                    let Some(t) = eval(cfg(i), seen, order)? else { break };
                    if passes(&t) { pass = Some((i, t)) } else { fail = Some(i) }
                }
                (Some(f), None) => {
                    let slower = ceiling.is_some_and(|c| seen.get(&cfg(*f)).is_some_and(|t| t.p50_ms >= c));
                    if *f == EF_LADDER.len() - 1 || slower {
                        return Ok(None);
                    }
                    let i = (f + step).min(EF_LADDER.len() - 1);
                    let Some(t) = eval(cfg(i), seen, order)? else { return Ok(None) };
                    if passes(&t) { pass = Some((i, t)) } else { fail = Some(i) }
                }
                (None, None) => unreachable!(),
            }
            step *= 2;
        }
        // Bisect between the last failing and the first passing index.
        let Some((mut p, mut best)) = pass else { return Ok(None) };
        if let Some(mut f) = fail {
            while p > f + 1 {
                let mid = (f + p) / 2;
                let Some(t) = eval(cfg(mid), seen, order)? else { break };
                if passes(&t) {
                    p = mid;
                    best = t;
                } else {
                    f = mid;
                }
            }
        }
        Ok(Some(best))
    };

    let clamp = |v: usize, (lo, hi): (usize, usize)| v.clamp(lo, hi);
    let start = (clamp(start.0, M_BOUNDS), clamp(start.1, EF_CONSTRUCTION_BOUNDS));
    let mut centre = smallest_passing(start, ladder_index(start_ef.clamp(EF_SEARCH_BOUNDS.0, EF_SEARCH_BOUNDS.1)), None, &mut seen, &mut order)?;
    let mut tried_builds = vec![start];
    let mut centre_build = start;
    loop {
        if order.len() >= budget {
            break;
        }
        let (m, efc) = centre_build;
        let neighbours = [
            (m, clamp(efc * 2, EF_CONSTRUCTION_BOUNDS)),
            (clamp(m * 2, M_BOUNDS), efc),
            (clamp(m / 2, M_BOUNDS), efc),
            (m, clamp(efc / 2, EF_CONSTRUCTION_BOUNDS)),
        ];
        let mut moved = false;
        for nb in neighbours {
            if tried_builds.contains(&nb) || order.len() >= budget {
                continue;
            }
            tried_builds.push(nb);
            let from = centre.as_ref().map(|c| ladder_index(c.ef_search)).unwrap_or(EF_LADDER.len() / 2);
            let ceiling = centre.as_ref().map(|c| c.p50_ms);
            let Some(t) = smallest_passing(nb, from, ceiling, &mut seen, &mut order)? else { continue };
            if centre.as_ref().is_none_or(|c| t.p50_ms < c.p50_ms) {
                centre = Some(t);
                centre_build = nb;
                moved = true;
                break;
            }
        }
        if !moved {
            break;
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(id: i64, recall: f64, p50: f64) -> TrialRecord {
        TrialRecord {
            trial_id: id,
            index_name: "i".into(),
            m: 16,
            ef_construction: 40,
            ef_search: 30,
            recall,
            k: 10,
            queries: 10,
            p50_ms: p50,
            p95_ms: p50,
            build_secs: 0.0,
            memory_bytes: 0,
            rows: 0,
            eval_set: "e".into(),
            source: "autotune".into(),
            created_at: String::new(),
        }
    }

    #[test]
    fn winners_follow_the_gate_and_the_tie_break() {
        let t = vec![trial(1, 0.95, 0.3), trial(2, 0.97, 0.5), trial(3, 0.97, 0.4), trial(4, 0.85, 0.1)];
        assert_eq!(grid_winner(&t, 0.9).unwrap().trial_id, 3);
        assert_eq!(fastest_at(&t, 0.9).unwrap().trial_id, 1);
        assert!(grid_winner(&t, 0.98).is_none());
        assert!(fastest_at(&t, 0.98).is_none());
    }

    /// A synthetic response surface: recall grows with every parameter, latency with
    /// ef_search and m; the search must find the fastest passing configuration.
    #[test]
    fn adaptive_finds_the_fastest_passing_config_within_budget() {
        let model = |c: TrialConfig| {
            let quality = (c.ef_search as f64).ln() * 0.12 + (c.ef_construction as f64).ln() * 0.05 + (c.m as f64).ln() * 0.06;
            let recall = quality.min(1.0);
            let p50 = c.ef_search as f64 * (1.0 + c.m as f64 / 32.0) / 100.0;
            (recall, p50)
        };
        let mut id = 0;
        let run = |c: TrialConfig| -> Result<TrialRecord> {
            id += 1;
            let (r, p) = model(c);
            Ok(TrialRecord { m: c.m, ef_construction: c.ef_construction, ef_search: c.ef_search, ..trial(id, r, p) })
        };
        let trials = adaptive(run, (16, 64), 40, 0.9, 15).unwrap();
        assert!(trials.len() <= 15);
        let best = fastest_at(&trials, 0.9).unwrap();
        // Brute force over the same ladder and neighbour builds.
        let mut all = vec![];
        for m in [8, 16, 32] {
            for efc in [32, 64, 128, 256] {
                for ef in EF_LADDER {
                    let (r, p) = model(TrialConfig::new(m, efc, ef));
                    if r >= 0.9 {
                        all.push(p);
                    }
                }
            }
        }
        let optimum = all.into_iter().fold(f64::INFINITY, f64::min);
        assert!(best.p50_ms <= optimum * 1.05, "adaptive {} vs optimum {optimum}", best.p50_ms);
        // Deterministic: same surface, same trials.
        let mut id2 = 0;
        let again = adaptive(
            |c| {
                id2 += 1;
                let (r, p) = model(c);
                Ok(TrialRecord { m: c.m, ef_construction: c.ef_construction, ef_search: c.ef_search, ..trial(id2, r, p) })
            },
            (16, 64),
            40,
            0.9,
            15,
        )
        .unwrap();
        assert_eq!(trials, again);
    }
}
