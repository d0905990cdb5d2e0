//! pgvector's operators, planned as calls to the distance functions:
//! `<->` l2_distance, `<=>` cosine_distance, `<#>` negative_inner_product,
//! `<+>` l1_distance.
//!
//! The PostgreSQL dialect of sqlparser reads `<->` as a geometric operator, `<=>` as
//! MySQL's null-safe equality, `<#>` as a custom operator, and cannot tokenize `<+>` at
//! all (it splits it into `<`, `+`, `>`). [`rewrite_l1_operator`] renames `<+>` to
//! `<~+>` outside literals and comments before parsing; the planner maps it back.
//! `<=>` stays null-safe equality unless one side is a vector.

use std::sync::Arc;

use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{Expr, ExprSchemable, ScalarUDF};
use datafusion::sql::sqlparser::ast::BinaryOperator;

use super::vector::is_vector_like;

/// What `<+>` is renamed to before parsing.
pub const L1_OPERATOR_SPELLING: &str = "<~+>";

#[derive(Debug)]
pub struct VectorOperatorPlanner {
    l2: Arc<ScalarUDF>,
    cosine: Arc<ScalarUDF>,
    neg_ip: Arc<ScalarUDF>,
    l1: Arc<ScalarUDF>,
}

impl VectorOperatorPlanner {
    pub fn new(functions: &[ScalarUDF]) -> Self {
        let get = |n: &str| Arc::new(functions.iter().find(|f| f.name() == n).expect("distance function").clone());
        VectorOperatorPlanner {
            l2: get("l2_distance"),
            cosine: get("cosine_distance"),
            neg_ip: get("negative_inner_product"),
            l1: get("l1_distance"),
        }
    }
}

fn looks_like_vector(e: &Expr, schema: &DFSchema) -> bool {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _) => {
            s.trim_start().starts_with('[')
        }
        _ => e.get_type(schema).map(|t| is_vector_like(&t)).unwrap_or(false),
    }
}

/// An untyped `$n` next to a vector is a vector parameter: drivers then send
/// `float4[]` (or pgvector's text form, which the Bind path parses).
fn type_placeholder(e: Expr) -> Expr {
    match e {
        Expr::Placeholder(mut p) if p.field.is_none() => {
            let item = Arc::new(datafusion::arrow::datatypes::Field::new("item", datafusion::arrow::datatypes::DataType::Float32, true));
            p.field = Some(Arc::new(datafusion::arrow::datatypes::Field::new(
                "",
                datafusion::arrow::datatypes::DataType::List(item),
                true,
            )));
            Expr::Placeholder(p)
        }
        other => other,
    }
}

/// Is `e` of pgvector's `vector` type (a `vector(n)` column, a cast to `vector`, a
/// function returning one) — not any float array?
fn is_vector_typed(e: &Expr, schema: &DFSchema) -> bool {
    match e.to_field(schema) {
        Ok((_, f)) => match f.data_type() {
            datafusion::arrow::datatypes::DataType::FixedSizeList(item, _) => {
                item.data_type() == &datafusion::arrow::datatypes::DataType::Float32
            }
            _ => super::vector::is_marked_vector(&f),
        },
        Err(_) => false,
    }
}

/// An operand that may stand beside a vector: a vector, an untyped text literal,
/// a parameter.
fn vector_operand(e: &Expr, schema: &DFSchema) -> bool {
    matches!(e, Expr::Placeholder(_))
        || matches!(e, Expr::Literal(ScalarValue::Utf8(_) | ScalarValue::Utf8View(_) | ScalarValue::LargeUtf8(_) | ScalarValue::Null, _))
        || is_vector_typed(e, schema)
}

/// `'[1,2,3]'::vector` (or a text literal for it) as a `vector(n)` literal.
fn vector_literal(e: &Expr) -> Option<ScalarValue> {
    let text = match e {
        Expr::Cast(c) if matches!(c.field.data_type(), datafusion::arrow::datatypes::DataType::FixedSizeList(item, _) if item.data_type() == &datafusion::arrow::datatypes::DataType::Float32) => {
            return vector_literal(&c.expr);
        }
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _) => s,
        _ => return None,
    };
    super::vector::parse_text(text).ok().map(|v| super::vector::vector_scalar(&v))
}

