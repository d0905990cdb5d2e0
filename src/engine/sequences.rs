//! `CREATE SEQUENCE`, `ALTER SEQUENCE`, `DROP SEQUENCE` (the allocator behind
//! `nextval` is catalog/sequences.rs).
//!
//! sqlparser takes CREATE SEQUENCE's options only in one fixed order and has no
//! ALTER SEQUENCE; PostgreSQL takes them in any order. Both statements are parsed
//! here from the tokens; `Engine::parse` carries their text to `execute_statement`
//! (engine/custom.rs).

use datafusion::sql::sqlparser::ast::{DataType as SqlType, Expr, ObjectName, SequenceOptions as SqlSeqOption, UnaryOperator, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::{Engine, QueryResult, Session};
use crate::catalog::sequences::{self, SequenceOptions, SequenceRecord, resolve_name, sequence_access, undefined};
use crate::error::{Error, Result};

/// A CREATE or ALTER SEQUENCE statement.
#[derive(Debug, Default, PartialEq)]
pub struct SequenceDdl {
    pub alter: bool,
    pub temporary: bool,
    /// IF NOT EXISTS (create) or IF EXISTS (alter).
    pub if_clause: bool,
    pub name: String,
    pub options: SequenceOptions,
    /// OWNED BY: `Some(None)` for NONE.
    pub owned_by: Option<Option<(String, String)>>,
    /// RESTART [WITH n].
    pub restart: Option<Option<i64>>,
}

/// Words and numbers of a statement; identifiers keep PostgreSQL's folding.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String, bool),
    Number(i64),
    Dot,
    Comma,
    Other(String),
}

fn tokens(sql: &str) -> Result<Vec<Tok>> {
    let raw = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().map_err(|e| Error::Syntax(e.to_string()))?;
    let mut out = vec![];
    let mut negative = false;
    for t in raw {
        match t {
            Token::Whitespace(_) | Token::SemiColon => {}
            Token::Minus => negative = !negative,
            Token::Plus => {}
            Token::Number(n, _) => {
                let v: i64 = n.parse().map_err(|_| Error::InvalidParameter(format!("{n} is out of range for type bigint")))?;
                out.push(Tok::Number(if negative { -v } else { v }));
                negative = false;
            }
            Token::Word(w) => out.push(Tok::Word(if w.quote_style.is_some() { w.value } else { w.value.to_lowercase() }, w.quote_style.is_some())),
            Token::Period => out.push(Tok::Dot),
            Token::Comma => out.push(Tok::Comma),
            other => out.push(Tok::Other(other.to_string())),
        }
    }
    Ok(out)
}

struct Cursor {
    toks: Vec<Tok>,
    at: usize,
}

impl Cursor {
    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.toks.get(self.at), Some(Tok::Word(w, false)) if w == kw)
    }
    fn kw(&mut self, kw: &str) -> bool {
        let yes = self.peek_kw(kw);
        if yes {
            self.at += 1;
        }
        yes
    }
    fn expect(&mut self, kw: &str) -> Result<()> {
        if self.kw(kw) { Ok(()) } else { Err(self.unexpected(&kw.to_uppercase())) }
    }
    fn unexpected(&self, wanted: &str) -> Error {
        let got = match self.toks.get(self.at) {
            Some(Tok::Word(w, _)) => w.clone(),
            Some(Tok::Number(n)) => n.to_string(),
            Some(Tok::Dot) => ".".into(),
            Some(Tok::Comma) => ",".into(),
            Some(Tok::Other(o)) => o.clone(),
            None => "end of input".into(),
        };
        Error::Syntax(format!("syntax error at or near \"{got}\" (expected {wanted})"))
    }
    fn number(&mut self) -> Result<i64> {
        match self.toks.get(self.at) {
            Some(Tok::Number(n)) => {
                self.at += 1;
                Ok(*n)
            }
            _ => Err(self.unexpected("an integer")),
        }
    }
    fn maybe_number(&mut self) -> Option<i64> {
        match self.toks.get(self.at) {
            Some(Tok::Number(n)) => {
                self.at += 1;
                Some(*n)
            }
            _ => None,
        }
    }
    /// A possibly qualified name, its parts.
    fn name(&mut self) -> Result<Vec<String>> {
        let mut parts = vec![];
        loop {
            match self.toks.get(self.at) {
                Some(Tok::Word(w, _)) => {
                    parts.push(w.clone());
                    self.at += 1;
                }
                _ => return Err(self.unexpected("a name")),
            }
            if matches!(self.toks.get(self.at), Some(Tok::Dot)) {
                self.at += 1;
            } else {
                return Ok(parts);
            }
        }
    }
}

