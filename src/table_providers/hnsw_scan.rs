//! The planner's use of HNSW indexes.
//!
//! [`HnswRewrite`] (an optimizer rule, run after DataFusion's own) finds
//! `Sort(fetch = k, <distance>(col, <vector literal>) ASC)` over projections and
//! filters down to a `TableScan` of a table with a matching index, and replaces that
//! scan with an [`HnswScanNode`]. The node returns the k nearest rows that pass the
//! query's filters (widening the search, or scanning exactly, until k rows match);
//! the Sort above stays and re-ranks them by the exact distance, so results are
//! ordered exactly as without the index. EXPLAIN shows the node with its index,
//! ef_search and k. `SET hnsw.ef_search = n` (default 40) is read per session from
//! [`HnswOptions`].

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::ConfigExtension;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DFSchemaRef, ScalarValue, TableReference};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::{QueryPlanner, SessionState};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use super::hnsw::{HnswIndex, IndexRegistry};
use crate::error::Error;
use crate::udf::distance::Metric;
use crate::udf::vector::Vectors;

datafusion::common::extensions_options! {
    /// Per-session HNSW search settings (`SET hnsw.ef_search = 100`).
    pub struct HnswOptions {
        /// Candidates kept per HNSW search; higher is slower and more accurate.
        /// 0 = not set: each index's promoted ef_search, else 40.
        pub ef_search: usize, default = 0
        /// pgvector's iterative index scans: off, relaxed_order, strict_order.
        /// lakehouse's filtered HNSW scans already continue until they have their
        /// rows, in order (strict_order); the setting is kept and shown.
        pub iterative_scan: String, default = "off".to_string()
        /// pgvector's cap on tuples an iterative scan visits (kept and shown).
        pub max_scan_tuples: usize, default = 20000
        /// pgvector's memory multiplier for iterative scans (kept and shown).
        pub scan_mem_multiplier: f64, default = 1.0
    }
}

impl ConfigExtension for HnswOptions {
    const PREFIX: &'static str = "hnsw";
}

datafusion::common::extensions_options! {
    /// PostgreSQL planner switches whose effect shows in results, mirrored from the
    /// session's `SET enable_seqscan` (session.rs) for [`IndexOrder`].
    pub struct PgPlannerOptions {
        pub enable_seqscan: bool, default = true
    }
}

impl ConfigExtension for PgPlannerOptions {
    const PREFIX: &'static str = "pg_planner";
}

pub const EF_SEARCH_MAX: usize = 1000;

/// ef_search when nothing else says: pgvector's default.
pub const DEFAULT_EF_SEARCH: usize = 40;

/// The session's `SET hnsw.ef_search`, if it set one.
pub fn ef_search(options: &datafusion::config::ConfigOptions) -> Option<usize> {
    options.extensions.get::<HnswOptions>().map(|o| o.ef_search).filter(|e| *e > 0)
}

/// The ef_search a search of `index` uses: the session's setting, else the index's
/// promoted one (CALL promote), else 40.
pub fn effective_ef_search(options: &datafusion::config::ConfigOptions, index: &HnswIndex) -> usize {
    ef_search(options).or_else(|| index.tuned_ef_search()).unwrap_or(DEFAULT_EF_SEARCH)
}

// ------------------------------------------------------------------- logical node

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HnswScanNode {
    pub index: String,
    /// The indexed column (with `table` and `metric`, what the index must still be).
    pub column: String,
    pub metric: String,
    pub table: TableReference,
    pub query: ScalarValue,
    pub k: usize,
    pub ef_search: usize,
    /// Conjuncts every returned row satisfies, over the table's full schema.
    pub filters: Vec<Expr>,
    pub projection: Option<Vec<usize>>,
    pub schema: DFSchemaRef,
    pub table_schema: DFSchemaRef,
}

impl PartialOrd for HnswScanNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (&self.index, self.k, self.ef_search).partial_cmp(&(&other.index, other.k, other.ef_search))
    }
}

impl UserDefinedLogicalNodeCore for HnswScanNode {
    fn name(&self) -> &str {
        "HnswScan"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    /// The filters refer to table columns outside this node's (projected) schema, so
    /// they are not exposed to later optimizer passes; they were optimized already.
    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "HnswScan: index={} table={} metric={} ef_search={} k={}", self.index, self.table, self.metric, self.ef_search, self.k)?;
        if !self.filters.is_empty() {
            let fs: Vec<String> = self.filters.iter().map(|e| e.to_string()).collect();
            write!(f, " filter=[{}]", fs.join(" AND "))?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, _inputs: Vec<LogicalPlan>) -> Result<Self> {
        Ok(self.clone())
    }
}

