//! PostgreSQL's json/jsonb operators and the functions behind them (#14):
//! `->`, `->>`, `#>`, `#>>`, `@>`, `<@`, `?`, `?|`, `?&`, and `json_extract_path[_text]`,
//! `json_object_field[_text]`, `json_array_element[_text]`, `json_typeof`,
//! `json_array_length`, `jsonb_contains`, `jsonb_exists[_any|_all]` (each also as `jsonb_…`).
//!
//! A json value is text (json.rs). Navigation scans that text without building a tree:
//! `->` on a `json` value returns the member's text exactly as written, as PostgreSQL
//! does; on a `jsonb` value it returns the member in jsonb's output form (keys sorted
//! shortest first, one space after `:` and `,`). Duplicate keys: the last one counts.
//! Text that is not JSON is 22P02, as PostgreSQL's input function reports it.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanBuilder, Int32Builder, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::ExprSchemable;
use datafusion::logical_expr::{ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::sql::sqlparser::ast::BinaryOperator;

use super::json::{is_json, json_field, push_string};
use super::vector::VECTOR_MARK;
use crate::error::Error;

/// Deepest nesting a json value may have here (PostgreSQL's limit is its stack depth).
const MAX_DEPTH: usize = 1000;

// ------------------------------------------------------------------------- scanning

fn invalid(text: &str) -> Error {
    let shown: String = text.chars().take(60).collect();
    Error::InvalidText(format!("invalid input syntax for type json: \"{shown}\""))
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end (exclusive) of the JSON value that starts at `b[i]` (no leading blanks),
/// checking its syntax on the way; `None` if it is not JSON.
fn value_end(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'{' => {
            let mut j = ws(b, i + 1);
            if b.get(j) == Some(&b'}') {
                return Some(j + 1);
            }
            loop {
                if b.get(j) != Some(&b'"') {
                    return None;
                }
                j = ws(b, string_end(b, j)?);
                if b.get(j) != Some(&b':') {
                    return None;
                }
                j = ws(b, value_end(b, ws(b, j + 1), depth + 1)?);
                match b.get(j)? {
                    b',' => j = ws(b, j + 1),
                    b'}' => return Some(j + 1),
                    _ => return None,
                }
            }
        }
        b'[' => {
            let mut j = ws(b, i + 1);
            if b.get(j) == Some(&b']') {
                return Some(j + 1);
            }
            loop {
                j = ws(b, value_end(b, j, depth + 1)?);
                match b.get(j)? {
                    b',' => j = ws(b, j + 1),
                    b']' => return Some(j + 1),
                    _ => return None,
                }
            }
        }
        b't' => b[i..].starts_with(b"true").then_some(i + 4),
        b'f' => b[i..].starts_with(b"false").then_some(i + 5),
        b'n' => b[i..].starts_with(b"null").then_some(i + 4),
        b'-' | b'0'..=b'9' => number_end(b, i),
        _ => None,
    }
}

fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match *b.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' => match *b.get(j + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => j += 2,
                b'u' if b.len() >= j + 6 && b[j + 2..j + 6].iter().all(u8::is_ascii_hexdigit) => j += 6,
                _ => return None,
            },
            c if c < 0x20 => return None,
            _ => j += 1,
        }
    }
}

fn number_end(b: &[u8], i: usize) -> Option<usize> {
    let digits = |mut j: usize| {
        let s = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        (j > s).then_some(j)
    };
    let mut j = if b[i] == b'-' { i + 1 } else { i };
    j = if b.get(j) == Some(&b'0') { j + 1 } else { digits(j)? };
    if b.get(j) == Some(&b'.') {
        j = digits(j + 1)?;
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        j += 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        j = digits(j)?;
    }
    Some(j)
}

/// A whole json text, checked, without its surrounding blanks.
pub fn parse(text: &str) -> Result<&str, Error> {
    let b = text.as_bytes();
    let start = ws(b, 0);
    let end = value_end(b, start, 0).ok_or_else(|| invalid(text))?;
    if ws(b, end) != b.len() {
        return Err(invalid(text));
    }
    Ok(&text[start..end])
}

