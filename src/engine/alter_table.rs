//! `ALTER TABLE … ADD [COLUMN]` and `ALTER TABLE … DROP [COLUMN]` on owned tables (#14).
//!
//! A table's Parquet files are never rewritten here: its schema lives in its catalog
//! record, and a scan reads each file through that schema. An added column is NULL in
//! the rows written before it (so it may be NOT NULL, or have a DEFAULT, only while the
//! table is empty: PostgreSQL would fill existing rows with the default, which needs a
//! rewrite); a dropped column leaves the record but stays in the older files, so its
//! name cannot be added again (the old values would come back) until the table is
//! recreated. A column an index, a constraint or an owned sequence uses is not dropped.
//! The other forms (RENAME, ALTER COLUMN TYPE, ADD CONSTRAINT, …) answer 0A000.

use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::TableReference;
use datafusion::sql::sqlparser::ast::{AlterTable, AlterTableOperation, ColumnDef, ColumnOption, Ident};

use super::{Engine, QueryResult, Session};
use crate::catalog::datasets::{decode_schema, encode_schema};
use crate::error::{Error, Result};

fn column_name(i: &Ident) -> String {
    if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }
}

impl Engine {
    pub(super) async fn alter_table(&self, session: &Session, at: &AlterTable) -> Result<QueryResult> {
        let table = TableReference::from(at.name.to_string().as_str());
        if session.temp.tables.lock().unwrap_or_else(|p| p.into_inner()).contains_key(table.table()) && table.schema().is_none_or(|s| s == "pg_temp") {
            return Err(Error::NotSupported("ALTER TABLE on a temporary table (create it again with the new columns)".into()));
        }
        let key = self.dataset_name(&table)?;
        let Some(rec) = self.catalog.dataset(&key) else {
            if at.if_exists {
                session.notice(format!("relation \"{key}\" does not exist, skipping"));
                return Ok(QueryResult::command("ALTER TABLE"));
            }
            return Err(Error::TableNotFound(key));
        };
        if !rec.owned || rec.is_view() || rec.materialized.is_some() {
            return Err(Error::WrongObjectType(format!("\"{key}\" is not a table lakehouse owns (ALTER TABLE changes tables made by CREATE TABLE)")));
        }
        self.require_owner(session, &crate::catalog::roles::Object::Table(key.clone()))?;
        for op in &at.operations {
            match op {
                AlterTableOperation::AddColumn { if_not_exists, column_def, .. } => self.add_column(session, &key, column_def, *if_not_exists).await?,
                AlterTableOperation::DropColumn { column_names, if_exists, .. } => {
                    for c in column_names {
                        self.drop_column(session, &key, &column_name(c), *if_exists).await?;
                    }
                }
                other => {
                    let what = other.to_string();
                    let what = what.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
                    return Err(Error::NotSupported(format!("ALTER TABLE … {what} (ADD COLUMN and DROP COLUMN are; a table's files are not rewritten)")));
                }
            }
        }
        Ok(QueryResult::command("ALTER TABLE"))
    }

    /// Does table `key` hold a row?
    async fn has_rows(&self, session: &Session, key: &str) -> Result<bool> {
        let sql = format!("SELECT 1 FROM {} LIMIT 1", self.sql_ref(key));
        let batches = session.ctx.sql(&sql).await?.collect().await?;
        Ok(batches.iter().any(|b| b.num_rows() > 0))
    }

