//! MySQL/MariaDB and PostgreSQL tables, through datafusion-table-providers.
//!
//! An attachment is a schema of the `lakehouse` catalog ([`RemoteSchema`]): its tables
//! are the source schema's tables, each a federated provider, so a sub-plan whose
//! tables all live in one source (filters, projections, limits, aggregates, joins) is
//! unparsed back to SQL and runs there (`EXPLAIN` shows `VirtualExecutionPlan …
//! base_sql=…`). [`FederationGate`] runs datafusion-federation's optimizer rule only on
//! plans that read a remote table, so nothing else changes for local queries.
//! `CREATE EXTERNAL TABLE … STORED AS MYSQL|POSTGRES` goes through [`RemoteTableFactory`].
//!
//! Connection failures are mapped to SQLSTATEs here ([`source_error`]), with the
//! location redacted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session as CatalogSession, TableProvider, TableProviderFactory};
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::error::Result as DFResult;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::{CreateExternalTable, Expr, LogicalPlan};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::sql::TableReference;
use datafusion::sql::unparser::dialect::MySqlDialect;
use datafusion_table_providers::sql::sql_provider_datafusion::SqlTable;
use datafusion_federation::sql::SQLExecutor;
use datafusion_table_providers::UnsupportedTypeAction;
use datafusion_table_providers::sql::db_connection_pool::DbConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::get_tables;
use datafusion_table_providers::sql::db_connection_pool::mysqlpool::MySQLConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use datafusion_table_providers::util::secrets::to_secret_map;

use crate::catalog::Catalog;
use crate::catalog::attachments::{
    AttachmentRecord, Location, PasswordSource, RemoteKind, TypeFallback, redact, resolve_password,
};
use crate::error::{Error, Result};

/// A connection pool to one source database.
#[derive(Clone)]
pub enum RemotePool {
    /// With how unmapped column types are read.
    Mysql(Arc<MySQLConnectionPool>, TypeFallback),
    Postgres(Arc<PostgresConnectionPool>),
}

impl std::fmt::Debug for RemotePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemotePool::Mysql(..) => f.write_str("RemotePool(mysql)"),
            RemotePool::Postgres(_) => f.write_str("RemotePool(postgres)"),
        }
    }
}

/// Open a pool (and check it with one query). Errors carry the redacted location.
pub async fn connect(location: &Location, password: Option<String>, types: TypeFallback) -> Result<RemotePool> {
    let shown = location.display();
    let mut params: HashMap<String, String> = HashMap::new();
    params.insert("host".into(), location.host.clone());
    params.insert("user".into(), location.user.clone());
    params.insert("db".into(), location.database.clone());
    if let Some(p) = password.clone() {
        params.insert("pass".into(), p);
    }
    let sslmode = location.params.get("sslmode").cloned();
    let connecting = async {
        match location.kind {
            RemoteKind::Mysql => {
                params.insert("tcp_port".into(), location.port.to_string());
                params.insert("sslmode".into(), sslmode.unwrap_or_else(|| "disabled".into()));
                let pool = MySQLConnectionPool::new(to_secret_map(params))
                    .await
                    .map_err(|e| source_error(&e, &shown, &location.user))?;
                Ok(RemotePool::Mysql(Arc::new(pool), types))
            }
            RemoteKind::Postgres => {
                params.insert("port".into(), location.port.to_string());
                params.insert("sslmode".into(), sslmode.unwrap_or_else(|| "prefer".into()));
                // Literals are written the standard way (a backslash is a character):
                // make the session read them so, whatever the server's default.
                params.insert("options".into(), "-c standard_conforming_strings=on".into());
                let action = match types {
                    TypeFallback::Error => UnsupportedTypeAction::Error,
                    TypeFallback::Text => UnsupportedTypeAction::String,
                };
                let pool = PostgresConnectionPool::new(to_secret_map(params))
                    .await
                    .map_err(|e| source_error(&e, &shown, &location.user))?
                    .with_unsupported_type_action(action);
                Ok(RemotePool::Postgres(Arc::new(pool)))
            }
        }
    };
    match tokio::time::timeout(std::time::Duration::from_secs(30), connecting).await {
        Ok(r) => r,
        Err(_) => Err(Error::Unreachable {
            what: location.kind.name().into(),
            location: shown,
            reason: "no answer within 30 s".into(),
        }),
    }
}

impl RemotePool {
    pub fn kind(&self) -> RemoteKind {
        match self {
            RemotePool::Mysql(..) => RemoteKind::Mysql,
            RemotePool::Postgres(_) => RemoteKind::Postgres,
        }
    }

