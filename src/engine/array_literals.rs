//! PostgreSQL's array text, `'{1,2}'` and `'{a,"b c",NULL}'`, where an array is
//! expected (#14): compared with an array column (`pol.polroles = '{0}'` in psql's `\d`)
//! or cast to an array type (`'{a,"b c"}'::text[]`). DataFusion would compare an array
//! with a string (an error) and cast the text without PostgreSQL's quoting rules.
//! [`ArrayLiterals`] (an expression planner) parses the text compared with an array
//! into an array value of the other side's type; [`rewrite_casts`] makes a cast of the
//! text an `ARRAY[…]` of its elements. Text that is not an array literal is left for
//! DataFusion to report.

use datafusion::arrow::datatypes::{DataType, FieldRef};
use std::ops::ControlFlow;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, ExprSchema, Result, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::AnalyzerRule;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::sql::sqlparser::ast::{
    Array, DataType as SqlType, Expr as SqlExpr, Statement, Value, ValueWithSpan, VisitMut, VisitorMut,
};

#[derive(Debug, Default)]
pub struct ArrayLiterals;

impl ExprPlanner for ArrayLiterals {
    fn plan_binary_op(&self, mut b: RawBinaryExpr, schema: &DFSchema) -> Result<PlannerResult<RawBinaryExpr>> {
        use datafusion::sql::sqlparser::ast::BinaryOperator as Op;
        if !matches!(b.op, Op::Eq | Op::NotEq | Op::Lt | Op::LtEq | Op::Gt | Op::GtEq | Op::AtArrow | Op::ArrowAt) {
            return Ok(PlannerResult::Original(b));
        }
        for right in [true, false] {
            let (this, other) = if right { (&b.right, &b.left) } else { (&b.left, &b.right) };
            let Some(text) = text_literal(this) else { continue };
            let Ok(other_type) = other.get_type(schema as &dyn ExprSchema) else { continue };
            if element_field(&other_type).is_none() {
                continue;
            }
            if let Some(value) = parse_as(text, &other_type)? {
                *(if right { &mut b.right } else { &mut b.left }) = Expr::Literal(value, None);
            }
            break;
        }
        Ok(PlannerResult::Original(b))
    }
}

/// Casts of text constants to array types that DataFusion added itself (an INSERT's
/// `VALUES ('{1,2}')` into an `int[]` column).
#[derive(Debug, Default)]
pub struct ArrayLiteralCasts;

impl AnalyzerRule for ArrayLiteralCasts {
    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| {
            p.map_expressions(|e| {
                e.transform_up(|e| match e {
                    Expr::Cast(c) if element_field(c.field.data_type()).is_some() && text_literal(&c.expr).is_some() => {
                        match parse_as(text_literal(&c.expr).unwrap_or_default(), c.field.data_type())? {
                            Some(value) => Ok(Transformed::yes(Expr::Literal(value, None))),
                            None => Ok(Transformed::no(Expr::Cast(c))),
                        }
                    }
                    e => Ok(Transformed::no(e)),
                })
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "array_literal_casts"
    }
}

fn text_literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _) => Some(s),
        _ => None,
    }
}

fn element_field(t: &DataType) -> Option<&FieldRef> {
    match t {
        DataType::List(f) | DataType::LargeList(f) => Some(f),
        _ => None,
    }
}

/// `'{a,"b c",NULL}'::text[]` (or `CAST(… AS t[])`) becomes `ARRAY['a','b c',NULL]::text[]`
/// in the statement, before DataFusion plans it.
pub fn rewrite_casts(s: &mut Statement) {
    struct Casts;
    impl VisitorMut for Casts {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut SqlExpr) -> ControlFlow<()> {
            if let SqlExpr::Cast { expr, data_type: SqlType::Array(_), .. } = e {
                if let SqlExpr::Value(ValueWithSpan { value: Value::SingleQuotedString(text), .. }) = expr.as_ref() {
                    if let Some(elements) = parse(text) {
                        let elem = elements
                            .into_iter()
                            .map(|x| SqlExpr::Value(x.map(Value::SingleQuotedString).unwrap_or(Value::Null).into()))
                            .collect();
                        **expr = SqlExpr::Array(Array { elem, named: true });
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = s.visit(&mut Casts);
}

/// The array value of `text` as `list_type`; None when `text` is not PostgreSQL array
/// text of one dimension.
fn parse_as(text: &str, list_type: &DataType) -> Result<Option<ScalarValue>> {
    let Some(field) = element_field(list_type) else { return Ok(None) };
    let Some(elements) = parse(text) else { return Ok(None) };
    let values = elements
        .into_iter()
        .map(|e| match e {
            None => ScalarValue::try_from(field.data_type()),
            Some(s) => ScalarValue::Utf8(Some(s)).cast_to(field.data_type()),
        })
        .collect::<Result<Vec<_>>>()?;
    let list = ScalarValue::new_list_nullable(&values, field.data_type());
    Ok(Some(ScalarValue::List(list).cast_to(list_type)?))
}

/// The elements of one-dimensional PostgreSQL array text (`{a,"b c",NULL}`): None for
/// an unquoted NULL, quoted elements with their backslash escapes undone.
pub fn parse(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut out = vec![];
    if inner.trim().is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut element = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => element.push(chars.next()?),
                    c => element.push(c),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '}' || c == '"' {
                    return None; // more dimensions, or misplaced quotes
                }
                if c == '\\' {
                    chars.next();
                    element.push(chars.next()?);
                    continue;
                }
                element.push(c);
                chars.next();
            }
            let trimmed = element.trim_end().to_string();
            if trimmed.is_empty() {
                return None;
            }
            element = trimmed;
        }
        out.push(if !quoted && element.eq_ignore_ascii_case("null") { None } else { Some(element) });
        match chars.next() {
            None => return Some(out),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_array_text() {
        let s = |v: &[Option<&str>]| v.iter().map(|x| x.map(String::from)).collect::<Vec<_>>();
        assert_eq!(parse("{}"), Some(vec![]));
        assert_eq!(parse("{0}"), Some(s(&[Some("0")])));
        assert_eq!(parse("{a, \"b c\" ,NULL,\"NULL\",d\\,e}"), Some(s(&[Some("a"), Some("b c"), None, Some("NULL"), Some("d,e")])));
        assert_eq!(parse("{\"x\\\"y\"}"), Some(s(&[Some("x\"y")])));
        assert_eq!(parse("{{1},{2}}"), None);
        assert_eq!(parse("{1,,2}"), None);
        assert_eq!(parse("1,2"), None);
        assert_eq!(parse("{\"unterminated}"), None);
    }

    #[test]
    fn typed_values() {
        let t = DataType::List(std::sync::Arc::new(datafusion::arrow::datatypes::Field::new("item", DataType::Int32, true)));
        let v = parse_as("{1,NULL,3}", &t).unwrap().unwrap();
        assert_eq!(v.data_type(), t);
        assert!(parse_as("{x}", &t).is_err());
    }
}
