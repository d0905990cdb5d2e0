//! Arrow → PostgreSQL wire encoding (text and binary formats), and bound parameters
//! back to DataFusion scalars. Vectors (`FixedSizeList<Float32>`) travel as pgvector's
//! `vector` type ([`VECTOR_OID`], listed in `pg_type`): text `[1,2,3]`, binary an int16
//! dimension, an int16 zero and the float4s, big-endian. Other float lists are `float4[]`.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Date64Array, Decimal128Array,
    Float32Array, Float64Array, GenericListArray, Int16Array, Int32Array,
    Int64Array, Int8Array, RecordBatch, StringArray, UInt16Array, UInt32Array, UInt64Array,
    UInt8Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Schema, Time32MillisecondType, Time32SecondType, Time64MicrosecondType,
    Time64NanosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::ScalarValue;
use futures::{Stream, StreamExt};
use pgwire::api::Type;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use rust_decimal::Decimal;

use super::numeric::{Overflow, PgNumeric};

use super::handler::to_pg_error;
use crate::error::Error;

pub use crate::udf::vector::VECTOR_OID;

pub use crate::pg_types::{field_pg_type, is_vector, pg_type, vector_pg_type};

pub fn field_infos(schema: &Schema, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = crate::engine::column_names::display_name(f.name()).to_string();
            FieldInfo::new(name, None, None, field_pg_type(f), format.format_for(i))
        })
        .collect()
}

