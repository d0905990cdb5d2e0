//! Table providers: system tables in schema `lakehouse` (later: MySQL, Postgres, Lance,
//! HNSW index scan). `register_all` installs everything this folder provides.

pub mod hnsw;
pub mod hnsw_graph;
pub mod hnsw_scan;
pub mod owned;
pub mod pg_relations;
pub mod pg_sequences;
pub mod pg_stat_activity;
pub mod pg_type;
pub mod remote;
pub mod roles;
pub mod system;
pub mod temp;
pub mod view;

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider};

use crate::catalog::Catalog;
use crate::error::Result;

pub const SYSTEM_SCHEMA: &str = "lakehouse";

/// Create schema `lakehouse` in `catalog` and fill it with the system tables.
pub fn register_all(catalog_provider: &Arc<dyn CatalogProvider>, catalog: &Arc<Catalog>, models: &Arc<crate::embedding::Models>) -> Result<()> {
    let schema = Arc::new(MemorySchemaProvider::new());
    for table in system::tables(catalog) {
        schema.register_table(table.name.to_string(), Arc::new(system::LiveTable::from(table)))?;
    }
    schema.register_table("models".to_string(), Arc::new(system::ModelsTable::new(models.clone())))?;
    catalog_provider.register_schema(SYSTEM_SCHEMA, schema)?;
    Ok(())
}

/// `lakehouse.trials` and `lakehouse.agent`, which read the engine's tuning state.
pub fn register_tuning(catalog_provider: &Arc<dyn CatalogProvider>, tuning: &Arc<crate::tuning::Tuning>) -> Result<()> {
    let schema = catalog_provider
        .schema(SYSTEM_SCHEMA)
        .ok_or_else(|| crate::error::Error::Internal("system schema missing".into()))?;
    for (name, table) in system::tuning_tables(tuning) {
        schema.register_table(name.to_string(), Arc::new(table))?;
    }
    Ok(())
}
