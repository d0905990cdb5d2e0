//! The vector type: `vector(n)` is Arrow `FixedSizeList<Float32, n>`.
//!
//! - [`VectorTypePlanner`] maps SQL `vector(n)` to that type (and bare `vector`, only
//!   valid in casts, to a marker the cast rewrite replaces).
//! - `vector(x)` parses pgvector's text form `'[1,2,3]'` or converts a float array;
//!   `vector(x, n)` also checks the dimension. [`VectorCastRewrite`] turns every cast to
//!   a vector type (`'[1,2]'::vector`, `CAST(… AS vector(3))`, the implicit casts of
//!   `INSERT`) into that call, so all vector input goes through one validator.
//! - [`Vectors`] is the read side: any vector-like array (fixed or variable lists of
//!   floats or integers, text) as rows of `&[f32]`.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, GenericListArray, OffsetSizeTrait,
};
use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float32Type};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::TypePlanner;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast;

use crate::error::Error;

/// pgvector's limit.
pub const MAX_DIMS: usize = 16000;

/// The OID of the `vector` type in `pg_type` (pgvector's is assigned by CREATE
/// EXTENSION; clients look it up by name).
pub const VECTOR_OID: u32 = 16_400;
/// The OID of `vector[]` (`_vector`).
pub const VECTOR_ARRAY_OID: u32 = 16_401;

type DfResult<T> = datafusion::error::Result<T>;

fn df(e: Error) -> DataFusionError {
    e.into_datafusion()
}

/// Field metadata marking a variable-length float list as a `vector` (a cast to bare
/// `vector` of a value whose dimension is known only at run time).
pub const VECTOR_MARK: &str = "lakehouse.type";

/// Is `f` a float list marked as a `vector`?
pub fn is_marked_vector(f: &Field) -> bool {
    f.metadata().get(VECTOR_MARK).is_some_and(|v| v == "vector")
}

/// The Arrow type of `vector(dims)`.
pub fn vector_type(dims: usize) -> DataType {
    DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), dims as i32)
}

/// Dimension of a vector column type, if it is one.
pub fn vector_dims_of(t: &DataType) -> Option<usize> {
    match t {
        DataType::FixedSizeList(f, d) if is_number(f.data_type()) && *d > 0 => Some(*d as usize),
        _ => None,
    }
}

/// Types a vector argument may arrive as.
pub fn is_vector_like(t: &DataType) -> bool {
    match t {
        DataType::FixedSizeList(f, _) | DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            is_number(f.data_type()) || f.data_type().is_null()
        }
        _ => false,
    }
}

fn is_number(t: &DataType) -> bool {
    t.is_numeric()
}

/// The marker bare `vector` plans to in a cast (dimension taken from the value).
fn any_dims_marker() -> DataType {
    vector_type(0)
}

/// Check a vector's values: at least one, at most [`MAX_DIMS`], all finite.
pub fn check_values(v: &[f32]) -> Result<(), Error> {
    if v.is_empty() {
        return Err(Error::DataException("vector must have at least 1 dimension".into()));
    }
    if v.len() > MAX_DIMS {
        return Err(Error::DataException(format!("vector cannot have more than {MAX_DIMS} dimensions")));
    }
    if let Some(x) = v.iter().find(|x| !x.is_finite()) {
        return Err(Error::DataException(if x.is_nan() {
            "NaN not allowed in vector".into()
        } else {
            "infinite value not allowed in vector".into()
        }));
    }
    Ok(())
}

/// Parse pgvector's text form `[1, 2.5, -3e2]`.
pub fn parse_text(s: &str) -> Result<Vec<f32>, Error> {
    let bad = || Error::InvalidText(format!("invalid input syntax for type vector: \"{s}\"; write it as '[1,2,3]'"));
    let t = s.trim();
    let inner = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')).ok_or_else(bad)?;
    if inner.trim().is_empty() {
        return Err(Error::DataException("vector must have at least 1 dimension".into()));
    }
    let mut out = Vec::with_capacity(inner.len() / 4 + 1);
    for part in inner.split(',') {
        let p = part.trim();
        let x: f32 = p.parse().map_err(|_| bad())?;
        // "nan"/"inf" parse as floats; refuse them with the value-level message.
        out.push(x);
    }
    check_values(&out)?;
    Ok(out)
}

/// pgvector's text output: `[1,2.5,3]`.
pub fn to_text(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 6 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}

/// A vector literal.
pub fn vector_scalar(v: &[f32]) -> ScalarValue {
    let values = Float32Array::from(v.to_vec());
    let field = Arc::new(Field::new("item", DataType::Float32, true));
    let list = FixedSizeListArray::new(field, v.len() as i32, Arc::new(values), None);
    ScalarValue::FixedSizeList(Arc::new(list))
}