/// Encode every row of `batch`.
pub fn encode_batch(batch: &RecordBatch, fields: &Arc<Vec<FieldInfo>>) -> PgWireResult<Vec<DataRow>> {
    let columns: Vec<ArrayRef> = batch.columns().to_vec();
    let mut encoder = DataRowEncoder::new(fields.clone());
    let mut rows = Vec::with_capacity(batch.num_rows());
    // Columns sent as text but not natively encodable get a display formatter.
    let options = FormatOptions::default().with_null("");
    let formatters: Vec<Option<ArrayFormatter>> = columns
        .iter()
        .zip(fields.iter())
        .map(|(c, f)| {
            (f.datatype() == &Type::TEXT && !is_string(c.data_type()))
                .then(|| ArrayFormatter::try_new(c.as_ref(), &options).ok())
                .flatten()
        })
        .collect();
    // Times and timestamps sent as text, alone or in arrays, as PostgreSQL writes them
    // (udf/pg_text.rs, the whole column at once).
    let text_datetimes: Vec<Option<ArrayRef>> = columns
        .iter()
        .zip(fields.iter())
        .map(|(c, f)| {
            let datetime = match c.data_type() {
                DataType::List(e) | DataType::LargeList(e) => is_datetime(e.data_type()),
                t => is_datetime(t),
            };
            (f.format() == FieldFormat::Text && datetime).then(|| crate::udf::pg_text::texts(c.as_ref())).transpose()
        })
        .collect::<datafusion::error::Result<_>>()
        .map_err(|e| to_pg_error(&Error::from_datafusion(e)))?;
    // Floats sent as text are spelled as PostgreSQL spells them ("2", "NaN", "1e+20").
    let text_floats: Vec<Option<ArrayRef>> = columns
        .iter()
        .zip(fields.iter())
        .map(|(c, f)| {
            (f.format() == FieldFormat::Text && matches!(c.data_type(), DataType::Float16 | DataType::Float32 | DataType::Float64))
                .then(|| cast(c, &DataType::Float64).ok())
                .flatten()
        })
        .collect();
    // Float arrays as text: `{1.5,-2,30}` as PostgreSQL writes float4[]; vectors as
    // pgvector writes them, `[1.5,-2,30]`.
    let text_float_lists: Vec<bool> = columns
        .iter()
        .zip(fields.iter())
        .map(|(c, f)| {
            f.format() == FieldFormat::Text
                && matches!(c.data_type(), DataType::List(e) | DataType::LargeList(e) | DataType::FixedSizeList(e, _)
                    if matches!(e.data_type(), DataType::Float16 | DataType::Float32 | DataType::Float64))
        })
        .collect();
    let vectors: Vec<bool> = fields.iter().map(|f| f.datatype().oid() == VECTOR_OID).collect();
    let binary_vectors: Vec<bool> = fields.iter().zip(&vectors).map(|(f, v)| *v && f.format() == FieldFormat::Binary).collect();
    // Converted once per batch, not per row.
    let chars: Vec<Option<ArrayRef>> = columns
        .iter()
        .zip(fields.iter())
        .map(|(c, f)| (f.datatype() == &Type::CHAR).then(|| cast(c, &DataType::Utf8)).transpose())
        .collect::<Result<_, _>>()
        .map_err(|e| to_pg_error(&e.into()))?;
    let oids: Vec<Option<ArrayRef>> = columns
        .iter()
        .zip(fields.iter())
        .map(|(c, f)| (f.datatype() == &Type::OID).then(|| cast(c, &DataType::Int64)).transpose())
        .collect::<Result<_, _>>()
        .map_err(|e| to_pg_error(&e.into()))?;
    // json/jsonb: text as it is; jsonb's binary form starts with its version, 1.
    let jsons: Vec<Option<ArrayRef>> = columns
        .iter()
        .zip(fields.iter())
        .map(|(c, f)| (f.datatype() == &Type::JSON || f.datatype() == &Type::JSONB).then(|| cast(c, &DataType::Utf8)).transpose())
        .collect::<Result<_, _>>()
        .map_err(|e| to_pg_error(&e.into()))?;
    // Enums and their arrays: their labels' text, in either format (an enum's binary
    // form is its label's bytes).
    let enums: Vec<Option<ArrayRef>> = columns
        .iter()
        .zip(fields.iter())
        .map(|(c, f)| match f.datatype().kind() {
            tokio_postgres::types::Kind::Enum(_) => Some(cast(c, &DataType::Utf8)),
            tokio_postgres::types::Kind::Array(m) if matches!(m.kind(), tokio_postgres::types::Kind::Enum(_)) => {
                Some(cast(c, &DataType::List(Arc::new(datafusion::arrow::datatypes::Field::new("item", DataType::Utf8, true)))))
            }
            _ => None,
        }
        .transpose())
        .collect::<Result<_, _>>()
        .map_err(|e| to_pg_error(&e.into()))?;
    // int2vector/oidvector as text: "1 2", as PostgreSQL writes them.
    let space_vectors: Vec<bool> = fields
        .iter()
        .map(|f| f.format() == FieldFormat::Text && (f.datatype() == &Type::INT2_VECTOR || f.datatype() == &Type::OID_VECTOR))
        .collect();
    for row in 0..batch.num_rows() {
        for (i, col) in columns.iter().enumerate() {
            if space_vectors[i] {
                if col.is_null(row) {
                    encoder.encode_field(&None::<&str>)?;
                    continue;
                }
                let values = cast(&list_value(col, row), &DataType::Int64).map_err(|e| to_pg_error(&e.into()))?;
                let p = values.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                let text = (0..p.len()).map(|j| p.value(j).to_string()).collect::<Vec<_>>().join(" ");
                encoder.encode_field_with_type_and_format(&text, &Type::TEXT, FieldFormat::Text, &Default::default())?;
                continue;
            }
            if let Some(e) = &enums[i] {
                if e.is_null(row) {
                    encoder.encode_field(&None::<&str>)?;
                } else if let DataType::Utf8 = e.data_type() {
                    encoder.encode_field_with_type_and_format(&e.as_string::<i32>().value(row), &Type::TEXT, fields[i].format(), &Default::default())?;
                } else {
                    let v = list_value(e, row);
                    let v = v.as_string::<i32>();
                    let labels: Vec<Option<&str>> = (0..v.len()).map(|j| v.is_valid(j).then(|| v.value(j))).collect();
                    encoder.encode_field_with_type_and_format(&labels, &Type::TEXT_ARRAY, fields[i].format(), &Default::default())?;
                }
                continue;
            }
            if let Some(s) = &jsons[i] {
                let s = s.as_string::<i32>();
                if s.is_null(row) {
                    encoder.encode_field(&None::<&str>)?;
                    continue;
                }
                // jsonb in its output form (keys sorted, one space after : and ,), as
                // PostgreSQL stores it; json exactly as written.
                let jsonb = fields[i].datatype() == &Type::JSONB;
                let text: std::borrow::Cow<'_, str> = match crate::udf::json_ops::parse(s.value(row)) {
                    Ok(v) if jsonb => crate::udf::json_ops::jsonb_text(v).into(),
                    _ => s.value(row).into(),
                };
                if fields[i].format() == FieldFormat::Binary {
                    let mut bytes = Vec::with_capacity(text.len() + 1);
                    if jsonb {
                        bytes.push(1u8);
                    }
                    bytes.extend_from_slice(text.as_bytes());
                    encoder.encode_field_with_type_and_format(&bytes, &Type::BYTEA, FieldFormat::Binary, &Default::default())?;
                } else {
                    encoder.encode_field_with_type_and_format(&text.as_ref(), &Type::TEXT, FieldFormat::Text, &Default::default())?;
                }
                continue;
            }
            if let Some(s) = &chars[i] {
                let s = s.as_string::<i32>();
                if s.is_null(row) {
                    encoder.encode_field(&None::<&str>)?;
                } else if fields[i].format() == FieldFormat::Binary {
                    let b = s.value(row).as_bytes().first().copied().unwrap_or(0) as i8;
                    encoder.encode_field_with_type_and_format(&b, &Type::CHAR, FieldFormat::Binary, &Default::default())?;
                } else {
                    encoder.encode_field_with_type_and_format(&s.value(row), &Type::TEXT, FieldFormat::Text, &Default::default())?;
                }
                continue;
            }
            if let Some(v) = &oids[i] {
                let v = v.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                let value = (!v.is_null(row)).then(|| v.value(row) as u32);
                if fields[i].format() == FieldFormat::Binary {
                    encoder.encode_field_with_type_and_format(&value, &Type::OID, FieldFormat::Binary, &Default::default())?;
                } else {
                    encoder.encode_field_with_type_and_format(&value.map(|v| v.to_string()), &Type::TEXT, FieldFormat::Text, &Default::default())?;
                }
                continue;
            }
            if binary_vectors[i] {
                if col.is_null(row) {
                    encoder.encode_field(&None::<&[u8]>)?;
                    continue;
                }
                let values = cast(&list_value(col, row), &DataType::Float32).map_err(|e| to_pg_error(&e.into()))?;
                let p = values.as_primitive::<datafusion::arrow::datatypes::Float32Type>();
                let mut bytes = Vec::with_capacity(4 + 4 * p.len());
                bytes.extend_from_slice(&(p.len() as i16).to_be_bytes());
                bytes.extend_from_slice(&0i16.to_be_bytes());
                for x in p.values().iter() {
                    bytes.extend_from_slice(&x.to_be_bytes());
                }
                encoder.encode_field_with_type_and_format(&bytes, &vector_pg_type(), FieldFormat::Binary, &Default::default())?;
            } else if text_float_lists[i] {
                if col.is_null(row) {
                    encoder.encode_field(&None::<&str>)?;
                    continue;
                }
                let values = list_value(col, row);
                let single = !matches!(values.data_type(), DataType::Float64);
                let vector = vectors[i];
                let values = cast(&values, &DataType::Float64).map_err(|e| to_pg_error(&e.into()))?;
                let p = values.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
                let mut text = String::with_capacity(p.len() * 8 + 2);
                text.push(if vector { '[' } else { '{' });
                for j in 0..p.len() {
                    if j > 0 {
                        text.push(',');
                    }
                    if p.is_null(j) {
                        text.push_str("NULL");
                    } else {
                        text.push_str(&pg_float_text(p.value(j), single));
                    }
                }
                text.push(if vector { ']' } else { '}' });
                // As TEXT: the array type would quote the whole literal as one element.
                encoder.encode_field_with_type_and_format(&text, &Type::TEXT, FieldFormat::Text, &Default::default())?;
            } else if let Some(t) = &text_datetimes[i] {
                // As TEXT: an array type would quote the whole literal as one element.
                let t = t.as_string::<i32>();
                encoder.encode_field_with_type_and_format(&(!t.is_null(row)).then(|| t.value(row)), &Type::TEXT, FieldFormat::Text, &Default::default())?;
            } else if let Some(f) = &text_floats[i] {
                let f = f.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
                let single = col.data_type() != &DataType::Float64;
                encoder.encode_field(&(!f.is_null(row)).then(|| pg_float_text(f.value(row), single)))?;
            } else if let Some(fmt) = &formatters[i] {
                if col.is_null(row) {
                    encoder.encode_field(&None::<&str>)?;
                } else {
                    encoder.encode_field(&fmt.value(row).to_string())?;
                }
            } else {
                encode_value(&mut encoder, col, row)?;
            }
        }
        rows.push(encoder.take_row());
    }
    Ok(rows)
}