    async fn add_column(&self, session: &Session, key: &str, def: &ColumnDef, if_not_exists: bool) -> Result<()> {
        let name = column_name(&def.name);
        let _ddl = self.ddl.lock().await;
        let rec = self.catalog.dataset(key).ok_or_else(|| Error::TableNotFound(key.to_string()))?;
        let schema = rec.arrow_schema()?.ok_or_else(|| Error::Internal(format!("table {key} has no schema")))?;
        if schema.fields().iter().any(|f| f.name() == &name) {
            if if_not_exists {
                session.notice(format!("column \"{name}\" of relation \"{key}\" already exists, skipping"));
                return Ok(());
            }
            return Err(Error::State("42701", format!("column \"{name}\" of relation \"{key}\" already exists")));
        }
        if rec.dropped_columns.contains(&name) {
            return Err(Error::NotSupported(format!(
                "adding column \"{name}\" again: it was dropped, and its old values are still in the table's files (create the table again, or pick another name)"
            )));
        }
        let mut def = def.clone();
        super::user_types::apply_domain_defaults(&self.catalog.snapshot(), std::slice::from_mut(&mut def));
        let mut not_null = false;
        let mut default = None;
        for o in &def.options {
            match &o.option {
                ColumnOption::Null => not_null = false,
                ColumnOption::NotNull => not_null = true,
                ColumnOption::Default(e) => default = Some(e.to_string()),
                other => return Err(Error::NotSupported(format!("ADD COLUMN … {other} (add the column, then create an index; constraints come with CREATE TABLE)"))),
            }
        }
        let type_text = def.data_type.to_string().to_lowercase();
        if type_text.contains("serial") {
            return Err(Error::NotSupported("ADD COLUMN of a serial type (its sequence would have to number the existing rows)".into()));
        }
        let has_rows = self.has_rows(session, key).await?;
        if has_rows && not_null && default.is_none() {
            return Err(Error::State("23502", format!("column \"{name}\" of relation \"{key}\" contains null values")));
        }
        if has_rows && default.as_deref().is_some_and(|d| !d.eq_ignore_ascii_case("null")) {
            return Err(Error::NotSupported(format!(
                "ADD COLUMN \"{name}\" with a DEFAULT on a table with rows (its rows would need the default written into them): add it without DEFAULT, or to an empty table"
            )));
        }
        let field = self.field_of_type(session, &def.data_type).await?.with_name(name.clone()).with_nullable(!not_null);
        if let Some(d) = &default {
            // Checked now, as CREATE TABLE checks it: a DEFAULT that does not plan is refused.
            session.ctx.state().create_logical_plan(&format!("SELECT CAST({d} AS {}) AS c", def.data_type)).await?;
        }
        let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
        fields.push(Arc::new(field));
        let new_schema = Schema::new_with_metadata(fields, schema.metadata().clone());
        let encoded = encode_schema(&new_schema)?;
        let catalog = self.catalog.clone();
        let k = key.to_string();
        let record = crate::catalog::blocking(move || {
            catalog.update(|s| {
                let r = s.datasets.get_mut(&k).ok_or_else(|| Error::TableNotFound(k.clone()))?;
                r.schema = Some(encoded);
                if let Some(d) = default {
                    r.defaults.insert(name, d);
                }
                Ok(r.clone())
            })
        })
        .await?;
        self.register_dataset(key, self.owned_table(&record)?)
    }

    async fn drop_column(&self, session: &Session, key: &str, name: &str, if_exists: bool) -> Result<()> {
        let _ddl = self.ddl.lock().await;
        let state = self.catalog.snapshot();
        let rec = state.datasets.get(key).cloned().ok_or_else(|| Error::TableNotFound(key.to_string()))?;
        let schema = rec.arrow_schema()?.ok_or_else(|| Error::Internal(format!("table {key} has no schema")))?;
        if !schema.fields().iter().any(|f| f.name() == name) {
            if if_exists {
                session.notice(format!("column \"{name}\" of relation \"{key}\" does not exist, skipping"));
                return Ok(());
            }
            return Err(Error::State("42703", format!("column \"{name}\" of relation \"{key}\" does not exist")));
        }
        let used_by: Vec<String> = rec
            .constraints
            .iter()
            .filter(|c| c.columns.iter().any(|x| x == name))
            .map(|c| format!("constraint {}", c.name))
            .chain(rec.indexes.iter().filter(|i| i.columns.iter().any(|x| x == name)).map(|i| format!("index {}", i.name)))
            .chain(state.indexes.values().filter(|i| i.table == key && i.column == name).map(|i| format!("index {}", i.name)))
            .chain(state.datasets.values().flat_map(|d| d.constraints.iter().map(move |c| (d, c))).filter(|(_, c)| c.references.as_ref().is_some_and(|(t, cols)| t == key && cols.iter().any(|x| x == name))).map(|(d, c)| format!("constraint {} on table {}", c.name, d.name)))
            .chain(state.sequences.values().filter(|q| q.owned_by.as_ref().is_some_and(|(t, c)| t == key && c == name)).map(|q| format!("sequence {}", q.name)))
            .collect();
        if !used_by.is_empty() {
            return Err(Error::DependentObjects(format!(
                "cannot drop column {name} of table {key} because other objects depend on it\nDETAIL: {} depends on column {name}\nHINT: drop them first (DROP INDEX, or create the table again).",
                used_by.join(", ")
            )));
        }
        let fields: Vec<_> = schema.fields().iter().filter(|f| f.name() != name).cloned().collect();
        let encoded = encode_schema(&Schema::new_with_metadata(fields, schema.metadata().clone()))?;
        let catalog = self.catalog.clone();
        let (k, n) = (key.to_string(), name.to_string());
        let record = crate::catalog::blocking(move || {
            catalog.update(|s| {
                let r = s.datasets.get_mut(&k).ok_or_else(|| Error::TableNotFound(k.clone()))?;
                r.schema = Some(encoded);
                r.defaults.remove(&n);
                r.column_comments.remove(&n);
                r.identity_always.retain(|c| c != &n);
                r.identity_by_default.retain(|c| c != &n);
                r.columns.retain(|c| c.name != n);
                if !r.dropped_columns.contains(&n) {
                    r.dropped_columns.push(n);
                }
                Ok(r.clone())
            })
        })
        .await?;
        debug_assert!(decode_schema(record.schema.as_deref().unwrap_or_default()).is_ok());
        self.register_dataset(key, self.owned_table(&record)?)
    }
}
