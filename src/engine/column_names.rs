//! PostgreSQL's output column names and literal types for the top-level `SELECT`.
//!
//! DataFusion names an output column after its expression (`count(*)`,
//! `l2_distance(Utf8("[0,0]"),Utf8("[3,4]"))`, `Int64(1)`) and refuses two columns of
//! the same name; PostgreSQL names it by FigureColname (a function's name, a column's
//! name, the type of a cast, `case`, `array`, else `?column?`) and allows duplicates.
//! [`rewrite`] gives each unnamed item of the query's select lists the name PostgreSQL
//! would; a name already taken in the list gets a hidden suffix (`\u{1}2`) that
//! [`display_name`] removes where the row description is written, so `SELECT 1 AS a, 2
//! AS a` and `SELECT count(*), count(x)` run and are headed as in PostgreSQL. A bare
//! integer literal in a select list or a `VALUES` row becomes `int4` when it fits (it is
//! an `int8` in DataFusion; node-postgres reads int8 as a string), as in PostgreSQL.
//! Arithmetic on literals stays int8 (DataFusion's int4 arithmetic wraps on overflow
//! where PostgreSQL raises 22003; int8 does not reach it from int4 operands).

use std::collections::HashSet;

use datafusion::sql::sqlparser::ast::{
    self, CastKind, Expr, Ident, Query, Select, SelectItem, SetExpr, Statement, UnaryOperator, Value,
};

/// Marks a name made unique for DataFusion; the row description shows what precedes it.
const HIDDEN: char = '\u{1}';

/// The name shown to clients for an output field.
pub fn display_name(name: &str) -> &str {
    name.split(HIDDEN).next().unwrap_or(name)
}

/// Name the top-level query's output columns as PostgreSQL does.
pub fn rewrite(statement: &mut Statement) {
    if let Statement::Query(q) = statement {
        name_query(q);
    }
}

fn name_query(q: &mut Query) {
    // A set operation's columns are named by its first branch; every branch's
    // literals get PostgreSQL's types.
    name_set_expr(&mut q.body, true);
}

fn name_set_expr(body: &mut SetExpr, names: bool) {
    match body {
        SetExpr::Select(s) => name_select(s, names),
        SetExpr::Query(q) => name_set_expr(&mut q.body, names),
        SetExpr::SetOperation { left, right, .. } => {
            name_set_expr(left, names);
            name_set_expr(right, false);
        }
        SetExpr::Values(v) => {
            for row in &mut v.rows {
                for e in row.content.iter_mut() {
                    int4_literal(e);
                }
            }
        }
        _ => {}
    }
}

fn name_select(s: &mut Select, names: bool) {
    let mut taken: HashSet<String> = HashSet::new();
    for item in s.projection.iter_mut() {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
            _ => continue,
        };
        let figured = if names { alias.as_ref().map(|a| a.value.clone()).or_else(|| figure(expr)) } else { None };
        int4_literal(expr);
        let Some(name) = figured else {
            // A plain column keeps DataFusion's name (the column's); remember it.
            if let Some(n) = column_name(expr) {
                taken.insert(n);
            }
            continue;
        };
        let mut unique = name.clone();
        let mut k = 2;
        while !taken.insert(unique.clone()) {
            unique = format!("{name}{HIDDEN}{k}");
            k += 1;
        }
        let alias = Ident::with_quote('"', unique);
        let expr = std::mem::replace(expr, Expr::value(Value::Null));
        *item = SelectItem::ExprWithAlias { expr, alias };
    }
}

/// The name DataFusion gives a plain column reference (the last identifier).
fn column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(ident_name(i)),
        Expr::CompoundIdentifier(parts) => parts.last().map(ident_name),
        _ => None,
    }
}

fn ident_name(i: &Ident) -> String {
    if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }
}

/// PostgreSQL's FigureColname for an unnamed select item; None keeps DataFusion's name
/// (column references, which DataFusion already names by the column).
fn figure(e: &Expr) -> Option<String> {
    Some(match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => return None,
        _ => figure_inner(e).unwrap_or_else(|| "?column?".into()),
    })
}

fn figure_inner(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => column_name(e),
        Expr::Nested(inner) => figure_inner(inner),
        Expr::Function(f) => f.name.0.last().and_then(|p| p.as_ident()).map(ident_name),
        Expr::Cast { expr, data_type, kind, .. } => {
            // A cast's type names it unless its argument names itself more strongly
            // (a column, a function, ARRAY[…]); an inner cast or a literal does not.
            let inner = cast_argument_name(expr);
            match kind {
                CastKind::DoubleColon | CastKind::Cast => inner.or_else(|| Some(type_name(data_type))),
                _ => inner,
            }
        }
        Expr::TypedString(t) => Some(type_name(&t.data_type)),
        Expr::Value(v) if matches!(v.value, Value::Boolean(_)) => Some("bool".into()),
        Expr::Interval(_) => Some("interval".into()),
        Expr::Case { .. } => Some("case".into()),
        Expr::Array(_) => Some("array".into()),
        Expr::Exists { .. } => Some("exists".into()),
        Expr::Tuple(_) => Some("row".into()),
        Expr::Subquery(q) => match q.body.as_ref() {
            SetExpr::Select(s) => match s.projection.as_slice() {
                [SelectItem::ExprWithAlias { alias, .. }] => Some(alias.value.clone()),
                [SelectItem::UnnamedExpr(e)] => figure_inner(e),
                _ => None,
            },
            _ => None,
        },
        Expr::Substring { .. } => Some("substring".into()),
        Expr::Trim { .. } => Some("btrim".into()),
        Expr::Position { .. } => Some("position".into()),
        Expr::Extract { .. } => Some("extract".into()),
        Expr::Ceil { .. } => Some("ceil".into()),
        Expr::Floor { .. } => Some("floor".into()),
        Expr::Overlay { .. } => Some("overlay".into()),
        Expr::AtTimeZone { .. } => Some("timezone".into()),
        Expr::CompoundFieldAccess { root, access_chain } => match access_chain.last() {
            Some(ast::AccessExpr::Dot(Expr::Identifier(i))) => Some(ident_name(i)),
            _ => figure_inner(root),
        },
        _ => None,
    }
}

