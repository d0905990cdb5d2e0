//! `CALL ingest('shop.customers', 'customers' [, bucket => 'b', format => 'parquet',
//! mode => 'create'|'append'|'replace'])`: copy an attached table into a lakehouse
//! table, recording its lineage and PII flags (engine/ingest.rs). Returns one row per
//! column: its type and PII kind, with the row count.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Args, Param, ParamType, Procedure};
use crate::engine::ingest::{IngestMode, IngestRequest};
use crate::engine::{Engine, Session};
use crate::error::Result;

pub struct IngestProcedure;

const PARAMS: &[Param] = &[
    Param::required("source", ParamType::Text),
    Param::required("dataset", ParamType::Text),
    Param::optional("bucket", ParamType::Text),
    Param::optional("format", ParamType::Text),
    Param::optional("mode", ParamType::Text),
];

#[async_trait]
impl Procedure for IngestProcedure {
    fn name(&self) -> &'static str {
        "ingest"
    }
    fn params(&self) -> &'static [Param] {
        PARAMS
    }
    fn output_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("dataset", DataType::Utf8, false),
            Field::new("column_name", DataType::Utf8, false),
            Field::new("data_type", DataType::Utf8, false),
            Field::new("pii_kind", DataType::Utf8, true),
            Field::new("rows", DataType::Int64, false),
            Field::new("mode", DataType::Utf8, false),
            Field::new("seconds", DataType::Float64, false),
        ]))
    }
    async fn call(&self, engine: &Engine, session: &Session, args: Args) -> Result<Vec<RecordBatch>> {
        let req = IngestRequest {
            source: args.required_text("source")?.to_string(),
            dataset: args.required_text("dataset")?.to_string(),
            bucket: args.text("bucket").map(str::to_string),
            format: args.text("format").map(str::to_string),
            mode: IngestMode::parse(args.text("mode"))?,
        };
        let out = engine.ingest(session, req).await?;
        let n = out.columns.len();
        let mode = format!("{:?}", out.mode).to_lowercase();
        session.notice(format!("ingested {} rows into {} in {:.2} s", out.rows, out.dataset, out.seconds));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![out.dataset.clone(); n])),
            Arc::new(StringArray::from(out.columns.iter().map(|c| c.0.clone()).collect::<Vec<_>>())),
            Arc::new(StringArray::from(out.columns.iter().map(|c| c.1.clone()).collect::<Vec<_>>())),
            Arc::new(StringArray::from(out.columns.iter().map(|c| c.2.clone()).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(vec![out.rows as i64; n])),
            Arc::new(StringArray::from(vec![mode; n])),
            Arc::new(Float64Array::from(vec![out.seconds; n])),
        ];
        Ok(vec![RecordBatch::try_new(self.output_schema(), cols)?])
    }
}
