//! `pg_catalog.pg_type` with the `vector` type: datafusion-pg-catalog's static rows
//! (PostgreSQL's built-in types) and two more, `vector` and its array type `_vector`,
//! in schema `public` as CREATE EXTENSION vector would make them. Client libraries
//! (pgvector-python's `register_vector`, pgvector-node, asyncpg's codecs) look the
//! type's OID up here by name, then read columns of that OID in pgvector's text or
//! binary form.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::catalog::TableProvider;
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;
use futures::TryStreamExt;

use crate::error::{Error, Result};
use crate::udf::vector::{VECTOR_ARRAY_OID, VECTOR_OID};

/// pg_type: the library's rows plus `vector` and `_vector`.
pub async fn with_vector(ctx: &SessionContext, inner: Arc<dyn TableProvider>) -> Result<Arc<dyn TableProvider>> {
    let state = ctx.state();
    let plan = inner.scan(&state, None, &[], None).await?;
    let batches: Vec<RecordBatch> = datafusion::physical_plan::execute_stream(plan, ctx.task_ctx())?.try_collect().await?;
    let schema = inner.schema();
    let all = concat_batches(&schema, &batches).map_err(|e| Error::Internal(e.to_string()))?;
    let public = i64::from(super::pg_relations::PUBLIC_NAMESPACE);
    let row_of = |typname: &str| -> Result<usize> {
        let names = datafusion::arrow::compute::cast(all.column_by_name("typname").ok_or_else(|| missing("typname"))?, &datafusion::arrow::datatypes::DataType::Utf8)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let names = names.as_any().downcast_ref::<datafusion::arrow::array::StringArray>().ok_or_else(|| missing("typname"))?;
        (0..names.len()).find(|&i| names.value(i) == typname).ok_or_else(|| missing(typname))
    };
    let vector: Vec<(&str, ScalarValue)> = vec![
        ("oid", ScalarValue::Int64(Some(VECTOR_OID as i64))),
        ("typname", ScalarValue::from("vector")),
        ("typnamespace", ScalarValue::Int64(Some(public))),
        ("typlen", ScalarValue::Int64(Some(-1))),
        ("typbyval", ScalarValue::Boolean(Some(false))),
        ("typtype", ScalarValue::from("b")),
        ("typcategory", ScalarValue::from("U")),
        ("typelem", ScalarValue::Int64(Some(0))),
        ("typarray", ScalarValue::Int64(Some(VECTOR_ARRAY_OID as i64))),
        ("typinput", ScalarValue::from("vector_in")),
        ("typoutput", ScalarValue::from("vector_out")),
        ("typreceive", ScalarValue::from("vector_recv")),
        ("typsend", ScalarValue::from("vector_send")),
        ("typmodin", ScalarValue::from("vector_typmod_in")),
        ("typalign", ScalarValue::from("i")),
        ("typstorage", ScalarValue::from("x")),
    ];
    let array: Vec<(&str, ScalarValue)> = vec![
        ("oid", ScalarValue::Int64(Some(VECTOR_ARRAY_OID as i64))),
        ("typname", ScalarValue::from("_vector")),
        ("typnamespace", ScalarValue::Int64(Some(public))),
        ("typelem", ScalarValue::Int64(Some(VECTOR_OID as i64))),
        ("typarray", ScalarValue::Int64(Some(0))),
    ];
    let rows = [row_like(&all, row_of("float4")?, &vector)?, row_like(&all, row_of("_float4")?, &array)?];
    let mut parts = batches;
    parts.extend(rows);
    // PostgreSQL's one-byte `"char"` columns are text here; marked so the wire sends
    // them as "char" (tokio-postgres reads typtype as an i8 when it looks a type up).
    let marked: Vec<datafusion::arrow::datatypes::Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let f = f.as_ref().clone();
            if matches!(f.name().as_str(), "typtype" | "typcategory" | "typalign" | "typstorage" | "typdelim") {
                let mut m = f.metadata().clone();
                m.insert(crate::udf::vector::VECTOR_MARK.to_string(), "char".to_string());
                f.with_metadata(m)
            } else if matches!(f.name().as_str(), "oid" | "typnamespace" | "typelem" | "typarray" | "typbasetype" | "typrelid" | "typowner" | "typcollation") {
                let mut m = f.metadata().clone();
                m.entry("pg.oid_alias".to_string()).or_insert_with(|| "oid".to_string());
                f.with_metadata(m)
            } else {
                f
            }
        })
        .collect();
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new_with_metadata(marked, schema.metadata().clone()));
    let parts = parts
        .into_iter()
        .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()).map_err(|e| Error::Internal(e.to_string())))
        .collect::<Result<Vec<_>>>()?;
    let table = MemTable::try_new(schema, vec![parts])?;
    Ok(Arc::new(table))
}

fn missing(what: &str) -> Error {
    Error::Internal(format!("pg_type has no {what}"))
}

/// Row `template` of `all` with the named columns replaced (cast to their types).
fn row_like(all: &RecordBatch, template: usize, with: &[(&str, ScalarValue)]) -> Result<RecordBatch> {
    let schema = all.schema();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, f) in schema.fields().iter().enumerate() {
        let value = match with.iter().find(|(n, _)| *n == f.name()) {
            Some((_, v)) => v.cast_to(f.data_type())?,
            None => ScalarValue::try_from_array(all.column(i), template)?,
        };
        columns.push(value.to_array_of_size(1)?);
    }
    RecordBatch::try_new(schema, columns).map_err(|e| Error::Internal(e.to_string()))
}

