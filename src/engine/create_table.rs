//! What `CREATE TABLE` says beyond column types (#14), taken out of the statement
//! before DataFusion plans it (DataFusion refuses CHECK and FOREIGN KEY and knows no
//! SERIAL): `SERIAL`/`BIGSERIAL`/`SMALLSERIAL` and `GENERATED … AS IDENTITY` become
//! an integer column with `DEFAULT nextval('<table>_<column>_seq')` and a sequence
//! the column owns; `DEFAULT`s, `NOT NULL`, `PRIMARY KEY`, `UNIQUE`, `CHECK` and
//! `FOREIGN KEY` become catalog records, named as PostgreSQL names them. The insert
//! path enforces them (table_providers/owned.rs); foreign keys are kept and shown,
//! not enforced.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::ast::{
    ColumnDef, ColumnOption, ColumnOptionDef, CreateTable, DataType as SqlType, Expr, GeneratedAs, Ident, ObjectName,
    TableConstraint,
};

use crate::catalog::sequences::{self, SequenceRecord};
use crate::error::{Error, Result};

pub use crate::catalog::datasets::ConstraintRecord;

/// The part of a CREATE TABLE the catalog keeps beside the schema.
#[derive(Debug, Default, Clone)]
pub struct TableDdl {
    pub defaults: BTreeMap<String, String>,
    pub identity_always: Vec<String>,
    pub identity_by_default: Vec<String>,
    pub constraints: Vec<ConstraintRecord>,
    pub sequences: Vec<SequenceRecord>,
}

fn ident(i: &Ident) -> String {
    if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }
}

/// The integer type a SERIAL spelling stands for.
fn serial_type(t: &SqlType) -> Option<(SqlType, &'static str)> {
    let SqlType::Custom(name, mods) = t else { return None };
    if !mods.is_empty() {
        return None;
    }
    match name.to_string().to_lowercase().as_str() {
        "serial" | "serial4" => Some((SqlType::Integer(None), "integer")),
        "bigserial" | "serial8" => Some((SqlType::BigInt(None), "bigint")),
        "smallserial" | "serial2" => Some((SqlType::SmallInt(None), "smallint")),
        _ => None,
    }
}

fn int_type_name(t: &SqlType) -> Option<&'static str> {
    match t {
        SqlType::SmallInt(_) | SqlType::Int2(_) => Some("smallint"),
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => Some("integer"),
        SqlType::BigInt(_) | SqlType::Int8(_) => Some("bigint"),
        _ => None,
    }
}

/// A name PostgreSQL would choose: `<table>_<what>_<suffix>`, numbered when taken.
fn choose_name(base: &str, suffix: &str, taken: &dyn Fn(&str) -> bool) -> String {
    let mut name = format!("{base}_{suffix}");
    let mut n = 1;
    while taken(&name) {
        name = format!("{base}_{suffix}{n}");
        n += 1;
    }
    name
}

