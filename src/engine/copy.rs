//! `COPY t [(cols)] FROM STDIN [WHERE condition]` and `COPY {t [(cols)] | (query)} TO STDOUT` (#14):
//! the statement, its options and its rows. The bytes on the wire (text, csv,
//! binary) are the server's (server/copy.rs); here a COPY FROM becomes an ordinary
//! `INSERT INTO t (cols) SELECT * FROM <rows as they arrive>` — so privileges,
//! defaults, SERIAL, constraints, unique keys and index catch-up are INSERT's — and
//! a COPY TO an ordinary query.
//!
//! The arriving rows are a table of the session's `pg_temp` schema for the
//! statement's duration, fed through a bounded channel: memory stays bounded however
//! long the input is (a table with CHECK or UNIQUE constraints still buffers its
//! INSERT to check it, as any INSERT does). A COPY that does not end with the
//! client's CopyDone (an error, CopyFail, a dropped connection) fails its INSERT,
//! and nothing of it is written.
//! COPY to or from a server file stays DataFusion's `COPY … TO 'path'`, superuser
//! only (engine.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::SchemaProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Ident, ObjectName, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::{Engine, Prepared, QueryResult, Session};
use crate::error::{Error, Result};
use crate::table_providers::temp::TEMP_SCHEMA;

/// COPY's three formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Csv,
    Binary,
}

/// COPY's options, with PostgreSQL's defaults for the format.
#[derive(Debug, Clone)]
pub struct Options {
    pub format: Format,
    pub delimiter: u8,
    pub null: String,
    pub header: bool,
    pub quote: u8,
    pub escape: u8,
    /// FORCE_QUOTE: quote these columns' non-NULL values (`*`: all).
    pub force_quote: Vec<String>,
    pub force_quote_all: bool,
    /// FORCE_NOT_NULL / FORCE_NULL (csv, COPY FROM): how a column's NULL string reads.
    pub force_not_null: Vec<String>,
    pub force_null: Vec<String>,
}

/// Rows arriving for a COPY FROM: send each batch, then `None` at CopyDone.
pub type RowSender = mpsc::Sender<Option<RecordBatch>>;

/// A COPY FROM STDIN ready for its data.
pub struct CopyIn {
    pub options: Options,
    /// The columns the input carries, with the target table's types.
    pub schema: SchemaRef,
    pub rows: RowSender,
    /// The INSERT reading the rows, run by [`Engine::run_copy_in`].
    insert: Prepared,
    /// Removes the rows' table from pg_temp when the COPY ends (moved into the
    /// INSERT's task once it runs).
    source: Option<Deregister>,
}

/// A COPY TO STDOUT: its rows, to be written in `options.format`.
pub struct CopyOut {
    pub options: Options,
    pub schema: SchemaRef,
    pub stream: SendableRecordBatchStream,
}

/// Is `sql` (one statement) a COPY from STDIN or to STDOUT?
pub fn is_copy_stdio(sql: &str) -> bool {
    if !sql.trim_start().get(..4).is_some_and(|w| w.eq_ignore_ascii_case("copy")) {
        return false;
    }
    matches!(parse(sql), Ok(Statement::Copy { target: CopyTarget::Stdin | CopyTarget::Stdout, .. }))
}

/// The identifier standing for FORCE_QUOTE's `*` (sqlparser takes only names there).
const ALL_COLUMNS: &str = "lakehouse_all_columns";

/// `COPY … FROM STDIN … WHERE condition` (PostgreSQL 12's): the statement without its
/// WHERE (sqlparser does not take one), and the condition. The WHERE is the first one
/// outside quotes and parentheses.
fn split_where(sql: &str) -> (&str, Option<&str>) {
    let b = sql.as_bytes();
    let (mut depth, mut quote) = (0i32, None::<u8>);
    for i in 0..b.len() {
        match (quote, b[i]) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, c @ (b'\'' | b'"')) => quote = Some(c),
            (None, b'(') => depth += 1,
            (None, b')') => depth -= 1,
            (None, _) if depth == 0
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
                && b.len() >= i + 6
                && b[i..i + 5].eq_ignore_ascii_case(b"where")
                && (b[i + 5].is_ascii_whitespace() || b[i + 5] == b'(') =>
            {
                return (sql[..i].trim_end(), Some(sql[i + 5..].trim()));
            }
            _ => {}
        }
    }
    (sql, None)
}