/// A `FixedSizeList<Float32, dims>` array from rows already checked to have `dims`
/// values (None → NULL).
pub fn fixed_list(rows: &[Option<&[f32]>], dims: usize) -> ArrayRef {
    let mut values = Vec::with_capacity(rows.len() * dims);
    for r in rows {
        match r {
            Some(v) => values.extend_from_slice(v),
            None => values.extend(std::iter::repeat_n(0.0, dims)),
        }
    }
    let nulls = rows.iter().any(Option::is_none).then(|| NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>()));
    let field = Arc::new(Field::new("item", DataType::Float32, true));
    Arc::new(FixedSizeListArray::new(field, dims as i32, Arc::new(Float32Array::from(values)), nulls))
}

/// Rows of a vector-like array as `&[f32]`.
pub struct Vectors {
    values: ScalarBuffer<f32>,
    layout: Layout,
    nulls: Option<NullBuffer>,
    len: usize,
    /// Text inputs are parsed up front.
    parsed: Option<Vec<Option<Vec<f32>>>>,
}

enum Layout {
    Fixed(usize),
    Offsets(Vec<usize>),
}

impl Vectors {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Row `i`, or None when it is NULL.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&[f32]> {
        if let Some(p) = &self.parsed {
            return p[i].as_deref();
        }
        if self.nulls.as_ref().is_some_and(|n| n.is_null(i)) {
            return None;
        }
        Some(match &self.layout {
            Layout::Fixed(d) => &self.values[i * d..(i + 1) * d],
            Layout::Offsets(o) => &self.values[o[i]..o[i + 1]],
        })
    }

    /// The fixed dimension, when the array has one.
    pub fn fixed_dims(&self) -> Option<usize> {
        match (&self.layout, &self.parsed) {
            (Layout::Fixed(d), None) => Some(*d),
            _ => None,
        }
    }

    pub fn from_array(array: &ArrayRef) -> Result<Vectors, Error> {
        match array.data_type() {
            DataType::FixedSizeList(_, d) => {
                let a = array.as_fixed_size_list();
                let d = *d as usize;
                let (values, en) = float_values(a.values(), a.offset() * d, a.len() * d)?;
                Vectors { values, layout: Layout::Fixed(d), nulls: a.nulls().cloned(), len: a.len(), parsed: None }
                    .check_element_nulls(en)
            }
            DataType::List(_) => Self::from_list(array.as_list::<i32>()),
            DataType::LargeList(_) => Self::from_list(array.as_list::<i64>()),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let a = cast(array, &DataType::Utf8)?;
                let a = a.as_string::<i32>();
                let parsed = (0..a.len())
                    .map(|i| if a.is_null(i) { Ok(None) } else { parse_text(a.value(i)).map(Some) })
                    .collect::<Result<Vec<_>, Error>>()?;
                Ok(Vectors { values: ScalarBuffer::from(vec![]), layout: Layout::Fixed(0), nulls: None, len: a.len(), parsed: Some(parsed) })
            }
            DataType::Null => Ok(Vectors {
                values: ScalarBuffer::from(vec![]),
                layout: Layout::Fixed(0),
                nulls: Some(NullBuffer::new_null(array.len())),
                len: array.len(),
                parsed: None,
            }),
            other => Err(Error::UnknownFunction(format!(
                "expected a vector (vector(n), real[] or '[1,2,3]' text), got {other}"
            ))),
        }
    }

    fn from_list<O: OffsetSizeTrait>(a: &GenericListArray<O>) -> Result<Vectors, Error> {
        let offsets: Vec<usize> = a.value_offsets().iter().map(|o| o.as_usize()).collect();
        let start = offsets.first().copied().unwrap_or(0);
        let end = offsets.last().copied().unwrap_or(0);
        let (values, en) = float_values(a.values(), start, end - start)?;
        let offsets = offsets.iter().map(|o| o - start).collect();
        Vectors { values, layout: Layout::Offsets(offsets), nulls: a.nulls().cloned(), len: a.len(), parsed: None }
            .check_element_nulls(en)
    }

    pub fn from_columnar(v: &ColumnarValue) -> Result<Vectors, Error> {
        match v {
            ColumnarValue::Array(a) => Vectors::from_array(a),
            ColumnarValue::Scalar(s) => Vectors::from_array(&s.to_array_of_size(1)?),
        }
    }
}

/// `len` child values from `start` as f32 (cast if needed), and their NULLs.
fn float_values(child: &ArrayRef, start: usize, len: usize) -> Result<(ScalarBuffer<f32>, Option<NullBuffer>), Error> {
    let slice = child.slice(start, len);
    let nulls = slice.nulls().filter(|n| n.null_count() > 0).cloned();
    let f = if slice.data_type() == &DataType::Float32 { slice } else { cast(&slice, &DataType::Float32)? };
    Ok((f.as_primitive::<Float32Type>().values().clone(), nulls))
}

