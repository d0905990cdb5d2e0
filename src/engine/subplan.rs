//! Correlated subqueries DataFusion cannot decorrelate, run once per outer row the way
//! PostgreSQL runs a SubPlan (#14).
//!
//! DataFusion turns a correlated subquery into a join when its correlation is
//! `inner = outer` equalities; anything else (`oid = ANY(pol.polroles)` in psql's `\d`,
//! `a.x < b.y`) was left in the plan, and the physical planner refused it ("Physical
//! plan does not support logical expression ScalarSubquery"). [`SubPlans`], the last
//! optimizer rule, replaces each such scalar subquery or EXISTS by a call of an async
//! function whose arguments are the outer columns it reads: for each distinct set of
//! their values in a batch it runs the subquery's plan with the outer columns bound as
//! parameters. A scalar subquery answers its one row's value, NULL for none, 21000 for
//! more; EXISTS whether it has a row.
//!
//! This is a nested loop: fine for catalog queries and small outer sides, slow over
//! millions of rows (an equality correlation stays a join).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Column, Result, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::expr::{Exists, Placeholder, ScalarFunction};
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Subquery, Volatility,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// The session whose plans these are: set once the session's context exists.
pub type SessionSlot = Arc<OnceLock<Weak<parking_lot::RwLock<SessionState>>>>;

#[derive(Debug, Clone)]
pub struct SubPlans {
    session: SessionSlot,
}

impl SubPlans {
    pub fn new(session: SessionSlot) -> Self {
        SubPlans { session }
    }
}

impl OptimizerRule for SubPlans {
    fn name(&self) -> &str {
        "correlated_subplans"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        plan.transform_up_with_subqueries(|p| {
            if !matches!(p, LogicalPlan::Projection(_) | LogicalPlan::Filter(_)) {
                return Ok(Transformed::no(p));
            }
            p.map_expressions(|e| {
                e.transform_up(|e| match e {
                    Expr::ScalarSubquery(sq) if !sq.outer_ref_columns.is_empty() => self.call(sq, Kind::Scalar),
                    Expr::Exists(Exists { subquery, negated }) if !subquery.outer_ref_columns.is_empty() => {
                        let call = self.call(subquery, Kind::Exists)?.data;
                        Ok(Transformed::yes(if negated { Expr::Not(Box::new(call)) } else { call }))
                    }
                    e => Ok(Transformed::no(e)),
                })
            })
        })
    }
}

/// The same replacement, made before the optimizer for a subquery that reads the
/// outer row inside a derived table of its own (`(SELECT sum(s) FROM
/// generate_series(1, t1.x) s)`, psql's `\d+`): DataFusion's decorrelation treats that
/// table as uncorrelated and would plan a wrong join.
#[derive(Debug)]
pub struct LateralSubPlans(pub SubPlans);

fn has_lateral(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|p| {
        if matches!(p, LogicalPlan::Subquery(s) if !s.outer_ref_columns.is_empty()) {
            found = true;
            return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    found
}

impl datafusion::optimizer::AnalyzerRule for LateralSubPlans {
    fn name(&self) -> &str {
        "lateral_subplans"
    }

    fn analyze(&self, plan: LogicalPlan, _: &datafusion::common::config::ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| {
            if !matches!(p, LogicalPlan::Projection(_) | LogicalPlan::Filter(_)) {
                return Ok(Transformed::no(p));
            }
            p.map_expressions(|e| {
                e.transform_up(|e| match e {
                    Expr::ScalarSubquery(sq) if !sq.outer_ref_columns.is_empty() && has_lateral(&sq.subquery) => self.0.call(sq, Kind::Scalar),
                    Expr::Exists(Exists { subquery, negated }) if !subquery.outer_ref_columns.is_empty() && has_lateral(&subquery.subquery) => {
                        let call = self.0.call(subquery, Kind::Exists)?.data;
                        Ok(Transformed::yes(if negated { Expr::Not(Box::new(call)) } else { call }))
                    }
                    e => Ok(Transformed::no(e)),
                })
            })
        })
        .data()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Scalar,
    Exists,
}

impl SubPlans {
    fn call(&self, sq: Subquery, kind: Kind) -> Result<Transformed<Expr>> {
        // The outer columns, each once, as $1…$n inside the plan.
        let mut outer: Vec<(FieldRef, Column)> = vec![];
        let plan = sq
            .subquery
            .as_ref()
            .clone()
            .transform_up(|p| {
                // A derived table that read the outer row is an ordinary one once the
                // outer columns are parameters.
                let p = match p {
                    LogicalPlan::Subquery(s) => s.subquery.as_ref().clone(),
                    p => p,
                };
                p.map_expressions(|e| {
                    e.transform_up(|e| match e {
                        Expr::OuterReferenceColumn(field, column) => {
                            let i = match outer.iter().position(|(_, c)| c == &column) {
                                Some(i) => i,
                                None => {
                                    outer.push((field.clone(), column));
                                    outer.len() - 1
                                }
                            };
                            Ok(Transformed::yes(Expr::Placeholder(Placeholder { id: format!("${}", i + 1), field: Some(field) })))
                        }
                        e => Ok(Transformed::no(e)),
                    })
                })
            })
            .data()?;
        let return_field = match kind {
            Kind::Scalar => Arc::new(plan.schema().field(0).as_ref().clone().with_nullable(true)),
            Kind::Exists => Arc::new(datafusion::arrow::datatypes::Field::new("exists", DataType::Boolean, false)),
        };
        let udf = SubPlanUdf {
            plan: Arc::new(plan),
            kind,
            return_field,
            signature: Signature::variadic_any(Volatility::Volatile),
            session: self.session.clone(),
        };
        let args = outer.into_iter().map(|(_, c)| Expr::Column(c)).collect();
        Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(AsyncScalarUDF::new(Arc::new(udf)).into_scalar_udf()),
            args,
        ))))
    }
}