pub use crate::udf::pg_text::float_text as pg_float_text;

fn is_datetime(dt: &DataType) -> bool {
    matches!(dt, DataType::Timestamp(..) | DataType::Time32(_) | DataType::Time64(_))
}

fn is_string(dt: &DataType) -> bool {
    matches!(dt, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

macro_rules! prim {
    ($enc:expr, $col:expr, $row:expr, $arr:ty, $conv:expr) => {{
        let a = $col.as_any().downcast_ref::<$arr>().expect("type checked");
        let v = if a.is_null($row) { None } else { Some($conv(a.value($row))) };
        $enc.encode_field(&v)
    }};
}

fn encode_value(enc: &mut DataRowEncoder, col: &ArrayRef, row: usize) -> PgWireResult<()> {
    match col.data_type() {
        DataType::Null => enc.encode_field(&None::<&str>),
        DataType::Boolean => prim!(enc, col, row, BooleanArray, |v| v),
        DataType::Int8 => prim!(enc, col, row, Int8Array, |v: i8| v as i16),
        DataType::Int16 => prim!(enc, col, row, Int16Array, |v| v),
        DataType::UInt8 => prim!(enc, col, row, UInt8Array, |v: u8| v as i16),
        DataType::Int32 => prim!(enc, col, row, Int32Array, |v| v),
        DataType::UInt16 => prim!(enc, col, row, UInt16Array, |v: u16| v as i32),
        DataType::Int64 => prim!(enc, col, row, Int64Array, |v| v),
        DataType::UInt32 => prim!(enc, col, row, UInt32Array, |v: u32| v as i64),
        DataType::UInt64 => prim!(enc, col, row, UInt64Array, Decimal::from),
        DataType::Float16 => {
            let c = cast(col, &DataType::Float32).map_err(|e| to_pg_error(&e.into()))?;
            prim!(enc, c, row, Float32Array, |v| v)
        }
        DataType::Float32 => prim!(enc, col, row, Float32Array, |v| v),
        DataType::Float64 => prim!(enc, col, row, Float64Array, |v| v),
        DataType::Decimal128(_, scale) => prim!(enc, col, row, Decimal128Array, |value| PgNumeric { value, scale: *scale }),
        DataType::Utf8 => prim!(enc, col, row, StringArray, |v: &str| v.to_string()),
        DataType::LargeUtf8 => {
            let a = col.as_string::<i64>();
            enc.encode_field(&(!a.is_null(row)).then(|| a.value(row)))
        }
        DataType::Utf8View => {
            let a = col.as_string_view();
            enc.encode_field(&(!a.is_null(row)).then(|| a.value(row)))
        }
        DataType::Binary => {
            let a = col.as_binary::<i32>();
            enc.encode_field(&(!a.is_null(row)).then(|| a.value(row)))
        }
        DataType::LargeBinary => {
            let a = col.as_binary::<i64>();
            enc.encode_field(&(!a.is_null(row)).then(|| a.value(row)))
        }
        DataType::BinaryView => {
            let a = col.as_binary_view();
            enc.encode_field(&(!a.is_null(row)).then(|| a.value(row)))
        }
        DataType::FixedSizeBinary(_) => {
            let a = col.as_fixed_size_binary();
            enc.encode_field(&(!a.is_null(row)).then(|| a.value(row)))
        }
        DataType::Date32 => {
            let a = col.as_any().downcast_ref::<Date32Array>().expect("type checked");
            enc.encode_field(&(!a.is_null(row)).then(|| a.value_as_date(row)).flatten())
        }
        DataType::Date64 => {
            let a = col.as_any().downcast_ref::<Date64Array>().expect("type checked");
            enc.encode_field(&(!a.is_null(row)).then(|| a.value_as_date(row)).flatten())
        }
        DataType::Timestamp(unit, tz) => {
            let naive = if col.is_null(row) {
                None
            } else {
                match unit {
                    TimeUnit::Second => col.as_primitive::<TimestampSecondType>().value_as_datetime(row),
                    TimeUnit::Millisecond => col.as_primitive::<TimestampMillisecondType>().value_as_datetime(row),
                    TimeUnit::Microsecond => col.as_primitive::<TimestampMicrosecondType>().value_as_datetime(row),
                    TimeUnit::Nanosecond => col.as_primitive::<TimestampNanosecondType>().value_as_datetime(row),
                }
            };
            if tz.is_some() {
                enc.encode_field(&naive.map(|n| n.and_utc()))
            } else {
                enc.encode_field(&naive)
            }
        }
        DataType::Time32(unit) => {
            let t = if col.is_null(row) {
                None
            } else {
                match unit {
                    TimeUnit::Second => col.as_primitive::<Time32SecondType>().value_as_time(row),
                    _ => col.as_primitive::<Time32MillisecondType>().value_as_time(row),
                }
            };
            enc.encode_field(&t)
        }
        DataType::Time64(unit) => {
            let t = if col.is_null(row) {
                None
            } else {
                match unit {
                    TimeUnit::Microsecond => col.as_primitive::<Time64MicrosecondType>().value_as_time(row),
                    _ => col.as_primitive::<Time64NanosecondType>().value_as_time(row),
                }
            };
            enc.encode_field(&t)
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
            if col.is_null(row) {
                return enc.encode_field(&None::<Vec<Option<f32>>>);
            }
            let values = list_value(col, row);
            encode_list(enc, &values)
        }
        other => Err(to_pg_error(&Error::Internal(format!("no wire encoding for {other}")))),
    }
}

fn list_value(col: &ArrayRef, row: usize) -> ArrayRef {
    match col.data_type() {
        DataType::List(_) => col.as_any().downcast_ref::<GenericListArray<i32>>().expect("list").value(row),
        DataType::LargeList(_) => col.as_any().downcast_ref::<GenericListArray<i64>>().expect("list").value(row),
        _ => col.as_fixed_size_list().value(row),
    }
}

fn collect<T: Copy>(a: &dyn Array, get: impl Fn(usize) -> T) -> Vec<Option<T>> {
    (0..a.len()).map(|i| if a.is_null(i) { None } else { Some(get(i)) }).collect()
}

fn encode_list(enc: &mut DataRowEncoder, values: &ArrayRef) -> PgWireResult<()> {
    let v = values.as_ref();
    match values.data_type() {
        DataType::Float32 => enc.encode_field(&collect(v, |i| values.as_primitive::<datafusion::arrow::datatypes::Float32Type>().value(i))),
        DataType::Float16 => {
            let c = cast(values, &DataType::Float32).map_err(|e| to_pg_error(&e.into()))?;
            let p = c.as_primitive::<datafusion::arrow::datatypes::Float32Type>();
            enc.encode_field(&collect(v, |i| p.value(i)))
        }
        DataType::Float64 => enc.encode_field(&collect(v, |i| values.as_primitive::<datafusion::arrow::datatypes::Float64Type>().value(i))),
        DataType::Boolean => {
            let b = values.as_boolean();
            enc.encode_field(&collect(v, |i| b.value(i)))
        }
        DataType::Decimal128(_, scale) => {
            let d = values.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>();
            enc.encode_field(&collect(v, |i| PgNumeric { value: d.value(i), scale: *scale }))
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let s = cast(values, &DataType::Utf8).map_err(|e| to_pg_error(&e.into()))?;
            let s = s.as_string::<i32>();
            let out: Vec<Option<String>> = (0..s.len()).map(|i| (!s.is_null(i)).then(|| s.value(i).to_string())).collect();
            enc.encode_field(&out)
        }
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => {
            let c = cast(values, &DataType::Int16).map_err(|e| to_pg_error(&e.into()))?;
            let p = c.as_primitive::<datafusion::arrow::datatypes::Int16Type>();
            enc.encode_field(&collect(v, |i| p.value(i)))
        }
        DataType::Int32 | DataType::UInt16 => {
            let c = cast(values, &DataType::Int32).map_err(|e| to_pg_error(&e.into()))?;
            let p = c.as_primitive::<datafusion::arrow::datatypes::Int32Type>();
            enc.encode_field(&collect(v, |i| p.value(i)))
        }
        DataType::Int64 | DataType::UInt32 => {
            let c = cast(values, &DataType::Int64).map_err(|e| to_pg_error(&e.into()))?;
            let p = c.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            enc.encode_field(&collect(v, |i| p.value(i)))
        }
        DataType::Date32 | DataType::Date64 => {
            let c = cast(values, &DataType::Date32).map_err(|e| to_pg_error(&e.into()))?;
            let a = c.as_any().downcast_ref::<Date32Array>().expect("cast to Date32");
            let out: Vec<Option<chrono::NaiveDate>> = (0..a.len()).map(|i| if a.is_null(i) { None } else { a.value_as_date(i) }).collect();
            enc.encode_field(&out)
        }
        DataType::Timestamp(_, tz) => {
            let c = cast(values, &DataType::Timestamp(TimeUnit::Microsecond, tz.clone())).map_err(|e| to_pg_error(&e.into()))?;
            let a = c.as_primitive::<TimestampMicrosecondType>();
            let utc: Vec<Option<chrono::DateTime<chrono::Utc>>> =
                (0..a.len()).map(|i| if a.is_null(i) { None } else { chrono::DateTime::from_timestamp_micros(a.value(i)) }).collect();
            if tz.is_some() {
                enc.encode_field(&utc)
            } else {
                enc.encode_field(&utc.into_iter().map(|t| t.map(|t| t.naive_utc())).collect::<Vec<_>>())
            }
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            let c = cast(values, &DataType::Time64(TimeUnit::Microsecond)).map_err(|e| to_pg_error(&e.into()))?;
            let a = c.as_primitive::<Time64MicrosecondType>();
            let out: Vec<Option<chrono::NaiveTime>> = (0..a.len()).map(|i| if a.is_null(i) { None } else { a.value_as_time(i) }).collect();
            enc.encode_field(&out)
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let c = cast(values, &DataType::Binary).map_err(|e| to_pg_error(&e.into()))?;
            let a = c.as_binary::<i32>();
            let out: Vec<Option<&[u8]>> = (0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i))).collect();
            enc.encode_field(&out)
        }
        _ => {
            // pg_type() sent TEXT for these; encode_batch formats them, so this is
            // only reached for nested lists: format the inner list as text.
            let options = FormatOptions::default();
            let fmt = ArrayFormatter::try_new(v, &options).map_err(|e| to_pg_error(&e.into()))?;
            let parts: Vec<String> = (0..v.len()).map(|i| fmt.value(i).to_string()).collect();
            enc.encode_field(&format!("{{{}}}", parts.join(",")))
        }
    }
}

