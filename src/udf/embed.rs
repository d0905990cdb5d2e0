//! `embed(text)` and `embed('model', text)` → `vector(d)`: an async, batched scalar
//! UDF over the model registry ([`crate::embedding::Models`]). NULL or empty text
//! gives NULL.
//!
//! Each session registers its own instance carrying `embedding.default_model` and
//! `embedding.batch_size`, because the result type (the model's dimension) must be
//! known when the query is planned. Calls whose arguments are all constants are
//! evaluated once before planning ([`fold_constant_calls`]), so
//! `ORDER BY v <=> embed('query') LIMIT k` can use an index; calls over columns run
//! in DataFusion's async projection/filter operator, a batch of rows at a time.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};

use crate::embedding::Models;
use crate::error::Error;

use super::vector::{fixed_list, vector_type};

pub const NAME: &str = "embed";

#[derive(Debug)]
pub struct EmbedUdf {
    models: Arc<Models>,
    default_model: String,
    batch_size: usize,
    signature: Signature,
}

impl PartialEq for EmbedUdf {
    fn eq(&self, other: &Self) -> bool {
        self.default_model == other.default_model && self.batch_size == other.batch_size && Arc::ptr_eq(&self.models, &other.models)
    }
}
impl Eq for EmbedUdf {}
impl std::hash::Hash for EmbedUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.default_model.hash(state);
        self.batch_size.hash(state);
    }
}

impl EmbedUdf {
    pub fn new(models: Arc<Models>, default_model: &str, batch_size: usize) -> Self {
        EmbedUdf {
            models,
            default_model: default_model.to_string(),
            batch_size,
            // Stable: the same text gives the same vector within a statement; never
            // constant-folded by DataFusion (we fold constant calls ourselves).
            // Text arguments of any string types first, as they are: a constant model
            // name must stay a literal that return_field sees (coercing both to the
            // column's Utf8View wrapped it in a cast).
            signature: Signature::one_of(
                {
                    use DataType::{LargeUtf8, Utf8, Utf8View};
                    let mut exact = vec![];
                    for a in [Utf8, Utf8View, LargeUtf8] {
                        exact.push(TypeSignature::Exact(vec![a.clone()]));
                        for b in [Utf8, Utf8View, LargeUtf8] {
                            exact.push(TypeSignature::Exact(vec![a.clone(), b]));
                        }
                    }
                    exact.extend([TypeSignature::String(1), TypeSignature::String(2)]);
                    exact
                },
                Volatility::Stable,
            ),
        }
    }

    pub fn udf(models: Arc<Models>, default_model: &str, batch_size: usize) -> ScalarUDF {
        AsyncScalarUDF::new(Arc::new(EmbedUdf::new(models, default_model, batch_size))).into_scalar_udf()
    }

    /// The model named by a constant first argument, else the session default.
    fn model_of(&self, model_arg: Option<&ScalarValue>) -> DfResult<String> {
        match model_arg {
            None => Ok(self.default_model.clone()),
            Some(v) => match text_of(v) {
                Some(Some(s)) => Ok(s),
                Some(None) => Err(Error::InvalidParameter("the model name given to embed is NULL".into()).into_datafusion()),
                None => Err(Error::InvalidParameter("embed's model name must be a text constant: embed('model', text)".into()).into_datafusion()),
            },
        }
    }

    pub fn default_model(&self) -> &str {
        &self.default_model
    }
}

fn text_of(v: &ScalarValue) -> Option<Option<String>> {
    match v {
        ScalarValue::Utf8(s) | ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s) => Some(s.clone()),
        ScalarValue::Null => Some(None),
        _ => None,
    }
}

impl ScalarUDFImpl for EmbedUdf {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        let dims = self.models.dims(&self.default_model).map_err(Error::into_datafusion)?;
        Ok(vector_type(dims))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let model = if args.arg_fields.len() == 2 {
            match args.scalar_arguments.first().copied().flatten() {
                Some(v) => self.model_of(Some(v))?,
                None => {
                    return Err(Error::InvalidParameter(
                        "embed's model name must be a text constant: embed('model', text)".into(),
                    )
                    .into_datafusion());
                }
            }
        } else {
            self.default_model.clone()
        };
        let dims = self.models.dims(&model).map_err(Error::into_datafusion)?;
        Ok(Arc::new(Field::new(NAME, vector_type(dims), true)))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(Error::NotSupported(
            "embed() in this position (use it in SELECT lists, WHERE, INSERT … SELECT, or with constant arguments)".into(),
        )
        .into_datafusion())
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for EmbedUdf {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let (model, text) = match args.args.as_slice() {
            [text] => (self.default_model.clone(), text),
            [ColumnarValue::Scalar(m), text] => (self.model_of(Some(m))?, text),
            [ColumnarValue::Array(m), text] => {
                // A model column: fine when it holds one model.
                let first = ScalarValue::try_from_array(m, 0)?;
                if (1..m.len()).any(|i| ScalarValue::try_from_array(m, i).map(|v| v != first).unwrap_or(true)) {
                    return Err(Error::NotSupported("embed() with a different model per row".into()).into_datafusion());
                }
                (self.model_of(Some(&first))?, text)
            }
            _ => return Err(Error::InvalidParameter("embed takes (text) or ('model', text)".into()).into_datafusion()),
        };
        let texts: ArrayRef = match text {
            ColumnarValue::Array(a) => cast(a, &DataType::Utf8)?,
            ColumnarValue::Scalar(s) => cast(&s.to_array_of_size(1)?, &DataType::Utf8)?,
        };
        let texts = texts.as_string::<i32>();
        let refs: Vec<Option<&str>> = (0..texts.len()).map(|i| if texts.is_null(i) { None } else { Some(texts.value(i)) }).collect();
        let dims = self.models.dims(&model).map_err(Error::into_datafusion)?;
        let vectors = self.models.embed(&model, &refs, Some(self.batch_size)).await.map_err(Error::into_datafusion)?;
        let array = fixed_list(&vectors.iter().map(|v| v.as_deref()).collect::<Vec<_>>(), dims);
        Ok(match text {
            ColumnarValue::Scalar(_) if n != 1 => ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?),
            _ => ColumnarValue::Array(array),
        })
    }
}