impl Vectors {
    /// A NULL inside a (non-NULL) vector is an error; slots under NULL rows are not.
    fn check_element_nulls(self, element_nulls: Option<NullBuffer>) -> Result<Vectors, Error> {
        let Some(en) = element_nulls else { return Ok(self) };
        for i in 0..self.len {
            if self.nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                continue;
            }
            let (a, b) = match &self.layout {
                Layout::Fixed(d) => (i * d, (i + 1) * d),
                Layout::Offsets(o) => (o[i], o[i + 1]),
            };
            if (a..b).any(|j| en.is_null(j)) {
                return Err(Error::DataException("vector elements must not be NULL".into()));
            }
        }
        Ok(self)
    }
}

/// Build a `FixedSizeList<Float32, dims>` array from rows, validating each.
pub fn build_vectors(rows: &Vectors, dims: Option<usize>) -> Result<ArrayRef, Error> {
    let mut d = dims;
    let mut values: Vec<f32> = Vec::new();
    let mut valid = Vec::with_capacity(rows.len());
    for i in 0..rows.len() {
        match rows.get(i) {
            Some(v) => {
                check_values(v)?;
                match d {
                    None => d = Some(v.len()),
                    Some(e) if e != v.len() => return Err(Error::DimensionMismatch { expected: e, got: v.len() }),
                    _ => {}
                }
                values.extend_from_slice(v);
                valid.push(true);
            }
            None => valid.push(false),
        }
    }
    let d = d.unwrap_or(1);
    // NULL rows still take `d` slots.
    let mut full = Vec::with_capacity(rows.len() * d);
    let mut it = values.chunks(d);
    for ok in &valid {
        if *ok {
            full.extend_from_slice(it.next().unwrap_or(&[]));
        } else {
            full.extend(std::iter::repeat_n(0.0, d));
        }
    }
    let field = Arc::new(Field::new("item", DataType::Float32, true));
    let nulls = if valid.iter().all(|v| *v) { None } else { Some(NullBuffer::from(valid)) };
    Ok(Arc::new(FixedSizeListArray::try_new(field, d as i32, Arc::new(Float32Array::from(full)), nulls)?))
}

// ------------------------------------------------------------------- vector()

/// `vector(x [, dims])`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VectorFn {
    signature: Signature,
}

