//! `lakehouse bench copy`: `COPY items (id, emb) FROM STDIN` of N × d vectors over
//! the wire, binary and text, into lakehouse (an in-process server on a fresh data
//! directory) and into PostgreSQL with pgvector when it is reachable — the same bytes
//! to both, sent by tokio-postgres in 64 KiB messages. Runs alternate and the median
//! of each is reported, as a ratio to PostgreSQL in the same run.

use std::time::Instant;

use bytes::Bytes;
use futures::SinkExt;

use crate::error::{Error, Result};
use crate::{Config, Engine};

#[derive(Debug, Clone)]
pub struct CopyBench {
    pub rows: usize,
    pub dims: usize,
    pub runs: usize,
    /// libpq-style connection string of the PostgreSQL to compare with.
    pub postgres: String,
}

fn pg_err(e: tokio_postgres::Error) -> Error {
    Error::ConnectionFailure(format!("{e}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The rows in COPY's binary format (pgvector's binary vectors) and in its text format.
fn payloads(rows: usize, dims: usize) -> (Vec<u8>, Vec<u8>) {
    let (data, _) = super::synthetic(rows, 0, dims, 7);
    let mut bin = Vec::with_capacity(rows * (dims * 4 + 24) + 32);
    bin.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    bin.extend(0i32.to_be_bytes());
    bin.extend(0i32.to_be_bytes());
    let mut text = Vec::with_capacity(rows * dims * 10);
    for (i, v) in data.chunks_exact(dims).enumerate() {
        bin.extend(2i16.to_be_bytes());
        bin.extend(8i32.to_be_bytes());
        bin.extend((i as i64).to_be_bytes());
        bin.extend((4 + 4 * dims as i32).to_be_bytes());
        bin.extend((dims as i16).to_be_bytes());
        bin.extend(0i16.to_be_bytes());
        for x in v {
            bin.extend(x.to_be_bytes());
        }
        text.extend(format!("{i}\t{}\n", crate::udf::vector::to_text(v)).as_bytes());
    }
    bin.extend((-1i16).to_be_bytes());
    (bin, text)
}

async fn copy_in(c: &tokio_postgres::Client, sql: &str, payload: &[u8]) -> Result<(u64, f64)> {
    let t = Instant::now();
    let sink = c.copy_in(sql).await.map_err(pg_err)?;
    futures::pin_mut!(sink);
    for chunk in payload.chunks(64 * 1024) {
        sink.send(Bytes::copy_from_slice(chunk)).await.map_err(pg_err)?;
    }
    let n = sink.finish().await.map_err(pg_err)?;
    Ok((n, t.elapsed().as_secs_f64()))
}

async fn connect(conn: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls).await.map_err(pg_err)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// One timed COPY into a fresh table on `c`.
async fn one(c: &tokio_postgres::Client, table: &str, binary: bool, payload: &[u8], dims: usize, rows: usize) -> Result<f64> {
    c.batch_execute(&format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id bigint, emb vector({dims}))")).await.map_err(pg_err)?;
    let format = if binary { " WITH (FORMAT binary)" } else { "" };
    let (n, secs) = copy_in(c, &format!("COPY {table} (id, emb) FROM STDIN{format}"), payload).await?;
    if n as usize != rows {
        return Err(Error::Internal(format!("COPY into {table} wrote {n} rows, not {rows}")));
    }
    Ok(secs)
}

pub async fn run(o: CopyBench) -> Result<()> {
    let t = Instant::now();
    let (bin, text) = payloads(o.rows, o.dims);
    println!(
        "COPY of {} × {}-d vectors: binary {:.0} MiB, text {:.0} MiB (made in {:.1} s)",
        o.rows,
        o.dims,
        bin.len() as f64 / 1048576.0,
        text.len() as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    let dir = super::tempfile_dir()?;
    let mut config = Config::default();
    config.storage.data_dir = dir.join("data");
    let engine = Engine::open(config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| Error::Internal(e.to_string()))?;
    let port = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::serve(engine, listener, async {
        let _ = stopped.await;
    }));
    let ours = connect(&format!("host=127.0.0.1 port={port} user=postgres dbname=lakehouse")).await?;
    let theirs = match connect(&o.postgres).await {
        Ok(c) => match c.batch_execute("CREATE EXTENSION IF NOT EXISTS vector").await {
            Ok(()) => Some(c),
            Err(e) => {
                println!("PostgreSQL at '{}' has no pgvector ({e}): lakehouse only", o.postgres);
                None
            }
        },
        Err(e) => {
            println!("PostgreSQL at '{}' unreachable ({e}): lakehouse only", o.postgres);
            None
        }
    };
    println!("{:<8} {:>14} {:>14} {:>14} {:>10}", "format", "lakehouse s", "rows/s", "pgvector s", "ratio");
    for (name, binary, payload) in [("binary", true, &bin), ("text", false, &text)] {
        let (mut a, mut b) = (vec![], vec![]);
        for _ in 0..o.runs.max(1) {
            if let Some(pg) = &theirs {
                b.push(one(pg, "lh_bench_copy", binary, payload, o.dims, o.rows).await?);
            }
            a.push(one(&ours, "lh_bench_copy", binary, payload, o.dims, o.rows).await?);
        }
        let ours_s = median(a);
        let (pg_s, ratio) = if b.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            let m = median(b);
            (format!("{m:.2}"), format!("{:.2}×", m / ours_s))
        };
        println!("{name:<8} {ours_s:>14.2} {:>14.0} {pg_s:>14} {ratio:>10}", o.rows as f64 / ours_s);
    }
    println!("(ratio: PostgreSQL's time / lakehouse's; above 1 lakehouse is faster; medians of {} runs)", o.runs.max(1));
    if let Some(pg) = &theirs {
        let _ = pg.batch_execute("DROP TABLE IF EXISTS lh_bench_copy").await;
    }
    println!("peak RSS of this process (client, lakehouse and its data): {:.0} MiB", super::peak_rss_mib());
    drop(ours);
    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