/// Rows of a record batch stream, encoded.
pub fn row_stream(
    fields: Arc<Vec<FieldInfo>>,
    stream: datafusion::execution::SendableRecordBatchStream,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send {
    stream
        .map(move |batch| match batch {
            Ok(b) => match encode_batch(&b, &fields) {
                Ok(rows) => futures::stream::iter(rows.into_iter().map(Ok).collect::<Vec<_>>()),
                Err(e) => futures::stream::iter(vec![Err(e)]),
            },
            Err(e) => futures::stream::iter(vec![Err(to_pg_error(&Error::from_datafusion(e)))]),
        })
        .flatten()
}

/// Decode bound parameter `i` of `portal` into a scalar of the type the plan expects
/// (or the type the client declared).
pub fn decode_param<S: Clone>(portal: &Portal<S>, i: usize, pg: &Type, want: Option<&DataType>) -> PgWireResult<ScalarValue> {
    let bytes = portal.parameters.get(i).ok_or(PgWireError::ParameterIndexOutOfBound(i))?;
    let raw = Raw { bytes: bytes.as_deref(), binary: portal.parameter_format.is_binary(i) };
    decode_value(raw, pg, want, &format!("parameter ${}", i + 1))
}

/// One value as a client sent it: text or binary, NULL as None.
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a> {
    pub bytes: Option<&'a [u8]>,
    pub binary: bool,
}

impl<'a> Raw<'a> {
    /// The value as `T`, read by postgres-types (binary) or pgwire (text).
    pub fn get<T>(&self, pg: &Type) -> PgWireResult<Option<T>>
    where
        T: tokio_postgres::types::FromSqlOwned + pgwire::types::FromSqlText<'a>,
    {
        if !T::accepts(pg) {
            return Err(PgWireError::InvalidRustTypeForParameter(pg.name().to_owned()));
        }
        match self.bytes {
            None => Ok(None),
            Some(b) if self.binary => T::from_sql(pg, b).map(Some).map_err(PgWireError::FailedToParseParameter),
            Some(b) => T::from_sql_text(pg, b, &pgwire::types::format::FormatOptions::default())
                .map(Some)
                .map_err(PgWireError::FailedToParseParameter),
        }
    }
}

/// Decode one value a client sent (a bound parameter, a COPY field) into a scalar of
/// the type the plan expects (`want`), reading it as the wire type `pg`. `what`
/// names the value in errors ("parameter $1", "column x").
pub fn decode_value(raw: Raw<'_>, pg: &Type, want: Option<&DataType>, what: &str) -> PgWireResult<ScalarValue> {
    let scalar_array = matches!(
        *pg,
        Type::INT2_ARRAY | Type::INT4_ARRAY | Type::INT8_ARRAY | Type::BOOL_ARRAY | Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::OID_ARRAY | Type::NUMERIC_ARRAY
    );
    if raw.binary && scalar_array {
        check_binary_array(&raw, what)?;
    }
    let value = match *pg {
        Type::BOOL => ScalarValue::Boolean(raw.get::<bool>(pg)?),
        Type::INT2 => ScalarValue::Int16(raw.get::<i16>(pg)?),
        Type::INT4 => ScalarValue::Int32(raw.get::<i32>(pg)?),
        Type::INT8 => ScalarValue::Int64(raw.get::<i64>(pg)?),
        Type::OID => ScalarValue::Int64(raw.get::<u32>(pg)?.map(i64::from)),
        Type::FLOAT4 => ScalarValue::Float32(raw.get::<f32>(pg)?),
        Type::FLOAT8 => ScalarValue::Float64(raw.get::<f64>(pg)?),
        Type::NUMERIC => match raw.get::<PgNumeric>(pg) {
            Ok(Some(n)) => ScalarValue::Decimal128(Some(n.value), 38, n.scale),
            Ok(None) => ScalarValue::Decimal128(None, 38, 0),
            Err(PgWireError::FailedToParseParameter(e)) if e.is::<Overflow>() => {
                return Err(to_pg_error(&Error::NumericOutOfRange(format!("{what}: {e}"))));
            }
            Err(e) => return Err(e),
        },
        Type::BYTEA => ScalarValue::Binary(raw.get::<Vec<u8>>(pg)?),
        Type::DATE => ScalarValue::Date32(
            raw
                .get::<chrono::NaiveDate>(pg)?
                .map(|d| (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32),
        ),
        Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(
            raw.get::<chrono::NaiveDateTime>(pg)?.map(|t| t.and_utc().timestamp_micros()),
            None,
        ),
        Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
            raw
                .get::<chrono::DateTime<chrono::FixedOffset>>(pg)?
                .map(|t| t.timestamp_micros()),
            Some("+00:00".into()),
        ),
        Type::FLOAT4_ARRAY | Type::FLOAT8_ARRAY if raw.binary => {
            // Our own reader: postgres-types reserves the element count the client
            // declares (2^31 - 1 elements: a 32 GiB allocation and an abort).
            match raw.bytes {
                None => ScalarValue::Null,
                Some(bytes) => {
                    let (values, elem) = binary_float_array(&bytes).map_err(|m| {
                        to_pg_error(&Error::InvalidText(format!("{what}: invalid binary array: {m}")))
                    })?;
                    ScalarValue::List(ScalarValue::new_list_nullable(&values, &elem))
                }
            }
        }
        Type::FLOAT4_ARRAY => {
            // `{1,2,3}` or binary float4[]; pgvector's `[1,2,3]` text too.
            let v = match raw.get::<Vec<Option<f32>>>(pg) {
                Ok(v) => v,
                Err(e) => match raw.get::<String>(&Type::TEXT) {
                    Ok(Some(t)) if t.trim_start().starts_with('[') => Some(
                        crate::udf::vector::parse_text(&t).map_err(|e| to_pg_error(&e))?.into_iter().map(Some).collect(),
                    ),
                    _ => return Err(e),
                },
            };
            match v {
                Some(v) => ScalarValue::List(ScalarValue::new_list_nullable(
                    &v.into_iter().map(ScalarValue::Float32).collect::<Vec<_>>(),
                    &DataType::Float32,
                )),
                None => ScalarValue::Null,
            }
        }
        Type::INT2_ARRAY if raw.binary => list_param(raw.get::<Vec<Option<i16>>>(pg)?, ScalarValue::Int16, DataType::Int16),
        Type::INT4_ARRAY if raw.binary => list_param(raw.get::<Vec<Option<i32>>>(pg)?, ScalarValue::Int32, DataType::Int32),
        Type::INT8_ARRAY if raw.binary => list_param(raw.get::<Vec<Option<i64>>>(pg)?, ScalarValue::Int64, DataType::Int64),
        Type::BOOL_ARRAY if raw.binary => list_param(raw.get::<Vec<Option<bool>>>(pg)?, ScalarValue::Boolean, DataType::Boolean),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY if raw.binary => list_param(raw.get::<Vec<Option<String>>>(pg)?, ScalarValue::Utf8, DataType::Utf8),
        // Text arrays go through the plan's cast from text (engine/array_literals.rs).
        Type::NUMERIC_ARRAY if raw.binary => match raw.get::<Vec<Option<PgNumeric>>>(pg)? {
            // One scale for the list: the widest of its elements'.
            Some(v) => {
                let scale = v.iter().flatten().map(|n| n.scale.max(0)).max().unwrap_or(0);
                let mut out = Vec::with_capacity(v.len());
                for n in v {
                    let widened = |n: PgNumeric| -> Option<i128> {
                        let v = if n.scale < 0 { n.value.checked_mul(10i128.checked_pow(u32::from(n.scale.unsigned_abs()))?)? } else { n.value };
                        v.checked_mul(10i128.checked_pow((scale - n.scale.max(0)) as u32)?)
                    };
                    let value = match n {
                        Some(n) => Some(widened(n).ok_or_else(|| to_pg_error(&Error::NumericOutOfRange(format!("{what}: numeric array element out of range"))))?),
                        None => None,
                    };
                    out.push(ScalarValue::Decimal128(value, 38, scale));
                }
                ScalarValue::List(ScalarValue::new_list_nullable(&out, &DataType::Decimal128(38, scale)))
            }
            None => ScalarValue::Null,
        },
        Type::OID_ARRAY if raw.binary => match raw.get::<Vec<Option<u32>>>(pg)? {
            Some(v) => ScalarValue::List(ScalarValue::new_list_nullable(
                &v.into_iter().map(|o| ScalarValue::Int32(o.map(|o| o as i32))).collect::<Vec<_>>(),
                &DataType::Int32,
            )),
            None => ScalarValue::Null,
        },
        Type::FLOAT8_ARRAY => {
            let v = raw.get::<Vec<Option<f64>>>(pg)?;
            match v {
                Some(v) => ScalarValue::List(ScalarValue::new_list_nullable(
                    &v.into_iter().map(ScalarValue::Float64).collect::<Vec<_>>(),
                    &DataType::Float64,
                )),
                None => ScalarValue::Null,
            }
        }
        ref t if t.oid() == VECTOR_OID => match raw.bytes {
            None => ScalarValue::Null,
            Some(bytes) => {
                let bad = |m: String| to_pg_error(&Error::InvalidText(format!("{what}: invalid vector: {m}")));
                let v = if raw.binary {
                    binary_vector(&bytes).map_err(bad)?
                } else {
                    let t = std::str::from_utf8(&bytes).map_err(|e| bad(e.to_string()))?;
                    crate::udf::vector::parse_text(t).map_err(|e| to_pg_error(&e))?
                };
                crate::udf::vector::vector_scalar(&v)
            }
        },
        // json's text, in both formats (jsonb's binary form starts with its version, 1);
        // the INSERT checks it is JSON (udf/json_ops.rs).
        Type::JSON | Type::JSONB => match raw.bytes {
            None => ScalarValue::Utf8(None),
            Some(b) => {
                let b = match (raw.binary && *pg == Type::JSONB, b.split_first()) {
                    (true, Some((1, rest))) => rest,
                    (true, _) => return Err(to_pg_error(&Error::InvalidText(format!("{what}: unsupported jsonb version number")))),
                    (false, _) => b,
                };
                let text = std::str::from_utf8(b).map_err(|_| to_pg_error(&Error::InvalidText(format!("{what}: json that is not UTF-8"))))?;
                ScalarValue::Utf8(Some(text.to_string()))
            }
        },
        _ => ScalarValue::Utf8(raw.get::<String>(pg)?),
    };
    // Text sent for a typed placeholder: let DataFusion's cast rules convert it
    // (vectors: pgvector's text form).
    if let (Some(dt), ScalarValue::Utf8(Some(t))) = (want, &value) {
        if crate::udf::vector::is_vector_like(dt) {
            let v = crate::udf::vector::parse_text(t).map_err(|e| to_pg_error(&e))?;
            return Ok(ScalarValue::List(ScalarValue::new_list_nullable(
                &v.into_iter().map(|x| ScalarValue::Float32(Some(x))).collect::<Vec<_>>(),
                &DataType::Float32,
            )));
        }
    }
    // Text for a typed placeholder goes through DataFusion's casts; a narrower integer
    // (psycopg binds small ints as int2), another float, numeric scale or timestamp precision
    // becomes the type the plan expects, as PostgreSQL's implicit casts do.
    let widen = |dt: &DataType, v: &DataType| {
        (dt.is_integer() && v.is_integer())
            || (dt.is_floating() && (v.is_floating() || v.is_integer()))
            || (matches!(dt, DataType::Timestamp(..)) && matches!(v, DataType::Timestamp(..)))
            || (matches!(dt, DataType::Decimal128(..)) && (matches!(v, DataType::Decimal128(..)) || v.is_integer()))
            || matches!((dt, v), (DataType::List(a), DataType::List(b)) if matches!((a.data_type(), b.data_type()), (DataType::Decimal128(..), DataType::Decimal128(..))))
    };
    match (want, &value) {
        (Some(dt), ScalarValue::Utf8(_)) if dt != &DataType::Utf8 => value
            .cast_to(dt)
            .map_err(|e| to_pg_error(&Error::DataException(format!("{what}: {e}")))),
        (Some(dt), v) if dt != &v.data_type() && widen(dt, &v.data_type()) => value
            .cast_to(dt)
            .map_err(|e| to_pg_error(&Error::NumericOutOfRange(format!("{what}: {e}")))),
        _ => Ok(value),
    }
}

/// A binary array's header, checked before postgres-types reads it: it reserves the
/// element count the client declares (2^31 - 1 elements: a 32 GiB allocation and an
/// abort). One dimension (or none), every element at least its 4-byte length.
fn check_binary_array(raw: &Raw<'_>, what: &str) -> PgWireResult<()> {
    let Some(b) = raw.bytes else { return Ok(()) };
    let word = |i: usize| b.get(i * 4..i * 4 + 4).map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]));
    let bad = |m: String| Err(to_pg_error(&Error::InvalidText(format!("{what}: invalid binary array: {m}"))));
    match word(0) {
        Some(0) => Ok(()),
        Some(1) => match word(3) {
            Some(n) if n >= 0 && (n as usize).saturating_mul(4) <= b.len().saturating_sub(20) => Ok(()),
            Some(n) => bad(format!("{n} elements declared, {} bytes present", b.len())),
            None => bad("truncated".into()),
        },
        Some(n) => bad(format!("{n} dimensions (only one-dimensional arrays are bound)")),
        None => bad("truncated".into()),
    }
}

