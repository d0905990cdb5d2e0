//! Cursors (#14): `DECLARE name [BINARY] [NO] [SCROLL] CURSOR [WITH[OUT] HOLD] FOR
//! query`, `FETCH`/`MOVE` in every direction PostgreSQL has, `CLOSE name | ALL`. The
//! query is planned (and its privileges checked) at DECLARE and runs as rows are
//! fetched; rows already read are kept so the cursor can move backwards. A cursor
//! WITHOUT HOLD (the default) ends at COMMIT or ROLLBACK, as in PostgreSQL; one WITH
//! HOLD lasts until CLOSE or the end of the session.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{CloseCursor, Declare, FetchDirection, Ident, Value};
use futures::StreamExt;

use super::{Engine, QueryResult, Session};
use crate::error::{Error, Result};

pub struct Cursor {
    pub query: String,
    pub hold: bool,
    pub scroll: bool,
    pub binary: bool,
    pub created: chrono::DateTime<chrono::Utc>,
    schema: SchemaRef,
    /// The rows read from the query so far.
    rows: Vec<RecordBatch>,
    read: usize,
    /// The rest of the query's rows; None once it has ended.
    stream: Option<SendableRecordBatchStream>,
    /// PostgreSQL's position: 0 before the first row, `n + 1` after the last.
    pos: usize,
}

/// A session's open cursors.
pub type Cursors = tokio::sync::Mutex<BTreeMap<String, Cursor>>;

fn ident(i: &Ident) -> String {
    if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }
}

fn missing(name: &str) -> Error {
    Error::State("34000", format!("cursor \"{name}\" does not exist"))
}

fn count(v: &datafusion::sql::sqlparser::ast::ValueWithSpan) -> Result<i64> {
    match &v.value {
        Value::Number(n, _) => n.parse().map_err(|_| Error::Syntax(format!("invalid FETCH count {n}"))),
        other => Err(Error::Syntax(format!("invalid FETCH count {other}"))),
    }
}

impl Cursor {
    /// Read until `upto` rows are known (None: all of them).
    async fn ensure(&mut self, upto: Option<usize>) -> Result<()> {
        while upto.is_none_or(|u| self.read < u) {
            let Some(stream) = self.stream.as_mut() else { break };
            match stream.next().await {
                Some(batch) => {
                    let batch = batch?;
                    self.read += batch.num_rows();
                    if batch.num_rows() > 0 {
                        self.rows.push(batch);
                    }
                }
                None => self.stream = None,
            }
        }
        Ok(())
    }

    /// Total rows, once the query has ended.
    fn total(&self) -> Option<usize> {
        self.stream.is_none().then_some(self.read)
    }

    /// Row `i` (1-based) as a one-row batch.
    fn row(&self, i: usize) -> Option<RecordBatch> {
        let mut at = i.checked_sub(1)?;
        for b in &self.rows {
            if at < b.num_rows() {
                return Some(b.slice(at, 1));
            }
            at -= b.num_rows();
        }
        None
    }

    /// Rows `from..=to` (1-based, ascending) as batches.
    fn range(&self, from: usize, to: usize) -> Vec<RecordBatch> {
        let mut out = vec![];
        let mut start = 1usize;
        for b in &self.rows {
            let end = start + b.num_rows() - 1;
            if end >= from && start <= to {
                let lo = from.max(start) - start;
                let hi = to.min(end) - start;
                out.push(b.slice(lo, hi - lo + 1));
            }
            start = end + 1;
        }
        out
    }

