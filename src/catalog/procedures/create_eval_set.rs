//! `CALL create_eval_set('idx' [, queries => 100, k => 10, seed => 42, name => 'idx_eval',
//! from_table => 'my_queries', column => 'v', replace => false])`: sample query
//! vectors (held-out rows of the index, or a table of queries) and store their exact
//! nearest neighbours in the index's bucket. `lakehouse.eval_sets` lists them.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Args, Param, ParamType, Procedure, positive};
use crate::engine::tuning::EvalSpec;
use crate::engine::{Engine, Session};
use crate::error::Result;

pub struct CreateEvalSetProcedure;

const PARAMS: &[Param] = &[
    Param::required("index", ParamType::Text),
    Param::optional("queries", ParamType::Int),
    Param::optional("k", ParamType::Int),
    Param::optional("seed", ParamType::Int),
    Param::optional("name", ParamType::Text),
    Param::optional("from_table", ParamType::Text),
    Param::optional("column", ParamType::Text),
    Param::optional("replace", ParamType::Bool),
];

#[async_trait]
impl Procedure for CreateEvalSetProcedure {
    fn name(&self) -> &'static str {
        "create_eval_set"
    }
    fn params(&self) -> &'static [Param] {
        PARAMS
    }
    fn output_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("index_name", DataType::Utf8, false),
            Field::new("queries", DataType::Int64, false),
            Field::new("k", DataType::Int64, false),
            Field::new("rows", DataType::Int64, false),
            Field::new("source", DataType::Utf8, false),
        ]))
    }
    async fn call(&self, engine: &Engine, session: &Session, args: Args) -> Result<Vec<RecordBatch>> {
        let mut spec = EvalSpec::default_for(args.required_text("index")?);
        spec.queries = positive(&args, "queries")?.unwrap_or(spec.queries);
        spec.k = positive(&args, "k")?.unwrap_or(spec.k);
        spec.seed = args.int("seed").map(|s| s as u64).unwrap_or(spec.seed);
        spec.name = args.text("name").map(str::to_string);
        spec.from_table = args.text("from_table").map(str::to_string);
        spec.column = args.text("column").map(str::to_string);
        spec.replace = args.bool("replace").unwrap_or(false);
        let rec = engine.create_eval_set(Some(session), spec).await?;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![rec.name])),
            Arc::new(StringArray::from(vec![rec.index])),
            Arc::new(Int64Array::from(vec![rec.queries as i64])),
            Arc::new(Int64Array::from(vec![rec.k as i64])),
            Arc::new(Int64Array::from(vec![rec.rows as i64])),
            Arc::new(StringArray::from(vec![rec.source])),
        ];
        Ok(vec![RecordBatch::try_new(self.output_schema(), cols)?])
    }
}
