//! `CALL create_bucket('name', 'file:///abs/path')`: register a bucket at run time.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Args, Param, ParamType, Procedure};
use crate::engine::{Engine, Session};
use crate::error::Result;

pub struct CreateBucketProcedure;

const NAME: &str = "create_bucket";
const PARAMS: &[Param] = &[
    Param::required("name", ParamType::Text),
    Param::required("location", ParamType::Text),
];

#[async_trait]
impl Procedure for CreateBucketProcedure {
    fn name(&self) -> &'static str {
        NAME
    }
    fn params(&self) -> &'static [Param] {
        PARAMS
    }
    fn output_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("url", DataType::Utf8, false),
        ]))
    }
    async fn call(&self, engine: &Engine, session: &Session, args: Args) -> Result<Vec<RecordBatch>> {
        // A bucket is where statements may then write files: the server's files.
        session.require_superuser("CALL create_bucket")?;
        let name = args.required_text("name")?.to_string();
        let location = args.required_text("location")?.to_string();
        engine.check_bucket_location(session, &location)?;
        let catalog = engine.catalog().clone();
        let rec = crate::catalog::blocking(move || catalog.create_bucket(&name, &location)).await?;
        Ok(vec![RecordBatch::try_new(
            self.output_schema(),
            vec![
                Arc::new(StringArray::from(vec![rec.name])),
                Arc::new(StringArray::from(vec![rec.url])),
            ],
        )?])
    }
}
