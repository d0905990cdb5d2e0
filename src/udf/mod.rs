//! Scalar functions and table functions. `register_all` is the whole SQL function
//! surface this folder adds: version/psql helpers, the vector type and distances
//! (vector_search is registered by the engine, which owns the index registry).

pub mod advisory_lock;
pub mod backend;
pub mod distance;
pub mod embed;
pub mod has_privilege;
pub mod json;
pub mod json_ops;
pub mod pg_catalog_fns;
pub mod pg_sleep;
pub mod pg_text;
pub mod pg_typeof;
pub mod pii;
pub mod psql_compat;
pub mod quote_literal;
pub mod sequence;
pub mod user_types;
pub mod vector;
pub mod vector_aggregates;
pub mod vector_math;
pub mod vector_ops;
pub mod vector_search;
pub mod version;

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::FieldRef;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, DmlStatement, Expr, LogicalPlan, Projection, ScalarFunctionArgs, WriteOp};
use datafusion::prelude::SessionContext;

/// A function's result: one scalar when every argument was a constant and it has one
/// row, else the array.
pub(crate) fn one_or_many(a: ArrayRef, args: &ScalarFunctionArgs) -> ColumnarValue {
    if a.len() == 1 && args.args.iter().all(|x| matches!(x, ColumnarValue::Scalar(_))) {
        if let Ok(s) = ScalarValue::try_from_array(&a, 0) {
            return ColumnarValue::Scalar(s);
        }
    }
    ColumnarValue::Array(a)
}

/// Every INSERT in `plan` (COPY FROM is one) with each column of its rows passed
/// through `check(target column's field, column)` where that gives an expression: the
/// analyzer rules that keep a column's values valid for its type (json_ops::JsonInput,
/// user_types::UserTypeInput) share this.
pub(crate) fn check_inserts(plan: LogicalPlan, check: impl Fn(&FieldRef, Expr) -> Option<Expr>) -> DfResult<LogicalPlan> {
    plan.transform_up(|p| {
        let LogicalPlan::Dml(dml) = &p else { return Ok(Transformed::no(p)) };
        let table = dml.target.schema();
        let input_schema = dml.input.schema().clone();
        if !matches!(dml.op, WriteOp::Insert(_)) || input_schema.fields().len() != table.fields().len() {
            return Ok(Transformed::no(p));
        }
        let mut changed = false;
        let exprs: Vec<Expr> = input_schema
            .columns()
            .into_iter()
            .zip(table.fields().iter())
            .map(|(c, f)| match check(f, Expr::Column(c.clone())) {
                Some(e) => {
                    changed = true;
                    e.alias(c.name)
                }
                None => Expr::Column(c),
            })
            .collect();
        if !changed {
            return Ok(Transformed::no(p));
        }
        let input = Arc::new(LogicalPlan::Projection(Projection::try_new(exprs, dml.input.clone())?));
        Ok(Transformed::yes(LogicalPlan::Dml(DmlStatement::new(dml.table_name.clone(), dml.target.clone(), dml.op.clone(), input))))
    })
    .map(|t| t.data)
}

pub fn register_all(ctx: &SessionContext) {
    ctx.register_udf(version::version_udf());
    ctx.register_udf(pii::PiiKindUdf::udf());
    ctx.register_udf(pg_sleep::udf());
    ctx.register_udf(pg_typeof::udf());
    for f in json::functions().into_iter().chain(json_ops::functions()) {
        ctx.register_udf(f);
    }
    for f in quote_literal::functions() {
        ctx.register_udf(f);
    }
    for f in psql_compat::functions() {
        ctx.register_udf(f);
    }
    for f in vector_math::functions() {
        ctx.register_udf(f);
    }
    for f in vector_aggregates::functions() {
        ctx.register_udaf(f);
    }
    // DataFusion ships array functions named inner_product and cosine_distance (with
    // aliases). Sessions are built by re-registering every function of the template
    // in hash order, so a leftover alias would put DataFusion's back under our name
    // at random: remove them with all their aliases first.
    let ours: Vec<datafusion::logical_expr::ScalarUDF> =
        std::iter::once(vector::vector_udf()).chain(distance::functions()).collect();
    for f in &ours {
        ctx.deregister_udf(f.name());
    }
    for f in ours {
        ctx.register_udf(f);
    }
}
