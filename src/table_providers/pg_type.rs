//! `pg_catalog.pg_type` with the `vector` type: datafusion-pg-catalog's static rows
//! (PostgreSQL's built-in types) and two more, `vector` and its array type `_vector`,
//! in schema `public` as CREATE EXTENSION vector would make them. Client libraries
//! (pgvector-python's `register_vector`, pgvector-node, asyncpg's codecs) look the
//! type's OID up here by name, then read columns of that OID in pgvector's text or
//! binary form.
//!
//! Enums and domains (catalog/types.rs) add their rows when pg_type is read: an enum
//! (typtype `e`) and its array type `_name`, a domain (typtype `d`, typbasetype its
//! base type's OID, typnotnull, typdefault) on its base type's row; `pg_enum` holds the
//! labels. asyncpg and SQLAlchemy read both to decode and reflect them.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float32Array, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result as DfResult;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;

use super::pg_relations;
use crate::catalog::Catalog;
use crate::catalog::types::TypeKind;
use crate::error::{Error, Result};
use crate::udf::vector::{VECTOR_ARRAY_OID, VECTOR_OID};

/// pg_type: the library's rows plus `vector` and `_vector`, and the catalog's types.
pub async fn with_vector(ctx: &SessionContext, inner: Arc<dyn TableProvider>, catalog: &Arc<Catalog>) -> Result<Arc<dyn TableProvider>> {
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
    let all = concat_batches(&schema, &parts).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Arc::new(PgType { schema, all, catalog: catalog.clone() }))
}

/// pg_type's rows: the built-in ones (`all`) and those of the catalog's types.
#[derive(Debug)]
struct PgType {
    schema: SchemaRef,
    all: RecordBatch,
    catalog: Arc<Catalog>,
}

impl PgType {
    /// The row of the built-in type with OID `oid`.
    fn row_of_oid(&self, oid: i64) -> Option<usize> {
        let oids = datafusion::arrow::compute::cast(self.all.column_by_name("oid")?, &DataType::Int64).ok()?;
        let oids = oids.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        (0..oids.len()).find(|&i| oids.is_valid(i) && oids.value(i) == oid)
    }