/// A JSON string literal (with its quotes) as the text it stands for.
fn unquote(s: &str) -> String {
    serde_json::from_str::<String>(s).unwrap_or_default()
}

/// The members of a checked object `{…}`: (key as written, with quotes; value).
fn members(v: &str) -> Vec<(&str, &str)> {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut j = ws(b, 1);
    while b.get(j) == Some(&b'"') {
        let Some(k_end) = string_end(b, j) else { break };
        let v_start = ws(b, ws(b, k_end) + 1);
        let Some(v_end) = value_end(b, v_start, 0) else { break };
        out.push((&v[j..k_end], &v[v_start..v_end]));
        j = ws(b, ws(b, v_end) + 1);
    }
    out
}

/// The elements of a checked array `[…]`.
fn elements(v: &str) -> Vec<&str> {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut j = ws(b, 1);
    while j < b.len() && b[j] != b']' {
        let Some(end) = value_end(b, j, 0) else { break };
        out.push(&v[j..end]);
        j = ws(b, ws(b, end) + 1);
    }
    out
}

/// One step into a checked value: a key of an object, or an element of an array
/// (negative counts from the end). Anything else is no value (SQL NULL).
enum Step<'a> {
    Key(&'a str),
    Index(i64),
    /// A path element: a key for objects, an integer for arrays.
    Either(&'a str),
}

fn step<'a>(v: &'a str, s: &Step<'_>) -> Option<&'a str> {
    match (v.as_bytes().first()?, s) {
        (b'{', Step::Key(k) | Step::Either(k)) => members(v).into_iter().rev().find(|(key, _)| unquote(key) == *k).map(|(_, val)| val),
        (b'[', Step::Index(i)) => nth(v, *i),
        (b'[', Step::Either(k)) => nth(v, k.trim().parse().ok()?),
        _ => None,
    }
}

fn nth(v: &str, i: i64) -> Option<&str> {
    let e = elements(v);
    let i = if i < 0 { e.len() as i64 + i } else { i };
    usize::try_from(i).ok().and_then(|i| e.get(i).copied())
}

/// `->>`'s text of a value: a string unquoted, `null` as SQL NULL, the rest as written.
fn text_of(v: &str) -> Option<String> {
    match v.as_bytes().first()? {
        b'"' => Some(unquote(v)),
        b'n' => None,
        _ => Some(v.to_string()),
    }
}

/// jsonb's output form of a checked value: keys deduplicated (last wins) and sorted as
/// jsonb stores them (shorter first, then bytewise), `": "` and `", "` between items,
/// strings re-escaped.
pub fn jsonb_text(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    push_jsonb(&mut out, v);
    out
}

fn push_jsonb(out: &mut String, v: &str) {
    match v.as_bytes().first() {
        Some(b'{') => {
            let mut m: Vec<(String, &str)> = Vec::new();
            for (k, val) in members(v) {
                let k = unquote(k);
                match m.iter_mut().find(|(key, _)| *key == k) {
                    Some(slot) => slot.1 = val,
                    None => m.push((k, val)),
                }
            }
            m.sort_by(|(a, _), (b, _)| match a.len().cmp(&b.len()) {
                Ordering::Equal => a.as_bytes().cmp(b.as_bytes()),
                o => o,
            });
            out.push('{');
            for (i, (k, val)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_string(out, k);
                out.push_str(": ");
                push_jsonb(out, val);
            }
            out.push('}');
        }
        Some(b'[') => {
            out.push('[');
            for (i, e) in elements(v).into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_jsonb(out, e);
            }
            out.push(']');
        }
        Some(b'"') => push_string(out, &unquote(v)),
        _ => out.push_str(v),
    }
}

