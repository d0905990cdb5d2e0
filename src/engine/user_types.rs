//! `CREATE TYPE … AS ENUM`, `CREATE DOMAIN`, `ALTER TYPE … ADD VALUE | RENAME VALUE
//! | RENAME TO`, `DROP TYPE`, `DROP DOMAIN` (#14). The records are catalog/types.rs's;
//! udf/user_types.rs plans and checks the values.
//!
//! sqlparser's CREATE DOMAIN wants `AS` and knows no `NOT NULL`/`NULL`/`CONSTRAINT name`,
//! so CREATE DOMAIN comes here as text (engine/custom.rs) and is parsed below with
//! sqlparser's pieces.

use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::TableReference;
use datafusion::sql::sqlparser::ast::{AlterType, AlterTypeAddValuePosition, AlterTypeOperation, DataType as SqlType, Expr as SqlExpr, Ident, ObjectName};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::{Engine, QueryResult, Session};
use crate::catalog::types::{TypeKind, TypeRecord, check_labels};
use crate::catalog::{CatalogState, now_rfc3339};
use crate::error::{Error, Result};
use crate::udf::user_types::oid_of;

/// A parsed CREATE DOMAIN.
#[derive(Debug)]
struct DomainDdl {
    name: ObjectName,
    data_type: SqlType,
    default: Option<SqlExpr>,
    not_null: bool,
    checks: Vec<(Option<Ident>, SqlExpr)>,
}

fn syntax(e: impl std::fmt::Display) -> Error {
    Error::Syntax(e.to_string())
}

/// `CREATE DOMAIN name [AS] type [COLLATE c] [DEFAULT e] [[CONSTRAINT n] {NOT NULL | NULL | CHECK (e)}]…`
fn parse_domain(sql: &str) -> Result<DomainDdl> {
    let dialect = PostgreSqlDialect {};
    let mut p = Parser::new(&dialect).try_with_sql(sql).map_err(syntax)?;
    p.expect_keywords(&[Keyword::CREATE, Keyword::DOMAIN]).map_err(syntax)?;
    let name = p.parse_object_name(false).map_err(syntax)?;
    let _ = p.parse_keyword(Keyword::AS);
    let data_type = p.parse_data_type().map_err(syntax)?;
    let mut d = DomainDdl { name, data_type, default: None, not_null: false, checks: vec![] };
    loop {
        if p.parse_keyword(Keyword::COLLATE) {
            return Err(Error::NotSupported("COLLATE on a domain (text compares byte-wise here)".into()));
        }
        if p.parse_keyword(Keyword::DEFAULT) {
            d.default = Some(p.parse_expr().map_err(syntax)?);
            continue;
        }
        let constraint = if p.parse_keyword(Keyword::CONSTRAINT) { Some(p.parse_identifier().map_err(syntax)?) } else { None };
        if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
            d.not_null = true;
        } else if p.parse_keyword(Keyword::NULL) {
            d.not_null = false;
        } else if p.parse_keyword(Keyword::CHECK) {
            p.expect_token(&Token::LParen).map_err(syntax)?;
            let e = p.parse_expr().map_err(syntax)?;
            p.expect_token(&Token::RParen).map_err(syntax)?;
            d.checks.push((constraint, e));
        } else if constraint.is_some() {
            return Err(Error::Syntax("CONSTRAINT name must be followed by NOT NULL, NULL or CHECK (…)".into()));
        } else {
            break;
        }
    }
    while p.consume_token(&Token::SemiColon) {}
    if p.peek_token().token != Token::EOF {
        return Err(Error::Syntax(format!("at or near \"{}\" in CREATE DOMAIN", p.peek_token().token)));
    }
    Ok(d)
}

/// The first name `base_check`, `base_check1`, … that `taken` does not hold.
fn check_name(domain: &str, taken: &[(String, String)]) -> String {
    let base = format!("{domain}_check");
    (0..)
        .map(|i| if i == 0 { base.clone() } else { format!("{base}{i}") })
        .find(|n| !taken.iter().any(|(t, _)| t == n))
        .unwrap_or(base)
}

/// Where type `oid` is used: "column b of table t", "type d" (a domain over it).
fn dependents(state: &CatalogState, oid: i32, temp: &[(String, crate::catalog::DatasetRecord)]) -> Vec<String> {
    let mut out = vec![];
    for (name, rec) in state.datasets.iter().chain(temp.iter().map(|(n, r)| (n, r))) {
        let Ok(Some(schema)) = rec.arrow_schema() else { continue };
        for f in schema.fields() {
            if uses(f, oid) {
                out.push(format!("column {} of table {name} depends on type", f.name()));
            }
        }
    }
    for (key, rec) in &state.types {
        if let TypeKind::Domain { field, .. } = &rec.kind {
            let Ok(schema) = crate::catalog::datasets::decode_schema(field) else { continue };
            if schema.fields().first().is_some_and(|f| uses(f, oid)) && oid_of(state, key) != oid {
                out.push(format!("type {key} depends on type"));
            }
        }
    }
    out
}

