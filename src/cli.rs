//! `lakehouse sql`: run statements in-process and print results as aligned tables,
//! like psql. Stops at the first error, printing its SQLSTATE.

use std::io::Write;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;

use crate::engine::column_names::display_name as lakehouse_name;
use crate::engine::{Engine, QueryResult};
use crate::error::{Error, Result};

/// Run `sql` and write results to `out`, notices and errors to `err`.
/// Returns the first error, after printing it.
pub async fn run(engine: &Engine, sql: &str, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let session = engine.new_superuser_session("lakehouse", "lakehouse");
    let (results, error) = engine.execute(&session, sql).await;
    for notice in session.take_notices() {
        let (severity, _, message) = crate::session::notice_parts(&notice);
        let _ = writeln!(err, "{severity}:  {message}");
    }
    for r in results {
        match r {
            QueryResult::Command { tag, rows } => {
                let _ = match rows {
                    Some(n) => writeln!(out, "{tag} {n}"),
                    None => writeln!(out, "{tag}"),
                };
            }
            QueryResult::Rows { schema, mut stream } => {
                let mut batches = vec![];
                while let Some(b) = stream.next().await {
                    match b {
                        Ok(b) => batches.push(b),
                        Err(e) => return report(Error::from_datafusion(e), err),
                    }
                }
                let _ = write!(out, "{}", format_table(&schema, &batches)?);
            }
            QueryResult::CopyIn(_) | QueryResult::CopyOut(_) => {
                return report(Error::NotSupported("COPY … FROM STDIN / TO STDOUT here: run it over a connection (psql's \\copy)".into()), err);
            }
        }
    }
    match error {
        Some(e) => report(e, err),
        None => Ok(()),
    }
}

fn report(e: Error, err: &mut dyn Write) -> Result<()> {
    let _ = writeln!(err, "ERROR:  {}: {}", e.sqlstate(), e.message());
    Err(e)
}

fn right_aligned(dt: &DataType) -> bool {
    dt.is_numeric()
}

/// psql's aligned format: centred headers, numbers right-aligned, `(n rows)`.
pub fn format_table(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
    let options = FormatOptions::default().with_null("");
    let ncols = schema.fields().len();
    let mut cells: Vec<Vec<String>> = vec![];
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..b.num_rows() {
            cells.push(fmts.iter().map(|f| f.value(row).to_string()).collect());
        }
    }
    let mut widths: Vec<usize> = schema.fields().iter().map(|f| lakehouse_name(f.name()).chars().count()).collect();
    for row in &cells {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    let header: Vec<String> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = lakehouse_name(f.name());
            let pad = widths[i] - name.chars().count();
            format!("{}{}{}", " ".repeat(pad / 2), name, " ".repeat(pad - pad / 2))
        })
        .collect();
    s.push(' ');
    s.push_str(&header.join(" | "));
    s.push('\n');
    s.push_str(&widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"));
    s.push('\n');
    for row in &cells {
        let parts: Vec<String> = (0..ncols)
            .map(|i| {
                if right_aligned(schema.field(i).data_type()) {
                    format!("{:>w$}", row[i], w = widths[i])
                } else {
                    format!("{:<w$}", row[i], w = widths[i])
                }
            })
            .collect();
        s.push(' ');
        s.push_str(parts.join(" | ").trim_end());
        s.push('\n');
    }
    let n = cells.len();
    s.push_str(&format!("({n} {})\n\n", if n == 1 { "row" } else { "rows" }));
    Ok(s)
}
