//! A table lakehouse owns: its Parquet files (DataFusion's ListingTable does the
//! reading and writing) plus what CREATE TABLE declared beyond types (#14): column
//! DEFAULTs, which INSERT fills in for columns it does not name, and the rules an
//! INSERT must keep — NOT NULL (23502), CHECK (23514), PRIMARY KEY and UNIQUE
//! (23505). An INSERT into a table with rules reads all of its rows first and checks
//! them before any is written, so a statement that breaks a rule writes nothing.
//! Uniqueness is checked against the table's existing keys (read from the key
//! columns only) under the engine's per-table write lock.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, Statistics};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties, collect};
use futures::StreamExt;

use crate::error::Error;

/// What an INSERT must keep.
#[derive(Debug, Default, Clone)]
pub struct Rules {
    pub table: String,
    /// Column indexes declared NOT NULL.
    pub not_null: Vec<usize>,
    /// (constraint name, expression over the table's columns).
    pub checks: Vec<(String, Expr)>,
    /// (constraint name, key column indexes): PRIMARY KEY and UNIQUE.
    pub unique: Vec<(String, Vec<usize>)>,
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.not_null.is_empty() && self.checks.is_empty() && self.unique.is_empty()
    }
}

#[derive(Debug)]
pub struct OwnedTable {
    inner: Arc<dyn TableProvider>,
    defaults: HashMap<String, Expr>,
    rules: Arc<Rules>,
    /// A session's temporary table (table_providers/temp.rs), held in memory.
    pub temporary: bool,
}

impl OwnedTable {
    pub fn new(inner: Arc<dyn TableProvider>, defaults: HashMap<String, Expr>, rules: Rules, temporary: bool) -> OwnedTable {
        OwnedTable { inner, defaults, rules: Arc::new(rules), temporary }
    }

    /// The provider of the rows (Parquet files, or a temporary table's memory).
    pub fn inner(&self) -> Arc<dyn TableProvider> {
        self.inner.clone()
    }

    pub fn has_unique_keys(&self) -> bool {
        !self.rules.unique.is_empty()
    }
}

#[async_trait]
impl TableProvider for OwnedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        if self.temporary { TableType::Temporary } else { self.inner.table_type() }
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(in_write_order(self.inner.scan(state, projection, filters, limit).await?))
    }

    async fn insert_into(&self, state: &dyn Session, input: Arc<dyn ExecutionPlan>, insert_op: InsertOp) -> Result<Arc<dyn ExecutionPlan>> {
        if self.rules.is_empty() {
            return self.inner.insert_into(state, input, insert_op).await;
        }
        let schema = self.inner.schema();
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        let checks = self
            .rules
            .checks
            .iter()
            .map(|(name, e)| Ok((name.clone(), state.create_physical_expr(e.clone(), &df_schema)?)))
            .collect::<Result<Vec<_>>>()?;
        let key_columns: Vec<usize> = {
            let mut k: Vec<usize> = self.rules.unique.iter().flat_map(|(_, c)| c.iter().copied()).collect();
            k.sort();
            k.dedup();
            k
        };
        let existing = if key_columns.is_empty() || matches!(insert_op, InsertOp::Overwrite | InsertOp::Replace) {
            None
        } else {
            Some((self.inner.scan(state, Some(&key_columns), &[], None).await?, key_columns))
        };
        let checked = Arc::new(CheckedInsertExec::new(input, self.rules.clone(), checks, existing));
        self.inner.insert_into(state, checked, insert_op).await
    }
}

/// A scan that reads the table's files in the order they were written, as PostgreSQL's
/// heap returns a small table's rows in insertion order: clients' tests read `SELECT *`
/// without ORDER BY after two INSERTs and expect that. DataFusion orders files by name,
/// and each write's files are named by a random id; the modification time (then the
/// name, for one write's several files) is the write order.
fn in_write_order(plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    let Some(exec) = plan.downcast_ref::<DataSourceExec>() else { return plan };
    let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>() else { return plan };
    let mut config = config.clone();
    for group in &mut config.file_groups {
        let statistics = group.file_statistics(None).cloned();
        let mut files = group.files().to_vec();
        files.sort_by(|a, b| {
            (a.object_meta.last_modified, &a.object_meta.location).cmp(&(b.object_meta.last_modified, &b.object_meta.location))
        });
        let mut sorted = FileGroup::new(files);
        if let Some(statistics) = statistics {
            sorted = sorted.with_statistics(Arc::new(statistics));
        }
        *group = sorted;
    }
    DataSourceExec::from_data_source(config)
}

/// Buffers an INSERT's rows, checks them against the table's rules, then passes them on.
#[derive(Debug)]
struct CheckedInsertExec {
    input: Arc<dyn ExecutionPlan>,
    rules: Arc<Rules>,
    checks: Vec<(String, Arc<dyn PhysicalExpr>)>,
    /// A scan of the table's key columns, and which table columns they are.
    existing: Option<(Arc<dyn ExecutionPlan>, Vec<usize>)>,
    properties: Arc<PlanProperties>,
}

