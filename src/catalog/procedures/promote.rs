//! `CALL promote('idx', trial_id [, note => '…', wait => false])`: make a trial's
//! configuration the index's current one. Durable on return (one catalog update);
//! the index is rebuilt with the new m / ef_construction in the background (or
//! before returning with `wait => true`) and swapped in when complete.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::{Args, Param, ParamType, Procedure};
use crate::engine::tuning::promotion_of;
use crate::engine::{Engine, Session};
use crate::error::{Error, Result};

pub struct PromoteProcedure;

const PARAMS: &[Param] = &[
    Param::required("index", ParamType::Text),
    Param::required("trial_id", ParamType::Int),
    Param::optional("note", ParamType::Text),
    Param::optional("wait", ParamType::Bool),
];

#[async_trait]
impl Procedure for PromoteProcedure {
    fn name(&self) -> &'static str {
        "promote"
    }
    fn params(&self) -> &'static [Param] {
        PARAMS
    }
    fn output_schema(&self) -> SchemaRef {
        super::rollback::registry_schema()
    }
    async fn call(&self, engine: &Engine, session: &Session, args: Args) -> Result<Vec<RecordBatch>> {
        let index = args.required_text("index")?;
        if engine.index(index).is_none() {
            return Err(crate::catalog::indexes::unknown_index(index));
        }
        let id = args.int("trial_id").unwrap_or_default();
        let trial = engine.tuning().journal.get(index, id).ok_or_else(|| {
            Error::UndefinedObject(format!("index \"{index}\" has no trial {id}; see SELECT trial_id FROM lakehouse.trials WHERE index_name = '{index}'"))
        })?;
        let p = promotion_of(&trial, "manual", args.text("note").unwrap_or_default().to_string());
        let state = engine.promote_config(Some(session), index, p, args.bool("wait").unwrap_or(false)).await?;
        super::rollback::registry_rows(self.output_schema(), Arc::clone(engine.catalog()), index, &state)
    }
}
