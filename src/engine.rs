//! The engine: one entry point, [`Engine::execute`], shared by the pgwire server and the
//! embedded CLI.
//!
//! A statement is parsed with DataFusion's parser (PostgreSQL dialect, then rewritten by
//! datafusion-pg-catalog's compatibility rules (engine/pg_compat.rs) so psql's and BI tools' catalog queries
//! plan). Statements DataFusion cannot plan — `CALL`, `SET`/`SHOW`/`RESET`/`DISCARD`,
//! transaction control, `CREATE INDEX` — are answered here; DDL that must persist
//! (`CREATE TABLE [AS]`, `CREATE EXTERNAL TABLE`, `DROP TABLE`) is planned by DataFusion
//! and then carried out against the catalog; everything else runs as a DataFusion plan.

mod array_literals;
mod attach;
pub mod column_names;
mod confine;
pub mod create_table;
mod comment;
mod current_setting;
pub mod cursors;
mod copy;
mod custom;
mod do_block;
mod pg_catalog_names;
mod pg_compat;
mod pg_syntax;
mod scalar_subquery;
mod subplan;
mod fast_knn;
mod field_metadata;
mod identity;
mod index_ddl;
mod listen;
mod matview;
pub mod ingest;
pub mod limits;
pub mod privileges;
mod roles;
mod schemas;
mod scalar_index;
mod sequences;
pub mod split;
mod temp_table;
pub mod tuning;
mod user_types;
mod alter_table;

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::{ParamValues, ScalarValue, TableReference};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{DdlStatement, DmlStatement, LogicalPlan, WriteOp};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    CreateTableOptions, CreateView, Expr, ObjectType, Set, SqlOption, Statement, UserDefinedTypeRepresentation, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use futures::StreamExt;

use crate::catalog::datasets::{self, DatasetRecord};
use crate::catalog::procedures::{self, Procedure};
use crate::catalog::{Catalog, buckets};
use crate::config::Config;
use crate::table_providers::hnsw::IndexRegistry;
use crate::table_providers::hnsw_scan::HnswOptions;
use crate::error::{Error, Result};
pub use crate::session::Session;
pub use attach::AttachRequest;
pub use copy::{CopyIn, CopyOut, Format as CopyFormat, Options as CopyOptions, RowSender as CopyRows};

/// The default catalog (database) name, and the schema datasets live in.
pub const CATALOG_NAME: &str = "lakehouse";
pub const DATA_SCHEMA: &str = "public";
/// Session settings of `embed()`.
pub const EMBED_MODEL_SETTING: &str = "embedding.default_model";
pub const EMBED_BATCH_SETTING: &str = "embedding.batch_size";

/// What one statement produced.
pub enum QueryResult {
    /// A row set (SELECT, SHOW, CALL, EXPLAIN, …), streamed.
    Rows { schema: SchemaRef, stream: SendableRecordBatchStream },
    /// A command with its completion tag (`CREATE TABLE`, `INSERT 0 3`, …).
    Command { tag: String, rows: Option<usize> },
    /// `COPY … FROM STDIN`, waiting for its rows (engine/copy.rs).
    CopyIn(copy::CopyIn),
    /// `COPY … TO STDOUT`: rows to write in COPY's format.
    CopyOut(copy::CopyOut),
}

impl std::fmt::Debug for QueryResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryResult::Rows { schema, .. } => write!(f, "Rows({schema:?})"),
            QueryResult::Command { tag, rows } => write!(f, "Command({tag}, {rows:?})"),
            QueryResult::CopyIn(c) => write!(f, "CopyIn({:?})", c.schema),
            QueryResult::CopyOut(c) => write!(f, "CopyOut({:?})", c.schema),
        }
    }
}

impl QueryResult {
    fn command(tag: &str) -> QueryResult {
        QueryResult::Command { tag: tag.to_string(), rows: None }
    }

    fn batches(schema: SchemaRef, batches: Vec<RecordBatch>) -> QueryResult {
        let s = schema.clone();
        let stream = futures::stream::iter(batches.into_iter().map(Ok));
        QueryResult::Rows { schema, stream: Box::pin(RecordBatchStreamAdapter::new(s, stream)) }
    }

    /// Buffer a streamed result (used between statements of one query string, so the
    /// next statement sees this one's effects in order).
    pub async fn buffered(self) -> Result<QueryResult> {
        match self {
            QueryResult::Rows { schema, mut stream } => {
                let mut out = vec![];
                while let Some(b) = stream.next().await {
                    out.push(b.map_err(Error::from)?);
                }
                Ok(QueryResult::batches(schema, out))
            }
            other => Ok(other),
        }
    }
}

/// The (0-based) placeholders the SQL text casts to `oid[]`: `$1::oid[]`,
/// `$2 :: pg_catalog.OID []`. DataFusion maps oid to int, so the plan cannot tell.
fn oid_array_params(sql: &str) -> Vec<usize> {
    let b = sql.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let eat = |i: usize, word: &str| -> Option<usize> {
        let end = i + word.len();
        (end <= b.len() && b[i..end].eq_ignore_ascii_case(word.as_bytes())).then_some(end)
    };
    let mut out = vec![];
    for (start, _) in sql.match_indices('$') {
        let mut i = start + 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let Ok(n) = sql[start + 1..i].parse::<usize>() else { continue };
        let Some(i) = eat(skip_ws(i), "::") else { continue };
        let i = skip_ws(i);
        let i = eat(i, "pg_catalog.").unwrap_or(i);
        let Some(i) = eat(i, "oid") else { continue };
        if b.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
            continue;
        }
        if eat(skip_ws(i), "[]").is_some() && n >= 1 {
            out.push(n - 1);
        }
    }
    out
}

/// A statement parsed (and, for DataFusion statements, planned) for the extended
/// query protocol: Parse/Describe need parameter types and the result schema before
/// Bind/Execute.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub sql: String,
    statement: DFStatement,
    plan: Option<LogicalPlan>,
    /// `$1..$n` types DataFusion inferred (None where it could not).
    pub param_types: Vec<Option<DataType>>,
    /// `$n` compared with an oid column of pg_catalog (described as `oid`, as
    /// PostgreSQL does: tokio-postgres binds a u32 there when it looks a type up).
    pub param_is_oid: Vec<bool>,
    /// `$n::oid[]` (asyncpg's type introspection binds its oids so): described as
    /// oid[], which asyncpg decodes without introspecting, where int4[] needs it.
    pub param_is_oid_array: Vec<usize>,
    /// Row description; None for commands.
    pub schema: Option<SchemaRef>,
    /// DECLARE … CURSOR FOR query: the query's plan, bound at each Execute.
    cursor_plan: Option<LogicalPlan>,
    /// Decided at the first Execute: whether this is a plain k-NN query the index can
    /// answer without re-planning (see engine/fast_knn.rs).
    fast: fast_knn::FastSlot,
}

pub struct Engine {
    config: Config,
    models: Arc<crate::embedding::Models>,
    indexes: Arc<IndexRegistry>,
    catalog: Arc<Catalog>,
    template: SessionContext,
    data_schema: Arc<dyn SchemaProvider>,
    /// The `lakehouse` catalog: schemas made by CREATE SCHEMA register here.
    catalog_provider: Arc<dyn CatalogProvider>,
    procedures: HashMap<&'static str, Arc<dyn Procedure>>,
    compat: pg_compat::Rewriter,
    /// DDL that touches the catalog runs one at a time.
    ddl: tokio::sync::Mutex<()>,
    executor: crate::executor::Executor,
    /// Trials, eval sets in memory, the agent.
    tuning: Arc<crate::tuning::Tuning>,
    /// Serialises changes to a live index's generation: INSERT's catch-up, a
    /// promotion's ef_search, and the swap after a rebuild.
    index_writes: tokio::sync::Mutex<()>,
    /// This engine, for background work (a promotion's rebuild) started by a call.
    me: std::sync::Weak<Engine>,
    /// Attached databases by schema name (engine/attach.rs).
    remotes: std::sync::Mutex<HashMap<String, Arc<crate::table_providers::remote::RemoteSchema>>>,
    /// Every open session, for pg_stat_activity and pg_cancel_backend (backends.rs).
    backends: Arc<crate::backends::Backends>,
    /// The allocator behind nextval (catalog/sequences.rs).
    sequences: Arc<crate::catalog::sequences::Sequences>,
    /// INSERTs into a table with PRIMARY KEY/UNIQUE run one at a time per table: the
    /// check of existing keys and the write must not interleave.
    key_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// pg_catalog's tables hold the template context that holds them (a reference
/// cycle): break it so a dropped engine frees its catalog and data-directory lock
/// (an engine reopened in the same process, as tests and embedders do).
impl Engine {
    /// A clean stop: sequences keep their exact positions (catalog/sequences.rs).
    pub fn shutdown(&self) {
        self.sequences.flush();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.sequences.flush();
        for name in self.template.catalog_names() {
            if let Some(c) = self.template.catalog(&name) {
                for schema in c.schema_names() {
                    let _ = c.deregister_schema(&schema, true);
                }
            }
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("catalog", &self.catalog).finish()
    }
}

impl Engine {
    /// Open the data directory (taking its lock), restore every dataset, and build
    /// the shared catalogs and functions.
    pub async fn open(config: Config) -> Result<Arc<Engine>> {
        let catalog = {
            let dir = config.storage.data_dir.clone();
            Arc::new(
                crate::catalog::blocking(move || {
                    let catalog = Catalog::open(&dir)?;
                    catalog.remove_unreferenced_dirs();
                    Ok::<_, Error>(catalog)
                })
                .await?,
            )
        };
        let mut session_config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG_NAME, DATA_SCHEMA)
            .with_create_default_catalog_and_schema(true)
            // information_schema is ours (DataFusion's tables plus the privilege
            // views), registered below as a schema of the catalog.
            .with_information_schema(false)
            .with_option_extension(HnswOptions::default())
            .with_option_extension(crate::table_providers::hnsw_scan::PgPlannerOptions::default());
        // Our catalog columns carry field metadata (pg_types.rs: which oid alias, "char")
        // that DataFusion's casts keep in the physical plan but not in the logical one;
        // its sanity check then refused a DISTINCT over `typelem::regtype::text`
        // (asyncpg's type introspection) as an internal error.
        session_config.options_mut().execution.skip_physical_aggregate_schema_check = true;
        // `timestamptz` (TIMESTAMP WITH TIME ZONE, now()) is a UTC instant, as in
        // PostgreSQL: with no zone here DataFusion made it a timestamp without one,
        // and clients got naive datetimes for timestamptz columns.
        session_config.options_mut().execution.time_zone = Some("+00:00".into());
        let indexes = Arc::new(IndexRegistry::default());
        let models = {
            let mut m = crate::embedding::Models::new(catalog.clone(), config.models.clone())?;
            m.learn_configured_dims().await;
            Arc::new(m)
        };
        let template = SessionContext::new_with_state(Self::state_builder(session_config, &indexes, &catalog).build());
        let catalog_provider: Arc<dyn CatalogProvider> = template
            .catalog(CATALOG_NAME)
            .ok_or_else(|| Error::Internal("default catalog missing".into()))?;
        let data_schema = catalog_provider
            .schema(DATA_SCHEMA)
            .ok_or_else(|| Error::Internal("default schema missing".into()))?;
        crate::table_providers::register_all(&catalog_provider, &catalog, &models)?;
        let sequences = Arc::new(crate::catalog::sequences::Sequences::new(catalog.clone()));
        let backends = Arc::new(crate::backends::Backends::default());
        datafusion_pg_catalog::setup_pg_catalog(&template, CATALOG_NAME, EmptyContextProvider)
            .map_err(|e| Error::from_datafusion(*e))?;
        {
            use crate::table_providers::roles;
            if let Some(inner) = catalog_provider.schema("pg_catalog") {
                let pg_type = match inner.table("pg_type").await? {
                    Some(t) => crate::table_providers::pg_type::with_vector(&template, t, &catalog).await?,
                    None => return Err(Error::Internal("pg_catalog has no pg_type".into())),
                };
                use crate::table_providers::{pg_sequences, pg_stat_activity};
                let more: Vec<(&str, Arc<dyn datafusion::catalog::TableProvider>)> = vec![
                    (pg_sequences::NAME, Arc::new(pg_sequences::table(&catalog, &sequences))),
                    (pg_stat_activity::NAME, Arc::new(pg_stat_activity::PgStatActivity::new(&backends))),
                    (crate::table_providers::pg_type::PG_ENUM, Arc::new(crate::table_providers::pg_type::PgEnum::new(&catalog))),
                ];
                let more: Vec<(&str, Arc<dyn datafusion::catalog::TableProvider>)> =
                    more.into_iter().chain(crate::table_providers::pg_relations::tables(&catalog, CATALOG_NAME)).collect();
                catalog_provider.register_schema("pg_catalog", Arc::new(roles::pg_catalog(inner, &catalog, &config, CATALOG_NAME, pg_type, more)))?;
            }
            let info = Arc::new(datafusion::catalog::information_schema::InformationSchemaProvider::new(template.state().catalog_list().clone()));
            catalog_provider.register_schema("information_schema", Arc::new(roles::information_schema(info, &catalog, &config, CATALOG_NAME)))?;
        }
        {
            // pg_catalog installed its type planner (oid aliases); ours goes in front.
            let planner = crate::udf::user_types::UserTypePlanner::new(catalog.clone());
            let state = template.state_ref();
            let existing = state.read().clone();
            *state.write() = SessionStateBuilder::new_from_existing(existing).with_type_planner(Arc::new(planner)).build();
            // CREATE EXTERNAL TABLE … STORED AS MYSQL | POSTGRES.
            use crate::catalog::attachments::RemoteKind;
            use crate::table_providers::remote::RemoteTableFactory;
            let mut guard = state.write();
            for kind in [RemoteKind::Mysql, RemoteKind::Postgres] {
                let factory = Arc::new(RemoteTableFactory { kind, catalog: catalog.clone() });
                guard.table_factories_mut().insert(kind.name().to_uppercase(), factory);
            }
        }
        crate::udf::register_all(&template);
        if let Some(inner) = template.state().scalar_functions().get("format_type").cloned() {
            template.register_udf(crate::udf::user_types::FormatType::udf(inner, catalog.clone()));
        }
        // The template's copies plan DEFAULTs at start; a statement's plan gets its
        // session's copies (with_session_functions).
        let template_identity = crate::catalog::roles::Identity { user: String::new(), superuser: true };
        let no_temp = Arc::new(crate::catalog::sequences::Sequences::in_memory());
        for f in crate::udf::sequence::functions(&template_identity, "template", &sequences, &no_temp, &catalog) {
            template.register_udf(f);
        }
        template.register_udtf("vector_search", Arc::new(crate::udf::vector_search::VectorSearch::new(indexes.clone(), catalog.clone())));
        template.register_udf(crate::udf::embed::EmbedUdf::udf(models.clone(), crate::catalog::models::BUILTIN, crate::catalog::models::DEFAULT_BATCH));

