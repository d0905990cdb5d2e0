//! `CREATE INDEX … USING hnsw`, `DROP INDEX`, keeping indexes current after `INSERT`,
//! and loading them on start.
//!
//! Builds and appends run on blocking threads; their progress lines become NOTICEs
//! (sent while the statement runs), and dropping the statement's future (a
//! CancelRequest, a closed connection) stops a build at its next chunk.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::common::TableReference;
use datafusion::sql::sqlparser::ast::{self, BinaryOperator, CreateIndex, ObjectName, Value};

use super::{Engine, QueryResult, Session};
use crate::catalog::indexes::{self, IndexRecord, unknown_index};
use crate::catalog::datasets::{self, DatasetRecord};
use crate::error::{Error, Result};
use crate::table_providers::hnsw::{self, HnswIndex, TableRows};
use crate::udf::distance::Metric;
use crate::udf::vector::vector_dims_of;

/// Sets its flag when dropped: the blocking work watching it stops.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Run `work` on a blocking thread, turning its progress lines into NOTICEs as they
/// come. `work` gets the progress sink and the cancel flag.
pub(super) async fn run_blocking_with_progress<T: Send + 'static>(
    session: &Session,
    work: impl FnOnce(&(dyn Fn(String) + Sync), &AtomicBool) -> Result<T> + Send + 'static,
) -> Result<T> {
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let flag = cancel.clone();
    let mut job = tokio::task::spawn_blocking(move || {
        let tx = std::sync::Mutex::new(tx);
        let progress = move |s: String| {
            let _ = tx.lock().unwrap_or_else(|p| p.into_inner()).send(s);
        };
        work(&progress, &flag)
    });
    loop {
        tokio::select! {
            Some(line) = rx.recv() => session.notice(line),
            r = &mut job => {
                while let Ok(line) = rx.try_recv() {
                    session.notice(line);
                }
                return r.map_err(|e| Error::Internal(format!("index task failed: {e}")))?;
            }
        }
    }
}

/// Index work over fewer rows than this reports no progress NOTICEs (it ends at
/// once; pgvector users' scripts expect `CREATE INDEX` to print nothing).
pub(super) const PROGRESS_MIN_ROWS: usize = 1000;

/// [`run_blocking_with_progress`] for a session, or (background work: a rebuild, the
/// agent, a catch-up on start) on a blocking thread with progress to the log.
pub(super) async fn run_blocking<T: Send + 'static>(
    session: Option<&Session>,
    work: impl FnOnce(&(dyn Fn(String) + Sync), &AtomicBool) -> Result<T> + Send + 'static,
) -> Result<T> {
    match session {
        Some(s) => run_blocking_with_progress(s, work).await,
        None => tokio::task::spawn_blocking(move || work(&|line: String| tracing::info!("{line}"), &AtomicBool::new(false)))
            .await
            .map_err(|e| Error::Internal(format!("background task failed: {e}")))?,
    }
}

struct HnswParams {
    m: usize,
    ef_construction: usize,
    /// Text indexes: the embedding model.
    model: Option<String>,
}

fn with_params(with: &[ast::Expr]) -> Result<HnswParams> {
    let mut p = HnswParams { m: 16, ef_construction: 64, model: None };
    for e in with {
        let (key, value) = match e {
            ast::Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => (left.to_string().to_lowercase(), right.as_ref()),
            other => return Err(Error::Syntax(format!("expected name = value in WITH (…), got {other}"))),
        };
        if key == "model" {
            p.model = match value {
                ast::Expr::Value(v) => v.value.clone().into_string(),
                ast::Expr::Identifier(i) => Some(i.value.clone()),
                _ => None,
            };
            if p.model.is_none() {
                return Err(Error::InvalidParameter(format!("model must be a model name, got {value}")));
            }
            continue;
        }
        let n = match value {
            ast::Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n.parse::<i64>().ok(),
                Value::SingleQuotedString(s) => s.parse::<i64>().ok(),
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| Error::InvalidParameter(format!("invalid value for parameter \"{key}\": \"{value}\"")))?;
        let check = |lo: i64, hi: i64| {
            if n < lo || n > hi {
                Err(Error::InvalidParameter(format!("value {n} out of bounds for option \"{key}\"; valid values are between {lo} and {hi}")))
            } else {
                Ok(n as usize)
            }
        };
        match key.as_str() {
            "m" => p.m = check(2, 100)?,
            "ef_construction" => p.ef_construction = check(4, 1000)?,
            other => return Err(Error::InvalidParameter(format!("unrecognized parameter \"{other}\"; hnsw takes m, ef_construction and (text columns) model"))),
        }
    }
    if p.ef_construction < 2 * p.m {
        return Err(Error::InvalidParameter(format!(
            "ef_construction ({}) must be greater than or equal to 2 * m ({})",
            p.ef_construction, p.m
        )));
    }
    Ok(p)
}

