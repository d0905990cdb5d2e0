//! Distance kernels and pgvector's vector functions: `l2_distance`, `cosine_distance`,
//! `inner_product`, `negative_inner_product`, `l1_distance`, `vector_dims`,
//! `vector_norm`, `l2_normalize`.
//!
//! Kernels sum into [`LANES`] independent accumulators over fixed-size chunks, so the
//! compiler turns the inner loop into SIMD adds/multiplies without needing to reorder
//! float additions (which it may not do on its own). `naive` holds the plain loops the
//! benchmark compares against (`lakehouse bench vectors`).
//!
//! Like pgvector, sums are taken in f32 and results returned as double precision.
//! Unlike pgvector (which returns NaN), the cosine distance involving a zero vector is
//! NULL: the angle is undefined, and NULL sorts last instead of poisoning comparisons.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::vector::{Vectors, build_vectors, is_vector_like, vector_scalar, vector_type};
use crate::error::Error;

type DfResult<T> = datafusion::error::Result<T>;

pub const LANES: usize = 16;

/// `acc + x * y`, fused where the caller was compiled with FMA.
#[inline(always)]
fn madd<const FMA: bool>(x: f32, y: f32, acc: f32) -> f32 {
    if FMA { x.mul_add(y, acc) } else { acc + x * y }
}

/// `Σ lane(a_i, b_i)` over [`LANES`] independent accumulators (what lets the compiler
/// vectorise), then the remainder with `tail`.
#[inline(always)]
fn fold_lanes(a: &[f32], b: &[f32], lane: impl Fn(f32, f32, f32) -> f32, tail: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ac, ar) = a.as_chunks::<LANES>();
    let (bc, br) = b.as_chunks::<LANES>();
    for (x, y) in ac.iter().zip(bc) {
        for l in 0..LANES {
            acc[l] = lane(x[l], y[l], acc[l]);
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ar.iter().zip(br) {
        s = tail(*x, *y, s);
    }
    s
}

#[inline(always)]
fn dot_impl<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    fold_lanes(a, b, madd::<FMA>, |x, y, s| s + x * y)
}

#[inline(always)]
fn l2_squared_impl<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    fold_lanes(
        a,
        b,
        |x, y, acc| {
            let d = x - y;
            madd::<FMA>(d, d, acc)
        },
        |x, y, s| {
            let d = x - y;
            s + d * d
        },
    )
}

#[inline(always)]
fn l1_impl<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let step = |x: f32, y: f32, acc: f32| acc + (x - y).abs();
    fold_lanes(a, b, step, step)
}

#[inline(always)]
fn cosine_parts_impl<const FMA: bool>(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (mut d, mut na, mut nb) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
    let (ac, ar) = a.as_chunks::<LANES>();
    let (bc, br) = b.as_chunks::<LANES>();
    for (x, y) in ac.iter().zip(bc) {
        for l in 0..LANES {
            d[l] = madd::<FMA>(x[l], y[l], d[l]);
            na[l] = madd::<FMA>(x[l], x[l], na[l]);
            nb[l] = madd::<FMA>(y[l], y[l], nb[l]);
        }
    }
    let (mut sd, mut sa, mut sb): (f32, f32, f32) = (d.iter().sum(), na.iter().sum(), nb.iter().sum());
    for (x, y) in ar.iter().zip(br) {
        sd += x * y;
        sa += x * x;
        sb += y * y;
    }
    (sd, sa, sb)
}

/// The same kernels compiled for AVX2 + FMA, chosen at run time when the CPU has them
/// (the binary itself targets baseline x86-64).
#[cfg(target_arch = "x86_64")]
mod x86 {
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        super::dot_impl::<true>(a, b)
    }
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        super::l2_squared_impl::<true>(a, b)
    }
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn l1(a: &[f32], b: &[f32]) -> f32 {
        super::l1_impl::<true>(a, b)
    }
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn cosine_parts(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
        super::cosine_parts_impl::<true>(a, b)
    }

    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
}

macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident -> $out:ty, $generic:ident) => {
        $(#[$doc])*
        #[inline]
        pub fn $name(a: &[f32], b: &[f32]) -> $out {
            #[cfg(target_arch = "x86_64")]
            if x86::available() {
                // SAFETY: the CPU has AVX2 and FMA, which is all the function assumes.
                return unsafe { x86::$name(a, b) };
            }
            $generic::<false>(a, b)
        }
    };
}

dispatch!(/// `a·b`.
    dot -> f32, dot_impl);
dispatch!(/// `|a - b|²`.
    l2_squared -> f32, l2_squared_impl);
dispatch!(/// `Σ|a - b|`.
    l1 -> f32, l1_impl);
dispatch!(/// `(a·b, |a|², |b|²)` in one pass.
    cosine_parts -> (f32, f32, f32), cosine_parts_impl);

/// The portable (baseline) kernels, for the benchmark.
pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    dot_impl::<false>(a, b)
}

pub fn l2_squared_portable(a: &[f32], b: &[f32]) -> f32 {
    l2_squared_impl::<false>(a, b)
}

#[inline]
pub fn norm_squared(a: &[f32]) -> f32 {
    dot(a, a)
}

/// Cosine distance, None when either vector is zero.
#[inline]
pub fn cosine_distance(a: &[f32], b: &[f32]) -> Option<f64> {
    let (d, na, nb) = cosine_parts(a, b);
    if na == 0.0 || nb == 0.0 {
        return None;
    }
    let sim = d as f64 / ((na as f64) * (nb as f64)).sqrt();
    // Rounding can push |sim| past 1.
    Some(1.0 - sim.clamp(-1.0, 1.0))
}

/// The plain loops, for the benchmark's baseline.
pub mod naive {
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut s = 0.0;
        for i in 0..a.len() {
            s += a[i] * b[i];
        }
        s
    }

    pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        let mut s = 0.0;
        for i in 0..a.len() {
            s += (a[i] - b[i]) * (a[i] - b[i]);
        }
        s
    }
}

// ------------------------------------------------------------------- metrics

/// A distance between two vectors, as the SQL functions and indexes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    L2,
    Cosine,
    /// Negative inner product (pgvector's `<#>`), smaller is closer.
    Ip,
    L1,
}

impl Metric {
    /// The SQL function computing this metric as "smaller is closer".
    pub fn function(self) -> &'static str {
        match self {
            Metric::L2 => "l2_distance",
            Metric::Cosine => "cosine_distance",
            Metric::Ip => "negative_inner_product",
            Metric::L1 => "l1_distance",
        }
    }

    pub fn from_function(name: &str) -> Option<Metric> {
        Some(match name {
            "l2_distance" => Metric::L2,
            "cosine_distance" => Metric::Cosine,
            "negative_inner_product" => Metric::Ip,
            "l1_distance" => Metric::L1,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::Cosine => "cosine",
            Metric::Ip => "ip",
            Metric::L1 => "l1",
        }
    }

    /// pgvector's operator class name.
    pub fn opclass(self) -> &'static str {
        match self {
            Metric::L2 => "vector_l2_ops",
            Metric::Cosine => "vector_cosine_ops",
            Metric::Ip => "vector_ip_ops",
            Metric::L1 => "vector_l1_ops",
        }
    }

    /// The distance as SQL reports it.
    #[inline]
    pub fn eval(self, a: &[f32], b: &[f32]) -> Option<f64> {
        match self {
            Metric::L2 => Some((l2_squared(a, b) as f64).sqrt()),
            Metric::Cosine => cosine_distance(a, b),
            Metric::Ip => Some(-(dot(a, b) as f64)),
            Metric::L1 => Some(l1(a, b) as f64),
        }
    }
}

