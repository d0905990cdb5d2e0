//! Unqualified names of the pg_catalog tables lakehouse adds (`pg_sequences`,
//! `pg_stat_activity`, …) resolve to `pg_catalog.<name>`, as PostgreSQL's search path
//! (pg_catalog first) makes them. datafusion-pg-catalog's rewrite qualifies only the
//! names it knows itself.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Ident, ObjectName, ObjectNamePart, Statement, TableFactor, VisitMut, VisitorMut};

/// The pg_catalog tables the library does not qualify.
pub const OURS: &[&str] = &["pg_sequences", "pg_stat_activity", "pg_cursors", "pg_prepared_statements", "pg_locks"];

struct Qualify;

impl VisitorMut for Qualify {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, args: None, .. } = factor {
            if let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() {
                if ident.quote_style.is_none() && OURS.iter().any(|t| t.eq_ignore_ascii_case(&ident.value)) {
                    *name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new("pg_catalog")), name.0[0].clone()]);
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Qualify the unqualified uses of [`OURS`] in `statement`.
pub fn qualify(statement: &mut Statement) {
    let _ = statement.visit(&mut Qualify);
}
