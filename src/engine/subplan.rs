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
use datafusion::arrow::array::{Array, ArrayRef};
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
            p.map_expressions(|e| self.replace(e, None, &|_| true))
        })
    }
}

/// The same replacement, made before the optimizer for a subquery that reads the
/// outer row inside a derived table of its own (`(SELECT sum(s) FROM
/// generate_series(1, t1.x) s)`, psql's `\d+`): DataFusion's decorrelation treats that
/// table as uncorrelated and would plan a wrong join.
#[derive(Debug)]
pub struct LateralSubPlans(pub SubPlans);

/// Does the subquery read the outer row inside a derived table, or inside a recursive
/// CTE (asyncpg's `WITH RECURSIVE typebases … WHERE t2.oid = t.oid`)? DataFusion
/// decorrelates neither, and one such subquery in a SELECT list kept it from
/// decorrelating the others there too.
fn has_lateral(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut found = false;
    let _ = plan.apply(|p| {
        let lateral = match p {
            LogicalPlan::Subquery(s) => !s.outer_ref_columns.is_empty(),
            LogicalPlan::RecursiveQuery(_) => reads_outer(p),
            _ => false,
        };
        if lateral {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Does any expression of `plan` or its inputs refer to an outer column?
fn reads_outer(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut found = false;
    let _ = plan.apply(|p| {
        p.apply_expressions(|e| {
            e.apply(|e| {
                if matches!(e, Expr::OuterReferenceColumn(..)) {
                    found = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
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
            p.map_expressions(|e| self.0.replace(e, None, &|sq| has_lateral(&sq.subquery)))
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
    /// Replace the correlated subqueries of `e` that `wanted` picks by SubPlan calls.
    /// One inside `CASE WHEN c THEN … END` gets `c` as its guard: it runs only for the
    /// rows where `c` holds, as PostgreSQL evaluates only the branch taken (DataFusion
    /// computes an async function's arguments for the whole batch before the CASE).
    /// asyncpg's type introspection has three such subqueries for every pg_type row,
    /// each needed only for a domain or a composite type.
    fn replace(&self, e: Expr, guard: Option<&Expr>, wanted: &dyn Fn(&Subquery) -> bool) -> Result<Transformed<Expr>> {
        match e {
            Expr::Case(case) if case.expr.is_none() => {
                let mut changed = false;
                let mut when_then = Vec::with_capacity(case.when_then_expr.len());
                for (when, then) in case.when_then_expr {
                    let when = self.replace(*when, guard, wanted)?;
                    // A condition that itself runs a SubPlan cannot be a guard: an async
                    // function's arguments cannot call another (DataFusion refuses).
                    let branch_guard = match (guard, when.transformed) {
                        (g, true) => g.cloned(),
                        (Some(g), false) => Some(g.clone().and(when.data.clone())),
                        (None, false) => Some(when.data.clone()),
                    };
                    let then = self.replace(*then, branch_guard.as_ref(), wanted)?;
                    changed |= when.transformed || then.transformed;
                    when_then.push((Box::new(when.data), Box::new(then.data)));
                }
                let else_expr = match case.else_expr {
                    Some(e) => {
                        let e = self.replace(*e, guard, wanted)?;
                        changed |= e.transformed;
                        Some(Box::new(e.data))
                    }
                    None => None,
                };
                let case = Expr::Case(datafusion::logical_expr::expr::Case { expr: None, when_then_expr: when_then, else_expr });
                Ok(if changed { Transformed::yes(case) } else { Transformed::no(case) })
            }
            Expr::ScalarSubquery(sq) if !sq.outer_ref_columns.is_empty() && wanted(&sq) => self.call(sq, Kind::Scalar, guard),
            Expr::Exists(Exists { subquery, negated }) if !subquery.outer_ref_columns.is_empty() && wanted(&subquery) => {
                let call = self.call(subquery, Kind::Exists, guard)?.data;
                Ok(Transformed::yes(if negated { Expr::Not(Box::new(call)) } else { call }))
            }
            e => e.map_children(|c| self.replace(c, guard, wanted)),
        }
    }

    fn call(&self, sq: Subquery, kind: Kind, guard: Option<&Expr>) -> Result<Transformed<Expr>> {
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
            guarded: guard.is_some(),
            optimized: OnceLock::new(),
        };
        let args = guard.cloned().into_iter().chain(outer.into_iter().map(|(_, c)| Expr::Column(c))).collect();
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
    /// The first argument says whether the row needs the answer (a CASE branch's
    /// condition); the others are the outer columns.
    guarded: bool,
    /// `plan` through the session's optimizer, made at the first run: each run then
    /// only binds its parameters and plans the physical side (optimizing once per
    /// outer row was most of a SubPlan's cost).
    optimized: OnceLock<LogicalPlan>,
}

impl PartialEq for SubPlanUdf {
    fn eq(&self, other: &Self) -> bool {
        self.plan == other.plan && self.kind == other.kind && self.guarded == other.guarded
    }
}
impl Eq for SubPlanUdf {}
impl Hash for SubPlanUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.plan.hash(state);
        self.kind.hash(state);
        self.guarded.hash(state);
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
        let mut columns: Vec<ArrayRef> = args.args.iter().map(|a| a.to_array(rows)).collect::<Result<_>>()?;
        let guard = if self.guarded { Some(columns.remove(0)) } else { None };
        let guard = guard.as_ref().map(|g| datafusion::arrow::array::AsArray::as_boolean_opt(g.as_ref())).map(|g| g.ok_or_else(|| crate::error::Error::Internal("a SubPlan guard that is not boolean".into()).into_datafusion())).transpose()?;
        let skipped = match self.kind {
            Kind::Exists => ScalarValue::Boolean(Some(false)),
            Kind::Scalar => ScalarValue::try_from(self.return_field.data_type())?,
        };
        let mut answers: HashMap<Vec<ScalarValue>, ScalarValue> = HashMap::new();
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if guard.is_some_and(|g| g.is_null(row) || !g.value(row)) {
                out.push(skipped.clone());
                continue;
            }
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
        let optimized = match self.optimized.get() {
            Some(p) => p.clone(),
            None => {
                let p = state.optimize(&self.plan)?;
                let _ = self.optimized.set(p.clone());
                p
            }
        };
        let plan = optimized.with_param_values(params)?;
        let physical = state.query_planner().create_physical_plan(&plan, state).await?;
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
