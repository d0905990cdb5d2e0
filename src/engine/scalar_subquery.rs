//! Correlated scalar subqueries that are not aggregates, as PostgreSQL runs them (#14).
//!
//! psql's `\d` and every ORM's reflection ask for a column's default with
//! `(SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d WHERE d.adrelid = a.attrelid
//! AND d.adnum = a.attnum)` in a select list. DataFusion plans a correlated scalar
//! subquery only when it is an aggregate (it decorrelates it into a join grouped by the
//! correlation columns), and refuses this one. PostgreSQL's meaning is: the one row's
//! value, NULL for no row, error 21000 for more than one. [`AggregateScalarSubqueries`]
//! makes the subquery that aggregate: `single_value(x)` over its rows, which answers
//! exactly that, and DataFusion decorrelates it like any other.
//!
//! DataFusion pulls a correlated predicate above an aggregate only when it is
//! `inner column = outer column`. Two other shapes PostgreSQL clients send are made
//! into that one first, each an exact rewrite:
//!
//! - a predicate on outer columns only (`… AND a.atthasdef`) leaves the subquery, which
//!   becomes `CASE WHEN a.atthasdef THEN (subquery) END` (no row and NULL agree; done
//!   only for the subqueries made aggregates here, where that holds);
//! - in `c.oid = a.attcollation AND a.attcollation <> t.typcollation`, the outer column
//!   equals an inner one in every row that passes, so the second becomes
//!   `c.oid <> t.typcollation`, a predicate of the subquery alone.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Column, ExprSchema, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Expr, LogicalPlan, LogicalPlanBuilder, Operator, Signature, Subquery, Volatility,
};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::optimizer::AnalyzerRule;

const TOO_MANY_ROWS: &str = "more than one row returned by a subquery used as an expression";

/// The analyzer rule; it runs before DataFusion's checks of subqueries.
#[derive(Debug, Default)]
pub struct AggregateScalarSubqueries;