    /// Tables (and views) of the source schema.
    pub async fn tables(&self, schema: &str) -> std::result::Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
        let mut tables = match self {
            RemotePool::Mysql(p, _) => get_tables(p.connect().await?, schema).await?,
            RemotePool::Postgres(p) => {
                // Tables, views, materialized views and foreign tables.
                let sql = format!(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = {q} \
                     UNION SELECT matviewname::text FROM pg_matviews WHERE schemaname = {q}",
                    q = pg_literal(schema)
                );
                pg_strings(p, &sql).await?.into_iter().filter_map(|mut r| r.pop().flatten()).collect()
            }
        };
        tables.sort();
        Ok(tables)
    }

    /// `(column, type at the source)` of `schema.table`, in column order.
    pub async fn column_types(&self, schema: &str, table: &str) -> std::result::Result<Vec<(String, String)>, Box<dyn std::error::Error + Send + Sync>> {
        match self {
            RemotePool::Mysql(p, _) => Ok(mysql_columns(p, schema, table).await?.into_iter().map(|c| (c.0, c.2)).collect()),
            RemotePool::Postgres(p) => pg_column_types(p, schema, table).await,
        }
    }

    /// A federated provider for `schema.table`.
    pub async fn table(&self, schema: &str, table: &str) -> std::result::Result<Arc<dyn TableProvider>, Box<dyn std::error::Error + Send + Sync>> {
        let reference = TableReference::partial(schema.to_string(), table.to_string());
        match self {
            RemotePool::Mysql(p, types) => {
                // Our own type mapping (see mysql_schema); the rows still come through
                // the library, cast to these types by the federated scan.
                let arrow_schema = mysql_schema(p, schema, table, *types).await?;
                let quoting = Quoting::Mysql { backslash_escapes: mysql_backslash_escapes(p).await? };
                let dyn_pool: Arc<DynMySQLConnectionPool> = p.clone();
                let sql_table = SqlTable::new_with_schema("mysql", &dyn_pool, arrow_schema, reference.clone())
                    .with_dialect(Arc::new(MySqlDialect {}));
                Ok(federated(Arc::new(sql_table), reference, quoting))
            }
            RemotePool::Postgres(p) => {
                let dyn_pool: Arc<DynPostgresConnectionPool> = p.clone();
                let found = SqlTable::new("postgres", &dyn_pool, reference.clone()).await?;
                let arrow_schema = pg_fix_schema(p, schema, table, found.schema()).await?;
                let sql_table = SqlTable::new_with_schema("postgres", &dyn_pool, arrow_schema, reference.clone())
                    .with_dialect(Arc::new(datafusion::sql::unparser::dialect::PostgreSqlDialect {}));
                Ok(federated(Arc::new(sql_table), reference, Quoting::Postgres))
            }
        }
    }

}

use datafusion_table_providers::postgres::DynPostgresConnectionPool;

/// A source table as a federated provider whose SQL names every selected column
/// after the plan's field (see [`NamedColumns`]).
fn federated<T: 'static, P: 'static>(table: Arc<SqlTable<T, P>>, reference: TableReference, quoting: Quoting) -> Arc<dyn TableProvider>
where
    SqlTable<T, P>: SQLExecutor + TableProvider,
{
    use datafusion_federation::sql::{RemoteTableRef, SQLFederationProvider, SQLTableSource};
    let schema = TableProvider::schema(table.as_ref());
    let executor = Arc::new(NamedColumns { inner: table.clone(), quoting });
    let source = Arc::new(SQLTableSource::new_with_schema(Arc::new(SQLFederationProvider::new(executor)), RemoteTableRef::from(reference), schema));
    // The scan takes only filters the gate would send (those then reach the source
    // through the federated SQL, quoted exactly); the plain scan's own plan takes
    // nothing more at the physical level (NoPushdownExec).
    let fallback = Arc::new(PortableFilters(table));
    Arc::new(datafusion_federation::FederatedTableProviderAdaptor::new_with_provider(source, fallback))
}

/// How a source reads the literals and quoted names of the SQL sent to it.
#[derive(Debug, Clone, Copy)]
enum Quoting {
    /// MySQL: backslash is an escape in '…' unless sql_mode has NO_BACKSLASH_ESCAPES.
    Mysql { backslash_escapes: bool },
    /// PostgreSQL with standard_conforming_strings on (set at connect).
    Postgres,
}

impl Quoting {
    /// The text between the quotes of a string literal with value `s`. Every quote
    /// comes out doubled, which sqlparser's Display then writes as it is (it leaves
    /// a doubled quote, or one after a backslash, untouched — and would otherwise
    /// guess wrong for values like `\'` or `a''b`).
    fn literal(self, s: &str) -> String {
        let s = match self {
            Quoting::Mysql { backslash_escapes: true } => s.replace('\\', "\\\\"),
            _ => s.to_string(),
        };
        s.replace('\'', "''")
    }

    fn ident_quote(self) -> char {
        match self {
            Quoting::Mysql { .. } => '`',
            Quoting::Postgres => '"',
        }
    }
}

/// Quoted names the same way: the quote character doubled inside.
fn quoted_ident_text(value: &str, quote: char) -> String {
    value.replace(quote, &format!("{quote}{quote}"))
}

/// Rewrites a statement's literals and quoted names into text that means exactly
/// their values to the source (see [`Quoting::literal`]).
struct QuoteExactly(Quoting);

impl QuoteExactly {
    fn ident(&self, i: &mut datafusion::sql::sqlparser::ast::Ident) {
        if let Some(q) = i.quote_style {
            i.value = quoted_ident_text(&i.value, q);
        }
    }
}

impl datafusion::sql::sqlparser::ast::VisitorMut for QuoteExactly {
    type Break = ();

