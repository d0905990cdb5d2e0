//! A prepared k-NN query skips re-planning.
//!
//! `SELECT cols FROM t ORDER BY emb <-> $1 LIMIT k` planned once (first Execute) turns
//! into `Projection(columns) ← Sort(fetch k) ← HnswScan` with no filter. When the
//! optimized plan has exactly that shape and the scan's query vector is the bound
//! parameter, later executions of the statement go straight to the index: search,
//! take the rows, pick the columns — the same rows in the same order the plan would
//! produce (the index returns exact distances, closest first), without DataFusion's
//! optimizer and physical planner per query. Anything else (filters, expressions in
//! the select list, a dropped index) takes the normal path.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, LogicalPlan};

use super::{Engine, QueryResult, Session};
use crate::error::{Error, Result};
use crate::table_providers::hnsw_scan::{HnswScanNode, effective_ef_search};
use crate::udf::vector::{Vectors, check_values};

#[derive(Debug, Clone)]
pub struct FastKnn {
    index: String,
    /// What the index was when recognised: a later index of the same name on another
    /// table, column or metric must not answer this statement.
    table: String,
    column: String,
    metric: String,
    k: usize,
    /// Output column i is the table's column `columns[i]`.
    columns: Vec<String>,
}

fn vector_of(s: &ScalarValue) -> Option<Vec<f32>> {
    let a = s.to_array_of_size(1).ok()?;
    Vectors::from_array(&a).ok()?.get(0).map(|v| v.to_vec())
}

/// Recognise the pure k-NN shape in an optimized plan whose only parameter was `param`.
pub fn recognise(plan: &LogicalPlan, param: &ScalarValue, schema: &SchemaRef) -> Option<FastKnn> {
    let (columns, sort) = match plan {
        LogicalPlan::Projection(p) => {
            let cols: Option<Vec<String>> = p
                .expr
                .iter()
                .map(|e| match e {
                    Expr::Column(c) => Some(c.name.clone()),
                    _ => None,
                })
                .collect();
            (Some(cols?), p.input.as_ref())
        }
        other => (None, other),
    };
    let LogicalPlan::Sort(s) = sort else { return None };
    let k = s.fetch?;
    if s.expr.len() != 1 || !s.expr[0].asc {
        return None;
    }
    let LogicalPlan::Extension(ext) = s.input.as_ref() else { return None };
    let node = ext.node.as_any().downcast_ref::<HnswScanNode>()?;
    if !node.filters.is_empty() || node.k != k {
        return None;
    }
    if vector_of(&node.query)? != vector_of(param)? {
        return None;
    }
    let columns = columns.unwrap_or_else(|| node.schema.fields().iter().map(|f| f.name().clone()).collect());
    if columns.len() != schema.fields().len() || columns.iter().any(|c| node.schema.field_with_unqualified_name(c).is_err()) {
        return None;
    }
    Some(FastKnn {
        index: node.index.clone(),
        table: node.table.table().to_string(),
        column: node.column.clone(),
        metric: node.metric.clone(),
        k,
        columns,
    })
}

impl Engine {
    /// Run a recognised k-NN statement; None when the normal path must run instead.
    pub(super) fn run_fast_knn(&self, session: &Session, fast: &FastKnn, schema: &SchemaRef, param: &ScalarValue) -> Option<Result<QueryResult>> {
        let index = self.indexes.get(&fast.index)?;
        let r = index.record();
        if r.table != fast.table || r.column != fast.column || r.metric.as_str() != fast.metric {
            return None;
        }
        let q = vector_of(param)?;
        if let Err(e) = check_values(&q) {
            return Some(Err(e));
        }
        let ef = effective_ef_search(session.ctx.state_ref().read().config_options(), &index);
        let run = || -> Result<RecordBatch> {
            let found = index.search(&q, fast.k, ef, None)?;
            let ids: Vec<usize> = found.iter().map(|(i, _)| *i).collect();
            let rows = index.take(&ids)?;
            let cols = fast
                .columns
                .iter()
                .map(|c| rows.column_by_name(c).cloned().ok_or_else(|| Error::Internal(format!("column {c} missing"))))
                .collect::<Result<Vec<_>>>()?;
            Ok(RecordBatch::try_new(schema.clone(), cols)?)
        };
        match run() {
            Ok(batch) => Some(Ok(QueryResult::batches(schema.clone(), vec![batch]))),
            Err(e @ Error::DimensionMismatch { .. }) => Some(Err(e)),
            Err(_) => None,
        }
    }
}

pub type FastSlot = Arc<std::sync::OnceLock<Option<FastKnn>>>;
