//! `CREATE [UNIQUE] INDEX … [USING btree | hash] (columns)` and its `DROP INDEX` (#14).
//!
//! Tools create these for every foreign key and lookup column (SQLAlchemy's and
//! Django's schemas, pgvector's examples). The index is a catalog record on its
//! table, shown by the catalog views; a UNIQUE one is enforced on every INSERT
//! (23505), and creating one over duplicate rows fails as in PostgreSQL. Scans do
//! not use them yet: a query gives the same rows with or without one.

use datafusion::catalog::SchemaProvider;
use datafusion::common::TableReference;
use datafusion::sql::sqlparser::ast::{self, CreateIndex};

use super::{Engine, QueryResult, Session};
use crate::catalog::CatalogState;
use crate::catalog::datasets::ScalarIndexRecord;
use crate::error::{Error, Result};

/// Is `key` (`name`, or `schema.name`) a relation already: a table, view, sequence,
/// index, or the index of a PRIMARY KEY / UNIQUE constraint, in that schema
/// (PostgreSQL's relations share one namespace per schema)?
pub fn relation_taken(state: &CatalogState, key: &str) -> bool {
    fn in_schema<'a>(state: &CatalogState, k: &'a str) -> (Option<&'a str>, &'a str) {
        crate::catalog::schemas::split(k, |s| state.schemas.contains_key(s))
    }
    let (schema, bare) = in_schema(state, key);
    state.datasets.contains_key(key)
        || state.indexes.contains_key(key)
        || state.sequences.contains_key(key)
        || state.datasets.values().any(|d| {
            in_schema(state, &d.name).0 == schema
                && (d.indexes.iter().any(|i| i.name == bare) || d.constraints.iter().any(|c| (c.kind == "p" || c.kind == "u") && c.name == bare))
        })
}

/// The schema prefix of a dataset key (`s.` or nothing).
fn prefix_of<'a>(state: &CatalogState, key: &'a str) -> (&'a str, &'a str) {
    match crate::catalog::schemas::split(key, |s| state.schemas.contains_key(s)) {
        (Some(s), t) => (&key[..s.len() + 1], t),
        (None, t) => ("", t),
    }
}

/// PostgreSQL's name for an unnamed index on table `key`: `<table>_<columns>_idx`,
/// numbered when taken in the table's schema.
pub fn default_index_name(state: &CatalogState, key: &str, columns: &[String]) -> String {
    let (prefix, table) = prefix_of(state, key);
    let base = format!("{table}_{}_idx", columns.join("_"));
    let mut name = base.clone();
    let mut n = 1;
    while relation_taken(state, &format!("{prefix}{name}")) {
        name = format!("{base}{n}");
        n += 1;
    }
    name
}

fn column_name(c: &ast::IndexColumn) -> Result<String> {
    match &c.column.expr {
        ast::Expr::Identifier(i) => Ok(if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }),
        other => Err(Error::NotSupported(format!("indexes on expressions ({other}); index a column"))),
    }
}