/// Whether `e` is a call of our `embed`.
fn embed_call(e: &Expr) -> Option<&datafusion::logical_expr::expr::ScalarFunction> {
    match e {
        Expr::ScalarFunction(f) if f.func.name() == NAME && f.func.inner().downcast_ref::<AsyncScalarUDF>().is_some() => Some(f),
        _ => None,
    }
}

/// The (model, text) of a call whose arguments are constants; `default` for one
/// argument. `None` text means NULL.
fn constant_call(f: &datafusion::logical_expr::expr::ScalarFunction, default: &str) -> Option<(String, Option<String>)> {
    let lit = |e: &Expr| match e {
        Expr::Literal(v, _) => text_of(v),
        Expr::Cast(c) => match c.expr.as_ref() {
            Expr::Literal(v, _) => text_of(v),
            _ => None,
        },
        _ => None,
    };
    match f.args.as_slice() {
        [t] => Some((default.to_string(), lit(t)?)),
        [m, t] => Some((lit(m)??, lit(t)?)),
        _ => None,
    }
}

/// Replace every `embed(…)` with constant arguments in `plan` (subqueries included)
/// by its vector, and move `embed` over columns out of sorts (see
/// [`sorts_over_projections`]). Every statement passes here: a plan without `embed`
/// is returned as it is after one read-only walk, and `default_model` (the session's
/// setting) is only asked for when there is a call.
pub async fn fold_constant_calls(plan: LogicalPlan, models: &Models, default_model: impl FnOnce() -> String) -> crate::error::Result<LogicalPlan> {
    let mut calls = vec![];
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Some(f) = embed_call(e) {
                    calls.push(f.clone());
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    if calls.is_empty() {
        return Ok(plan);
    }
    let default_model = &default_model();
    let wanted: Vec<(String, Option<String>)> = calls.iter().filter_map(|f| constant_call(f, default_model)).collect();
    if wanted.is_empty() {
        return sorts_over_projections(plan);
    }
    let mut answers: std::collections::HashMap<(String, Option<String>), ScalarValue> = Default::default();
    for (model, text) in wanted {
        if answers.contains_key(&(model.clone(), text.clone())) {
            continue;
        }
        let dims = models.dims(&model)?;
        let v = models.embed(&model, &[text.as_deref()], None).await?.pop().flatten();
        let value = match v {
            Some(v) => super::vector::vector_scalar(&v),
            None => ScalarValue::try_from(&vector_type(dims))?,
        };
        answers.insert((model, text), value);
    }
    let out = plan.transform_up_with_subqueries(|node| {
        let is_projection = matches!(node, LogicalPlan::Projection(_));
        let t = node.map_expressions(|e| {
            let name = e.schema_name().to_string();
            let t = e.transform_up(|e| {
                let Some(f) = embed_call(&e) else { return Ok(Transformed::no(e)) };
                let Some(call) = constant_call(f, default_model) else { return Ok(Transformed::no(e)) };
                match answers.get(&call) {
                    Some(v) => Ok(Transformed::yes(Expr::Literal(v.clone(), None))),
                    None => Ok(Transformed::no(e)),
                }
            })?;
            // A SELECT list keeps its column names (`embed`, not the vector's text).
            if t.transformed && is_projection { t.map_data(|d| d.alias_if_changed(name)) } else { Ok(t) }
        })?;
        if t.transformed { t.map_data(|n| n.recompute_schema()) } else { Ok(t) }
    })?;
    sorts_over_projections(out.data)
}

/// DataFusion evaluates async functions only in projections and filters. A sort on
/// `embed(column)` (`ORDER BY embed(body) <=> embed('q')`) becomes a projection that
/// computes it, the sort on that column, and a projection back to the columns.
fn sorts_over_projections(plan: LogicalPlan) -> crate::error::Result<LogicalPlan> {
    use datafusion::logical_expr::{LogicalPlanBuilder, SortExpr};
    let has_embed = |e: &Expr| e.exists(|e| Ok(embed_call(e).is_some())).unwrap_or(false);
    let out = plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::Sort(sort) = &node else { return Ok(Transformed::no(node)) };
        if !sort.expr.iter().any(|s| has_embed(&s.expr)) {
            return Ok(Transformed::no(node));
        }
        let input = sort.input.as_ref().clone();
        let columns: Vec<Expr> = input.schema().columns().into_iter().map(Expr::Column).collect();
        let mut computed = columns.clone();
        let mut keys = vec![];
        for (i, s) in sort.expr.iter().enumerate() {
            if has_embed(&s.expr) {
                let name = format!("__lakehouse_sort_{i}");
                computed.push(s.expr.clone().alias(&name));
                keys.push(SortExpr { expr: datafusion::prelude::col(name), ..s.clone() });
            } else {
                keys.push(s.clone());
            }
        }
        let rebuilt = LogicalPlanBuilder::from(input)
            .project(computed)?
            .sort_with_limit(keys, sort.fetch)?
            .project(columns)?
            .build()?;
        Ok(Transformed::yes(rebuilt))
    })?;
    Ok(out.data)
}
