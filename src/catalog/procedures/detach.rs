//! `CALL detach('shop' [, if_exists])`: the procedure form of `DETACH shop`. Tables
//! ingested from the attachment stay.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Args, Param, ParamType, Procedure};
use crate::engine::{Engine, Session};
use crate::error::Result;

pub struct DetachProcedure;

const PARAMS: &[Param] = &[Param::required("name", ParamType::Text), Param::optional("if_exists", ParamType::Bool)];

#[async_trait]
impl Procedure for DetachProcedure {
    fn name(&self) -> &'static str {
        "detach"
    }
    fn params(&self) -> &'static [Param] {
        PARAMS
    }
    fn output_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("detached", DataType::Utf8, false)]))
    }
    async fn call(&self, engine: &Engine, session: &Session, args: Args) -> Result<Vec<RecordBatch>> {
        let name = args.required_text("name")?;
        engine.detach(session, name, args.bool("if_exists").unwrap_or(false)).await?;
        Ok(vec![RecordBatch::try_new(self.output_schema(), vec![Arc::new(StringArray::from(vec![name.to_lowercase()]))])?])
    }
}