/// A bound array of scalars as a list value (NULL: a NULL of no particular type,
/// which the plan's cast types).
fn list_param<T>(v: Option<Vec<Option<T>>>, scalar: impl Fn(Option<T>) -> ScalarValue, dt: DataType) -> ScalarValue {
    match v {
        Some(v) => ScalarValue::List(ScalarValue::new_list_nullable(&v.into_iter().map(scalar).collect::<Vec<_>>(), &dt)),
        None => ScalarValue::Null,
    }
}

/// pgvector's binary form: int16 dimension, int16 unused (0), float4s big-endian.
pub fn binary_vector(b: &[u8]) -> Result<Vec<f32>, String> {
    if b.len() < 4 {
        return Err("shorter than its header".into());
    }
    let dim = i16::from_be_bytes([b[0], b[1]]);
    if dim < 1 {
        return Err(format!("dimension {dim}"));
    }
    let body = &b[4..];
    if body.len() != dim as usize * 4 {
        return Err(format!("{dim} dimensions in {} bytes", body.len()));
    }
    let v: Vec<f32> = body.chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
    crate::udf::vector::check_values(&v).map_err(|e| e.to_string())?;
    Ok(v)
}

/// The wire type to announce for a parameter DataFusion inferred as `dt`.
pub fn param_pg_type(dt: Option<&DataType>) -> Type {
    match dt {
        Some(dt) => pg_type(dt),
        // PostgreSQL resolves a parameter it cannot type as text.
        None => Type::TEXT,
    }
}

