//! PostgreSQL expressions DataFusion does not have, written as ones it does, before
//! planning (#14):
//!
//! - `ARRAY(SELECT e FROM … ORDER BY o)` becomes `(SELECT coalesce(array_agg(e ORDER BY o),
//!   ARRAY[]) FROM …)` (`{}` when it has no rows, as PostgreSQL answers), other
//!   subqueries `(SELECT coalesce(array_agg(x), ARRAY[]) FROM (subquery) AS s(x))`;
//! - `generate_subscripts(a, 1)` in a select list becomes
//!   `unnest(range(1, array_length(a, 1) + 1))`, which runs beside an `unnest(a)` in
//!   the same list the way PostgreSQL's set-returning functions do (row by row);
//! - `user` is `current_user`;
//! - `generate_series(…)` in an expression becomes `unnest(generate_series(…))`: rows,
//!   not DataFusion's one list;
//! - `FROM generate_series(a, b) s` over columns becomes `FROM unnest(range(a, b + 1)) s`
//!   (DataFusion's table function takes constants only), and `FROM unnest(x) s` /
//!   `generate_series(…) s` name their one column `s`, as PostgreSQL does.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, OrderByKind, Query, SelectItem, SetExpr, Statement,
    TableAliasColumnDef, TableFactor, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

struct Rewrite;

fn function_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Function(f) => Some(f.name.to_string().to_ascii_lowercase().trim_start_matches("pg_catalog.").to_string()),
        _ => None,
    }
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).ok()?.parse_expr().ok()
}

