//! The promotion registry: per index, the current promoted configuration and the
//! history of earlier ones (most recent first, at most [`HISTORY_CAP`]).
//!
//! It lives in the catalog document, so `CALL promote` and `CALL rollback` are one
//! atomic, fsynced catalog update: durable when they return, whole or absent after a
//! crash. The index's own record carries the promoted ef_search in the same update;
//! the graph rebuild with the promoted m / ef_construction follows in the background.

use serde::{Deserialize, Serialize};

use super::Catalog;
use crate::catalog::indexes::unknown_index;
use crate::error::Result;

/// Earlier promotions kept per index.
pub const HISTORY_CAP: usize = 50;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Promotion {
    pub trial_id: Option<i64>,
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    pub recall: Option<f64>,
    pub p50_ms: Option<f64>,
    /// `manual`, `autotune` or `agent`.
    pub promoted_by: String,
    pub promoted_at: String,
    pub note: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct PromotionState {
    pub current: Option<Promotion>,
    /// Most recent first.
    #[serde(default)]
    pub history: Vec<Promotion>,
    /// The index's build parameters before its first promotion: what a rollback past
    /// the oldest promotion returns to.
    pub original: Option<(usize, usize)>,
}

impl PromotionState {
    /// The configuration the index should be built with now: (m, ef_construction,
    /// ef_search); ef_search None without a current promotion.
    pub fn target(&self) -> Option<(usize, usize, Option<usize>)> {
        match (&self.current, self.original) {
            (Some(p), _) => Some((p.m, p.ef_construction, Some(p.ef_search))),
            (None, Some((m, efc))) => Some((m, efc, None)),
            (None, None) => None,
        }
    }
}

impl Catalog {
    pub fn promotions(&self, index: &str) -> PromotionState {
        self.snapshot().promotions.get(index).cloned().unwrap_or_default()
    }

    /// Make `p` current (the previous current goes to the front of the history, the
    /// oldest beyond the cap is dropped) and set the index's ef_search, atomically.
    pub fn promote(&self, index: &str, p: Promotion) -> Result<PromotionState> {
        self.update(|s| {
            let rec = s.indexes.get_mut(index).ok_or_else(|| unknown_index(index))?;
            rec.ef_search = Some(p.ef_search);
            let original = (rec.m, rec.ef_construction);
            let st = s.promotions.entry(index.to_string()).or_default();
            if st.original.is_none() {
                st.original = Some(original);
            }
            if let Some(prev) = st.current.take() {
                st.history.insert(0, prev);
                st.history.truncate(HISTORY_CAP);
            }
            st.current = Some(p);
            Ok(st.clone())
        })
    }

    /// Return to the previous promotion; with no history, clear the current one (the
    /// index goes back to its original parameters and the default ef_search).
    pub fn rollback(&self, index: &str) -> Result<PromotionState> {
        self.update(|s| {
            let rec = s.indexes.get_mut(index).ok_or_else(|| unknown_index(index))?;
            let st = s.promotions.entry(index.to_string()).or_default();
            st.current = if st.history.is_empty() { None } else { Some(st.history.remove(0)) };
            rec.ef_search = st.current.as_ref().map(|p| p.ef_search);
            Ok(st.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::indexes::IndexRecord;

    fn promotion(i: i64) -> Promotion {
        Promotion {
            trial_id: Some(i),
            m: 16,
            ef_construction: 10 + i as usize,
            ef_search: 40,
            recall: Some(0.9),
            p50_ms: Some(0.1),
            promoted_by: "manual".into(),
            promoted_at: String::new(),
            note: String::new(),
        }
    }

    fn catalog_with_index(dir: &std::path::Path) -> Catalog {
        let c = Catalog::open(dir).unwrap();
        c.update(|s| {
            s.indexes.insert("i".into(), IndexRecord::test_record("i", "t"));
            Ok(())
        })
        .unwrap();
        c
    }

    #[test]
    fn history_is_most_recent_first_capped_and_rollback_pops_it() {
        let dir = tempfile::tempdir().unwrap();
        let c = catalog_with_index(dir.path());
        for i in 1..=60 {
            c.promote("i", promotion(i)).unwrap();
        }
        let st = c.promotions("i");
        assert_eq!(st.current.as_ref().unwrap().trial_id, Some(60));
        assert_eq!(st.history.len(), HISTORY_CAP);
        assert_eq!(st.history[0].trial_id, Some(59));
        assert_eq!(st.history[49].trial_id, Some(10));
        assert_eq!(st.original, Some((16, 64)));
        let st = c.rollback("i").unwrap();
        assert_eq!(st.current.unwrap().trial_id, Some(59));
        assert_eq!(st.history.len(), HISTORY_CAP - 1);
        drop(c);
        // Durable: a reopened catalog has the same registry.
        let c = Catalog::open(dir.path()).unwrap();
        assert_eq!(c.promotions("i").current.unwrap().trial_id, Some(59));
        for _ in 0..HISTORY_CAP - 1 {
            c.rollback("i").unwrap();
        }
        assert_eq!(c.promotions("i").current.unwrap().trial_id, Some(10));
        // Empty history: rollback clears the current promotion and the ef_search.
        let st = c.rollback("i").unwrap();
        assert!(st.current.is_none());
        assert_eq!(st.target(), Some((16, 64, None)));
        assert_eq!(c.index("i").unwrap().ef_search, None);
        assert!(c.rollback("i").unwrap().current.is_none());
        assert_eq!(c.promote("nope", promotion(1)).unwrap_err().sqlstate(), "42704");
    }
}