// ------------------------------------------------------------------- the rewrite

#[derive(Debug)]
pub struct HnswRewrite {
    registry: Arc<IndexRegistry>,
}

impl HnswRewrite {
    pub fn new(registry: Arc<IndexRegistry>) -> Self {
        HnswRewrite { registry }
    }

    /// Rebuild `plan` with the scan under it replaced, if the chain down to it is
    /// projections and filters and `e` resolves to `<distance>(column, literal)`.
    fn below(&self, plan: &LogicalPlan, e: &Expr, filters: &mut Vec<Expr>, k: usize, ef: Option<usize>) -> Option<LogicalPlan> {
        match plan {
            LogicalPlan::Projection(p) => {
                let e2 = e
                    .clone()
                    .transform(|x| match &x {
                        Expr::Column(c) => match p.schema.index_of_column(c) {
                            Ok(i) => Ok(Transformed::yes(p.expr[i].clone().unalias_nested().data)),
                            Err(_) => Ok(Transformed::no(x)),
                        },
                        _ => Ok(Transformed::no(x)),
                    })
                    .ok()?
                    .data;
                let input = self.below(&p.input, &e2, filters, k, ef)?;
                plan.with_new_exprs(plan.expressions(), vec![input]).ok()
            }
            LogicalPlan::Filter(f) => {
                filters.push(f.predicate.clone());
                let input = self.below(&f.input, e, filters, k, ef)?;
                plan.with_new_exprs(plan.expressions(), vec![input]).ok()
            }
            LogicalPlan::TableScan(ts) if ts.fetch.is_none() => {
                let Expr::ScalarFunction(f) = e else { return None };
                let metric = Metric::from_function(f.func.name())?;
                let (c, q) = match f.args.as_slice() {
                    [Expr::Column(c), Expr::Literal(q, _)] | [Expr::Literal(q, _), Expr::Column(c)] => (c, q),
                    _ => return None,
                };
                if !matches!(q, ScalarValue::FixedSizeList(_)) {
                    return None;
                }
                if let Some(r) = &c.relation {
                    if !r.resolved_eq(&ts.table_name) && r != &ts.table_name {
                        return None;
                    }
                }
                let table = dataset_name(&ts.table_name)?;
                let index = self.registry.find(&table, &c.name, metric)?;
                let dims = Vectors::from_array(&q.to_array_of_size(1).ok()?).ok()?.get(0)?.len();
                if dims != index.rows().dims {
                    return None;
                }
                let table_schema = DFSchema::try_from_qualified_schema(ts.table_name.clone(), &ts.source.schema()).ok()?;
                for f in &ts.filters {
                    if !filters.contains(f) {
                        filters.push(f.clone());
                    }
                }
                let record = index.record();
                let node = HnswScanNode {
                    index: record.name.clone(),
                    column: record.column.clone(),
                    metric: metric.as_str().into(),
                    table: ts.table_name.clone(),
                    query: q.clone(),
                    k,
                    ef_search: ef.or_else(|| index.tuned_ef_search()).unwrap_or(DEFAULT_EF_SEARCH),
                    filters: filters.clone(),
                    projection: ts.projection.clone(),
                    schema: ts.projected_schema.clone(),
                    table_schema: Arc::new(table_schema),
                };
                Some(LogicalPlan::Extension(Extension { node: Arc::new(node) }))
            }
            _ => None,
        }
    }
}

/// Our dataset key for a table reference (`name`, or `schema.name` outside public;
/// a key no index is on simply finds none).
fn dataset_name(t: &TableReference) -> Option<String> {
    let ok_catalog = t.catalog().is_none_or(|c| c == crate::engine::CATALOG_NAME);
    ok_catalog.then(|| crate::catalog::schemas::key(t.schema(), t.table()))
}

impl OptimizerRule for HnswRewrite {
    fn name(&self) -> &str {
        "hnsw_index_scan"
    }