fn quote(parts: &[String]) -> String {
    parts.iter().map(|p| format!("\"{}\"", p.replace('"', "\"\""))).collect::<Vec<_>>().join(".")
}

/// Parse CREATE/ALTER SEQUENCE as PostgreSQL's grammar has them.
pub fn parse_sequence_ddl(sql: &str) -> Result<SequenceDdl> {
    let mut c = Cursor { toks: tokens(sql)?, at: 0 };
    let mut d = SequenceDdl::default();
    if c.kw("alter") {
        d.alter = true;
        c.expect("sequence")?;
        if c.kw("if") {
            c.expect("exists")?;
            d.if_clause = true;
        }
    } else {
        c.expect("create")?;
        d.temporary = c.kw("temp") || c.kw("temporary");
        c.kw("unlogged");
        c.expect("sequence")?;
        if c.kw("if") {
            c.expect("not")?;
            c.expect("exists")?;
            d.if_clause = true;
        }
    }
    d.name = resolve_name(&quote(&c.name()?))?;
    while c.at < c.toks.len() {
        if c.kw("as") {
            let t = c.name()?.join(" ");
            d.options.data_type = Some(match t.as_str() {
                "smallint" | "int2" => "smallint".into(),
                "integer" | "int" | "int4" => "integer".into(),
                "bigint" | "int8" => "bigint".into(),
                other => return Err(Error::InvalidParameter(format!("sequence type must be smallint, integer, or bigint (got {other})"))),
            });
        } else if c.kw("increment") {
            c.kw("by");
            d.options.increment = Some(c.number()?);
        } else if c.kw("minvalue") {
            d.options.min = Some(Some(c.number()?));
        } else if c.kw("maxvalue") {
            d.options.max = Some(Some(c.number()?));
        } else if c.kw("no") {
            if c.kw("minvalue") {
                d.options.min = Some(None);
            } else if c.kw("maxvalue") {
                d.options.max = Some(None);
            } else if c.kw("cycle") {
                d.options.cycle = Some(false);
            } else {
                return Err(c.unexpected("MINVALUE, MAXVALUE or CYCLE"));
            }
        } else if c.kw("start") {
            c.kw("with");
            d.options.start = Some(c.number()?);
        } else if c.kw("cache") {
            d.options.cache = Some(c.number()?);
        } else if c.kw("cycle") {
            d.options.cycle = Some(true);
        } else if c.kw("owned") {
            c.expect("by")?;
            let parts = c.name()?;
            d.owned_by = Some(match parts.as_slice() {
                [none] if none == "none" => None,
                [.., t, col] => Some((t.clone(), col.clone())),
                _ => return Err(Error::InvalidParameter("OWNED BY needs table.column (or NONE)".into())),
            });
        } else if d.alter && c.kw("restart") {
            c.kw("with");
            d.restart = Some(c.maybe_number());
        } else {
            return Err(c.unexpected("a sequence option"));
        }
    }
    Ok(d)
}

fn literal_i64(e: &Expr) -> Result<i64> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().map_err(|_| Error::InvalidParameter(format!("{n} is not a bigint"))),
            other => Err(Error::InvalidParameter(format!("sequence option {other} must be an integer"))),
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => literal_i64(expr).map(|v| -v),
        Expr::UnaryOp { op: UnaryOperator::Plus, expr } => literal_i64(expr),
        other => Err(Error::InvalidParameter(format!("sequence option {other} must be an integer"))),
    }
}

fn type_name(t: &SqlType) -> Result<String> {
    Ok(match t {
        SqlType::SmallInt(_) | SqlType::Int2(_) => "smallint".into(),
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => "integer".into(),
        SqlType::BigInt(_) | SqlType::Int8(_) => "bigint".into(),
        other => return Err(Error::InvalidParameter(format!("sequence type must be smallint, integer, or bigint (got {other})"))),
    })
}