        let executor = crate::executor::Executor::new()?;
        let tuning = Arc::new(crate::tuning::Tuning::new(
            crate::catalog::trials::TrialJournal::load(&catalog),
            crate::tuning::agent::Agent::new(config.agent.clone()),
        ));
        crate::table_providers::register_tuning(&catalog_provider, &tuning)?;
        let engine = Arc::new_cyclic(|me| Engine {
            tuning,
            index_writes: tokio::sync::Mutex::new(()),
            me: me.clone(),
            remotes: Default::default(),
            sequences,
            backends,
            key_locks: Default::default(),
            indexes,
            models,
            config,
            catalog,
            template,
            data_schema,
            catalog_provider: catalog_provider.clone(),
            procedures: procedures::all().into_iter().map(|p| (p.name(), p)).collect(),
            compat: pg_compat::Rewriter::default(),
            ddl: tokio::sync::Mutex::new(()),
            executor,
        });
        engine.restore_attachments();
        engine.restore_schemas();
        engine.restore_datasets().await;
        engine.restore_indexes().await;
        engine.resume_promotions();
        engine.start_agent();
        Ok(engine)
    }

    /// DataFusion with our vector type, operators, cast rewrite, index rewrite and
    /// index scan planner.
    fn state_builder(config: SessionConfig, indexes: &Arc<IndexRegistry>, catalog: &Arc<Catalog>) -> SessionStateBuilder {
        use crate::table_providers::hnsw_scan::{HnswRewrite, IndexOrder, LakehouseQueryPlanner};
        use crate::udf::{distance, vector, vector_ops};
        let mut planners: Vec<Arc<dyn datafusion::logical_expr::planner::ExprPlanner>> =
            vec![Arc::new(vector_ops::VectorOperatorPlanner::new(&distance::functions())), Arc::new(crate::udf::json_ops::JsonOperatorPlanner), Arc::new(array_literals::ArrayLiterals)];
        planners.extend(datafusion::execution::SessionStateDefaults::default_expr_planners());
        let mut analyzer: Vec<Arc<dyn datafusion::optimizer::AnalyzerRule + Send + Sync>> = vec![Arc::new(vector::VectorCastRewrite), Arc::new(array_literals::ArrayLiteralCasts), Arc::new(scalar_subquery::AggregateScalarSubqueries)];
        analyzer.extend(datafusion::optimizer::Analyzer::new().rules);
        analyzer.push(Arc::new(IndexOrder::new(indexes.clone())));
        analyzer.push(Arc::new(crate::udf::pg_text::PgTextCasts));
        analyzer.push(Arc::new(crate::udf::json_ops::JsonInput));
        analyzer.push(Arc::new(crate::udf::user_types::UserTypeInput::new(catalog.clone())));
        analyzer.push(Arc::new(field_metadata::KeepFieldMetadata));
        SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_expr_planners(planners)
            .with_analyzer_rules(analyzer)
            .with_optimizer_rules(crate::table_providers::remote::optimizer_rules())
            .with_optimizer_rule(Arc::new(HnswRewrite::new(indexes.clone())))
            .with_query_planner(Arc::new(LakehouseQueryPlanner::new(indexes.clone())))
    }

    /// Register a scalar function for every session opened after this (embedders add
    /// their own functions this way).
    pub fn register_udf(&self, udf: datafusion::logical_expr::ScalarUDF) {
        self.template.register_udf(udf);
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The embedding models (registry, loaded providers, cache).
    pub fn models(&self) -> &Arc<crate::embedding::Models> {
        &self.models
    }

    /// Re-register the session's `embed` with its current default model and batch size.
    fn sync_embed(&self, session: &Session) {
        let model = session.get(EMBED_MODEL_SETTING).unwrap_or_else(|_| crate::catalog::models::BUILTIN.into());
        let batch = session.get(EMBED_BATCH_SETTING).ok().and_then(|b| b.parse().ok()).unwrap_or(crate::catalog::models::DEFAULT_BATCH);
        session.ctx.register_udf(crate::udf::embed::EmbedUdf::udf(self.models.clone(), &model, batch));
    }

    /// Before planning: embed the text query of `vector_search` on a text index.
    async fn prepare_statement(&self, statement: DFStatement) -> Result<DFStatement> {
        match statement {
            DFStatement::Statement(mut s) => {
                crate::udf::vector_search::embed_text_queries(&mut s, &self.indexes, &self.models).await?;
                Ok(DFStatement::Statement(s))
            }
            other => Ok(other),
        }
    }

    /// A loaded index (benchmarks and tools search it without SQL).
    pub fn index(&self, name: &str) -> Option<Arc<crate::table_providers::hnsw::HnswIndex>> {
        self.indexes.get(name)
    }

    /// A new session: its own DataFusion state (config, prepared statements) over the
    /// engine's shared catalogs and functions.
    pub fn new_session(&self, user: &str, database: &str) -> Session {
        self.session_for(user, database, self.is_superuser(user), None, None)
    }

    /// A client connection's session: `pid` is the process id the protocol gave it
    /// (its cancel key's), shown by pg_stat_activity and pg_backend_pid().
    pub fn new_client_session(&self, user: &str, database: &str, pid: i32, addr: std::net::SocketAddr) -> Session {
        self.session_for(user, database, self.is_superuser(user), Some(pid), Some(addr))
    }

    /// A session with a superuser's rights whatever `user` is (the CLI: whoever
    /// can open the data directory owns it).
    pub fn new_superuser_session(&self, user: &str, database: &str) -> Session {
        self.session_for(user, database, true, None, None)
    }

    fn session_for(&self, user: &str, database: &str, superuser: bool, pid: Option<i32>, addr: Option<std::net::SocketAddr>) -> Session {
        let id = uuid::Uuid::new_v4().to_string();
        let template = self.template.state();
        // Each session gets its own memory pool (object stores and caches stay
        // shared): one statement runs at a time per session, so the pool is the
        // statement's memory limit, and one statement cannot starve the others.
        let pool = datafusion::execution::memory_pool::TrackConsumersPool::new(
            datafusion::execution::memory_pool::GreedyMemoryPool::new(self.config.memory_limit_bytes()),
            std::num::NonZeroUsize::new(3).expect("nonzero"),
        );
        let subplan_session = subplan::SessionSlot::default();
        let mut builder = SessionStateBuilder::new_from_existing(template.clone())
            .with_session_id(id.clone())
            .with_analyzer_rule(Arc::new(subplan::LateralSubPlans(subplan::SubPlans::new(subplan_session.clone()))))
            .with_optimizer_rule(Arc::new(subplan::SubPlans::new(subplan_session.clone())));
        match datafusion::execution::runtime_env::RuntimeEnvBuilder::from_runtime_env(template.runtime_env())
            .with_memory_pool(Arc::new(pool))
            .build_arc()
        {
            Ok(runtime) => builder = builder.with_runtime_env(runtime),
            Err(e) => tracing::warn!("session {id}: no memory pool of its own ({e}); sharing the engine's"),
        }
        let identity = crate::catalog::roles::Identity { user: user.to_string(), superuser };
        // The shared catalogs, with this session's temporary tables in front.
        let temp = crate::session::TempObjects::default();
        let temp_view = crate::table_providers::pg_relations::SessionTemp { tables: temp.tables.clone(), sequences: temp.sequences.clone() };
        let config = builder
            .config()
            .get_or_insert_with(SessionConfig::new)
            .clone()
            .with_extension(Arc::new(identity.clone()))
            .with_extension(Arc::new(temp_view));
        builder = builder.with_config(config);
        let catalogs = crate::table_providers::temp::SessionCatalogList::new(template.catalog_list().clone(), CATALOG_NAME, temp.schema.clone());
        builder = builder.with_catalog_list(Arc::new(catalogs));
        let ctx = SessionContext::new_with_state(builder.build());
        let _ = subplan_session.set(ctx.state_weak_ref());
        let check = {
            let (catalog, config) = (self.catalog.clone(), self.config.clone());
            Arc::new(move |name: &str| crate::catalog::roles::is_superuser(&config, &catalog.snapshot(), name))
        };
        for f in crate::udf::has_privilege::functions(&identity, &self.catalog, check) {
            ctx.register_udf(f);
        }
        for f in crate::udf::sequence::functions(&identity, &id, &self.sequences, &temp.sequences, &self.catalog) {
            ctx.register_udf(f);
        }
        let temp_view = crate::table_providers::pg_relations::SessionTemp { tables: temp.tables.clone(), sequences: temp.sequences.clone() };
        for f in crate::udf::pg_catalog_fns::functions(&self.catalog, &temp_view, &id) {
            ctx.register_udf(f);
        }
        let backend = self.backends.register(pid, user, database, addr);
        for f in crate::udf::backend::functions(backend.pid, &identity, &self.backends) {
            ctx.register_udf(f);
        }
        for f in crate::udf::advisory_lock::functions(backend.pid, &self.backends.locks) {
            ctx.register_udf(f);
        }
        Session::new(id, user.to_string(), database.to_string(), ctx, backend).with_temp(temp).with_superuser(superuser)
    }

    /// [`Engine::execute`] on the query runtime: its threads have the stack the depth
    /// limits assume, the connection's runtime stays free, and a panic anywhere in the
    /// statement is its error (XX000), never a partial answer.
    pub async fn execute_on_query_runtime(self: &Arc<Self>, session: &Arc<Session>, sql: &str) -> (Vec<QueryResult>, Option<Error>) {
        let (engine, s, sql) = (self.clone(), session.clone(), sql.to_string());
        match self.executor.spawn(async move { engine.execute(&s, &sql).await }).await {
            Ok(r) => r,
            Err(e) => (vec![], Some(e)),
        }
    }

    /// [`Engine::prepare`] on the query runtime.
    pub async fn prepare_on_query_runtime(self: &Arc<Self>, session: &Arc<Session>, sql: &str) -> Result<Prepared> {
        let (engine, s, sql) = (self.clone(), session.clone(), sql.to_string());
        self.executor.spawn(async move { engine.prepare(&s, &sql).await }).await?
    }

    /// [`Engine::execute_prepared`] on the query runtime.
    pub async fn execute_prepared_on_query_runtime(
        self: &Arc<Self>,
        session: &Arc<Session>,
        statement: Arc<pgwire::api::stmt::StoredStatement<Prepared>>,
        params: Vec<ScalarValue>,
    ) -> Result<QueryResult> {
        let (engine, s) = (self.clone(), session.clone());
        self.executor.spawn(async move { engine.execute_prepared(&s, &statement.statement, params).await }).await?
    }

    async fn restore_datasets(&self) {
        let snapshot = self.catalog.snapshot();
        // Tables first, then views; a view over another view may need a second pass.
        let (views, tables): (Vec<&DatasetRecord>, Vec<&DatasetRecord>) =
            snapshot.datasets.values().partition(|d| d.is_view());
        let mut pending: Vec<&DatasetRecord> = tables.into_iter().chain(views).collect();
        loop {
            let mut failed = vec![];
            let before = pending.len();
            for rec in pending {
                match self.provider_for(rec).await {
                    Ok(provider) => {
                        if let Err(e) = self.register_dataset(&rec.name, provider) {
                            tracing::warn!("dataset {}: {e}", rec.name);
                        }
                    }
                    Err(e) => failed.push((rec, e)),
                }
            }
            if failed.is_empty() || failed.len() == before || !failed.iter().any(|(r, _)| r.is_view()) {
                for (rec, e) in failed {
                    tracing::warn!("dataset {} could not be opened and is skipped until it can: {e}", rec.name);
                }
                return;
            }
            pending = failed.into_iter().map(|(r, _)| r).collect();
        }
    }

    async fn provider_for(&self, rec: &DatasetRecord) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
        if rec.owned {
            return self.owned_table(rec);
        }
        let definition = rec
            .definition
            .as_deref()
            .ok_or_else(|| Error::Internal(format!("external dataset {} has no definition", rec.name)))?;
        let state = self.template.state();
        match state.create_logical_plan(definition).await? {
            LogicalPlan::Ddl(DdlStatement::CreateView(view)) => Ok(Arc::new(
                crate::table_providers::view::CheckedView::new(view.input.as_ref().clone(), view.definition),
            )),
            LogicalPlan::Ddl(DdlStatement::CreateExternalTable(cmd)) => {
                let factory = state
                    .table_factories()
                    .get(&cmd.file_type.to_uppercase())
                    .ok_or_else(|| Error::NotSupported(format!("file type {}", cmd.file_type)))?
                    .clone();
                Ok(factory.create(&state, &cmd).await?)
            }
            _ => Err(Error::Internal(format!("bad definition for {}", rec.name))),
        }
    }

