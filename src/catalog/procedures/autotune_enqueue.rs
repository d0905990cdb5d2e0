//! `CALL autotune_enqueue('idx')`: queue an index for the background agent and wake
//! it (`lakehouse.agent` shows the queue).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{BooleanArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Args, Param, ParamType, Procedure};
use crate::engine::{Engine, Session};
use crate::error::Result;

pub struct AutotuneEnqueueProcedure;

const PARAMS: &[Param] = &[Param::required("index", ParamType::Text)];

#[async_trait]
impl Procedure for AutotuneEnqueueProcedure {
    fn name(&self) -> &'static str {
        "autotune_enqueue"
    }
    fn params(&self) -> &'static [Param] {
        PARAMS
    }
    fn output_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("index_name", DataType::Utf8, false),
            Field::new("position", DataType::Int64, false),
            Field::new("agent_enabled", DataType::Boolean, false),
        ]))
    }
    async fn call(&self, engine: &Engine, session: &Session, args: Args) -> Result<Vec<RecordBatch>> {
        let index = args.required_text("index")?;
        if engine.index(index).is_none() {
            return Err(crate::catalog::indexes::unknown_index(index));
        }
        let enabled = engine.config().agent.enabled;
        if !enabled {
            session.notice("the autotune agent is disabled ([agent] enabled = true in lakehouse.toml starts it); the index stays queued until then");
        }
        let position = engine.tuning().agent.enqueue(index);
        Ok(vec![RecordBatch::try_new(
            self.output_schema(),
            vec![
                Arc::new(StringArray::from(vec![index])),
                Arc::new(Int64Array::from(vec![position as i64])),
                Arc::new(BooleanArray::from(vec![enabled])),
            ],
        )?])
    }
}
