//! `vector_search('index', query, k)`: the k nearest rows of the index's table, with
//! all of its columns plus `_distance`, closest first. Uses the session's
//! `hnsw.ef_search`.

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
use crate::table_providers::hnsw_scan::ef_search;

use super::vector::{Vectors, rewrite_vector_casts};

#[derive(Debug)]
pub struct VectorSearch {
    registry: Arc<IndexRegistry>,
}

impl VectorSearch {
    pub fn new(registry: Arc<IndexRegistry>) -> Self {
        VectorSearch { registry }
    }
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
        let q = constant(&args, &exprs[1])?;
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
        let ef = ef_search(args.session().config_options());
        let found = index.search(&q, k, ef, None).map_err(Error::into_datafusion)?;
        let ids: Vec<usize> = found.iter().map(|(i, _)| *i).collect();
        let rows = index.take(&ids).map_err(Error::into_datafusion)?;
        let mut fields: Vec<Field> = rows.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("_distance", DataType::Float64, true));
        let schema = Arc::new(Schema::new(fields));
        let mut cols = rows.columns().to_vec();
        cols.push(Arc::new(Float64Array::from(found.iter().map(|(_, d)| if d.is_finite() { Some(*d) } else { None }).collect::<Vec<_>>())));
        let batch = RecordBatch::try_new(schema.clone(), cols)?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}