fn parse(sql: &str) -> Result<Statement> {
    let sql = all_columns(split_where(sql.trim().trim_end_matches(';')).0);
    // sqlparser reads rows written after `FROM STDIN;` (pg_dump's scripts); ours come
    // as CopyData, so the statement ends at its text's end.
    let mut parser = Parser::new(&PostgreSqlDialect {}).try_with_sql(&sql).map_err(|e| Error::Syntax(e.to_string()))?;
    let s = parser.parse_statement().map_err(|e| Error::Syntax(e.to_string()))?;
    if parser.peek_token_ref().token != datafusion::sql::sqlparser::tokenizer::Token::EOF {
        return Err(Error::Syntax(format!("at or near \"{}\" in COPY", parser.peek_token_ref().token)));
    }
    Ok(s)
}

/// `FORCE_QUOTE *` / `FORCE QUOTE *` / `FORCE_QUOTE (*)` with [`ALL_COLUMNS`] for the star.
fn all_columns(sql: &str) -> String {
    let lower = sql.to_ascii_lowercase();
    let mut out = String::with_capacity(sql.len());
    let mut at = 0;
    while let Some(found) = ["force_quote", "force quote"].iter().filter_map(|k| lower[at..].find(k).map(|i| (at + i, k.len()))).min() {
        let (start, len) = found;
        let after = start + len;
        let rest = &sql[after..];
        let trimmed = rest.trim_start();
        let (star, skip) = if let Some(r) = trimmed.strip_prefix('*') {
            (true, rest.len() - r.len())
        } else if let Some(r) = trimmed.strip_prefix('(').map(str::trim_start).and_then(|r| r.strip_prefix('*')).map(str::trim_start).and_then(|r| r.strip_prefix(')')) {
            (true, rest.len() - r.len())
        } else {
            (false, 0)
        };
        out.push_str(&sql[at..after]);
        if star {
            out.push_str(if sql[start..after].contains('_') { " (" } else { " " });
            out.push_str(ALL_COLUMNS);
            if sql[start..after].contains('_') {
                out.push(')');
            }
        }
        at = after + skip;
    }
    out.push_str(&sql[at..]);
    out
}

fn names(idents: &[Ident]) -> Vec<String> {
    idents.iter().map(normal_name).collect()
}

/// An identifier as PostgreSQL folds it: quoted as written, unquoted in lower case.
fn normal_name(i: &Ident) -> String {
    if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }
}

fn one_byte(what: &str, c: char) -> Result<u8> {
    if c.is_ascii() {
        Ok(c as u8)
    } else {
        Err(Error::Unsupported(format!("COPY {what} must be a single one-byte character")))
    }
}

