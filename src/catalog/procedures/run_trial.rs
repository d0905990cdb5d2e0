//! `CALL run_trial('idx', m => 16, ef_construction => 64, ef_search => 40 [, eval_set => …])`:
//! one trial by hand. Unset parameters are the index's own; the result is journaled
//! (`lakehouse.trials`, source `manual`) and returned.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::{Args, Param, ParamType, Procedure, positive};
use crate::engine::tuning::Plan;
use crate::engine::{Engine, Session};
use crate::error::Result;
use crate::tuning::TrialConfig;

pub struct RunTrialProcedure;

const PARAMS: &[Param] = &[
    Param::required("index", ParamType::Text),
    Param::optional("m", ParamType::Int),
    Param::optional("ef_construction", ParamType::Int),
    Param::optional("ef_search", ParamType::Int),
    Param::optional("eval_set", ParamType::Text),
];

#[async_trait]
impl Procedure for RunTrialProcedure {
    fn name(&self) -> &'static str {
        "run_trial"
    }
    fn params(&self) -> &'static [Param] {
        PARAMS
    }
    fn output_schema(&self) -> SchemaRef {
        super::autotune::trial_schema(false)
    }
    async fn call(&self, engine: &Engine, session: &Session, args: Args) -> Result<Vec<RecordBatch>> {
        let index = args.required_text("index")?;
        let rec = engine.index(index).ok_or_else(|| crate::catalog::indexes::unknown_index(index))?.record();
        let config = TrialConfig::new(
            positive(&args, "m")?.unwrap_or(rec.m),
            positive(&args, "ef_construction")?.unwrap_or(rec.ef_construction),
            positive(&args, "ef_search")?.unwrap_or(rec.ef_search.unwrap_or(crate::table_providers::hnsw_scan::DEFAULT_EF_SEARCH)),
        );
        let trials = engine.run_tuning(Some(session), index, args.text("eval_set"), "manual", Plan::Configs(vec![config])).await?;
        Ok(vec![super::autotune::trial_rows(Arc::clone(&self.output_schema()), &trials, None)?])
    }
}