    // ---------------------------------------------------------------- parsing

    /// Parse a query string into statements.
    pub fn parse(&self, sql: &str) -> Result<Vec<DFStatement>> {
        let sql = &*crate::udf::vector_ops::rewrite_l1_operator(sql);
        let rewritten = roles::rewrite_role_syntax(sql);
        let sql = rewritten.as_deref().unwrap_or(sql);
        let reordered = sequences::reorder_identity_options(sql);
        let sql = reordered.as_deref().unwrap_or(sql);
        let logged = create_table::drop_unlogged(sql)?;
        let sql = logged.as_deref().unwrap_or(sql);
        // ATTACH/DETACH take DuckDB's syntax (`ATTACH 'url' AS name (TYPE mysql)`);
        // PostgreSQL has neither statement.
        let first = sql.trim_start().split_whitespace().next().unwrap_or("").to_lowercase();
        // Statements sqlparser does not take (engine/custom.rs), each statement of a
        // batch on its own.
        if custom::may_contain(sql) {
            let parts = split::split_statements(sql)?;
            if parts.iter().any(|p| custom::detect(p).is_some()) {
                let mut out = vec![];
                for p in parts {
                    match custom::detect(&p) {
                        Some(kind) => out.push(DFStatement::Statement(Box::new(custom::to_call(kind, &p)?))),
                        None => out.extend(self.parse(&p)?),
                    }
                }
                return Ok(out);
            }
        }
        // INSERT … OVERRIDING SYSTEM VALUE (engine/identity.rs), each statement of a
        // batch on its own.
        if sql.as_bytes().windows(10).any(|w| w.eq_ignore_ascii_case(b"overriding")) {
            let parts = split::split_statements(sql)?;
            let stripped = parts.iter().map(|p| identity::strip_overriding(p)).collect::<Result<Vec<_>>>()?;
            if stripped.iter().any(Option::is_some) {
                let mut out = vec![];
                for (p, s) in parts.iter().zip(stripped) {
                    match s {
                        Some(text) => {
                            let mut parsed = self.parse(&text)?;
                            identity::mark(&mut parsed)?;
                            out.extend(parsed);
                        }
                        None => out.extend(self.parse(p)?),
                    }
                }
                return Ok(out);
            }
        }
        let statements = if first == "attach" || first == "detach" {
            DFParser::parse_sql_with_dialect(sql, &datafusion::sql::sqlparser::dialect::DuckDbDialect {})
        } else {
            DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})
        };
        let statements = statements.map(|s| s.into_iter().collect::<Vec<_>>()).map_err(|e| {
            // sqlparser knows only ALTER INDEX … RENAME; PostgreSQL's SET (…) form is
            // valid SQL that lakehouse does not do, not a syntax error.
            if sql.trim_start().to_lowercase().starts_with("alter index") {
                return alter_index_unsupported();
            }
            match Error::from_datafusion(e) {
                Error::Syntax(m) => Error::Syntax(m),
                other => Error::Syntax(other.to_string()),
            }
        })?;
        // Before anything walks the statements recursively (the compatibility
        // rewriter, the planner).
        let statements = limits::check_depth(statements)?;
        if first == "attach" || first == "detach" {
            return Ok(statements.into_iter().collect());
        }
        Ok(statements
            .into_iter()
            .map(|s| match s {
                DFStatement::Statement(mut st) => {
                    // Names first: PostgreSQL names columns by what was written.
                    column_names::rewrite(&mut st);
                    let mut st = self.compat.rewrite(*st);
                    pg_catalog_names::qualify(&mut st);
                    pg_syntax::rewrite(&mut st);
                    DFStatement::Statement(Box::new(st))
                }
                other => other,
            })
            .collect())
    }

    // ---------------------------------------------------------------- execution

    /// Run every statement in `sql`, in order. Stops at the first error, returning the
    /// results of the statements before it alongside the error.
    pub async fn execute(&self, session: &Session, sql: &str) -> (Vec<QueryResult>, Option<Error>) {
        let statements = match self.parse(sql) {
            Ok(s) => s,
            Err(e) => return (vec![], Some(e)),
        };
        let n = statements.len();
        let mut out = Vec::with_capacity(n);
        for (i, stmt) in statements.into_iter().enumerate() {
            let result = match self.execute_statement(session, stmt).await {
                Ok(r) if i + 1 < n => r.buffered().await,
                other => other,
            };
            match result {
                Ok(r) => out.push(r),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    /// Convenience: run `sql` and collect every row set (tests, CLI).
    pub async fn execute_collect(&self, session: &Session, sql: &str) -> Result<Vec<(SchemaRef, Vec<RecordBatch>)>> {
        let (results, err) = self.execute(session, sql).await;
        if let Some(e) = err {
            return Err(e);
        }
        let mut out = vec![];
        for r in results {
            if let QueryResult::Rows { schema, mut stream } = r {
                let mut batches = vec![];
                while let Some(b) = stream.next().await {
                    batches.push(b?);
                }
                out.push((schema, batches));
            }
        }
        Ok(out)
    }

    /// Parse and plan one statement for the extended protocol.
    pub async fn prepare(&self, session: &Session, sql: &str) -> Result<Prepared> {
        let mut statements = self.parse(sql)?;
        if statements.len() > 1 {
            return Err(Error::Syntax("cannot insert multiple commands into a prepared statement".into()));
        }
        let mut statement = statements
            .pop()
            .ok_or_else(|| Error::Syntax("empty statement".into()))?;
        if let DFStatement::Statement(s) = &mut statement {
            temp_table::qualify(s, session);
            current_setting::answer(s, session)?;
            if let Statement::Insert(ins) = s.as_ref() {
                self.check_identity_always(ins)?;
            }
        }
        if let Some(text) = protocol_statement_text(session, &statement)? {
            // `EXECUTE name` of a statement the client prepared over the protocol: that
            // statement's text, prepared again (never an EXECUTE itself: no loops).
            return Box::pin(self.prepare(session, &text)).await;
        }
        let mut cursor_plan = None;
        let fetch_from = match &statement {
            DFStatement::Statement(s) => match s.as_ref() {
                Statement::Call(f) => match custom::from_call(f) {
                    Ok(Some((custom::Kind::Fetch, text))) => Some(cursors::parse_fetch(&text)?),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        let (plan, schema) = match self.command_schema(&statement) {
            // FETCH's rows are its cursor's.
            Some(_) if fetch_from.as_ref().is_some_and(|(is_move, _, _)| !is_move) => {
                let (_, name, _) = fetch_from.as_ref().expect("checked");
                (None, Some(self.cursor_schema(session, name).await?))
            }
            Some(schema) => (None, schema),
            // DECLARE's query takes the parameters.
            None if matches!(&statement, DFStatement::Statement(s) if matches!(s.as_ref(), Statement::Declare { .. })) => {
                let DFStatement::Statement(s) = &statement else { unreachable!() };
                let Statement::Declare { stmts } = s.as_ref() else { unreachable!() };
                let [d] = stmts.as_slice() else { return Err(Error::Syntax("DECLARE one cursor at a time".into())) };
                let p = placeholders_typed_by_casts(self.cursor_plan(session, d).await?)?;
                cursor_plan = Some(p.clone());
                (Some(p), None)
            }
            None => {
                let prepared = self.prepare_statement(self.vector_values(statement.clone())).await?;
                let plan = session.ctx.state().statement_to_plan(strip_options(prepared).0).await?;
                let plan = placeholders_typed_by_casts(plan)?;
                let schema = match &plan {
                    LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Statement(_) => None,
                    LogicalPlan::Copy(_) => None,
                    // Described with the field metadata the analyzer restores (oid
                    // arrays, CASE over oids), as the rows will be sent.
                    p => Some(result_schema(session, p)),
                };
                (Some(plan), schema)
            }
        };
        let param_is_oid = match &plan {
            Some(p) => {
                let fields = p.get_parameter_fields()?;
                let mut out = vec![];
                for (k, f) in fields {
                    if let Ok(i) = k.trim_start_matches('$').parse::<usize>() {
                        if i >= 1 && i <= 65535 {
                            if out.len() < i {
                                out.resize(i, false);
                            }
                            out[i - 1] = f.is_some_and(|f| f.metadata().contains_key("pg.oid_alias"));
                        }
                    }
                }
                out
            }
            None => vec![],
        };
        let param_is_oid_array = oid_array_params(sql);
        let param_types = match &plan {
            Some(p) => {
                let types = p.get_parameter_types()?;
                let mut indexed: Vec<(usize, Option<DataType>)> = types
                    .into_iter()
                    .filter_map(|(k, v)| k.trim_start_matches('$').parse::<usize>().ok().map(|i| (i, v)))
                    .collect();
                indexed.sort_by_key(|(i, _)| *i);
                let max = indexed.last().map(|(i, _)| *i).unwrap_or(0);
                let mut out = vec![None; max];
                for (i, t) in indexed {
                    if i >= 1 {
                        out[i - 1] = t;
                    }
                }
                out
            }
            None => vec![],
        };
        // A DECLARE runs as a command; its query's plan is kept apart.
        let plan = if cursor_plan.is_some() { None } else { plan };
        Ok(Prepared { sql: sql.to_string(), statement, plan, cursor_plan, param_types, param_is_oid, param_is_oid_array, schema, fast: Default::default() })
    }

    /// Execute a prepared statement with bound parameter values.
    pub async fn execute_prepared(&self, session: &Session, prepared: &Prepared, params: Vec<ScalarValue>) -> Result<QueryResult> {
        match &prepared.plan {
            Some(plan) => {
                // Checked at each execution (a REVOKE applies to prepared statements).
                self.check_plan(session, plan)?;
                let single = match (params.as_slice(), &prepared.schema) {
                    ([p], Some(schema)) if crate::udf::vector::is_vector_like(&p.data_type()) => Some((p.clone(), schema.clone())),
                    _ => None,
                };
                if let Some((param, schema)) = &single {
                    if let Some(Some(fast)) = prepared.fast.get() {
                        if let Some(r) = self.run_fast_knn(session, fast, schema, param) {
                            return r;
                        }
                    }
                }
                let plan = if params.is_empty() {
                    plan.clone()
                } else {
                    plan.clone().with_param_values(ParamValues::List(params.into_iter().map(Into::into).collect()))?
                };
                if let Some((param, schema)) = &single {
                    if prepared.fast.get().is_none() {
                        let optimized = session.ctx.state().optimize(&plan)?;
                        let _ = prepared.fast.set(fast_knn::recognise(&optimized, param, schema));
                    }
                }
                let (_, bucket) = strip_options(prepared.statement.clone());
                self.run_plan(session, plan, &prepared.statement, bucket).await
            }
            None => {
                if let (Some(plan), DFStatement::Statement(s)) = (&prepared.cursor_plan, &prepared.statement) {
                    if let Statement::Declare { stmts } = s.as_ref() {
                        let plan = if params.is_empty() {
                            plan.clone()
                        } else {
                            plan.clone().with_param_values(ParamValues::List(params.into_iter().map(Into::into).collect()))?
                        };
                        return self.declare_cursor(session, &stmts[0], plan).await;
                    }
                }
                if !params.is_empty() {
                    return Err(Error::invalid("this statement takes no parameters"));
                }
                self.execute_statement(session, prepared.statement.clone()).await
            }
        }
    }

    /// The row description of a statement we answer ourselves: `Some(None)` for a
    /// command without rows, `None` if DataFusion plans the statement.
    fn command_schema(&self, statement: &DFStatement) -> Option<Option<SchemaRef>> {
        match statement {
            DFStatement::Reset(_) => Some(None),
            DFStatement::Statement(s) => match s.as_ref() {
                Statement::Call(f) if f.name.to_string().eq_ignore_ascii_case(custom::CALL) => match custom::from_call(f) {
                    Ok(Some((custom::Kind::EmptySelect, _))) => Some(Some(Arc::new(datafusion::arrow::datatypes::Schema::empty()))),
                    _ => Some(None),
                },
                Statement::Call(f) => {
                    let name = f.name.to_string().to_lowercase();
                    Some(self.procedures.get(name.as_str()).map(|p| p.output_schema()))
                }
                Statement::ShowVariable { variable } => {
                    let name = show_name(variable);
                    Some(Some(if name == "all" { show_all_schema() } else { show_schema(&name) }))
                }
                Statement::StartTransaction { .. }
                | Statement::Commit { .. }
                | Statement::Rollback { .. }
                | Statement::Set(_)
                | Statement::Discard { .. }
                | Statement::CreateIndex(_)
                | Statement::AttachDuckDBDatabase { .. }
                | Statement::DetachDuckDBDatabase { .. }
                | Statement::Drop { object_type: ObjectType::Index | ObjectType::Role, .. }
                | Statement::CreateRole(_)
                | Statement::CreateExtension(_)
                | Statement::Grant(_)
                | Statement::Comment { .. }
                | Statement::Deallocate { .. }
                | Statement::AlterIndex { .. }
                | Statement::CreateTable(_)
                | Statement::Drop { object_type: ObjectType::Sequence | ObjectType::Schema, .. }
                | Statement::Close { .. }
                | Statement::LISTEN { .. }
                | Statement::Drop { object_type: ObjectType::MaterializedView, .. }
                | Statement::CreateView(CreateView { materialized: true, .. })
                | Statement::UNLISTEN { .. }
                | Statement::NOTIFY { .. }
                | Statement::CreateSchema { .. }
                | Statement::CreateType { .. }
                | Statement::Drop { object_type: ObjectType::Type, .. }
                | Statement::DropDomain(_)
                | Statement::AlterType(_)
                | Statement::AlterTable(_)
                | Statement::Revoke(_) => Some(None),
                _ => None,
            },
            _ => None,
        }
    }

    pub async fn execute_statement(&self, session: &Session, mut statement: DFStatement) -> Result<QueryResult> {
        if let DFStatement::Statement(s) = &mut statement {
            temp_table::qualify(s, session);
            current_setting::answer(s, session)?;
            if let Statement::Insert(ins) = s.as_ref() {
                self.check_identity_always(ins)?;
            }
        }
        if let DFStatement::Reset(datafusion::sql::parser::ResetStatement::Variable(name)) = &statement {
            let name = name.to_string();
            session.reset(if name.eq_ignore_ascii_case("all") { None } else { Some(&name) })?;
            self.sync_embed(session);
            return Ok(QueryResult::command("RESET"));
        }
        if let DFStatement::Statement(s) = &statement {
            match s.as_ref() {
                Statement::Call(f) if f.name.to_string().eq_ignore_ascii_case(custom::CALL) => {
                    return match custom::from_call(f)? {
                        Some((custom::Kind::Sequence, sql)) => self.sequence_ddl(session, &sql).await,
                        Some((custom::Kind::CommentOnConstraint, sql)) => self.comment_on_constraint(session, &sql).await,
                        Some((custom::Kind::Refresh, sql)) => self.refresh_materialized_view(session, &sql).await,
                        Some((custom::Kind::Copy, sql)) => self.copy(session, &sql).await,
                        Some((custom::Kind::Do, sql)) => do_block::run(session, &sql).map(|_| QueryResult::command("DO")),
                        Some((custom::Kind::Domain, sql)) => self.create_domain(session, &sql).await,
                        Some((custom::Kind::EmptySelect, _)) => {
                            let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
                            let row = RecordBatch::try_new_with_options(schema.clone(), vec![], &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(1)))
                                .map_err(|e| Error::Internal(e.to_string()))?;
                            Ok(QueryResult::batches(schema, vec![row]))
                        }
                        Some((custom::Kind::Fetch, sql)) => {
                            let (is_move, name, direction) = cursors::parse_fetch(&sql)?;
                            self.fetch(session, &name, &direction, is_move).await
                        }
                        None => Err(Error::Internal("custom statement".into())),
                    };
                }
                Statement::Call(f) => return self.call(session, f).await,
                Statement::StartTransaction { modes, .. } => {
                    session.begin_block(&transaction_modes(modes))?;
                    return Ok(QueryResult::command("BEGIN"));
                }
                Statement::Commit { .. } => {
                    cursors::end_transaction(session).await;
                    session.end_block();
                    return Ok(QueryResult::command("COMMIT"));
                }
                Statement::Rollback { .. } => {
                    cursors::end_transaction(session).await;
                    session.end_block();
                    return Ok(QueryResult::command("ROLLBACK"));
                }
                Statement::Declare { stmts } => {
                    let [d] = stmts.as_slice() else { return Err(Error::Syntax("DECLARE one cursor at a time".into())) };
                    let plan = self.cursor_plan(session, d).await?;
                    return self.declare_cursor(session, d, plan).await;
                }
                Statement::Close { cursor } => return self.close_cursor(session, cursor).await,
                Statement::CreateView(cv) if cv.materialized => return self.create_materialized_view(session, cv).await,
                Statement::Drop { object_type: ObjectType::MaterializedView, names, if_exists, .. } => {
                    return self.drop_materialized_views(session, names, *if_exists).await;
                }
                Statement::LISTEN { channel } => return self.listen(session, channel),
                Statement::UNLISTEN { channel } => return self.unlisten(session, channel),
                Statement::NOTIFY { channel, payload } => return self.notify(session, channel, payload.as_deref()),
                Statement::Set(set) => return self.set(session, set),
                Statement::ShowVariable { variable } => return self.show(session, &show_name(variable)),
                Statement::Discard { .. } => {
                    session.reset(None)?;
                    self.sync_embed(session);
                    session.take_notices();
                    return Ok(QueryResult::command("DISCARD ALL"));
                }
                Statement::CreateIndex(ci) => return self.create_index(session, ci).await,
                Statement::AlterIndex { .. } => return Err(alter_index_unsupported()),
                Statement::AttachDuckDBDatabase { if_not_exists, database_path, database_alias, attach_options, .. } => {
                    return self.attach_statement(session, *if_not_exists, database_path, database_alias.as_ref(), attach_options).await;
                }
                Statement::DetachDuckDBDatabase { if_exists, database_alias, .. } => {
                    return self.detach(session, &database_alias.value, *if_exists).await;
                }
                Statement::Drop { object_type: ObjectType::Index, names, if_exists, .. } => {
                    return self.drop_index(session, names, *if_exists).await;
                }
                Statement::Drop { object_type: ObjectType::Role, names, if_exists, .. } => {
                    return self.drop_role(session, names, *if_exists).await;
                }
                Statement::CreateRole(c) => return self.create_role(session, c).await,
                Statement::CreateExtension(e) => return create_extension(&e.name.value),
                Statement::Grant(g) => return self.grant(session, g).await,
                Statement::Comment { object_type, object_name, comment, if_exists } => {
                    return self.comment(session, object_type, object_name, comment.clone(), *if_exists).await;
                }
                Statement::Revoke(r) => return self.revoke(session, r).await,
                Statement::Deallocate { name, .. } => return self.deallocate(session, name).await,
                Statement::CreateSchema { schema_name, if_not_exists, .. } => return self.create_schema(session, schema_name, *if_not_exists).await,
                Statement::Drop { object_type: ObjectType::Schema, names, if_exists, cascade, .. } => {
                    return self.drop_schemas(session, names, *if_exists, *cascade).await;
                }
                Statement::Drop { object_type: ObjectType::Sequence, names, if_exists, cascade, .. } => {
                    return self.drop_sequences(session, names, *if_exists, *cascade).await;
                }
                Statement::CreateType { name, representation: Some(UserDefinedTypeRepresentation::Enum { labels }) } => {
                    return self.create_enum(session, name, labels).await;
                }
                Statement::CreateType { .. } => {
                    return Err(Error::NotSupported("CREATE TYPE other than AS ENUM (composite, range and base types); CREATE DOMAIN makes a constrained type".into()));
                }
                Statement::Drop { object_type: ObjectType::Type, names, if_exists, cascade, .. } => {
                    return self.drop_types(session, names, *if_exists, *cascade, false).await;
                }
                Statement::DropDomain(d) => {
                    return self.drop_types(session, std::slice::from_ref(&d.name), d.if_exists, matches!(d.drop_behavior, Some(datafusion::sql::sqlparser::ast::DropBehavior::Cascade)), true).await;
                }
                Statement::AlterType(at) => return self.alter_type(session, at).await,
                Statement::AlterTable(at) => return self.alter_table(session, at).await,
                // EXECUTE of a statement the client prepared over the protocol (asyncpg's
                // `prepare(…, name=…)`): its text, run again.
                Statement::Execute { .. } => {
                    if let Some(text) = protocol_statement_text(session, &statement)? {
                        return self.run_one(session, &text).await;
                    }
                }
                _ => {}
            }
        }
        let mut table_ddl = None;
        let mut temporary = false;
        if let DFStatement::Statement(s) = &mut statement {
            if let Statement::CreateTable(ct) = s.as_mut() {
                user_types::apply_domain_defaults(&self.catalog.snapshot(), &mut ct.columns);
                temporary = ct.temporary;
                if temporary {
                    if ct.on_commit.is_some() {
                        return Err(Error::NotSupported("ON COMMIT for temporary tables (each statement commits on its own until transactions come)".into()));
                    }
                    ct.temporary = false;
                    let table = temp_table::temp_table_name(&TableReference::from(ct.name.to_string().as_str()))?;
                    ct.name = datafusion::sql::sqlparser::ast::ObjectName::from(vec![datafusion::sql::sqlparser::ast::Ident::with_quote('"', table.clone())]);
                    let temp = &session.temp;
                    let taken = |n: &str| temp.sequences.record(n).is_some();
                    table_ddl = Some(create_table::prepare(ct, &table, &session.user, &taken)?);
                } else {
                    let table = self.dataset_name(&TableReference::from(ct.name.to_string().as_str()))?;
                    let snapshot = self.catalog.snapshot();
                    let taken = |n: &str| scalar_index::relation_taken(&snapshot, n);
                    table_ddl = Some(create_table::prepare(ct, &table, &session.user, &taken)?);
                }
            }
        }
        let prepared = self.prepare_statement(self.vector_values(statement.clone())).await?;
        let (statement_plain, bucket) = strip_options(prepared);
        let plan = session.ctx.state().statement_to_plan(statement_plain).await?;
        self.check_plan(session, &plan)?;
        if let (Some(ddl), LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(cmd))) = (table_ddl, &plan) {
            if temporary {
                if bucket.is_some() {
                    return Err(Error::InvalidParameter("a temporary table lives in memory: it takes no bucket".into()));
                }
                return self.create_temp_table(session, cmd.clone(), ddl).await;
            }
            return self.create_dataset(session, cmd.clone(), bucket, ddl).await;
        }
        self.run_plan(session, plan, &statement, bucket).await
    }

    async fn run_plan(&self, session: &Session, plan: LogicalPlan, statement: &DFStatement, bucket: Option<String>) -> Result<QueryResult> {
        let default_model = || session.get(EMBED_MODEL_SETTING).unwrap_or_else(|_| crate::catalog::models::BUILTIN.into());
        let plan = crate::udf::embed::fold_constant_calls(plan, &self.models, default_model).await?;
        if let LogicalPlan::Dml(DmlStatement { op, table_name, .. }) = &plan {
            if !matches!(op, WriteOp::Ctas) {
                let target = self.dataset_name(table_name).ok();
                let is_insert = matches!(op, WriteOp::Insert(_));
                let tag = match op {
                    WriteOp::Insert(_) => "INSERT 0",
                    WriteOp::Delete => "DELETE",
                    WriteOp::Update => "UPDATE",
                    _ => "COPY",
                };
                let plan = with_session_functions(plan, session)?;
                let lock = match (&target, is_insert) {
                    (Some(t), true) if self.has_unique_keys(t) => Some(self.key_lock(t)),
                    _ => None,
                };
                let _held = match &lock {
                    Some(l) => Some(l.lock().await),
                    None => None,
                };
                let batches = session.ctx.execute_logical_plan(plan).await?.collect().await?;
                if let (true, Some(t)) = (is_insert, target) {
                    self.catch_up_indexes(Some(session), &t).await?;
                    self.appended(&t);
                }
                return Ok(QueryResult::Command { tag: tag.to_string(), rows: Some(count_rows(&batches)) });
            }
        }
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(cmd)) => {
                self.create_dataset(session, cmd, bucket, Default::default()).await
            }
            LogicalPlan::Ddl(DdlStatement::CreateExternalTable(cmd)) => {
                self.check_external_table(session, &cmd)?;
                let (definition, secret) = match statement {
                    DFStatement::CreateExternalTable(c) => self.secure_external_definition(c).await?,
                    other => (other.to_string(), None),
                };
                let created = self.create_external(session, cmd, definition).await;
                if let (Err(_), Some(file)) = (&created, secret) {
                    self.catalog.remove_secret(&file);
                }
                created
            }
            LogicalPlan::Ddl(DdlStatement::DropTable(cmd)) => self.drop_dataset(session, cmd).await,
            LogicalPlan::Ddl(DdlStatement::CreateView(cmd)) if cmd.temporary => self.create_temp_view(session, cmd, statement.to_string()),
            LogicalPlan::Ddl(DdlStatement::CreateView(cmd)) => {
                self.create_view(session, cmd, statement.to_string()).await
            }
            LogicalPlan::Ddl(DdlStatement::DropView(cmd)) => {
                if self.drop_temp_table(session, &cmd.name)? {
                    return Ok(QueryResult::command("DROP VIEW"));
                }
                self.drop_view(session, cmd).await
            }
            LogicalPlan::Ddl(DdlStatement::CreateIndex(_)) => Err(Error::NotSupported("this form of CREATE INDEX".into())),
            LogicalPlan::Copy(copy) => {
                // COPY … TO a server file: PostgreSQL's pg_write_server_files.
                session.require_superuser(&format!("COPY … TO '{}'", copy.output_url))?;
                self.check_server_path(session, &copy.output_url, true)?;
                let plan = LogicalPlan::Copy(copy);
                let batches = session.ctx.execute_logical_plan(plan).await?.collect().await?;
                Ok(QueryResult::Command { tag: "COPY".into(), rows: Some(count_rows(&batches)) })
            }
            plan => {
                let tag = match &plan {
                    // Schemas and catalogs DataFusion keeps in memory only: gone at
                    // the next start, and no table could be created in one.
                    LogicalPlan::Ddl(DdlStatement::CreateCatalogSchema(_) | DdlStatement::CreateCatalog(_) | DdlStatement::DropCatalogSchema(_)) => {
                        return Err(Error::NotSupported(
                            "CREATE/DROP DATABASE and catalogs (lakehouse serves one database; CREATE SCHEMA makes a namespace in it)".into(),
                        ));
                    }
                    LogicalPlan::Ddl(d) => Some(d.name().to_string()),
                    _ => None,
                };
                let marked = tag.is_none().then(|| marked_schema(session, &plan));
                let df = session.ctx.execute_logical_plan(plan).await?;
                if let Some(tag) = tag {
                    df.collect().await?;
                    return Ok(QueryResult::Command { tag: ddl_tag(&tag), rows: None });
                }
                let stream = df.execute_stream().await?;
                // The result's fields as Describe gives them: the types of the rows
                // (the executed plan's, after type coercion), with the restored marks;
                // no second analysis of the plan per statement.
                let schema: SchemaRef = match marked {
                    Some(m) => with_marks(stream.schema().as_ref(), m),
                    None => stream.schema(),
                };
                let stream = self.executor.run_stream(schema.clone(), stream);
                Ok(QueryResult::Rows { schema, stream })
            }
        }
    }

    // ---------------------------------------------------------------- CALL / SET / SHOW

    async fn call(&self, session: &Session, f: &datafusion::sql::sqlparser::ast::Function) -> Result<QueryResult> {
        let name = f.name.to_string().to_lowercase();
        let procedure = self.procedures.get(name.as_str()).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = self.procedures.keys().copied().collect();
            known.sort();
            Error::UnknownProcedure(name.clone(), known.join(", "))
        })?;
        let (positional, named) = procedures::literal_args(&f.args)?;
        let args = procedures::bind(&name, procedure.params(), positional, named)?;
        // Tuning an index (autotune, run_trial, promote, rollback, eval sets) takes
        // owning its table, as maintenance does in PostgreSQL.
        if let Some(index) = args.text("index") {
            self.require_index_owner(session, index)?;
        }
        // Replacing an eval set by name: it may belong to another index.
        if let (true, Some(n)) = (name == "create_eval_set", args.text("name")) {
            if let Some(existing) = self.catalog.snapshot().eval_sets.get(n) {
                self.require_index_owner(session, &existing.index)?;
            }
        }
        // An eval set's queries read from another table.
        if let Some(t) = args.text("from_table") {
            let table = self.dataset_name(&TableReference::from(t))?;
            self.require(session, &crate::catalog::roles::Object::Table(table), crate::catalog::roles::Privilege::Select)?;
        }
        let batches = procedure.call(self, session, args).await?;
        Ok(QueryResult::batches(procedure.output_schema(), batches))
    }

    fn set(&self, session: &Session, set: &Set) -> Result<QueryResult> {
        let r = self.set_inner(session, set);
        self.sync_embed(session);
        r
    }

    /// Settings the engine checks before the session stores them.
    fn check_setting(&self, name: &str, value: &str) -> Result<()> {
        if name.eq_ignore_ascii_case(EMBED_MODEL_SETTING) {
            self.models.dims(value)?;
        }
        Ok(())
    }

    fn set_inner(&self, session: &Session, set: &Set) -> Result<QueryResult> {
        match set {
            Set::SingleAssignment { variable, values, .. } => {
                let name = variable.to_string();
                if values.len() == 1 && matches!(&values[0], Expr::Identifier(i) if i.value.eq_ignore_ascii_case("default")) {
                    session.reset(Some(&name))?;
                } else {
                    let value = values.iter().map(setting_value).collect::<Result<Vec<_>>>()?.join(", ");
                    self.check_setting(&name, &value)?;
                    session.set(&name, &value)?;
                }
            }
            Set::SetTimeZone { value, .. } => session.set("timezone", &setting_value(value)?)?,
            Set::MultipleAssignments { assignments } => {
                for a in assignments {
                    let (name, value) = (a.name.to_string(), setting_value(&a.value)?);
                    self.check_setting(&name, &value)?;
                    session.set(&name, &value)?;
                }
            }
            // SET SESSION CHARACTERISTICS AS TRANSACTION …: the defaults; SET
            // TRANSACTION …: this block's (transactions are not isolated yet: #17; the
            // settings say what was asked, as PostgreSQL's do).
            Set::SetTransaction { modes, session: true, .. } => {
                for (name, value) in transaction_modes(modes) {
                    session.set(&format!("default_{name}"), value)?;
                }
            }
            Set::SetTransaction { modes, .. } => {
                if !session.in_transaction_block() {
                    session.notice("WARNING: SET TRANSACTION can only be used in transaction blocks");
                } else {
                    for (name, value) in transaction_modes(modes) {
                        session.set(name, value)?;
                    }
                }
            }
            // SET NAMES, SET ROLE: accepted; nothing here is role-scoped.
            _ => {}
        }
        Ok(QueryResult::command("SET"))
    }

    fn show(&self, session: &Session, name: &str) -> Result<QueryResult> {
        if name.eq_ignore_ascii_case("all") {
            let all = session.all();
            let schema = show_all_schema();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(all.iter().map(|r| r.0.clone()).collect::<Vec<_>>())),
                    Arc::new(StringArray::from(all.iter().map(|r| r.1.clone()).collect::<Vec<_>>())),
                    Arc::new(StringArray::from(all.iter().map(|r| r.2.clone()).collect::<Vec<_>>())),
                ],
            )?;
            return Ok(QueryResult::batches(schema, vec![batch]));
        }
        let value = session.get(name)?;
        let schema = show_schema(name);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec![value]))])?;
        Ok(QueryResult::batches(schema, vec![batch]))
    }

    // ---------------------------------------------------------------- datasets

    async fn create_dataset(
        &self,
        session: &Session,
        cmd: datafusion::logical_expr::CreateMemoryTable,
        bucket: Option<String>,
        ddl: create_table::TableDdl,
    ) -> Result<QueryResult> {

        let name = self.dataset_name(&cmd.name)?;
        let _ddl = self.ddl.lock().await;
        let exists = self.catalog.dataset(&name).is_some() || self.dataset_exists(&name);
        if exists {
            if cmd.if_not_exists {
                session.notice(format!("relation \"{name}\" already exists, skipping"));
                return Ok(QueryResult::command("CREATE TABLE"));
            }
            if !cmd.or_replace {
                return Err(Error::TableExists(name));
            }
            if self.catalog.dataset(&name).is_none() {
                return Err(Error::TableExists(format!("{name} (a view)")));
            }
            self.require_owner(session, &crate::catalog::roles::Object::Table(name.clone()))?;
        }
        let bucket_name = bucket.unwrap_or_else(|| session.bucket());
        let bucket = self.catalog.bucket(&bucket_name)?;
        let location = datasets::new_location(&bucket, &name);
        let dir = datasets::local_dir(&location)
            .ok_or_else(|| Error::Internal(format!("bucket {bucket_name} is not local")))?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;

        let schema = cmd.input.schema().as_arrow().clone();
        if let Some(f) = schema.fields().iter().find(|f| matches!(f.data_type(), DataType::FixedSizeList(_, 0))) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(Error::InvalidParameter(format!(
                "column \"{}\": type vector needs its dimension here, e.g. vector(3)",
                f.name()
            )));
        }
        let is_empty = matches!(cmd.input.as_ref(), LogicalPlan::EmptyRelation(e) if !e.produce_one_row);
        let mut record = datasets::new_record(&name, &bucket_name, location.clone(), if is_empty { "create table" } else { "create table as" });
        record.access = crate::catalog::roles::Access::owned_by(&session.user);
        record.defaults = ddl.defaults;
        record.identity_always = ddl.identity_always;
        record.identity_by_default = ddl.identity_by_default;
        record.constraints = ddl.constraints;
        let new_sequences = ddl.sequences;
        let written = async {
            let mut rows = 0;
            if !is_empty {
                let df = session.ctx.execute_logical_plan(cmd.input.as_ref().clone()).await?;
                let counts = df.write_parquet(&location, DataFrameWriteOptions::new(), None).await?;
                rows = count_rows(&counts);
            }
            record.schema = Some(datasets::encode_schema(&schema)?);
            let provider = self.owned_table(&record)?;
            Ok::<_, Error>((rows, provider))
        }
        .await;
        let (rows, provider) = match written {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let catalog = self.catalog.clone();
        let rec = record.clone();
        let replace = cmd.or_replace;
        let seq_names: Vec<String> = new_sequences.iter().map(|q| q.name.clone()).collect();
        let committed = crate::catalog::blocking(move || catalog.put_table(rec, replace, new_sequences)).await;
        for n in &seq_names {
            self.sequences.forget(n);
        }
        let replaced = match committed {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        self.register_dataset(&name, provider)?;
        if let Some(old) = replaced {
            datasets::remove_files(&old);
            self.drop_indexes_of(&name).await?;
        }
        Ok(if is_empty {
            QueryResult::command("CREATE TABLE")
        } else {
            QueryResult::Command { tag: "SELECT".into(), rows: Some(rows) }
        })
    }

    async fn create_external(&self, session: &Session, cmd: datafusion::logical_expr::CreateExternalTable, definition: String) -> Result<QueryResult> {
        let name = self.dataset_name(&cmd.name)?;
        let _ddl = self.ddl.lock().await;
        if self.catalog.dataset(&name).is_some() || self.dataset_exists(&name) {
            if cmd.if_not_exists {
                session.notice(format!("relation \"{name}\" already exists, skipping"));
                return Ok(QueryResult::command("CREATE EXTERNAL TABLE"));
            }
            if !cmd.or_replace || self.catalog.dataset(&name).is_none() {
                return Err(Error::TableExists(name));
            }
            self.require_owner(session, &crate::catalog::roles::Object::Table(name.clone()))?;
        }
        let state = session.ctx.state();
        let factory = state
            .table_factories()
            .get(&cmd.file_type.to_uppercase())
            .ok_or_else(|| Error::NotSupported(format!("STORED AS {}", cmd.file_type)))?
            .clone();
        let provider = factory.create(&state, &cmd).await?;
        let record = DatasetRecord {
            name: name.clone(),
            bucket: buckets::PRIMARY.to_string(),
            location: crate::catalog::attachments::redact(&cmd.location),
            format: cmd.file_type.to_lowercase(),
            owned: false,
            schema: None,
            definition: Some(definition),
            source: "external".into(),
            created_at: crate::catalog::now_rfc3339(),
            lineage: vec![],
            columns: vec![],
            defaults: Default::default(),
            identity_always: vec![],
            identity_by_default: vec![],
            constraints: vec![],
            indexes: vec![],
            dropped_columns: vec![],
            materialized: None,
            comment: None,
            column_comments: Default::default(),
            access: crate::catalog::roles::Access::owned_by(&session.user),
        };
        let catalog = self.catalog.clone();
        let replace = cmd.or_replace;
        let replaced = crate::catalog::blocking(move || catalog.put_dataset(record, replace)).await?;
        self.register_dataset(&name, provider)?;
        if let Some(old) = replaced {
            datasets::remove_files(&old);
        }
        Ok(QueryResult::command("CREATE EXTERNAL TABLE"))
    }

    async fn drop_dataset(&self, session: &Session, cmd: datafusion::logical_expr::DropTable) -> Result<QueryResult> {
        if self.drop_temp_table(session, &cmd.name)? {
            return Ok(QueryResult::command("DROP TABLE"));
        }
        let name = self.dataset_name(&cmd.name)?;
        let _ddl = self.ddl.lock().await;
        // DROP TABLE does not drop views (PostgreSQL: 42809). Checked before removing:
        // the DDL lock keeps the record from changing in between.
        if self.catalog.dataset(&name).is_some_and(|r| r.is_view()) {
            return Err(Error::WrongObjectType(format!("\"{name}\" is not a table; use DROP VIEW")));
        }
        self.require_owner(session, &crate::catalog::roles::Object::Table(name.clone()))?;
        let catalog = self.catalog.clone();
        let n = name.clone();
        let removed = crate::catalog::blocking(move || catalog.remove_dataset(&n)).await?;
        match removed {
            Some(rec) => {
                self.deregister_dataset(&name)?;
                datasets::remove_files(&rec);
                if let Some(file) = rec.definition.as_deref().and_then(stored_secret) {
                    self.catalog.remove_secret(file);
                }
                self.drop_indexes_of(&name).await?;
            }
            None if self.dataset_exists(&name) => {
                // A view or other in-memory table: not in the catalog.
                self.deregister_dataset(&name)?;
            }
            None if cmd.if_exists => {
                session.notice(format!("table \"{name}\" does not exist, skipping"));
            }
            None => return Err(Error::TableNotFound(name)),
        }
        Ok(QueryResult::command("DROP TABLE"))
    }
}

