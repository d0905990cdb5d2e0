//! `CREATE SCHEMA`, `DROP SCHEMA`, and where a table of a schema lives (#14).
//!
//! A schema is a catalog record and a schema provider of the `lakehouse` catalog; its
//! tables, views and sequences are keyed `schema.name` in the catalog
//! (catalog/schemas.rs). Attached databases are schemas too, but of another kind:
//! names are shared, so neither may take the other's.

use std::sync::Arc;

use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::sql::sqlparser::ast::{ObjectName, SchemaName};

use super::{CATALOG_NAME, DATA_SCHEMA, Engine, QueryResult, Session};
use crate::catalog::schemas::{self, SchemaRecord};
use crate::error::{Error, Result};

fn ident_name(name: &ObjectName) -> Result<String> {
    match name.0.as_slice() {
        [p] => p.as_ident().map(|i| if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }).ok_or_else(|| Error::Syntax(format!("schema name {name}"))),
        _ => Err(Error::Syntax(format!("a schema name has one part (got {name})"))),
    }
}

impl Engine {
    pub(super) fn schema_exists(&self, name: &str) -> bool {
        self.catalog.snapshot().schemas.contains_key(name)
    }

    /// The catalog key of a table reference: its name in `public`, `schema.name` in
    /// a schema made by CREATE SCHEMA.
    pub(super) fn dataset_name(&self, name: &TableReference) -> Result<String> {
        if name.catalog().is_some_and(|c| c != CATALOG_NAME) {
            return Err(Error::State("0A000", format!("cross-database references are not implemented: {name}")));
        }
        match name.schema() {
            None | Some(DATA_SCHEMA) => Ok(name.table().to_string()),
            Some(s) if self.schema_exists(s) => Ok(schemas::key(Some(s), name.table())),
            Some(s) if self.catalog.snapshot().attachments.contains_key(s) => Err(Error::NotSupported(format!(
                "creating or dropping tables in \"{s}\", an attached database (it is read-only here)"
            ))),
            Some(s @ ("pg_catalog" | "information_schema" | crate::table_providers::SYSTEM_SCHEMA)) => {
                Err(Error::InsufficientPrivilege(format!("permission denied to create or drop objects in system schema \"{s}\"")))
            }
            Some(s) => Err(Error::State("3F000", format!("schema \"{s}\" does not exist; CREATE SCHEMA {s} first"))),
        }
    }

    /// The schema provider a dataset key is registered in, and its name there.
    pub(super) fn home_of(&self, key: &str) -> Result<(Arc<dyn SchemaProvider>, String)> {
        let state = self.catalog.snapshot();
        match schemas::split(key, |s| state.schemas.contains_key(s)) {
            (Some(s), t) => {
                let provider = self.catalog_provider.schema(s).ok_or_else(|| Error::Internal(format!("schema {s} is not registered")))?;
                Ok((provider, t.to_string()))
            }
            (None, t) => Ok((self.data_schema.clone(), t.to_string())),
        }
    }

    pub(super) fn register_dataset(&self, key: &str, provider: Arc<dyn TableProvider>) -> Result<()> {
        let (schema, table) = self.home_of(key)?;
        schema.deregister_table(&table)?;
        schema.register_table(table, provider)?;
        Ok(())
    }

    pub(super) fn deregister_dataset(&self, key: &str) -> Result<()> {
        let (schema, table) = self.home_of(key)?;
        schema.deregister_table(&table)?;
        Ok(())
    }

    pub(super) fn dataset_exists(&self, key: &str) -> bool {
        self.home_of(key).is_ok_and(|(schema, table)| schema.table_exist(&table))
    }

    /// A dataset key as SQL (`"s"."t"`).
    pub(crate) fn sql_ref(&self, key: &str) -> String {
        let state = self.catalog.snapshot();
        schemas::sql_ref(key, |s| state.schemas.contains_key(s))
    }

    /// Register every schema's provider (at start, before the datasets).
    pub(super) fn restore_schemas(&self) {
        for name in self.catalog.snapshot().schemas.keys() {
            if let Err(e) = self.catalog_provider.register_schema(name, Arc::new(MemorySchemaProvider::new())) {
                tracing::warn!("schema {name}: {e}");
            }
        }
    }