// ------------------------------------------------------------------- binary functions

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Binary {
    Metric(Metric),
    InnerProduct,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DistanceFn {
    name: &'static str,
    op: Binary,
    signature: Signature,
}

fn vector_arg_type(t: &DataType, fname: &str) -> DfResult<DataType> {
    if is_vector_like(t) || matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null) {
        Ok(t.clone())
    } else {
        Err(Error::UnknownFunction(format!(
            "function {fname}({t}) does not exist; its arguments must be vectors (vector(n), real[] or '[1,2,3]')"
        ))
        .into_datafusion())
    }
}

/// Constant arguments (text or array literals) become vector literals at planning
/// time, so they are parsed once and the index rewrite can read them.
fn literal_to_vector(e: Expr) -> DfResult<Expr> {
    match e {
        Expr::Literal(s, meta) if !s.is_null() && !matches!(s, ScalarValue::FixedSizeList(_)) => {
            let rows = Vectors::from_array(&s.to_array_of_size(1)?).map_err(Error::into_datafusion)?;
            match rows.get(0) {
                Some(v) => {
                    super::vector::check_values(v).map_err(Error::into_datafusion)?;
                    Ok(Expr::Literal(vector_scalar(v), meta))
                }
                None => Ok(Expr::Literal(s, meta)),
            }
        }
        other => Ok(other),
    }
}

/// Arity check plus per-argument vector check, shared by the functions below.
fn coerce_vectors(fname: &str, arg_types: &[DataType], arity: usize) -> DfResult<Vec<DataType>> {
    if arg_types.len() != arity {
        let what = if arity == 1 { "one vector" } else { "two vectors" };
        return Err(Error::UnknownFunction(format!("{fname} takes {what}")).into_datafusion());
    }
    arg_types.iter().map(|t| vector_arg_type(t, fname)).collect()
}

fn dims_mismatch(a: usize, b: usize) -> DataFusionError {
    Error::DataException(format!("different vector dimensions {a} and {b}")).into_datafusion()
}

impl ScalarUDFImpl for DistanceFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        coerce_vectors(self.name, arg_types, 2)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        if !args.iter().any(|a| matches!(a, Expr::Literal(s, _) if !s.is_null() && !matches!(s, ScalarValue::FixedSizeList(_)))) {
            return Ok(ExprSimplifyResult::Original(args));
        }
        let args = args.into_iter().map(literal_to_vector).collect::<DfResult<Vec<_>>>()?;
        Ok(ExprSimplifyResult::Simplified(Expr::ScalarFunction(
            datafusion::logical_expr::expr::ScalarFunction::new_udf(Arc::new(ScalarUDF::new_from_impl(DistanceFn {
                name: self.name,
                op: self.op,
                signature: self.signature.clone(),
            })), args),
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let a = Vectors::from_columnar(&args.args[0]).map_err(Error::into_datafusion)?;
        let b = Vectors::from_columnar(&args.args[1]).map_err(Error::into_datafusion)?;
        let n = if scalar { 1 } else { args.number_rows };
        let (a1, b1) = (a.len() == 1 && n > 1, b.len() == 1 && n > 1);
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let x = a.get(if a1 { 0 } else { i });
            let y = b.get(if b1 { 0 } else { i });
            let v = match (x, y) {
                (Some(x), Some(y)) => {
                    if x.len() != y.len() {
                        return Err(dims_mismatch(x.len(), y.len()));
                    }
                    match self.op {
                        Binary::Metric(m) => m.eval(x, y),
                        Binary::InnerProduct => Some(dot(x, y) as f64),
                    }
                }
                _ => None,
            };
            out.push(v);
        }
        let arr = Float64Array::from(out);
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&arr, 0)?))
        } else {
            Ok(ColumnarValue::Array(Arc::new(arr)))
        }
    }
}

fn binary(name: &'static str, op: Binary) -> ScalarUDF {
    ScalarUDF::new_from_impl(DistanceFn { name, op, signature: Signature::user_defined(Volatility::Immutable) })
}