    fn rewrite(&self, plan: LogicalPlan, config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let ef = ef_search(&config.options());
        plan.transform_down(|p| {
            let LogicalPlan::Sort(sort) = &p else { return Ok(Transformed::no(p)) };
            let (Some(k), [se]) = (sort.fetch, sort.expr.as_slice()) else { return Ok(Transformed::no(p)) };
            if !se.asc || k == 0 {
                return Ok(Transformed::no(p));
            }
            let mut filters = vec![];
            let e = se.expr.clone().unalias_nested().data;
            match self.below(&sort.input, &e, &mut filters, k, ef) {
                Some(input) => Ok(Transformed::yes(p.with_new_exprs(p.expressions(), vec![input])?)),
                None => Ok(Transformed::no(p)),
            }
        })
    }
}

// ------------------------------------------------------------- ORDER BY without LIMIT

/// `SET enable_seqscan = off` and an `ORDER BY <distance>(col, q)` with no LIMIT over
/// a column with a matching HNSW index: PostgreSQL then reads the rows through the
/// index, which holds no NULL vectors (and, for cosine, no zero vectors), so those
/// rows are not in the result, as pgvector's tests expect. lakehouse returns the
/// rows the index holds, in exact distance order (pgvector's strict_order iterative
/// scan): a filter under the Sort. An analyzer rule, because DataFusion's optimizer
/// drops an ORDER BY without LIMIT in a subquery (`SELECT count(*) FROM (… ORDER BY
/// …)`), whose rows pgvector still reads from the index. With a LIMIT the HNSW scan
/// ([`HnswRewrite`]) holds only indexed rows anyway.
#[derive(Debug)]
pub struct IndexOrder {
    registry: Arc<IndexRegistry>,
}

impl IndexOrder {
    pub fn new(registry: Arc<IndexRegistry>) -> Self {
        IndexOrder { registry }
    }

    /// `plan` with a filter over the scan of `column` under it (through projections,
    /// filters and aliases), if that column has an index for `metric`.
    fn below(&self, plan: &LogicalPlan, column: &datafusion::common::Column, metric: Metric) -> Option<LogicalPlan> {
        let rebuild = |input: LogicalPlan| plan.with_new_exprs(plan.expressions(), vec![input]).ok();
        match plan {
            LogicalPlan::Projection(p) => {
                let i = p.schema.index_of_column(column).ok()?;
                let Expr::Column(c) = p.expr[i].clone().unalias_nested().data else { return None };
                rebuild(self.below(&p.input, &c, metric)?)
            }
            LogicalPlan::SubqueryAlias(a) => {
                let i = a.schema.index_of_column(column).ok()?;
                let c = datafusion::common::Column::from(a.input.schema().qualified_field(i));
                rebuild(self.below(&a.input, &c, metric)?)
            }
            LogicalPlan::Filter(f) => rebuild(self.below(&f.input, column, metric)?),
            LogicalPlan::TableScan(ts) => {
                if column.relation.as_ref().is_some_and(|r| !r.resolved_eq(&ts.table_name) && r != &ts.table_name) {
                    return None;
                }
                self.registry.find(&dataset_name(&ts.table_name)?, &column.name, metric)?;
                let col = Expr::Column(column.clone());
                let mut keep = col.clone().is_not_null();
                if metric == Metric::Cosine {
                    let norm = Arc::new(crate::udf::distance::vector_norm());
                    keep = keep.and(Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(norm, vec![col])).gt(datafusion::prelude::lit(0f64)));
                }
                datafusion::logical_expr::LogicalPlanBuilder::from(plan.clone()).filter(keep).ok()?.build().ok()
            }
            _ => None,
        }
    }
}

impl datafusion::optimizer::AnalyzerRule for IndexOrder {
    fn analyze(&self, plan: LogicalPlan, config: &datafusion::config::ConfigOptions) -> Result<LogicalPlan> {
        if config.extensions.get::<PgPlannerOptions>().is_none_or(|o| o.enable_seqscan) {
            return Ok(plan);
        }
        plan.transform_down_with_subqueries(|p| {
            let LogicalPlan::Sort(sort) = &p else { return Ok(Transformed::no(p)) };
            let Some(se) = sort.expr.first().filter(|se| se.asc) else { return Ok(Transformed::no(p)) };
            let Expr::ScalarFunction(f) = se.expr.clone().unalias_nested().data else { return Ok(Transformed::no(p)) };
            let Some(metric) = Metric::from_function(f.func.name()) else { return Ok(Transformed::no(p)) };
            let column = match f.args.as_slice() {
                [Expr::Column(c), q] | [q, Expr::Column(c)] if q.column_refs().is_empty() => c.clone(),
                _ => return Ok(Transformed::no(p)),
            };
            match self.below(&sort.input, &column, metric) {
                Some(input) => Ok(Transformed::yes(p.with_new_exprs(p.expressions(), vec![input])?)),
                None => Ok(Transformed::no(p)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "hnsw_index_order"
    }
}

// ------------------------------------------------------------------- execution

pub struct HnswScanExec {
    index: Arc<HnswIndex>,
    name: String,
    metric: String,
    query: Vec<f32>,
    k: usize,
    ef_search: usize,
    predicate: Option<Arc<dyn PhysicalExpr>>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for HnswScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HnswScanExec({})", self.name)
    }
}

impl DisplayAs for HnswScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "HnswScanExec: index={} metric={} ef_search={} k={}", self.name, self.metric, self.ef_search, self.k)?;
        if let Some(p) = &self.predicate {
            write!(f, " filter={p}")?;
        }
        Ok(())
    }
}

