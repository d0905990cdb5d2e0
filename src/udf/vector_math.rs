//! pgvector's vector arithmetic and comparison (#14): `+ - *` (element-wise), `||`
//! (concatenation), `< <= = <> >= >` and `vector_cmp` (pgvector's btree order:
//! element by element, then the shorter first), `subvector(v, start, count)` and
//! `binary_quantize(v)`. The operators reach these functions through
//! vector_ops.rs's planner when a side is a `vector`; the other side may be an
//! untyped literal (`'[1,2,3]'::vector = '[1,2,3]'`), as in PostgreSQL.
//! Errors are pgvector's: 22000 for different dimensions, 22003 on overflow.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int32Array, ListArray, StringArray};
use datafusion::arrow::datatypes::Float32Type;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use super::vector::{MAX_DIMS, VECTOR_MARK, Vectors, fixed_list, is_vector_like, vector_type};
use crate::error::Error;

type DfResult<T> = datafusion::error::Result<T>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Concat,
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
    Cmp,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Add => "vector_add",
            Op::Sub => "vector_sub",
            Op::Mul => "vector_mul",
            Op::Concat => "vector_concat",
            Op::Lt => "vector_lt",
            Op::Le => "vector_le",
            Op::Eq => "vector_eq",
            Op::Ne => "vector_ne",
            Op::Ge => "vector_ge",
            Op::Gt => "vector_gt",
            Op::Cmp => "vector_cmp",
        }
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Eq | Op::Ne | Op::Ge | Op::Gt)
    }
}

fn df(e: Error) -> datafusion::error::DataFusionError {
    e.into_datafusion()
}

fn text_or_vector(t: &DataType) -> bool {
    is_vector_like(t) || matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null)
}

/// The result type of a vector-valued function: `vector(d)` when the dimension is
/// known from the argument types, else a float list marked as `vector`.
fn vector_field(name: &str, dims: Option<usize>) -> FieldRef {
    Arc::new(match dims {
        Some(d) if d > 0 => Field::new(name, vector_type(d), true),
        _ => Field::new(name, DataType::List(Arc::new(Field::new("item", DataType::Float32, true))), true)
            .with_metadata([(VECTOR_MARK.to_string(), "vector".to_string())].into()),
    })
}

fn fixed_dims(t: &DataType) -> Option<usize> {
    match t {
        DataType::FixedSizeList(_, d) if *d > 0 => Some(*d as usize),
        _ => None,
    }
}

/// pgvector's vector_cmp_internal.
pub fn compare(a: &[f32], b: &[f32]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        if x < y {
            return std::cmp::Ordering::Less;
        }
        if x > y {
            return std::cmp::Ordering::Greater;
        }
    }
    a.len().cmp(&b.len())
}

fn out_of_range(under: bool) -> Error {
    Error::NumericOutOfRange(format!("value out of range: {}", if under { "underflow" } else { "overflow" }))
}

/// Evaluate `op` on two vectors.
fn eval(op: Op, x: &[f32], y: &[f32]) -> Result<Value, Error> {
    let same = || {
        if x.len() != y.len() {
            Err(Error::DataException(format!("different vector dimensions {} and {}", x.len(), y.len())))
        } else {
            Ok(())
        }
    };
    Ok(match op {
        Op::Add | Op::Sub | Op::Mul => {
            same()?;
            let mut out = Vec::with_capacity(x.len());
            for (a, b) in x.iter().zip(y) {
                let r = match op {
                    Op::Add => a + b,
                    Op::Sub => a - b,
                    _ => a * b,
                };
                if r.is_infinite() {
                    return Err(out_of_range(false));
                }
                if op == Op::Mul && r == 0.0 && *a != 0.0 && *b != 0.0 {
                    return Err(out_of_range(true));
                }
                out.push(r);
            }
            Value::Vector(out)
        }
        Op::Concat => {
            if x.len() + y.len() > MAX_DIMS {
                return Err(Error::ProgramLimit(format!("vector cannot have more than {MAX_DIMS} dimensions")));
            }
            Value::Vector(x.iter().chain(y).copied().collect())
        }
        Op::Cmp => Value::Int(compare(x, y) as i32),
        _ => {
            let o = compare(x, y);
            Value::Bool(match op {
                Op::Lt => o.is_lt(),
                Op::Le => o.is_le(),
                Op::Eq => o.is_eq(),
                Op::Ne => o.is_ne(),
                Op::Ge => o.is_ge(),
                _ => o.is_gt(),
            })
        }
    })
}

