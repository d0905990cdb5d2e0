//! `CALL create_model('name', provider => 'local'|'ollama'|'openai'|'hash', …)`:
//! register an embedding model. The model is checked before it is stored: a local
//! model is loaded (and kept loaded), an HTTP model without `dims` is asked for one
//! embedding to learn its dimension.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Args, Param, ParamType, Procedure};
use crate::catalog::models::{BUILTIN, ModelRecord};
use crate::engine::{Engine, Session};
use crate::error::{Error, Result};

pub struct CreateModelProcedure;

const NAME: &str = "create_model";
const PARAMS: &[Param] = &[
    Param::required("name", ParamType::Text),
    Param::required("provider", ParamType::Text),
    Param::optional("base_url", ParamType::Text),
    Param::optional("model", ParamType::Text),
    Param::optional("path", ParamType::Text),
    Param::optional("api_key_env", ParamType::Text),
    Param::optional("dims", ParamType::Int),
    Param::optional("batch_size", ParamType::Int),
    Param::optional("max_in_flight", ParamType::Int),
    Param::optional("timeout_ms", ParamType::Int),
];

fn positive(args: &Args, name: &str) -> Result<Option<usize>> {
    match args.int(name) {
        None => Ok(None),
        Some(n) if n > 0 => Ok(Some(n as usize)),
        Some(n) => Err(Error::invalid(format!("{name} must be positive, got {n}"))),
    }
}

#[async_trait]
impl Procedure for CreateModelProcedure {
    fn name(&self) -> &'static str {
        NAME
    }
    fn params(&self) -> &'static [Param] {
        PARAMS
    }
    fn output_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("provider", DataType::Utf8, false),
            Field::new("dims", DataType::Int64, false),
            Field::new("location", DataType::Utf8, false),
        ]))
    }
    async fn call(&self, engine: &Engine, session: &Session, args: Args) -> Result<Vec<RecordBatch>> {
        // Models are shared by name: whoever defines one receives every user's text
        // embedded with it.
        session.require_superuser("CALL create_model (a model is shared by every user)")?;
        let text = |n: &str| args.text(n).map(str::to_string);
        let mut rec = ModelRecord {
            name: args.required_text("name")?.to_string(),
            provider: args.required_text("provider")?.to_lowercase(),
            base_url: text("base_url"),
            model: text("model"),
            path: text("path"),
            api_key_env: text("api_key_env"),
            dims: positive(&args, "dims")?,
            batch_size: positive(&args, "batch_size")?,
            max_in_flight: positive(&args, "max_in_flight")?,
            timeout_ms: positive(&args, "timeout_ms")?.map(|t| t as u64),
            created_at: crate::catalog::now_rfc3339(),
        };
        rec.validate()?;
        if let Some(path) = &rec.path {
            // Loading model files reads the server's files.
            session.require_superuser(&format!("a local model from a path ('{path}')"))?;
        }
        if let Some(var) = &rec.api_key_env {
            engine.check_secret_env(session, var, "api_key_env")?;
        }
        let models = engine.models();
        if rec.name == BUILTIN || models.is_configured(&rec.name) || engine.catalog().model(&rec.name).is_some() {
            return Err(Error::DuplicateObject(format!("embedding model \"{}\"", rec.name)));
        }
        match rec.provider.as_str() {
            "hash" => rec.dims = Some(rec.dims.unwrap_or(crate::catalog::models::HASH_DIMS)),
            "local" => {
                let found = crate::embedding::local_dims(&rec)?;
                if rec.dims.is_some_and(|d| d != found) {
                    return Err(Error::invalid(format!("dims => {} but the model at {} has {found}", rec.dims.unwrap_or(0), rec.location())));
                }
                rec.dims = Some(found);
                // Load it now: bad files fail here, and the first query needn't wait.
                models.probe(&rec).await?;
            }
            _ => {
                if rec.dims.is_none() {
                    let dims = models.probe(&rec).await.map_err(|e| match e {
                        Error::Unreachable { what, location, reason } => Error::Unreachable {
                            what,
                            location,
                            reason: format!("{reason} (to register it while the server is down, give dims => n)"),
                        },
                        other => other,
                    })?;
                    rec.dims = Some(dims);
                }
            }
        }
        let dims = rec.dims.unwrap_or(0);
        let out = (rec.name.clone(), rec.provider.clone(), rec.location());
        let catalog = engine.catalog().clone();
        let r = rec.clone();
        crate::catalog::blocking(move || catalog.add_model(r)).await?;
        models.forget(&rec.name).await;
        session.notice(format!("embedding model {} ({}, {dims} dimensions) created", out.0, out.1));
        Ok(vec![RecordBatch::try_new(
            self.output_schema(),
            vec![
                Arc::new(StringArray::from(vec![out.0])),
                Arc::new(StringArray::from(vec![out.1])),
                Arc::new(Int64Array::from(vec![dims as i64])),
                Arc::new(StringArray::from(vec![out.2])),
            ],
        )?])
    }
}