#[cfg(test)]
mod tests {
    use super::pg_float_text;

    #[test]
    fn floats_are_spelled_like_postgres() {
        for (v, want) in [(2.0, "2"), (0.5, "0.5"), (1.25, "1.25"), (-0.0, "-0"), (1e20, "1e+20"), (1.5e-5, "1.5e-05"), (f64::NAN, "NaN"), (f64::NEG_INFINITY, "-Infinity"), (0.1 + 0.2, "0.30000000000000004")] {
            assert_eq!(pg_float_text(v, false), want);
        }
        assert_eq!(pg_float_text(0.1f32 as f64, true), "0.1");
    }
}

pub fn unknown_param_error(i: usize) -> PgWireError {
    to_pg_error(&Error::invalid(format!("could not determine data type of parameter ${}", i + 1)))
}

/// A binary `float4[]` / `float8[]` value (one dimension, or none for an empty
/// array), with every count checked against the bytes present before anything is
/// allocated. Returns the elements and their type.
pub fn binary_float_array(b: &[u8]) -> Result<(Vec<ScalarValue>, DataType), String> {
    let mut pos = 0usize;
    let i32_at = |pos: &mut usize| -> Result<i32, String> {
        let s = b.get(*pos..*pos + 4).ok_or("truncated")?;
        *pos += 4;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    };
    let ndim = i32_at(&mut pos)?;
    let _has_null = i32_at(&mut pos)?;
    let oid = i32_at(&mut pos)? as u32;
    let (elem, size) = match oid {
        700 => (DataType::Float32, 4usize),
        701 => (DataType::Float64, 8usize),
        other => return Err(format!("element type oid {other} is not float4 or float8")),
    };
    let count = match ndim {
        0 => 0usize,
        1 => {
            let n = i32_at(&mut pos)?;
            let _lower = i32_at(&mut pos)?;
            if n < 0 {
                return Err(format!("negative dimension {n}"));
            }
            n as usize
        }
        n => return Err(format!("{n} dimensions (a vector has one)")),
    };
    // Every element takes at least its 4-byte length.
    if count.saturating_mul(4) > b.len().saturating_sub(pos) {
        return Err(format!("{count} elements declared, {} bytes present", b.len() - pos));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = i32_at(&mut pos)?;
        if len == -1 {
            out.push(if size == 4 { ScalarValue::Float32(None) } else { ScalarValue::Float64(None) });
            continue;
        }
        if len as usize != size {
            return Err(format!("element of {len} bytes in an array of {size}-byte floats"));
        }
        let s = b.get(pos..pos + size).ok_or("truncated")?;
        pos += size;
        out.push(if size == 4 {
            ScalarValue::Float32(Some(f32::from_be_bytes([s[0], s[1], s[2], s[3]])))
        } else {
            ScalarValue::Float64(Some(f64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])))
        });
    }
    if pos != b.len() {
        return Err("trailing bytes".into());
    }
    Ok((out, elem))
}