fn referenced_columns(expr: &Expr, columns: &[String]) -> Vec<String> {
    // In the order the expression names them: PostgreSQL names a table CHECK after
    // the first column it references.
    let text = expr.to_string();
    let mut out: Vec<String> = vec![];
    for w in text.split(|ch: char| !(ch.is_alphanumeric() || ch == '_')) {
        if let Some(c) = columns.iter().find(|c| c.eq_ignore_ascii_case(w)) {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
    }
    out
}

fn index_columns(cols: &[datafusion::sql::sqlparser::ast::IndexColumn]) -> Result<Vec<String>> {
    cols.iter()
        .map(|c| match &c.column.expr {
            Expr::Identifier(i) => Ok(ident(i)),
            other => Err(Error::NotSupported(format!("a key on an expression ({other}); name columns"))),
        })
        .collect()
}

fn object_table(name: &ObjectName) -> String {
    name.0.last().and_then(|p| p.as_ident()).map(ident).unwrap_or_else(|| name.to_string())
}

/// Take the constraints, defaults, SERIAL and identity columns out of `ct` (left as
/// DataFusion can plan it), for a table called `table` owned by `owner`.
/// `relation_taken` says whether a sequence name is in use already.
/// `key` is the table's catalog key (`schema.name` outside public): its sequences are
/// keyed in the same schema; constraints are named after the bare table name.
pub fn prepare(ct: &mut CreateTable, key: &str, owner: &str, relation_taken: &dyn Fn(&str) -> bool) -> Result<TableDdl> {
    let table = ct.name.0.last().and_then(|p| p.as_ident()).map(ident).unwrap_or_else(|| key.to_string());
    let table = table.as_str();
    let schema_prefix = key.strip_suffix(table).unwrap_or("");
    let mut ddl = TableDdl::default();
    let column_names: Vec<String> = ct.columns.iter().map(|c| ident(&c.name)).collect();
    let mut chosen: Vec<String> = vec![];
    let mut not_null: Vec<String> = vec![];
    {
        let constraint_taken = |n: &str, chosen: &[String]| chosen.iter().any(|c| c == n);
        for col in ct.columns.iter_mut() {
            let cname = ident(&col.name);
            let mut kept: Vec<ColumnOptionDef> = vec![];
            let mut serial = None;
            if let Some((t, type_name)) = serial_type(&col.data_type) {
                col.data_type = t;
                serial = Some((type_name, sequences::SequenceOptions { data_type: Some(type_name.into()), ..Default::default() }, false));
            }
            for opt in std::mem::take(&mut col.options) {
                let given = opt.name.as_ref().map(ident);
                match opt.option {
                    ColumnOption::Generated { generated_as, sequence_options, generation_expr: None, .. } => {
                        let Some(type_name) = int_type_name(&col.data_type) else {
                            return Err(Error::State(
                                "22023",
                                format!("identity column type must be smallint, integer, or bigint (column \"{cname}\" is {})", col.data_type),
                            ));
                        };
                        let mut o = super::sequences::options(None, sequence_options.as_deref().unwrap_or(&[]))?;
                        o.data_type = Some(type_name.into());
                        serial = Some((type_name, o, matches!(generated_as, GeneratedAs::Always)));
                        if !matches!(generated_as, GeneratedAs::Always) {
                            ddl.identity_by_default.push(cname.clone());
                        }
                    }
                    ColumnOption::Generated { .. } => {
                        return Err(Error::NotSupported(format!("generated column \"{cname}\" (GENERATED ALWAYS AS (expr) STORED)")));
                    }
                    ColumnOption::Default(e) => {
                        ddl.defaults.insert(cname.clone(), e.to_string());
                        kept.push(ColumnOptionDef { name: opt.name, option: ColumnOption::Default(e) });
                    }
                    ColumnOption::NotNull => not_null.push(cname.clone()),
                    ColumnOption::Null => {}
                    ColumnOption::PrimaryKey(_) => {
                        let name = given.unwrap_or_else(|| format!("{table}_pkey"));
                        chosen.push(name.clone());
                        ddl.constraints.push(ConstraintRecord { name, kind: "p".into(), columns: vec![cname.clone()], check: None, references: None, on_delete: None, on_update: None, comment: None });
                    }
                    ColumnOption::Unique(_) => {
                        let name = given.unwrap_or_else(|| choose_name(&format!("{table}_{cname}"), "key", &|n| constraint_taken(n, &chosen)));
                        chosen.push(name.clone());
                        ddl.constraints.push(ConstraintRecord { name, kind: "u".into(), columns: vec![cname.clone()], check: None, references: None, on_delete: None, on_update: None, comment: None });
                    }
                    ColumnOption::Check(c) => {
                        let name = given.or(c.name.as_ref().map(ident)).unwrap_or_else(|| choose_name(&format!("{table}_{cname}"), "check", &|n| constraint_taken(n, &chosen)));
                        chosen.push(name.clone());
                        ddl.constraints.push(ConstraintRecord { name, kind: "c".into(), columns: vec![cname.clone()], check: Some(c.expr.to_string()), references: None, on_delete: None, on_update: None, comment: None });
                    }
                    ColumnOption::ForeignKey(fk) => {
                        let name = given.or(fk.name.as_ref().map(ident)).unwrap_or_else(|| choose_name(&format!("{table}_{cname}"), "fkey", &|n| constraint_taken(n, &chosen)));
                        chosen.push(name.clone());
                        ddl.constraints.push(ConstraintRecord {
                            name,
                            kind: "f".into(),
                            columns: vec![cname.clone()],
                            check: None,
                            references: Some((object_table(&fk.foreign_table), fk.referred_columns.iter().map(ident).collect())),
                            on_delete: fk.on_delete.map(|a| a.to_string()),
                            on_update: fk.on_update.map(|a| a.to_string()),
                            comment: None,
                        });
                    }
                    other => kept.push(ColumnOptionDef { name: opt.name, option: other }),
                }
            }
            if let Some((_, options, always)) = serial {
                if ddl.defaults.contains_key(&cname) {
                    return Err(Error::State("42601", format!("multiple default values specified for column \"{cname}\" of table \"{table}\"")));
                }
                let seq_name = choose_name(&format!("{schema_prefix}{table}_{cname}"), "seq", &|n| relation_taken(n) || ddl.sequences.iter().any(|s| s.name == n));
                let mut rec = sequences::new_record(&seq_name, &options, Some(owner.to_string()))?;
                rec.owned_by = Some((key.to_string(), cname.clone()));
                let default = format!("nextval('{seq_name}')");
                kept.push(ColumnOptionDef { name: None, option: ColumnOption::Default(datafusion::sql::sqlparser::parser::Parser::new(&datafusion::sql::sqlparser::dialect::PostgreSqlDialect {})
                    .try_with_sql(&default)
                    .and_then(|mut p| p.parse_expr())
                    .map_err(|e| Error::Internal(e.to_string()))?) });
                ddl.defaults.insert(cname.clone(), default);
                if always {
                    ddl.identity_always.push(cname.clone());
                }
                ddl.sequences.push(rec);
                not_null.push(cname.clone());
            }
            col.options = kept;
        }
    }
    for c in std::mem::take(&mut ct.constraints) {
        let taken = |n: &str| chosen.iter().any(|c| c == n);
        let record = match c {
            TableConstraint::PrimaryKey(pk) => {
                let columns = index_columns(&pk.columns)?;
                ConstraintRecord { name: pk.name.as_ref().map(ident).unwrap_or_else(|| format!("{table}_pkey")), kind: "p".into(), columns, check: None, references: None, on_delete: None, on_update: None, comment: None }
            }
            TableConstraint::Unique(u) => {
                let columns = index_columns(&u.columns)?;
                let name = u.name.as_ref().map(ident).unwrap_or_else(|| choose_name(&format!("{table}_{}", columns.join("_")), "key", &taken));
                ConstraintRecord { name, kind: "u".into(), columns, check: None, references: None, on_delete: None, on_update: None, comment: None }
            }
            TableConstraint::ForeignKey(fk) => {
                let columns: Vec<String> = fk.columns.iter().map(ident).collect();
                let name = fk.name.as_ref().map(ident).unwrap_or_else(|| choose_name(&format!("{table}_{}", columns.join("_")), "fkey", &taken));
                ConstraintRecord {
                    name,
                    kind: "f".into(),
                    columns,
                    check: None,
                    references: Some((object_table(&fk.foreign_table), fk.referred_columns.iter().map(ident).collect())),
                    on_delete: fk.on_delete.map(|a| a.to_string()),
                    on_update: fk.on_update.map(|a| a.to_string()),
                    comment: None,
                }
            }
            TableConstraint::Check(c) => {
                let columns = referenced_columns(&c.expr, &column_names);
                let base = match columns.first() {
                    Some(first) => format!("{table}_{first}"),
                    None => table.to_string(),
                };
                let name = c.name.as_ref().map(ident).unwrap_or_else(|| choose_name(&base, "check", &taken));
                ConstraintRecord { name, kind: "c".into(), columns, check: Some(c.expr.to_string()), references: None, on_delete: None, on_update: None, comment: None }
            }
            other => {
                // INDEX / KEY inside CREATE TABLE are MySQL's; PostgreSQL has neither.
                return Err(Error::NotSupported(format!("{other} inside CREATE TABLE (use CREATE INDEX)")));
            }
        };
        if chosen.contains(&record.name) {
            return Err(Error::State("42P07", format!("relation \"{}\" already exists", record.name)));
        }
        chosen.push(record.name.clone());
        ddl.constraints.push(record);
    }
    if ddl.constraints.iter().filter(|c| c.kind == "p").count() > 1 {
        return Err(Error::State("42P16", format!("multiple primary keys for table \"{table}\" are not allowed")));
    }
    for c in &ddl.constraints {
        for col in &c.columns {
            if !column_names.contains(col) {
                return Err(Error::ColumnNotFound(format!("\"{col}\" named in key does not exist")));
            }
        }
        if c.kind == "p" {
            not_null.extend(c.columns.iter().cloned());
        }
    }
    for col in ct.columns.iter_mut() {
        if not_null.contains(&ident(&col.name)) {
            set_not_null(col);
        }
    }
    Ok(ddl)
}

fn set_not_null(col: &mut ColumnDef) {
    if !col.options.iter().any(|o| matches!(o.option, ColumnOption::NotNull)) {
        col.options.push(ColumnOptionDef { name: None, option: ColumnOption::NotNull });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn run(sql: &str) -> (String, TableDdl) {
        let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        let Statement::CreateTable(mut ct) = stmts.remove(0) else { panic!() };
        let ddl = prepare(&mut ct, "t", "alice", &|n| n == "t_b_seq").unwrap();
        (Statement::CreateTable(ct).to_string(), ddl)
    }

    #[test]
    fn serial_and_identity_become_defaults_with_owned_sequences() {
        let (sql, ddl) = run("CREATE TABLE t (id serial PRIMARY KEY, b bigserial, c int GENERATED ALWAYS AS IDENTITY (START WITH 10), d text DEFAULT 'x' NOT NULL)");
        assert!(sql.contains("id INTEGER DEFAULT nextval('t_id_seq') NOT NULL"), "{sql}");
        assert!(sql.contains("b BIGINT DEFAULT nextval('t_b_seq1') NOT NULL"), "{sql}");
        assert_eq!(ddl.sequences.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["t_id_seq", "t_b_seq1", "t_c_seq"]);
        assert_eq!(ddl.sequences[0].data_type, "integer");
        assert_eq!(ddl.sequences[2].start, 10);
        assert_eq!(ddl.sequences[0].owned_by, Some(("t".into(), "id".into())));
        assert_eq!(ddl.identity_always, ["c"]);
        assert_eq!(ddl.defaults["d"], "'x'");
        assert_eq!(ddl.constraints[0].name, "t_pkey");
    }

    #[test]
    fn constraints_are_named_as_postgres_names_them() {
        let (sql, ddl) = run(
            "CREATE TABLE t (a int UNIQUE CHECK (a > 0), b int REFERENCES other (id) ON DELETE CASCADE, c int, UNIQUE (b, c), CHECK (c < a), CONSTRAINT named CHECK (true), PRIMARY KEY (c))",
        );
        assert!(!sql.contains("CHECK") && !sql.contains("UNIQUE") && !sql.contains("REFERENCES"), "{sql}");
        let names: Vec<&str> = ddl.constraints.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["t_a_key", "t_a_check", "t_b_fkey", "t_b_c_key", "t_c_check", "named", "t_pkey"]);
        assert_eq!(ddl.constraints[2].references, Some(("other".into(), vec!["id".into()])));
        assert!(sql.contains("c INT NOT NULL"), "a primary key column is NOT NULL: {sql}");
    }
}

/// `CREATE UNLOGGED TABLE` as `CREATE TABLE` (each statement of a batch): every
/// table lakehouse writes is crash-safe, which an unlogged one only need not be.
/// None when no statement says UNLOGGED.
pub fn drop_unlogged(sql: &str) -> crate::error::Result<Option<String>> {
    if !sql.as_bytes().windows(8).any(|w| w.eq_ignore_ascii_case(b"unlogged")) {
        return Ok(None);
    }
    let parts = super::split::split_statements(sql)?;
    let mut changed = false;
    let out: Vec<String> = parts
        .into_iter()
        .map(|p| {
            let t = p.trim_start();
            let words: Vec<&str> = t.splitn(4, char::is_whitespace).filter(|w| !w.is_empty()).collect();
            match words.as_slice() {
                [c, u, tb, ..] if c.eq_ignore_ascii_case("create") && u.eq_ignore_ascii_case("unlogged") && tb.eq_ignore_ascii_case("table") => {
                    changed = true;
                    let at = t.to_ascii_lowercase().find("unlogged").unwrap_or(0);
                    format!("{}{}", &t[..at], &t[at + "unlogged".len()..])
                }
                _ => p,
            }
        })
        .collect();
    Ok(changed.then(|| out.join(";\n")))
}
