//! The trial journal ("trials are data"): every tuning trial — by hand (`run_trial`),
//! by `autotune`, or by the agent — is one JSON line in its index's journal,
//! `<bucket>/tuning/<index>/trials.jsonl`, appended and fsynced before it is reported.
//!
//! A journal only grows, so appending keeps each trial O(1) however long the history
//! (the catalog document is rewritten whole on every change and stays small). A crash
//! in the middle of an append leaves a torn last line: it is cut off on load, and the
//! trials before it are intact. All journals are read at start; `lakehouse.trials`
//! reads the in-memory copy.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::Catalog;
use super::indexes::IndexRecord;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrialRecord {
    pub trial_id: i64,
    pub index_name: String,
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    /// recall@k over the eval set's queries.
    pub recall: f64,
    pub k: usize,
    pub queries: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Seconds to build the graph this trial searched (shared by the trials of one
    /// build; the live index's own build time when the trial reused it).
    pub build_secs: f64,
    /// Bytes of the searched graph (vectors and links).
    pub memory_bytes: u64,
    /// Rows in the index when the trial ran.
    pub rows: usize,
    pub eval_set: String,
    /// `manual`, `autotune` or `agent`.
    pub source: String,
    pub created_at: String,
}

const JOURNAL: &str = "trials.jsonl";

/// `<bucket>/tuning/<index>/`: an index's journal and eval sets.
pub fn tuning_dir(catalog: &Catalog, index: &IndexRecord) -> Result<PathBuf> {
    let bucket = catalog.bucket(&index.bucket)?;
    let root = super::datasets::local_dir(&bucket.url)
        .ok_or_else(|| Error::NotSupported(format!("tuning data outside the local file system ({})", bucket.url)))?;
    Ok(root.join("tuning").join(&index.name))
}

#[derive(Debug, Default)]
pub struct TrialJournal {
    /// By index name, in trial order.
    trials: RwLock<BTreeMap<String, Vec<TrialRecord>>>,
    /// Appends one at a time (ids in order, lines whole).
    write: Mutex<i64>,
}

impl TrialJournal {
    /// Read the journals of every index in the catalog.
    pub fn load(catalog: &Catalog) -> TrialJournal {
        let mut by_index = BTreeMap::new();
        let mut max_id = 0;
        for index in catalog.snapshot().indexes.values() {
            let Ok(dir) = tuning_dir(catalog, index) else { continue };
            match read_journal(&dir.join(JOURNAL)) {
                Ok(trials) => {
                    max_id = trials.iter().map(|t| t.trial_id).fold(max_id, i64::max);
                    by_index.insert(index.name.clone(), trials);
                }
                Err(e) => tracing::warn!("trial journal of {}: {e}", index.name),
            }
        }
        TrialJournal { trials: RwLock::new(by_index), write: Mutex::new(max_id) }
    }

    /// Give `trial` the next id, make it durable in its index's journal, and keep it.
    pub fn append(&self, catalog: &Catalog, index: &IndexRecord, mut trial: TrialRecord) -> Result<TrialRecord> {
        let mut last = self.write.lock().unwrap_or_else(|p| p.into_inner());
        trial.trial_id = *last + 1;
        let dir = tuning_dir(catalog, index)?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        let path = dir.join(JOURNAL);
        let mut line = serde_json::to_vec(&trial).map_err(|e| Error::Internal(e.to_string()))?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(path.display(), e))?;
        f.write_all(&line).and_then(|_| f.sync_data()).map_err(|e| Error::io(path.display(), e))?;
        *last = trial.trial_id;
        self.trials.write().unwrap_or_else(|p| p.into_inner()).entry(index.name.clone()).or_default().push(trial.clone());
        Ok(trial)
    }

    pub fn of_index(&self, index: &str) -> Vec<TrialRecord> {
        self.trials.read().unwrap_or_else(|p| p.into_inner()).get(index).cloned().unwrap_or_default()
    }

    pub fn all(&self) -> Vec<TrialRecord> {
        let mut all: Vec<TrialRecord> = self.trials.read().unwrap_or_else(|p| p.into_inner()).values().flatten().cloned().collect();
        all.sort_by_key(|t| t.trial_id);
        all
    }

    pub fn get(&self, index: &str, trial_id: i64) -> Option<TrialRecord> {
        self.of_index(index).into_iter().find(|t| t.trial_id == trial_id)
    }

    /// The index was dropped: its trials and tuning files go with it.
    pub fn forget(&self, catalog: &Catalog, index: &IndexRecord) {
        self.trials.write().unwrap_or_else(|p| p.into_inner()).remove(&index.name);
        if let Ok(dir) = tuning_dir(catalog, index) {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("could not remove {}: {e}", dir.display());
                }
            }
        }
    }
}

/// Read a journal, cutting off a torn last line (a crash mid-append) so that the
/// next append starts on a line of its own.
fn read_journal(path: &Path) -> Result<Vec<TrialRecord>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io(path.display(), e)),
    };
    let whole = bytes.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
    if whole < bytes.len() {
        tracing::warn!("{}: cutting off a torn last line ({} bytes)", path.display(), bytes.len() - whole);
        let f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| Error::io(path.display(), e))?;
        f.set_len(whole as u64).and_then(|_| f.sync_all()).map_err(|e| Error::io(path.display(), e))?;
    }
    let mut out = vec![];
    for (i, line) in bytes[..whole].split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<TrialRecord>(line) {
            Ok(t) => out.push(t),
            Err(e) => tracing::warn!("{} line {}: unreadable trial skipped: {e}", path.display(), i + 1),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(index: &str) -> TrialRecord {
        TrialRecord {
            trial_id: 0,
            index_name: index.into(),
            m: 16,
            ef_construction: 40,
            ef_search: 30,
            recall: 0.95,
            k: 10,
            queries: 100,
            p50_ms: 0.1,
            p95_ms: 0.2,
            build_secs: 1.0,
            memory_bytes: 1000,
            rows: 10,
            eval_set: "e".into(),
            source: "manual".into(),
            created_at: String::new(),
        }
    }

    #[test]
    fn appends_survive_reopen_and_a_torn_line_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        let ir = IndexRecord::test_record("i", "t");
        c.update(|s| {
            s.indexes.insert("i".into(), ir.clone());
            Ok(())
        })
        .unwrap();
        let j = TrialJournal::load(&c);
        assert_eq!(j.append(&c, &ir, trial("i")).unwrap().trial_id, 1);
        assert_eq!(j.append(&c, &ir, trial("i")).unwrap().trial_id, 2);
        let path = tuning_dir(&c, &ir).unwrap().join(JOURNAL);
        // A crash in the middle of the third append.
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"trial_id\": 3, \"index_na").unwrap();
        drop(f);
        let j = TrialJournal::load(&c);
        assert_eq!(j.of_index("i").len(), 2);
        assert_eq!(j.append(&c, &ir, trial("i")).unwrap().trial_id, 3);
        let j = TrialJournal::load(&c);
        assert_eq!(j.of_index("i").iter().map(|t| t.trial_id).collect::<Vec<_>>(), vec![1, 2, 3]);
        j.forget(&c, &ir);
        assert!(j.all().is_empty());
        assert!(!path.exists());
    }
}