impl CheckedInsertExec {
    fn new(input: Arc<dyn ExecutionPlan>, rules: Arc<Rules>, checks: Vec<(String, Arc<dyn PhysicalExpr>)>, existing: Option<(Arc<dyn ExecutionPlan>, Vec<usize>)>) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(input.schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        CheckedInsertExec { input, rules, checks, existing, properties }
    }
}

impl DisplayAs for CheckedInsertExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "CheckedInsertExec: table={} not_null={} checks={} keys={}", self.rules.table, self.rules.not_null.len(), self.checks.len(), self.rules.unique.len())
    }
}

impl ExecutionPlan for CheckedInsertExec {
    fn name(&self) -> &str {
        "CheckedInsertExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition; self.children().len()]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        let mut c = vec![&self.input];
        if let Some((e, _)) = &self.existing {
            c.push(e);
        }
        c
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.remove(0);
        let existing = match (&self.existing, children.pop()) {
            (Some((_, cols)), Some(e)) => Some((e, cols.clone())),
            _ => None,
        };
        Ok(Arc::new(CheckedInsertExec::new(input, self.rules.clone(), self.checks.clone(), existing)))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let schema = self.input.schema();
        let input = self.input.execute(partition, context.clone())?;
        let rules = self.rules.clone();
        let checks = self.checks.clone();
        let existing = self.existing.clone();
        let out_schema = schema.clone();
        let stream = futures::stream::once(async move {
            let batches: Vec<RecordBatch> = input.collect::<Vec<_>>().await.into_iter().collect::<Result<_>>()?;
            let batch = concat_batches(&out_schema, &batches)?;
            check(&rules, &checks, &batch).map_err(Error::into_datafusion)?;
            if !rules.unique.is_empty() {
                let old = match existing {
                    Some((plan, cols)) => Some((collect(plan, context).await?, cols)),
                    None => None,
                };
                check_unique(&rules, &batch, old).map_err(Error::into_datafusion)?;
            }
            Ok(batch)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

fn check(rules: &Rules, checks: &[(String, Arc<dyn PhysicalExpr>)], batch: &RecordBatch) -> crate::error::Result<()> {
    for &i in &rules.not_null {
        let col = batch.column(i);
        if col.logical_null_count() > 0 {
            let name = batch.schema().field(i).name().clone();
            return Err(Error::State("23502", format!("null value in column \"{name}\" of relation \"{}\" violates not-null constraint", rules.table)));
        }
    }
    for (name, expr) in checks {
        let value = expr.evaluate(batch)?.into_array(batch.num_rows())?;
        let Some(b) = value.as_boolean_opt() else {
            return Err(Error::State("42804", format!("argument of CHECK constraint \"{name}\" must be type boolean")));
        };
        // NULL passes a CHECK, as in SQL.
        if (0..b.len()).any(|r| b.is_valid(r) && !b.value(r)) {
            return Err(Error::State("23514", format!("new row for relation \"{}\" violates check constraint \"{name}\"", rules.table)));
        }
    }
    Ok(())
}

fn key_text(batch: &RecordBatch, cols: &[usize], row: usize) -> String {
    let names: Vec<String> = cols.iter().map(|&c| batch.schema().field(c).name().clone()).collect();
    let values: Vec<String> = cols.iter().map(|&c| array_value_to_string(batch.column(c), row).unwrap_or_default()).collect();
    format!("({})=({})", names.join(", "), values.join(", "))
}

fn check_unique(rules: &Rules, batch: &RecordBatch, old: Option<(Vec<RecordBatch>, Vec<usize>)>) -> crate::error::Result<()> {
    for (name, cols) in &rules.unique {
        let fields: Vec<SortField> = cols.iter().map(|&c| SortField::new(batch.schema().field(c).data_type().clone())).collect();
        let converter = RowConverter::new(fields)?;
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let has_null = |b: &RecordBatch, cs: &[usize], r: usize| cs.iter().any(|&c| b.column(c).is_null(r));
        if let Some((old_batches, scanned)) = &old {
            // The scan holds only the key columns, in table-column order.
            let at: Vec<usize> = cols.iter().map(|c| scanned.iter().position(|s| s == c).unwrap_or(0)).collect();
            for b in old_batches {
                let arrays: Vec<_> = at.iter().map(|&i| b.column(i).clone()).collect();
                let rows = converter.convert_columns(&arrays)?;
                for r in 0..b.num_rows() {
                    if !has_null(b, &at, r) {
                        seen.insert(rows.row(r).as_ref().to_vec());
                    }
                }
            }
        }
        let arrays: Vec<_> = cols.iter().map(|&c| batch.column(c).clone()).collect();
        let rows = converter.convert_columns(&arrays)?;
        for r in 0..batch.num_rows() {
            // NULLs are distinct from each other (NULLS DISTINCT, PostgreSQL's default).
            if has_null(batch, cols, r) {
                continue;
            }
            if !seen.insert(rows.row(r).as_ref().to_vec()) {
                return Err(Error::State(
                    "23505",
                    format!("duplicate key value violates unique constraint \"{name}\"\nDETAIL: Key {} already exists.", key_text(batch, cols, r)),
                ));
            }
        }
    }
    Ok(())
}