fn opclass_metric(opclass: Option<&ObjectName>, default: &str) -> Result<Metric> {
    let name = opclass.map(|o| o.to_string().to_lowercase()).unwrap_or_else(|| default.into());
    match name.as_str() {
        "vector_l2_ops" => Ok(Metric::L2),
        "vector_cosine_ops" => Ok(Metric::Cosine),
        "vector_ip_ops" => Ok(Metric::Ip),
        "vector_l1_ops" => Ok(Metric::L1),
        other => Err(Error::UndefinedObject(format!(
            "operator class \"{other}\" does not exist for access method \"hnsw\"; use vector_l2_ops, vector_cosine_ops, vector_ip_ops or vector_l1_ops"
        ))),
    }
}

/// Read a table's files (all of them, or `files`).
fn table_batch(rec: &DatasetRecord, files: Option<&[String]>) -> Result<(RecordBatch, Vec<indexes::CoveredFile>)> {
    let dir = datasets::local_dir(&rec.location).ok_or_else(|| Error::NotSupported(format!("indexes on {}", rec.location)))?;
    let schema = rec.arrow_schema()?.ok_or_else(|| Error::Internal(format!("dataset {} has no schema", rec.name)))?;
    let all;
    let files = match files {
        Some(f) => f,
        None => {
            all = hnsw::list_parquet_files(&dir)?;
            &all
        }
    };
    hnsw::read_files(&dir, files, &schema)
}

/// The rows an index covers, with their vectors: the column, or for a text index the
/// embeddings stored with it.
fn index_rows(rec: &DatasetRecord, ir: &IndexRecord) -> Result<TableRows> {
    let files: Vec<String> = ir.files.iter().map(|f| f.name.clone()).collect();
    let (batch, _) = table_batch(rec, Some(&files))?;
    match &ir.model {
        Some(_) => TableRows::with_vectors(batch, &hnsw::read_vectors(&ir.location)?, ir.dims),
        None => TableRows::new(batch, &ir.column, ir.dims),
    }
}

/// Rows embedded per request round of a text index build (progress is reported per
/// chunk; a cancel stops between chunks).
const EMBED_CHUNK: usize = 1024;

impl Engine {
    /// Embed a text column of `batch` with `model`, reporting progress.
    async fn embed_column(&self, session: Option<&Session>, model: &str, batch: &RecordBatch, column: &str, what: &str) -> Result<ArrayRef> {
        let dims = self.models.dims(model)?;
        let col = batch
            .column_by_name(column)
            .ok_or_else(|| Error::ColumnNotFound(format!("\"{column}\" does not exist")))?;
        let col = datafusion::arrow::compute::cast(col, &datafusion::arrow::datatypes::DataType::Utf8)?;
        let texts = col.as_string::<i32>();
        let n = texts.len();
        let mut out: Vec<ArrayRef> = vec![];
        let started = std::time::Instant::now();
        for from in (0..n).step_by(EMBED_CHUNK) {
            let to = (from + EMBED_CHUNK).min(n);
            let chunk: Vec<Option<&str>> = (from..to).map(|i| if texts.is_null(i) { None } else { Some(texts.value(i)) }).collect();
            let vectors = self.models.embed(model, &chunk, None).await?;
            out.push(crate::udf::vector::fixed_list(&vectors.iter().map(|v| v.as_deref()).collect::<Vec<_>>(), dims));
            if let Some(s) = session {
                if n > EMBED_CHUNK {
                    s.notice(format!("{what}: embedded {to} of {n} rows with {model} ({:.0} rows/s)", to as f64 / started.elapsed().as_secs_f64().max(1e-9)));
                }
            }
        }
        if out.is_empty() {
            return Ok(crate::udf::vector::fixed_list(&[], dims));
        }
        let refs: Vec<&dyn Array> = out.iter().map(|a| a.as_ref()).collect();
        Ok(datafusion::arrow::compute::concat(&refs)?)
    }
}