/// Does a field of this type (or an array of it) hold type `oid`, directly?
fn uses(f: &datafusion::arrow::datatypes::Field, oid: i32) -> bool {
    let m = |f: &datafusion::arrow::datatypes::Field| {
        [crate::udf::user_types::DOMAIN, crate::udf::user_types::TYPE_OID].iter().any(|k| f.metadata().get(*k).is_some_and(|v| v == &oid.to_string()))
    };
    m(f) || matches!(f.data_type(), datafusion::arrow::datatypes::DataType::List(i) | datafusion::arrow::datatypes::DataType::LargeList(i) if m(i))
}

/// The DEFAULT a column of type `t` gets from its domain (or the domain under it), as
/// PostgreSQL applies a domain's default to a column that has none of its own.
pub(super) fn domain_default(state: &CatalogState, t: &SqlType) -> Option<SqlExpr> {
    let mut t = t.clone();
    for _ in 0..32 {
        let SqlType::Custom(name, _) = &t else { return None };
        let key = crate::udf::user_types::resolve(state, name)?;
        let TypeKind::Domain { base, default, .. } = &state.types.get(&key)?.kind else { return None };
        if let Some(d) = default {
            return Parser::new(&PostgreSqlDialect {}).try_with_sql(d).ok()?.parse_expr().ok();
        }
        t = Parser::new(&PostgreSqlDialect {}).try_with_sql(base).ok()?.parse_data_type().ok()?;
    }
    None
}

/// Columns of a domain type without a DEFAULT of their own take the domain's.
pub(super) fn apply_domain_defaults(state: &CatalogState, columns: &mut [datafusion::sql::sqlparser::ast::ColumnDef]) {
    use datafusion::sql::sqlparser::ast::{ColumnOption, ColumnOptionDef};
    if state.types.is_empty() {
        return;
    }
    for c in columns {
        if c.options.iter().any(|o| matches!(o.option, ColumnOption::Default(_))) {
            continue;
        }
        if let Some(d) = domain_default(state, &c.data_type) {
            c.options.push(ColumnOptionDef { name: None, option: ColumnOption::Default(d) });
        }
    }
}

impl Engine {
    /// The catalog key a type name takes (schema checks as for a table).
    fn type_key(&self, name: &ObjectName) -> Result<String> {
        self.dataset_name(&TableReference::from(name.to_string().as_str()))
    }

    /// The key of an existing type, or 42704.
    fn existing_type(&self, name: &ObjectName) -> Result<String> {
        let state = self.catalog.snapshot();
        crate::udf::user_types::resolve(&state, name).ok_or_else(|| Error::UndefinedObject(format!("type \"{name}\" does not exist")))
    }

    fn require_type_owner(&self, session: &Session, rec: &TypeRecord) -> Result<()> {
        if session.identity().superuser || rec.owner.as_deref() == Some(session.user.as_str()) {
            return Ok(());
        }
        Err(Error::State("42501", format!("must be owner of type {}", rec.name)))
    }

    /// A name no type, table or view takes yet (PostgreSQL: a table has a row type
    /// of its name, so the names are shared).
    fn new_type_key(&self, name: &ObjectName) -> Result<String> {
        let key = self.type_key(name)?;
        let state = self.catalog.snapshot();
        if state.types.contains_key(&key) || state.datasets.contains_key(&key) {
            return Err(Error::DuplicateObject(format!("type \"{key}\"")));
        }
        Ok(key)
    }

    async fn put_type(&self, record: TypeRecord) -> Result<()> {
        let catalog = self.catalog.clone();
        crate::catalog::blocking(move || {
            catalog.update(|s| {
                s.types.insert(record.name.clone(), record);
                Ok(())
            })
        })
        .await
    }

    /// `CREATE TYPE name AS ENUM ('a', 'b')`.
    pub(super) async fn create_enum(&self, session: &Session, name: &ObjectName, labels: &[Ident]) -> Result<QueryResult> {
        let _ddl = self.ddl.lock().await;
        let key = self.new_type_key(name)?;
        let labels: Vec<String> = labels.iter().map(|l| l.value.clone()).collect();
        check_labels(&key, &labels)?;
        let record = TypeRecord { name: key, kind: TypeKind::Enum { labels }, owner: Some(session.user.clone()), created_at: now_rfc3339(), comment: None };
        self.put_type(record).await?;
        Ok(QueryResult::command("CREATE TYPE"))
    }

