//! Statement text: byte offsets of tokenizer locations, and a batch split into its
//! statements as written (what a driver sends one Parse each).

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};

use crate::error::{Error, Result};

/// Maps the tokenizer's 1-based line and character column to byte offsets of `sql`.
pub struct Offsets<'a> {
    sql: &'a str,
    lines: Vec<usize>,
}

impl<'a> Offsets<'a> {
    pub fn new(sql: &'a str) -> Self {
        let lines = std::iter::once(0).chain(sql.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Offsets { sql, lines }
    }

    pub fn of(&self, loc: Location) -> Option<usize> {
        let start = *self.lines.get((loc.line as usize).checked_sub(1)?)?;
        let rest = self.sql.get(start..)?;
        let col = (loc.column as usize).checked_sub(1)?;
        Some(start + rest.char_indices().nth(col).map(|(i, _)| i).unwrap_or(rest.len()))
    }
}

/// The statements of `sql` as written, without their `;` and surrounding blanks;
/// empty statements are dropped. Quotes, dollar quotes and comments are the
/// tokenizer's, so a `;` inside them does not split.
pub fn split_statements(sql: &str) -> Result<Vec<String>> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| Error::Syntax(e.to_string()))?;
    let offsets = Offsets::new(sql);
    let mut out = vec![];
    let mut start = 0;
    for t in &tokens {
        if matches!(t.token, Token::SemiColon) {
            let at = offsets.of(t.span.start).ok_or_else(|| Error::Internal("token location outside the text".into()))?;
            out.push(sql[start..at].trim().to_string());
            start = at + 1;
        }
    }
    out.push(sql[start.min(sql.len())..].trim().to_string());
    out.retain(|s| !s.is_empty() && !only_comments(s));
    Ok(out)
}

fn only_comments(s: &str) -> bool {
    Tokenizer::new(&PostgreSqlDialect {}, s)
        .tokenize()
        .map(|t| t.iter().all(|t| matches!(t, Token::Whitespace(_))))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_where_the_tokenizer_sees_semicolons() {
        let s = split_statements("select 'a;b'; select $$x;y$$ ;\n-- c;\nselect 1 /* ; */;  ").unwrap();
        assert_eq!(s, vec!["select 'a;b'", "select $$x;y$$", "-- c;\nselect 1 /* ; */"]);
        assert_eq!(split_statements("select 'é';select 2").unwrap(), vec!["select 'é'", "select 2"]);
        assert!(split_statements(" ; -- only\n").unwrap().is_empty());
    }
}
