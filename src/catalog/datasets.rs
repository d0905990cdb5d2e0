//! Datasets: tables whose data lives in a bucket (Parquet written by lakehouse, or
//! existing files registered with `CREATE EXTERNAL TABLE`).
//!
//! An owned dataset lives in its own directory `<bucket>/datasets/<name>-<id>/`; its
//! Arrow schema is kept in the catalog (so an empty table keeps its types, vectors
//! included) and `INSERT` adds Parquet files next to the existing ones. External
//! datasets keep their `CREATE EXTERNAL TABLE` statement and are re-created from it.

use std::io::Cursor;
use std::sync::Arc;

use base64::Engine as _;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use serde::{Deserialize, Serialize};

use super::{BucketRecord, Catalog, now_rfc3339};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetRecord {
    pub name: String,
    pub bucket: String,
    /// Directory URL (owned) or the external table's location.
    pub location: String,
    pub format: String,
    /// Owned datasets' files are deleted by DROP TABLE; external files never are.
    pub owned: bool,
    /// Arrow IPC schema, base64 (owned datasets).
    #[serde(default)]
    pub schema: Option<String>,
    /// The CREATE EXTERNAL TABLE / CREATE VIEW statement (external datasets, views).
    #[serde(default)]
    pub definition: Option<String>,
    /// How the dataset came to be: `create table`, `create table as`, `external`,
    /// `view`, `ingest`.
    pub source: String,
    pub created_at: String,
    /// Where the rows came from, one entry per ingest, oldest first (#6).
    #[serde(default)]
    pub lineage: Vec<Lineage>,
    /// Per-column facts found at ingest (source type, PII kind) (#6).
    #[serde(default)]
    pub columns: Vec<ColumnMeta>,
    /// Column DEFAULTs as SQL text, SERIAL's `nextval('…')` included (#14).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub defaults: std::collections::BTreeMap<String, String>,
    /// `GENERATED ALWAYS AS IDENTITY` columns: an INSERT may not give them a value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_always: Vec<String>,
    /// PRIMARY KEY, UNIQUE, CHECK (enforced on INSERT) and FOREIGN KEY (kept) (#14).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<ConstraintRecord>,
    /// A materialized view (#14): its query, which REFRESH MATERIALIZED VIEW runs
    /// again; its rows are the table's files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub materialized: Option<String>,
    /// COMMENT ON TABLE / VIEW, and COMMENT ON COLUMN by column name (#14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub column_comments: std::collections::BTreeMap<String, String>,
    /// B-tree (and hash) indexes: kept for the catalog views, UNIQUE ones enforced
    /// on INSERT (#14); scans do not use them yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<ScalarIndexRecord>,
    /// Owner and ACL (#13); records from before have neither (open to every role).
    #[serde(default, flatten)]
    pub access: super::roles::Access,
}

/// A `CREATE [UNIQUE] INDEX … [USING btree|hash] (columns)`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScalarIndexRecord {
    pub name: String,
    /// `btree` or `hash`.
    pub method: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// Per column: DESC (PostgreSQL's default is ASC).
    #[serde(default)]
    pub descending: Vec<bool>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One constraint of a table, as `pg_constraint` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConstraintRecord {
    pub name: String,
    /// pg_constraint.contype: `p` primary key, `u` unique, `c` check, `f` foreign key.
    pub kind: String,
    pub columns: Vec<String>,
    /// The CHECK expression, as SQL.
    #[serde(default)]
    pub check: Option<String>,
    /// FOREIGN KEY: the referenced table and columns, and the actions as written.
    #[serde(default)]
    pub references: Option<(String, Vec<String>)>,
    #[serde(default)]
    pub on_delete: Option<String>,
    #[serde(default)]
    pub on_update: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One ingest into a dataset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lineage {
    /// `mysql` or `postgres`.
    pub source_system: String,
    /// The source's location, without a password.
    pub source_location: String,
    /// The attached table read (`shop.customers`).
    pub source_table: String,
    /// The query sent to the source.
    pub source_query: String,
    /// `create`, `append` or `replace`.
    pub mode: String,
    pub rows: u64,
    pub started_at: String,
    pub finished_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnMeta {
    pub name: String,
    /// The column's type at the source (`tinyint(1)`, `jsonb`, …).
    #[serde(default)]
    pub source_type: Option<String>,
    /// `email`, `phone`, `person_name`, `ssn`, `credit_card`, `ip_address`.
    #[serde(default)]
    pub pii_kind: Option<String>,
}

impl DatasetRecord {
    pub fn is_view(&self) -> bool {
        self.format == "view"
    }

    pub fn arrow_schema(&self) -> Result<Option<SchemaRef>> {
        self.schema.as_deref().map(decode_schema).transpose()
    }
}

pub fn encode_schema(schema: &Schema) -> Result<String> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
    writer.finish()?;
    let bytes = writer.into_inner()?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

pub fn decode_schema(text: &str) -> Result<SchemaRef> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| Error::Internal(format!("stored schema is not base64: {e}")))?;
    Ok(StreamReader::try_new(Cursor::new(bytes), None)?.schema())
}