impl AnalyzerRule for AggregateScalarSubqueries {
    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| {
            p.map_expressions(|e| {
                e.transform_up(|e| match e {
                    Expr::ScalarSubquery(sq) if needs_aggregate(&sq) => {
                        let (sq, hoisted) = hoist_outer_predicates(substitute_outer_columns(sq)?)?;
                        let sq = if needs_aggregate(&sq) { aggregate(sq)? } else { sq };
                        Ok(Transformed::yes(match hoisted {
                            Some(when) => Expr::Case(datafusion::logical_expr::expr::Case {
                                expr: None,
                                when_then_expr: vec![(Box::new(when), Box::new(Expr::ScalarSubquery(sq)))],
                                else_expr: None,
                            }),
                            None => Expr::ScalarSubquery(sq),
                        }))
                    }
                    Expr::ScalarSubquery(sq) if !sq.outer_ref_columns.is_empty() => {
                        Ok(Transformed::yes(Expr::ScalarSubquery(substitute_outer_columns(sq)?)))
                    }
                    e => Ok(Transformed::no(e)),
                })
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "aggregate_scalar_subqueries"
    }
}

fn needs_aggregate(sq: &Subquery) -> bool {
    if sq.outer_ref_columns.is_empty() || sq.subquery.max_rows().is_some_and(|n| n <= 1) || sq.subquery.schema().fields().len() != 1 {
        return false;
    }
    let mut inner = sq.subquery.as_ref();
    loop {
        inner = match inner {
            LogicalPlan::Projection(p) => p.input.as_ref(),
            LogicalPlan::SubqueryAlias(a) => a.input.as_ref(),
            LogicalPlan::Filter(f) if matches!(f.input.as_ref(), LogicalPlan::Aggregate(_)) => f.input.as_ref(),
            LogicalPlan::Aggregate(a) => return a.aggr_expr.is_empty(),
            _ => return true,
        }
    }
}

fn with_plan(sq: Subquery, plan: LogicalPlan) -> Subquery {
    let outer_ref_columns = plan.all_out_ref_exprs();
    Subquery { subquery: Arc::new(plan), outer_ref_columns, spans: sq.spans }
}

/// In each filter of the subquery (not of subqueries within it), replace an outer
/// column that a conjunct equates to an inner column of the same type by that inner
/// column, in the other conjuncts.
fn substitute_outer_columns(sq: Subquery) -> Result<Subquery> {
    let plan = sq.subquery.as_ref().clone().transform_up(|p| {
        let LogicalPlan::Filter(f) = &p else { return Ok(Transformed::no(p)) };
        let conjuncts: Vec<Expr> = split_conjunction(&f.predicate).into_iter().cloned().collect();
        let mut equal = std::collections::HashMap::new();
        for c in &conjuncts {
            if let Expr::BinaryExpr(b) = c {
                if b.op == Operator::Eq {
                    match (b.left.as_ref(), b.right.as_ref()) {
                        (Expr::Column(inner), Expr::OuterReferenceColumn(field, outer)) | (Expr::OuterReferenceColumn(field, outer), Expr::Column(inner))
                            if f.input.schema().field_from_column(inner).is_ok_and(|i| i.data_type() == field.data_type()) =>
                        {
                            equal.entry(outer.clone()).or_insert_with(|| inner.clone());
                        }
                        _ => {}
                    }
                }
            }
        }
        if equal.is_empty() {
            return Ok(Transformed::no(p));
        }
        let mut changed = false;
        let rewritten = conjuncts
            .into_iter()
            .map(|c| {
                if is_correlation(&c) {
                    return Ok(c);
                }
                let t = c.transform(|e| match &e {
                    Expr::OuterReferenceColumn(_, outer) => match equal.get(outer) {
                        Some(inner) => Ok(Transformed::yes(Expr::Column(inner.clone()))),
                        None => Ok(Transformed::no(e)),
                    },
                    _ => Ok(Transformed::no(e)),
                })?;
                changed |= t.transformed;
                Ok(t.data)
            })
            .collect::<Result<Vec<_>>>()?;
        if !changed {
            return Ok(Transformed::no(p));
        }
        let predicate = conjunction(rewritten).expect("a filter has a predicate");
        Ok(Transformed::yes(LogicalPlan::Filter(datafusion::logical_expr::Filter::try_new(predicate, f.input.clone())?)))
    })?;
    Ok(if plan.transformed { with_plan(sq, plan.data) } else { sq })
}

/// `inner column = outer column`, which DataFusion pulls up itself.
fn is_correlation(e: &Expr) -> bool {
    matches!(e, Expr::BinaryExpr(b) if b.op == Operator::Eq && matches!(
        (b.left.as_ref(), b.right.as_ref()),
        (Expr::Column(_), Expr::OuterReferenceColumn(..)) | (Expr::OuterReferenceColumn(..), Expr::Column(_))
    ))
}

/// Take out of the filters at the top of the subquery (under projections and aliases
/// only) the conjuncts that read outer columns and no column of the subquery, and
/// return them as one predicate over the outer plan's columns.
fn hoist_outer_predicates(sq: Subquery) -> Result<(Subquery, Option<Expr>)> {
    fn go(plan: &LogicalPlan, hoisted: &mut Vec<Expr>) -> Result<Option<LogicalPlan>> {
        match plan {
            LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => {
                let input = plan.inputs()[0];
                match go(input, hoisted)? {
                    Some(new_input) => Ok(Some(plan.with_new_exprs(plan.expressions(), vec![new_input])?)),
                    None => Ok(None),
                }
            }
            LogicalPlan::Filter(f) => {
                let (outer_only, rest): (Vec<Expr>, Vec<Expr>) = split_conjunction(&f.predicate)
                    .into_iter()
                    .cloned()
                    .partition(|c| c.contains_outer() && c.column_refs().is_empty());
                if outer_only.is_empty() {
                    return Ok(None);
                }
                hoisted.extend(outer_only);
                let input = f.input.as_ref().clone();
                Ok(Some(match conjunction(rest) {
                    Some(p) => LogicalPlan::Filter(datafusion::logical_expr::Filter::try_new(p, Arc::new(input))?),
                    None => input,
                }))
            }
            _ => Ok(None),
        }
    }
    let mut hoisted = vec![];
    let Some(plan) = go(sq.subquery.as_ref(), &mut hoisted)? else { return Ok((sq, None)) };
    let when = conjunction(hoisted)
        .map(|w| {
            w.transform(|e| match e {
                Expr::OuterReferenceColumn(_, c) => Ok(Transformed::yes(Expr::Column(c))),
                e => Ok(Transformed::no(e)),
            })
            .data()
        })
        .transpose()?;
    Ok((with_plan(sq, plan), when))
}

fn aggregate(sq: Subquery) -> Result<Subquery> {
    let schema = sq.subquery.schema().clone();
    let (qualifier, field) = schema.qualified_field(0);
    let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
    let plan = LogicalPlanBuilder::from(sq.subquery.as_ref().clone())
        .aggregate(Vec::<Expr>::new(), vec![single_value().call(vec![column]).alias(field.name())])?
        .build()?;
    Ok(sq.with_plan(Arc::new(plan)))
}

/// `single_value(x)`: x of the group's one row, NULL for none, 21000 for more.
pub fn single_value() -> AggregateUDF {
    AggregateUDF::from(SingleValue { signature: Signature::any(1, Volatility::Immutable) })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SingleValue {
    signature: Signature,
}

impl AggregateUDFImpl for SingleValue {
    fn name(&self) -> &str {
        "single_value"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SingleValueAccumulator { value: ScalarValue::try_from(args.return_field.data_type())?, rows: 0 }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(args.return_field.as_ref().clone().with_name(format!("{}[value]", args.name)).with_nullable(true)),
            Arc::new(Field::new(format!("{}[rows]", args.name), DataType::UInt64, false)),
        ])
    }
}

#[derive(Debug)]
struct SingleValueAccumulator {
    value: ScalarValue,
    rows: u64,
}

impl SingleValueAccumulator {
    fn add(&mut self, values: &ArrayRef, rows: u64) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        self.rows += rows;
        if self.rows > 1 {
            return Err(datafusion::error::DataFusionError::External(Box::new(crate::error::Error::State("21000", TOO_MANY_ROWS.into()))));
        }
        self.value = ScalarValue::try_from_array(values, 0)?;
        Ok(())
    }
}

impl Accumulator for SingleValueAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], values[0].len() as u64)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let rows = states[1].as_primitive::<UInt64Type>();
        for i in 0..rows.len() {
            let n = rows.value(i);
            if n > 0 {
                self.add(&states[0].slice(i, 1), n)?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.value.clone(), ScalarValue::UInt64(Some(self.rows))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.value.clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size() - std::mem::size_of_val(&self.value)
    }
}
