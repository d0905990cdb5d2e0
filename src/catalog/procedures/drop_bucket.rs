//! `CALL drop_bucket('name')`: unregister a bucket (its files stay on disk).
//! `primary` and `rescue` are refused with 42501; a bucket holding datasets with 2BP01.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{BooleanArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Args, Param, ParamType, Procedure};
use crate::engine::{Engine, Session};
use crate::error::Result;

pub struct DropBucketProcedure;

const NAME: &str = "drop_bucket";
const PARAMS: &[Param] = &[Param::required("name", ParamType::Text)];

#[async_trait]
impl Procedure for DropBucketProcedure {
    fn name(&self) -> &'static str {
        NAME
    }
    fn params(&self) -> &'static [Param] {
        PARAMS
    }
    fn output_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("dropped", DataType::Boolean, false),
        ]))
    }
    async fn call(&self, engine: &Engine, session: &Session, args: Args) -> Result<Vec<RecordBatch>> {
        session.require_superuser("CALL drop_bucket")?;
        let name = args.required_text("name")?.to_string();
        let catalog = engine.catalog().clone();
        let n = name.clone();
        crate::catalog::blocking(move || catalog.drop_bucket(&n)).await?;
        Ok(vec![RecordBatch::try_new(
            self.output_schema(),
            vec![
                Arc::new(StringArray::from(vec![name])),
                Arc::new(BooleanArray::from(vec![true])),
            ],
        )?])
    }
}
