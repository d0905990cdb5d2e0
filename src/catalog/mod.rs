//! Persistent state: buckets and datasets (later: indexes, eval sets, trials,
//! promotions, profiles), and the procedures that change it (`CALL …`).
//!
//! The whole catalog is one small JSON document, `<data-dir>/_catalog/catalog.json`.
//! Every change is applied to a copy, written to a temporary file, fsynced, and renamed
//! over the old file (then the directory is fsynced), so a crash at any point leaves
//! either the old or the new state readable, never a mix. A `LOCK` file next to it,
//! held with an exclusive OS lock for the life of the process, keeps a second process
//! from writing the same data directory.

pub mod attachments;
pub mod buckets;
pub mod datasets;
pub mod eval_sets;
pub mod indexes;
pub mod models;
pub mod procedures;
pub mod promotions;
pub mod roles;
pub mod schemas;
pub mod sequences;
pub mod trials;
pub mod types;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

pub use buckets::{BucketKind, BucketRecord};
pub use datasets::DatasetRecord;

use crate::error::{Error, Result};

/// Bumped when the document's shape changes; older documents are migrated on load.
pub const CATALOG_VERSION: u32 = 1;
pub const CATALOG_DIR: &str = "_catalog";
const CATALOG_FILE: &str = "catalog.json";
const LOCK_FILE: &str = "LOCK";

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct CatalogState {
    pub version: u32,
    #[serde(default)]
    pub buckets: BTreeMap<String, BucketRecord>,
    #[serde(default)]
    pub datasets: BTreeMap<String, DatasetRecord>,
    /// Added in #3; older catalogs have none.
    #[serde(default)]
    pub indexes: BTreeMap<String, indexes::IndexRecord>,
    /// Added in #4; older catalogs have none.
    #[serde(default)]
    pub models: BTreeMap<String, models::ModelRecord>,
    /// Added in #5 (autotune); older catalogs have none. Trials are not here: they
    /// are journals in the index's bucket (catalog::trials).
    #[serde(default)]
    pub eval_sets: BTreeMap<String, eval_sets::EvalSetRecord>,
    #[serde(default)]
    pub promotions: BTreeMap<String, promotions::PromotionState>,
    /// Added in #6; older catalogs have none.
    #[serde(default)]
    pub attachments: BTreeMap<String, attachments::AttachmentRecord>,
    /// Added in #13; older catalogs have none.
    #[serde(default)]
    pub roles: roles::RoleState,
    /// Added in #14; older catalogs have none.
    #[serde(default)]
    pub sequences: BTreeMap<String, sequences::SequenceRecord>,
    /// Added in #14; older catalogs have none (only `public`).
    #[serde(default)]
    pub schemas: BTreeMap<String, schemas::SchemaRecord>,
    /// Enums and domains (#14); older catalogs have none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub types: BTreeMap<String, types::TypeRecord>,
}

pub struct Catalog {
    data_dir: PathBuf,
    catalog_path: PathBuf,
    state: RwLock<Arc<CatalogState>>,
    /// Serialises writers: read-modify-write of the document happens under this lock.
    write_lock: std::sync::Mutex<()>,
    _lock_file: File,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("data_dir", &self.data_dir).finish()
    }
}

impl Catalog {
    /// Open (creating if needed) the catalog in `data_dir`, taking the process lock.
    pub fn open(data_dir: &Path) -> Result<Catalog> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir.display(), e))?;
        let data_dir = data_dir.canonicalize().map_err(|e| Error::io(data_dir.display(), e))?;
        let dir = data_dir.join(CATALOG_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;

        let lock_path = dir.join(LOCK_FILE);
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(lock_path.display(), e))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::DataDirLocked {
                    path: data_dir.display().to_string(),
                    lock: lock_path.display().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(lock_path.display(), e)),
        }
        let mut pid = &lock_file;
        let _ = pid.set_len(0);
        let _ = writeln!(pid, "{}", std::process::id());

        let catalog_path = dir.join(CATALOG_FILE);
        let mut state = if catalog_path.exists() {
            let text = std::fs::read_to_string(&catalog_path)
                .map_err(|e| Error::io(catalog_path.display(), e))?;
            serde_json::from_str::<CatalogState>(&text).map_err(|e| Error::CorruptCatalog {
                path: catalog_path.display().to_string(),
                reason: e.to_string(),
            })?
        } else {
            CatalogState { version: CATALOG_VERSION, ..Default::default() }
        };
        if state.version > CATALOG_VERSION {
            return Err(Error::CorruptCatalog {
                path: catalog_path.display().to_string(),
                reason: format!(
                    "written by a newer lakehouse (catalog version {}, this build reads up to {CATALOG_VERSION})",
                    state.version
                ),
            });
        }
        state.version = CATALOG_VERSION;
        buckets::ensure_builtin(&mut state, &data_dir)?;

        let catalog = Catalog {
            data_dir,
            catalog_path,
            state: RwLock::new(Arc::new(state.clone())),
            write_lock: std::sync::Mutex::new(()),
            _lock_file: lock_file,
        };
        catalog.persist(&state)?;
        Ok(catalog)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A consistent snapshot of the whole catalog.
    pub fn snapshot(&self) -> Arc<CatalogState> {
        self.state.read().expect("catalog lock poisoned").clone()
    }

    /// Apply `change` to a copy of the state and make it durable before it becomes
    /// visible. If `change` or the write fails, nothing changes.
    pub fn update<T>(&self, change: impl FnOnce(&mut CatalogState) -> Result<T>) -> Result<T> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = (*self.snapshot()).clone();
        let out = change(&mut next)?;
        self.persist(&next)?;
        *self.state.write().expect("catalog lock poisoned") = Arc::new(next);
        Ok(out)
    }

    fn persist(&self, state: &CatalogState) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| Error::Internal(e.to_string()))?;
        write_atomic(&self.catalog_path, &bytes)
    }
}