    /// The field a value of SQL type `t` has, as this session plans it: the type
    /// planners' own when they know the type (it carries the marks of an enum, a domain
    /// or `vector`, which a plan's schema does not keep), else DataFusion's.
    pub(super) async fn field_of_type(&self, session: &Session, t: &SqlType) -> Result<datafusion::arrow::datatypes::Field> {
        if let Some(f) = crate::udf::user_types::UserTypePlanner::new(self.catalog.clone()).field(t)? {
            return Ok(f);
        }
        let plan = session.ctx.state().create_logical_plan(&format!("SELECT CAST(NULL AS {t}) AS value")).await?;
        Ok(plan.schema().field(0).as_ref().clone())
    }

    /// `CREATE DOMAIN`, from its text.
    pub(super) async fn create_domain(&self, session: &Session, sql: &str) -> Result<QueryResult> {
        let d = parse_domain(sql)?;
        let _ddl = self.ddl.lock().await;
        let key = self.new_type_key(&d.name)?;
        // The base type: a built-in type, vector(n), an enum or another domain (whose
        // checks a value then passes first).
        let base = self.field_of_type(session, &d.data_type).await?.with_name("value").with_nullable(true);
        let schema = Arc::new(Schema::new(vec![base]));
        let (_, bare) = crate::table_providers::pg_relations::split_key(&self.catalog.snapshot(), &key);
        let mut checks: Vec<(String, String)> = vec![];
        for (constraint, e) in &d.checks {
            let sql = e.to_string();
            // Refused now when it does not plan over `value` (42703 for another column).
            crate::udf::user_types::plan_check(&sql, &schema)?;
            let name = match constraint {
                Some(c) => c.value.clone(),
                None => check_name(&bare, &checks),
            };
            checks.push((name, sql));
        }
        let default = d.default.as_ref().map(|e| e.to_string());
        let kind = TypeKind::Domain { base: d.data_type.to_string(), field: crate::catalog::datasets::encode_schema(&schema)?, not_null: d.not_null, default, checks };
        let record = TypeRecord { name: key, kind, owner: Some(session.user.clone()), created_at: now_rfc3339(), comment: None };
        self.put_type(record).await?;
        Ok(QueryResult::command("CREATE DOMAIN"))
    }

    /// `DROP TYPE` / `DROP DOMAIN [IF EXISTS] a, b`: refused (2BP01) while a column or
    /// another domain uses one.
    pub(super) async fn drop_types(&self, session: &Session, names: &[ObjectName], if_exists: bool, cascade: bool, domain: bool) -> Result<QueryResult> {
        let tag = if domain { "DROP DOMAIN" } else { "DROP TYPE" };
        let _ddl = self.ddl.lock().await;
        for n in names {
            let state = self.catalog.snapshot();
            let Some(key) = crate::udf::user_types::resolve(&state, n) else {
                if if_exists {
                    session.notice(format!("type \"{n}\" does not exist, skipping"));
                    continue;
                }
                return Err(Error::UndefinedObject(format!("type \"{n}\" does not exist")));
            };
            let rec = state.types.get(&key).cloned().ok_or_else(|| Error::Internal(format!("type {key} vanished")))?;
            if domain != matches!(rec.kind, TypeKind::Domain { .. }) {
                return Err(Error::State("42809", format!("\"{key}\" is not a {}", if domain { "domain" } else { "type that DROP TYPE drops; use DROP DOMAIN" })));
            }
            self.require_type_owner(session, &rec)?;
            let temp: Vec<(String, crate::catalog::DatasetRecord)> =
                session.temp.tables.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let deps = dependents(&state, oid_of(&state, &key), &temp);
            if !deps.is_empty() {
                let detail = deps.iter().map(|d| format!("{d} {key}")).collect::<Vec<_>>().join("\n");
                let what = if cascade { "CASCADE does not drop columns here: drop or change them first" } else { "Use DROP … CASCADE to drop the dependent objects too (columns: drop their tables first)" };
                return Err(Error::DependentObjects(format!("cannot drop type {key} because other objects depend on it\nDETAIL: {detail}\nHINT: {what}.")));
            }
            let catalog = self.catalog.clone();
            crate::catalog::blocking(move || catalog.update(|s| Ok(s.types.remove(&key)))).await?;
        }
        Ok(QueryResult::command(tag))
    }