    /// Move as `direction` says; the rows passed over, in the order FETCH returns them.
    async fn step(&mut self, direction: &FetchDirection) -> Result<Vec<RecordBatch>> {
        use FetchDirection as D;
        let forward = |n: Option<i64>| -> (bool, Option<usize>) {
            match n {
                None => (true, None),
                Some(n) if n >= 0 => (true, Some(n as usize)),
                Some(n) => (false, Some(n.unsigned_abs() as usize)),
            }
        };
        let (ahead, by) = match direction {
            D::Next => (true, Some(1)),
            D::Prior => (false, Some(1)),
            D::Count { limit } => forward(Some(count(limit)?)),
            D::Forward { limit } => forward(Some(limit.as_ref().map(count).transpose()?.unwrap_or(1))),
            D::All | D::ForwardAll => (true, None),
            D::Backward { limit } => {
                let n = limit.as_ref().map(count).transpose()?.unwrap_or(1);
                forward(Some(-n))
            }
            D::BackwardAll => (false, None),
            D::First => return self.absolute(1).await,
            D::Last => return self.absolute(-1).await,
            D::Absolute { limit } => return self.absolute(count(limit)?).await,
            D::Relative { limit } => {
                let k = count(limit)?;
                if k == 0 {
                    return Ok(self.row(self.pos).into_iter().collect());
                }
                let target = self.pos as i64 + k;
                if target <= 0 {
                    self.pos = 0;
                    return Ok(vec![]);
                }
                return self.absolute(target).await;
            }
        };
        if ahead {
            let want = by.map(|b| self.pos.saturating_add(b));
            self.ensure(want).await?;
            let last = match (want, self.total()) {
                (Some(w), Some(t)) => w.min(t),
                (Some(w), None) => w,
                (None, t) => t.unwrap_or(self.read),
            };
            let rows = if last > self.pos { self.range(self.pos + 1, last) } else { vec![] };
            let ran_out = self.total().is_some_and(|t| want.is_none_or(|w| w > t));
            self.pos = if ran_out { self.total().unwrap_or(last) + 1 } else { last };
            Ok(rows)
        } else {
            if self.pos > self.read {
                self.ensure(None).await?;
            }
            let start = self.pos.min(self.read + 1);
            let first = match by {
                Some(b) => start.saturating_sub(b).max(1),
                None => 1,
            };
            let mut rows = if start > first { self.range(first, start - 1) } else { vec![] };
            rows.reverse();
            let rows: Vec<RecordBatch> = rows.into_iter().flat_map(|b| (0..b.num_rows()).rev().map(move |i| b.slice(i, 1))).collect();
            self.pos = match by {
                Some(b) if start > b => start - b,
                _ => 0,
            };
            Ok(rows)
        }
    }

    async fn absolute(&mut self, k: i64) -> Result<Vec<RecordBatch>> {
        if k > 0 {
            let k = k as usize;
            self.ensure(Some(k)).await?;
            match self.row(k) {
                Some(r) => {
                    self.pos = k;
                    Ok(vec![r])
                }
                None => {
                    self.pos = self.read + 1;
                    Ok(vec![])
                }
            }
        } else if k < 0 {
            self.ensure(None).await?;
            let n = self.read as i64;
            let i = n + 1 + k;
            if i >= 1 {
                self.pos = i as usize;
                Ok(self.row(i as usize).into_iter().collect())
            } else {
                self.pos = 0;
                Ok(vec![])
            }
        } else {
            self.pos = 0;
            Ok(vec![])
        }
    }
}

impl Engine {
    /// DECLARE: `plan` is the cursor's query, planned (and, from the extended
    /// protocol, with its parameters bound) by the caller.
    pub(super) async fn declare_cursor(&self, session: &Session, d: &Declare, plan: LogicalPlan) -> Result<QueryResult> {
        let [name] = d.names.as_slice() else {
            return Err(Error::Syntax("DECLARE takes one cursor name".into()));
        };
        let name = ident(name);
        self.check_plan(session, &plan)?;
        let mut cursors = session.cursors.lock().await;
        if cursors.contains_key(&name) {
            return Err(Error::State("42P03", format!("cursor \"{name}\" already exists")));
        }
        let df = session.ctx.execute_logical_plan(plan).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let stream = df.execute_stream().await?;
        let query = d.for_query.as_ref().map(|q| q.to_string()).unwrap_or_default();
        cursors.insert(
            name,
            Cursor {
                query,
                hold: d.hold.unwrap_or(false),
                scroll: d.scroll.unwrap_or(false),
                binary: d.binary.unwrap_or(false),
                created: chrono::Utc::now(),
                schema,
                rows: vec![],
                read: 0,
                stream: Some(stream),
                pos: 0,
            },
        );
        Ok(QueryResult::command("DECLARE CURSOR"))
    }

    /// FETCH (rows) or MOVE (only the count).
    pub(super) async fn fetch(&self, session: &Session, name: &Ident, direction: &FetchDirection, is_move: bool) -> Result<QueryResult> {
        let name = ident(name);
        let mut cursors = session.cursors.lock().await;
        let cursor = cursors.get_mut(&name).ok_or_else(|| missing(&name))?;
        let rows = cursor.step(direction).await?;
        let n: usize = rows.iter().map(|b| b.num_rows()).sum();
        if is_move {
            return Ok(QueryResult::Command { tag: "MOVE".into(), rows: Some(n) });
        }
        let schema = cursor.schema.clone();
        let batch = concat_batches(&schema, &rows)?;
        Ok(QueryResult::batches(schema, vec![batch]))
    }

    /// The row description of `FETCH … FROM name` (for Describe).
    pub(super) async fn cursor_schema(&self, session: &Session, name: &Ident) -> Result<SchemaRef> {
        let name = ident(name);
        let cursors = session.cursors.lock().await;
        cursors.get(&name).map(|c| c.schema.clone()).ok_or_else(|| missing(&name))
    }

