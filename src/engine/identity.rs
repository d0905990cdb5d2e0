//! INSERT into `GENERATED ALWAYS AS IDENTITY` columns (#14): a value given for such a
//! column is refused (428C9) unless the INSERT says `OVERRIDING SYSTEM VALUE`.
//!
//! sqlparser has no OVERRIDING clause: [`strip_overriding`] takes it out of the text
//! of one statement, and [`mark`] records it on the parsed INSERT as a setting that
//! [`unmark`] removes before DataFusion plans the statement (DataFusion refuses
//! INSERT settings, so a marker can never reach it unnoticed).

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Expr, Ident, Insert, Setting, Statement, TableObject, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use datafusion::sql::TableReference;

use super::Engine;
use crate::error::{Error, Result};

const MARK: &str = "lakehouse_overriding_system_value";

fn word(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w))
}

/// `sql` (one statement) without its `OVERRIDING SYSTEM VALUE`, when it has one.
/// `OVERRIDING USER VALUE` is refused (0A000).
pub fn strip_overriding(sql: &str) -> Result<Option<String>> {
    if !sql.as_bytes().windows(10).any(|w| w.eq_ignore_ascii_case(b"overriding")) {
        return Ok(None);
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location().map_err(|e| Error::Syntax(e.to_string()))?;
    let offsets = super::split::Offsets::new(sql);
    let solid: Vec<_> = tokens.iter().filter(|t| !matches!(t.token, Token::Whitespace(_))).collect();
    for i in 0..solid.len().saturating_sub(2) {
        if !(word(&solid[i].token, "overriding") && word(&solid[i + 2].token, "value")) {
            continue;
        }
        if word(&solid[i + 1].token, "user") {
            return Err(Error::NotSupported("OVERRIDING USER VALUE (leave the identity column out of the INSERT)".into()));
        }
        if !word(&solid[i + 1].token, "system") {
            continue;
        }
        let (Some(start), Some(end)) = (offsets.of(solid[i].span.start), offsets.of(solid[i + 2].span.end)) else { continue };
        let mut out = sql.to_string();
        out.replace_range(start..end, "");
        return Ok(Some(out));
    }
    Ok(None)
}

/// Record OVERRIDING SYSTEM VALUE on the INSERT in `statements`.
pub fn mark(statements: &mut [DFStatement]) -> Result<()> {
    for s in statements {
        if let DFStatement::Statement(st) = s {
            if let Statement::Insert(ins) = st.as_mut() {
                ins.settings = Some(vec![Setting { key: Ident::new(MARK), value: Expr::Value(Value::Boolean(true).into()) }]);
                return Ok(());
            }
        }
    }
    Err(Error::Syntax("OVERRIDING SYSTEM VALUE belongs to an INSERT".into()))
}

fn is_marked(ins: &Insert) -> bool {
    ins.settings.as_ref().is_some_and(|s| s.iter().any(|x| x.key.value == MARK))
}

/// The statement as DataFusion may plan it (the marker removed).
pub fn unmark(statement: &mut Statement) {
    if let Statement::Insert(ins) = statement {
        if is_marked(ins) {
            ins.settings = None;
        }
    }
}

impl Engine {
    /// 428C9 when `ins` gives a GENERATED ALWAYS identity column a value without
    /// OVERRIDING SYSTEM VALUE.
    pub(super) fn check_identity_always(&self, ins: &Insert) -> Result<()> {
        let TableObject::TableName(name) = &ins.table else { return Ok(()) };
        let Ok(table) = self.dataset_name(&TableReference::from(name.to_string().as_str())) else { return Ok(()) };
        let Some(rec) = self.catalog.dataset(&table) else { return Ok(()) };
        if rec.identity_always.is_empty() || is_marked(ins) {
            return Ok(());
        }
        let named: Vec<String> = if ins.columns.is_empty() {
            rec.arrow_schema()?.map(|s| s.fields().iter().map(|f| f.name().clone()).collect()).unwrap_or_default()
        } else {
            ins.columns
                .iter()
                .filter_map(|c| c.0.last().and_then(|p| p.as_ident()))
                .map(|c| if c.quote_style.is_some() { c.value.clone() } else { c.value.to_lowercase() })
                .collect()
        };
        if let Some(col) = named.iter().find(|c| rec.identity_always.contains(c)) {
            return Err(Error::State(
                "428C9",
                format!(
                    "cannot insert a non-DEFAULT value into column \"{col}\"\nDETAIL: Column \"{col}\" is an identity column defined as GENERATED ALWAYS. Use OVERRIDING SYSTEM VALUE to override."
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clause_is_taken_out_of_the_text_as_written() {
        let sql = "INSERT INTO t (id, s) Overriding  SYSTEM value VALUES (1, 'overriding system value')";
        assert_eq!(strip_overriding(sql).unwrap().unwrap(), "INSERT INTO t (id, s)  VALUES (1, 'overriding system value')");
        assert_eq!(strip_overriding("SELECT 'overriding system value'").unwrap(), None);
        assert_eq!(strip_overriding("INSERT INTO t OVERRIDING USER VALUE VALUES (1)").unwrap_err().sqlstate(), "0A000");
    }
}