impl Engine {
    /// The statement an external table is re-created from, with a password written in
    /// a MySQL/Postgres location moved to a server-only secret file (returned, so a
    /// failed CREATE can remove it).
    async fn secure_external_definition(&self, c: &datafusion::sql::parser::CreateExternalTable) -> Result<(String, Option<String>)> {
        use crate::catalog::attachments::{Location, RemoteKind};
        if RemoteKind::parse(&c.file_type).is_none() {
            return Ok((external_definition(c), None));
        }
        // `format.password_secret` reaches the same option of the factory.
        if c.options.iter().any(|(k, _)| k.to_ascii_lowercase().ends_with("password_secret")) {
            return Err(Error::PermissionDenied(
                "the password_secret option is lakehouse's own (it names a stored secret); give the password in the URL, or password_env".into(),
            ));
        }
        let (location, password) = Location::parse(&c.location)?;
        let Some(password) = password else { return Ok((external_definition(c), None)) };
        let catalog = self.catalog.clone();
        let owner = c.name.to_string().replace(['"', '.'], "_");
        let file = crate::catalog::blocking(move || catalog.store_secret(&owner, &password)).await?;
        let mut safe = c.clone();
        safe.location = location.display();
        safe.options.retain(|(k, _)| !k.to_ascii_lowercase().ends_with("password_secret"));
        safe.options.push(("password_secret".into(), Value::SingleQuotedString(file.clone())));
        Ok((external_definition(&safe), Some(file)))
    }
}

