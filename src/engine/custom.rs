//! Statements PostgreSQL has and sqlparser does not parse (or parses only in part):
//! they are recognised here from their first words, carried through `Engine::parse`
//! as `CALL lakehouse_statement('<kind>', '<text>')`, and parsed by their own module
//! when they run. Calling that procedure by hand does what writing the statement
//! does, nothing more.

use datafusion::sql::sqlparser::ast::{Function, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

use crate::error::{Error, Result};

pub const CALL: &str = "lakehouse_statement";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// CREATE/ALTER SEQUENCE (engine/sequences.rs): options in any order.
    Sequence,
    /// COMMENT ON CONSTRAINT (engine/comment.rs).
    CommentOnConstraint,
    /// REFRESH MATERIALIZED VIEW (engine/matview.rs).
    Refresh,
    /// FETCH and MOVE (engine/cursors.rs): PostgreSQL's forms, signed counts too.
    Fetch,
    /// COPY … FROM STDIN / TO STDOUT (engine/copy.rs); COPY with a file is DataFusion's.
    Copy,
    /// DO $$ … $$ (engine/do_block.rs): blocks of RAISE statements.
    Do,
    /// CREATE DOMAIN (engine/user_types.rs): `AS` optional, NOT NULL and named constraints.
    Domain,
    /// `SELECT` with an empty target list: one row of no columns.
    EmptySelect,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Sequence => "sequence",
            Kind::CommentOnConstraint => "comment_on_constraint",
            Kind::Fetch => "fetch",
            Kind::Refresh => "refresh",
            Kind::Copy => "copy",
            Kind::Do => "do",
            Kind::Domain => "domain",
            Kind::EmptySelect => "empty_select",
        }
    }

    fn from_name(name: &str) -> Option<Kind> {
        [Kind::Sequence, Kind::CommentOnConstraint, Kind::Fetch, Kind::Refresh, Kind::Copy, Kind::Do, Kind::Domain, Kind::EmptySelect].into_iter().find(|k| k.name() == name)
    }
}

/// The kind of custom statement `sql` (one statement) is, if any.
pub fn detect(sql: &str) -> Option<Kind> {
    if is_empty_select(sql) {
        return Some(Kind::EmptySelect);
    }
    let words: Vec<String> = sql.split_whitespace().take(3).map(|w| w.to_lowercase()).collect();
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    match (w(0), w(1), w(2)) {
        ("alter", "sequence", _) | ("create", "sequence", _) => Some(Kind::Sequence),
        ("create", "temp" | "temporary" | "unlogged", "sequence") => Some(Kind::Sequence),
        ("comment", "on", "constraint") => Some(Kind::CommentOnConstraint),
        ("move" | "fetch", _, _) => Some(Kind::Fetch),
        ("refresh", "materialized", "view") => Some(Kind::Refresh),
        ("copy", _, _) if super::copy::is_copy_stdio(sql) => Some(Kind::Copy),
        ("do", _, _) => Some(Kind::Do),
        ("create", "domain", _) => Some(Kind::Domain),
        _ => None,
    }
}

/// `SELECT` alone (PostgreSQL allows an empty target list).
fn is_empty_select(sql: &str) -> bool {
    sql.trim().trim_end_matches(';').trim().eq_ignore_ascii_case("select")
}

/// Does any statement of `sql` need [`detect`]'s route (a cheap test first)?
pub fn may_contain(sql: &str) -> bool {
    if sql.split(';').any(is_empty_select) {
        return true;
    }
    let has = |word: &[u8]| sql.as_bytes().windows(word.len()).any(|w| w.eq_ignore_ascii_case(word));
    has(b"sequence") || has(b"constraint") || has(b"move") || has(b"fetch") || has(b"refresh") || has(b"stdin") || has(b"stdout") || has(b"domain") || sql.trim_start().get(..2).is_some_and(|w| w.eq_ignore_ascii_case("do"))
}

/// The CALL standing for `sql`.
pub fn to_call(kind: Kind, sql: &str) -> Result<Statement> {
    let text = format!("CALL {CALL}('{}', '{}')", kind.name(), sql.trim().trim_end_matches(';').replace('\'', "''"));
    datafusion::sql::sqlparser::parser::Parser::parse_sql(&PostgreSqlDialect {}, &text)
        .map_err(|e| Error::Syntax(e.to_string()))?
        .pop()
        .ok_or_else(|| Error::Syntax("empty statement".into()))
}

/// The kind and text of a CALL made by [`to_call`]; None for any other CALL.
pub fn from_call(f: &Function) -> Result<Option<(Kind, String)>> {
    if !f.name.to_string().eq_ignore_ascii_case(CALL) {
        return Ok(None);
    }
    let (positional, _) = crate::catalog::procedures::literal_args(&f.args)?;
    use crate::catalog::procedures::ArgValue;
    match positional.as_slice() {
        [ArgValue::Text(kind), ArgValue::Text(sql)] => match Kind::from_name(kind) {
            Some(k) => Ok(Some((k, sql.clone()))),
            None => Err(Error::InvalidParameter(format!("{CALL}: unknown kind {kind}"))),
        },
        _ => Err(Error::InvalidParameter(format!("{CALL} takes a kind and a statement's text"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_travels_as_a_call_and_back() {
        let sql = "COMMENT ON CONSTRAINT c ON t IS 'it''s'";
        assert_eq!(detect(sql), Some(Kind::CommentOnConstraint));
        let Statement::Call(f) = to_call(Kind::CommentOnConstraint, sql).unwrap() else { panic!() };
        assert_eq!(from_call(&f).unwrap(), Some((Kind::CommentOnConstraint, sql.to_string())));
        assert_eq!(detect("SELECT 'create sequence'"), None);
    }
}
