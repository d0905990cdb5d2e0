//! System tables (`lakehouse.buckets`, `lakehouse.datasets`, `lakehouse.indexes`,
//! `lakehouse.models`): computed from the live catalog at scan time, so they always
//! show the current state.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::{Catalog, CatalogState};
use crate::error::Result;

type Producer = Arc<dyn Fn(&CatalogState) -> Result<Vec<ArrayRef>> + Send + Sync>;

pub struct SystemTable {
    pub name: &'static str,
    schema: SchemaRef,
    catalog: Arc<Catalog>,
    produce: Producer,
}

impl fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SystemTable({})", self.name)
    }
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

pub fn tables(catalog: &Arc<Catalog>) -> Vec<SystemTable> {
    vec![
        SystemTable {
            name: "buckets",
            schema: Arc::new(Schema::new(vec![
                text("name"),
                text("url"),
                text("kind"),
                Field::new("removable", DataType::Boolean, false),
                text("created_at"),
            ])),
            catalog: catalog.clone(),
            produce: Arc::new(|s| {
                let b: Vec<_> = s.buckets.values().collect();
                Ok(vec![
                    strings(b.iter().map(|b| Some(b.name.clone()))),
                    strings(b.iter().map(|b| Some(b.url.clone()))),
                    strings(b.iter().map(|b| Some(b.kind.as_str().to_string()))),
                    Arc::new(BooleanArray::from(
                        b.iter().map(|b| b.kind == crate::catalog::BucketKind::User).collect::<Vec<_>>(),
                    )),
                    strings(b.iter().map(|b| Some(b.created_at.clone()))),
                ])
            }),
        },
        SystemTable {
            name: "datasets",
            schema: Arc::new(Schema::new(vec![
                text("name"),
                text("bucket"),
                text("format"),
                text("location"),
                Field::new("owned", DataType::Boolean, false),
                text("source"),
                text("created_at"),
            ])),
            catalog: catalog.clone(),
            produce: Arc::new(|s| {
                let d: Vec<_> = s.datasets.values().collect();
                Ok(vec![
                    strings(d.iter().map(|d| Some(d.name.clone()))),
                    strings(d.iter().map(|d| Some(d.bucket.clone()))),
                    strings(d.iter().map(|d| Some(d.format.clone()))),
                    strings(d.iter().map(|d| Some(d.location.clone()))),
                    Arc::new(BooleanArray::from(d.iter().map(|d| d.owned).collect::<Vec<_>>())),
                    strings(d.iter().map(|d| Some(d.source.clone()))),
                    strings(d.iter().map(|d| Some(d.created_at.clone()))),
                ])
            }),
        },
        SystemTable {
            name: "indexes",
            schema: Arc::new(Schema::new(vec![
                text("name"),
                text("table"),
                text("column"),
                text("method"),
                text("metric"),
                text("params"),
                Field::new("rows", DataType::Int64, false),
                Field::new("dims", DataType::Int64, false),
                text("bucket"),
                Field::new("build_secs", DataType::Float64, false),
                Field::new("size_bytes", DataType::Int64, false),
                text("built_at"),
                text("updated_at"),
                text("location"),
                text("model"),
            ])),
            catalog: catalog.clone(),
            produce: Arc::new(|s| {
                let ix: Vec<_> = s.indexes.values().collect();
                let ints = |f: &dyn Fn(&crate::catalog::indexes::IndexRecord) -> i64| -> ArrayRef {
                    Arc::new(Int64Array::from(ix.iter().map(|i| f(i)).collect::<Vec<_>>()))
                };
                Ok(vec![
                    strings(ix.iter().map(|i| Some(i.name.clone()))),
                    strings(ix.iter().map(|i| Some(i.table.clone()))),
                    strings(ix.iter().map(|i| Some(i.column.clone()))),
                    strings(ix.iter().map(|i| Some(i.method.clone()))),
                    strings(ix.iter().map(|i| Some(i.metric.opclass().to_string()))),
                    strings(ix.iter().map(|i| Some(i.params()))),
                    ints(&|i| i.rows as i64),
                    ints(&|i| i.dims as i64),
                    strings(ix.iter().map(|i| Some(i.bucket.clone()))),
                    Arc::new(Float64Array::from(ix.iter().map(|i| i.build_secs).collect::<Vec<_>>())),
                    ints(&|i| i.size_bytes as i64),
                    strings(ix.iter().map(|i| Some(i.built_at.clone()))),
                    strings(ix.iter().map(|i| i.updated_at.clone())),
                    strings(ix.iter().map(|i| Some(i.location.clone()))),
                    strings(ix.iter().map(|i| i.model.clone())),
                ])
            }),
        },
    ]
}

fn strings(values: impl Iterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(values.collect::<Vec<_>>()))
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let snapshot = self.catalog.snapshot();
        let columns = (self.produce)(&snapshot).map_err(|e| e.into_datafusion())?;
        scan_columns(&self.schema, columns, state, projection, filters, limit).await
    }
}

/// `lakehouse.models`: every embedding model with its provider, dimension and whether
/// it can be used right now (files present, server accepting connections; checked at
/// scan time, concurrently, at most 0.8 s each).
pub struct ModelsTable {
    models: Arc<crate::embedding::Models>,
    schema: SchemaRef,
}

impl fmt::Debug for ModelsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelsTable")
    }
}

impl ModelsTable {
    pub fn new(models: Arc<crate::embedding::Models>) -> Self {
        let schema = Arc::new(Schema::new(vec![
            text("name"),
            text("provider"),
            Field::new("dims", DataType::Int64, true),
            text("location"),
            text("model"),
            Field::new("batch_size", DataType::Int64, false),
            Field::new("reachable", DataType::Boolean, false),
            text("source"),
            text("created_at"),
        ]));
        ModelsTable { models, schema }
    }
}

#[async_trait]
impl TableProvider for ModelsTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let all = self.models.all();
        let reachable = futures::future::join_all(all.iter().map(|m| self.models.reachable(m))).await;
        let columns: Vec<ArrayRef> = vec![
            strings(all.iter().map(|m| Some(m.name.clone()))),
            strings(all.iter().map(|m| Some(m.provider.clone()))),
            Arc::new(Int64Array::from(all.iter().map(|m| m.dims.map(|d| d as i64)).collect::<Vec<_>>())),
            strings(all.iter().map(|m| Some(m.location()))),
            strings(all.iter().map(|m| m.model.clone())),
            Arc::new(Int64Array::from(all.iter().map(|m| m.batch_size() as i64).collect::<Vec<_>>())),
            Arc::new(BooleanArray::from(reachable)),
            strings(all.iter().map(|m| Some(crate::embedding::source_of(&m.name, self.models.is_configured(&m.name)).to_string()))),
            strings(all.iter().map(|m| (!m.created_at.is_empty()).then(|| m.created_at.clone()))),
        ];
        scan_columns(&self.schema, columns, state, projection, filters, limit).await
    }
}

/// Scan one batch made of `columns`.
async fn scan_columns(
    schema: &SchemaRef,
    columns: Vec<ArrayRef>,
    state: &dyn Session,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    MemTable::try_new(schema.clone(), vec![vec![batch]])?.scan(state, projection, filters, limit).await
}
