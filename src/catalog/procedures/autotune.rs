//! `CALL autotune('idx' [, min_recall => 0.9, max_trials => n, grid => '[…]',
//! strategy => 'grid' | 'adaptive', eval_set => …, promote => true, wait => false])`.
//!
//! `grid` (the default) runs every configuration of the grid (the old service's
//! five unless given; ef_search-only variants share one build) and picks the highest
//! recall, ties by the lowest p50. `adaptive` searches for the lowest p50 that
//! reaches `min_recall` (tuning::strategy). A winner must reach `min_recall`, else
//! nothing is promoted and the result says so. Returns one row per trial and a last
//! row with the decision; NOTICEs report progress; a cancel stops it between chunks.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Args, Param, ParamType, Procedure, positive};
use crate::catalog::trials::TrialRecord;
use crate::engine::tuning::{Plan, promotion_of};
use crate::engine::{Engine, Session};
use crate::error::{Error, Result};
use crate::tuning::{DEFAULT_MIN_RECALL, default_grid, parse_grid, strategy};

pub struct AutotuneProcedure;

const PARAMS: &[Param] = &[
    Param::required("index", ParamType::Text),
    Param::optional("min_recall", ParamType::Float),
    Param::optional("max_trials", ParamType::Int),
    Param::optional("grid", ParamType::Text),
    Param::optional("strategy", ParamType::Text),
    Param::optional("eval_set", ParamType::Text),
    Param::optional("promote", ParamType::Bool),
    Param::optional("wait", ParamType::Bool),
];

/// Trials the adaptive strategy may run unless `max_trials` says otherwise.
pub const ADAPTIVE_BUDGET: usize = 12;

/// Rows of trials (run_trial, autotune).
pub fn trial_schema(outcome: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("trial_id", DataType::Int64, true),
        Field::new("m", DataType::Int64, true),
        Field::new("ef_construction", DataType::Int64, true),
        Field::new("ef_search", DataType::Int64, true),
        Field::new("recall", DataType::Float64, true),
        Field::new("p50_ms", DataType::Float64, true),
        Field::new("p95_ms", DataType::Float64, true),
        Field::new("build_secs", DataType::Float64, true),
    ];
    if outcome {
        fields.push(Field::new("outcome", DataType::Utf8, true));
    }
    Arc::new(Schema::new(fields))
}

/// One row per trial; with `outcome`, a note per trial and a last decision row.
pub fn trial_rows(schema: SchemaRef, trials: &[TrialRecord], outcome: Option<(Vec<String>, Option<i64>, String)>) -> Result<RecordBatch> {
    let last = usize::from(outcome.is_some());
    let ints = |f: &dyn Fn(&TrialRecord) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from(trials.iter().map(|t| Some(f(t))).chain((0..last).map(|_| None)).collect::<Vec<_>>()))
    };
    let floats = |f: &dyn Fn(&TrialRecord) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from(trials.iter().map(|t| Some(f(t))).chain((0..last).map(|_| None)).collect::<Vec<_>>()))
    };
    let mut cols: Vec<ArrayRef> = vec![
        ints(&|t| t.trial_id),
        ints(&|t| t.m as i64),
        ints(&|t| t.ef_construction as i64),
        ints(&|t| t.ef_search as i64),
        floats(&|t| t.recall),
        floats(&|t| t.p50_ms),
        floats(&|t| t.p95_ms),
        floats(&|t| t.build_secs),
    ];
    if let Some((notes, winner, decision)) = outcome {
        // The decision row carries the winner's trial id.
        let mut ids: Vec<Option<i64>> = trials.iter().map(|t| Some(t.trial_id)).collect();
        ids.push(winner);
        cols[0] = Arc::new(Int64Array::from(ids));
        cols.push(Arc::new(StringArray::from(notes.into_iter().map(Some).chain([Some(decision)]).collect::<Vec<_>>())));
    }
    Ok(RecordBatch::try_new(schema, cols)?)
}