impl Engine {
    pub(super) async fn create_index(&self, session: &Session, ci: &CreateIndex) -> Result<QueryResult> {
        let method = ci.using.as_ref().map(|u| u.to_string().to_lowercase()).unwrap_or_else(|| "btree".into());
        if method != "hnsw" {
            return self.create_scalar_index(session, ci, &method).await;
        }
        if ci.unique {
            return Err(Error::NotSupported("unique hnsw indexes".into()));
        }
        if ci.predicate.is_some() {
            return Err(Error::NotSupported("partial indexes (CREATE INDEX … WHERE)".into()));
        }
        let table = self.dataset_name(&TableReference::from(ci.table_name.to_string()))?;
        // PostgreSQL: only the table's owner creates indexes on it.
        self.require_owner(session, &crate::catalog::roles::Object::Table(table.clone()))?;
        let [col] = ci.columns.as_slice() else {
            return Err(Error::NotSupported("hnsw indexes on more than one column".into()));
        };
        let column = match &col.column.expr {
            ast::Expr::Identifier(i) => if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() },
            other => return Err(Error::NotSupported(format!("indexes on expressions ({other})"))),
        };
        let mut params = with_params(&ci.with)?;
        let name = match &ci.name {
            Some(n) => n.0.last().map(|p| p.to_string()).unwrap_or_default().trim_matches('"').to_string(),
            // A second unnamed index on the column is `…_idx1`, as in PostgreSQL.
            None => super::scalar_index::default_index_name(&self.catalog.snapshot(), &table, std::slice::from_ref(&column)),
        };
        crate::catalog::buckets::validate_name("index", &name)?;

