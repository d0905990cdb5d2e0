//! `COMMENT ON {TABLE | VIEW | COLUMN | INDEX | SEQUENCE | CONSTRAINT …} IS 'text' | NULL`
//! (#14): kept on the object's catalog record, gone with the object, shown by
//! `obj_description`/`col_description` and the catalog views. Only the object's
//! owner (or a superuser) comments on it, as in PostgreSQL.

use datafusion::sql::sqlparser::ast::{CommentObject, ObjectName};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::{Engine, QueryResult, Session};
use crate::catalog::roles::Object;
use crate::catalog::sequences::resolve_name;
use crate::error::{Error, Result};

fn last_part(name: &ObjectName) -> Result<String> {
    resolve_name(&name.to_string()).map_err(|_| Error::TableNotFound(name.to_string()))
}

impl Engine {
    /// sqlparser's COMMENT ON statement.
    pub(super) async fn comment(&self, session: &Session, object: &CommentObject, name: &ObjectName, comment: Option<String>, if_exists: bool) -> Result<QueryResult> {
        let comment = comment.filter(|c| !c.is_empty());
        let _ddl = self.ddl.lock().await;
        let state = self.catalog.snapshot();
        match object {
            CommentObject::Table | CommentObject::View | CommentObject::MaterializedView => {
                let table = last_part(name)?;
                if !state.datasets.contains_key(&table) {
                    if if_exists {
                        return Ok(QueryResult::command("COMMENT"));
                    }
                    return Err(Error::TableNotFound(table));
                }
                self.require_owner(session, &Object::Table(table.clone()))?;
                self.catalog.update(|s| {
                    if let Some(d) = s.datasets.get_mut(&table) {
                        d.comment = comment;
                    }
                    Ok(())
                })?;
            }
            CommentObject::Column => {
                let parts: Vec<String> = name.0.iter().filter_map(|p| p.as_ident()).map(|i| if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }).collect();
                let [.., table, column] = parts.as_slice() else {
                    return Err(Error::Syntax("COMMENT ON COLUMN takes table.column".into()));
                };
                let rec = state.datasets.get(table).ok_or_else(|| Error::TableNotFound(table.clone()))?;
                let has = rec.arrow_schema()?.is_some_and(|s| s.field_with_name(column).is_ok());
                if !has {
                    return Err(Error::ColumnNotFound(format!("\"{column}\" of relation \"{table}\" does not exist")));
                }
                self.require_owner(session, &Object::Table(table.clone()))?;
                let (table, column) = (table.clone(), column.clone());
                self.catalog.update(|s| {
                    if let Some(d) = s.datasets.get_mut(&table) {
                        match comment {
                            Some(c) => d.column_comments.insert(column, c),
                            None => d.column_comments.remove(&column),
                        };
                    }
                    Ok(())
                })?;
            }
            CommentObject::Index => {
                let index = last_part(name)?;
                let owner_table = state
                    .indexes
                    .get(&index)
                    .map(|i| i.table.clone())
                    .or_else(|| state.datasets.values().find(|d| d.indexes.iter().any(|i| i.name == index)).map(|d| d.name.clone()));
                let Some(table) = owner_table else {
                    return Err(crate::catalog::indexes::unknown_index(&index));
                };
                self.require_owner(session, &Object::Table(table.clone()))?;
                self.catalog.update(|s| {
                    if let Some(i) = s.indexes.get_mut(&index) {
                        i.comment = comment.clone();
                    }
                    if let Some(d) = s.datasets.get_mut(&table) {
                        for i in d.indexes.iter_mut().filter(|i| i.name == index) {
                            i.comment = comment.clone();
                        }
                    }
                    Ok(())
                })?;
                if let Some(rec) = self.catalog.index(&index) {
                    if let Some(live) = self.indexes.get(&index) {
                        live.set_comment(rec.comment.clone());
                    }
                }
            }
            CommentObject::Sequence => {
                let seq = last_part(name)?;
                let rec = state.sequences.get(&seq).ok_or_else(|| crate::catalog::sequences::undefined(&seq))?;
                self.require_sequence_owner(session, rec)?;
                self.catalog.update(|s| {
                    if let Some(q) = s.sequences.get_mut(&seq) {
                        q.comment = comment;
                    }
                    Ok(())
                })?;
            }
            CommentObject::Extension if name.to_string().eq_ignore_ascii_case("vector") => {}
            other => return Err(Error::NotSupported(format!("COMMENT ON {other}"))),
        }
        Ok(QueryResult::command("COMMENT"))
    }

    /// `COMMENT ON CONSTRAINT name ON table IS 'text' | NULL`.
    pub(super) async fn comment_on_constraint(&self, session: &Session, sql: &str) -> Result<QueryResult> {
        let (constraint, table, comment) = parse_comment_on_constraint(sql)?;
        let _ddl = self.ddl.lock().await;
        let rec = self.catalog.dataset(&table).ok_or_else(|| Error::TableNotFound(table.clone()))?;
        if !rec.constraints.iter().any(|c| c.name == constraint) {
            return Err(Error::UndefinedObject(format!("constraint \"{constraint}\" for table \"{table}\" does not exist")));
        }
        self.require_owner(session, &Object::Table(table.clone()))?;
        self.catalog.update(|s| {
            if let Some(d) = s.datasets.get_mut(&table) {
                for c in d.constraints.iter_mut().filter(|c| c.name == constraint) {
                    c.comment = comment.clone();
                }
            }
            Ok(())
        })?;
        Ok(QueryResult::command("COMMENT"))
    }
}

