//! `CALL rollback('idx' [, wait => false])`: return to the previous promotion (the
//! history's most recent); with an empty history, clear the current promotion (the
//! index goes back to its original parameters and the default ef_search).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Args, Param, ParamType, Procedure};
use crate::catalog::Catalog;
use crate::catalog::promotions::PromotionState;
use crate::engine::{Engine, Session};
use crate::error::Result;

pub struct RollbackProcedure;

const PARAMS: &[Param] = &[Param::required("index", ParamType::Text), Param::optional("wait", ParamType::Bool)];

/// What promote and rollback return: the index's configuration now.
pub fn registry_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("index_name", DataType::Utf8, false),
        Field::new("trial_id", DataType::Int64, true),
        Field::new("m", DataType::Int64, false),
        Field::new("ef_construction", DataType::Int64, false),
        Field::new("ef_search", DataType::Int64, true),
        Field::new("history", DataType::Int64, false),
        Field::new("applied", DataType::Boolean, false),
    ]))
}

pub fn registry_rows(schema: SchemaRef, catalog: Arc<Catalog>, index: &str, state: &PromotionState) -> Result<Vec<RecordBatch>> {
    let rec = catalog.index(index).ok_or_else(|| crate::catalog::indexes::unknown_index(index))?;
    let (m, efc, ef) = state.target().unwrap_or((rec.m, rec.ef_construction, None));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![index])),
        Arc::new(Int64Array::from(vec![state.current.as_ref().and_then(|c| c.trial_id)])),
        Arc::new(Int64Array::from(vec![m as i64])),
        Arc::new(Int64Array::from(vec![efc as i64])),
        Arc::new(Int64Array::from(vec![ef.map(|e| e as i64)])),
        Arc::new(Int64Array::from(vec![state.history.len() as i64])),
        Arc::new(BooleanArray::from(vec![(rec.m, rec.ef_construction) == (m, efc)])),
    ];
    Ok(vec![RecordBatch::try_new(schema, cols)?])
}

#[async_trait]
impl Procedure for RollbackProcedure {
    fn name(&self) -> &'static str {
        "rollback"
    }
    fn params(&self) -> &'static [Param] {
        PARAMS
    }
    fn output_schema(&self) -> SchemaRef {
        registry_schema()
    }
    async fn call(&self, engine: &Engine, session: &Session, args: Args) -> Result<Vec<RecordBatch>> {
        let index = args.required_text("index")?;
        let before = engine.catalog().promotions(index);
        let state = engine.rollback_config(Some(session), index, args.bool("wait").unwrap_or(false)).await?;
        match (&before.current, &state.current) {
            (None, _) => session.notice(format!("index {index} had no promotion; nothing to roll back")),
            (Some(_), None) => session.notice(format!("{index}: no earlier promotion; back to its original parameters and the default ef_search")),
            _ => {}
        }
        registry_rows(self.output_schema(), Arc::clone(engine.catalog()), index, &state)
    }
}