impl VectorFn {
    pub fn new() -> Self {
        VectorFn { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for VectorFn {
    fn default() -> Self {
        Self::new()
    }
}

pub fn vector_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(VectorFn::new())
}

fn dims_arg(v: Option<&ScalarValue>) -> DfResult<Option<usize>> {
    match v {
        None => Ok(None),
        Some(s) => {
            let n = s.cast_to(&DataType::Int64)?;
            match n {
                ScalarValue::Int64(Some(0)) => Ok(None),
                ScalarValue::Int64(Some(n)) if n > 0 && n as usize <= MAX_DIMS => Ok(Some(n as usize)),
                _ => Err(df(Error::InvalidParameter(format!(
                    "dimensions for type vector must be between 1 and {MAX_DIMS}"
                )))),
            }
        }
    }
}

impl ScalarUDFImpl for VectorFn {
    fn name(&self) -> &str {
        "vector"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if arg_types.is_empty() || arg_types.len() > 2 {
            return Err(df(Error::UnknownFunction("vector() takes a value and optionally a dimension: vector('[1,2,3]') or vector(x, 3)".into())));
        }
        let mut out = vec![arg_types[0].clone()];
        if !(is_vector_like(&arg_types[0]) || matches!(arg_types[0], DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null)) {
            return Err(df(Error::UnknownFunction(format!(
                "vector() expects text like '[1,2,3]' or a float array, got {}",
                arg_types[0]
            ))));
        }
        if arg_types.len() == 2 {
            out.push(DataType::Int64);
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Err(DataFusionError::Internal("return_field_from_args is used".into()))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let dims = match dims_arg(args.scalar_arguments.get(1).copied().flatten())? {
            Some(d) => Some(d),
            None => match (args.arg_fields[0].data_type(), args.scalar_arguments.first().copied().flatten()) {
                (DataType::FixedSizeList(_, d), _) => Some(*d as usize),
                // Only text: a list argument is a literal only once the optimizer has
                // folded it, and the type must not change between the two.
                (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, Some(s)) if !s.is_null() => {
                    let rows = Vectors::from_array(&s.to_array_of_size(1)?).map_err(df)?;
                    rows.get(0).map(|v| v.len())
                }
                _ => None,
            },
        };
        let field = match dims {
            Some(d) => Field::new(self.name(), vector_type(d), true),
            None => Field::new(self.name(), DataType::List(Arc::new(Field::new("item", DataType::Float32, true))), true)
                .with_metadata([(VECTOR_MARK.to_string(), "vector".to_string())].into()),
        };
        Ok(Arc::new(field))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let is_scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = Vectors::from_columnar(&args.args[0]).map_err(df)?;
        let out = match args.return_field.data_type() {
            DataType::FixedSizeList(_, d) => build_vectors(&rows, Some(*d as usize)).map_err(df)?,
            _ => {
                let fixed = build_vectors(&rows, None).map_err(df)?;
                cast(&fixed, args.return_field.data_type())?
            }
        };
        if is_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

// ------------------------------------------------------------------- type planner

/// `vector(n)` in DDL and casts; other types go to `fallback` (a session has one
/// type planner, and datafusion-pg-catalog brings its own for oid aliases).
#[derive(Debug, Default)]
pub struct VectorTypePlanner {
    pub fallback: Option<Arc<dyn TypePlanner>>,
}

impl TypePlanner for VectorTypePlanner {
    fn plan_type_field(&self, sql_type: &ast::DataType) -> DfResult<Option<FieldRef>> {
        let fallback = || match &self.fallback {
            Some(f) => f.plan_type_field(sql_type),
            None => Ok(None),
        };
        let (name, modifiers) = match sql_type {
            ast::DataType::JSON => return Ok(Some(Arc::new(super::json::json_field("", false)))),
            ast::DataType::JSONB => return Ok(Some(Arc::new(super::json::json_field("", true)))),
            ast::DataType::Custom(name, modifiers) => (name, modifiers),
            _ => return fallback(),
        };
        let n = name.to_string().to_lowercase();
        if n != "vector" && n != "public.vector" {
            return fallback();
        }
        let t = match modifiers.as_slice() {
            [] => any_dims_marker(),
            [d] => match d.trim().parse::<usize>() {
                Ok(d) if (1..=MAX_DIMS).contains(&d) => vector_type(d),
                _ => {
                    return Err(df(Error::InvalidParameter(format!(
                        "dimensions for type vector must be between 1 and {MAX_DIMS}, got {d}"
                    ))));
                }
            },
            _ => return Err(df(Error::Syntax("type vector takes one modifier: vector(n)".into()))),
        };
        Ok(Some(Arc::new(Field::new("", t, true))))
    }
}

/// Is `t` the Float32 fixed list a cast to `vector`/`vector(n)` produces?
fn cast_target_dims(t: &DataType) -> Option<usize> {
    match t {
        DataType::FixedSizeList(f, d) if f.data_type() == &DataType::Float32 => Some(*d as usize),
        _ => None,
    }
}

/// Rewrites casts to vector types into `vector(x, n)` (n = 0: any dimension).
#[derive(Debug, Default)]
pub struct VectorCastRewrite;

impl AnalyzerRule for VectorCastRewrite {
    fn name(&self) -> &str {
        "vector_cast_rewrite"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| p.map_expressions(rewrite_vector_casts_transformed))
            .map(|t| t.data)
    }
}

/// Replace casts to vector types in `e` by `vector(x, n)` calls.
pub fn rewrite_vector_casts(e: Expr) -> DfResult<Expr> {
    rewrite_vector_casts_transformed(e).map(|t| t.data)
}

fn rewrite_vector_casts_transformed(e: Expr) -> DfResult<Transformed<Expr>> {
    // Runs over every expression of every plan: build the UDF only when a cast is found.
    let mut udf: Option<Arc<ScalarUDF>> = None;
    e.transform_up(|e| {
        let (inner, field) = match e {
            Expr::Cast(c) if cast_target_dims(c.field.data_type()).is_some() => (c.expr, c.field),
            Expr::TryCast(c) if cast_target_dims(c.field.data_type()).is_some() => (c.expr, c.field),
            other => return Ok(Transformed::no(other)),
        };
        let dims = cast_target_dims(field.data_type()).unwrap_or(0);
        let udf = udf.get_or_insert_with(|| Arc::new(vector_udf())).clone();
        Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
            udf,
            vec![*inner, Expr::Literal(ScalarValue::Int64(Some(dims as i64)), None)],
        ))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pgvector_text() {
        assert_eq!(parse_text("[1, 2.5,-3e1]").unwrap(), vec![1.0, 2.5, -30.0]);
        assert_eq!(parse_text(" [7] ").unwrap(), vec![7.0]);
        assert_eq!(parse_text("[1,2").unwrap_err().sqlstate(), "22P02");
        assert_eq!(parse_text("[1,,2]").unwrap_err().sqlstate(), "22P02");
        assert_eq!(parse_text("[]").unwrap_err().sqlstate(), "22000");
        assert_eq!(parse_text("[1,NaN]").unwrap_err().sqlstate(), "22000");
        assert_eq!(parse_text("[inf]").unwrap_err().sqlstate(), "22000");
        assert_eq!(to_text(&[1.0, 2.5]), "[1,2.5]");
    }
}