    fn pre_visit_value(&mut self, v: &mut datafusion::sql::sqlparser::ast::ValueWithSpan) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::Value;
        if let Value::SingleQuotedString(s) = &mut v.value {
            *s = self.0.literal(s);
        }
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &mut datafusion::sql::sqlparser::ast::Expr) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::Expr;
        match e {
            Expr::Identifier(i) => self.ident(i),
            Expr::CompoundIdentifier(parts) => parts.iter_mut().for_each(|i| self.ident(i)),
            _ => {}
        }
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, name: &mut datafusion::sql::sqlparser::ast::ObjectName) -> std::ops::ControlFlow<()> {
        for part in name.0.iter_mut() {
            if let datafusion::sql::sqlparser::ast::ObjectNamePart::Identifier(i) = part {
                self.ident(i);
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut datafusion::sql::sqlparser::ast::Select) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::SelectItem;
        for item in select.projection.iter_mut() {
            if let SelectItem::ExprWithAlias { alias, .. } = item {
                self.ident(alias);
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &mut datafusion::sql::sqlparser::ast::TableFactor) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::TableFactor;
        if let TableFactor::Table { alias: Some(a), .. } | TableFactor::Derived { alias: Some(a), .. } = t {
            self.ident(&mut a.name);
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// The plain scan's plan, as a leaf that takes no filters, sorts or projections
/// into its SQL (DataFusion's physical optimizer would push them into the library's
/// SqlExec, which writes them without our quoting and, for MySQL, strips `"`).
#[derive(Debug)]
struct NoPushdownExec(Arc<dyn datafusion::physical_plan::ExecutionPlan>);

impl datafusion::physical_plan::DisplayAs for NoPushdownExec {
    fn fmt_as(&self, t: datafusion::physical_plan::DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "RemoteScan: ")?;
        self.0.fmt_as(t, f)
    }
}

impl datafusion::physical_plan::ExecutionPlan for NoPushdownExec {
    fn name(&self) -> &str {
        "RemoteScan"
    }
    fn properties(&self) -> &Arc<datafusion::physical_plan::PlanProperties> {
        self.0.properties()
    }
    fn children(&self) -> Vec<&Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        vec![]
    }
    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn datafusion::physical_plan::ExecutionPlan>>) -> DFResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        Ok(self)
    }
    fn execute(&self, partition: usize, context: Arc<datafusion::execution::TaskContext>) -> DFResult<datafusion::execution::SendableRecordBatchStream> {
        self.0.execute(partition, context)
    }
}

/// Does MySQL read backslashes in '…' as escapes (its default sql_mode)?
async fn mysql_backslash_escapes(pool: &MySQLConnectionPool) -> std::result::Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    use mysql_async::prelude::Queryable;
    let conn = pool.connect_direct().await?;
    let mut conn = conn.conn.lock().await;
    let mode: Option<String> = conn.query_first("SELECT @@SESSION.sql_mode").await?;
    Ok(!mode.unwrap_or_default().to_uppercase().contains("NO_BACKSLASH_ESCAPES"))
}

/// A table that scans like `inner` but takes into its scan only filters the gate
/// deems portable: a filter with text no quoting can carry (or a function the source
/// lacks) stays a Filter above the scan, so the scan itself stays federated.
#[derive(Debug)]
struct PortableFilters<T>(Arc<T>);

#[async_trait]
impl<T: TableProvider + 'static> TableProvider for PortableFilters<T> {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }
    fn table_type(&self) -> datafusion::datasource::TableType {
        self.0.table_type()
    }
    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        Ok(Arc::new(NoPushdownExec(self.0.scan(state, projection, filters, limit).await?)))
    }
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DFResult<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        use datafusion::logical_expr::TableProviderFilterPushDown::Unsupported;
        let inner = self.0.supports_filters_pushdown(filters)?;
        Ok(filters.iter().zip(inner).map(|(f, d)| if portable_expr(f) { d } else { Unsupported }).collect())
    }
}

/// The library turns the source's rows into Arrow by the *names* of the result's
/// columns, and a source names an unaliased expression its own way (MySQL calls
/// `sum(t.amount)` what DataFusion calls `sum(shop.t.amount)`): alias every item of
/// the top-level select list to the plan's field name before the SQL is sent.
struct NamedColumns {
    inner: Arc<dyn SQLExecutor>,
    quoting: Quoting,
}

#[async_trait]
impl SQLExecutor for NamedColumns {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn compute_context(&self) -> Option<String> {
        self.inner.compute_context()
    }
    fn dialect(&self) -> Arc<dyn datafusion::sql::unparser::dialect::Dialect> {
        self.inner.dialect()
    }
    fn ast_analyzer(&self) -> Option<datafusion_federation::sql::AstAnalyzer> {
        let quoting = self.quoting;
        let mut inner = self.inner.ast_analyzer();
        Some(Box::new(move |statement| {
            let mut statement = match inner.as_mut() {
                Some(f) => f(statement)?,
                None => statement,
            };
            let _ = datafusion::sql::sqlparser::ast::VisitMut::visit(&mut statement, &mut QuoteExactly(quoting));
            Ok(statement)
        }))
    }
    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        filters: &[Arc<dyn datafusion::physical_expr::PhysicalExpr>],
    ) -> DFResult<datafusion::execution::SendableRecordBatchStream> {
        let query = name_columns(query, &schema, self.quoting);
        self.inner.execute(&query, schema, filters)
    }
    async fn table_names(&self) -> DFResult<Vec<String>> {
        self.inner.table_names().await
    }
    async fn get_table_schema(&self, table_name: &str) -> DFResult<SchemaRef> {
        self.inner.get_table_schema(table_name).await
    }
}