// ------------------------------------------------------------------- unary functions

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Unary {
    Dims,
    Norm,
    Normalize,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct UnaryFn {
    name: &'static str,
    op: Unary,
    signature: Signature,
}

impl ScalarUDFImpl for UnaryFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        coerce_vectors(self.name, arg_types, 1)
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match self.op {
            Unary::Dims => DataType::Int32,
            Unary::Norm => DataType::Float64,
            Unary::Normalize => match arg_types.first() {
                Some(DataType::FixedSizeList(_, d)) => vector_type(*d as usize),
                _ => DataType::List(Arc::new(datafusion::arrow::datatypes::Field::new("item", DataType::Float32, true))),
            },
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let a = Vectors::from_columnar(&args.args[0]).map_err(Error::into_datafusion)?;
        let arr: ArrayRef = match self.op {
            Unary::Dims => Arc::new(Int32Array::from((0..a.len()).map(|i| a.get(i).map(|v| v.len() as i32)).collect::<Vec<_>>())),
            Unary::Norm => Arc::new(Float64Array::from(
                (0..a.len()).map(|i| a.get(i).map(|v| (norm_squared(v) as f64).sqrt())).collect::<Vec<_>>(),
            )),
            Unary::Normalize => {
                let rows: Vec<Option<Vec<f32>>> = (0..a.len())
                    .map(|i| {
                        a.get(i).map(|v| {
                            let n = (norm_squared(v) as f64).sqrt();
                            // pgvector keeps a zero vector as it is.
                            if n == 0.0 { v.to_vec() } else { v.iter().map(|x| (*x as f64 / n) as f32).collect() }
                        })
                    })
                    .collect();
                let built = build_from_rows(rows)?;
                match args.return_field.data_type() {
                    DataType::FixedSizeList(..) => built,
                    t => datafusion::arrow::compute::cast(&built, t)?,
                }
            }
        };
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&arr, 0)?))
        } else {
            Ok(ColumnarValue::Array(arr))
        }
    }
}

fn build_from_rows(rows: Vec<Option<Vec<f32>>>) -> DfResult<ArrayRef> {
    let list = datafusion::arrow::array::ListArray::from_iter_primitive::<datafusion::arrow::datatypes::Float32Type, _, _>(
        rows.into_iter().map(|r| r.map(|v| v.into_iter().map(Some))),
    );
    let arr: ArrayRef = Arc::new(list);
    let v = Vectors::from_array(&arr).map_err(Error::into_datafusion)?;
    build_vectors(&v, None).map_err(Error::into_datafusion)
}

fn unary(name: &'static str, op: Unary) -> ScalarUDF {
    ScalarUDF::new_from_impl(UnaryFn { name, op, signature: Signature::user_defined(Volatility::Immutable) })
}

/// `vector_norm(v)`, for plans built in Rust.
pub fn vector_norm() -> ScalarUDF {
    unary("vector_norm", Unary::Norm)
}

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        binary("l2_distance", Binary::Metric(Metric::L2)),
        binary("cosine_distance", Binary::Metric(Metric::Cosine)),
        binary("negative_inner_product", Binary::Metric(Metric::Ip)),
        binary("l1_distance", Binary::Metric(Metric::L1)),
        binary("inner_product", Binary::InnerProduct),
        unary("vector_dims", Unary::Dims),
        vector_norm(),
        unary("l2_normalize", Unary::Normalize),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_naive_on_odd_lengths() {
        for n in [1usize, 3, 15, 16, 17, 50, 128, 131] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            assert!((dot(&a, &b) - naive::dot(&a, &b)).abs() < 1e-3, "dot n={n}");
            assert!((l2_squared(&a, &b) - naive::l2_squared(&a, &b)).abs() < 1e-3, "l2 n={n}");
            let l1n: f32 = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum();
            assert!((l1(&a, &b) - l1n).abs() < 1e-3);
        }
    }

    #[test]
    fn cosine_of_zero_vector_is_none() {
        assert_eq!(cosine_distance(&[0.0, 0.0], &[1.0, 1.0]), None);
        assert!((cosine_distance(&[1.0, 0.0], &[0.0, 1.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!(cosine_distance(&[1.0, 2.0], &[2.0, 4.0]).unwrap().abs() < 1e-7);
    }
}
