//! `vector_search('index', query, k)`: the k nearest rows of the index's table, with
//! all of its columns plus `_distance`, closest first. Uses the session's
//! `hnsw.ef_search`. On a text index the query may be text: it is embedded with the
//! index's model before the statement is planned ([`embed_text_queries`]).

use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{ColumnarValue, Expr};

use crate::catalog::indexes::unknown_index;
use crate::error::Error;
use crate::table_providers::hnsw::IndexRegistry;
use crate::table_providers::hnsw_scan::effective_ef_search;

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, Statement, TableFactor, Value, VisitMut, VisitorMut,
};

use crate::embedding::Models;

use super::vector::{Vectors, rewrite_vector_casts};

#[derive(Debug)]
pub struct VectorSearch {
    registry: Arc<IndexRegistry>,
    /// For the privilege check: reading an index is reading its table.
    catalog: Arc<crate::catalog::Catalog>,
}

impl VectorSearch {
    pub fn new(registry: Arc<IndexRegistry>, catalog: Arc<crate::catalog::Catalog>) -> Self {
        VectorSearch { registry, catalog }
    }
}

/// Replace the text query of every `vector_search('text_index', 'query text', k)` in
/// `statement` by its embedding (table functions are planned synchronously, so the
/// embedding — an HTTP call, a model run — happens here, before planning).
pub async fn embed_text_queries(statement: &mut Statement, registry: &IndexRegistry, models: &Models) -> crate::error::Result<()> {
    // Cheap test first: most statements have no vector_search at all.
    let mut calls: Vec<(String, String)> = vec![];
    let _ = for_each_table_function(statement, |name, args| {
        if let Some(call) = text_query(registry, name, args) {
            calls.push(call);
        }
    });
    if calls.is_empty() {
        return Ok(());
    }
    let mut vectors = std::collections::HashMap::new();
    for (index, text) in calls {
        let Some(model) = registry.get(&index).and_then(|i| i.model()) else { continue };
        let v = models.embed(&model, &[Some(text.as_str())], None).await?.pop().flatten();
        let v = v.ok_or_else(|| Error::DataException("the query text is empty".into()))?;
        vectors.insert((index, text), super::vector::to_text(&v));
    }
    let _ = for_each_table_function(statement, |name, args| {
        if let Some(call) = text_query(registry, name, args) {
            if let Some(v) = vectors.get(&call) {
                args[1] = FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::value(Value::SingleQuotedString(v.clone()))));
            }
        }
    });
    Ok(())
}

/// Call `f(function name, args)` for every table function in FROM clauses.
fn for_each_table_function(statement: &mut Statement, mut f: impl FnMut(&str, &mut Vec<FunctionArg>)) -> ControlFlow<()> {
    visit_table_factors_mut(statement, |tf| {
        if let TableFactor::Table { name, args: Some(args), .. } = tf {
            f(&name.to_string(), &mut args.args);
        }
        ControlFlow::Continue(())
    })
}

fn string_arg(a: &FunctionArg) -> Option<String> {
    match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Value(v))) => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) | Value::DollarQuotedString(datafusion::sql::sqlparser::ast::DollarQuotedString { value: s, .. }) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// `(index, text)` when this is vector_search on a text index with a text (not vector) query.
fn text_query(registry: &IndexRegistry, name: &str, args: &[FunctionArg]) -> Option<(String, String)> {
    if !name.eq_ignore_ascii_case("vector_search") || args.len() < 2 {
        return None;
    }
    let index = string_arg(&args[0])?;
    let text = string_arg(&args[1])?;
    let is_text_index = registry.get(&index)?.model().is_some();
    (is_text_index && super::vector::parse_text(&text).is_err()).then_some((index, text))
}

struct TableFactors<F>(F);

impl<F: FnMut(&mut TableFactor) -> ControlFlow<()>> VisitorMut for TableFactors<F> {
    type Break = ();
    fn pre_visit_table_factor(&mut self, tf: &mut TableFactor) -> ControlFlow<()> {
        (self.0)(tf)
    }
}

fn visit_table_factors_mut(statement: &mut Statement, f: impl FnMut(&mut TableFactor) -> ControlFlow<()>) -> ControlFlow<()> {
    statement.visit(&mut TableFactors(f))
}