/// sqlparser's sequence options as ours.
pub fn options(data_type: Option<&SqlType>, opts: &[SqlSeqOption]) -> Result<SequenceOptions> {
    let mut o = SequenceOptions { data_type: data_type.map(type_name).transpose()?, ..Default::default() };
    for opt in opts {
        match opt {
            SqlSeqOption::IncrementBy(e, _) => o.increment = Some(literal_i64(e)?),
            SqlSeqOption::MinValue(e) => o.min = Some(e.as_ref().map(literal_i64).transpose()?),
            SqlSeqOption::MaxValue(e) => o.max = Some(e.as_ref().map(literal_i64).transpose()?),
            SqlSeqOption::StartWith(e, _) => o.start = Some(literal_i64(e)?),
            SqlSeqOption::Cache(e) => o.cache = Some(literal_i64(e)?),
            SqlSeqOption::Cycle(no) => o.cycle = Some(!no),
        }
    }
    Ok(o)
}

fn object_name(name: &ObjectName) -> Result<String> {
    resolve_name(&name.to_string())
}

impl Engine {
    /// CREATE SEQUENCE or ALTER SEQUENCE, from its text.
    pub(super) async fn sequence_ddl(&self, session: &Session, sql: &str) -> Result<QueryResult> {
        let d = parse_sequence_ddl(sql)?;
        if d.alter { self.alter_sequence(session, d).await } else { self.create_sequence(session, d).await }
    }

    async fn create_sequence(&self, session: &Session, d: SequenceDdl) -> Result<QueryResult> {
        if d.temporary {
            return Err(Error::NotSupported("CREATE TEMPORARY SEQUENCE (create a plain sequence)".into()));
        }
        let name = d.name.clone();
        if let Some((schema, _)) = name.split_once('.') {
            if !self.schema_exists(schema) {
                return Err(Error::State("3F000", format!("schema \"{schema}\" does not exist")));
            }
        }
        let mut rec = sequences::new_record(&name, &d.options, Some(session.user.clone()))?;
        if let Some(owner) = &d.owned_by {
            rec.owned_by = self.sequence_owner(session, owner.as_ref())?;
        }
        let _ddl = self.ddl.lock().await;
        if self.dataset_exists(&name) {
            return Err(Error::TableExists(name));
        }
        let catalog = self.catalog.clone();
        let created = crate::catalog::blocking(move || {
            catalog.update(|s| {
                if s.sequences.contains_key(&rec.name) {
                    return Ok(false);
                }
                s.sequences.insert(rec.name.clone(), rec);
                Ok(true)
            })
        })
        .await?;
        if !created {
            if !d.if_clause {
                return Err(Error::TableExists(name));
            }
            session.notice(format!("relation \"{name}\" already exists, skipping"));
        } else {
            self.sequences.forget(&name);
        }
        Ok(QueryResult::command("CREATE SEQUENCE"))
    }

    /// `OWNED BY table.column` (None: NONE): the column must exist and the caller
    /// must own the table.
    fn sequence_owner(&self, session: &Session, owner: Option<&(String, String)>) -> Result<Option<(String, String)>> {
        let Some((table, column)) = owner else { return Ok(None) };
        let rec = self.catalog.dataset(table).ok_or_else(|| Error::TableNotFound(table.clone()))?;
        self.require_owner(session, &crate::catalog::roles::Object::Table(table.clone()))?;
        let has = rec.arrow_schema()?.is_some_and(|s| s.field_with_name(column).is_ok());
        if !has {
            return Err(Error::ColumnNotFound(format!("\"{column}\" of relation \"{table}\" does not exist")));
        }
        Ok(Some((table.clone(), column.clone())))
    }