#[derive(Debug)]
struct SubPlanUdf {
    plan: Arc<LogicalPlan>,
    kind: Kind,
    return_field: FieldRef,
    signature: Signature,
    session: SessionSlot,
}

impl PartialEq for SubPlanUdf {
    fn eq(&self, other: &Self) -> bool {
        self.plan == other.plan && self.kind == other.kind
    }
}
impl Eq for SubPlanUdf {}
impl Hash for SubPlanUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.plan.hash(state);
        self.kind.hash(state);
    }
}

impl ScalarUDFImpl for SubPlanUdf {
    fn name(&self) -> &str {
        "subplan"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.return_field.data_type().clone())
    }

    fn return_field_from_args(&self, _: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(self.return_field.clone())
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(crate::error::Error::NotSupported("a correlated subquery in this position (use it in a SELECT list or WHERE)".into()).into_datafusion())
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for SubPlanUdf {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let state = self
            .session
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| crate::error::Error::Internal("a correlated subquery outlived its session".into()).into_datafusion())?;
        let state = state.read().clone();
        let columns: Vec<ArrayRef> = args.args.iter().map(|a| a.to_array(rows)).collect::<Result<_>>()?;
        let mut answers: HashMap<Vec<ScalarValue>, ScalarValue> = HashMap::new();
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let key = columns.iter().map(|c| ScalarValue::try_from_array(c, row)).collect::<Result<Vec<_>>>()?;
            if let Some(v) = answers.get(&key) {
                out.push(v.clone());
                continue;
            }
            let v = self.run(&state, key.clone()).await?;
            answers.insert(key, v.clone());
            out.push(v);
        }
        if out.is_empty() {
            return Ok(ColumnarValue::Array(datafusion::arrow::array::new_empty_array(self.return_field.data_type())));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}

impl SubPlanUdf {
    async fn run(&self, state: &SessionState, params: Vec<ScalarValue>) -> Result<ScalarValue> {
        let plan = self.plan.as_ref().clone().with_param_values(params)?;
        let physical = state.create_physical_plan(&plan).await?;
        let limit = match self.kind {
            Kind::Exists => 1,
            Kind::Scalar => 2,
        };
        let mut stream = datafusion::physical_plan::execute_stream(physical, state.task_ctx())?;
        let mut found: Vec<ScalarValue> = vec![];
        use futures::StreamExt;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            for i in 0..batch.num_rows() {
                if batch.num_columns() > 0 && self.kind == Kind::Scalar {
                    found.push(ScalarValue::try_from_array(batch.column(0), i)?);
                } else {
                    found.push(ScalarValue::Null);
                }
                if found.len() >= limit {
                    break;
                }
            }
            if found.len() >= limit {
                break;
            }
        }
        Ok(match self.kind {
            Kind::Exists => ScalarValue::Boolean(Some(!found.is_empty())),
            Kind::Scalar => match found.len() {
                0 => ScalarValue::try_from(self.return_field.data_type())?,
                1 => found.remove(0),
                _ => {
                    return Err(datafusion::error::DataFusionError::External(Box::new(crate::error::Error::State(
                        "21000",
                        "more than one row returned by a subquery used as an expression".into(),
                    ))))
                }
            },
        })
    }
}