#[cfg(test)]
mod array_tests {
    use super::*;

    fn header(ndim: i32, oid: u32, n: i32) -> Vec<u8> {
        let mut v = vec![];
        v.extend_from_slice(&ndim.to_be_bytes());
        v.extend_from_slice(&0i32.to_be_bytes());
        v.extend_from_slice(&oid.to_be_bytes());
        if ndim == 1 {
            v.extend_from_slice(&n.to_be_bytes());
            v.extend_from_slice(&1i32.to_be_bytes());
        }
        v
    }

    #[test]
    fn binary_arrays_are_read_within_their_bytes() {
        let mut ok = header(1, 701, 2);
        for x in [1.5f64, -2.0] {
            ok.extend_from_slice(&8i32.to_be_bytes());
            ok.extend_from_slice(&x.to_be_bytes());
        }
        let (v, t) = binary_float_array(&ok).unwrap();
        assert_eq!((v.len(), t), (2, DataType::Float64));
        // The one-message crash: 2^31 - 1 elements declared, none present.
        assert!(binary_float_array(&header(1, 701, i32::MAX)).unwrap_err().contains("declared"));
        assert!(binary_float_array(&header(1, 700, -1)).is_err());
        assert!(binary_float_array(&header(3, 700, 1)).is_err());
        assert!(binary_float_array(&header(1, 23, 0)).is_err());
        assert!(binary_float_array(&ok[..ok.len() - 1]).is_err());
        assert_eq!(binary_float_array(&header(0, 700, 0)).unwrap().0.len(), 0);
    }
}
