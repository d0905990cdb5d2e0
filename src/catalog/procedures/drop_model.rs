//! `CALL drop_model('name' [, if_exists => true])`: remove a model registered with
//! create_model. Refused while an index embeds with it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Args, Param, ParamType, Procedure};
use crate::catalog::models::{BUILTIN, unknown_model};
use crate::engine::{Engine, Session};
use crate::error::{Error, Result};

pub struct DropModelProcedure;

const NAME: &str = "drop_model";
const PARAMS: &[Param] = &[Param::required("name", ParamType::Text), Param::optional("if_exists", ParamType::Bool)];

#[async_trait]
impl Procedure for DropModelProcedure {
    fn name(&self) -> &'static str {
        NAME
    }
    fn params(&self) -> &'static [Param] {
        PARAMS
    }
    fn output_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("dropped", DataType::Utf8, true)]))
    }
    async fn call(&self, engine: &Engine, session: &Session, args: Args) -> Result<Vec<RecordBatch>> {
        session.require_superuser("CALL drop_model (a model is shared by every user)")?;
        let name = args.required_text("name")?.to_string();
        if name == BUILTIN {
            return Err(Error::DependentObjects(format!("cannot drop the built-in embedding model \"{BUILTIN}\"")));
        }
        if engine.models().is_configured(&name) {
            return Err(Error::DependentObjects(format!(
                "embedding model \"{name}\" is declared in lakehouse.toml; remove it there and restart"
            )));
        }
        let catalog = engine.catalog().clone();
        let n = name.clone();
        let dropped = crate::catalog::blocking(move || catalog.remove_model(&n)).await?;
        let dropped = match dropped {
            Some(_) => {
                engine.models().forget(&name).await;
                Some(name)
            }
            None if args.bool("if_exists") == Some(true) => {
                session.notice(format!("embedding model \"{name}\" does not exist, skipping"));
                None
            }
            None => return Err(unknown_model(&name)),
        };
        Ok(vec![RecordBatch::try_new(self.output_schema(), vec![Arc::new(StringArray::from(vec![dropped]))])?])
    }
}
