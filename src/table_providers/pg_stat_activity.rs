//! `pg_catalog.pg_stat_activity` (#14): one row per open session, in PostgreSQL 15's
//! columns. As in PostgreSQL, what another role's session runs (state, query and
//! their times) is shown only to a superuser; others see `<insufficient privilege>`.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int32Array, TimestampMicrosecondArray, new_null_array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

use super::system::{scan_columns, strings};
use crate::backends::Backends;
use crate::catalog::roles::{Identity, role_oid};

pub const NAME: &str = "pg_stat_activity";

pub struct PgStatActivity {
    schema: SchemaRef,
    backends: Arc<Backends>,
}

impl fmt::Debug for PgStatActivity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PgStatActivity")
    }
}

fn timestamptz(name: &str) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true)
}

impl PgStatActivity {
    pub fn new(backends: &Arc<Backends>) -> PgStatActivity {
        let text = |n: &str| Field::new(n, DataType::Utf8, true);
        let int = |n: &str| Field::new(n, DataType::Int32, true);
        let schema = Arc::new(Schema::new(vec![
            int("datid"),
            text("datname"),
            int("pid"),
            int("leader_pid"),
            int("usesysid"),
            text("usename"),
            text("application_name"),
            text("client_addr"),
            text("client_hostname"),
            int("client_port"),
            timestamptz("backend_start"),
            timestamptz("xact_start"),
            timestamptz("query_start"),
            timestamptz("state_change"),
            text("wait_event_type"),
            text("wait_event"),
            text("state"),
            text("backend_xid"),
            text("backend_xmin"),
            Field::new("query_id", DataType::Int64, true),
            text("query"),
            text("backend_type"),
        ]));
        PgStatActivity { schema, backends: backends.clone() }
    }
}

#[async_trait]
impl TableProvider for PgStatActivity {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> DfResult<Arc<dyn ExecutionPlan>> {
        let reader = state.config().get_extension::<Identity>();
        let all = self.backends.all();
        let visible: Vec<bool> = all.iter().map(|b| reader.as_ref().is_none_or(|r| r.superuser || r.user == b.user)).collect();
        let activity: Vec<_> = all.iter().map(|b| b.activity()).collect();
        let n = all.len();
        let micros = |t: &chrono::DateTime<chrono::Utc>| t.timestamp_micros();
        let ts = |f: &dyn Fn(usize) -> Option<i64>| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from((0..n).map(f).collect::<Vec<_>>()).with_timezone("UTC"))
        };
        let ints = |f: &dyn Fn(usize) -> Option<i32>| -> ArrayRef { Arc::new(Int32Array::from((0..n).map(f).collect::<Vec<_>>())) };
        let null_text = || new_null_array(&DataType::Utf8, n);
        let columns: Vec<ArrayRef> = vec![
            ints(&|_| Some(1)),
            strings(all.iter().map(|b| Some(b.database.clone()))),
            ints(&|i| Some(all[i].pid)),
            ints(&|_| None),
            ints(&|i| Some(role_oid(&all[i].user) as i32)),
            strings(all.iter().map(|b| Some(b.user.clone()))),
            strings(all.iter().map(|b| Some(b.application_name.lock().unwrap_or_else(|p| p.into_inner()).clone()))),
            strings(all.iter().map(|b| b.client_addr.map(|a| a.ip().to_canonical().to_string()))),
            null_text(),
            ints(&|i| Some(all[i].client_addr.map(|a| a.port() as i32).unwrap_or(-1))),
            ts(&|i| Some(micros(&all[i].backend_start))),
            ts(&|_| None),
            ts(&|i| if visible[i] { activity[i].query_start.as_ref().map(micros) } else { None }),
            ts(&|i| if visible[i] { Some(micros(&activity[i].state_change)) } else { None }),
            strings((0..n).map(|i| (visible[i] && activity[i].state == "idle").then(|| "Client".to_string()))),
            strings((0..n).map(|i| (visible[i] && activity[i].state == "idle").then(|| "ClientRead".to_string()))),
            strings((0..n).map(|i| visible[i].then(|| activity[i].state.to_string()))),
            null_text(),
            null_text(),
            new_null_array(&DataType::Int64, n),
            strings((0..n).map(|i| Some(if visible[i] { activity[i].query.clone() } else { "<insufficient privilege>".into() }))),
            strings(all.iter().map(|_| Some("client backend".to_string()))),
        ];
        scan_columns(&self.schema, columns, state, projection, filters, limit).await
    }
}