    pub(super) async fn create_schema(&self, session: &Session, name: &SchemaName, if_not_exists: bool) -> Result<QueryResult> {
        let (name, owner) = match name {
            SchemaName::Simple(n) => (ident_name(n)?, session.user.clone()),
            SchemaName::NamedAuthorization(n, role) => (ident_name(n)?, role.value.clone()),
            SchemaName::UnnamedAuthorization(role) => (role.value.clone(), role.value.clone()),
        };
        // PostgreSQL: any role with CREATE on the database; lakehouse gives that to
        // every role, and only a superuser may make a schema for someone else.
        if owner != session.user {
            session.require_superuser("CREATE SCHEMA … AUTHORIZATION another role")?;
            if !self.role_exists(&owner) {
                return Err(Error::UndefinedObject(format!("role \"{owner}\" does not exist")));
            }
        }
        let _ddl = self.ddl.lock().await;
        let state = self.catalog.snapshot();
        let taken = state.schemas.contains_key(&name) || state.attachments.contains_key(&name) || name == DATA_SCHEMA;
        if taken {
            if if_not_exists {
                session.notice(format!("schema \"{name}\" already exists, skipping"));
                return Ok(QueryResult::command("CREATE SCHEMA"));
            }
            return Err(Error::State("42P06", format!("schema \"{name}\" already exists")));
        }
        schemas::check_name(&name)?;
        let record = SchemaRecord { name: name.clone(), owner: Some(owner), created_at: crate::catalog::now_rfc3339(), comment: None };
        let catalog = self.catalog.clone();
        crate::catalog::blocking(move || {
            catalog.update(|s| {
                s.schemas.insert(record.name.clone(), record);
                Ok(())
            })
        })
        .await?;
        self.catalog_provider.register_schema(&name, Arc::new(MemorySchemaProvider::new()))?;
        Ok(QueryResult::command("CREATE SCHEMA"))
    }

    /// `DROP SCHEMA [IF EXISTS] a, b [CASCADE | RESTRICT]`: RESTRICT (the default)
    /// refuses a schema that holds anything (2BP01); CASCADE drops what it holds.
    pub(super) async fn drop_schemas(&self, session: &Session, names: &[ObjectName], if_exists: bool, cascade: bool) -> Result<QueryResult> {
        for n in names {
            let name = ident_name(n)?;
            let Some(rec) = self.catalog.snapshot().schemas.get(&name).cloned() else {
                if if_exists {
                    session.notice(format!("schema \"{name}\" does not exist, skipping"));
                    continue;
                }
                if self.catalog.snapshot().attachments.contains_key(&name) {
                    return Err(Error::WrongObjectType(format!("\"{name}\" is an attached database; use DETACH {name}")));
                }
                return Err(Error::State("3F000", format!("schema \"{name}\" does not exist")));
            };
            let is_owner = session.superuser || rec.owner.as_deref().is_some_and(|o| self.catalog.snapshot().roles.effective(&session.user).contains(o));
            if !is_owner {
                return Err(Error::InsufficientPrivilege(format!("must be owner of schema {name}")));
            }
            let prefix = format!("{name}.");
            let state = self.catalog.snapshot();
            let datasets: Vec<(String, bool)> = state.datasets.values().filter(|d| d.name.starts_with(&prefix)).map(|d| (d.name.clone(), d.is_view())).collect();
            let sequences: Vec<String> = state.sequences.keys().filter(|k| k.starts_with(&prefix)).cloned().collect();
            let types: Vec<String> = state.types.keys().filter(|k| k.starts_with(&prefix)).cloned().collect();
            if !cascade && (!datasets.is_empty() || !sequences.is_empty() || !types.is_empty()) {
                let what: Vec<&str> = datasets.iter().map(|(d, _)| d.as_str()).chain(sequences.iter().map(String::as_str)).chain(types.iter().map(String::as_str)).take(5).collect();
                return Err(Error::DependentObjects(format!(
                    "cannot drop schema {name} because other objects depend on it ({}); use DROP SCHEMA {name} CASCADE",
                    what.join(", ")
                )));
            }
            // Views first (they read the tables), then tables, then what is left.
            let mut ordered = datasets;
            ordered.sort_by_key(|(_, view)| !view);
            for (key, view) in ordered {
                let sql = format!("DROP {} IF EXISTS {}", if view { "VIEW" } else { "TABLE" }, self.sql_ref(&key));
                let (_, err) = Box::pin(self.execute(session, &sql)).await;
                if let Some(e) = err {
                    return Err(e);
                }
            }
            for key in self.catalog.snapshot().sequences.keys().filter(|k| k.starts_with(&prefix)).cloned().collect::<Vec<_>>() {
                let catalog = self.catalog.clone();
                let k = key.clone();
                crate::catalog::blocking(move || catalog.update(|s| Ok(s.sequences.remove(&k)))).await?;
                self.sequences.forget(&key);
            }
            // Its types last: domains over them first (DROP TYPE refuses a type in use).
            let mut types = types;
            types.sort_by_key(|k| !matches!(self.catalog.snapshot().types.get(k).map(|t| &t.kind), Some(crate::catalog::types::TypeKind::Domain { .. })));
            for key in types {
                let domain = matches!(self.catalog.snapshot().types.get(&key).map(|t| &t.kind), Some(crate::catalog::types::TypeKind::Domain { .. }));
                let sql = format!("DROP {} IF EXISTS {}", if domain { "DOMAIN" } else { "TYPE" }, self.sql_ref(&key));
                let (_, err) = Box::pin(self.execute(session, &sql)).await;
                if let Some(e) = err {
                    return Err(e);
                }
            }
            let _ddl = self.ddl.lock().await;
            let catalog = self.catalog.clone();
            let n2 = name.clone();
            crate::catalog::blocking(move || catalog.update(|s| Ok(s.schemas.remove(&n2)))).await?;
            self.catalog_provider.deregister_schema(&name, true)?;
        }
        Ok(QueryResult::command("DROP SCHEMA"))
    }
}
