//! Limits checked before a statement is planned, so that no statement can take the
//! process down: the nesting depth of expressions and of set operations (a 10,000-term
//! `1+1+…` or a 2,000-branch `UNION ALL` parses without recursion but is planned
//! recursively), and the DataFusion settings that size buffers or reach the
//! filesystem.
//!
//! PostgreSQL answers a statement too deep for its stack with 54001 ("stack depth
//! limit exceeded"); so does lakehouse, before anything deep is walked recursively.

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Expr, Query, SetExpr, Value, Values, Visit, VisitMut, Visitor, VisitorMut};

use crate::error::{Error, Result};
use crate::session::Session;

/// The deepest expression nesting planned (an operator chain of n terms nests n
/// deep). The query threads' stack (executor::QUERY_STACK_BYTES) has room for many
/// times this in every planner and optimizer pass.
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;
/// The most branches one chain of UNION / INTERSECT / EXCEPT may have.
pub const MAX_SET_OPERATIONS: usize = 1_000;

/// Refuse a statement nested deeper than the limits (54001). Over the limit the
/// statement is taken apart without recursion, so even dropping it is safe.
pub fn check_depth(statements: Vec<DFStatement>) -> Result<Vec<DFStatement>> {
    let mut problem = None;
    for s in &statements {
        let mut v = DepthVisitor { depth: 0 };
        let flow = match s {
            DFStatement::Statement(st) => st.visit(&mut v),
            DFStatement::Explain(e) => match e.statement.as_ref() {
                DFStatement::Statement(st) => st.visit(&mut v),
                _ => ControlFlow::Continue(()),
            },
            _ => ControlFlow::Continue(()),
        };
        if let ControlFlow::Break(p) = flow {
            problem = Some(p);
            break;
        }
    }
    match problem {
        None => Ok(statements),
        Some(p) => {
            for s in statements {
                dismantle_statement(s);
            }
            Err(Error::StackDepth(p))
        }
    }
}

struct DepthVisitor {
    depth: usize,
}