#[async_trait]
impl Procedure for AutotuneProcedure {
    fn name(&self) -> &'static str {
        "autotune"
    }
    fn params(&self) -> &'static [Param] {
        PARAMS
    }
    fn output_schema(&self) -> SchemaRef {
        trial_schema(true)
    }
    async fn call(&self, engine: &Engine, session: &Session, args: Args) -> Result<Vec<RecordBatch>> {
        let index = args.required_text("index")?;
        let min_recall = args.float("min_recall").unwrap_or(DEFAULT_MIN_RECALL);
        if !(0.0..=1.0).contains(&min_recall) {
            return Err(Error::InvalidParameter(format!("min_recall must be between 0 and 1, got {min_recall}")));
        }
        let max_trials = positive(&args, "max_trials")?;
        let strategy_name = args.text("strategy").unwrap_or("grid").to_lowercase();
        let grid = args.text("grid").map(parse_grid).transpose()?;
        let plan = match strategy_name.as_str() {
            "grid" => {
                let mut g = grid.unwrap_or_else(default_grid);
                if let Some(n) = max_trials {
                    g.truncate(n);
                }
                Plan::Configs(g)
            }
            "adaptive" => {
                if grid.is_some() {
                    return Err(Error::InvalidParameter("grid => … is for strategy => 'grid'; the adaptive strategy chooses its own configurations".into()));
                }
                Plan::Adaptive { min_recall, budget: max_trials.unwrap_or(ADAPTIVE_BUDGET) }
            }
            other => return Err(Error::InvalidParameter(format!("unknown strategy \"{other}\"; use 'grid' or 'adaptive'"))),
        };
        if engine.index(index).is_none() {
            return Err(crate::catalog::indexes::unknown_index(index));
        }
        session.notice(format!("autotune {index}: strategy {strategy_name}, min_recall {min_recall}"));
        let trials = engine.run_tuning(Some(session), index, args.text("eval_set"), "autotune", plan).await?;
        let winner = match strategy_name.as_str() {
            "grid" => strategy::grid_winner(&trials, min_recall),
            _ => strategy::fastest_at(&trials, min_recall),
        }
        .cloned();
        let notes: Vec<String> = trials
            .iter()
            .map(|t| {
                if winner.as_ref().is_some_and(|w| w.trial_id == t.trial_id) {
                    "winner".to_string()
                } else if t.recall < min_recall {
                    "below min_recall".to_string()
                } else {
                    String::new()
                }
            })
            .collect();
        let decision = match &winner {
            None => {
                let best = trials.iter().max_by(|a, b| a.recall.total_cmp(&b.recall));
                format!(
                    "nothing promoted: no trial reached min_recall {min_recall}{}",
                    best.map(|b| format!(" (best: trial {} with recall {:.4})", b.trial_id, b.recall)).unwrap_or_default()
                )
            }
            Some(w) if args.bool("promote") == Some(false) => {
                format!("winner trial {} ({} {} {}), not promoted (promote => false)", w.trial_id, w.m, w.ef_construction, w.ef_search)
            }
            Some(w) => {
                let note = format!("autotune {strategy_name} over {} trials: recall {:.4}, p50 {:.3} ms", trials.len(), w.recall, w.p50_ms);
                engine.promote_config(Some(session), index, promotion_of(w, "autotune", note), args.bool("wait").unwrap_or(false)).await?;
                format!(
                    "promoted trial {}: m = {}, ef_construction = {}, ef_search = {} (recall {:.4} ≥ {min_recall}, p50 {:.3} ms)",
                    w.trial_id, w.m, w.ef_construction, w.ef_search, w.recall, w.p50_ms
                )
            }
        };
        session.notice(format!("autotune {index}: {decision}"));
        Ok(vec![trial_rows(self.output_schema(), &trials, Some((notes, winner.map(|w| w.trial_id), decision)))?])
    }
}