/// The name a cast's argument gives when it names itself more strongly than a cast
/// (FigureColname's strength 2): through inner casts; literals give none.
fn cast_argument_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Nested(inner) => cast_argument_name(inner),
        Expr::Cast { expr, .. } => cast_argument_name(expr),
        Expr::TypedString(_) | Expr::Value(_) => None,
        other => figure_inner(other),
    }
}

/// The name PostgreSQL gives a type as written in a cast: `int` is `int4`, `double
/// precision` is `float8`, `varchar(10)` is `varchar`, `vector(3)` is `vector`.
pub fn type_name(t: &ast::DataType) -> String {
    let written = t.to_string().to_lowercase();
    let base = written.split('(').next().unwrap_or(&written).trim_end_matches("[]").trim();
    let base = base.rsplit('.').next().unwrap_or(base);
    match base {
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "real" | "float4" => "float4",
        "double precision" | "double" | "float8" => "float8",
        "float" => match written.trim_start_matches("float(").trim_end_matches(')').parse::<u32>() {
            Ok(p) if p <= 24 => "float4",
            _ => "float8",
        },
        "bool" | "boolean" => "bool",
        "varchar" | "character varying" => "varchar",
        "char" | "character" => "bpchar",
        "decimal" | "dec" | "numeric" => "numeric",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "timestamptz" | "timestamp with time zone" => "timestamptz",
        "time" | "time without time zone" => "time",
        "timetz" | "time with time zone" => "timetz",
        other => return other.to_string(),
    }
    .to_string()
}

/// `1` as PostgreSQL types it: int4 when it fits, else int8 (DataFusion's only type).
fn int4_literal(e: &mut Expr) {
    let fits = |n: &str, negative: bool| {
        n.parse::<i64>().ok().is_some_and(|v| i32::try_from(if negative { -v } else { v }).is_ok())
    };
    let is_int = match e {
        Expr::Value(v) => matches!(&v.value, Value::Number(n, _) if fits(n, false)),
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => {
            matches!(expr.as_ref(), Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if fits(n, true)))
        }
        _ => false,
    };
    if is_int {
        let inner = std::mem::replace(e, Expr::value(Value::Null));
        *e = Expr::Cast { kind: CastKind::Cast, expr: Box::new(inner), data_type: ast::DataType::Int(None), array: false, format: None };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut s = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        rewrite(&mut s);
        s.to_string().replace(HIDDEN, "#")
    }

    #[test]
    fn items_are_named_as_postgres_names_them() {
        assert_eq!(rewritten("SELECT 1"), r#"SELECT CAST(1 AS INT) AS "?column?""#);
        assert_eq!(rewritten("SELECT count(*), count(x) FROM t"), r#"SELECT count(*) AS "count", count(x) AS "count#2" FROM t"#);
        assert_eq!(rewritten("SELECT 1 AS a, 3 AS a"), r#"SELECT CAST(1 AS INT) AS "a", CAST(3 AS INT) AS "a#2""#);
        assert_eq!(rewritten("SELECT a, t.b, a + 1 FROM t"), r#"SELECT a, t.b, a + 1 AS "?column?" FROM t"#);
        assert_eq!(rewritten("SELECT '1'::int, x::text, CASE WHEN true THEN 1 END, ARRAY[1]"),
            r#"SELECT '1'::INT AS "int4", x::TEXT AS "x", CASE WHEN true THEN 1 END AS "case", ARRAY[1] AS "array""#);
        assert_eq!(rewritten("SELECT 3000000000, -5, 1.5"), r#"SELECT 3000000000 AS "?column?", CAST(-5 AS INT) AS "?column?#2", 1.5 AS "?column?#3""#);
        assert_eq!(rewritten("SELECT 1 UNION SELECT 2"), r#"SELECT CAST(1 AS INT) AS "?column?" UNION SELECT CAST(2 AS INT)"#);
        assert_eq!(rewritten("INSERT INTO t VALUES (1)"), "INSERT INTO t VALUES (1)");
        assert_eq!(display_name("count\u{1}2"), "count");
        // A cast names an item unless its argument (through inner casts) names itself.
        assert!(rewritten("SELECT '[1,2,3]'::vector::real[]").ends_with(r#"AS "float4""#));
        assert!(rewritten("SELECT ARRAY[1,2,3]::float4[]::vector").ends_with(r#"AS "array""#));
        assert!(rewritten("SELECT '{1,2,3}'::real[]::vector(3)").ends_with(r#"AS "vector""#));
    }

    #[test]
    fn cast_type_names_are_postgres_names() {
        for (sql, name) in [("x::double precision", "float8"), ("x::varchar(3)", "varchar"), ("x::vector(3)", "vector"), ("x::bigint[]", "int8"), ("x::timestamptz", "timestamptz"), ("x::real", "float4")] {
            let mut s = Parser::parse_sql(&PostgreSqlDialect {}, &format!("SELECT {}", sql.replace("x::", "NULL::"))).unwrap().remove(0);
            rewrite(&mut s);
            assert!(s.to_string().ends_with(&format!("AS \"{name}\"")), "{sql}: {s}");
        }
    }
}