impl ExprPlanner for VectorOperatorPlanner {
    /// `ARRAY['[1,2,3]'::vector, '[4,5,6]', NULL]`: every element a `vector(3)`
    /// (as PostgreSQL resolves the untyped ones to the array's type).
    fn plan_array_literal(&self, exprs: Vec<Expr>, schema: &DFSchema) -> Result<PlannerResult<Vec<Expr>>> {
        let typed = exprs.iter().any(|e| matches!(e, Expr::Cast(_)) && is_vector_typed(e, schema));
        if !typed {
            return Ok(PlannerResult::Original(exprs));
        }
        let literals: Vec<Option<ScalarValue>> = exprs.iter().map(vector_literal).collect();
        let dims: std::collections::BTreeSet<usize> =
            literals.iter().flatten().filter_map(|v| super::vector::vector_dims_of(&v.data_type())).collect();
        let [d] = dims.into_iter().collect::<Vec<_>>()[..] else { return Ok(PlannerResult::Original(exprs)) };
        let t = super::vector::vector_type(d);
        let mut out = Vec::with_capacity(exprs.len());
        for (e, lit) in exprs.into_iter().zip(literals) {
            out.push(match (lit, &e) {
                (Some(v), _) => Expr::Literal(v, None),
                (None, Expr::Literal(ScalarValue::Null, _)) => Expr::Literal(ScalarValue::try_from(&t)?, None),
                _ => e,
            });
        }
        Ok(PlannerResult::Original(out))
    }

    fn plan_binary_op(&self, expr: RawBinaryExpr, schema: &DFSchema) -> Result<PlannerResult<RawBinaryExpr>> {
        // `+ - * || < <= = <> >= >` with a vector on one side (vector_math.rs).
        if let Some(op) = super::vector_math::for_operator(&expr.op) {
            let (l, r) = (is_vector_typed(&expr.left, schema), is_vector_typed(&expr.right, schema));
            if (l || r) && vector_operand(&expr.left, schema) && vector_operand(&expr.right, schema) {
                let RawBinaryExpr { left, right, .. } = expr;
                return Ok(PlannerResult::Planned(Expr::ScalarFunction(ScalarFunction::new_udf(
                    Arc::new(super::vector_math::udf(op)),
                    vec![type_placeholder(left), type_placeholder(right)],
                ))));
            }
            return Ok(PlannerResult::Original(expr));
        }
        let udf = match &expr.op {
            BinaryOperator::LtDashGt => &self.l2,
            BinaryOperator::Custom(s) if s == "<#>" => &self.neg_ip,
            BinaryOperator::Custom(s) if s == L1_OPERATOR_SPELLING => &self.l1,
            BinaryOperator::Spaceship => {
                let l = looks_like_vector(&expr.left, schema);
                let r = looks_like_vector(&expr.right, schema);
                // Both sides must be vector-ish (or a parameter next to a vector).
                let l_ok = l || matches!(expr.left, Expr::Placeholder(_));
                let r_ok = r || matches!(expr.right, Expr::Placeholder(_));
                if !((l || r) && l_ok && r_ok) {
                    return Ok(PlannerResult::Original(expr));
                }
                &self.cosine
            }
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let RawBinaryExpr { left, right, .. } = expr;
        Ok(PlannerResult::Planned(Expr::ScalarFunction(ScalarFunction::new_udf(
            udf.clone(),
            vec![type_placeholder(left), type_placeholder(right)],
        ))))
    }
}

/// Rename `<+>` to [`L1_OPERATOR_SPELLING`] outside quotes and comments.
pub fn rewrite_l1_operator(sql: &str) -> std::borrow::Cow<'_, str> {
    if !sql.contains("<+>") {
        return std::borrow::Cow::Borrowed(sql);
    }
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let q = b[i];
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if i + 1 < b.len() && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    if b[i] == b'\\' && q == b'\'' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'$' => {
                // $tag$ … $tag$ (not $1 parameters).
                let start = i;
                let mut j = i + 1;
                let param = b.get(i + 1).is_some_and(|c| c.is_ascii_digit());
                while !param && j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if j < b.len() && b[j] == b'$' {
                    let tag = &sql[start..=j];
                    match sql[j + 1..].find(tag) {
                        Some(end) => i = j + 1 + end + tag.len(),
                        None => i = b.len(),
                    }
                } else {
                    i += 1;
                }
            }
            b'<' if sql[i..].starts_with("<+>") => {
                out.push_str(&sql[last..i]);
                out.push_str(L1_OPERATOR_SPELLING);
                i += 3;
                last = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[last.min(sql.len())..]);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l1_operator_rewrite_skips_literals_and_comments() {
        assert_eq!(rewrite_l1_operator("select a <+> b"), "select a <~+> b");
        assert_eq!(rewrite_l1_operator("select '<+>' , a<+>b -- <+>\n"), "select '<+>' , a<~+>b -- <+>\n");
        assert_eq!(rewrite_l1_operator("select $$<+>$$, $1 <+> a /* <+> */"), "select $$<+>$$, $1 <~+> a /* <+> */");
        assert_eq!(rewrite_l1_operator("select 'it''s <+>' <+> x"), "select 'it''s <+>' <~+> x");
        assert_eq!(rewrite_l1_operator("select <+> $"), "select <~+> $");
    }
}