fn name_columns(sql: &str, schema: &Schema, quoting: Quoting) -> String {
    use datafusion::sql::sqlparser::ast::{Ident, SelectItem, SetExpr, Statement};
    use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect, MySqlDialect as MySqlParse, PostgreSqlDialect as PgParse};
    use datafusion::sql::sqlparser::parser::{Parser, ParserOptions};
    // Parsed without unescaping, in the source's own reading of backslashes, so
    // that printing it again gives back the text as it was (QuoteExactly wrote it).
    let dialect: Box<dyn Dialect> = match quoting {
        Quoting::Mysql { backslash_escapes: true } => Box::new(MySqlParse {}),
        Quoting::Mysql { backslash_escapes: false } => Box::new(GenericDialect {}),
        Quoting::Postgres => Box::new(PgParse {}),
    };
    let quote = quoting.ident_quote();
    let parsed = Parser::new(dialect.as_ref())
        .with_options(ParserOptions::new().with_unescape(false))
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements());
    let Ok(mut statements) = parsed else { return sql.to_string() };
    let [Statement::Query(query)] = statements.as_mut_slice() else { return sql.to_string() };
    let SetExpr::Select(select) = query.body.as_mut() else { return sql.to_string() };
    if select.projection.len() != schema.fields().len() {
        return sql.to_string();
    }
    for (item, field) in select.projection.iter_mut().zip(schema.fields()) {
        let alias = Ident::with_quote(quote, quoted_ident_text(field.name(), quote));
        *item = match std::mem::replace(item, SelectItem::Wildcard(Default::default())) {
            SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => SelectItem::ExprWithAlias { expr, alias },
            other => return { let _ = other; sql.to_string() },
        };
    }
    statements[0].to_string()
}

