//! PostgreSQL's `json` and `jsonb` types and the JSON builders ORMs use (#14).
//!
//! A `json`/`jsonb` column is text (Utf8) marked with its type in the field metadata
//! (`lakehouse.type` = `json` | `jsonb`): stored as written, sent as type 114 / 3802
//! (jsonb's binary form with its version byte). `json_build_object`,
//! `jsonb_build_object`, `json_build_array` and `jsonb_build_array` write JSON text
//! from their arguments (SQLAlchemy's reflection reads identity options this way); a
//! json argument is nested as JSON, not quoted as a string.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use super::vector::VECTOR_MARK;

/// The field of a `json` (`binary` false) or `jsonb` value.
pub fn json_field(name: &str, jsonb: bool) -> Field {
    Field::new(name, DataType::Utf8, true).with_metadata([(VECTOR_MARK.to_string(), if jsonb { "jsonb" } else { "json" }.to_string())].into())
}

/// Is `f` a json or jsonb value?
pub fn is_json(f: &Field) -> bool {
    f.metadata().get(VECTOR_MARK).is_some_and(|v| v == "json" || v == "jsonb")
}

pub fn functions() -> Vec<ScalarUDF> {
    [("json_build_object", false, true), ("jsonb_build_object", true, true), ("json_build_array", false, false), ("jsonb_build_array", true, false)]
        .into_iter()
        .map(|(name, jsonb, object)| ScalarUDF::new_from_impl(Build { name, jsonb, object, signature: Signature::variadic_any(Volatility::Immutable) }))
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Build {
    name: &'static str,
    jsonb: bool,
    object: bool,
    signature: Signature,
}

impl ScalarUDFImpl for Build {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        if self.object && args.arg_fields.len() % 2 != 0 {
            return Err(crate::error::Error::InvalidParameter(format!("argument list must have even number of elements; {}() takes key, value pairs", self.name)).into_datafusion());
        }
        Ok(Arc::new(json_field(self.name, self.jsonb)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let columns: Vec<ArrayRef> = args.args.iter().map(|a| a.to_array(n)).collect::<DfResult<_>>()?;
        let json_args: Vec<bool> = args.arg_fields.iter().map(|f| is_json(f)).collect();
        let mut out = StringBuilder::new();
        for row in 0..n {
            let mut text = String::new();
            text.push(if self.object { '{' } else { '[' });
            for (i, c) in columns.iter().enumerate() {
                let v = ScalarValue::try_from_array(c, row)?;
                if self.object && i % 2 == 0 {
                    if v.is_null() {
                        return Err(crate::error::Error::State("22004", "null value not allowed for object key".into()).into_datafusion());
                    }
                    if i > 0 {
                        text.push_str(", ");
                    }
                    push_string(&mut text, &scalar_text(&v));
                    // PostgreSQL's spellings: json keeps "k" : v, jsonb normalizes to "k": v.
                    text.push_str(if self.jsonb { ": " } else { " : " });
                } else {
                    if !self.object && i > 0 {
                        text.push_str(", ");
                    }
                    push_value(&mut text, &v, json_args[i]);
                }
            }
            text.push(if self.object { '}' } else { ']' });
            out.append_value(text);
        }
        Ok(super::one_or_many(Arc::new(out.finish()), &args))
    }
}

/// A value's text, as `::text` writes it.
fn scalar_text(v: &ScalarValue) -> String {
    match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A value as JSON: numbers and booleans as themselves, text quoted, arrays as JSON
/// arrays, json values nested as they are.
fn push_value(out: &mut String, v: &ScalarValue, json: bool) {
    if v.is_null() {
        out.push_str("null");
        return;
    }
    match v {
        ScalarValue::Boolean(Some(b)) => out.push_str(if *b { "true" } else { "false" }),
        ScalarValue::Int8(_) | ScalarValue::Int16(_) | ScalarValue::Int32(_) | ScalarValue::Int64(_) | ScalarValue::UInt8(_) | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_) | ScalarValue::UInt64(_) | ScalarValue::Decimal128(..) | ScalarValue::Decimal256(..) => out.push_str(&v.to_string()),
        ScalarValue::Float32(Some(f)) if f.is_finite() => out.push_str(&v.to_string()),
        ScalarValue::Float64(Some(f)) if f.is_finite() => out.push_str(&v.to_string()),
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) if json => out.push_str(s),
        ScalarValue::List(l) if l.len() == 1 => {
            let values = l.value(0);
            out.push('[');
            for j in 0..values.len() {
                if j > 0 {
                    out.push_str(", ");
                }
                match ScalarValue::try_from_array(&values, j) {
                    Ok(x) => push_value(out, &x, false),
                    Err(_) => out.push_str("null"),
                }
            }
            out.push(']');
        }
        other => push_string(out, &scalar_text(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_as_json() {
        let mut s = String::new();
        push_value(&mut s, &ScalarValue::Utf8(Some("a\"b\n".into())), false);
        assert_eq!(s, r#""a\"b\n""#);
        let mut s = String::new();
        push_value(&mut s, &ScalarValue::Utf8(Some(r#"{"x": 1}"#.into())), true);
        assert_eq!(s, r#"{"x": 1}"#);
        let mut s = String::new();
        push_value(&mut s, &ScalarValue::Float64(Some(f64::NAN)), false);
        assert_eq!(s, r#""NaN""#);
        let mut s = String::new();
        push_value(&mut s, &ScalarValue::Int64(None), false);
        assert_eq!(s, "null");
    }
}