    /// `DROP SEQUENCE [IF EXISTS] a, b [CASCADE]`.
    pub(super) async fn drop_sequences(&self, session: &Session, names: &[ObjectName], if_exists: bool, cascade: bool) -> Result<QueryResult> {
        let _ddl = self.ddl.lock().await;
        for n in names {
            let name = object_name(n)?;
            let Some(rec) = self.catalog.sequence(&name) else {
                if if_exists {
                    session.notice(format!("sequence \"{name}\" does not exist, skipping"));
                    continue;
                }
                return Err(undefined(&name));
            };
            self.require_sequence_owner(session, &rec)?;
            if let (Some((table, column)), false) = (&rec.owned_by, cascade) {
                let default_uses = self.catalog.dataset(table).is_some_and(|d| d.defaults.get(column).is_some_and(|e| e.contains(&name)));
                if default_uses {
                    return Err(Error::DependentObjects(format!(
                        "cannot drop sequence {name} because default value for column {column} of table {table} depends on it; use DROP … CASCADE, or drop the table"
                    )));
                }
            }
            let catalog = self.catalog.clone();
            let n2 = name.clone();
            crate::catalog::blocking(move || catalog.update(|s| Ok(s.sequences.remove(&n2)))).await?;
            self.sequences.forget(&name);
        }
        Ok(QueryResult::command("DROP SEQUENCE"))
    }

    pub(super) fn require_sequence_owner(&self, session: &Session, rec: &SequenceRecord) -> Result<()> {
        if sequence_access(&self.catalog.snapshot(), &session.identity(), rec, true) {
            return Ok(());
        }
        Err(Error::InsufficientPrivilege(format!("must be owner of sequence {}", rec.name)))
    }


    async fn alter_sequence(&self, session: &Session, d: SequenceDdl) -> Result<QueryResult> {
        let name = d.name.clone();
        let _ddl = self.ddl.lock().await;
        let Some(rec) = self.catalog.sequence(&name) else {
            if d.if_clause {
                session.notice(format!("relation \"{name}\" does not exist, skipping"));
                return Ok(QueryResult::command("ALTER SEQUENCE"));
            }
            return Err(undefined(&name));
        };
        self.require_sequence_owner(session, &rec)?;
        // Options not given keep their values; the result is checked as CREATE
        // SEQUENCE checks it.
        let o = &d.options;
        let merged = SequenceOptions {
            data_type: o.data_type.clone().or(Some(rec.data_type.clone())),
            start: o.start.or(Some(rec.start)),
            increment: o.increment.or(Some(rec.increment)),
            min: o.min.or(Some(Some(rec.min))),
            max: o.max.or(Some(Some(rec.max))),
            cycle: o.cycle.or(Some(rec.cycle)),
            cache: o.cache.or(Some(rec.cache)),
        };
        let checked = sequences::new_record(&name, &merged, rec.owner.clone())?;
        let mut next = SequenceRecord { last_value: rec.last_value, is_called: rec.is_called, owned_by: rec.owned_by.clone(), created_at: rec.created_at.clone(), ..checked };
        if let Some(owner) = &d.owned_by {
            next.owned_by = self.sequence_owner(session, owner.as_ref())?;
        }
        match d.restart {
            Some(value) => {
                let v = value.unwrap_or(next.start);
                if v < next.min || v > next.max {
                    return Err(Error::InvalidParameter(format!(
                        "RESTART value ({v}) cannot be outside the range MINVALUE ({}) .. MAXVALUE ({})",
                        next.min, next.max
                    )));
                }
                next.last_value = v;
                next.is_called = false;
            }
            None => {
                // Keep the position the allocator reached (the end of its block is
                // on disk already; the values in between are given up).
                let (last, called) = self.sequences.position(&rec);
                next.last_value = last.clamp(next.min, next.max);
                next.is_called = called;
            }
        }
        let catalog = self.catalog.clone();
        crate::catalog::blocking(move || {
            catalog.update(|s| {
                s.sequences.insert(next.name.clone(), next);
                Ok(())
            })
        })
        .await?;
        self.sequences.forget(&name);
        Ok(QueryResult::command("ALTER SEQUENCE"))
    }
}