impl Engine {
    pub(super) async fn create_scalar_index(&self, session: &Session, ci: &CreateIndex, method: &str) -> Result<QueryResult> {
        if matches!(method, "gin" | "gist" | "brin" | "spgist" | "ivfflat" | "ivf_pq" | "ivf_flat" | "ivf_hnsw_sq") {
            return Err(Error::NotSupported(format!(
                "index method {method} (lakehouse has btree, hash and, for vectors, hnsw: CREATE INDEX … USING hnsw (col vector_l2_ops))"
            )));
        }
        if !matches!(method, "btree" | "hash") {
            return Err(Error::UndefinedObject(format!(
                "access method \"{method}\" does not exist; lakehouse has btree, hash and hnsw (vectors)"
            )));
        }
        if ci.predicate.is_some() {
            return Err(Error::NotSupported("partial indexes (CREATE INDEX … WHERE)".into()));
        }
        if !ci.include.is_empty() {
            return Err(Error::NotSupported("INCLUDE columns in an index".into()));
        }
        if method == "hash" && (ci.unique || ci.columns.len() != 1) {
            return Err(Error::NotSupported("hash indexes are on one column and not unique (PostgreSQL's rule)".into()));
        }
        let columns: Vec<String> = ci.columns.iter().map(column_name).collect::<Result<_>>()?;
        let descending: Vec<bool> = ci.columns.iter().map(|c| c.column.options.asc == Some(false)).collect();
        let reference = TableReference::from(ci.table_name.to_string());
        if reference.schema() == Some(crate::table_providers::temp::TEMP_SCHEMA) {
            return self.create_temp_index(session, ci, method, reference.table(), columns, descending).await;
        }
        let table = self.dataset_name(&reference)?;
        self.require_owner(session, &crate::catalog::roles::Object::Table(table.clone()))?;
        let _ddl = self.ddl.lock().await;
        let rec = self.catalog.dataset(&table).ok_or_else(|| Error::TableNotFound(table.clone()))?;
        if !rec.owned {
            return Err(Error::NotSupported(format!(
                "indexes on {} (only tables created in lakehouse can be indexed)",
                if rec.is_view() { "views" } else { "external tables" }
            )));
        }
        let schema = rec.arrow_schema()?.ok_or_else(|| Error::Internal(format!("dataset {table} has no schema")))?;
        for c in &columns {
            if schema.field_with_name(c).is_err() {
                return Err(Error::ColumnNotFound(format!("\"{c}\" does not exist")));
            }
        }
        let state = self.catalog.snapshot();
        let name = match &ci.name {
            Some(n) => n.0.last().and_then(|p| p.as_ident()).map(|i| if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }).unwrap_or_default(),
            None => default_index_name(&state, &table, &columns),
        };
        let (prefix, _) = prefix_of(&state, &table);
        if relation_taken(&state, &format!("{prefix}{name}")) {
            if ci.if_not_exists {
                session.notice(format!("relation \"{name}\" already exists, skipping"));
                return Ok(QueryResult::command("CREATE INDEX"));
            }
            return Err(Error::TableExists(name));
        }
        if ci.unique {
            self.check_no_duplicates(session, &self.sql_ref(&table), &name, &columns).await?;
        }
        let index = ScalarIndexRecord {
            name,
            method: method.to_string(),
            columns,
            unique: ci.unique,
            descending,
            created_at: crate::catalog::now_rfc3339(),
            comment: None,
        };
        let catalog = self.catalog.clone();
        crate::catalog::blocking(move || {
            catalog.update(|s| {
                let d = s.datasets.get_mut(&table).ok_or_else(|| Error::TableNotFound(table.clone()))?;
                d.indexes.push(index);
                Ok(())
            })
        })
        .await?;
        self.reload_owned_table(&rec.name).await?;
        Ok(QueryResult::command("CREATE INDEX"))
    }

    /// An index on one of the session's temporary tables: kept with its definition.
    async fn create_temp_index(&self, session: &Session, ci: &CreateIndex, method: &str, table: &str, columns: Vec<String>, descending: Vec<bool>) -> Result<QueryResult> {
        let Some(rec) = session.temp.tables.lock().unwrap_or_else(|p| p.into_inner()).get(table).cloned() else {
            return Err(Error::TableNotFound(table.to_string()));
        };
        let schema = rec.arrow_schema()?.ok_or_else(|| Error::Internal(format!("temporary table {table} has no schema")))?;
        for c in &columns {
            if schema.field_with_name(c).is_err() {
                return Err(Error::ColumnNotFound(format!("\"{c}\" does not exist")));
            }
        }
        let taken = |n: &str| rec.indexes.iter().any(|i| i.name == n) || rec.constraints.iter().any(|c| c.name == n) || session.temp.schema.table_exist(n);
        let name = match &ci.name {
            Some(n) => n.0.last().and_then(|p| p.as_ident()).map(|i| if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }).unwrap_or_default(),
            None => {
                let base = format!("{table}_{}_idx", columns.join("_"));
                let mut name = base.clone();
                let mut n = 1;
                while taken(&name) {
                    name = format!("{base}{n}");
                    n += 1;
                }
                name
            }
        };
        if taken(&name) {
            if ci.if_not_exists {
                session.notice(format!("relation \"{name}\" already exists, skipping"));
                return Ok(QueryResult::command("CREATE INDEX"));
            }
            return Err(Error::TableExists(name));
        }
        if ci.unique {
            let relation = format!("{}.\"{}\"", crate::table_providers::temp::TEMP_SCHEMA, table.replace('"', "\"\""));
            self.check_no_duplicates(session, &relation, &name, &columns).await?;
        }
        let mut rec = rec;
        rec.indexes.push(ScalarIndexRecord { name, method: method.to_string(), columns, unique: ci.unique, descending, created_at: crate::catalog::now_rfc3339(), comment: None });
        let current = datafusion::catalog::SchemaProvider::table(session.temp.schema.as_ref(), table).await?.ok_or_else(|| Error::TableNotFound(table.to_string()))?;
        let inner = current.downcast_ref::<crate::table_providers::owned::OwnedTable>().map(|o| o.inner()).unwrap_or(current);
        let provider = self.owned_table_over(inner, &rec, true)?;
        session.temp.schema.deregister_table(table)?;
        session.temp.schema.register_table(table.to_string(), provider)?;
        session.temp.tables.lock().unwrap_or_else(|p| p.into_inner()).insert(table.to_string(), rec);
        Ok(QueryResult::command("CREATE INDEX"))
    }

    /// 23505 when two rows of `relation` (as SQL, quoted) share a key of `columns`
    /// (NULLs never clash).
    async fn check_no_duplicates(&self, session: &Session, relation: &str, index: &str, columns: &[String]) -> Result<()> {
        let quoted: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.replace('"', "\"\""))).collect();
        let keys = quoted.join(", ");
        let not_null = quoted.iter().map(|c| format!("{c} IS NOT NULL")).collect::<Vec<_>>().join(" AND ");
        let texts = quoted.iter().map(|c| format!("CAST({c} AS VARCHAR)")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {texts} FROM {relation} WHERE {not_null} GROUP BY {keys} HAVING count(*) > 1 LIMIT 1"
        );
        let df = session.ctx.sql(&sql).await?;
        let batches = df.collect().await?;
        if let Some(b) = batches.iter().find(|b| b.num_rows() > 0) {
            let values: Vec<String> = (0..b.num_columns())
                .map(|i| datafusion::arrow::util::display::array_value_to_string(b.column(i), 0).unwrap_or_default())
                .collect();
            return Err(Error::State(
                "23505",
                format!(
                    "could not create unique index \"{index}\"\nDETAIL: Key ({})=({}) is duplicated.",
                    columns.join(", "),
                    values.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// DROP INDEX of a scalar index; false when `name` is none.
    /// `name` is the index's key (`schema.name` outside public).
    pub(super) async fn drop_scalar_index(&self, session: &Session, name: &str) -> Result<bool> {
        let temp_table = session.temp.tables.lock().unwrap_or_else(|p| p.into_inner()).values().find(|d| d.indexes.iter().any(|i| i.name == name)).cloned();
        if let Some(mut rec) = temp_table {
            rec.indexes.retain(|i| i.name != name);
            let table = rec.name.clone();
            if let Some(current) = SchemaProvider::table(session.temp.schema.as_ref(), &table).await? {
                let inner = current.downcast_ref::<crate::table_providers::owned::OwnedTable>().map(|o| o.inner()).unwrap_or(current);
                let provider = self.owned_table_over(inner, &rec, true)?;
                session.temp.schema.deregister_table(&table)?;
                session.temp.schema.register_table(table.clone(), provider)?;
            }
            session.temp.tables.lock().unwrap_or_else(|p| p.into_inner()).insert(table, rec);
            return Ok(true);
        }
        let state = self.catalog.snapshot();
        let (schema, bare) = crate::catalog::schemas::split(name, |s| state.schemas.contains_key(s));
        let found = state
            .datasets
            .values()
            .find(|d| crate::catalog::schemas::split(&d.name, |s| state.schemas.contains_key(s)).0 == schema && d.indexes.iter().any(|i| i.name == bare));
        let Some(table) = found.map(|d| d.name.clone()) else {
            return Ok(false);
        };
        let name = bare;
        self.require_owner(session, &crate::catalog::roles::Object::Table(table.clone()))?;
        let catalog = self.catalog.clone();
        let (t, n) = (table.clone(), name.to_string());
        crate::catalog::blocking(move || {
            catalog.update(|s| {
                if let Some(d) = s.datasets.get_mut(&t) {
                    d.indexes.retain(|i| i.name != n);
                }
                Ok(())
            })
        })
        .await?;
        self.reload_owned_table(&table).await?;
        Ok(true)
    }

    /// Register the table's provider again after its rules changed.
    async fn reload_owned_table(&self, table: &str) -> Result<()> {
        let rec = self.catalog.dataset(table).ok_or_else(|| Error::TableNotFound(table.to_string()))?;
        let provider = self.owned_table(&rec)?;
        self.register_dataset(table, provider)?;
        Ok(())
    }
}