enum Value {
    Vector(Vec<f32>),
    Bool(bool),
    Int(i32),
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct VectorOpFn {
    op: Op,
    signature: Signature,
}

impl ScalarUDFImpl for VectorOpFn {
    fn name(&self) -> &str {
        self.op.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if arg_types.len() != 2 || !arg_types.iter().all(text_or_vector) {
            return Err(df(Error::UnknownFunction(format!(
                "function {}({}) does not exist; it takes two vectors",
                self.name(),
                arg_types.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
            ))));
        }
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Err(datafusion::error::DataFusionError::Internal("return_field_from_args is used".into()))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let name = self.name();
        if self.op.is_comparison() {
            return Ok(Arc::new(Field::new(name, DataType::Boolean, true)));
        }
        if self.op == Op::Cmp {
            return Ok(Arc::new(Field::new(name, DataType::Int32, true)));
        }
        let a = fixed_dims(args.arg_fields[0].data_type());
        let b = fixed_dims(args.arg_fields[1].data_type());
        let dims = match (self.op, a, b) {
            (Op::Concat, Some(a), Some(b)) => Some(a + b),
            (Op::Concat, _, _) => None,
            (_, Some(a), _) => Some(a),
            (_, _, b) => b,
        };
        Ok(vector_field(name, dims))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let a = Vectors::from_columnar(&args.args[0]).map_err(df)?;
        let b = Vectors::from_columnar(&args.args[1]).map_err(df)?;
        let n = if scalar { 1 } else { args.number_rows };
        let pick = |v: &Vectors, i: usize| if v.len() == 1 { 0 } else { i };
        let mut vectors: Vec<Option<Vec<f32>>> = vec![];
        let mut bools: Vec<Option<bool>> = vec![];
        let mut ints: Vec<Option<i32>> = vec![];
        for i in 0..n {
            let v = match (a.get(pick(&a, i)), b.get(pick(&b, i))) {
                (Some(x), Some(y)) => Some(eval(self.op, x, y).map_err(df)?),
                _ => None,
            };
            match v {
                Some(Value::Vector(v)) => vectors.push(Some(v)),
                Some(Value::Bool(v)) => bools.push(Some(v)),
                Some(Value::Int(v)) => ints.push(Some(v)),
                None if self.op.is_comparison() => bools.push(None),
                None if self.op == Op::Cmp => ints.push(None),
                None => vectors.push(None),
            }
        }
        let out: ArrayRef = if self.op.is_comparison() {
            Arc::new(BooleanArray::from(bools))
        } else if self.op == Op::Cmp {
            Arc::new(Int32Array::from(ints))
        } else {
            vectors_array(&vectors, args.return_field.data_type())?
        };
        finish(out, scalar)
    }
}

/// Rows of vectors as an array of `want` (vector(d) or a marked list).
fn vectors_array(rows: &[Option<Vec<f32>>], want: &DataType) -> DfResult<ArrayRef> {
    match want {
        DataType::FixedSizeList(_, d) => {
            let d = *d as usize;
            if let Some(v) = rows.iter().flatten().find(|v| v.len() != d) {
                return Err(df(Error::DimensionMismatch { expected: d, got: v.len() }));
            }
            let borrowed: Vec<Option<&[f32]>> = rows.iter().map(|r| r.as_deref()).collect();
            Ok(fixed_list(&borrowed, d))
        }
        _ => Ok(Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(
            rows.iter().map(|r| r.as_ref().map(|v| v.iter().map(|x| Some(*x)).collect::<Vec<_>>())),
        ))),
    }
}

