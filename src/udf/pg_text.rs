//! A value's text as PostgreSQL's output functions write it, and `::text` casts that
//! use it (#14): timestamps `2020-01-02 03:04:05.5` (not Arrow's `T` form), times
//! without trailing zeros, floats as `1e+20`/`Infinity`, bytea as `\x…` hex, arrays
//! as `{1,2,"a b"}`; and text cast to bytea read as bytea's input function reads it. The wire encoder (server/encode.rs) writes these types the same
//! way, so `SELECT x` and `SELECT x::text` agree, and `quote_literal` quotes this text.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::optimizer::AnalyzerRule;

/// PostgreSQL's text output for float4/float8: shortest round-trip digits, exponent
/// form outside [1e-4, 1e16) (float4: 1e7), `NaN`, `Infinity`, `-Infinity`.
pub fn float_text(v: f64, single: bool) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let digits = if single { format!("{}", v as f32) } else { format!("{v}") };
    let upper = if single { 1e7 } else { 1e16 };
    let a = v.abs();
    if a != 0.0 && (a >= upper || a < 1e-4) {
        let e = if single { format!("{:e}", v as f32) } else { format!("{v:e}") };
        // Rust writes 1.5e-5 / 1e20; PostgreSQL writes 1.5e-05 / 1e+20.
        if let Some((mantissa, exp)) = e.split_once('e') {
            let (sign, num) = exp.strip_prefix('-').map(|n| ('-', n)).unwrap_or(('+', exp));
            return format!("{mantissa}e{sign}{num:0>2}");
        }
        return e;
    }
    digits
}

/// A fraction of a second as PostgreSQL writes it: `.5`, none for zero.
fn fraction(nanos: u32) -> String {
    let micros = nanos / 1000;
    if micros == 0 { String::new() } else { format!(".{micros:06}").trim_end_matches('0').to_string() }
}

/// A timestamp (microseconds since the epoch, UTC) as PostgreSQL writes it:
/// `2020-01-02 03:04:05.5`, `+00` after a timestamptz, ` BC` before year 1.
fn timestamp_text(micros: i64, with_zone: bool) -> Option<String> {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::from_timestamp_micros(micros)?.naive_utc();
    let (date, bc) = if t.year() <= 0 { (format!("{:04}-{}", 1 - t.year(), t.format("%m-%d")), " BC") } else { (t.format("%Y-%m-%d").to_string(), "") };
    Some(format!("{date} {}{}{}{bc}", t.format("%H:%M:%S"), fraction(t.nanosecond()), if with_zone { "+00" } else { "" }))
}

/// A time of day as PostgreSQL writes it: `01:02:03`, `01:02:03.25`.
fn time_text(t: chrono::NaiveTime) -> String {
    use chrono::Timelike;
    format!("{}{}", t.format("%H:%M:%S"), fraction(t.nanosecond()))
}

/// Does PostgreSQL's text of this type differ from Arrow's?
pub fn has_own_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(..)
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
    )
}

