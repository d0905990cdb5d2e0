//! `CREATE MATERIALIZED VIEW name AS query`, `REFRESH MATERIALIZED VIEW name`, `DROP
//! MATERIALIZED VIEW name` (#14): a table written from its query (as CREATE TABLE AS
//! does) that keeps the query, so REFRESH can write it again.

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{CreateView, ObjectName};
use datafusion::sql::TableReference;

use super::{Engine, QueryResult, Session};
use crate::error::{Error, Result};

impl Engine {
    pub(super) async fn create_materialized_view(&self, session: &Session, cv: &CreateView) -> Result<QueryResult> {
        if !cv.columns.is_empty() {
            return Err(Error::NotSupported("column names in CREATE MATERIALIZED VIEW (alias them in the query)".into()));
        }
        let query = cv.query.to_string();
        let exists = if cv.if_not_exists { " IF NOT EXISTS" } else { "" };
        let sql = format!("CREATE TABLE{exists} {} AS {query}", cv.name);
        let out = self.run_one(session, &sql).await?;
        self.mark_materialized(&cv.name, query)?;
        Ok(match out {
            QueryResult::Command { rows, .. } => QueryResult::Command { tag: "SELECT".into(), rows },
            other => other,
        })
    }

    /// REFRESH MATERIALIZED VIEW [CONCURRENTLY] name: its query written again.
    pub(super) async fn refresh_materialized_view(&self, session: &Session, sql: &str) -> Result<QueryResult> {
        let words: Vec<&str> = sql.split_whitespace().collect();
        let rest: Vec<&str> = words.iter().skip(3).copied().filter(|w| !w.eq_ignore_ascii_case("concurrently")).collect();
        let [name] = rest.as_slice() else {
            return Err(Error::Syntax("REFRESH MATERIALIZED VIEW name".into()));
        };
        let name = name.trim_end_matches(';');
        let parsed = datafusion::sql::sqlparser::parser::Parser::new(&datafusion::sql::sqlparser::dialect::PostgreSqlDialect {})
            .try_with_sql(name)
            .and_then(|mut p| p.parse_object_name(false))
            .map_err(|e| Error::Syntax(e.to_string()))?;
        let key = self.dataset_name(&TableReference::from(parsed.to_string().as_str()))?;
        let rec = self.catalog.dataset(&key).ok_or_else(|| Error::TableNotFound(key.clone()))?;
        let query = rec.materialized.clone().ok_or_else(|| Error::WrongObjectType(format!("\"{key}\" is not a materialized view")))?;
        self.require_owner(session, &crate::catalog::roles::Object::Table(key.clone()))?;
        self.run_one(session, &format!("CREATE OR REPLACE TABLE {parsed} AS {query}")).await?;
        self.mark_materialized(&parsed, query)?;
        Ok(QueryResult::command("REFRESH MATERIALIZED VIEW"))
    }

    fn mark_materialized(&self, name: &ObjectName, query: String) -> Result<()> {
        let key = self.dataset_name(&TableReference::from(name.to_string().as_str()))?;
        self.catalog.update(|s| {
            if let Some(d) = s.datasets.get_mut(&key) {
                d.materialized = Some(query);
                d.source = "materialized view".into();
            }
            Ok(())
        })
    }

    /// DROP MATERIALIZED VIEW [IF EXISTS] a, b.
    pub(super) async fn drop_materialized_views(&self, session: &Session, names: &[ObjectName], if_exists: bool) -> Result<QueryResult> {
        for n in names {
            let key = self.dataset_name(&TableReference::from(n.to_string().as_str()))?;
            match self.catalog.dataset(&key) {
                Some(rec) if rec.materialized.is_some() => {
                    self.run_one(session, &format!("DROP TABLE {n}")).await?;
                }
                Some(_) => return Err(Error::WrongObjectType(format!("\"{key}\" is not a materialized view"))),
                None if if_exists => session.notice(format!("materialized view \"{key}\" does not exist, skipping")),
                None => return Err(Error::TableNotFound(key)),
            }
        }
        Ok(QueryResult::command("DROP MATERIALIZED VIEW"))
    }

    /// Run one statement of ours (its text) in `session`.
    pub(super) async fn run_one(&self, session: &Session, sql: &str) -> Result<QueryResult> {
        let mut statements = self.parse(sql)?;
        let statement: DFStatement = statements.pop().ok_or_else(|| Error::Syntax("empty statement".into()))?;
        Box::pin(self.execute_statement(session, statement)).await
    }
}