    fn user_rows(&self) -> Result<Vec<RecordBatch>> {
        let state = self.catalog.snapshot();
        if state.types.is_empty() {
            return Ok(vec![]);
        }
        let text = self.row_of_oid(25).ok_or_else(|| missing("text"))?;
        let text_array = self.row_of_oid(1009).ok_or_else(|| missing("_text"))?;
        let mut rows = vec![];
        for (key, rec) in &state.types {
            let (ns, name) = pg_relations::split_key(&state, key);
            let oid = i64::from(pg_relations::type_oid(&ns, &name));
            let namespace = i64::from(pg_relations::namespace_oid(&ns));
            match &rec.kind {
                TypeKind::Enum { .. } => {
                    let array = i64::from(pg_relations::array_type_oid(&ns, &name));
                    let row: Vec<(&str, ScalarValue)> = vec![
                        ("oid", ScalarValue::Int64(Some(oid))),
                        ("typname", ScalarValue::from(name.as_str())),
                        ("typnamespace", ScalarValue::Int64(Some(namespace))),
                        ("typlen", ScalarValue::Int64(Some(4))),
                        ("typbyval", ScalarValue::Boolean(Some(true))),
                        ("typtype", ScalarValue::from("e")),
                        ("typcategory", ScalarValue::from("E")),
                        ("typispreferred", ScalarValue::Boolean(Some(false))),
                        ("typelem", ScalarValue::Int64(Some(0))),
                        ("typarray", ScalarValue::Int64(Some(array))),
                        ("typinput", ScalarValue::from("enum_in")),
                        ("typoutput", ScalarValue::from("enum_out")),
                        ("typreceive", ScalarValue::from("enum_recv")),
                        ("typsend", ScalarValue::from("enum_send")),
                        ("typalign", ScalarValue::from("i")),
                        ("typstorage", ScalarValue::from("p")),
                        ("typcollation", ScalarValue::Int64(Some(0))),
                    ];
                    rows.push(row_like(&self.all, text, &row)?);
                    let array_row: Vec<(&str, ScalarValue)> = vec![
                        ("oid", ScalarValue::Int64(Some(array))),
                        ("typname", ScalarValue::from(format!("_{name}"))),
                        ("typnamespace", ScalarValue::Int64(Some(namespace))),
                        ("typelem", ScalarValue::Int64(Some(oid))),
                        ("typarray", ScalarValue::Int64(Some(0))),
                        ("typcollation", ScalarValue::Int64(Some(0))),
                    ];
                    rows.push(row_like(&self.all, text_array, &array_row)?);
                }
                TypeKind::Domain { field, not_null, default, .. } => {
                    let base = crate::catalog::datasets::decode_schema(field)?;
                    let base = base.fields().first().ok_or_else(|| missing("a domain's base type"))?.clone();
                    // A domain over a domain names the inner domain as its base.
                    let base_oid = match crate::udf::user_types::domain_of(&base) {
                        Some(d) => i64::from(d),
                        None => i64::from(crate::pg_types::field_pg_type(&base).oid()),
                    };
                    let template = self.row_of_oid(base_oid).unwrap_or(text);
                    let row: Vec<(&str, ScalarValue)> = vec![
                        ("oid", ScalarValue::Int64(Some(oid))),
                        ("typname", ScalarValue::from(name.as_str())),
                        ("typnamespace", ScalarValue::Int64(Some(namespace))),
                        ("typtype", ScalarValue::from("d")),
                        ("typbasetype", ScalarValue::Int64(Some(base_oid))),
                        ("typnotnull", ScalarValue::Boolean(Some(*not_null))),
                        ("typdefault", ScalarValue::Utf8(default.clone())),
                        ("typtypmod", ScalarValue::Int64(Some(-1))),
                        ("typndims", ScalarValue::Int64(Some(0))),
                        ("typelem", ScalarValue::Int64(Some(0))),
                        ("typarray", ScalarValue::Int64(Some(0))),
                        ("typinput", ScalarValue::from("domain_in")),
                        ("typreceive", ScalarValue::from("domain_recv")),
                    ];
                    rows.push(row_like(&self.all, template, &row)?);
                }
            }
        }
        Ok(rows)
    }
}

#[async_trait::async_trait]
impl TableProvider for PgType {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut parts = vec![self.all.clone()];
        parts.extend(self.user_rows().map_err(Error::into_datafusion)?);
        MemTable::try_new(self.schema.clone(), vec![parts])?.scan(state, projection, filters, limit).await
    }
}

/// `pg_catalog.pg_enum`: one row per label of every enum, in their order.
#[derive(Debug)]
pub struct PgEnum {
    schema: SchemaRef,
    catalog: Arc<Catalog>,
}

pub const PG_ENUM: &str = "pg_enum";

impl PgEnum {
    pub fn new(catalog: &Arc<Catalog>) -> PgEnum {
        let oid = |n: &str| Field::new(n, DataType::Int32, false).with_metadata([("pg.oid_alias".to_string(), "oid".to_string())].into());
        let schema = Arc::new(Schema::new(vec![oid("oid"), oid("enumtypid"), Field::new("enumsortorder", DataType::Float32, false), Field::new("enumlabel", DataType::Utf8, false)]));
        PgEnum { schema, catalog: catalog.clone() }
    }
}

#[async_trait::async_trait]
impl TableProvider for PgEnum {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> DfResult<Arc<dyn ExecutionPlan>> {
        let catalog = self.catalog.snapshot();
        let (mut oids, mut types, mut orders, mut labels) = (vec![], vec![], vec![], vec![]);
        for (key, rec) in &catalog.types {
            let TypeKind::Enum { labels: l } = &rec.kind else { continue };
            let (ns, name) = pg_relations::split_key(&catalog, key);
            let type_oid = pg_relations::type_oid(&ns, &name);
            for (i, label) in l.iter().enumerate() {
                oids.push(pg_relations::enum_label_oid(&ns, &name, label));
                types.push(type_oid);
                orders.push(i as f32 + 1.0);
                labels.push(label.clone());
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(oids)),
            Arc::new(Int32Array::from(types)),
            Arc::new(Float32Array::from(orders)),
            Arc::new(StringArray::from(labels)),
        ];
        super::system::scan_columns(&self.schema, columns, state, projection, filters, limit).await
    }
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