/// The options of a COPY statement, checked as PostgreSQL checks them.
pub fn options(options: &[CopyOption], legacy: &[CopyLegacyOption], to: bool) -> Result<Options> {
    let mut format = Format::Text;
    let (mut delimiter, mut null, mut header, mut quote, mut escape) = (None, None, false, None, None);
    let (mut force_quote, mut force_quote_all, mut force_not_null, mut force_null) = (vec![], false, vec![], vec![]);
    let quote_all = |cols: &[Ident]| matches!(cols, [c] if c.value == ALL_COLUMNS && c.quote_style.is_none());
    for o in options {
        match o {
            CopyOption::Format(f) => {
                format = match f.value.to_lowercase().as_str() {
                    "text" => Format::Text,
                    "csv" => Format::Csv,
                    "binary" => Format::Binary,
                    other => return Err(Error::InvalidParameter(format!("COPY format \"{other}\" not recognized"))),
                }
            }
            CopyOption::Freeze(_) => {}
            CopyOption::Delimiter(c) => delimiter = Some(one_byte("delimiter", *c)?),
            CopyOption::Null(n) => null = Some(n.clone()),
            CopyOption::Header(h) => header = *h,
            CopyOption::Quote(c) => quote = Some(one_byte("quote", *c)?),
            CopyOption::Escape(c) => escape = Some(one_byte("escape", *c)?),
            CopyOption::ForceQuote(cols) if quote_all(cols) => force_quote_all = true,
            CopyOption::ForceQuote(cols) => force_quote = names(cols),
            CopyOption::ForceNotNull(cols) => force_not_null = names(cols),
            CopyOption::ForceNull(cols) => force_null = names(cols),
            CopyOption::Encoding(e) => {
                let e = e.to_uppercase().replace(['-', '_'], "");
                if e != "UTF8" && e != "SQLASCII" {
                    return Err(Error::Unsupported(format!("COPY encoding {e}: lakehouse reads and writes UTF8")));
                }
            }
        }
    }
    for o in legacy {
        match o {
            CopyLegacyOption::Binary => format = Format::Binary,
            CopyLegacyOption::Delimiter(c) => delimiter = Some(one_byte("delimiter", *c)?),
            CopyLegacyOption::Null(n) => null = Some(n.clone()),
            CopyLegacyOption::Header => header = true,
            CopyLegacyOption::Csv(csv) => {
                format = Format::Csv;
                for c in csv {
                    match c {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(q) => quote = Some(one_byte("quote", *q)?),
                        CopyLegacyCsvOption::Escape(q) => escape = Some(one_byte("escape", *q)?),
                        CopyLegacyCsvOption::ForceQuote(cols) if quote_all(cols) => force_quote_all = true,
                        CopyLegacyCsvOption::ForceQuote(cols) => force_quote = names(cols),
                        CopyLegacyCsvOption::ForceNotNull(cols) => force_not_null = names(cols),
                    }
                }
            }
            other => return Err(Error::Unsupported(format!("COPY option {other}"))),
        }
    }
    let csv = format == Format::Csv;
    if format == Format::Binary && (delimiter.is_some() || null.is_some() || header) {
        return Err(Error::Syntax("cannot specify DELIMITER, NULL or HEADER in BINARY mode".into()));
    }
    if !csv && (quote.is_some() || escape.is_some()) {
        return Err(Error::Unsupported("COPY quote and escape available only in CSV mode".into()));
    }
    if format == Format::Text && header {
        return Err(Error::Unsupported("COPY HEADER available only in CSV mode".into()));
    }
    if !csv && !(force_quote.is_empty() && !force_quote_all && force_not_null.is_empty() && force_null.is_empty()) {
        return Err(Error::Unsupported("COPY FORCE_QUOTE, FORCE_NOT_NULL and FORCE_NULL are available only in CSV mode".into()));
    }
    if (force_quote_all || !force_quote.is_empty()) && !to {
        return Err(Error::Unsupported("COPY FORCE_QUOTE only available using COPY TO".into()));
    }
    if (!force_not_null.is_empty() || !force_null.is_empty()) && to {
        return Err(Error::Unsupported("COPY FORCE_NOT_NULL and FORCE_NULL only available using COPY FROM".into()));
    }
    let delimiter = delimiter.unwrap_or(if csv { b',' } else { b'\t' });
    let null = null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() });
    let quote = quote.unwrap_or(b'"');
    let escape = escape.unwrap_or(quote);
    if matches!(delimiter, b'\r' | b'\n') || (!csv && (delimiter == b'\\' || delimiter.is_ascii_alphanumeric())) {
        return Err(Error::Unsupported(format!("COPY delimiter cannot be {:?}", delimiter as char)));
    }
    if null.contains(['\r', '\n']) {
        return Err(Error::Unsupported("COPY null representation cannot use newline or carriage return".into()));
    }
    if csv && delimiter == quote {
        return Err(Error::Unsupported("COPY delimiter and quote must be different".into()));
    }
    if null.as_bytes().contains(&delimiter) {
        return Err(Error::Unsupported("COPY delimiter character must not appear in the NULL specification".into()));
    }
    Ok(Options { format, delimiter, null, header, quote, escape, force_quote, force_quote_all, force_not_null, force_null })
}

/// The rows of a COPY FROM as a one-partition stream for the INSERT's scan: batches
/// until the client's `None`; a channel closed before it is an error.
struct Arriving {
    schema: SchemaRef,
    rows: Mutex<Option<mpsc::Receiver<Option<RecordBatch>>>>,
}

impl std::fmt::Debug for Arriving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CopyFromStdin")
    }
}

