//! The statement rewrites of `datafusion-pg-catalog` that make PostgreSQL SQL plannable
//! by DataFusion, run in its order, with two of its choices undone (#14):
//!
//! - its `RemoveSubqueryFromProjection` replaced every correlated scalar subquery in a
//!   select list with NULL, and stamped `LIMIT 1` on the others, so
//!   `SELECT x, (SELECT max(y) FROM t2 WHERE t2.k = t1.x) FROM t1` answered NULLs and a
//!   subquery of two rows answered one instead of PostgreSQL's error 21000. DataFusion
//!   plans both correctly: the rule is left out.
//! - its whole-statement replacements of a few pgcli catalog queries (answered with
//!   no rows) are left out: our pg_catalog answers them.
//!
//! Its `FixArrayLiteral` split `'{a,"b c"}'::text[]` at every comma without PostgreSQL's
//! quoting; engine/array_literals.rs does that cast instead.
//!
//! `'name'::regclass` (and `regtype`, `regnamespace`, `regproc`) become scalar
//! subqueries over pg_catalog here, with `LIMIT 1` of their own (a function name has
//! several overloads); an unqualified relation name is looked up the way PostgreSQL
//! does, among the relations visible on the search path (`pg_table_is_visible`).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, ObjectName, Query, SelectItem, SetExpr, Statement,
    Value, ValueWithSpan, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_pg_catalog::sql::rules::*;

const REG_CASTS: &[(&str, &str)] = &[
    (
        "regclass",
        "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid \
         CROSS JOIN (SELECT parse_ident($1::TEXT) AS parts) \
         WHERE (array_length(parts, 1) = 1 AND c.relname = parts[1] AND pg_catalog.pg_table_is_visible(c.oid)) \
            OR (array_length(parts, 1) = 2 AND n.nspname = parts[1] AND c.relname = parts[2]) LIMIT 1",
    ),
    ("regnamespace", "SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1 LIMIT 1"),
    ("regtype", "SELECT oid FROM pg_catalog.pg_type WHERE typname = $1 LIMIT 1"),
    ("regproc", "SELECT oid FROM pg_catalog.pg_proc WHERE proname = $1 LIMIT 1"),
];

#[derive(Debug)]
pub struct Rewriter {
    rules: Vec<Arc<dyn SqlStatementRewriteRule>>,
    reg_casts: HashMap<&'static str, Box<Query>>,
}

impl Default for Rewriter {
    fn default() -> Self {
        let reg_casts = REG_CASTS
            .iter()
            .map(|(ty, sql)| {
                let query = match Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("reg cast templates parse").remove(0) {
                    Statement::Query(q) => q,
                    other => unreachable!("reg cast template is a query: {other}"),
                };
                (*ty, query)
            })
            .collect();
        Rewriter {
            rules: vec![
                Arc::new(AliasDuplicatedProjectionRewrite),
                Arc::new(ResolveUnqualifiedIdentifier),
                Arc::new(RewriteArrayAnyAllOperation),
                Arc::new(PrependUnqualifiedPgTableName),
                Arc::new(StripCallableQualifier),
                Arc::new(CurrentUserVariableToSessionUserFunctionCall),
                Arc::new(StripCollate),
                Arc::new(RewritePgCatalogOperator),
                Arc::new(FixVersionColumnName),
            ],
            reg_casts,
        }
    }
}

impl Rewriter {
    pub fn rewrite(&self, mut s: Statement) -> Statement {
        let _ = s.visit(&mut RecursiveCteColumns);
        let _ = s.visit(&mut RegCasts(&self.reg_casts));
        super::array_literals::rewrite_casts(&mut s);
        for rule in &self.rules {
            s = rule.rewrite(s);
        }
        s
    }
}

/// `WITH RECURSIVE t(a, b) AS (SELECT 1, 0 UNION ALL SELECT … FROM t …)`: DataFusion
/// names the work table's columns after the first SELECT's expressions, not the CTE's
/// column list, so the recursive term's `t.b` was "No field named t.b" (asyncpg's
/// type introspection query is one such: every asyncpg session that met a vector or an
/// array failed on it). The column names move onto the first SELECT's items.
struct RecursiveCteColumns;