/// jsonb's `@>`: does `a` contain `b` (PostgreSQL's rules: objects by key, arrays by
/// element in any order, a top-level array contains a scalar it holds)?
fn contains(a: &serde_json::Value, b: &serde_json::Value, top: bool) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::Object(x), V::Object(y)) => y.iter().all(|(k, yv)| x.get(k).is_some_and(|xv| contains(xv, yv, false))),
        (V::Array(x), V::Array(y)) => y.iter().all(|yv| x.iter().any(|xv| contains(xv, yv, false))),
        (V::Array(x), y) if top && !y.is_object() => x.iter().any(|xv| scalar_eq(xv, y)),
        (x, y) => scalar_eq(x, y),
    }
}

fn scalar_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a, b) {
        (serde_json::Value::Number(x), serde_json::Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (serde_json::Value::Array(_) | serde_json::Value::Object(_), _) => false,
        _ => a == b,
    }
}

/// jsonb's `?`: is `key` a key of the object, a string element of the array, or the
/// string itself?
fn exists(v: &str, key: &str) -> bool {
    match v.as_bytes().first() {
        Some(b'{') => members(v).iter().any(|(k, _)| unquote(k) == key),
        Some(b'[') => elements(v).iter().any(|e| e.starts_with('"') && unquote(e) == key),
        Some(b'"') => unquote(v) == key,
        _ => false,
    }
}