    /// `ALTER TYPE name ADD VALUE [IF NOT EXISTS] 'v' [BEFORE | AFTER 'w']`,
    /// `RENAME VALUE 'a' TO 'b'`, `RENAME TO new`.
    pub(super) async fn alter_type(&self, session: &Session, at: &AlterType) -> Result<QueryResult> {
        let _ddl = self.ddl.lock().await;
        let key = self.existing_type(&at.name)?;
        let state = self.catalog.snapshot();
        let mut rec = state.types.get(&key).cloned().ok_or_else(|| Error::Internal(format!("type {key} vanished")))?;
        self.require_type_owner(session, &rec)?;
        let not_enum = || Error::State("42809", format!("{key} is not an enum"));
        match &at.operation {
            AlterTypeOperation::AddValue(add) => {
                let TypeKind::Enum { labels } = &mut rec.kind else { return Err(not_enum()) };
                let value = add.value.value.clone();
                if labels.contains(&value) {
                    if add.if_not_exists {
                        session.notice(format!("enum label \"{value}\" already exists, skipping"));
                        return Ok(QueryResult::command("ALTER TYPE"));
                    }
                    return Err(Error::DuplicateObject(format!("enum label \"{value}\"")));
                }
                let at_label = |l: &Ident| labels.iter().position(|x| x == &l.value).ok_or_else(|| Error::InvalidParameter(format!("\"{}\" is not an existing enum label", l.value)));
                let i = match &add.position {
                    None => labels.len(),
                    Some(AlterTypeAddValuePosition::Before(l)) => at_label(l)?,
                    Some(AlterTypeAddValuePosition::After(l)) => at_label(l)? + 1,
                };
                labels.insert(i, value);
                check_labels(&key, labels)?;
            }
            AlterTypeOperation::RenameValue(r) => {
                let TypeKind::Enum { labels } = &mut rec.kind else { return Err(not_enum()) };
                if labels.contains(&r.to.value) {
                    return Err(Error::DuplicateObject(format!("enum label \"{}\"", r.to.value)));
                }
                let i = labels.iter().position(|x| x == &r.from.value).ok_or_else(|| Error::InvalidParameter(format!("\"{}\" is not an existing enum label", r.from.value)))?;
                labels[i] = r.to.value.clone();
                check_labels(&key, labels)?;
                // Stored values keep the old label's text: refused while a column holds the type.
                let temp: Vec<(String, crate::catalog::DatasetRecord)> = vec![];
                if !dependents(&state, oid_of(&state, &key), &temp).is_empty() {
                    return Err(Error::NotSupported(format!("RENAME VALUE of enum {key} while a column uses it (stored values keep their text)")));
                }
            }
            AlterTypeOperation::Rename(r) => {
                let temp: Vec<(String, crate::catalog::DatasetRecord)> = vec![];
                if !dependents(&state, oid_of(&state, &key), &temp).is_empty() {
                    return Err(Error::NotSupported(format!("renaming type {key} while a column or domain uses it (its OID follows its name)")));
                }
                let schema = crate::table_providers::pg_relations::split_key(&state, &key).0;
                let new = crate::catalog::schemas::key(Some(&schema), &r.new_name.value);
                if state.types.contains_key(&new) || state.datasets.contains_key(&new) {
                    return Err(Error::DuplicateObject(format!("type \"{new}\"")));
                }
                rec.name = new.clone();
                let catalog = self.catalog.clone();
                crate::catalog::blocking(move || {
                    catalog.update(|s| {
                        s.types.remove(&key);
                        s.types.insert(new, rec);
                        Ok(())
                    })
                })
                .await?;
                return Ok(QueryResult::command("ALTER TYPE"));
            }
        }
        self.put_type(rec).await?;
        Ok(QueryResult::command("ALTER TYPE"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_domain_reads_postgres_forms() {
        let d = parse_domain("CREATE DOMAIN num_array numeric[]").unwrap();
        assert_eq!(d.data_type.to_string(), "NUMERIC[]");
        let d = parse_domain("create domain posint as int default 1 constraint positive check (VALUE > 0) not null check (value < 100);").unwrap();
        assert!(d.not_null);
        assert_eq!(d.default.unwrap().to_string(), "1");
        assert_eq!(d.checks.len(), 2);
        assert_eq!(d.checks[0].0.as_ref().unwrap().value, "positive");
        assert!(parse_domain("CREATE DOMAIN d AS int CONSTRAINT c").is_err());
        assert!(parse_domain("CREATE DOMAIN d AS int garbage").is_err());
        assert_eq!(check_name("d", &[("d_check".into(), String::new())]), "d_check1");
    }
}
