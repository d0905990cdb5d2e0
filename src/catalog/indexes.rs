//! Index records: what `CREATE INDEX` built, where its files are, and which of the
//! table's Parquet files it covers.
//!
//! An index's files live in their own directory in the table's bucket, beside the
//! table: `<bucket>/indexes/<index>-<id>/`. Every rewrite of an index (build, or adding
//! rows after an `INSERT`) writes a new directory and then points the record at it in
//! one catalog update, so a crash leaves the old index or the new one, never a torn one;
//! the directory the record no longer names is removed afterwards.

use serde::{Deserialize, Serialize};

use super::Catalog;
use crate::error::{Error, Result};
use crate::udf::distance::Metric;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexRecord {
    pub name: String,
    pub table: String,
    pub column: String,
    /// `hnsw` (later `ivf_pq`).
    pub method: String,
    pub metric: Metric,
    pub m: usize,
    pub ef_construction: usize,
    pub dims: usize,
    pub rows: usize,
    pub bucket: String,
    /// Directory URL of the current generation's files.
    pub location: String,
    /// The table's Parquet files this generation covers, in data-id order, with their
    /// row counts (data id = position in the concatenation of these files).
    pub files: Vec<CoveredFile>,
    /// Inner-product graphs' distance offset (see table_providers::hnsw).
    #[serde(default)]
    pub ip_shift: f32,
    pub build_secs: f64,
    pub size_bytes: u64,
    /// When the graph was built (unchanged by loads; appends keep it too).
    pub built_at: String,
    /// When rows were last added after the build.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Text indexes (#4): the embedding model that turns the text column into the
    /// indexed vectors, which are stored with the index (`vectors.arrow`).
    #[serde(default)]
    pub model: Option<String>,
    /// The promoted configuration's ef_search (#5): searches use it unless the session
    /// sets `hnsw.ef_search`. None: 40.
    #[serde(default)]
    pub ef_search: Option<usize>,
    /// COMMENT ON INDEX (#14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CoveredFile {
    pub name: String,
    pub rows: usize,
}

impl IndexRecord {
    pub fn params(&self) -> String {
        match self.ef_search {
            Some(ef) => format!("m={}, ef_construction={}, ef_search={ef}", self.m, self.ef_construction),
            None => format!("m={}, ef_construction={}", self.m, self.ef_construction),
        }
    }
}

#[cfg(test)]
impl IndexRecord {
    /// A record with pgvector's default parameters, for catalog tests.
    pub fn test_record(name: &str, table: &str) -> IndexRecord {
        IndexRecord {
            name: name.into(),
            table: table.into(),
            column: "v".into(),
            method: "hnsw".into(),
            metric: Metric::L2,
            m: 16,
            ef_construction: 64,
            dims: 2,
            rows: 0,
            bucket: "primary".into(),
            location: "file:///nowhere/".into(),
            files: vec![],
            ip_shift: 0.0,
            build_secs: 0.0,
            size_bytes: 0,
            built_at: String::new(),
            updated_at: None,
            model: None,
            ef_search: None,
            comment: None,
        }
    }
}

pub fn unknown_index(name: &str) -> Error {
    Error::UndefinedObject(format!(
        "index \"{name}\" does not exist; see SELECT name FROM lakehouse.indexes"
    ))
}

/// A fresh directory URL for an index generation in `bucket_url`.
pub fn new_location(bucket_url: &str, name: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{bucket_url}indexes/{name}-{}/", &id[..12])
}

impl Catalog {
    pub fn index(&self, name: &str) -> Option<IndexRecord> {
        self.snapshot().indexes.get(name).cloned()
    }

    pub fn indexes_on(&self, table: &str) -> Vec<IndexRecord> {
        self.snapshot().indexes.values().filter(|i| i.table == table).cloned().collect()
    }

    /// Add a new index record (fails if the name is taken by an index or a table).
    pub fn add_index(&self, record: IndexRecord) -> Result<()> {
        self.update(|s| {
            if s.indexes.contains_key(&record.name) || s.datasets.contains_key(&record.name) {
                return Err(Error::TableExists(record.name.clone()));
            }
            if !s.datasets.contains_key(&record.table) {
                return Err(Error::TableNotFound(record.table.clone()));
            }
            s.indexes.insert(record.name.clone(), record);
            Ok(())
        })
    }

    /// Replace an existing record (a new generation of the same index). Returns the
    /// old record, whose directory the caller removes.
    pub fn replace_index(&self, record: IndexRecord) -> Result<IndexRecord> {
        self.update(|s| match s.indexes.get_mut(&record.name) {
            Some(old) => Ok(std::mem::replace(old, record)),
            None => Err(unknown_index(&record.name)),
        })
    }

    pub fn remove_index(&self, name: &str) -> Result<Option<IndexRecord>> {
        self.update(|s| Ok(s.indexes.remove(name)))
    }

    /// Remove every index on `table` (DROP TABLE); returns them for file cleanup.
    pub fn remove_indexes_on(&self, table: &str) -> Result<Vec<IndexRecord>> {
        self.update(|s| {
            let names: Vec<String> = s.indexes.values().filter(|i| i.table == table).map(|i| i.name.clone()).collect();
            Ok(names.iter().filter_map(|n| s.indexes.remove(n)).collect())
        })
    }
}

/// Delete an index generation's directory; best effort.
pub fn remove_files(location: &str) {
    if let Some(dir) = super::datasets::local_dir(location) {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("could not remove {}: {e}", dir.display());
            }
        }
    }
}