/// `… AS IDENTITY (options)` with its options in the one order sqlparser takes
/// (INCREMENT, MINVALUE, MAXVALUE, START, CACHE, CYCLE); PostgreSQL takes any
/// order. None when `sql` has no such list or it is already in order. The list is
/// replaced in the text as written (the rest of the batch is not re-printed).
pub fn reorder_identity_options(sql: &str) -> Option<String> {
    if !sql.as_bytes().windows(8).any(|w| w.eq_ignore_ascii_case(b"identity")) {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location().ok()?;
    let offsets = super::split::Offsets::new(sql);
    let solid: Vec<_> = tokens.iter().filter(|t| !matches!(t.token, Token::Whitespace(_))).collect();
    let mut edits: Vec<(usize, usize, String)> = vec![];
    let mut i = 0;
    while i + 1 < solid.len() {
        let is_identity = matches!(&solid[i].token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("identity"));
        if !(is_identity && matches!(solid[i + 1].token, Token::LParen)) {
            i += 1;
            continue;
        }
        let Some(close) = (i + 2..solid.len()).find(|&j| matches!(solid[j].token, Token::RParen)) else { return None };
        let (Some(start), Some(end)) = (offsets.of(solid[i + 1].span.end), offsets.of(solid[close].span.start)) else { return None };
        let inner = &sql[start..end];
        // Anything our parser does not take is left for sqlparser to report.
        if let Ok(d) = parse_sequence_ddl(&format!("CREATE SEQUENCE x {inner}")) {
            if d.owned_by.is_none() {
                let canonical = canonical_options(&d.options);
                if canonical.split_whitespace().ne(inner.split_whitespace()) {
                    edits.push((start, end - start, canonical));
                }
            }
        }
        i = close + 1;
    }
    if edits.is_empty() {
        return None;
    }
    let mut out = sql.to_string();
    for (at, len, text) in edits.into_iter().rev() {
        out.replace_range(at..at + len, &text);
    }
    Some(out)
}

/// Options as sqlparser's fixed order writes them.
fn canonical_options(o: &SequenceOptions) -> String {
    let mut parts = vec![];
    if let Some(v) = o.increment {
        parts.push(format!("INCREMENT BY {v}"));
    }
    match o.min {
        Some(Some(v)) => parts.push(format!("MINVALUE {v}")),
        Some(None) => parts.push("NO MINVALUE".into()),
        None => {}
    }
    match o.max {
        Some(Some(v)) => parts.push(format!("MAXVALUE {v}")),
        Some(None) => parts.push("NO MAXVALUE".into()),
        None => {}
    }
    if let Some(v) = o.start {
        parts.push(format!("START WITH {v}"));
    }
    if let Some(v) = o.cache {
        parts.push(format!("CACHE {v}"));
    }
    match o.cycle {
        Some(true) => parts.push("CYCLE".into()),
        Some(false) => parts.push("NO CYCLE".into()),
        None => {}
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_options_are_put_in_sqlparsers_order() {
        let sql = "CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY (START WITH 10 INCREMENT BY -5 CYCLE), s text DEFAULT 'identity (x'';')";
        let out = reorder_identity_options(sql).unwrap();
        assert_eq!(out, "CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY (INCREMENT BY -5 START WITH 10 CYCLE), s text DEFAULT 'identity (x'';')");
        assert_eq!(reorder_identity_options("CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY (INCREMENT BY 2 START WITH 1))"), None);
        assert_eq!(reorder_identity_options("SELECT 'identity'"), None);
    }

    #[test]
    fn sequence_options_parse_in_any_order() {
        let d = parse_sequence_ddl("CREATE SEQUENCE IF NOT EXISTS \"My\".s MAXVALUE 9 START 3 NO CYCLE AS integer INCREMENT BY -1").unwrap();
        assert_eq!(d.name, "My.s", "the key in schema My");
        let d = parse_sequence_ddl("create sequence s maxvalue 9 start 3 no cycle as int4 increment by -1 cache 5").unwrap();
        assert_eq!(d.options.max, Some(Some(9)));
        assert_eq!(d.options.start, Some(3));
        assert_eq!(d.options.increment, Some(-1));
        assert_eq!(d.options.cycle, Some(false));
        assert_eq!(d.options.data_type.as_deref(), Some("integer"));
        let a = parse_sequence_ddl("ALTER SEQUENCE IF EXISTS s RESTART OWNED BY NONE").unwrap();
        assert!(a.alter && a.if_clause);
        assert_eq!(a.restart, Some(None));
        assert_eq!(a.owned_by, Some(None));
    }
}