/// (constraint, table, comment) of `COMMENT ON CONSTRAINT c ON [DOMAIN] t IS …`.
fn parse_comment_on_constraint(sql: &str) -> Result<(String, String, Option<String>)> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().map_err(|e| Error::Syntax(e.to_string()))?;
    let solid: Vec<Token> = tokens.into_iter().filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon)).collect();
    let word = |t: &Token| match t {
        Token::Word(w) => Some(if w.quote_style.is_some() { w.value.clone() } else { w.value.to_lowercase() }),
        _ => None,
    };
    let mut i = 3; // COMMENT ON CONSTRAINT
    let constraint = solid.get(i).and_then(word).ok_or_else(|| Error::Syntax("COMMENT ON CONSTRAINT takes a constraint name".into()))?;
    i += 1;
    if solid.get(i).and_then(word).as_deref() != Some("on") {
        return Err(Error::Syntax(format!("syntax error in COMMENT ON CONSTRAINT {constraint}: expected ON table")));
    }
    i += 1;
    if solid.get(i).and_then(word).as_deref() == Some("domain") {
        return Err(Error::NotSupported("COMMENT ON CONSTRAINT … ON DOMAIN".into()));
    }
    // A possibly qualified table name: its last part.
    let mut table = solid.get(i).and_then(word).ok_or_else(|| Error::Syntax("COMMENT ON CONSTRAINT takes ON table".into()))?;
    i += 1;
    while matches!(solid.get(i), Some(Token::Period)) {
        table = solid.get(i + 1).and_then(word).ok_or_else(|| Error::Syntax("a table name".into()))?;
        i += 2;
    }
    if solid.get(i).and_then(word).as_deref() != Some("is") {
        return Err(Error::Syntax("COMMENT ON CONSTRAINT … IS 'text'".into()));
    }
    let comment = match solid.get(i + 1) {
        Some(Token::SingleQuotedString(s)) | Some(Token::EscapedStringLiteral(s)) => Some(s.clone()).filter(|s| !s.is_empty()),
        Some(Token::DollarQuotedString(d)) => Some(d.value.clone()).filter(|s| !s.is_empty()),
        Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("null") => None,
        _ => return Err(Error::Syntax("COMMENT ON CONSTRAINT … IS takes a string or NULL".into())),
    };
    if solid.len() > i + 2 {
        return Err(Error::Syntax("unexpected text after COMMENT ON CONSTRAINT … IS …".into()));
    }
    Ok((constraint, table, comment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_on_constraint_parses() {
        let (c, t, text) = parse_comment_on_constraint("COMMENT ON CONSTRAINT \"PK\" ON public.Items IS 'it''s'").unwrap();
        assert_eq!((c.as_str(), t.as_str(), text.as_deref()), ("PK", "items", Some("it's")));
        let (_, _, text) = parse_comment_on_constraint("comment on constraint c on t is null").unwrap();
        assert_eq!(text, None);
        assert!(parse_comment_on_constraint("COMMENT ON CONSTRAINT c ON t IS 'x' junk").is_err());
    }
}