impl PartitionStream for Arriving {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let rows = self.rows.lock().take();
        let stream = futures::stream::unfold(rows, |rows| async move {
            let mut rx = rows?;
            match rx.recv().await {
                Some(Some(batch)) => Some((Ok(batch), Some(rx))),
                Some(None) => None,
                None => Some((Err(Error::State("57014", "COPY from stdin ended before its data (CopyFail, an error or a disconnect)".into()).into_datafusion()), None)),
            }
        });
        // A second scan of the same rows (never planned) would see none: say so.
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

static COPIES: AtomicU64 = AtomicU64::new(0);

impl Engine {
    /// `COPY … FROM STDIN` / `COPY … TO STDOUT` (one statement's text).
    pub(super) async fn copy(&self, session: &Session, sql: &str) -> Result<QueryResult> {
        let Statement::Copy { source, to, target, options: opts, legacy_options, .. } = parse(sql)? else {
            return Err(Error::Internal("not a COPY statement".into()));
        };
        let options = options(&opts, &legacy_options, to)?;
        if to && split_where(sql.trim().trim_end_matches(';')).1.is_some() {
            return Err(Error::NotSupported("WHERE clause in COPY TO (write a query: COPY (SELECT … WHERE …) TO STDOUT)".into()));
        }
        match (source, to, target) {
            (source, true, CopyTarget::Stdout) => {
                let query = match source {
                    CopySource::Query(q) => q.to_string(),
                    CopySource::Table { table_name, columns } => {
                        let cols = if columns.is_empty() { "*".to_string() } else { columns.iter().map(|c| Ident::with_quote('"', normal_name(c)).to_string()).collect::<Vec<_>>().join(", ") };
                        format!("SELECT {cols} FROM {table_name}")
                    }
                };
                let mut results = self.execute_one(session, &query).await?;
                match results.pop() {
                    Some(QueryResult::Rows { schema, stream }) => Ok(QueryResult::CopyOut(CopyOut { options, schema, stream })),
                    _ => Err(Error::Syntax("COPY (…) TO STDOUT needs a query that returns rows".into())),
                }
            }
            (CopySource::Table { table_name, columns }, false, CopyTarget::Stdin) => {
                let condition = split_where(sql.trim().trim_end_matches(';')).1;
                self.copy_in(session, &table_name, &columns, options, condition).await
            }
            _ => Err(Error::Internal("COPY to or from a file goes to DataFusion".into())),
        }
    }

    async fn execute_one(&self, session: &Session, sql: &str) -> Result<Vec<QueryResult>> {
        let (results, err) = Box::pin(self.execute(session, sql)).await;
        match err {
            Some(e) => Err(e),
            None => Ok(results),
        }
    }

    async fn copy_in(&self, session: &Session, table: &ObjectName, columns: &[Ident], options: Options, condition: Option<&str>) -> Result<QueryResult> {
        // The target's columns and types, as the INSERT will resolve the name
        // (a temporary table first).
        let mut statement = Statement::Insert(datafusion::sql::sqlparser::ast::Insert {
            table: datafusion::sql::sqlparser::ast::TableObject::TableName(table.clone()),
            ..empty_insert()
        });
        super::temp_table::qualify(&mut statement, session);
        let Statement::Insert(ins) = &statement else { unreachable!() };
        let datafusion::sql::sqlparser::ast::TableObject::TableName(target) = &ins.table else { unreachable!() };
        let reference = object_name_reference(target);
        let provider = session.ctx.table_provider(reference.clone()).await.map_err(|_| Error::TableNotFound(table.to_string()))?;
        let table_schema = provider.schema();
        let fields: Vec<Field> = if columns.is_empty() {
            table_schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect()
        } else {
            let mut out = vec![];
            for c in columns {
                let name = normal_name(c);
                let f = table_schema
                    .field_with_name(&name)
                    .map_err(|_| Error::State("42703", format!("column \"{name}\" of relation \"{}\" does not exist", reference.table())))?;
                if out.iter().any(|o: &Field| o.name() == &name) {
                    return Err(Error::State("42701", format!("column \"{name}\" specified more than once")));
                }
                out.push(f.clone().with_nullable(true));
            }
            out
        };
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let (tx, rx) = mpsc::channel(4);
        let source = format!("copy_from_stdin_{}", COPIES.fetch_add(1, Ordering::Relaxed));
        let arriving = Arc::new(Arriving { schema: schema.clone(), rows: Mutex::new(Some(rx)) });
        let table_provider = StreamingTable::try_new(schema.clone(), vec![arriving])?;
        session.temp.schema.register_table(source.clone(), Arc::new(table_provider))?;
        let column_list = schema.fields().iter().map(|f| Ident::with_quote('"', f.name()).to_string()).collect::<Vec<_>>().join(", ");
        let filter = condition.map(|c| format!(" WHERE {c}")).unwrap_or_default();
        let sql = format!("INSERT INTO {target} ({column_list}) SELECT * FROM {TEMP_SCHEMA}.\"{source}\"{filter}");
        let insert = match Box::pin(self.prepare(session, &sql)).await {
            Ok(p) => p,
            Err(e) => {
                let _ = session.temp.schema.deregister_table(&source);
                return Err(e);
            }
        };
        let source = Some(Deregister(session.temp.schema.clone(), source));
        Ok(QueryResult::CopyIn(CopyIn { options, schema, rows: tx, insert, source }))
    }

