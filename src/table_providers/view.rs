//! Views as scans. DataFusion inlines a view's plan into the query at planning time,
//! after which nothing says which part of the plan was the view, and a view must
//! read with its owner's privileges (#13). A [`CheckedView`] does not offer its plan
//! for inlining: it stays a table scan the privilege check can see, and plans its
//! query when scanned (DataFusion's own `ViewTable` does the work, projection and
//! filters included).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

#[derive(Debug)]
pub struct CheckedView {
    inner: ViewTable,
}

impl CheckedView {
    pub fn new(plan: LogicalPlan, definition: Option<String>) -> CheckedView {
        CheckedView { inner: ViewTable::new(plan, definition) }
    }

    /// The view's query.
    pub fn logical_plan(&self) -> &LogicalPlan {
        self.inner.logical_plan()
    }
}

#[async_trait]
impl TableProvider for CheckedView {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        self.inner.get_table_definition()
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.scan(state, projection, filters, limit).await
    }
}