impl Visitor for DepthVisitor {
    type Break = String;

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<String> {
        self.depth += 1;
        if self.depth > MAX_EXPRESSION_DEPTH {
            return ControlFlow::Break(format!(
                "an expression nests more than {MAX_EXPRESSION_DEPTH} levels deep; write a long OR chain as IN (…) or a join with a table of values, and split long operator chains"
            ));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<String> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        // Measured here, without recursion, before the visitor walks the chain.
        let n = set_operation_branches(&query.body);
        if n > MAX_SET_OPERATIONS {
            return ControlFlow::Break(format!(
                "a query combines {n} branches with UNION/INTERSECT/EXCEPT; the limit is {MAX_SET_OPERATIONS} (load the rows into a table instead)"
            ));
        }
        // A subquery counts as a level of the expression around it.
        self.depth += 1;
        if self.depth > MAX_EXPRESSION_DEPTH {
            return ControlFlow::Break(format!("queries nest more than {MAX_EXPRESSION_DEPTH} levels deep"));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<String> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// The longest path of nested set operations under `body`.
fn set_operation_branches(body: &SetExpr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(body, 1usize)];
    while let Some((e, level)) = stack.pop() {
        deepest = deepest.max(level);
        if let SetExpr::SetOperation { left, right, .. } = e {
            stack.push((left, level + 1));
            stack.push((right, level + 1));
        }
    }
    deepest
}

/// Drop a statement that may be too deep for a recursive drop: deep parts are cut
/// out as the walk reaches them (so the walk itself stays shallow) and unlinked one
/// node at a time.
fn dismantle_statement(s: DFStatement) {
    let mut d = Dismantler { depth: 0 };
    match s {
        DFStatement::Statement(mut st) => {
            let _ = VisitMut::visit(st.as_mut(), &mut d);
        }
        DFStatement::Explain(mut e) => {
            if let DFStatement::Statement(st) = e.statement.as_mut() {
                let _ = VisitMut::visit(st.as_mut(), &mut d);
            }
        }
        _ => {}
    }
}

/// How deep the dismantling walk goes before it cuts a subtree out.
const CUT_DEPTH: usize = 64;

struct Dismantler {
    depth: usize,
}

fn null_expr() -> Expr {
    Expr::value(Value::Null)
}

impl VisitorMut for Dismantler {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > CUT_DEPTH {
            dismantle_expr(std::mem::replace(expr, null_expr()));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &mut Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if matches!(query.body.as_ref(), SetExpr::SetOperation { .. }) {
            let body = std::mem::replace(query.body.as_mut(), SetExpr::Values(Values { explicit_row: false, value_keyword: false, rows: vec![] }));
            let mut stack = vec![body];
            while let Some(e) = stack.pop() {
                match e {
                    SetExpr::SetOperation { left, right, .. } => {
                        stack.push(*left);
                        stack.push(*right);
                    }
                    mut leaf => {
                        let _ = VisitMut::visit(&mut leaf, &mut Dismantler { depth: 0 });
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Unlink a deep expression chain node by node (an explicit stack); what is not a
/// chain node is walked by a fresh [`Dismantler`], which cuts its deep parts again.
fn dismantle_expr(e: Expr) {
    let mut stack = vec![e];
    while let Some(mut e) = stack.pop() {
        match &mut e {
            Expr::BinaryOp { left, right, .. } => {
                stack.push(std::mem::replace(left.as_mut(), null_expr()));
                stack.push(std::mem::replace(right.as_mut(), null_expr()));
            }
            Expr::Cast { expr, .. } | Expr::Nested(expr) | Expr::UnaryOp { expr, .. } | Expr::IsNull(expr) | Expr::IsNotNull(expr) => {
                stack.push(std::mem::replace(expr.as_mut(), null_expr()));
            }
            other => {
                let _ = VisitMut::visit(other, &mut Dismantler { depth: 1 });
            }
        }
        drop(e);
    }
}

/// Settings that size buffers, spawn work or reach the filesystem, with the values a
/// session may give them (PostgreSQL refuses out-of-range values with 22023).
const BOUNDED: &[(&str, i64, i64)] = &[
    ("datafusion.execution.batch_size", 1, 1 << 20),
    ("datafusion.execution.target_partitions", 1, 1024),
    ("datafusion.execution.planning_concurrency", 1, 1024),
    ("datafusion.execution.meta_fetch_concurrency", 1, 1024),
    ("datafusion.execution.minimum_parallel_output_files", 1, 1024),
    ("datafusion.execution.soft_max_rows_per_output_file", 1, 1 << 30),
    ("datafusion.execution.max_buffered_batches_per_output_file", 1, 1024),
    ("datafusion.execution.sort_spill_reservation_bytes", 0, 1 << 30),
    ("datafusion.execution.sort_in_place_threshold_bytes", 0, 1 << 30),
    ("datafusion.execution.parquet.max_row_group_size", 1, 1 << 24),
    ("datafusion.execution.parquet.data_pagesize_limit", 1, 1 << 30),
    ("datafusion.execution.parquet.write_batch_size", 1, 1 << 20),
    ("datafusion.execution.parquet.dictionary_page_size_limit", 1, 1 << 30),
    ("datafusion.execution.parquet.maximum_parallel_row_group_writers", 1, 64),
    ("datafusion.execution.parquet.maximum_buffered_record_batches_per_stream", 1, 1024),
    ("datafusion.execution.parquet.metadata_size_hint", 0, 1 << 30),
    ("datafusion.sql_parser.recursion_limit", 1, 500),
    ("datafusion.optimizer.max_passes", 1, 100),
    ("datafusion.optimizer.hash_join_single_partition_threshold", 0, 1 << 30),
    ("datafusion.optimizer.hash_join_single_partition_threshold_rows", 0, 1 << 30),
];

/// Settings only a superuser may change: where spill files go and how much disk and
/// memory the runtime may take, and where the catalog reads tables from.
const SUPERUSER_PREFIXES: &[&str] = &["datafusion.runtime.", "datafusion.catalog."];

/// Check `SET name = value` for a DataFusion setting before it is stored.
pub fn check_datafusion_setting(name: &str, value: &str, session: &Session) -> Result<()> {
    if SUPERUSER_PREFIXES.iter().any(|p| name.starts_with(p)) {
        session.require_superuser(&format!("changing {name}"))?;
    }
    if let Some((_, lo, hi)) = BOUNDED.iter().find(|(n, _, _)| *n == name) {
        match value.trim().trim_matches('\'').parse::<i64>() {
            Ok(v) if (*lo..=*hi).contains(&v) => {}
            _ => {
                return Err(Error::InvalidParameter(format!(
                    "invalid value for parameter \"{name}\": \"{value}\"; it takes an integer between {lo} and {hi}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> Vec<DFStatement> {
        datafusion::sql::parser::DFParser::parse_sql_with_dialect(sql, &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {})
            .unwrap()
            .into_iter()
            .collect()
    }

    /// Runs on a thread with a small stack on purpose: the check and the drop of a
    /// statement far over the limit must not recurse through it.
    #[test]
    fn deep_statements_are_refused_without_recursion() {
        std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(|| {
                let chain = (0..10_000).map(|_| "1").collect::<Vec<_>>().join("+");
                let err = check_depth(parse(&format!("SELECT {chain}"))).unwrap_err();
                assert_eq!(err.sqlstate(), "54001");
                let ors = (0..10_000).map(|i| format!("x = {i}")).collect::<Vec<_>>().join(" OR ");
                assert_eq!(check_depth(parse(&format!("SELECT * FROM t WHERE {ors}"))).unwrap_err().sqlstate(), "54001");
                let unions = (0..2_000).map(|i| format!("SELECT {i}")).collect::<Vec<_>>().join(" UNION ALL ");
                assert_eq!(check_depth(parse(&unions)).unwrap_err().sqlstate(), "54001");
                let concat = (0..20_000).map(|_| "'a'").collect::<Vec<_>>().join(" || ");
                assert_eq!(check_depth(parse(&format!("SELECT {concat}"))).unwrap_err().sqlstate(), "54001");
                // Within the limits, unchanged.
                let ok = (0..500).map(|i| format!("x = {i}")).collect::<Vec<_>>().join(" OR ");
                assert_eq!(check_depth(parse(&format!("SELECT * FROM t WHERE {ok}"))).unwrap().len(), 1);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