/// An array element as PostgreSQL's array output writes it: quoted when empty, `NULL`,
/// or holding a blank, a comma, a brace, a quote or a backslash.
fn array_item(s: &str) -> String {
    let plain = !s.is_empty()
        && !s.eq_ignore_ascii_case("null")
        && !s.chars().any(|c| c.is_whitespace() || matches!(c, '{' | '}' | ',' | '"' | '\\'));
    if plain {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Every value of `a` as PostgreSQL's text (None: NULL), the column converted once.
fn texts_of(a: &dyn Array) -> DfResult<Vec<Option<String>>> {
    let whole: ArrayRef = a.slice(0, a.len());
    let n = a.len();
    let each = |f: &dyn Fn(usize) -> Option<String>| -> Vec<Option<String>> { (0..n).map(|i| if a.is_null(i) { None } else { f(i) }).collect() };
    Ok(match a.data_type() {
        DataType::Timestamp(_, tz) => {
            let c = cast(&whole, &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))?;
            let p = c.as_primitive::<TimestampMicrosecondType>();
            each(&|i| timestamp_text(p.value(i), tz.is_some()))
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            let c = cast(&whole, &DataType::Time64(TimeUnit::Microsecond))?;
            let p = c.as_primitive::<Time64MicrosecondType>();
            each(&|i| p.value_as_time(i).map(time_text))
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let c = cast(&whole, &DataType::Float64)?;
            let p = c.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            let single = a.data_type() != &DataType::Float64;
            each(&|i| Some(float_text(p.value(i), single)))
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let c = cast(&whole, &DataType::Binary)?;
            let b = c.as_binary::<i32>();
            each(&|i| {
                let bytes = b.value(i);
                let mut s = String::with_capacity(2 + 2 * bytes.len());
                s.push_str("\\x");
                for byte in bytes {
                    s.push_str(&format!("{byte:02x}"));
                }
                Some(s)
            })
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                if a.is_null(i) {
                    out.push(None);
                    continue;
                }
                let values: ArrayRef = match a.data_type() {
                    DataType::List(_) => a.as_list::<i32>().value(i),
                    DataType::LargeList(_) => a.as_list::<i64>().value(i),
                    _ => a.as_fixed_size_list().value(i),
                };
                let nested = matches!(values.data_type(), DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..));
                let items: Vec<String> = texts_of(values.as_ref())?
                    .into_iter()
                    .map(|t| match t {
                        None => "NULL".to_string(),
                        // An inner array is written as it is, not quoted as one element.
                        Some(t) if nested => t,
                        Some(t) => array_item(&t),
                    })
                    .collect();
                out.push(Some(format!("{{{}}}", items.join(","))));
            }
            out
        }
        _ => {
            let fmt = ArrayFormatter::try_new(a, &FormatOptions::default())?;
            each(&|i| Some(fmt.value(i).to_string()))
        }
    })
}

/// Value `i` of `a` as PostgreSQL's text (None: NULL).
pub fn text(a: &dyn Array, i: usize) -> DfResult<Option<String>> {
    Ok(texts_of(a.slice(i, 1).as_ref())?.pop().flatten())
}

/// A whole array as PostgreSQL's text.
pub fn texts(a: &dyn Array) -> DfResult<ArrayRef> {
    if !has_own_text(a.data_type()) {
        return Ok(cast(&a.slice(0, a.len()), &DataType::Utf8)?);
    }
    let mut out = StringBuilder::with_capacity(a.len(), a.len() * 8);
    for t in texts_of(a)? {
        out.append_option(t);
    }
    Ok(Arc::new(out.finish()))
}

/// `x::text` for the types whose PostgreSQL text differs from Arrow's.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgText {
    signature: Signature,
}

fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(PgText { signature: Signature::any(1, Volatility::Immutable) })
}

impl ScalarUDFImpl for PgText {
    fn name(&self) -> &str {
        "lakehouse_pg_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let input = args.args[0].to_array(args.number_rows)?;
        Ok(super::one_or_many(texts(input.as_ref())?, &args))
    }
}

/// bytea's input function: `\x` then hex digits (blanks between pairs allowed), or
/// the escape form (`\\` a backslash, `\ooo` an octal byte, other bytes as they are).
pub fn bytea_in(s: &str) -> Result<Vec<u8>, crate::error::Error> {
    let bad = |m: String| crate::error::Error::InvalidText(m);
    if let Some(hex) = s.strip_prefix("\\x").or_else(|| s.strip_prefix("\\X")) {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if let Some(c) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
            return Err(bad(format!("invalid hexadecimal digit: \"{}\"", *c as char)));
        }
        if digits.len() % 2 != 0 {
            return Err(bad("invalid hexadecimal data: odd number of digits".into()));
        }
        let nibble = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
        return Ok(digits.chunks(2).map(|p| nibble(p[0]) << 4 | nibble(p[1])).collect());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) && b[i + 1] <= b'3' {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            return Err(bad("invalid input syntax for type bytea".into()));
        }
    }
    Ok(out)
}

/// Text cast to bytea, through [`bytea_in`].
#[derive(Debug, PartialEq, Eq, Hash)]
struct ByteaIn {
    signature: Signature,
}