impl VisitorMut for RecursiveCteColumns {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let Some(with) = query.with.as_mut().filter(|w| w.recursive) else { return ControlFlow::Continue(()) };
        for cte in &mut with.cte_tables {
            if cte.alias.columns.is_empty() {
                continue;
            }
            let mut body = cte.query.body.as_mut();
            while let SetExpr::SetOperation { left, .. } = body {
                body = left.as_mut();
            }
            let SetExpr::Select(select) = body else { continue };
            if select.projection.len() != cte.alias.columns.len() {
                continue;
            }
            for (item, column) in select.projection.iter_mut().zip(&cte.alias.columns) {
                *item = match std::mem::replace(item, SelectItem::UnnamedExpr(Expr::Value(Value::Null.into()))) {
                    SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                        SelectItem::ExprWithAlias { expr, alias: column.name.clone() }
                    }
                    other => other,
                };
            }
        }
        ControlFlow::Continue(())
    }
}

struct RegCasts<'a>(&'a HashMap<&'static str, Box<Query>>);

impl VisitorMut for RegCasts<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Cast { expr: operand, data_type, .. } = expr else { return ControlFlow::Continue(()) };
        let ty = data_type.to_string().to_ascii_lowercase();
        // `typelem::regtype::text` (asyncpg's introspection): the type's name, as
        // regtype's output function writes it.
        if matches!(ty.as_str(), "text" | "varchar" | "name" | "character varying") {
            if let Expr::Cast { expr: oid, data_type: inner, .. } = operand.as_ref() {
                let is_literal = matches!(oid.as_ref(), Expr::Value(ValueWithSpan { value: Value::SingleQuotedString(_) | Value::Placeholder(_), .. }));
                if !is_literal && inner.to_string().to_ascii_lowercase().trim_start_matches("pg_catalog.") == "regtype" {
                    *expr = call("format_type", vec![oid.as_ref().clone(), Expr::Value(Value::Null.into())]);
                    return ControlFlow::Continue(());
                }
            }
        }
        let Some(template) = self.0.get(ty.trim_start_matches("pg_catalog.")) else { return ControlFlow::Continue(()) };
        let replacement = match operand.as_ref() {
            // An OID written as text ('16384'::regclass) is that OID.
            Expr::Value(ValueWithSpan { value: Value::SingleQuotedString(s), .. }) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                Expr::Value(Value::Number(s.clone(), false).into())
            }
            Expr::Value(ValueWithSpan { value: Value::SingleQuotedString(_) | Value::Placeholder(_), .. }) => {
                let mut query = template.clone();
                let _ = query.visit(&mut Placeholder(operand.as_ref().clone()));
                Expr::Subquery(query)
            }
            // A column or expression: looked up when it runs (udf/pg_catalog_fns.rs).
            _ if ty.trim_start_matches("pg_catalog.") == "regclass" => call(crate::udf::pg_catalog_fns::REGCLASS_FN, vec![operand.as_ref().clone()]),
            _ => return ControlFlow::Continue(()),
        };
        *expr = replacement;
        ControlFlow::Continue(())
    }
}

/// `name(args…)`.
fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a))).collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

struct Placeholder(Expr);

impl VisitorMut for Placeholder {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if matches!(e, Expr::Value(ValueWithSpan { value: Value::Placeholder(_), .. })) {
            *e = self.0.clone();
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(sql: &str) -> String {
        let s = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        Rewriter::default().rewrite(s).to_string()
    }

    #[test]
    fn correlated_subqueries_in_select_lists_stay() {
        let sql = "SELECT x, (SELECT max(y) FROM t2 WHERE t2.k = t1.x) AS m FROM t1";
        assert_eq!(rewrite(sql), sql);
        let sql = "SELECT (SELECT y FROM t2) FROM t1";
        assert_eq!(rewrite(sql), sql);
    }

    #[test]
    fn reg_casts_become_lookups() {
        assert_eq!(rewrite("SELECT '16384'::regclass"), "SELECT 16384");
        let r = rewrite("SELECT 'public.t'::regclass");
        assert!(r.contains("parse_ident('public.t'::TEXT)") && r.ends_with("LIMIT 1)"), "{r}");
        let r = rewrite("SELECT $1::regproc");
        assert!(r.contains("proname = $1 LIMIT 1"), "{r}");
        // A cast of a column is looked up when it runs.
        assert_eq!(rewrite("SELECT relname::regclass FROM pg_class"), "SELECT lh_regclass(relname) FROM pg_catalog.pg_class");
        // A type's name, as regtype's output writes it.
        assert_eq!(rewrite("SELECT typelem::regtype::text FROM pg_type"), "SELECT format_type(typelem, NULL) FROM pg_catalog.pg_type");
        assert_eq!(rewrite("SELECT 'int4'::regtype::text").contains("typname = 'int4'"), true);
    }
}