impl Engine {
    /// `CREATE EXTERNAL TABLE`: a file location must be one this session may read; a
    /// source's password options are secrets (superuser, allow-listed).
    fn check_external_table(&self, session: &Session, cmd: &datafusion::logical_expr::CreateExternalTable) -> Result<()> {
        use crate::catalog::attachments::RemoteKind;
        // DataFusion may prefix option keys ("format.password_env").
        let option = |name: &str| {
            cmd.options
                .iter()
                .find(|(k, _)| {
                    let k = k.to_ascii_lowercase();
                    k == name || k.ends_with(&format!(".{name}"))
                })
                .map(|(_, v)| v.clone())
        };
        if RemoteKind::parse(&cmd.file_type).is_some() {
            if let Some(var) = option("password_env") {
                self.check_secret_env(session, &var, "password_env")?;
            }
            if let Some(file) = option("password_file") {
                self.check_secret_file(session, &file, "password_file")?;
            }
            return Ok(());
        }
        self.check_server_path(session, &cmd.location, false)
    }
}

/// The secret file an external MySQL/Postgres table's definition names, if any.
fn stored_secret(definition: &str) -> Option<&str> {
    let rest = definition.split("'password_secret' '").nth(1)?;
    rest.split('\'').next()
}

/// SQL that re-creates an external table on restart. (DataFusion's own Display of the
/// statement leaves the location unquoted and drops columns and options.)
fn external_definition(c: &datafusion::sql::parser::CreateExternalTable) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let mut sql = String::from("CREATE ");
    if c.unbounded {
        sql.push_str("UNBOUNDED ");
    }
    sql.push_str(&format!("EXTERNAL TABLE {}", c.name));
    let mut elements: Vec<String> = c.columns.iter().map(|col| col.to_string()).collect();
    elements.extend(c.constraints.iter().map(|k| k.to_string()));
    if !elements.is_empty() {
        sql.push_str(&format!(" ({})", elements.join(", ")));
    }
    sql.push_str(&format!(" STORED AS {}", c.file_type));
    if !c.table_partition_cols.is_empty() {
        sql.push_str(&format!(" PARTITIONED BY ({})", c.table_partition_cols.join(", ")));
    }
    for order in &c.order_exprs {
        let exprs: Vec<String> = order.iter().map(|e| e.to_string()).collect();
        sql.push_str(&format!(" WITH ORDER ({})", exprs.join(", ")));
    }
    sql.push_str(&format!(" LOCATION {}", quote(&c.location)));
    if !c.options.is_empty() {
        let opts: Vec<String> = c
            .options
            .iter()
            .map(|(k, v)| format!("{} {}", quote(k), quote(&v.clone().into_string().unwrap_or_else(|| v.to_string()))))
            .collect();
        sql.push_str(&format!(" OPTIONS ({})", opts.join(", ")));
    }
    sql
}

