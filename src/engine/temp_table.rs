//! `CREATE TEMP[ORARY] TABLE [AS …]` and its `DROP TABLE` (#14). The rows live in
//! memory in the session, in its `pg_temp` schema (table_providers/temp.rs);
//! [`qualify`] points a statement's unqualified names at them, as PostgreSQL's search
//! path (pg_temp first) does;
//! DEFAULTs, SERIAL (a sequence of the session's own) and the constraints work as on
//! any table. Nothing is written to a bucket or the catalog, so a crash or a
//! disconnect leaves nothing behind.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{CreateMemoryTable, LogicalPlan};
use datafusion::catalog::SchemaProvider;

use super::{Engine, QueryResult, Session, create_table::TableDdl};
use crate::catalog::datasets;
use crate::error::{Error, Result};
use crate::table_providers::temp::TEMP_SCHEMA;

/// The name of a temporary table: unqualified or in `pg_temp`.
pub fn temp_table_name(name: &TableReference) -> Result<String> {
    match name.schema() {
        None | Some(TEMP_SCHEMA) => Ok(name.table().to_string()),
        Some(other) => Err(Error::State("42P16", format!("cannot create temporary relation in non-temporary schema \"{other}\""))),
    }
}

impl Engine {
    pub(super) async fn create_temp_table(&self, session: &Session, cmd: CreateMemoryTable, ddl: TableDdl) -> Result<QueryResult> {
        let name = temp_table_name(&cmd.name)?;
        if session.temp.schema.table_exist(&name) && !cmd.or_replace {
            if cmd.if_not_exists {
                session.notice(format!("relation \"{name}\" already exists, skipping"));
                return Ok(QueryResult::command("CREATE TABLE"));
            }
            return Err(Error::TableExists(name));
        }
        let schema = Arc::new(cmd.input.schema().as_arrow().clone());
        if let Some(f) = schema.fields().iter().find(|f| matches!(f.data_type(), DataType::FixedSizeList(_, 0))) {
            return Err(Error::InvalidParameter(format!("column \"{}\": type vector needs its dimension here, e.g. vector(3)", f.name())));
        }
        let is_empty = matches!(cmd.input.as_ref(), LogicalPlan::EmptyRelation(e) if !e.produce_one_row);
        let batches = if is_empty { vec![] } else { session.ctx.execute_logical_plan(cmd.input.as_ref().clone()).await?.collect().await? };
        // The plan's schema (names, nullability) over the rows it gave.
        let batches = batches
            .into_iter()
            .map(|b| datafusion::arrow::record_batch::RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let memory = MemTable::try_new(schema.clone(), vec![batches])?;
        let mut record = datasets::new_record(&name, "", String::new(), if is_empty { "create temporary table" } else { "create temporary table as" });
        record.access = crate::catalog::roles::Access::owned_by(&session.user);
        record.defaults = ddl.defaults;
        record.identity_always = ddl.identity_always;
        record.identity_by_default = ddl.identity_by_default;
        record.constraints = ddl.constraints;
        record.schema = Some(datasets::encode_schema(&schema)?);
        let provider = self.owned_table_over(Arc::new(memory), &record, true)?;
        if let Some(old) = session.temp.tables.lock().unwrap_or_else(|p| p.into_inner()).remove(&name) {
            drop_owned_sequences(session, &old.name);
        }
        for q in ddl.sequences {
            session.temp.sequences.add(q)?;
        }
        session.temp.schema.deregister_table(&name)?;
        session.temp.schema.register_table(name.clone(), provider)?;
        session.temp.tables.lock().unwrap_or_else(|p| p.into_inner()).insert(name, record);
        Ok(if is_empty { QueryResult::command("CREATE TABLE") } else { QueryResult::Command { tag: "SELECT".into(), rows: Some(rows) } })
    }

    /// `CREATE TEMP VIEW`: the session's own, in pg_temp, gone with the session.
    pub(super) fn create_temp_view(&self, session: &Session, cmd: datafusion::logical_expr::CreateView, definition: String) -> Result<QueryResult> {
        let name = temp_table_name(&cmd.name)?;
        if session.temp.schema.table_exist(&name) && !cmd.or_replace {
            return Err(Error::TableExists(name));
        }
        let provider = Arc::new(crate::table_providers::view::CheckedView::new(cmd.input.as_ref().clone(), Some(definition)));
        session.temp.schema.deregister_table(&name)?;
        session.temp.schema.register_table(name, provider)?;
        Ok(QueryResult::command("CREATE VIEW"))
    }

    /// DROP TABLE (or VIEW) of a temporary one: false when `name` is not one of the session's.
    pub(super) fn drop_temp_table(&self, session: &Session, name: &TableReference) -> Result<bool> {
        if !matches!(name.schema(), None | Some(TEMP_SCHEMA)) {
            return Ok(false);
        }
        let table = name.table();
        if session.temp.schema.deregister_table(table)?.is_none() {
            return Ok(false);
        }
        session.temp.tables.lock().unwrap_or_else(|p| p.into_inner()).remove(table);
        drop_owned_sequences(session, table);
        Ok(true)
    }
}

fn drop_owned_sequences(session: &Session, table: &str) {
    for q in session.temp.sequences.records() {
        if q.owned_by.as_ref().is_some_and(|(t, _)| t == table) {
            session.temp.sequences.remove(&q.name);
        }
    }
}

/// Qualify the unqualified table names of `statement` that name one of the session's
/// temporary tables as `pg_temp.<name>` (a CTE of the same name keeps its name).
pub fn qualify(statement: &mut datafusion::sql::sqlparser::ast::Statement, session: &Session) {
    use datafusion::sql::sqlparser::ast::{Ident, ObjectName, ObjectNamePart, Visit, VisitMut, Visitor, VisitorMut};
    use std::ops::ControlFlow;
    let temp: Vec<String> = session.temp.schema.table_names();
    if temp.is_empty() {
        return;
    }
    struct Ctes(Vec<String>);
    impl Visitor for Ctes {
        type Break = ();
        fn pre_visit_query(&mut self, q: &datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
            if let Some(with) = &q.with {
                self.0.extend(with.cte_tables.iter().map(|c| c.alias.name.value.clone()));
            }
            ControlFlow::Continue(())
        }
    }
    let mut ctes = Ctes(vec![]);
    let _ = Visit::visit(&*statement, &mut ctes);
    struct Qualify<'a> {
        temp: &'a [String],
        ctes: &'a [String],
    }
    impl VisitorMut for Qualify<'_> {
        type Break = ();
        fn pre_visit_relation(&mut self, name: &mut ObjectName) -> ControlFlow<()> {
            if let [ObjectNamePart::Identifier(i)] = name.0.as_slice() {
                let n = if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() };
                if self.temp.contains(&n) && !self.ctes.iter().any(|c| c.eq_ignore_ascii_case(&n)) {
                    *name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(TEMP_SCHEMA)), ObjectNamePart::Identifier(Ident::with_quote('"', n))]);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Qualify { temp: &temp, ctes: &ctes.0 });
}