fn finish(out: ArrayRef, scalar: bool) -> DfResult<ColumnarValue> {
    if scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

// ------------------------------------------------------------------- subvector

#[derive(Debug, PartialEq, Eq, Hash)]
struct Subvector {
    signature: Signature,
}

/// pgvector's subvector: `count` elements from the 1-based `start`, clipped to the
/// vector; nothing left is 22000.
fn subvector(v: &[f32], start: i64, count: i64) -> Result<Vec<f32>, Error> {
    let dim = v.len() as i64;
    let end = start.saturating_add(count);
    let start = start.max(1);
    let end = end.min(dim + 1);
    if end <= start || count <= 0 {
        return Err(Error::DataException("vector must have at least 1 dimension".into()));
    }
    Ok(v[(start - 1) as usize..(end - 1) as usize].to_vec())
}

impl ScalarUDFImpl for Subvector {
    fn name(&self) -> &str {
        "subvector"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [v, s, c] if text_or_vector(v) && (s.is_integer() || s.is_null()) && (c.is_integer() || c.is_null()) => {
                Ok(vec![v.clone(), DataType::Int64, DataType::Int64])
            }
            _ => Err(df(Error::UnknownFunction("subvector takes a vector, a start and a count: subvector(v, 1, 3)".into()))),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Err(datafusion::error::DataFusionError::Internal("return_field_from_args is used".into()))
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(vector_field("subvector", None))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let n = if scalar { 1 } else { args.number_rows };
        let v = Vectors::from_columnar(&args.args[0]).map_err(df)?;
        let ints = |c: &ColumnarValue| -> DfResult<Vec<Option<i64>>> {
            let a = c.to_array(n)?;
            let a = datafusion::arrow::compute::cast(&a, &DataType::Int64)?;
            let a = a.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().cloned().ok_or_else(|| df(Error::Internal("int64".into())))?;
            Ok(a.iter().collect())
        };
        let (starts, counts) = (ints(&args.args[1])?, ints(&args.args[2])?);
        let mut rows = Vec::with_capacity(n);
        for i in 0..n {
            let row = match (v.get(if v.len() == 1 { 0 } else { i }), starts[i], counts[i]) {
                (Some(x), Some(s), Some(c)) => Some(subvector(x, s, c).map_err(df)?),
                _ => None,
            };
            rows.push(row);
        }
        finish(vectors_array(&rows, args.return_field.data_type())?, scalar)
    }
}

// ------------------------------------------------------------------- binary_quantize

/// `binary_quantize(v)`: one bit per element, 1 where it is positive. pgvector
/// returns `bit(n)`; lakehouse has no bit type and returns the bits as text
/// (`'101'`), which is what `bit`'s output looks like.
#[derive(Debug, PartialEq, Eq, Hash)]
struct BinaryQuantize {
    signature: Signature,
}

impl ScalarUDFImpl for BinaryQuantize {
    fn name(&self) -> &str {
        "binary_quantize"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [v] if text_or_vector(v) => Ok(vec![v.clone()]),
            _ => Err(df(Error::UnknownFunction("binary_quantize takes one vector".into()))),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let v = Vectors::from_columnar(&args.args[0]).map_err(df)?;
        let out: StringArray = (0..v.len()).map(|i| v.get(i).map(|x| x.iter().map(|e| if *e > 0.0 { '1' } else { '0' }).collect::<String>())).collect();
        finish(Arc::new(out), scalar)
    }
}

pub fn functions() -> Vec<ScalarUDF> {
    let sig = || Signature::user_defined(Volatility::Immutable);
    let mut out: Vec<ScalarUDF> = [Op::Add, Op::Sub, Op::Mul, Op::Concat, Op::Lt, Op::Le, Op::Eq, Op::Ne, Op::Ge, Op::Gt, Op::Cmp]
        .into_iter()
        .map(|op| ScalarUDF::new_from_impl(VectorOpFn { op, signature: sig() }))
        .collect();
    out.push(ScalarUDF::new_from_impl(Subvector { signature: sig() }));
    out.push(ScalarUDF::new_from_impl(BinaryQuantize { signature: sig() }));
    out.extend(state_functions());
    out
}

/// The function standing for a binary operator on vectors, if there is one.
pub fn for_operator(op: &datafusion::sql::sqlparser::ast::BinaryOperator) -> Option<Op> {
    use datafusion::sql::sqlparser::ast::BinaryOperator as B;
    Some(match op {
        B::Plus => Op::Add,
        B::Minus => Op::Sub,
        B::Multiply => Op::Mul,
        B::StringConcat => Op::Concat,
        B::Lt => Op::Lt,
        B::LtEq => Op::Le,
        B::Eq => Op::Eq,
        B::NotEq => Op::Ne,
        B::GtEq => Op::Ge,
        B::Gt => Op::Gt,
        _ => return None,
    })
}

pub fn udf(op: Op) -> ScalarUDF {
    ScalarUDF::new_from_impl(VectorOpFn { op, signature: Signature::user_defined(Volatility::Immutable) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_order_and_slices_follow_pgvector() {
        assert!(matches!(eval(Op::Add, &[1.0, 2.0], &[3.0, 4.0]), Ok(Value::Vector(v)) if v == [4.0, 6.0]));
        assert_eq!(eval(Op::Add, &[3e38], &[3e38]).err().unwrap().sqlstate(), "22003");
        assert_eq!(eval(Op::Mul, &[1e-37], &[1e-37]).err().unwrap().sqlstate(), "22003");
        assert_eq!(eval(Op::Sub, &[1.0, 2.0], &[3.0]).err().unwrap().sqlstate(), "22000");
        assert_eq!(compare(&[1.0, 2.0], &[1.0, 2.0, 3.0]), std::cmp::Ordering::Less);
        assert_eq!(compare(&[2.0, 3.0], &[1.0, 2.0, 3.0]), std::cmp::Ordering::Greater);
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(subvector(&v, 1, 3).unwrap(), [1.0, 2.0, 3.0]);
        assert_eq!(subvector(&v, -1, 3).unwrap(), [1.0]);
        assert_eq!(subvector(&v, 3, 9).unwrap(), [3.0, 4.0, 5.0]);
        assert_eq!(subvector(&v, 3, i32::MAX as i64).unwrap(), [3.0, 4.0, 5.0]);
        assert_eq!(subvector(&v, -2147483644, 2147483647).unwrap(), [1.0, 2.0]);
        assert!(subvector(&v, 1, 0).is_err() && subvector(&v, -1, 2).is_err() && subvector(&v, i32::MAX as i64, 10).is_err());
    }
}

// ------------------------------------------------------------------- aggregate states

/// pgvector's aggregate state functions over a `float8[]` state `{n, sum_1, …, sum_d}`:
/// `vector_accum(state, v)`, `vector_combine(a, b)`, `vector_avg(state)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum StateFn {
    Accum,
    Combine,
    Avg,
}

impl StateFn {
    fn name(self) -> &'static str {
        match self {
            StateFn::Accum => "vector_accum",
            StateFn::Combine => "vector_combine",
            StateFn::Avg => "vector_avg",
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct VectorState {
    f: StateFn,
    signature: Signature,
}

/// A state array: one dimension, no NULLs, at least one element (pgvector's
/// CheckStateArray, an internal error there too).
fn state_of(f: StateFn, a: &ArrayRef, i: usize) -> Result<Option<Vec<f64>>, Error> {
    // pgvector raises this with elog (XX000); its message is shown, not masked.
    let bad = || Error::State("XX000", format!("{}: expected state array", f.name()));
    if a.is_null(i) {
        return Ok(None);
    }
    let values: Vec<f64> = match a.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let t = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
            let t = t.as_any().downcast_ref::<StringArray>().ok_or_else(bad)?.value(i).trim().to_string();
            let inner = t.strip_prefix('{').and_then(|r| r.strip_suffix('}')).ok_or_else(bad)?;
            if inner.contains(['{', '}']) || inner.trim().is_empty() {
                return Err(bad());
            }
            inner
                .split(',')
                .map(|p| {
                    let p = p.trim();
                    if p.eq_ignore_ascii_case("null") { Err(bad()) } else { p.parse::<f64>().map_err(|_| bad()) }
                })
                .collect::<Result<_, _>>()?
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
            let row = ScalarValue::try_from_array(a, i)?;
            let arr = match row {
                ScalarValue::List(l) => l.value(0),
                ScalarValue::LargeList(l) => l.value(0),
                ScalarValue::FixedSizeList(l) => l.value(0),
                _ => return Err(bad()),
            };
            if arr.null_count() > 0 || arr.is_empty() || matches!(arr.data_type(), DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)) {
                return Err(bad());
            }
            let f = datafusion::arrow::compute::cast(&arr, &DataType::Float64).map_err(|_| bad())?;
            f.as_any().downcast_ref::<datafusion::arrow::array::Float64Array>().ok_or_else(bad)?.values().to_vec()
        }
        _ => return Err(bad()),
    };
    if values.is_empty() {
        return Err(bad());
    }
    Ok(Some(values))
}

fn check_dim(dim: usize) -> Result<(), Error> {
    if dim < 1 {
        return Err(Error::DataException("vector must have at least 1 dimension".into()));
    }
    if dim > MAX_DIMS {
        return Err(Error::ProgramLimit(format!("vector cannot have more than {MAX_DIMS} dimensions")));
    }
    Ok(())
}

impl ScalarUDFImpl for VectorState {
    fn name(&self) -> &str {
        self.f.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let arity = if self.f == StateFn::Avg { 1 } else { 2 };
        if arg_types.len() != arity || !arg_types.iter().all(text_or_vector) {
            return Err(df(Error::UnknownFunction(format!("function {} takes {arity} float8[] state argument(s)", self.name()))));
        }
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Err(datafusion::error::DataFusionError::Internal("return_field_from_args is used".into()))
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(match self.f {
            StateFn::Avg => vector_field(self.name(), None),
            _ => Arc::new(Field::new(self.name(), DataType::List(Arc::new(Field::new("item", DataType::Float64, true))), true)),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let n = if scalar { 1 } else { args.number_rows };
        let arrays = args.args.iter().map(|a| a.to_array(n)).collect::<DfResult<Vec<_>>>()?;
        let mut states: Vec<Option<Vec<f64>>> = vec![];
        let mut vectors: Vec<Option<Vec<f32>>> = vec![];
        for i in 0..n {
            let a = state_of(self.f, &arrays[0], i).map_err(df)?;
            match self.f {
                StateFn::Accum => {
                    let v = Vectors::from_array(&arrays[1]).map_err(df)?;
                    let v = v.get(i).map(|x| x.to_vec());
                    states.push(match (a, v) {
                        (Some(s), Some(v)) => {
                            let count = s[0];
                            // A fresh state ({0}) takes the vector's dimension.
                            let mut out = if count == 0.0 && s.len() == 1 { vec![0.0; v.len() + 1] } else { s.clone() };
                            if out.len() - 1 != v.len() {
                                return Err(df(Error::DataException(format!("expected {} dimensions, not {}", out.len() - 1, v.len()))));
                            }
                            out[0] = count + 1.0;
                            for (o, x) in out[1..].iter_mut().zip(&v) {
                                *o += *x as f64;
                            }
                            Some(out)
                        }
                        _ => None,
                    });
                }
                StateFn::Combine => {
                    let b = state_of(self.f, &arrays[1], i).map_err(df)?;
                    states.push(match (a, b) {
                        (Some(a), Some(b)) => Some(if a[0] == 0.0 {
                            check_dim(b.len() - 1).map_err(df)?;
                            b
                        } else if b[0] == 0.0 {
                            check_dim(a.len() - 1).map_err(df)?;
                            a
                        } else {
                            check_dim(a.len() - 1).map_err(df)?;
                            if a.len() != b.len() {
                                return Err(df(Error::DataException(format!("expected {} dimensions, not {}", a.len() - 1, b.len() - 1))));
                            }
                            a.iter().zip(&b).map(|(x, y)| x + y).collect()
                        }),
                        _ => None,
                    });
                }
                StateFn::Avg => {
                    vectors.push(match a {
                        Some(s) if s[0] == 0.0 => None,
                        Some(s) => {
                            check_dim(s.len() - 1).map_err(df)?;
                            let v: Vec<f32> = s[1..].iter().map(|x| (x / s[0]) as f32).collect();
                            if v.iter().any(|x| x.is_infinite()) {
                                return Err(df(out_of_range(false)));
                            }
                            Some(v)
                        }
                        None => None,
                    });
                }
            }
        }
        let out: ArrayRef = match self.f {
            StateFn::Avg => vectors_array(&vectors, args.return_field.data_type())?,
            _ => Arc::new(ListArray::from_iter_primitive::<datafusion::arrow::datatypes::Float64Type, _, _>(
                states.iter().map(|s| s.as_ref().map(|v| v.iter().map(|x| Some(*x)).collect::<Vec<_>>())),
            )),
        };
        finish(out, scalar)
    }
}

pub fn state_functions() -> Vec<ScalarUDF> {
    [StateFn::Accum, StateFn::Combine, StateFn::Avg]
        .into_iter()
        .map(|f| ScalarUDF::new_from_impl(VectorState { f, signature: Signature::user_defined(Volatility::Immutable) }))
        .collect()
}
