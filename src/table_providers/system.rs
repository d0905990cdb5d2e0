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
                // Lineage of the latest ingest (NULL for other tables).
                text("source_system"),
                text("source_location"),
                text("source_table"),
                text("source_query"),
                Field::new("source_rows", DataType::Int64, true),
                text("ingest_mode"),
                text("ingest_started_at"),
                text("ingest_finished_at"),
                Field::new("ingests", DataType::Int64, false),
                text("pii_columns"),
            ])),
            catalog: catalog.clone(),
            produce: Arc::new(|s| {
                let d: Vec<_> = s.datasets.values().collect();
                let last = |f: &dyn Fn(&crate::catalog::datasets::Lineage) -> String| {
                    strings(d.iter().map(|d| d.lineage.last().map(f)))
                };
                Ok(vec![
                    strings(d.iter().map(|d| Some(d.name.clone()))),
                    strings(d.iter().map(|d| Some(d.bucket.clone()))),
                    strings(d.iter().map(|d| Some(d.format.clone()))),
                    strings(d.iter().map(|d| Some(d.location.clone()))),
                    Arc::new(BooleanArray::from(d.iter().map(|d| d.owned).collect::<Vec<_>>())),
                    strings(d.iter().map(|d| Some(d.source.clone()))),
                    strings(d.iter().map(|d| Some(d.created_at.clone()))),
                    last(&|l| l.source_system.clone()),
                    last(&|l| l.source_location.clone()),
                    last(&|l| l.source_table.clone()),
                    last(&|l| l.source_query.clone()),
                    Arc::new(Int64Array::from(d.iter().map(|d| d.lineage.last().map(|l| l.rows as i64)).collect::<Vec<_>>())),
                    last(&|l| l.mode.clone()),
                    last(&|l| l.started_at.clone()),
                    last(&|l| l.finished_at.clone()),
                    Arc::new(Int64Array::from(d.iter().map(|d| d.lineage.len() as i64).collect::<Vec<_>>())),
                    strings(d.iter().map(|d| {
                        let flagged: Vec<String> = d
                            .columns
                            .iter()
                            .filter_map(|c| c.pii_kind.as_ref().map(|k| format!("{}:{k}", c.name)))
                            .collect();
                        (!flagged.is_empty()).then(|| flagged.join(", "))
                    })),
                ])
            }),
        },
        SystemTable {
            name: "columns",
            schema: Arc::new(Schema::new(vec![
                text("dataset"),
                text("column_name"),
                Field::new("position", DataType::Int64, false),
                text("data_type"),
                text("source_type"),
                text("pii_kind"),
            ])),
            catalog: catalog.clone(),
            produce: Arc::new(|s| {
                let mut rows: Vec<(String, String, i64, String, Option<String>, Option<String>)> = vec![];
                for d in s.datasets.values() {
                    let Ok(Some(schema)) = d.arrow_schema() else { continue };
                    for (i, f) in schema.fields().iter().enumerate() {
                        let meta = d.columns.iter().find(|c| &c.name == f.name());
                        rows.push((
                            d.name.clone(),
                            f.name().clone(),
                            i as i64 + 1,
                            crate::catalog::datasets::sql_type_name(f.data_type()),
                            meta.and_then(|m| m.source_type.clone()),
                            meta.and_then(|m| m.pii_kind.clone()),
                        ));
                    }
                }
                Ok(vec![
                    strings(rows.iter().map(|r| Some(r.0.clone()))),
                    strings(rows.iter().map(|r| Some(r.1.clone()))),
                    Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
                    strings(rows.iter().map(|r| Some(r.3.clone()))),
                    strings(rows.iter().map(|r| r.4.clone())),
                    strings(rows.iter().map(|r| r.5.clone())),
                ])
            }),
        },
        SystemTable {
            name: "attachments",
            schema: Arc::new(Schema::new(vec![
                text("name"),
                text("type"),
                text("location"),
                text("source_schema"),
                text("password"),
                text("types"),
                Field::new("read_only", DataType::Boolean, false),
                text("created_at"),
            ])),
            catalog: catalog.clone(),
            produce: Arc::new(|s| {
                let a: Vec<_> = s.attachments.values().collect();
                Ok(vec![
                    strings(a.iter().map(|a| Some(a.name.clone()))),
                    strings(a.iter().map(|a| Some(a.location.kind.name().to_string()))),
                    strings(a.iter().map(|a| Some(a.location.display()))),
                    strings(a.iter().map(|a| Some(a.source_schema()))),
                    strings(a.iter().map(|a| Some(a.password.describe()))),
                    strings(a.iter().map(|a| Some(format!("{:?}", a.types).to_lowercase()))),
                    Arc::new(BooleanArray::from(a.iter().map(|a| a.read_only).collect::<Vec<_>>())),
                    strings(a.iter().map(|a| Some(a.created_at.clone()))),
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
        SystemTable {
            name: "eval_sets",
            schema: Arc::new(Schema::new(vec![
                text("name"),
                text("index_name"),
                Field::new("k", DataType::Int64, false),
                Field::new("queries", DataType::Int64, false),
                Field::new("seed", DataType::Int64, false),
                text("source"),
                Field::new("rows", DataType::Int64, false),
                text("location"),
                text("created_at"),
            ])),
            catalog: catalog.clone(),
            produce: Arc::new(|s| {
                let e: Vec<_> = s.eval_sets.values().collect();
                let ints = |f: &dyn Fn(&crate::catalog::eval_sets::EvalSetRecord) -> i64| -> ArrayRef {
                    Arc::new(Int64Array::from(e.iter().map(|x| f(x)).collect::<Vec<_>>()))
                };
                Ok(vec![
                    strings(e.iter().map(|x| Some(x.name.clone()))),
                    strings(e.iter().map(|x| Some(x.index.clone()))),
                    ints(&|x| x.k as i64),
                    ints(&|x| x.queries as i64),
                    ints(&|x| x.seed as i64),
                    strings(e.iter().map(|x| Some(x.source.clone()))),
                    ints(&|x| x.rows as i64),
                    strings(e.iter().map(|x| Some(x.location.clone()))),
                    strings(e.iter().map(|x| Some(x.created_at.clone()))),
                ])
            }),
        },
        SystemTable {
            name: "promotions",
            schema: Arc::new(Schema::new(vec![
                text("index_name"),
                Field::new("position", DataType::Int64, false),
                Field::new("trial_id", DataType::Int64, true),
                Field::new("is_current", DataType::Boolean, false),
                Field::new("m", DataType::Int64, false),
                Field::new("ef_construction", DataType::Int64, false),
                Field::new("ef_search", DataType::Int64, false),
                Field::new("recall", DataType::Float64, true),
                Field::new("p50_ms", DataType::Float64, true),
                text("promoted_by"),
                text("promoted_at"),
                text("note"),
                Field::new("applied", DataType::Boolean, true),
            ])),
            catalog: catalog.clone(),
            produce: Arc::new(|s| {
                // (index, position, promotion, applied): position 0 is the current one.
                let mut rows = vec![];
                for (name, st) in &s.promotions {
                    let built = s.indexes.get(name).map(|r| (r.m, r.ef_construction));
                    if let Some(c) = &st.current {
                        rows.push((name, 0i64, c, Some(built == Some((c.m, c.ef_construction)))));
                    }
                    for (i, h) in st.history.iter().enumerate() {
                        rows.push((name, i as i64 + 1, h, None));
                    }
                }
                let ints = |f: &dyn Fn(&crate::catalog::promotions::Promotion) -> i64| -> ArrayRef {
                    Arc::new(Int64Array::from(rows.iter().map(|(_, _, p, _)| f(p)).collect::<Vec<_>>()))
                };
                Ok(vec![
                    strings(rows.iter().map(|r| Some(r.0.clone()))),
                    Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                    Arc::new(Int64Array::from(rows.iter().map(|r| r.2.trial_id).collect::<Vec<_>>())),
                    Arc::new(BooleanArray::from(rows.iter().map(|r| r.1 == 0).collect::<Vec<_>>())),
                    ints(&|p| p.m as i64),
                    ints(&|p| p.ef_construction as i64),
                    ints(&|p| p.ef_search as i64),
                    Arc::new(Float64Array::from(rows.iter().map(|r| r.2.recall).collect::<Vec<_>>())),
                    Arc::new(Float64Array::from(rows.iter().map(|r| r.2.p50_ms).collect::<Vec<_>>())),
                    strings(rows.iter().map(|r| Some(r.2.promoted_by.clone()))),
                    strings(rows.iter().map(|r| Some(r.2.promoted_at.clone()))),
                    strings(rows.iter().map(|r| Some(r.2.note.clone()))),
                    Arc::new(BooleanArray::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
                ])
            }),
        },
    ]
}

/// A system table computed at scan time (from the catalog, the trial journals, the
/// agent's state).
pub struct LiveTable {
    schema: SchemaRef,
    produce: Arc<dyn Fn() -> Result<Vec<ArrayRef>> + Send + Sync>,
}

impl LiveTable {
    pub fn new(schema: SchemaRef, produce: impl Fn() -> Result<Vec<ArrayRef>> + Send + Sync + 'static) -> LiveTable {
        LiveTable { schema, produce: Arc::new(produce) }
    }
}

impl fmt::Debug for LiveTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LiveTable")
    }
}

#[async_trait]
impl TableProvider for LiveTable {
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
        let columns = (self.produce)().map_err(|e| e.into_datafusion())?;
        scan_columns(&self.schema, columns, state, projection, filters, limit).await
    }
}

/// `lakehouse.trials` (the trial journals) and `lakehouse.agent` (its state).
pub fn tuning_tables(tuning: &Arc<crate::tuning::Tuning>) -> Vec<(&'static str, LiveTable)> {
    let t = tuning.clone();
    let trials = LiveTable {
        schema: Arc::new(Schema::new(vec![
            Field::new("trial_id", DataType::Int64, false),
            text("index_name"),
            Field::new("m", DataType::Int64, false),
            Field::new("ef_construction", DataType::Int64, false),
            Field::new("ef_search", DataType::Int64, false),
            Field::new("recall", DataType::Float64, false),
            Field::new("k", DataType::Int64, false),
            Field::new("queries", DataType::Int64, false),
            Field::new("p50_ms", DataType::Float64, false),
            Field::new("p95_ms", DataType::Float64, false),
            Field::new("build_secs", DataType::Float64, false),
            Field::new("memory_bytes", DataType::Int64, false),
            Field::new("rows", DataType::Int64, false),
            text("eval_set"),
            text("source"),
            text("created_at"),
        ])),
        produce: Arc::new(move || {
            let all = t.journal.all();
            let ints = |f: &dyn Fn(&crate::catalog::trials::TrialRecord) -> i64| -> ArrayRef {
                Arc::new(Int64Array::from(all.iter().map(|x| f(x)).collect::<Vec<_>>()))
            };
            let floats = |f: &dyn Fn(&crate::catalog::trials::TrialRecord) -> f64| -> ArrayRef {
                Arc::new(Float64Array::from(all.iter().map(|x| f(x)).collect::<Vec<_>>()))
            };
            Ok(vec![
                ints(&|x| x.trial_id),
                strings(all.iter().map(|x| Some(x.index_name.clone()))),
                ints(&|x| x.m as i64),
                ints(&|x| x.ef_construction as i64),
                ints(&|x| x.ef_search as i64),
                floats(&|x| x.recall),
                ints(&|x| x.k as i64),
                ints(&|x| x.queries as i64),
                floats(&|x| x.p50_ms),
                floats(&|x| x.p95_ms),
                floats(&|x| x.build_secs),
                ints(&|x| x.memory_bytes as i64),
                ints(&|x| x.rows as i64),
                strings(all.iter().map(|x| Some(x.eval_set.clone()))),
                strings(all.iter().map(|x| Some(x.source.clone()))),
                strings(all.iter().map(|x| Some(x.created_at.clone()))),
            ])
        }),
    };
    let t = tuning.clone();
    let agent = LiveTable {
        schema: Arc::new(Schema::new(vec![
            Field::new("enabled", DataType::Boolean, false),
            text("running"),
            text("queue"),
            Field::new("trials_this_hour", DataType::Int64, false),
            Field::new("max_trials_per_hour", DataType::Int64, false),
            Field::new("cooldown_secs", DataType::Int64, false),
            Field::new("period_secs", DataType::Int64, false),
            Field::new("max_cpu_share", DataType::Float64, false),
            text("last_run_at"),
            text("last_index"),
            text("last_result"),
            text("next_wake"),
            Field::new("trials_run", DataType::Int64, false),
            Field::new("promotions", DataType::Int64, false),
        ])),
        produce: Arc::new(move || {
            let c = &t.agent.config;
            let st = t.agent.state();
            let now = crate::tuning::agent::unix_now();
            let one_s = |v: Option<String>| strings(std::iter::once(v));
            let one_i = |v: i64| -> ArrayRef { Arc::new(Int64Array::from(vec![v])) };
            Ok(vec![
                Arc::new(BooleanArray::from(vec![c.enabled])),
                one_s(st.running.clone()),
                one_s(Some(st.queue.iter().cloned().collect::<Vec<_>>().join(", "))),
                one_i(st.recent.iter().filter(|t| now - **t < 3600.0).count() as i64),
                one_i(c.max_trials_per_hour as i64),
                one_i(c.cooldown_secs as i64),
                one_i(c.period_secs as i64),
                Arc::new(Float64Array::from(vec![c.max_cpu_share])),
                one_s(st.last_run_at.clone()),
                one_s(st.last_index.clone()),
                one_s(st.last_result.clone()),
                one_s(if c.enabled { st.next_wake.clone() } else { None }),
                one_i(st.trials_run as i64),
                one_i(st.promotions as i64),
            ])
        }),
    };
    vec![("trials", trials), ("agent", agent)]
}

pub(crate) fn strings(values: impl Iterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(values.collect::<Vec<_>>()))
}

/// A catalog table is a live table over the catalog's snapshot at scan time.
impl From<SystemTable> for LiveTable {
    fn from(t: SystemTable) -> LiveTable {
        let (catalog, produce) = (t.catalog, t.produce);
        LiveTable { schema: t.schema, produce: Arc::new(move || produce(&catalog.snapshot())) }
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
pub(crate) async fn scan_columns(
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