impl Engine {
    async fn create_view(&self, session: &Session, cmd: datafusion::logical_expr::CreateView, definition: String) -> Result<QueryResult> {
        let name = self.dataset_name(&cmd.name)?;
        let _ddl = self.ddl.lock().await;
        if let Some(existing) = self.catalog.dataset(&name) {
            if !existing.is_view() {
                return Err(Error::WrongObjectType(format!("\"{name}\" is a table, not a view")));
            }
            if !cmd.or_replace {
                return Err(Error::TableExists(name));
            }
            self.require_owner(session, &crate::catalog::roles::Object::Table(name.clone()))?;
        } else if self.dataset_exists(&name) {
            return Err(Error::TableExists(name));
        }
        let provider = Arc::new(crate::table_providers::view::CheckedView::new(cmd.input.as_ref().clone(), Some(definition.clone())));
        let mut record = datasets::new_record(&name, buckets::PRIMARY, String::new(), "view");
        record.format = "view".into();
        record.access = crate::catalog::roles::Access::owned_by(&session.user);
        record.owned = false;
        record.definition = Some(definition);
        let catalog = self.catalog.clone();
        let replace = cmd.or_replace;
        crate::catalog::blocking(move || catalog.put_dataset(record, replace)).await?;
        self.register_dataset(&name, provider)?;
        Ok(QueryResult::command("CREATE VIEW"))
    }