impl ScalarUDFImpl for ByteaIn {
    fn name(&self) -> &str {
        "lakehouse_bytea_in"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Binary)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let input = cast(&args.args[0].to_array(args.number_rows)?, &DataType::Utf8)?;
        let input = input.as_string::<i32>();
        let mut out = datafusion::arrow::array::BinaryBuilder::with_capacity(input.len(), input.value_data().len());
        for i in 0..input.len() {
            if input.is_null(i) {
                out.append_null();
            } else {
                out.append_value(bytea_in(input.value(i)).map_err(crate::error::Error::into_datafusion)?);
            }
        }
        Ok(super::one_or_many(Arc::new(out.finish()), &args))
    }
}

/// Rewrites casts to text of those types as [`PgText`] calls, and casts of text to
/// bytea as [`ByteaIn`] calls.
#[derive(Debug, Default)]
pub struct PgTextCasts;

impl AnalyzerRule for PgTextCasts {
    fn name(&self) -> &str {
        "pg_text_casts"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| {
            let [input] = p.inputs()[..] else { return Ok(Transformed::no(p)) };
            let schema: DFSchema = input.schema().as_ref().clone();
            p.map_expressions(|e| {
                e.transform_up(|e| match e {
                    Expr::Cast(c)
                        if matches!(c.field.data_type(), DataType::Binary | DataType::LargeBinary | DataType::BinaryView)
                            && c.expr.get_type(&schema).is_ok_and(|t| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)) =>
                    {
                        let f = ScalarUDF::new_from_impl(ByteaIn { signature: Signature::any(1, Volatility::Immutable) });
                        let call = Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(f), vec![*c.expr]));
                        Ok(Transformed::yes(if c.field.data_type() == &DataType::Binary { call } else { call.cast_to(c.field.data_type(), &schema)? }))
                    }
                    Expr::Cast(c)
                        if matches!(c.field.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
                            && c.expr.get_type(&schema).is_ok_and(|t| has_own_text(&t)) =>
                    {
                        let call = Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf()), vec![*c.expr]));
                        Ok(Transformed::yes(if c.field.data_type() == &DataType::Utf8 { call } else { call.cast_to(c.field.data_type(), &schema)? }))
                    }
                    e => Ok(Transformed::no(e)),
                })
            })
        })
        .map(|t| t.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BinaryArray, Float64Array, ListArray, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::Int32Type;

    #[test]
    fn postgres_text_forms() {
        let ts = TimestampMicrosecondArray::from(vec![Some(1_577_934_245_500_000), None]);
        assert_eq!(text(&ts, 0).unwrap().as_deref(), Some("2020-01-02 03:04:05.5"));
        assert_eq!(text(&ts, 1).unwrap(), None);
        let f = Float64Array::from(vec![1e20, f64::INFINITY, 0.5]);
        assert_eq!((0..3).map(|i| text(&f, i).unwrap().unwrap()).collect::<Vec<_>>(), ["1e+20", "Infinity", "0.5"]);
        let b = BinaryArray::from(vec![&b"\x01\xff"[..]]);
        assert_eq!(text(&b, 0).unwrap().as_deref(), Some("\\x01ff"));
        let l = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(2), None, Some(4)])]);
        assert_eq!(text(&l, 0).unwrap().as_deref(), Some("{2,NULL,4}"));
        let s = StringArray::from(vec!["a b", "", "null", "x\"y", "plain"]);
        let items: Vec<String> = (0..5).map(|i| array_item(s.value(i))).collect();
        assert_eq!(items, ["\"a b\"", "\"\"", "\"null\"", "\"x\\\"y\"", "plain"]);
    }

    #[test]
    fn bytea_input_forms() {
        assert_eq!(bytea_in("\\x01ff").unwrap(), vec![1, 255]);
        assert_eq!(bytea_in("\\x01 ff").unwrap(), vec![1, 255]);
        assert_eq!(bytea_in("a\\\\b\\001").unwrap(), b"a\\b\x01".to_vec());
        assert_eq!(bytea_in("\\x0").unwrap_err().sqlstate(), "22P02");
        assert_eq!(bytea_in("\\xzz").unwrap_err().sqlstate(), "22P02");
        assert_eq!(bytea_in("a\\b").unwrap_err().sqlstate(), "22P02");
    }
}
