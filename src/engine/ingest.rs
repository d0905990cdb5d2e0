//! `CALL ingest('shop.customers', 'customers' [, bucket, format, mode])`: copy an
//! attached table into a lakehouse dataset.
//!
//! The rows stream from the source (the federated scan reads in chunks) into Parquet
//! files (row groups of 64k rows, so memory stays bounded whatever the table's size),
//! first into a directory no dataset points at; only when every row is written does
//! the catalog record the dataset, with its lineage and the PII kind of each column
//! found from the column names and a sample of the written values. A failed or
//! cancelled ingest leaves the catalog as it was and removes its files.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{DataFrame, col};

use super::{Engine, Session};
use crate::catalog::datasets::{self, ColumnMeta, DatasetRecord, Lineage};
use crate::error::{Error, Result};

/// Rows per Parquet row group while ingesting (bounds the writer's buffer).
const ROW_GROUP_ROWS: usize = 65_536;
/// Values per column read back for PII detection.
const PII_SAMPLE_ROWS: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestMode {
    Create,
    Append,
    Replace,
}

impl IngestMode {
    pub fn parse(s: Option<&str>) -> Result<IngestMode> {
        match s.map(str::to_lowercase).as_deref() {
            None | Some("create") => Ok(IngestMode::Create),
            Some("append") => Ok(IngestMode::Append),
            Some("replace") => Ok(IngestMode::Replace),
            Some(other) => Err(Error::invalid(format!("mode must be 'create', 'append' or 'replace', not '{other}'"))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            IngestMode::Create => "create",
            IngestMode::Append => "append",
            IngestMode::Replace => "replace",
        }
    }
}

#[derive(Debug)]
pub struct IngestRequest {
    pub source: String,
    pub dataset: String,
    pub bucket: Option<String>,
    pub format: Option<String>,
    pub mode: IngestMode,
}

#[derive(Debug)]
pub struct IngestOutcome {
    pub dataset: String,
    pub rows: u64,
    pub mode: IngestMode,
    pub seconds: f64,
    pub columns: Vec<(String, String, Option<String>)>,
}

/// Removes a directory when dropped, unless kept (a failed or cancelled ingest).
struct Staging {
    dir: Option<std::path::PathBuf>,
}

impl Staging {
    fn keep(&mut self) {
        self.dir = None;
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Engine {
    pub async fn ingest(&self, session: &Session, req: IngestRequest) -> Result<IngestOutcome> {
        let started_at = crate::catalog::now_rfc3339();
        let t0 = Instant::now();
        match req.format.as_deref().map(str::to_lowercase).as_deref() {
            None | Some("parquet") => {}
            Some("lance") => {
                return Err(Error::NotSupported(
                    "format => 'lance' for ingest (Lance datasets arrive with the Lance backend); ingest as parquet".into(),
                ));
            }
            Some(other) => return Err(Error::invalid(format!("format must be 'parquet' or 'lance', not '{other}'"))),
        }
        let (attachment, table) = req.source.split_once('.').ok_or_else(|| {
            Error::invalid(format!("source '{}' must be attachment.table (see lakehouse.attachments)", req.source))
        })?;
        let (attachment, table) = (attachment.to_lowercase(), table.trim_matches('"').to_string());
        let remote = self.remote_schema(&attachment).ok_or_else(|| {
            Error::RemoteNotFound(format!(
                "\"{attachment}\" is not an attached database; ATTACH it first (see SELECT name FROM lakehouse.attachments)"
            ))
        })?;
        let record = remote.record().clone();
        use crate::catalog::roles::Object;
        self.require(session, &Object::Schema(attachment.clone()), crate::catalog::roles::Privilege::Usage)?;
        if remote.provider(&table).await?.is_none() {
            return Err(Error::RemoteNotFound(format!(
                "table \"{table}\" does not exist in {} ({})",
                record.source_schema(),
                record.location.display()
            )));
        }
        let name = self.dataset_name(&TableReference::from(req.dataset.as_str()))?;
        let existing = self.catalog.dataset(&name);
        match (&existing, req.mode) {
            (Some(_), IngestMode::Create) => {
                return Err(Error::TableExists(format!("{name}\" (mode => 'append' adds rows, mode => 'replace' replaces them)")));
            }
            (Some(e), IngestMode::Append) if !e.owned || e.is_view() => {
                return Err(Error::WrongObjectType(format!("\"{name}\" is not a lakehouse table (append needs one)")));
            }
            (None, _) if self.dataset_exists(&name) => return Err(Error::TableExists(name)),
            // Appending is an INSERT; replacing the table takes owning it.
            (Some(_), IngestMode::Append) => self.require(session, &Object::Table(name.clone()), crate::catalog::roles::Privilege::Insert)?,
            (Some(_), _) => self.require_owner(session, &Object::Table(name.clone()))?,
            _ => {}
        }
        let appending = req.mode == IngestMode::Append && existing.is_some();
        let bucket_name = match (&existing, appending) {
            (Some(e), true) => {
                if req.bucket.as_deref().is_some_and(|b| b != e.bucket) {
                    return Err(Error::invalid(format!("\"{name}\" lives in bucket {}; append cannot move it", e.bucket)));
                }
                e.bucket.clone()
            }
            _ => req.bucket.clone().unwrap_or_else(|| session.bucket()),
        };
        let bucket = self.catalog.bucket(&bucket_name)?;
        // Appends are written beside the dataset and moved in once complete.
        let location = if appending {
            format!("{}datasets/_staging/{}/", bucket.url, uuid::Uuid::new_v4().simple())
        } else {
            datasets::new_location(&bucket, &name)
        };
        let dir = datasets::local_dir(&location).ok_or_else(|| Error::Internal(format!("bucket {bucket_name} is not local")))?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        let mut staging = Staging { dir: Some(dir.clone()) };

        // Informational (lakehouse.columns) and tinyint(1) → boolean.
        let source_types = remote.column_types(&table).await.unwrap_or_default();
        let df = session.ctx.table(TableReference::partial(attachment.clone(), table.clone())).await?;
        let df = adjust_types(df, &source_types)?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        if let (Some(e), true) = (&existing, appending) {
            let stored = e.arrow_schema()?.ok_or_else(|| Error::Internal(format!("dataset {name} has no stored schema")))?;
            if !same_columns(&stored, &schema) {
                return Err(Error::DataException(format!(
                    "the columns of {attachment}.{table} no longer match \"{name}\"; ingest with mode => 'replace'"
                )));
            }
        }
        let source_query = format!(
            "SELECT {} FROM {}.{}",
            schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", "),
            record.source_schema(),
            table
        );
        session.notice(format!("ingesting {attachment}.{table} from {} into {name}", record.location.display()));
        let mut options = TableParquetOptions::default();
        options.global.max_row_group_size = ROW_GROUP_ROWS;
        let counts = df.write_parquet(&location, DataFrameWriteOptions::new(), Some(options)).await?;
        let rows = super::count_rows(&counts) as u64;

        let columns = self.detect_pii(&location, &schema, &source_types).await?;
        let lineage = Lineage {
            source_system: record.location.kind.name().into(),
            source_location: record.location.display(),
            source_table: format!("{attachment}.{table}"),
            source_query,
            mode: req.mode.name().into(),
            rows,
            started_at,
            finished_at: crate::catalog::now_rfc3339(),
        };

        let _ddl = self.ddl.lock().await;
        if appending {
            let current = self.catalog.dataset(&name).ok_or_else(|| Error::TableNotFound(name.clone()))?;
            let target = datasets::local_dir(&current.location).ok_or_else(|| Error::Internal("dataset is not local".into()))?;
            move_files(&dir, &target)?;
            let catalog = self.catalog.clone();
            let mut updated = current.clone();
            updated.lineage.push(lineage);
            updated.columns = columns.clone();
            crate::catalog::blocking(move || catalog.put_dataset(updated, true)).await?;
            drop(_ddl);
            self.catch_up_indexes(Some(session), &name).await?;
            self.appended(&name);
        } else {
            let mut rec: DatasetRecord = datasets::new_record(&name, &bucket_name, location.clone(), "ingest");
            rec.access = crate::catalog::roles::Access::owned_by(&session.user);
            rec.schema = Some(datasets::encode_schema(&schema)?);
            rec.lineage = existing.iter().flat_map(|e| e.lineage.clone()).chain([lineage]).collect();
            rec.columns = columns.clone();
            let provider = datasets::owned_parquet_table(&rec)?;
            let catalog = self.catalog.clone();
            let replace = req.mode == IngestMode::Replace;
            let replaced = crate::catalog::blocking(move || catalog.put_dataset(rec, replace)).await?;
            staging.keep();
            self.register_dataset(&name, provider)?;
            drop(_ddl);
            if let Some(old) = replaced {
                datasets::remove_files(&old);
                if !self.indexes.on_table(&name).is_empty() {
                    session.notice(format!("{name} was replaced: its indexes are dropped (CREATE INDEX again)"));
                }
                self.drop_indexes_of(&name).await?;
                self.appended(&name);
            }
        }
        Ok(IngestOutcome {
            dataset: name,
            rows,
            mode: req.mode,
            seconds: t0.elapsed().as_secs_f64(),
            columns: schema
                .fields()
                .iter()
                .map(|f| {
                    let pii = columns.iter().find(|c| &c.name == f.name()).and_then(|c| c.pii_kind.clone());
                    (f.name().clone(), datasets::sql_type_name(f.data_type()), pii)
                })
                .collect(),
        })
    }

    /// The PII kind of each column, from its name and a sample of the written values.
    async fn detect_pii(&self, location: &str, schema: &SchemaRef, source_types: &[(String, String)]) -> Result<Vec<ColumnMeta>> {
        let mut probe = datasets::new_record("_pii_probe", "primary", location.to_string(), "ingest");
        probe.schema = Some(datasets::encode_schema(schema)?);
        let provider = datasets::owned_parquet_table(&probe)?;
        let ctx = datafusion::prelude::SessionContext::new();
        let text_cols: Vec<String> = schema
            .fields()
            .iter()
            .filter(|f| matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View))
            .map(|f| f.name().clone())
            .collect();
        let mut samples: std::collections::HashMap<String, Vec<String>> = Default::default();
        if !text_cols.is_empty() {
            let df = ctx.read_table(provider)?.select(text_cols.iter().map(|c| col(format!("\"{c}\""))).collect::<Vec<_>>())?.limit(0, Some(PII_SAMPLE_ROWS))?;
            for batch in df.collect().await? {
                for (i, c) in text_cols.iter().enumerate() {
                    let arr = datafusion::arrow::compute::cast(batch.column(i), &DataType::Utf8)?;
                    let arr = arr.as_string::<i32>();
                    let out = samples.entry(c.clone()).or_default();
                    out.extend((0..arr.len()).filter(|j| !arr.is_null(*j)).map(|j| arr.value(j).to_string()));
                }
            }
        }
        Ok(schema
            .fields()
            .iter()
            .map(|f| {
                let values: Vec<&str> = samples.get(f.name()).map(|v| v.iter().map(String::as_str).collect()).unwrap_or_default();
                // Only text columns carry names, emails, …; a number column is flagged
                // by its name alone only when it is text-like at the source.
                let kind = if text_cols.contains(f.name()) {
                    crate::udf::pii::column_kind(f.name(), &values)
                } else {
                    None
                };
                ColumnMeta {
                    name: f.name().clone(),
                    source_type: source_types.iter().find(|(n, _)| n == f.name()).map(|(_, t)| t.clone()),
                    pii_kind: kind.map(|k| k.name().to_string()),
                }
            })
            .collect())
    }
}

fn same_columns(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields()).all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// Move every file of `from` into `to` (same file system: renames), then remove `from`.
fn move_files(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    let entries = std::fs::read_dir(from).map_err(|e| Error::io(from.display(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(from.display(), e))?;
        let name = format!("ingest-{}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8], entry.file_name().to_string_lossy());
        let dest = to.join(name);
        std::fs::rename(entry.path(), &dest).map_err(|e| Error::io(dest.display(), e))?;
    }
    let _ = std::fs::remove_dir_all(from);
    Ok(())
}

/// Columns whose Arrow type from the provider loses what the source meant:
/// MySQL `tinyint(1)` (MySQL's BOOL) becomes boolean.
fn adjust_types(df: DataFrame, source_types: &[(String, String)]) -> Result<DataFrame> {
    let bools: Vec<&String> = source_types
        .iter()
        .filter(|(_, t)| t.to_lowercase().starts_with("tinyint(1)"))
        .map(|(n, _)| n)
        .collect();
    if bools.is_empty() {
        return Ok(df);
    }
    let exprs: Vec<datafusion::prelude::Expr> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let c = col(format!("\"{}\"", f.name()));
            if bools.contains(&f.name()) && f.data_type().is_integer() {
                datafusion::prelude::cast(c, DataType::Boolean).alias(f.name())
            } else {
                c
            }
        })
        .collect();
    Ok(df.select(exprs)?)
}