/// Whether `e` reads a column (a function argument that is not a constant).
fn reads_columns(e: &Expr) -> bool {
    let mut found = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(e, |e| {
        if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

impl VisitorMut for Rewrite {
    type Break = ();

    fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> ControlFlow<()> {
        // `FROM generate_series(0, array_upper(pr.prattrs, 1)) s`: DataFusion's table
        // function takes constants only; over columns it is `unnest(range(…))`.
        if let TableFactor::Table { name, alias, args: Some(args), with_ordinality: false, .. } = t {
            let function = name.to_string().to_ascii_lowercase();
            let exprs: Vec<&Expr> = args
                .args
                .iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                    _ => None,
                })
                .collect();
            if function.trim_start_matches("pg_catalog.") == "unnest" && exprs.len() == args.args.len() && exprs.len() == 1 {
                *t = TableFactor::UNNEST {
                    alias: alias.take(),
                    array_exprs: vec![exprs[0].clone()],
                    with_offset: false,
                    with_offset_alias: None,
                    with_ordinality: false,
                };
            } else if function.trim_start_matches("pg_catalog.") == "generate_series"
                && exprs.len() == args.args.len()
                && exprs.iter().any(|e| reads_columns(e))
            {
                let call = match exprs.as_slice() {
                    [a, b] => Some(format!("range(CAST({a} AS BIGINT), CAST({b} AS BIGINT) + 1)")),
                    [a, b, step] => Some(format!("range(CAST({a} AS BIGINT), CAST({b} AS BIGINT) + CASE WHEN {step} < 0 THEN -1 ELSE 1 END, CAST({step} AS BIGINT))")),
                    _ => None,
                };
                if let Some(arg) = call.and_then(|c| parse_expr(&c)) {
                    *t = TableFactor::UNNEST {
                        alias: alias.take(),
                        array_exprs: vec![arg],
                        with_offset: false,
                        with_offset_alias: None,
                        with_ordinality: false,
                    };
                }
            }
        }
        // A function returning one column, aliased `f(…) s`, names the column `s` too.
        let alias = match t {
            TableFactor::UNNEST { alias, array_exprs, with_offset: false, with_ordinality: false, .. } if array_exprs.len() == 1 => alias,
            TableFactor::Table { name, alias, args: Some(_), with_ordinality: false, .. }
                if name.to_string().to_ascii_lowercase().trim_start_matches("pg_catalog.") == "generate_series" =>
            {
                alias
            }
            _ => return ControlFlow::Continue(()),
        };
        if let Some(alias) = alias {
            if alias.columns.is_empty() {
                alias.columns = vec![TableAliasColumnDef::from_name(alias.name.value.clone())];
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Cast { data_type, .. } = expr {
            if let Some(t) = unqualified_type(data_type) {
                *data_type = t;
            }
        }
        // `user` (a keyword, not a column: a column of that name is written quoted)
        // is current_user.
        let is_user = match &*expr {
            Expr::Identifier(i) => i.quote_style.is_none() && i.value.eq_ignore_ascii_case("user"),
            Expr::Function(f) => matches!(f.args, FunctionArguments::None) && f.name.to_string().eq_ignore_ascii_case("user"),
            _ => false,
        };
        if is_user {
            // (current_user itself is session_user by then: pg_compat.rs runs first.)
            if let Some(e) = parse_expr("session_user") {
                *expr = e;
            }
            return ControlFlow::Continue(());
        }
        match function_name(expr).as_deref() {
            Some("array") => {
                let Expr::Function(f) = expr else { return ControlFlow::Continue(()) };
                if let FunctionArguments::Subquery(q) = &f.args {
                    let sql = match array_agg_of(q) {
                        Some(sql) => sql,
                        None => format!("(SELECT coalesce(array_agg(lh_array_item), ARRAY[]) FROM ({q}) AS lh_array(lh_array_item))"),
                    };
                    if let Some(e) = parse_expr(&sql) {
                        *expr = e;
                    }
                }
            }
            // In a select list generate_series returns rows, as PostgreSQL's
            // set-returning functions do; DataFusion's scalar one returns one list.
            Some("generate_series") => {
                integer_parameters(expr);
                if let Some(e) = parse_expr(&format!("unnest({expr})")) {
                    *expr = e;
                }
            }
            Some("generate_subscripts") => {
                let Expr::Function(f) = expr else { return ControlFlow::Continue(()) };
                let FunctionArguments::List(list) = &f.args else { return ControlFlow::Continue(()) };
                let args: Vec<String> = list
                    .args
                    .iter()
                    .filter_map(|a| match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.to_string()),
                        _ => None,
                    })
                    .collect();
                if let [array, dim] = args.as_slice() {
                    if let Some(e) = parse_expr(&format!("unnest(range(1, CAST(coalesce(array_length({array}, {dim}), 0) AS BIGINT) + 1))")) {
                        *expr = e;
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// `generate_series(0, $1)`: a parameter beside integers is a bigint, as PostgreSQL
/// infers it (DataFusion left it untyped, and drivers sent it as text).
fn integer_parameters(call: &mut Expr) {
    let Expr::Function(f) = call else { return };
    let FunctionArguments::List(list) = &mut f.args else { return };
    let is_placeholder = |e: &Expr| matches!(e, Expr::Value(v) if matches!(v.value, Value::Placeholder(_)));
    let integer = |e: &Expr| match e {
        Expr::Value(v) => matches!(&v.value, Value::Number(n, _) if !n.contains(['.', 'e', 'E'])),
        Expr::UnaryOp { expr, .. } => matches!(expr.as_ref(), Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if !n.contains(['.', 'e', 'E']))),
        _ => false,
    };
    let args: Vec<&mut Expr> = list
        .args
        .iter_mut()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect();
    if !args.iter().all(|e| is_placeholder(e) || integer(e)) {
        return;
    }
    for e in args {
        if is_placeholder(e) {
            *e = Expr::Cast {
                kind: datafusion::sql::sqlparser::ast::CastKind::DoubleColon,
                expr: Box::new(e.clone()),
                data_type: DataType::BigInt(None),
                array: false,
                format: None,
            };
        }
    }
}

/// `"pg_catalog"."timestamp"`, `pg_catalog._int4` (asyncpg's mogrify casts to the
/// qualified type names it read from pg_type) as the types they name: `timestamp`,
/// `int4[]`.
fn unqualified_type(t: &DataType) -> Option<DataType> {
    let DataType::Custom(name, modifiers) = t else { return None };
    let parts: Vec<String> = name.0.iter().filter_map(|p| p.as_ident()).map(|i| i.value.to_ascii_lowercase()).collect();
    let [schema, ty] = parts.as_slice() else { return None };
    if schema != "pg_catalog" || !ty.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let (base, array) = match ty.strip_prefix('_') {
        Some(b) => (b, "[]"),
        None => (ty.as_str(), ""),
    };
    let modifiers = if modifiers.is_empty() { String::new() } else { format!("({})", modifiers.join(", ")) };
    Parser::new(&PostgreSqlDialect {}).try_with_sql(&format!("{base}{modifiers}{array}")).ok()?.parse_data_type().ok()
}

/// `ARRAY(SELECT e FROM … WHERE … ORDER BY o)` as `(SELECT coalesce(array_agg(e ORDER BY o),
/// ARRAY[]) FROM … WHERE …)`, for a plain SELECT of one column (no grouping, DISTINCT or
/// LIMIT); DataFusion decorrelates this form where it does not a derived table.
fn array_agg_of(q: &Query) -> Option<String> {
    if q.with.is_some() || q.limit_clause.is_some() || q.fetch.is_some() {
        return None;
    }
    let SetExpr::Select(select) = q.body.as_ref() else { return None };
    let [item] = select.projection.as_slice() else { return None };
    let (e, alias) = match item {
        SelectItem::UnnamedExpr(e) => (e, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
        _ => return None,
    };
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(v, _) if v.is_empty());
    if select.distinct.is_some() || grouped || select.having.is_some() || !select.named_window.is_empty() || select.qualify.is_some() {
        return None;
    }
    let mut order = vec![];
    if let Some(ob) = &q.order_by {
        let OrderByKind::Expressions(items) = &ob.kind else { return None };
        for o in items {
            let mut o = o.clone();
            match &o.expr {
                Expr::Value(v) if v.value == Value::Number("1".into(), false) => o.expr = e.clone(),
                Expr::Identifier(i) if alias.is_some_and(|a| a.value == i.value) => o.expr = e.clone(),
                Expr::Value(_) => return None,
                _ => {}
            }
            order.push(o.to_string());
        }
    }
    let mut rest = select.clone();
    rest.projection = vec![];
    let order = if order.is_empty() { String::new() } else { format!(" ORDER BY {}", order.join(", ")) };
    let from: Vec<String> = rest.from.iter().map(|t| t.to_string()).collect();
    let from = if from.is_empty() { String::new() } else { format!(" FROM {}", from.join(", ")) };
    let filter = rest.selection.as_ref().map(|w| format!(" WHERE {w}")).unwrap_or_default();
    Some(format!("(SELECT coalesce(array_agg({e}{order}), ARRAY[]){from}{filter})"))
}

pub fn rewrite(statement: &mut Statement) {
    let _ = statement.visit(&mut Rewrite);
}