    async fn drop_view(&self, session: &Session, cmd: datafusion::logical_expr::DropView) -> Result<QueryResult> {
        let name = self.dataset_name(&cmd.name)?;
        let _ddl = self.ddl.lock().await;
        match self.catalog.dataset(&name) {
            Some(rec) if !rec.is_view() => {
                return Err(Error::WrongObjectType(format!("\"{name}\" is not a view; use DROP TABLE")));
            }
            Some(_) => {
                self.require_owner(session, &crate::catalog::roles::Object::Table(name.clone()))?;
                let catalog = self.catalog.clone();
                let n = name.clone();
                crate::catalog::blocking(move || catalog.remove_dataset(&n)).await?;
                self.deregister_dataset(&name)?;
            }
            None if cmd.if_exists => session.notice(format!("view \"{name}\" does not exist, skipping")),
            None => return Err(Error::TableNotFound(name)),
        }
        Ok(QueryResult::command("DROP VIEW"))
    }
}

impl Engine {
    /// `DEALLOCATE [PREPARE] name | ALL`: SQL-level prepared statements and the
    /// client's protocol-level ones (psycopg 3 sends `DEALLOCATE ALL` after a
    /// ROLLBACK once it has prepared statements itself).
    async fn deallocate(&self, session: &Session, name: &datafusion::sql::sqlparser::ast::Ident) -> Result<QueryResult> {
        let all = name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all");
        let sql_names: Vec<String> = {
            let prepared = session.sql_prepared.lock().unwrap_or_else(|p| p.into_inner());
            prepared.keys().filter(|n| all || **n == name.value).cloned().collect()
        };
        let protocol = session.protocol_statements.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&name.value);
        if !all && sql_names.is_empty() && !protocol {
            return Err(Error::UndefinedPreparedStatement(name.value.clone()));
        }
        for n in sql_names {
            let quoted = format!("DEALLOCATE \"{}\"", n.replace('"', "\"\""));
            let plan = session.ctx.state().create_logical_plan(&quoted).await?;
            self.check_plan(session, &plan)?;
            session.ctx.execute_logical_plan(plan).await?.collect().await?;
        }
        if all || protocol {
            session.deallocated.lock().unwrap_or_else(|p| p.into_inner()).push((!all).then(|| name.value.clone()));
        }
        Ok(QueryResult::command(if all { "DEALLOCATE ALL" } else { "DEALLOCATE" }))
    }
}

/// The text of the protocol-level statement an `EXECUTE name` names, when `name` is
/// one the client Parsed (and no SQL-level PREPARE took it); 0A000 for parameters.
fn protocol_statement_text(session: &Session, statement: &DFStatement) -> Result<Option<String>> {
    let DFStatement::Statement(s) = statement else { return Ok(None) };
    let Statement::Execute { name: Some(n), parameters, .. } = s.as_ref() else { return Ok(None) };
    let name = n.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone()).unwrap_or_default();
    if session.sql_prepared.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&name) {
        return Ok(None);
    }
    let Some(text) = session.protocol_statements.lock().unwrap_or_else(|p| p.into_inner()).get(&name).cloned() else { return Ok(None) };
    if text.trim_start().get(..7).is_some_and(|w| w.eq_ignore_ascii_case("execute")) {
        return Ok(None);
    }
    if !parameters.is_empty() {
        return Err(Error::NotSupported(format!("EXECUTE with parameters of \"{name}\", a statement prepared over the protocol (bind them with Bind instead)")));
    }
    Ok(Some(text))
}

fn alter_index_unsupported() -> Error {
    Error::NotSupported(
        "ALTER INDEX (an index's model and parameters are fixed: CREATE INDEX a new one WITH (model = …, m = …), then DROP INDEX the old one)".into(),
    )
}

/// `CREATE EXTENSION [IF NOT EXISTS] vector`, as pgvector's README starts: the type
/// is built in, so there is nothing to install.
fn create_extension(name: &str) -> Result<QueryResult> {
    match name.to_lowercase().as_str() {
        "vector" | "plpgsql" => Ok(QueryResult::command("CREATE EXTENSION")),
        other => Err(Error::NotSupported(format!(
            "extension \"{other}\" (lakehouse has pgvector's vector type built in; CREATE EXTENSION vector succeeds)"
        ))),
    }
}

fn ddl_tag(name: &str) -> String {
    // DataFusion's DdlStatement::name() is CamelCase ("CreateView"); PostgreSQL tags
    // are words ("CREATE VIEW").
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn count_rows(batches: &[RecordBatch]) -> usize {
    batches
        .iter()
        .filter(|b| b.num_columns() > 0)
        .map(|b| {
            let col = b.column(0);
            match col.as_any().downcast_ref::<UInt64Array>() {
                Some(a) => (0..a.len()).map(|i| a.value(i) as usize).sum(),
                None => b.num_rows(),
            }
        })
        .sum()
}

/// The fields a plan's rows will have, for Describe: its schema after the session's
/// analyzer (type coercion: `CASE WHEN … THEN 0 ELSE $1::numeric END` is numeric, not
/// the bigint of its first branch) with the marks of [`marked_schema`]. Where analysis
/// fails (a parameter of no known type yet) the marked schema as planned.
fn result_schema(session: &Session, plan: &LogicalPlan) -> SchemaRef {
    let marked = marked_schema(session, plan);
    let state = session.ctx.state();
    match state.analyzer().execute_and_check(plan.clone(), state.config_options(), |_, _| {}) {
        Ok(analyzed) => with_marks(analyzed.schema().as_arrow(), marked),
        Err(_) => Arc::new(marked),
    }
}

/// The plan's schema with the field metadata engine/field_metadata.rs restores (oid
/// and json marks). Run over the plan as planned: the full analysis loses a subquery's
/// oid mark on the way (it turns such subqueries into SubPlans first).
fn marked_schema(session: &Session, plan: &LogicalPlan) -> datafusion::arrow::datatypes::Schema {
    use datafusion::optimizer::AnalyzerRule;
    let options = session.ctx.state().config_options().clone();
    let marked = field_metadata::KeepFieldMetadata.analyze(plan.clone(), &options).unwrap_or_else(|_| plan.clone());
    marked.schema().as_arrow().clone()
}

/// `typed`'s fields (the types the rows have), each replaced by `marked`'s where that
/// one has the same type (any string type for a string) and carries its marks.
fn with_marks(typed: &datafusion::arrow::datatypes::Schema, marked: datafusion::arrow::datatypes::Schema) -> SchemaRef {
    if typed.fields().len() != marked.fields().len() {
        return Arc::new(typed.clone());
    }
    let string = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let fields: Vec<datafusion::arrow::datatypes::FieldRef> = typed
        .fields()
        .iter()
        .zip(marked.fields().iter())
        .map(|(t, m)| {
            let same = t.data_type() == m.data_type() || (string(t.data_type()) && string(m.data_type()));
            if same && t.metadata().len() <= m.metadata().len() { m.clone() } else { t.clone() }
        })
        .collect();
    Arc::new(datafusion::arrow::datatypes::Schema::new_with_metadata(fields, typed.metadata().clone()))
}

/// `ISOLATION LEVEL …`, `READ ONLY | READ WRITE` as the settings they set.
fn transaction_modes(modes: &[datafusion::sql::sqlparser::ast::TransactionMode]) -> Vec<(&'static str, &'static str)> {
    use datafusion::sql::sqlparser::ast::{TransactionAccessMode, TransactionIsolationLevel as L, TransactionMode};
    modes
        .iter()
        .map(|m| match m {
            TransactionMode::IsolationLevel(l) => (
                "transaction_isolation",
                match l {
                    L::ReadUncommitted => "read uncommitted",
                    L::ReadCommitted => "read committed",
                    L::RepeatableRead | L::Snapshot => "repeatable read",
                    L::Serializable => "serializable",
                },
            ),
            TransactionMode::AccessMode(a) => ("transaction_read_only", if matches!(a, TransactionAccessMode::ReadOnly) { "on" } else { "off" }),
        })
        .collect()
}

/// The parser splits `SHOW a.b.c` and `SHOW transaction isolation level` alike into
/// words; only a few PostgreSQL names are really several words.
fn show_name(variable: &[datafusion::sql::sqlparser::ast::Ident]) -> String {
    let words: Vec<String> = variable.iter().map(|i| i.value.to_lowercase()).collect();
    let spaced = words.join(" ");
    if matches!(spaced.as_str(), "transaction isolation level" | "time zone" | "session authorization") {
        spaced
    } else {
        words.join(".")
    }
}

fn show_all_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("setting", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, false),
    ]))
}

