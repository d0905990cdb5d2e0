//! `CALL attach('shop', 'mysql://user@host:3306/db' [, type, password_env, password_file,
//! schema, types, read_only, if_not_exists])`: the procedure form of `ATTACH`, for the
//! options the statement cannot carry. Returns the attachment as
//! `lakehouse.attachments` shows it (never a password).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Args, Param, ParamType, Procedure};
use crate::engine::{AttachRequest, Engine, Session};
use crate::error::Result;

pub struct AttachProcedure;

const PARAMS: &[Param] = &[
    Param::required("name", ParamType::Text),
    Param::required("location", ParamType::Text),
    Param::optional("type", ParamType::Text),
    Param::optional("password_env", ParamType::Text),
    Param::optional("password_file", ParamType::Text),
    Param::optional("schema", ParamType::Text),
    Param::optional("types", ParamType::Text),
    Param::optional("read_only", ParamType::Bool),
    Param::optional("if_not_exists", ParamType::Bool),
];

#[async_trait]
impl Procedure for AttachProcedure {
    fn name(&self) -> &'static str {
        "attach"
    }
    fn params(&self) -> &'static [Param] {
        PARAMS
    }
    fn output_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("type", DataType::Utf8, false),
            Field::new("location", DataType::Utf8, false),
            Field::new("source_schema", DataType::Utf8, false),
            Field::new("password", DataType::Utf8, false),
            Field::new("tables", DataType::Int64, false),
        ]))
    }
    async fn call(&self, engine: &Engine, session: &Session, args: Args) -> Result<Vec<RecordBatch>> {
        let text = |n: &str| args.text(n).map(str::to_string);
        let req = AttachRequest {
            name: args.required_text("name")?.to_string(),
            url: args.required_text("location")?.to_string(),
            kind: text("type"),
            password_env: text("password_env"),
            password_file: text("password_file"),
            schema: text("schema"),
            types: text("types"),
            read_only: args.bool("read_only"),
            if_not_exists: args.bool("if_not_exists").unwrap_or(false),
        };
        let rec = engine.attach(session, req).await?;
        let tables = engine.remote_schema(&rec.name).map(|s| datafusion::catalog::SchemaProvider::table_names(s.as_ref()).len()).unwrap_or(0);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![rec.name.clone()])),
            Arc::new(StringArray::from(vec![rec.location.kind.name()])),
            Arc::new(StringArray::from(vec![rec.location.display()])),
            Arc::new(StringArray::from(vec![rec.source_schema()])),
            Arc::new(StringArray::from(vec![rec.password.describe()])),
            Arc::new(Int64Array::from(vec![tables as i64])),
        ];
        Ok(vec![RecordBatch::try_new(self.output_schema(), cols)?])
    }
}
