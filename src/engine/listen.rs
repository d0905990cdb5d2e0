//! `LISTEN channel`, `UNLISTEN channel | *`, `NOTIFY channel [, 'payload']` within one
//! server (#14; `pg_notify` is udf/backend.rs). Each statement commits on its own, so
//! a notification is delivered at once; the connection loop sends it to a listening
//! client between statements, as PostgreSQL does when the client is idle.

use datafusion::sql::sqlparser::ast::Ident;

use super::{Engine, QueryResult, Session};
use crate::error::Result;

fn channel(i: &Ident) -> String {
    if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }
}

impl Engine {
    pub(super) fn listen(&self, session: &Session, ch: &Ident) -> Result<QueryResult> {
        session.backend.listen(&channel(ch));
        Ok(QueryResult::command("LISTEN"))
    }

    pub(super) fn unlisten(&self, session: &Session, ch: &Ident) -> Result<QueryResult> {
        if ch.quote_style.is_none() && ch.value == "*" {
            session.backend.unlisten(None);
        } else {
            session.backend.unlisten(Some(&channel(ch)));
        }
        Ok(QueryResult::command("UNLISTEN"))
    }

    pub(super) fn notify(&self, session: &Session, ch: &Ident, payload: Option<&str>) -> Result<QueryResult> {
        let payload = payload.unwrap_or("");
        crate::backends::check_payload(payload)?;
        self.backends.notify(&channel(ch), payload, session.backend.pid);
        Ok(QueryResult::command("NOTIFY"))
    }
}