    pub(super) async fn close_cursor(&self, session: &Session, which: &CloseCursor) -> Result<QueryResult> {
        let mut cursors = session.cursors.lock().await;
        match which {
            CloseCursor::All => cursors.clear(),
            CloseCursor::Specific { name } => {
                let name = ident(name);
                cursors.remove(&name).ok_or_else(|| missing(&name))?;
            }
        }
        Ok(QueryResult::command("CLOSE CURSOR"))
    }
}

/// COMMIT/ROLLBACK: cursors WITHOUT HOLD end with their transaction.
pub async fn end_transaction(session: &Session) {
    session.cursors.lock().await.retain(|_, c| c.hold);
}

/// `FETCH|MOVE [direction] [FROM|IN] cursor`, as PostgreSQL's grammar has it
/// (signed counts included, which sqlparser does not take): (is MOVE, cursor,
/// direction).
pub fn parse_fetch(sql: &str) -> Result<(bool, Ident, FetchDirection)> {
    use datafusion::sql::sqlparser::ast::ValueWithSpan;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&datafusion::sql::sqlparser::dialect::PostgreSqlDialect {}, sql).tokenize().map_err(|e| Error::Syntax(e.to_string()))?;
    let toks: Vec<Token> = tokens.into_iter().filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon)).collect();
    let word = |t: Option<&Token>| match t {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_lowercase()),
        _ => None,
    };
    let is_move = match word(toks.first()).as_deref() {
        Some("move") => true,
        Some("fetch") => false,
        _ => return Err(Error::Syntax("FETCH or MOVE".into())),
    };
    let mut i = 1;
    // A signed integer at i.
    let number = |i: &mut usize| -> Option<ValueWithSpan> {
        let (neg, at) = match toks.get(*i) {
            Some(Token::Minus) => (true, *i + 1),
            Some(Token::Plus) => (false, *i + 1),
            _ => (false, *i),
        };
        match toks.get(at) {
            Some(Token::Number(n, _)) => {
                *i = at + 1;
                Some(Value::Number(if neg { format!("-{n}") } else { n.clone() }, false).into())
            }
            _ => None,
        }
    };
    let direction = match word(toks.get(i)).as_deref() {
        Some("next") => {
            i += 1;
            FetchDirection::Next
        }
        Some("prior") => {
            i += 1;
            FetchDirection::Prior
        }
        Some("first") => {
            i += 1;
            FetchDirection::First
        }
        Some("last") => {
            i += 1;
            FetchDirection::Last
        }
        Some("all") => {
            i += 1;
            FetchDirection::All
        }
        Some(w @ ("absolute" | "relative")) => {
            i += 1;
            let limit = number(&mut i).ok_or_else(|| Error::Syntax(format!("{} takes a count", w.to_uppercase())))?;
            if w == "absolute" { FetchDirection::Absolute { limit } } else { FetchDirection::Relative { limit } }
        }
        Some(w @ ("forward" | "backward")) => {
            i += 1;
            let all = word(toks.get(i)).as_deref() == Some("all");
            if all {
                i += 1;
            }
            let limit = if all { None } else { number(&mut i) };
            match (w, all) {
                ("forward", true) => FetchDirection::ForwardAll,
                ("forward", false) => FetchDirection::Forward { limit },
                (_, true) => FetchDirection::BackwardAll,
                (_, false) => FetchDirection::Backward { limit },
            }
        }
        _ => match number(&mut i) {
            Some(limit) => FetchDirection::Count { limit },
            None => FetchDirection::Next,
        },
    };
    if matches!(word(toks.get(i)).as_deref(), Some("from" | "in")) {
        i += 1;
    }
    let name = match toks.get(i) {
        Some(Token::Word(w)) => Ident { value: w.value.clone(), quote_style: w.quote_style, span: datafusion::sql::sqlparser::tokenizer::Span::empty() },
        _ => return Err(Error::Syntax(format!("syntax error in {}: a cursor name", if is_move { "MOVE" } else { "FETCH" }))),
    };
    if toks.len() > i + 1 {
        return Err(Error::Syntax(format!("syntax error at or near \"{}\"", toks[i + 1])));
    }
    Ok((is_move, name, direction))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_and_move_parse_as_postgres_writes_them() {
        let (m, n, d) = parse_fetch("MOVE ABSOLUTE -2 FROM \"C1\"").unwrap();
        assert!(m);
        assert_eq!(n.value, "C1");
        assert!(matches!(d, FetchDirection::Absolute { limit } if limit.value == Value::Number("-2".into(), false)));
        let (m, n, d) = parse_fetch("fetch c").unwrap();
        assert!(!m && n.value == "c" && matches!(d, FetchDirection::Next));
        assert!(matches!(parse_fetch("FETCH BACKWARD ALL IN c").unwrap().2, FetchDirection::BackwardAll));
        assert!(matches!(parse_fetch("FETCH 5 c").unwrap().2, FetchDirection::Count { .. }));
        assert!(parse_fetch("FETCH 5 FROM c extra").is_err());
    }
}