/// A fresh, unique directory for a new owned dataset in `bucket`.
pub fn new_location(bucket: &BucketRecord, name: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{}datasets/{name}-{}/", bucket.url, &id[..12])
}

/// The DataFusion table behind an owned Parquet dataset.
pub fn owned_parquet_table(record: &DatasetRecord) -> Result<Arc<dyn TableProvider>> {
    let schema = record
        .arrow_schema()?
        .ok_or_else(|| Error::Internal(format!("dataset {} has no stored schema", record.name)))?;
    let url = ListingTableUrl::parse(&record.location)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet");
    let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// Local directory of a `file://` location.
pub fn local_dir(location: &str) -> Option<std::path::PathBuf> {
    url::Url::parse(location).ok()?.to_file_path().ok()
}

impl Catalog {
    pub fn dataset(&self, name: &str) -> Option<DatasetRecord> {
        self.snapshot().datasets.get(name).cloned()
    }

    /// Register (or with `replace`, overwrite) a dataset record durably.
    /// Returns the record it replaced, whose files the caller removes.
    pub fn put_dataset(&self, record: DatasetRecord, replace: bool) -> Result<Option<DatasetRecord>> {
        self.put_table(record, replace, vec![])
    }

    /// [`Catalog::put_dataset`] with the sequences its SERIAL/identity columns own,
    /// in the same write; a replaced table's own sequences go.
    pub fn put_table(&self, record: DatasetRecord, replace: bool, sequences: Vec<super::sequences::SequenceRecord>) -> Result<Option<DatasetRecord>> {
        self.update(|s| {
            if !s.buckets.contains_key(&record.bucket) {
                return Err(super::buckets::unknown_bucket(&record.bucket));
            }
            if !replace && s.datasets.contains_key(&record.name) {
                return Err(Error::TableExists(record.name.clone()));
            }
            let mut record = record;
            // A replaced table keeps its owner and grants (CREATE OR REPLACE VIEW in
            // PostgreSQL; the same for CTAS and ingest replacing a table).
            if let Some(old) = s.datasets.get(&record.name) {
                record.access = old.access.clone();
            }
            if !sequences.is_empty() {
                s.sequences.retain(|_, q| q.owned_by.as_ref().is_none_or(|(t, _)| t != &record.name));
            }
            for q in sequences {
                if s.sequences.contains_key(&q.name) {
                    return Err(Error::TableExists(q.name.clone()));
                }
                s.sequences.insert(q.name.clone(), q);
            }
            Ok(s.datasets.insert(record.name.clone(), record))
        })
    }

    /// Remove a dataset and the sequences its columns own (PostgreSQL drops a
    /// SERIAL's sequence with its table).
    pub fn remove_dataset(&self, name: &str) -> Result<Option<DatasetRecord>> {
        self.update(|s| {
            let removed = s.datasets.remove(name);
            if removed.is_some() {
                s.sequences.retain(|_, q| q.owned_by.as_ref().is_none_or(|(t, _)| t != name));
            }
            Ok(removed)
        })
    }
}

pub fn new_record(name: &str, bucket: &str, location: String, source: &str) -> DatasetRecord {
    DatasetRecord {
        name: name.to_string(),
        bucket: bucket.to_string(),
        location,
        format: "parquet".into(),
        owned: true,
        schema: None,
        definition: None,
        source: source.to_string(),
        created_at: now_rfc3339(),
        lineage: vec![],
        columns: vec![],
        defaults: Default::default(),
        identity_always: vec![],
        constraints: vec![],
        indexes: vec![],
        materialized: None,
        comment: None,
        column_comments: Default::default(),
        access: Default::default(),
    }
}

/// The PostgreSQL name of a column type, as `lakehouse.columns` shows it.
pub fn sql_type_name(dt: &datafusion::arrow::datatypes::DataType) -> String {
    use datafusion::arrow::datatypes::{DataType, TimeUnit};
    match dt {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "numeric(20,0)".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => format!("numeric({p},{s})"),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("numeric({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => "bytea".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Interval(_) | DataType::Duration(TimeUnit::Second | TimeUnit::Millisecond | TimeUnit::Microsecond | TimeUnit::Nanosecond) => "interval".into(),
        DataType::FixedSizeList(f, d) if f.data_type() == &DataType::Float32 => format!("vector({d})"),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => format!("{}[]", sql_type_name(f.data_type())),
        DataType::Dictionary(_, v) => sql_type_name(v),
        other => other.to_string().to_lowercase(),
    }
}

/// Delete an owned dataset's directory; best effort (a leftover directory is
/// unreferenced and harmless).
pub fn remove_files(record: &DatasetRecord) {
    if !record.owned {
        return;
    }
    if let Some(dir) = local_dir(&record.location) {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("could not remove {}: {e}", dir.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field};

    #[test]
    fn schema_roundtrip_keeps_vector_types() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "emb",
                DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), 3),
                true,
            ),
        ]);
        let text = encode_schema(&schema).unwrap();
        assert_eq!(decode_schema(&text).unwrap().as_ref(), &schema);
    }
}