fn type_name(v: &str) -> &'static str {
    match v.as_bytes().first() {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

/// PostgreSQL's text form of a text[] (`{a,"b c"}`) as its elements; NULL elements
/// are `None`.
fn array_text(s: &str) -> Result<Vec<Option<String>>, Error> {
    let bad = || Error::InvalidText(format!("malformed array literal: \"{s}\""));
    let inner = s.trim().strip_prefix('{').and_then(|r| r.strip_suffix('}')).ok_or_else(bad)?;
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Ok(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut item = String::new();
        let mut quoted = false;
        if chars.next_if_eq(&'"').is_some() {
            quoted = true;
            loop {
                match chars.next().ok_or_else(bad)? {
                    '"' => break,
                    '\\' => item.push(chars.next().ok_or_else(bad)?),
                    c => item.push(c),
                }
            }
        }
        while let Some(c) = chars.next_if(|c| *c != ',') {
            match c {
                '\\' => item.push(chars.next().ok_or_else(bad)?),
                '{' | '}' | '"' => return Err(bad()),
                c if quoted && !c.is_whitespace() => return Err(bad()),
                c => item.push(c),
            }
        }
        let item = if quoted { item } else { item.trim_end().to_string() };
        if item.is_empty() && !quoted {
            return Err(bad());
        }
        out.push((quoted || !item.eq_ignore_ascii_case("null")).then_some(item));
        if chars.next().is_none() {
            return Ok(out);
        }
    }
}

// ------------------------------------------------------------------------ functions

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Op {
    /// `->`: a key (text) or an element (integer).
    Get,
    /// `->>`
    GetText,
    /// `#>`: a path given as one text[].
    Path,
    /// `#>>`
    PathText,
    /// `json_extract_path(j, VARIADIC text)`.
    PathArgs,
    PathArgsText,
    Contains,
    ContainedBy,
    Exists,
    ExistsAny,
    ExistsAll,
    Typeof,
    ArrayLength,
}

impl Op {
    fn returns_json(self) -> bool {
        matches!(self, Op::Get | Op::Path | Op::PathArgs)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonFn {
    name: &'static str,
    op: Op,
    signature: Signature,
}

/// The SQL names, each for json and for jsonb (the `jsonb_` names return jsonb).
const NAMES: &[(&str, Op)] = &[
    ("object_field", Op::Get),
    ("object_field_text", Op::GetText),
    ("array_element", Op::Get),
    ("array_element_text", Op::GetText),
    ("extract_path", Op::PathArgs),
    ("extract_path_text", Op::PathArgsText),
    ("typeof", Op::Typeof),
    ("array_length", Op::ArrayLength),
];

pub fn functions() -> Vec<ScalarUDF> {
    let mut out: Vec<ScalarUDF> = Vec::new();
    for (suffix, op) in NAMES {
        for prefix in ["json_", "jsonb_"] {
            let name: &'static str = Box::leak(format!("{prefix}{suffix}").into_boxed_str());
            out.push(udf(name, *op));
        }
    }
    for (name, op) in [("jsonb_contains", Op::Contains), ("jsonb_contained", Op::ContainedBy), ("jsonb_exists", Op::Exists), ("jsonb_exists_any", Op::ExistsAny), ("jsonb_exists_all", Op::ExistsAll)] {
        out.push(udf(name, op));
    }
    out
}

fn udf(name: &'static str, op: Op) -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonFn { name, op, signature: Signature::user_defined(Volatility::Immutable) })
}

/// The function an operator calls (planned with these names, shown by EXPLAIN).
fn operator_udf(op: Op) -> ScalarUDF {
    let name = match op {
        Op::Get => "json_get",
        Op::GetText => "json_get_text",
        Op::Path => "json_get_path",
        Op::PathText => "json_get_path_text",
        Op::Contains => "jsonb_contains",
        Op::ContainedBy => "jsonb_contained",
        Op::Exists => "jsonb_exists",
        Op::ExistsAny => "jsonb_exists_any",
        Op::ExistsAll => "jsonb_exists_all",
        other => unreachable!("{other:?} is no operator"),
    };
    udf(name, op)
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null)
}

fn is_int(t: &DataType) -> bool {
    t.is_integer()
}

impl ScalarUDFImpl for JsonFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> DfResult<Vec<DataType>> {
        let wrong = || Error::UnknownFunction(format!("function {}({}) does not exist", self.name, args.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", "))).into_datafusion();
        let (first, rest) = args.split_first().ok_or_else(wrong)?;
        if !is_text(first) {
            return Err(wrong());
        }
        let mut out = vec![DataType::Utf8];
        let list = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
        match (self.op, rest) {
            (Op::Typeof | Op::ArrayLength, []) => {}
            (Op::Get | Op::GetText, [t]) if is_int(t) => out.push(DataType::Int64),
            (Op::Get | Op::GetText | Op::Contains | Op::ContainedBy | Op::Exists, [t]) if is_text(t) => out.push(DataType::Utf8),
            (Op::Path | Op::PathText | Op::ExistsAny | Op::ExistsAll, [t]) if is_text(t) => out.push(DataType::Utf8),
            (Op::Path | Op::PathText | Op::ExistsAny | Op::ExistsAll, [DataType::List(f) | DataType::LargeList(f)]) if is_text(f.data_type()) => out.push(list),
            (Op::PathArgs | Op::PathArgsText, rest) if rest.iter().all(|t| is_text(t) || is_int(t)) => out.extend(rest.iter().map(|_| DataType::Utf8)),
            _ => return Err(wrong()),
        }
        Ok(out)
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(match self.op {
            Op::Contains | Op::ContainedBy | Op::Exists | Op::ExistsAny | Op::ExistsAll => DataType::Boolean,
            Op::ArrayLength => DataType::Int32,
            _ => DataType::Utf8,
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        if self.op.returns_json() {
            let jsonb = self.name.starts_with("jsonb_") || args.arg_fields.first().is_some_and(|f| f.metadata().get(VECTOR_MARK).is_some_and(|m| m == "jsonb"));
            return Ok(Arc::new(json_field(self.name, jsonb)));
        }
        Ok(Arc::new(Field::new(self.name, self.return_type(&[])?, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let jsonb_out = self.op.returns_json() && args.return_field.metadata().get(VECTOR_MARK).is_some_and(|m| m == "jsonb");
        let columns: Vec<ArrayRef> = args.args.iter().map(|a| a.to_array(n)).collect::<DfResult<_>>()?;
        let columns: Vec<ArrayRef> = columns
            .iter()
            .map(|c| match c.data_type() {
                DataType::Utf8 | DataType::Int64 | DataType::List(_) => Ok(c.clone()),
                DataType::LargeList(_) => cast(c, &DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))),
                _ => cast(c, &DataType::Utf8),
            })
            .collect::<Result<_, _>>()?;
        let docs = columns[0].as_string::<i32>();
        let out: ArrayRef = match self.op {
            Op::Contains | Op::ContainedBy | Op::Exists | Op::ExistsAny | Op::ExistsAll => {
                let mut b = BooleanBuilder::with_capacity(n);
                for row in 0..n {
                    b.append_option(self.test(&columns, docs, row).map_err(Error::into_datafusion)?);
                }
                Arc::new(b.finish())
            }
            Op::ArrayLength => {
                let mut b = Int32Builder::with_capacity(n);
                for row in 0..n {
                    if docs.is_null(row) {
                        b.append_null();
                        continue;
                    }
                    let v = parse(docs.value(row)).map_err(Error::into_datafusion)?;
                    if !v.starts_with('[') {
                        let what = if v.starts_with('{') { "a non-array" } else { "a scalar" };
                        return Err(Error::InvalidParameter(format!("cannot get array length of {what}")).into_datafusion());
                    }
                    b.append_value(elements(v).len() as i32);
                }
                Arc::new(b.finish())
            }
            _ => {
                let mut b = StringBuilder::with_capacity(n, 0);
                for row in 0..n {
                    let value = self.text(&columns, docs, row).map_err(Error::into_datafusion)?;
                    match value {
                        Some(v) if jsonb_out => b.append_value(jsonb_text(&v)),
                        v => b.append_option(v),
                    }
                }
                Arc::new(b.finish())
            }
        };
        Ok(super::one_or_many(out, &args))
    }
}

impl JsonFn {
    /// The path a row's arguments after the document give (`None`: a NULL in it).
    fn path(&self, columns: &[ArrayRef], row: usize) -> Result<Option<Vec<String>>, Error> {
        let mut path = Vec::new();
        for c in &columns[1..] {
            if c.is_null(row) {
                return Ok(None);
            }
            match c.data_type() {
                DataType::List(_) => {
                    let items = c.as_list::<i32>().value(row);
                    let items = items.as_string::<i32>();
                    for i in 0..items.len() {
                        if items.is_null(i) {
                            return Ok(None);
                        }
                        path.push(items.value(i).to_string());
                    }
                }
                DataType::Int64 => path.push(c.as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(row).to_string()),
                _ if matches!(self.op, Op::Path | Op::PathText | Op::ExistsAny | Op::ExistsAll) => {
                    for item in array_text(c.as_string::<i32>().value(row))? {
                        match item {
                            Some(s) => path.push(s),
                            None if matches!(self.op, Op::ExistsAny | Op::ExistsAll) => {}
                            None => return Ok(None),
                        }
                    }
                }
                _ => path.push(c.as_string::<i32>().value(row).to_string()),
            }
        }
        Ok(Some(path))
    }

    /// The value a navigating function gives for one row, as text.
    fn text(&self, columns: &[ArrayRef], docs: &datafusion::arrow::array::StringArray, row: usize) -> Result<Option<String>, Error> {
        if docs.is_null(row) {
            return Ok(None);
        }
        let doc = parse(docs.value(row))?;
        if self.op == Op::Typeof {
            return Ok(Some(type_name(doc).to_string()));
        }
        let found = match self.op {
            Op::Get | Op::GetText => {
                let key = &columns[1];
                if key.is_null(row) {
                    return Ok(None);
                }
                match key.data_type() {
                    DataType::Int64 => step(doc, &Step::Index(key.as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(row))),
                    _ => step(doc, &Step::Key(key.as_string::<i32>().value(row))),
                }
            }
            _ => {
                let Some(path) = self.path(columns, row)? else { return Ok(None) };
                path.iter().try_fold(doc, |v, k| step(v, &Step::Either(k)))
            }
        };
        Ok(match (found, self.op) {
            (None, _) => None,
            (Some(v), Op::GetText | Op::PathText | Op::PathArgsText) => text_of(v),
            (Some(v), _) => Some(v.to_string()),
        })
    }

    /// The answer of a testing operator for one row.
    fn test(&self, columns: &[ArrayRef], docs: &datafusion::arrow::array::StringArray, row: usize) -> Result<Option<bool>, Error> {
        if columns.iter().any(|c| c.is_null(row)) {
            return Ok(None);
        }
        let doc = parse(docs.value(row))?;
        Ok(Some(match self.op {
            Op::Contains | Op::ContainedBy => {
                let other = columns[1].as_string::<i32>().value(row);
                parse(other)?;
                let value = |s: &str| serde_json::from_str::<serde_json::Value>(s).map_err(|_| invalid(s));
                let (a, b) = (value(doc)?, value(other)?);
                if self.op == Op::Contains { contains(&a, &b, true) } else { contains(&b, &a, true) }
            }
            Op::Exists => exists(doc, columns[1].as_string::<i32>().value(row)),
            _ => {
                let keys = self.path(columns, row)?.unwrap_or_default();
                if self.op == Op::ExistsAny { keys.iter().any(|k| exists(doc, k)) } else { keys.iter().all(|k| exists(doc, k)) }
            }
        }))
    }
}

// ------------------------------------------------------------------------ input

/// json's and jsonb's input: the text checked (22P02 when it is not JSON), jsonb's
/// put in its output form, as PostgreSQL stores it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonIn {
    jsonb: bool,
    signature: Signature,
}

impl ScalarUDFImpl for JsonIn {
    fn name(&self) -> &str {
        if self.jsonb { "lakehouse_jsonb_in" } else { "lakehouse_json_in" }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(Arc::new(json_field(self.name(), self.jsonb)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let input = cast(&args.args[0].to_array(args.number_rows)?, &DataType::Utf8)?;
        let input = input.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(input.len(), input.value_data().len());
        for i in 0..input.len() {
            if input.is_null(i) {
                out.append_null();
                continue;
            }
            let v = parse(input.value(i)).map_err(Error::into_datafusion)?;
            if self.jsonb {
                out.append_value(jsonb_text(v));
            } else {
                out.append_value(input.value(i));
            }
        }
        Ok(super::one_or_many(Arc::new(out.finish()), &args))
    }
}

/// INSERT (and COPY FROM, which is one) into json/jsonb columns goes through [`JsonIn`]:
/// a json column never holds text that is not JSON.
#[derive(Debug, Default)]
pub struct JsonInput;

impl datafusion::optimizer::AnalyzerRule for JsonInput {
    fn name(&self) -> &str {
        "json_input"
    }

    fn analyze(&self, plan: datafusion::logical_expr::LogicalPlan, _: &datafusion::common::config::ConfigOptions) -> DfResult<datafusion::logical_expr::LogicalPlan> {
        super::check_inserts(plan, |f, column| {
            let jsonb = f.metadata().get(VECTOR_MARK).is_some_and(|m| m == "jsonb");
            is_json(f).then(|| {
                let udf = ScalarUDF::new_from_impl(JsonIn { jsonb, signature: Signature::any(1, Volatility::Immutable) });
                Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf), vec![column]))
            })
        })
    }
}

// ------------------------------------------------------------------------ operators

/// Plans `->`, `->>`, `#>`, `#>>`, `?`, `?|`, `?&` with text (json) on the left, and
/// `@>`/`<@` with text on both sides (arrays keep DataFusion's containment).
#[derive(Debug)]
pub struct JsonOperatorPlanner;

impl ExprPlanner for JsonOperatorPlanner {
    fn plan_binary_op(&self, expr: RawBinaryExpr, schema: &DFSchema) -> DfResult<PlannerResult<RawBinaryExpr>> {
        let op = match &expr.op {
            BinaryOperator::Arrow => Op::Get,
            BinaryOperator::LongArrow => Op::GetText,
            BinaryOperator::HashArrow => Op::Path,
            BinaryOperator::HashLongArrow => Op::PathText,
            BinaryOperator::AtArrow => Op::Contains,
            BinaryOperator::ArrowAt => Op::ContainedBy,
            BinaryOperator::Question => Op::Exists,
            BinaryOperator::QuestionPipe => Op::ExistsAny,
            BinaryOperator::QuestionAnd => Op::ExistsAll,
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let text_like = |e: &Expr| match e {
            Expr::Placeholder(_) => true,
            e => e.to_field(schema).is_ok_and(|(_, f)| is_text(f.data_type()) || is_json(&f)),
        };
        if !text_like(&expr.left) || (matches!(op, Op::Contains | Op::ContainedBy) && !text_like(&expr.right)) {
            return Ok(PlannerResult::Original(expr));
        }
        let RawBinaryExpr { left, right, .. } = expr;
        Ok(PlannerResult::Planned(Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(operator_udf(op)), vec![left, right]))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn navigates_as_written() {
        let doc = parse(r#" {"a": {"b":  [1, 2, {"c": "x\"y"}]}, "a": {"b": [7]}, "n": null} "#).unwrap();
        // The last of duplicate keys counts.
        assert_eq!(step(doc, &Step::Key("a")), Some(r#"{"b": [7]}"#));
        let first = members(doc)[0].1;
        let b = step(first, &Step::Key("b")).unwrap();
        assert_eq!(b, r#"[1, 2, {"c": "x\"y"}]"#);
        assert_eq!(step(b, &Step::Index(-1)), Some(r#"{"c": "x\"y"}"#));
        assert_eq!(step(b, &Step::Index(3)), None);
        assert_eq!(step(b, &Step::Either("1")), Some("2"));
        assert_eq!(step(b, &Step::Either("x")), None);
        assert_eq!(text_of(step(step(b, &Step::Index(2)).unwrap(), &Step::Key("c")).unwrap()), Some("x\"y".into()));
        assert_eq!(text_of(step(doc, &Step::Key("n")).unwrap()), None);
        assert_eq!(step("1", &Step::Key("a")), None);
    }

    #[test]
    fn rejects_what_is_not_json() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "tru", "\"\\x\"", "[1] 2", "{'a': 1}", "\"a\nb\""] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 5) + &"]".repeat(MAX_DEPTH + 5);
        assert!(parse(&deep).is_err());
        for good in ["0", "-1.5e+3", "\"\\u00e9\"", "[]", "{}", " true ", "[null, false]"] {
            assert!(parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn jsonb_output_form() {
        assert_eq!(jsonb_text(parse(r#"{"bb":1,"a":[1,{"c":"\u0041"}],"bb":2}"#).unwrap()), r#"{"a": [1, {"c": "A"}], "bb": 2}"#);
    }

    #[test]
    fn containment_and_existence() {
        let v = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert!(contains(&v(r#"{"a": 1, "b": [1, 2, 3]}"#), &v(r#"{"b": [3, 1]}"#), true));
        assert!(!contains(&v(r#"{"a": 1}"#), &v(r#"{"a": 2}"#), true));
        assert!(contains(&v("[1, 2]"), &v("1"), true));
        assert!(!contains(&v(r#"{"a": [1, 2]}"#), &v(r#"{"a": 1}"#), true));
        assert!(contains(&v("[1.0]"), &v("[1]"), true));
        assert!(exists(r#"{"a": 1}"#, "a"));
        assert!(exists(r#"["a", 1]"#, "a"));
        assert!(!exists(r#"{"b": "a"}"#, "a"));
    }

    #[test]
    fn array_text_as_postgres_writes_it() {
        assert_eq!(array_text("{a, \"b c\",NULL}").unwrap(), vec![Some("a".into()), Some("b c".into()), None]);
        assert_eq!(array_text("{}").unwrap(), Vec::<Option<String>>::new());
        assert!(array_text("a,b").is_err());
        assert!(array_text("{a,,b}").is_err());
    }
}
