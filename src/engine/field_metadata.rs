//! Catalog columns say which PostgreSQL type they travel as through Arrow field
//! metadata (pg_types.rs: `pg.oid_alias` for oid columns). DataFusion drops that
//! metadata in two places clients meet: a CASE (its field is computed from the type
//! alone) and `array_agg` (a list of oids became `integer[]`). asyncpg's type
//! introspection query has both (`CASE WHEN t.typtype = 'c' THEN (SELECT
//! array_agg(ia.atttypid …)) ELSE NULL END`): with its result column typed integer[],
//! which asyncpg decodes only after introspecting that type too, every asyncpg
//! session recursed until it failed on its first vector or array value. The analyzer
//! rule here puts the metadata back with an identity function whose result field
//! carries it.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, Projection, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// The metadata keys this rule carries (pg_types.rs reads them): oid columns, and
/// json/jsonb (udf/json.rs), which a cast of text to json marks; DataFusion drops
/// such a cast (text to text) and its mark with it when it simplifies.
const KEYS: &[&str] = &["pg.oid_alias", crate::udf::vector::VECTOR_MARK, crate::udf::user_types::TYPE_OID, crate::udf::user_types::TYPE_NAME, crate::udf::user_types::TYPE_SCHEMA, crate::udf::user_types::DOMAIN];

/// Its argument, unchanged, with `metadata` on its result field.
#[derive(Debug, PartialEq, Eq, Hash)]
struct WithMetadata {
    metadata: Vec<(String, String)>,
    signature: Signature,
}

impl ScalarUDFImpl for WithMetadata {
    fn name(&self) -> &str {
        "lakehouse_with_field_metadata"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let field = args.arg_fields[0].as_ref().clone();
        let mut metadata = field.metadata().clone();
        metadata.extend(self.metadata.iter().cloned());
        Ok(Arc::new(field.with_metadata(metadata)))
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(args.args.remove(0))
    }
}

fn with_metadata(e: Expr, metadata: Vec<(String, String)>) -> Expr {
    let udf = WithMetadata { metadata, signature: Signature::any(1, Volatility::Immutable) };
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(ScalarUDF::new_from_impl(udf)), vec![e]))
}

/// The carried metadata of `e`'s field.
fn carried(e: &Expr, schema: &DFSchema) -> Vec<(String, String)> {
    let Ok((_, field)) = e.to_field(schema) else { return vec![] };
    let mut out: Vec<(String, String)> =
        field.metadata().iter().filter(|(k, _)| KEYS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    out.sort();
    out
}

/// The metadata every non-NULL branch of a CASE has, when its own field lacks it.
fn case_metadata(e: &Expr, schema: &DFSchema) -> Option<Vec<(String, String)>> {
    let Expr::Case(case) = e else { return None };
    if !carried(e, schema).is_empty() {
        return None;
    }
    let branches = case.when_then_expr.iter().map(|(_, t)| t.as_ref()).chain(case.else_expr.as_deref());
    let mut found: Option<Vec<(String, String)>> = None;
    for b in branches {
        if matches!(b, Expr::Literal(v, _) if v.is_null()) {
            continue;
        }
        let m = carried(b, schema);
        match &found {
            _ if m.is_empty() => return None,
            None => found = Some(m),
            Some(f) if *f != m => return None,
            Some(_) => {}
        }
    }
    found
}

/// A cast whose target field carries metadata (`'{}'::json`).
fn cast_metadata(e: &Expr) -> Option<Vec<(String, String)>> {
    let Expr::Cast(c) = e else { return None };
    let mut m: Vec<(String, String)> =
        c.field.metadata().iter().filter(|(k, _)| KEYS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    m.sort();
    (!m.is_empty()).then_some(m)
}

/// An aggregate output that is `array_agg` over a column with carried metadata.
fn array_agg_metadata(plan: &LogicalPlan, column: &datafusion::common::Column) -> Option<Vec<(String, String)>> {
    let LogicalPlan::Aggregate(agg) = plan else { return None };
    let i = agg.schema.index_of_column(column).ok()?;
    let e = agg.aggr_expr.get(i.checked_sub(agg.group_expr.len())?)?;
    let Expr::AggregateFunction(AggregateFunction { func, params }) = e.clone().unalias_nested().data else { return None };
    if func.name() != "array_agg" {
        return None;
    }
    let m = carried(params.args.first()?, agg.input.schema());
    (!m.is_empty()).then_some(m)
}

#[derive(Debug, Default)]
pub struct KeepFieldMetadata;

impl AnalyzerRule for KeepFieldMetadata {
    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| {
            let LogicalPlan::Projection(proj) = &p else {
                // Nodes above a rewritten one keep the schema they were built with:
                // recomputed, so the metadata reaches the statement's result.
                let before = p.schema().clone();
                let p = p.recompute_schema()?;
                let changed = p.schema() != &before;
                return Ok(if changed { Transformed::yes(p) } else { Transformed::no(p) });
            };
            let schema = proj.input.schema().clone();
            let mut changed = false;
            let exprs = proj
                .expr
                .iter()
                .map(|e| {
                    let (inner, alias) = match e {
                        Expr::Alias(a) => (a.expr.as_ref().clone(), Some(a.name.clone())),
                        other => (other.clone(), None),
                    };
                    let keep = case_metadata(&inner, &schema).or_else(|| cast_metadata(&inner)).or_else(|| match &inner {
                        Expr::Column(c) => array_agg_metadata(&proj.input, c),
                        _ => None,
                    });
                    let Some(metadata) = keep else { return e.clone() };
                    changed = true;
                    match (alias, &inner) {
                        (Some(name), _) => with_metadata(inner, metadata).alias(name),
                        (None, Expr::Column(c)) => {
                            let c = c.clone();
                            with_metadata(inner, metadata).alias_qualified(c.relation, c.name)
                        }
                        (None, _) => {
                            let name = inner.schema_name().to_string();
                            with_metadata(inner, metadata).alias(name)
                        }
                    }
                })
                .collect::<Vec<_>>();
            let rebuilt = LogicalPlan::Projection(Projection::try_new(exprs, proj.input.clone())?);
            Ok(if changed || rebuilt.schema() != p.schema() { Transformed::yes(rebuilt) } else { Transformed::no(p) })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "keep_field_metadata"
    }
}