const USAGE: &str = "vector_search takes (index name, query vector, k): vector_search('items_emb_idx', '[1,2,3]', 10)";

/// Evaluate a constant argument.
fn constant(args: &TableFunctionArgs, e: &Expr) -> datafusion::error::Result<ScalarValue> {
    let e = rewrite_vector_casts(e.clone())?;
    let schema = DFSchema::empty();
    let phys = args.session().create_physical_expr(e, &schema)?;
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    match phys.evaluate(&batch)? {
        ColumnarValue::Scalar(s) => Ok(s),
        ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0),
    }
}

impl TableFunctionImpl for VectorSearch {
    fn call_with_args(&self, args: TableFunctionArgs) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.len() != 3 {
            return Err(Error::UnknownFunction(USAGE.into()).into_datafusion());
        }
        let name = match constant(&args, &exprs[0])? {
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => s,
            _ => return Err(Error::InvalidParameter(USAGE.into()).into_datafusion()),
        };
        let index = self.registry.get(&name).ok_or_else(|| unknown_index(&name).into_datafusion())?;
        if let Some(id) = args.session().config().get_extension::<crate::catalog::roles::Identity>() {
            use crate::catalog::roles::{Object, Privilege, denied, may};
            let table = Object::Table(index.record().table.clone());
            if !may(&self.catalog.snapshot(), &id, &table, Privilege::Select) {
                return Err(denied(&table, Privilege::Select, &id.user).into_datafusion());
            }
        }
        let q = constant(&args, &exprs[1])?;
        if let (Some(model), ScalarValue::Utf8(Some(t)) | ScalarValue::Utf8View(Some(t)) | ScalarValue::LargeUtf8(Some(t))) = (index.model(), &q) {
            if super::vector::parse_text(t).is_err() {
                return Err(Error::InvalidParameter(format!(
                    "vector_search on text index {name} needs its query text as a literal (it is embedded before planning); with a bound parameter use ORDER BY over embed('{model}', $1) or pass the vector"
                ))
                .into_datafusion());
            }
        }
        let q = Vectors::from_array(&q.to_array_of_size(1)?)
            .map_err(Error::into_datafusion)?
            .get(0)
            .map(|v| v.to_vec())
            .ok_or_else(|| Error::DataException("the query vector is NULL".into()).into_datafusion())?;
        super::vector::check_values(&q).map_err(Error::into_datafusion)?;
        let k = match constant(&args, &exprs[2])?.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(Some(k)) if k > 0 => k as usize,
            ScalarValue::Int64(Some(k)) => {
                return Err(Error::InvalidParameter(format!("k must be positive, got {k}")).into_datafusion());
            }
            _ => return Err(Error::InvalidParameter("k must be a positive integer".into()).into_datafusion()),
        };
        let ef = effective_ef_search(args.session().config_options(), &index);
        let found = index.search(&q, k, ef, None).map_err(Error::into_datafusion)?;
        let ids: Vec<usize> = found.iter().map(|(i, _)| *i).collect();
        let rows = index.take(&ids).map_err(Error::into_datafusion)?;
        let mut fields: Vec<Field> = rows.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("_distance", DataType::Float64, true));
        let schema = Arc::new(Schema::new(fields));
        let mut cols = rows.columns().to_vec();
        cols.push(Arc::new(Float64Array::from(found.iter().map(|(_, d)| if d.is_finite() { Some(*d) } else { None }).collect::<Vec<_>>())));
        let batch = RecordBatch::try_new(schema.clone(), cols)?;
        Ok(Arc::new(SearchResult { table: index.record().table.clone(), rows: MemTable::try_new(schema, vec![vec![batch]])? }))
    }
}

/// The rows a `vector_search` found, and the table they were read from: the
/// privilege check (engine/privileges.rs) needs SELECT on it wherever the result
/// is used (a view over it, a prepared statement run after a REVOKE).
#[derive(Debug)]
pub struct SearchResult {
    pub table: String,
    rows: MemTable,
}

#[async_trait::async_trait]
impl TableProvider for SearchResult {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.rows.schema()
    }

    fn table_type(&self) -> datafusion::logical_expr::TableType {
        datafusion::logical_expr::TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        self.rows.scan(state, projection, filters, limit).await
    }
}