impl HnswScanExec {
    fn run(&self) -> std::result::Result<RecordBatch, Error> {
        let mask = match &self.predicate {
            None => None,
            Some(p) => {
                let rows = self.index.rows();
                let v = p.evaluate(&rows.batch)?.into_array(rows.len())?;
                let b = v.as_boolean();
                // NULL means "does not pass".
                Some(match b.nulls() {
                    None => b.clone(),
                    Some(n) => BooleanArray::new(b.values() & n.inner(), None),
                })
            }
        };
        let found = self.index.search(&self.query, self.k, self.ef_search, mask.as_ref())?;
        let ids: Vec<usize> = found.iter().map(|(i, _)| *i).collect();
        let batch = self.index.take(&ids)?;
        let batch = match &self.projection {
            Some(p) => batch.project(p)?,
            None => batch,
        };
        Ok(RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())?)
    }
}

impl ExecutionPlan for HnswScanExec {
    fn name(&self) -> &str {
        "HnswScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, _partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let batch = self.run().map_err(Error::into_datafusion);
        let stream = futures::stream::once(async move { batch });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }
}

// ------------------------------------------------------------------- planners

#[derive(Debug)]
pub struct HnswExtensionPlanner {
    registry: Arc<IndexRegistry>,
}

#[async_trait]
impl ExtensionPlanner for HnswExtensionPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        _physical_inputs: &[Arc<dyn ExecutionPlan>],
        session_state: &SessionState,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<HnswScanNode>() else { return Ok(None) };
        let index = self.registry.get(&node.index).ok_or_else(|| {
            Error::UndefinedObject(format!("index \"{}\" was dropped while the query was planned; run it again", node.index))
                .into_datafusion()
        })?;
        let query = Vectors::from_array(&node.query.to_array_of_size(1)?)
            .map_err(Error::into_datafusion)?
            .get(0)
            .map(|v| v.to_vec())
            .ok_or_else(|| DataFusionError::Plan("NULL query vector".into()))?;
        let predicate = match datafusion::logical_expr::utils::conjunction(node.filters.clone()) {
            None => None,
            Some(e) => Some(session_state.create_physical_expr(e, &node.table_schema)?),
        };
        let schema: SchemaRef = Arc::new(node.schema.as_arrow().clone());
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Some(Arc::new(HnswScanExec {
            index,
            name: node.index.clone(),
            metric: node.metric.clone(),
            query,
            k: node.k,
            ef_search: node.ef_search,
            predicate,
            projection: node.projection.clone(),
            schema,
            properties,
        })))
    }
}

/// DataFusion's physical planner plus our extension nodes.
pub struct LakehouseQueryPlanner {
    planner: DefaultPhysicalPlanner,
}

impl fmt::Debug for LakehouseQueryPlanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LakehouseQueryPlanner")
    }
}

impl LakehouseQueryPlanner {
    pub fn new(registry: Arc<IndexRegistry>) -> Self {
        LakehouseQueryPlanner {
            planner: DefaultPhysicalPlanner::with_extension_planners(vec![
                Arc::new(HnswExtensionPlanner { registry }),
                Arc::new(datafusion_federation::FederatedPlanner::new()),
            ]),
        }
    }
}

#[async_trait]
impl QueryPlanner for LakehouseQueryPlanner {
    async fn create_physical_plan(&self, logical_plan: &LogicalPlan, session_state: &SessionState) -> Result<Arc<dyn ExecutionPlan>> {
        self.planner.create_physical_plan(logical_plan, session_state).await
    }
}