    /// Run a COPY FROM's INSERT on the query runtime while the rows arrive; it ends
    /// when the sender sends `None` (or is dropped: then it fails). Answers the
    /// number of rows written.
    pub fn run_copy_in(self: &Arc<Self>, session: &Arc<Session>, copy: &mut CopyIn) -> impl std::future::Future<Output = Result<usize>> + Send + 'static {
        let (engine, s, insert, source) = (self.clone(), session.clone(), copy.insert.clone(), copy.source.take());
        let work = self.executor.spawn(async move {
            let _gone = source;
            match engine.execute_prepared(&s, &insert, vec![]).await? {
                QueryResult::Command { rows, .. } => Ok(rows.unwrap_or(0)),
                _ => Err(Error::Internal("COPY's INSERT returned rows".into())),
            }
        });
        async move { work.await? }
    }
}

/// Removes a COPY's rows table from pg_temp however its INSERT ends.
struct Deregister(Arc<datafusion::catalog::MemorySchemaProvider>, String);

impl Drop for Deregister {
    fn drop(&mut self) {
        let _ = self.0.deregister_table(&self.1);
    }
}

fn object_name_reference(name: &ObjectName) -> datafusion::common::TableReference {
    let parts: Vec<String> = name.0.iter().filter_map(|p| p.as_ident()).map(normal_name).collect();
    match parts.as_slice() {
        [t] => datafusion::common::TableReference::bare(t.clone()),
        [s, t] => datafusion::common::TableReference::partial(s.clone(), t.clone()),
        [c, s, t] => datafusion::common::TableReference::full(c.clone(), s.clone(), t.clone()),
        _ => datafusion::common::TableReference::bare(name.to_string()),
    }
}

fn empty_insert() -> datafusion::sql::sqlparser::ast::Insert {
    let Ok(Statement::Insert(ins)) = parse("INSERT INTO t DEFAULT VALUES") else { unreachable!("a constant statement parses") };
    ins
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(sql: &str) -> Result<Options> {
        let Statement::Copy { options: o, legacy_options: l, to, .. } = parse(sql)? else { panic!() };
        options(&o, &l, to)
    }

    #[test]
    fn options_take_both_syntaxes_with_postgres_defaults() {
        let o = opts("COPY t FROM STDIN").unwrap();
        assert_eq!((o.format, o.delimiter, o.null.as_str(), o.header), (Format::Text, b'\t', "\\N", false));
        let o = opts("COPY t FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER ';', NULL 'x')").unwrap();
        assert_eq!((o.format, o.delimiter, o.null.as_str(), o.header, o.quote), (Format::Csv, b';', "x", true, b'"'));
        let o = opts("COPY t TO STDOUT WITH CSV HEADER FORCE QUOTE *").unwrap();
        assert!(o.force_quote_all && o.header && o.null.is_empty());
        assert!(opts("COPY t TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *)").unwrap().force_quote_all);
        assert_eq!(opts("COPY t TO STDOUT WITH (FORMAT csv, FORCE_QUOTE (a, \"B\"))").unwrap().force_quote, ["a", "B"]);
        assert!(opts("COPY t TO STDOUT WITH CSV bogus").is_err());
        assert_eq!(opts("COPY t FROM STDIN BINARY").unwrap().format, Format::Binary);
        assert!(opts("COPY t FROM STDIN (FORMAT binary, HEADER)").is_err());
        assert!(opts("COPY t FROM STDIN (FORMAT text, QUOTE '\"')").is_err());
        assert!(opts("COPY t FROM STDIN (FORMAT xml)").is_err());
        assert!(is_copy_stdio("copy t (a, b) from stdin;"));
        assert!(is_copy_stdio("COPY (SELECT 1) TO STDOUT WITH (FORMAT binary)"));
        assert!(!is_copy_stdio("COPY t TO '/tmp/x.parquet'"));
    }
}