fn show_schema(name: &str) -> SchemaRef {
    let col = name.to_lowercase().replace(' ', "_");
    Arc::new(Schema::new(vec![Field::new(col, DataType::Utf8, false)]))
}

fn setting_value(e: &Expr) -> Result<String> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Ok(n.clone()),
            Value::Boolean(b) => Ok(if *b { "on".into() } else { "off".into() }),
            other => other
                .clone()
                .into_string()
                .ok_or_else(|| Error::invalid(format!("unsupported setting value {other}"))),
        },
        Expr::Identifier(i) => Ok(i.value.clone()),
        Expr::CompoundIdentifier(parts) => Ok(parts.iter().map(|p| p.value.clone()).collect::<Vec<_>>().join(".")),
        Expr::UnaryOp { op: datafusion::sql::sqlparser::ast::UnaryOperator::Minus, expr } => {
            Ok(format!("-{}", setting_value(expr)?))
        }
        other => Err(Error::invalid(format!("setting values must be literals; got {other}"))),
    }
}

impl Engine {
    /// `INSERT INTO t VALUES (…, '[1,2,3]')`: DataFusion checks VALUES against the
    /// table's types before our cast rewrite runs, and Arrow cannot cast text to a
    /// list, so text literals bound for vector columns become `vector('…')` here.
    fn vector_values(&self, statement: DFStatement) -> DFStatement {
        let DFStatement::Statement(mut s) = statement else { return statement };
        if let Statement::Insert(ins) = s.as_mut() {
            let datafusion::sql::sqlparser::ast::TableObject::TableName(name) = &ins.table else {
                return DFStatement::Statement(s);
            };
            let Ok(table) = self.dataset_name(&TableReference::from(name.to_string())) else {
                return DFStatement::Statement(s);
            };
            let Some(schema) = self.catalog.dataset(&table).and_then(|r| r.arrow_schema().ok().flatten()) else {
                return DFStatement::Statement(s);
            };
            let targets: Vec<String> = if ins.columns.is_empty() {
                schema.fields().iter().map(|f| f.name().clone()).collect()
            } else {
                ins.columns.iter().map(|c| c.to_string().trim_matches('"').to_string()).collect()
            };
            let dims: Vec<Option<usize>> = targets
                .iter()
                .map(|c| schema.field_with_name(c).ok().and_then(|f| crate::udf::vector::vector_dims_of(f.data_type())))
                .collect();
            if let Some(q) = ins.source.as_mut() {
                if let datafusion::sql::sqlparser::ast::SetExpr::Values(values) = q.body.as_mut() {
                    for row in values.rows.iter_mut() {
                        for (i, e) in row.content.iter_mut().enumerate() {
                            let Some(Some(d)) = dims.get(i) else { continue };
                            if matches!(e, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_))) {
                                let call = format!("vector({e}, {d})");
                                if let Ok(parsed) = datafusion::sql::sqlparser::parser::Parser::new(&PostgreSqlDialect {})
                                    .try_with_sql(&call)
                                    .and_then(|mut p| p.parse_expr())
                                {
                                    *e = parsed;
                                }
                            }
                        }
                    }
                }
            }
        }
        DFStatement::Statement(s)
    }
}

/// `$1::int`: a parameter DataFusion could not type from its context takes the type it
/// is cast to (PostgreSQL describes it so; asyncpg refuses to bind an untyped one).
fn placeholders_typed_by_casts(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::Expr as LExpr;
    use datafusion::logical_expr::expr::Placeholder;
    let typed = plan.transform_up_with_subqueries(|p| {
        p.map_expressions(|e| {
            e.transform_up(|e| match e {
                LExpr::Cast(mut c) => match c.expr.as_mut() {
                    LExpr::Placeholder(Placeholder { id, field: field @ None }) => {
                        *field = Some(Arc::new(datafusion::arrow::datatypes::Field::new(id.as_str(), c.field.data_type().clone(), true)));
                        Ok(Transformed::yes(LExpr::Cast(c)))
                    }
                    _ => Ok(Transformed::no(LExpr::Cast(c))),
                },
                // `f($1)`: the type f's signature takes there (PostgreSQL types a
                // parameter by the function's argument: `pg_terminate_backend($1)` is int4).
                LExpr::ScalarFunction(mut f) => {
                    let mut changed = false;
                    for (i, arg) in f.args.iter_mut().enumerate() {
                        if let LExpr::Placeholder(Placeholder { id, field: field @ None }) = arg {
                            if let Some(t) = signature_type_at(&f.func.signature().type_signature, i) {
                                *field = Some(Arc::new(datafusion::arrow::datatypes::Field::new(id.as_str(), t, true)));
                                changed = true;
                            }
                        }
                    }
                    Ok(if changed { Transformed::yes(LExpr::ScalarFunction(f)) } else { Transformed::no(LExpr::ScalarFunction(f)) })
                }
                other => Ok(Transformed::no(other)),
            })
        })
    })?;
    Ok(typed.data)
}

impl Engine {
    /// The plan of a DECLARE's query.
    async fn cursor_plan(&self, session: &Session, d: &datafusion::sql::sqlparser::ast::Declare) -> Result<LogicalPlan> {
        let query = d.for_query.as_ref().ok_or_else(|| Error::Syntax("DECLARE … CURSOR FOR query".into()))?;
        let mut statement = Statement::Query(query.clone());
        temp_table::qualify(&mut statement, session);
        let prepared = self.prepare_statement(self.vector_values(DFStatement::Statement(Box::new(statement)))).await?;
        Ok(session.ctx.state().statement_to_plan(prepared).await?)
    }
}

/// The type a signature takes at argument `i`, if it names one.
fn signature_type_at(sig: &datafusion::logical_expr::TypeSignature, i: usize) -> Option<DataType> {
    use datafusion::logical_expr::TypeSignature as T;
    match sig {
        T::Exact(types) => types.get(i).cloned(),
        T::Uniform(n, types) if i < *n && types.len() == 1 => Some(types[0].clone()),
        // The first form's: functions list PostgreSQL's own argument type first.
        T::OneOf(all) => all.iter().find_map(|s| signature_type_at(s, i)),
        _ => None,
    }
}

/// A plan's sequence functions (DEFAULT nextval(…) came from the table, planned
/// with the engine's copies) replaced by the session's, which know its user and
/// remember what it drew for currval/lastval.
fn with_session_functions(plan: LogicalPlan, session: &Session) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::expr::ScalarFunction;
    const NAMES: [&str; 4] = ["nextval", "currval", "setval", "lastval"];
    let state = session.ctx.state();
    let replace = |e: datafusion::logical_expr::Expr| {
        e.transform(|e| match e {
            datafusion::logical_expr::Expr::ScalarFunction(ScalarFunction { func, args }) if NAMES.contains(&func.name()) => {
                let func = datafusion::execution::FunctionRegistry::udf(&state, func.name()).unwrap_or(func);
                Ok(Transformed::yes(datafusion::logical_expr::Expr::ScalarFunction(ScalarFunction { func, args })))
            }
            other => Ok(Transformed::no(other)),
        })
    };
    Ok(plan.transform_up_with_subqueries(|p| p.map_expressions(replace))?.data)
}

impl Engine {
    /// The provider of an owned table: its Parquet files, with the DEFAULTs and
    /// rules its CREATE TABLE declared (table_providers/owned.rs).
    pub(crate) fn owned_table(&self, rec: &DatasetRecord) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
        self.owned_table_over(datasets::owned_parquet_table(rec)?, rec, false)
    }

    /// `inner` with the DEFAULTs and rules of `rec` (a temporary table's inner is in memory).
    pub(crate) fn owned_table_over(
        &self,
        inner: Arc<dyn datafusion::catalog::TableProvider>,
        rec: &DatasetRecord,
        temporary: bool,
    ) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
        use crate::table_providers::owned::{OwnedTable, Rules};
        let schema = inner.schema();
        let not_null: Vec<usize> = schema.fields().iter().enumerate().filter(|(_, f)| !f.is_nullable()).map(|(i, _)| i).collect();
        let state = self.template.state();
        let empty = datafusion::common::DFSchema::empty();
        let table_schema = datafusion::common::DFSchema::try_from(schema.as_ref().clone())?;
        let mut defaults = HashMap::new();
        for (column, sql) in &rec.defaults {
            defaults.insert(column.clone(), state.create_logical_expr(sql, &empty)?);
        }
        let index = |c: &str| {
            schema.index_of(c).map_err(|_| Error::Internal(format!("table {} has no column {c} its constraint names", rec.name)))
        };
        let mut rules = Rules { table: rec.name.clone(), not_null, ..Default::default() };
        for c in &rec.constraints {
            match c.kind.as_str() {
                "c" => {
                    let sql = c.check.as_deref().unwrap_or("true");
                    rules.checks.push((c.name.clone(), state.create_logical_expr(sql, &table_schema)?));
                }
                "p" | "u" => rules.unique.push((c.name.clone(), c.columns.iter().map(|n| index(n)).collect::<Result<_>>()?)),
                _ => {}
            }
        }
        for i in rec.indexes.iter().filter(|i| i.unique) {
            rules.unique.push((i.name.clone(), i.columns.iter().map(|n| index(n)).collect::<Result<_>>()?));
        }
        Ok(Arc::new(OwnedTable::new(inner, defaults, rules, temporary)))
    }

    fn has_unique_keys(&self, table: &str) -> bool {
        self.catalog.dataset(table).is_some_and(|d| d.constraints.iter().any(|c| c.kind == "p" || c.kind == "u") || d.indexes.iter().any(|i| i.unique))
    }

    fn key_lock(&self, table: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.key_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(table.to_string()).or_default().clone()
    }

}

/// `CREATE TABLE … WITH (bucket = 'x')`: take our options off the statement before
/// DataFusion plans it.
fn strip_options(statement: DFStatement) -> (DFStatement, Option<String>) {
    let DFStatement::Statement(mut s) = statement else {
        return (statement, None);
    };
    let mut bucket = None;
    identity::unmark(s.as_mut());
    if let Statement::CreateTable(ct) = s.as_mut() {
        if let CreateTableOptions::With(options) = &mut ct.table_options {
            options.retain(|o| match o {
                SqlOption::KeyValue { key, value } if key.value.eq_ignore_ascii_case("bucket") => {
                    bucket = setting_value(value).ok();
                    false
                }
                _ => true,
            });
            if options.is_empty() {
                ct.table_options = CreateTableOptions::None;
            }
        }
    }
    (DFStatement::Statement(s), bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_definitions_parse_back_to_the_same_statement() {
        for sql in [
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/data/it''s here/'",
            "CREATE EXTERNAL TABLE c (a INT, b VARCHAR) STORED AS CSV PARTITIONED BY (b) LOCATION '/x/' OPTIONS ('format.has_header' 'true')",
        ] {
            let parsed = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {}).unwrap();
            let DFStatement::CreateExternalTable(c) = &parsed[0] else { panic!() };
            let again = DFParser::parse_sql_with_dialect(&external_definition(c), &PostgreSqlDialect {}).unwrap();
            assert_eq!(parsed[0], again[0], "{}", external_definition(c));
        }
    }
}