        let _ddl = self.ddl.lock().await;
        if super::scalar_index::relation_taken(&self.catalog.snapshot(), &name) {
            if ci.if_not_exists {
                session.notice(format!("relation \"{name}\" already exists, skipping"));
                return Ok(QueryResult::command("CREATE INDEX"));
            }
            return Err(Error::TableExists(name));
        }
        let rec = self.catalog.dataset(&table).ok_or_else(|| Error::TableNotFound(table.clone()))?;
        if !rec.owned {
            return Err(Error::NotSupported(format!(
                "indexes on {} (only tables created in lakehouse can be indexed; CREATE TABLE … AS SELECT it first)",
                if rec.is_view() { "views" } else { "external tables" }
            )));
        }
        let schema = rec.arrow_schema()?.ok_or_else(|| Error::Internal(format!("dataset {table} has no schema")))?;
        let field = schema
            .field_with_name(&column)
            .map_err(|_| Error::ColumnNotFound(format!("\"{column}\" does not exist in {table}")))?;
        use datafusion::arrow::datatypes::DataType;
        let is_text = matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        let (dims, metric) = if is_text {
            // A text index embeds the column; without a model, the session's default.
            let model = match params.model.take() {
                Some(m) => m,
                None => {
                    let m = session.get("embedding.default_model").unwrap_or_else(|_| crate::catalog::models::BUILTIN.into());
                    session.notice(format!("text index {name}: embedding {column} with the session's default model {m}"));
                    m
                }
            };
            let dims = self.models.dims(&model)?;
            params.model = Some(model);
            (dims, opclass_metric(col.operator_class.as_ref(), "vector_cosine_ops")?)
        } else {
            if params.model.is_some() {
                return Err(Error::InvalidParameter(format!(
                    "WITH (model = …) is for text columns; \"{column}\" already holds vectors"
                )));
            }
            let dims = vector_dims_of(field.data_type()).ok_or_else(|| {
                Error::UndefinedObject(format!(
                    "data type {} of column \"{column}\" has no operator class for access method \"hnsw\"; index a vector(n) column, or a text column WITH (model = '…')",
                    field.data_type()
                ))
            })?;
            (dims, opclass_metric(col.operator_class.as_ref(), "vector_l2_ops")?)
        };
        let bucket = self.catalog.bucket(&rec.bucket)?;
        let record = IndexRecord {
            name: name.clone(),
            table: table.clone(),
            column: column.clone(),
            method: "hnsw".into(),
            metric,
            m: params.m,
            ef_construction: params.ef_construction,
            dims,
            rows: 0,
            bucket: rec.bucket.clone(),
            location: indexes::new_location(&bucket.url, &name),
            files: vec![],
            ip_shift: 0.0,
            build_secs: 0.0,
            size_bytes: 0,
            built_at: String::new(),
            updated_at: None,
            model: params.model.clone(),
            ef_search: None,
            comment: None,
        };
        let location = record.location.clone();
        let r2 = rec.clone();
        let (batch, covered) = tokio::task::spawn_blocking(move || table_batch(&r2, None))
            .await
            .map_err(|e| Error::Internal(format!("index task failed: {e}")))??;
        let rows = match &params.model {
            Some(model) => {
                let started = std::time::Instant::now();
                let vectors = self.embed_column(Some(session), model, &batch, &column, &name).await?;
                session.notice(format!("{name}: embedded {} rows with {model} in {:.2} s", batch.num_rows(), started.elapsed().as_secs_f64()));
                TableRows::with_vectors(batch, &vectors, dims)?
            }
            None => TableRows::new(batch, &column, dims)?,
        };
        let loud = rows.len() >= PROGRESS_MIN_ROWS;
        let built = run_blocking(loud.then_some(session), move |progress, cancel| {
            progress(format!("hnsw: building {name} over {} rows (m = {}, ef_construction = {})", rows.len(), params.m, params.ef_construction));
            HnswIndex::build(record, rows, covered, progress, cancel)
        })
        .await;
        let index = match built {
            Ok(i) => i,
            Err(e) => {
                indexes::remove_files(&location);
                return Err(e);
            }
        };
        let final_record = index.record();
        let catalog = self.catalog.clone();
        let r = final_record.clone();
        if let Err(e) = crate::catalog::blocking(move || catalog.add_index(r)).await {
            indexes::remove_files(&location);
            return Err(e);
        }
        if loud {
            session.notice(format!(
                "hnsw: {} built over {} rows in {:.2} s",
                final_record.name, final_record.rows, final_record.build_secs
            ));
        }
        self.indexes.insert(Arc::new(index));
        Ok(QueryResult::command("CREATE INDEX"))
    }

    pub(super) async fn drop_index(&self, session: &Session, names: &[ObjectName], if_exists: bool) -> Result<QueryResult> {
        let _ddl = self.ddl.lock().await;
        for n in names {
            let name = n.0.last().map(|p| p.to_string()).unwrap_or_default().trim_matches('"').to_string();
            let key = match n.0.as_slice() {
                [s, _] => crate::catalog::schemas::key(Some(s.to_string().trim_matches('"')), &name),
                _ => name.clone(),
            };
            if self.drop_scalar_index(session, &key).await? {
                continue;
            }
            self.require_index_owner(session, &name)?;
            let catalog = self.catalog.clone();
            let nn = name.clone();
            match crate::catalog::blocking(move || catalog.remove_index(&nn)).await? {
                Some(rec) => {
                    self.indexes.remove(&name);
                    indexes::remove_files(&rec.location);
                    self.forget_tuning(&rec).await;
                }
                None if if_exists => session.notice(format!("index \"{name}\" does not exist, skipping")),
                None => return Err(unknown_index(&name)),
            }
        }
        Ok(QueryResult::command("DROP INDEX"))
    }

    /// The table is gone (DROP TABLE, CREATE OR REPLACE): so are its indexes.
    pub(super) async fn drop_indexes_of(&self, table: &str) -> Result<()> {
        let catalog = self.catalog.clone();
        let t = table.to_string();
        for rec in crate::catalog::blocking(move || catalog.remove_indexes_on(&t)).await? {
            self.indexes.remove(&rec.name);
            indexes::remove_files(&rec.location);
            self.forget_tuning(&rec).await;
        }
        Ok(())
    }

    /// Add the table's files an index does not cover yet (after INSERT, or found on
    /// start after a crash between an INSERT and its index update).
    pub(super) async fn catch_up_indexes(&self, session: Option<&Session>, table: &str) -> Result<()> {
        // One generation change at a time (a promotion's swap, another INSERT).
        let _w = self.index_writes.lock().await;
        for index in self.indexes.on_table(table) {
            let Some(rec) = self.catalog.dataset(table) else { return Ok(()) };
            let ir = index.record();
            let dir = datasets::local_dir(&rec.location).ok_or_else(|| Error::NotSupported(rec.location.clone()))?;
            let bucket = self.catalog.bucket(&ir.bucket)?;
            let new_location = indexes::new_location(&bucket.url, &ir.name);
            let idx = index.clone();
            let loc = new_location.clone();
            let covered: std::collections::HashSet<String> = ir.files.iter().map(|f| f.name.clone()).collect();
            let r2 = rec.clone();
            // The table's files it does not cover yet, read on a blocking thread.
            let new_rows = tokio::task::spawn_blocking(move || {
                let new_files: Vec<String> = hnsw::list_parquet_files(&dir)?.into_iter().filter(|f| !covered.contains(f)).collect();
                if new_files.is_empty() { Ok(None) } else { table_batch(&r2, Some(&new_files)).map(Some) }
            })
            .await
            .map_err(|e| Error::Internal(format!("index task failed: {e}")))??;
            let Some((batch, files)) = new_rows else { continue };
            let new_rows_count = batch.num_rows();
            // A text index embeds the new rows first; a failure leaves the index as it was.
            let vectors = match &ir.model {
                Some(model) => Some(self.embed_column(session, model, &batch, &ir.column, &ir.name).await?),
                None => None,
            };
            let work = move |progress: &(dyn Fn(String) + Sync), _cancel: &AtomicBool| -> Result<Option<IndexRecord>> {
                idx.append(batch, vectors, files, loc, progress).map(Some)
            };
            let loud = new_rows_count >= PROGRESS_MIN_ROWS;
            let appended = run_blocking(session.filter(|_| loud), work).await;
            match appended {
                Ok(Some(new_rec)) => {
                    let catalog = self.catalog.clone();
                    let old = crate::catalog::blocking(move || catalog.replace_index(new_rec)).await?;
                    indexes::remove_files(&old.location);
                }
                Ok(None) => {}
                Err(e) => {
                    indexes::remove_files(&new_location);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Load every index in the catalog (no rebuild), then add rows written after it.
    pub(super) async fn restore_indexes(&self) {
        let snapshot = self.catalog.snapshot();
        for ir in snapshot.indexes.values() {
            let Some(rec) = snapshot.datasets.get(&ir.table).cloned() else {
                tracing::warn!("index {} is on a missing table {}; skipped", ir.name, ir.table);
                continue;
            };
            let ir2 = ir.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                let rows = index_rows(&rec, &ir2)?;
                let index = HnswIndex::load(ir2, rows)?;
                Ok::<_, Error>((index, started.elapsed()))
            })
            .await;
            match loaded {
                Ok(Ok((index, took))) => {
                    tracing::info!("index {} loaded from {} ({} rows) in {:.2?}, no rebuild", ir.name, ir.location, ir.rows, took);
                    self.indexes.insert(Arc::new(index));
                    if let Err(e) = self.catch_up_indexes(None, &ir.table).await {
                        tracing::warn!("index {}: adding new rows failed: {e}", ir.name);
                    }
                }
                Ok(Err(e)) => tracing::warn!("index {} could not be loaded and is not used: {e}", ir.name),
                Err(e) => tracing::warn!("index {} could not be loaded and is not used: {e}", ir.name),
            }
        }
    }
}