fn pg_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Run a catalog query on a Postgres pool; every value as text.
async fn pg_strings(pool: &PostgresConnectionPool, sql: &str) -> std::result::Result<Vec<Vec<Option<String>>>, Box<dyn std::error::Error + Send + Sync>> {
    use futures::StreamExt;
    let conn = pool.connect().await?;
    let conn = conn.as_async().ok_or("postgres connection is not async")?;
    let mut stream = conn.query_arrow(sql, &[], None).await?;
    let mut rows = vec![];
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let cols: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| datafusion::arrow::compute::cast(c, &DataType::Utf8))
            .collect::<std::result::Result<_, _>>()?;
        for r in 0..batch.num_rows() {
            rows.push(
                cols.iter()
                    .map(|c| {
                        let a = c.as_any().downcast_ref::<datafusion::arrow::array::StringArray>().expect("cast to Utf8");
                        (!datafusion::arrow::array::Array::is_null(a, r)).then(|| a.value(r).to_string())
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

/// The library reads `timestamp(n) with time zone` (a precision given) as a timestamp
/// without one: put the zone back (values arrive as UTC instants).
/// `(column, type as format_type prints it)` of a Postgres table, in column order.
async fn pg_column_types(pool: &PostgresConnectionPool, schema: &str, table: &str) -> std::result::Result<Vec<(String, String)>, Box<dyn std::error::Error + Send + Sync>> {
    let sql = format!(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = {} AND c.relname = {} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        pg_literal(schema),
        pg_literal(table)
    );
    Ok(pg_strings(pool, &sql)
        .await?
        .into_iter()
        .filter_map(|r| Some((r.first()?.clone()?, r.get(1)?.clone()?)))
        .collect())
}

async fn pg_fix_schema(
    pool: &PostgresConnectionPool,
    schema: &str,
    table: &str,
    found: SchemaRef,
) -> std::result::Result<SchemaRef, Box<dyn std::error::Error + Send + Sync>> {
    let types = pg_column_types(pool, schema, table).await?;
    let with_zone = |name: &str| types.iter().any(|(n, t)| n == name && t.starts_with("timestamp") && t.ends_with("with time zone"));
    let fields: Vec<Field> = found
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(unit, None) if with_zone(f.name()) => {
                f.as_ref().clone().with_data_type(DataType::Timestamp(*unit, Some("UTC".into())))
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

type DynMySQLConnectionPool = dyn DbConnectionPool<mysql_async::Conn, &'static (dyn mysql_async::prelude::ToValue + Sync)> + Send + Sync;

/// The Arrow schema of a MySQL/MariaDB table, from `information_schema.COLUMNS`:
/// integers by width and signedness, `tinyint(1)` (MySQL's BOOL) as boolean,
/// DECIMAL as Decimal128 (Decimal256 past 38 digits), DATETIME as a timestamp
/// without time zone and TIMESTAMP (stored as UTC) with one, JSON/ENUM/SET/UUID/INET
/// as text, binary strings and geometry as binary. Anything else fails naming the
/// column, or is text when `types` is `text`.
type MysqlColumn = (String, String, String, Option<u64>, Option<u64>);

/// `(name, DATA_TYPE, COLUMN_TYPE, precision, scale)` of a MySQL table's columns, in order.
async fn mysql_columns(pool: &MySQLConnectionPool, schema: &str, table: &str) -> std::result::Result<Vec<MysqlColumn>, Box<dyn std::error::Error + Send + Sync>> {
    use mysql_async::prelude::Queryable;
    let conn = pool.connect_direct().await?;
    let mut conn = conn.conn.lock().await;
    Ok(conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await?)
}

async fn mysql_schema(
    pool: &MySQLConnectionPool,
    schema: &str,
    table: &str,
    types: TypeFallback,
) -> std::result::Result<SchemaRef, Box<dyn std::error::Error + Send + Sync>> {
    let rows = mysql_columns(pool, schema, table).await?;
    if rows.is_empty() {
        return Err(Box::new(Error::RemoteNotFound(format!("table \"{table}\" does not exist in {schema}"))));
    }
    if table.contains('"') {
        return Err(Box::new(Error::NotSupported(format!(
            "MySQL table names containing a double quote ({schema}.{table}); the MySQL connector drops every \" from the SQL it sends — rename the table or read it through a view"
        ))));
    }
    let mut fields = vec![];
    for (name, data_type, column_type, precision, scale) in rows {
        if name.contains('"') {
            return Err(Box::new(Error::NotSupported(format!(
                "MySQL column names containing a double quote (column {name} of {schema}.{table}); the MySQL connector drops every \" from the SQL it sends — rename the column or read the table through a view that renames it"
            ))));
        }
        let dt = mysql_arrow_type(&data_type.to_lowercase(), &column_type.to_lowercase(), precision, scale);
        let dt = match (dt, types) {
            (Some(dt), _) => dt,
            (None, TypeFallback::Text) => DataType::Utf8,
            (None, TypeFallback::Error) => {
                return Err(Box::new(Error::NotSupported(format!(
                    "column \"{name}\" of {schema}.{table} has type {column_type}, which has no Arrow mapping (attach with types => 'text' to read it as text)"
                ))));
            }
        };
        fields.push(Field::new(name, dt, true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

fn mysql_arrow_type(data_type: &str, column_type: &str, precision: Option<u64>, scale: Option<u64>) -> Option<DataType> {
    let unsigned = column_type.contains("unsigned");
    let int = |signed: DataType, uns: DataType| Some(if unsigned { uns } else { signed });
    Some(match data_type {
        "tinyint" if column_type.starts_with("tinyint(1)") && !unsigned => DataType::Boolean,
        "bool" | "boolean" => DataType::Boolean,
        "tinyint" => return int(DataType::Int8, DataType::UInt8),
        "smallint" => return int(DataType::Int16, DataType::UInt16),
        "mediumint" | "int" | "integer" => return int(DataType::Int32, DataType::UInt32),
        "bigint" => return int(DataType::Int64, DataType::UInt64),
        "bit" => DataType::UInt64,
        "year" => DataType::Int16,
        "float" => DataType::Float32,
        "double" | "real" | "double precision" => DataType::Float64,
        "decimal" | "numeric" | "dec" | "fixed" => {
            let p = precision.unwrap_or(10) as u8;
            let s = scale.unwrap_or(0) as i8;
            if p > 38 { DataType::Decimal256(p, s) } else { DataType::Decimal128(p.max(1), s) }
        }
        "date" => DataType::Date32,
        "time" => DataType::Time64(TimeUnit::Nanosecond),
        "datetime" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "json" | "enum" | "set" | "uuid"
        | "inet4" | "inet6" => DataType::Utf8,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "geometry" | "point"
        | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon" | "geometrycollection" => DataType::Binary,
        _ => return None,
    })
}

/// The password of an attachment, then a pool.
pub async fn connect_attachment(catalog: &Catalog, record: &AttachmentRecord) -> Result<RemotePool> {
    let password = resolve_password(catalog, &record.password)?;
    connect(&record.location, password, record.types).await
}

/// Map a source's error (anywhere in its chain) to our SQLSTATEs: unreachable 08001,
/// authentication 28P01, unknown database or table 42P01, a connection lost or a
/// failed statement 08006. The message names the redacted location.
pub fn source_error(err: &(dyn std::error::Error + 'static), location: &str, user: &str) -> Error {
    let mut chain: Vec<&(dyn std::error::Error + 'static)> = vec![err];
    while let Some(next) = chain.last().and_then(|e| e.source()) {
        chain.push(next);
        if chain.len() > 16 {
            break;
        }
    }
    // Our own error raised while reading the source's catalog keeps its meaning.
    for e in &chain {
        if let Some(ours) = e.downcast_ref::<Error>() {
            match ours {
                Error::NotSupported(m) => return Error::NotSupported(m.clone()),
                Error::RemoteNotFound(m) => return Error::RemoteNotFound(m.clone()),
                _ => {}
            }
        }
    }
    let text = redact(&chain.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(": "));
    let first_line = |s: &str| s.lines().next().unwrap_or("").to_string();
    for e in &chain {
        if let Some(m) = e.downcast_ref::<mysql_async::Error>() {
            match m {
                mysql_async::Error::Server(s) => {
                    return match s.code {
                        1045 | 1698 => Error::InvalidPassword(format!("{user}\" at \"{location}")),
                        1044 | 1142 => Error::PermissionDenied(format!("{} (at {location})", s.message)),
                        1049 => Error::RemoteNotFound(format!("database at {location}: {}", s.message)),
                        1146 => Error::RemoteNotFound(format!("{} (at {location})", s.message)),
                        _ => Error::ConnectionFailure(format!("mysql at {location}: {} (error {})", s.message, s.code)),
                    };
                }
                mysql_async::Error::Io(_) => {
                    return Error::ConnectionFailure(format!("lost the connection to mysql at {location}: {}", first_line(&m.to_string())));
                }
                mysql_async::Error::Driver(mysql_async::DriverError::UnknownAuthPlugin { .. }) => {
                    return Error::InvalidPassword(format!("{user}\" at \"{location}"));
                }
                _ => {}
            }
        }
        if let Some(p) = e.downcast_ref::<tokio_postgres::Error>() {
            if let Some(db) = p.as_db_error() {
                let code = db.code().code();
                return match code {
                    "28P01" | "28000" => Error::InvalidPassword(format!("{user}\" at \"{location}")),
                    "3D000" | "42P01" | "3F000" => Error::RemoteNotFound(format!("{} (at {location})", db.message())),
                    "57014" => Error::Canceled,
                    _ => Error::ConnectionFailure(format!("postgres at {location}: {} ({code})", db.message())),
                };
            }
            if p.is_closed() {
                return Error::ConnectionFailure(format!("lost the connection to postgres at {location}"));
            }
        }
    }
    let lower = text.to_lowercase();
    if lower.contains("cannot connect to") || lower.contains("connection refused") || lower.contains("failed to lookup") || lower.contains("ns lookup") {
        return Error::Unreachable { what: "database".into(), location: location.into(), reason: first_line(&text) };
    }
    if lower.contains("authentication failed") || lower.contains("password") && lower.contains("fail") {
        return Error::InvalidPassword(format!("{user}\" at \"{location}"));
    }
    if lower.contains("not found") || lower.contains("does not exist") || lower.contains("doesn't exist") || lower.contains("unknown database") {
        return Error::RemoteNotFound(format!("{} (at {location})", first_line(&text)));
    }
    if lower.contains("unsupported data type") {
        return Error::NotSupported(format!(
            "{} (at {location}); attach with types => 'text' to read such columns as text",
            first_line(&text).trim_end_matches('.')
        ));
    }
    Error::ConnectionFailure(format!("the source at {location} failed: {}", first_line(&text)))
}

/// A failure while reading a remote table mid-query, if `err` is one (the engine maps
/// DataFusion's external errors through this).
pub fn query_error(err: &(dyn std::error::Error + 'static)) -> Option<Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut depth = 0;
    while let Some(e) = cur {
        if e.is::<mysql_async::Error>() || e.is::<tokio_postgres::Error>() {
            return Some(source_error(e, "the source", "?"));
        }
        depth += 1;
        if depth > 16 {
            break;
        }
        cur = e.source();
    }
    None
}

/// An attached database: a schema whose tables are the source's.
pub struct RemoteSchema {
    catalog: Arc<Catalog>,
    record: AttachmentRecord,
    pool: tokio::sync::Mutex<Option<RemotePool>>,
    tables: Mutex<Vec<String>>,
    providers: Mutex<HashMap<String, Arc<dyn TableProvider>>>,
}

impl std::fmt::Debug for RemoteSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteSchema({} at {})", self.record.name, self.record.location.display())
    }
}

impl RemoteSchema {
    /// Connect now and list the tables (ATTACH reports what fails).
    pub async fn open(catalog: Arc<Catalog>, record: AttachmentRecord) -> Result<RemoteSchema> {
        let schema = RemoteSchema::offline(catalog, record);
        schema.refresh().await?;
        Ok(schema)
    }

    /// Without connecting (a restart while the source is down): the first query
    /// connects.
    pub fn offline(catalog: Arc<Catalog>, record: AttachmentRecord) -> RemoteSchema {
        RemoteSchema {
            catalog,
            record,
            pool: tokio::sync::Mutex::new(None),
            tables: Mutex::new(vec![]),
            providers: Mutex::new(HashMap::new()),
        }
    }

    pub fn record(&self) -> &AttachmentRecord {
        &self.record
    }

    async fn pool(&self) -> Result<RemotePool> {
        let mut guard = self.pool.lock().await;
        if let Some(p) = guard.as_ref() {
            return Ok(p.clone());
        }
        let pool = connect_attachment(&self.catalog, &self.record).await?;
        *guard = Some(pool.clone());
        Ok(pool)
    }

    /// Re-read the source's table list.
    pub async fn refresh(&self) -> Result<Vec<String>> {
        let pool = self.pool().await?;
        let shown = self.record.location.display();
        let tables = pool
            .tables(&self.record.source_schema())
            .await
            .map_err(|e| source_error(e.as_ref(), &shown, &self.record.location.user))?;
        *self.tables.lock().unwrap_or_else(|p| p.into_inner()) = tables.clone();
        Ok(tables)
    }

    /// `(column, type at the source)` of one source table.
    pub async fn column_types(&self, table: &str) -> Result<Vec<(String, String)>> {
        let pool = self.pool().await?;
        pool.column_types(&self.record.source_schema(), table)
            .await
            .map_err(|e| source_error(e.as_ref(), &self.record.location.display(), &self.record.location.user))
    }

    /// The provider for one source table; `None` if the source has no such table.
    pub async fn provider(&self, table: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(p) = self.providers.lock().unwrap_or_else(|p| p.into_inner()).get(table) {
            return Ok(Some(p.clone()));
        }
        let known = self.tables.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|t| t == table);
        if !known && !self.refresh().await?.iter().any(|t| t == table) {
            return Ok(None);
        }
        let pool = self.pool().await?;
        let shown = self.record.location.display();
        let provider = pool
            .table(&self.record.source_schema(), table)
            .await
            .map_err(|e| source_error(e.as_ref(), &shown, &self.record.location.user))?;
        self.providers.lock().unwrap_or_else(|p| p.into_inner()).insert(table.to_string(), provider.clone());
        Ok(Some(provider))
    }
}

#[async_trait]
impl SchemaProvider for RemoteSchema {

    fn table_names(&self) -> Vec<String> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        self.provider(name).await.map_err(Error::into_datafusion)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|t| t == name)
    }

    fn register_table(&self, name: String, _table: Arc<dyn TableProvider>) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Err(Error::NotSupported(format!(
            "creating tables in attached database {} (create it at the source, or CALL ingest('{}.<table>', '{name}') to copy one into lakehouse)",
            self.record.name, self.record.name
        ))
        .into_datafusion())
    }
}

/// `CREATE EXTERNAL TABLE t STORED AS MYSQL|POSTGRES LOCATION 'url' OPTIONS ('table'
/// 'x' [, 'schema' 's', 'password_env' 'VAR', 'password_secret' …, 'types' 'text'])`:
/// one source table. A password written in the URL has been moved to a secret file by
/// the engine before the definition is stored (`password_secret`).
#[derive(Debug)]
pub struct RemoteTableFactory {
    pub kind: RemoteKind,
    pub catalog: Arc<Catalog>,
}

/// The connection details of an external remote table's statement.
pub fn external_options(kind: RemoteKind, cmd: &CreateExternalTable) -> Result<(Location, Option<String>, PasswordSource, String, String, TypeFallback)> {
    let (location, inline) = Location::parse(&cmd.location)?;
    if location.kind != kind {
        return Err(Error::invalid(format!(
            "STORED AS {} with a {} location ({})",
            kind.name().to_uppercase(),
            location.kind.name(),
            location.display()
        )));
    }
    // DataFusion may qualify option keys as format options (`format.table`).
    let opt = |k: &str| cmd.options.get(k).or_else(|| cmd.options.get(&format!("format.{k}"))).cloned();
    let table = opt("table").ok_or_else(|| {
        Error::invalid(format!("STORED AS {} needs OPTIONS ('table' 'source_table_name')", kind.name().to_uppercase()))
    })?;
    let schema = opt("schema").unwrap_or_else(|| match kind {
        RemoteKind::Mysql => location.database.clone(),
        RemoteKind::Postgres => "public".into(),
    });
    let password = match (opt("password_env"), opt("password_file"), opt("password_secret")) {
        (Some(v), _, _) => PasswordSource::Env(v),
        (_, Some(f), _) => PasswordSource::File(f),
        (_, _, Some(s)) => PasswordSource::Stored(s),
        _ => PasswordSource::None,
    };
    let types = match opt("types").as_deref() {
        None | Some("error") => TypeFallback::Error,
        Some("text") => TypeFallback::Text,
        Some(other) => return Err(Error::invalid(format!("types must be 'error' or 'text', not '{other}'"))),
    };
    Ok((location, inline, password, schema, table, types))
}

#[async_trait]
impl TableProviderFactory for RemoteTableFactory {
    async fn create(&self, _state: &dyn CatalogSession, cmd: &CreateExternalTable) -> DFResult<Arc<dyn TableProvider>> {
        let build = async {
            let (location, inline, source, schema, table, types) = external_options(self.kind, cmd)?;
            let password = match inline {
                Some(p) => Some(p),
                None => resolve_password(&self.catalog, &source)?,
            };
            let pool = connect(&location, password, types).await?;
            let shown = location.display();
            let provider = pool.table(&schema, &table).await.map_err(|e| source_error(e.as_ref(), &shown, &location.user))?;
            Ok::<_, Error>(provider)
        };
        build.await.map_err(Error::into_datafusion)
    }
}

/// datafusion-federation's rule, applied only where it is safe: to the largest
/// sub-plans that read a remote table and that a source can run — plain relational
/// operators (projection, filter, aggregate, sort, limit, join, distinct) over
/// expressions every SQL database has. A sub-plan with a lakehouse function
/// (`embed`, distances, `pii_kind`, …), a window, a subquery expression or a write
/// (`COPY`, `INSERT`) is split there: its inputs are federated, the rest runs here.
/// Plans without a remote table are left alone.
#[derive(Debug, Default)]
pub struct FederationGate {
    inner: datafusion_federation::FederationOptimizerRule,
}

fn reads_remote(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|p| {
        if let LogicalPlan::TableScan(scan) = p {
            if matches!(datafusion_federation::get_table_source(&scan.source), Ok(Some(_))) {
                found = true;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Scalar functions with the same meaning in DataFusion, MySQL and PostgreSQL.
const PORTABLE_FUNCTIONS: &[&str] = &["lower", "upper", "abs", "coalesce", "nullif", "round", "floor", "ceil", "btrim", "ltrim", "rtrim"];
const PORTABLE_AGGREGATES: &[&str] = &["count", "sum", "min", "max", "avg"];

/// Text that cannot reach a source intact whatever the quoting: the MySQL executor
/// strips every `"` from the statement, and NUL ends a string in the wire protocols.
/// An expression holding such a literal or name runs here instead (correct, only not
/// pushed down); everything else is quoted exactly (see [`QuoteExactly`]).
fn unquotable(s: &str) -> bool {
    s.contains(['"', '\0'])
}

fn portable_expr(e: &Expr) -> bool {
    let mut ok = true;
    let _ = e.apply(|e| {
        let fine = match e {
            Expr::Literal(datafusion::common::ScalarValue::Utf8(Some(s)) | datafusion::common::ScalarValue::Utf8View(Some(s)) | datafusion::common::ScalarValue::LargeUtf8(Some(s)), _) if unquotable(s) => false,
            Expr::Column(c) if unquotable(&c.name) || c.relation.as_ref().is_some_and(|r| unquotable(&r.to_string())) => false,
            Expr::Alias(a) if unquotable(&a.name) => false,
            Expr::Column(_) | Expr::Literal(..) | Expr::Alias(_) | Expr::Not(_) | Expr::IsNull(_)
            | Expr::IsNotNull(_) | Expr::IsTrue(_) | Expr::IsFalse(_) | Expr::IsNotTrue(_) | Expr::IsNotFalse(_)
            | Expr::Negative(_) | Expr::Between(_) | Expr::Case(_) | Expr::Cast(_) | Expr::InList(_) => true,
            // ILIKE is PostgreSQL's only; LIKE's escape character differs between
            // sources (MySQL has none under NO_BACKSLASH_ESCAPES).
            Expr::Like(l) => !l.case_insensitive && l.escape_char.is_none() && !matches!(l.pattern.as_ref(), Expr::Literal(v, _) if v.to_string().contains('\\')),
            // Operators that mean the same everywhere: `||` is OR in MySQL, and `/`
            // of integers truncates in DataFusion and PostgreSQL but not in MySQL.
            Expr::BinaryExpr(b) => {
                use datafusion::logical_expr::Operator::*;
                matches!(b.op, Eq | NotEq | Lt | LtEq | Gt | GtEq | And | Or | Plus | Minus | Multiply)
            }
            Expr::ScalarFunction(f) => PORTABLE_FUNCTIONS.contains(&f.name()),
            Expr::AggregateFunction(f) => {
                PORTABLE_AGGREGATES.contains(&f.func.name()) && f.params.order_by.is_empty() && f.params.filter.is_none()
            }
            _ => false,
        };
        if !fine {
            ok = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    ok
}

/// Whether a whole sub-plan can be sent to a source as SQL.
fn portable(plan: &LogicalPlan) -> bool {
    let mut ok = true;
    let _ = plan.apply(|p| {
        let node = matches!(
            p,
            LogicalPlan::Projection(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Sort(_)
                | LogicalPlan::Limit(_)
                | LogicalPlan::Join(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::TableScan(_)
                | LogicalPlan::Distinct(_)
        );
        // Names go into the SQL too (columns, aliases, the table). A projection of
        // common subexpressions becomes a derived table that the unparser's outer
        // SELECT still addresses by the base table's name (PostgreSQL: "missing
        // FROM-clause entry"): keep those here.
        let names_ok = !p.schema().fields().iter().any(|f| unquotable(f.name()) || f.name().starts_with("__common_expr"))
            && !matches!(p, LogicalPlan::TableScan(t) if unquotable(&t.table_name.to_string()))
            && !matches!(p, LogicalPlan::SubqueryAlias(a) if unquotable(&a.alias.to_string()));
        if !node || !names_ok || !p.expressions().iter().all(portable_expr) {
            ok = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    ok
}

impl FederationGate {
    fn federate(&self, plan: LogicalPlan, config: &dyn OptimizerConfig) -> DFResult<Transformed<LogicalPlan>> {
        if !reads_remote(&plan) {
            return Ok(Transformed::no(plan));
        }
        if portable(&plan) {
            return self.inner.rewrite(plan, config);
        }
        plan.map_children(|child| self.federate(child, config))
    }
}

impl OptimizerRule for FederationGate {
    fn name(&self) -> &str {
        "federation_gate"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, config: &dyn OptimizerConfig) -> DFResult<Transformed<LogicalPlan>> {
        self.federate(plan, config)
    }
}

/// DataFusion's default optimizer rules with the federation gate after
/// `scalar_subquery_to_join` (where datafusion-federation places its rule).
pub fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules = datafusion::optimizer::Optimizer::new().rules;
    let pos = rules.iter().position(|r| r.name() == "scalar_subquery_to_join").map(|p| p + 1).unwrap_or(rules.len());
    rules.insert(pos, Arc::new(FederationGate::default()));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_columns_take_the_plan_names() {
        let schema = Schema::new(vec![Field::new("status", DataType::Utf8, true), Field::new("sum(shop.orders.amount)", DataType::Float64, true)]);
        let sql = "SELECT `orders`.`status`, sum(`orders`.`amount`) FROM `db`.`orders` GROUP BY `orders`.`status`";
        assert_eq!(
            name_columns(sql, &schema, Quoting::Mysql { backslash_escapes: true }),
            "SELECT `orders`.`status` AS `status`, sum(`orders`.`amount`) AS `sum(shop.orders.amount)` FROM `db`.`orders` GROUP BY `orders`.`status`"
        );
        // Anything it does not understand is sent as it was.
        assert_eq!(name_columns("SELECT 1 UNION SELECT 2", &schema, Quoting::Mysql { backslash_escapes: true }), "SELECT 1 UNION SELECT 2");
        assert_eq!(name_columns("SELECT * FROM t", &schema, Quoting::Postgres), "SELECT * FROM t");
        assert_eq!(name_columns("not sql", &schema, Quoting::Postgres), "not sql");
    }

    #[test]
    fn mysql_types_map_by_width_sign_and_meaning() {
        assert_eq!(mysql_arrow_type("tinyint", "tinyint(1)", None, None), Some(DataType::Boolean));
        assert_eq!(mysql_arrow_type("tinyint", "tinyint(1) unsigned", None, None), Some(DataType::UInt8));
        assert_eq!(mysql_arrow_type("bigint", "bigint(20) unsigned", None, None), Some(DataType::UInt64));
        assert_eq!(mysql_arrow_type("decimal", "decimal(65,2)", Some(65), Some(2)), Some(DataType::Decimal256(65, 2)));
        assert_eq!(mysql_arrow_type("timestamp", "timestamp(6)", None, None), Some(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))));
        assert_eq!(mysql_arrow_type("uuid", "uuid", None, None), Some(DataType::Utf8));
        assert_eq!(mysql_arrow_type("vector", "vector(3)", None, None), None);
    }
}