/// Write `bytes` to `path` so that readers see the old or the new content, never a
/// torn file: temp file in the same directory, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path.display(), e));
    }
    Ok(())
}

/// Run a catalog operation (small fsynced file writes) off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("catalog task failed: {e}")))?
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_process_is_refused_and_state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        let err = Catalog::open(dir.path()).unwrap_err();
        assert_eq!(err.sqlstate(), "55006");
        assert!(err.to_string().contains("in use by another lakehouse process"));
        c.update(|s| {
            s.buckets.insert(
                "extra".into(),
                BucketRecord::new("extra", "file:///tmp/x/", BucketKind::User),
            );
            Ok(())
        })
        .unwrap();
        drop(c);
        let c = Catalog::open(dir.path()).unwrap();
        let snap = c.snapshot();
        assert!(snap.buckets.contains_key("extra"));
        assert!(snap.buckets.contains_key("primary"));
        assert!(snap.buckets.contains_key("rescue"));
    }

    #[test]
    fn a_moved_data_directory_keeps_its_tables() {
        let parent = tempfile::tempdir().unwrap();
        let (a, b) = (parent.path().join("a"), parent.path().join("b"));
        let c = Catalog::open(&a).unwrap();
        let bucket = c.bucket(buckets::PRIMARY).unwrap();
        let location = datasets::new_location(&bucket, "t");
        std::fs::create_dir_all(datasets::local_dir(&location).unwrap()).unwrap();
        c.put_dataset(datasets::new_record("t", buckets::PRIMARY, location.clone(), "create table"), false).unwrap();
        drop(c);
        std::fs::rename(&a, &b).unwrap();
        let c = Catalog::open(&b).unwrap();
        assert_eq!(c.remove_unreferenced_dirs(), 0, "the moved table's directory is not an orphan");
        let moved = c.dataset("t").unwrap().location;
        assert!(datasets::local_dir(&moved).unwrap().starts_with(b.canonicalize().unwrap()), "{moved}");
        assert!(datasets::local_dir(&moved).unwrap().is_dir());
    }

    #[test]
    fn failed_change_leaves_state_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        let before = c.snapshot().buckets.len();
        let r: Result<()> = c.update(|s| {
            s.buckets.clear();
            Err(Error::invalid("nope"))
        });
        assert!(r.is_err());
        assert_eq!(c.snapshot().buckets.len(), before);
        let on_disk: CatalogState = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("_catalog/catalog.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(on_disk.buckets.len(), before);
    }

    #[test]
    fn torn_temp_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        drop(Catalog::open(dir.path()).unwrap());
        // A crash between create and rename leaves a temp file behind: harmless.
        std::fs::write(dir.path().join("_catalog/.catalog.json.dead.tmp"), b"{ torn").unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        assert!(c.snapshot().buckets.contains_key("primary"));
    }

    #[test]
    fn corrupt_catalog_is_reported_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        drop(Catalog::open(dir.path()).unwrap());
        let path = dir.path().join("_catalog/catalog.json");
        std::fs::write(&path, b"{ not json").unwrap();
        let err = Catalog::open(dir.path()).unwrap_err();
        assert_eq!(err.sqlstate(), "XX001");
        assert_eq!(std::fs::read(&path).unwrap(), b"{ not json");
    }
}

impl Catalog {
    /// Remove what a crash left behind in the buckets: dataset and index directories
    /// no record points at (a `CREATE TABLE AS`, an ingest or an index build cut by
    /// kill -9 writes its directory before the catalog names it) and staged appends.
    /// Only directories lakehouse names itself (`<name>-<12 hex>`) are touched.
    /// Runs at start, under the data-directory lock, before anything writes.
    pub fn remove_unreferenced_dirs(&self) -> usize {
        let snapshot = self.snapshot();
        let referenced: Vec<std::path::PathBuf> = snapshot
            .datasets
            .values()
            .filter_map(|d| datasets::local_dir(&d.location))
            .chain(snapshot.indexes.values().filter_map(|i| datasets::local_dir(&i.location)))
            .collect();
        let ours = |name: &str| {
            name.rsplit_once('-')
                .is_some_and(|(_, id)| id.len() == 12 && id.chars().all(|c| c.is_ascii_hexdigit()))
        };
        let mut removed = 0;
        for bucket in snapshot.buckets.values() {
            let Some(root) = bucket.local_path() else { continue };
            for kind in ["datasets", "indexes"] {
                let Ok(entries) = std::fs::read_dir(root.join(kind)) else { continue };
                for entry in entries.flatten() {
                    let path = entry.path();
                    let name = entry.file_name().to_string_lossy().to_string();
                    if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        continue;
                    }
                    let orphan = if name == "_staging" && kind == "datasets" {
                        true
                    } else {
                        ours(&name) && !referenced.iter().any(|r| r.starts_with(&path))
                    };
                    if orphan && std::fs::remove_dir_all(&path).is_ok() {
                        tracing::info!("removed {} (left by an interrupted write; no catalog record names it)", path.display());
                        removed += 1;
                    }
                }
            }
        }
        removed
    }
}
