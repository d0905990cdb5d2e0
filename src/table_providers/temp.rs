//! Temporary tables (#14): `CREATE TEMP TABLE` makes a table that only its session
//! sees, held in memory (never written to a bucket) and gone when the session ends.
//!
//! Sessions share the engine's catalogs, so each session's context gets a catalog
//! list of its own that wraps the shared one and adds the schema `pg_temp` with the
//! session's temporary tables. The engine qualifies a statement's unqualified names
//! of temporary tables with it (engine/temp_table.rs), as PostgreSQL's search path
//! puts `pg_temp` first; `public.t` still names the shared table. Everything else is
//! the shared catalog, unchanged.

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, CatalogProviderList, MemorySchemaProvider, SchemaProvider};
use datafusion::error::Result as DfResult;

/// The schema name temporary tables can be qualified with.
pub const TEMP_SCHEMA: &str = "pg_temp";

/// A session's view of the catalogs: the shared ones with its temporary tables.
#[derive(Debug)]
pub struct SessionCatalogList {
    inner: Arc<dyn CatalogProviderList>,
    catalog_name: String,
    temp: Arc<MemorySchemaProvider>,
}

impl SessionCatalogList {
    pub fn new(inner: Arc<dyn CatalogProviderList>, catalog_name: &str, temp: Arc<MemorySchemaProvider>) -> Self {
        SessionCatalogList { inner, catalog_name: catalog_name.to_string(), temp }
    }
}

impl CatalogProviderList for SessionCatalogList {
    fn register_catalog(&self, name: String, catalog: Arc<dyn CatalogProvider>) -> Option<Arc<dyn CatalogProvider>> {
        self.inner.register_catalog(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        self.inner.catalog_names()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        let inner = self.inner.catalog(name)?;
        if name != self.catalog_name {
            return Some(inner);
        }
        Some(Arc::new(SessionCatalog { inner, temp: self.temp.clone() }))
    }
}

#[derive(Debug)]
struct SessionCatalog {
    inner: Arc<dyn CatalogProvider>,
    temp: Arc<MemorySchemaProvider>,
}

impl CatalogProvider for SessionCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.inner.schema_names();
        if !self.temp.table_names().is_empty() {
            names.push(TEMP_SCHEMA.to_string());
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == TEMP_SCHEMA {
            return Some(self.temp.clone());
        }
        self.inner.schema(name)
    }

    fn register_schema(&self, name: &str, schema: Arc<dyn SchemaProvider>) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        self.inner.register_schema(name, schema)
    }

    fn deregister_schema(&self, name: &str, cascade: bool) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        self.inner.deregister_schema(name, cascade)
    }
}
