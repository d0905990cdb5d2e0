//! `lakehouse bench mysql`: a 1M-row MariaDB/MySQL table queried through lakehouse
//! (in-process and over pgwire) against the same query sent directly with
//! mysql_async, and `CALL ingest` rows/s against a direct full read.
//!
//! The table (`lh_bench.events`, created and filled once, reused while its row count
//! matches) has no index on the filtered columns, so every query is a full scan at the
//! source; lakehouse pushes the filter and projection down, so both sides run the same
//! SQL at the server and differ only in transport and conversion. Runs alternate
//! (direct, in-process, wire) and the median of each is reported, as ratios to direct
//! in the same run.

use std::time::Instant;

use mysql_async::prelude::Queryable;

use crate::error::{Error, Result};
use crate::{Config, Engine};

#[derive(Debug, Clone)]
pub struct SourcesBench {
    /// The server (root@127.0.0.1:3306/test by default); the bench database is created
    /// beside `test`.
    pub url: String,
    pub rows: usize,
    pub runs: usize,
}

const DB: &str = "lh_bench";

fn mysql_err(e: mysql_async::Error) -> Error {
    Error::ConnectionFailure(format!("mysql: {e}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn prepare_table(conn: &mut mysql_async::Conn, rows: usize) -> Result<()> {
    conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS {DB}")).await.map_err(mysql_err)?;
    let have: Option<u64> = conn
        .query_first(format!("SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{DB}' AND TABLE_NAME = 'events'"))
        .await
        .map_err(mysql_err)?;
    if have.is_some() {
        let n: Option<u64> = conn.query_first(format!("SELECT count(*) FROM {DB}.events")).await.map_err(mysql_err)?;
        if n == Some(rows as u64) {
            println!("table {DB}.events: {rows} rows (reused)");
            return Ok(());
        }
    }
    let t = Instant::now();
    conn.query_drop(format!("DROP TABLE IF EXISTS {DB}.events")).await.map_err(mysql_err)?;
    conn.query_drop(format!(
        "CREATE TABLE {DB}.events (id BIGINT PRIMARY KEY, user_id INT NOT NULL, amount DECIMAL(10,2) NOT NULL, \
         kind VARCHAR(16) NOT NULL, created_at DATETIME NOT NULL, email VARCHAR(64), note VARCHAR(64))"
    ))
    .await
    .map_err(mysql_err)?;
    // MariaDB's SEQUENCE engine fills it in one statement; MySQL gets batches.
    let fill = format!(
        "INSERT INTO {DB}.events SELECT seq, seq % 10000, (seq * 7 % 10000) / 100, ELT(1 + seq % 4, 'click', 'view', 'buy', 'refund'), \
         '2024-01-01' + INTERVAL (seq % 2592000) SECOND, CONCAT('user', seq % 10000, '@example.com'), CONCAT('note ', seq) FROM seq_1_to_{rows}"
    );
    if conn.query_drop(&fill).await.is_err() {
        let mut start = 1usize;
        while start <= rows {
            let end = (start + 9_999).min(rows);
            let values: Vec<String> = (start..=end)
                .map(|s| {
                    let kind = ["click", "view", "buy", "refund"][s % 4];
                    format!("({s}, {}, {:.2}, '{kind}', '2024-01-01' + INTERVAL {} SECOND, 'user{}@example.com', 'note {s}')", s % 10000, (s * 7 % 10000) as f64 / 100.0, s % 2592000, s % 10000)
                })
                .collect();
            conn.query_drop(format!("INSERT INTO {DB}.events VALUES {}", values.join(","))).await.map_err(mysql_err)?;
            start = end + 1;
        }
    }
    println!("table {DB}.events: {rows} rows created in {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}

pub async fn run(o: SourcesBench) -> Result<()> {
    println!(
        "lakehouse bench mysql: {} rows, {} runs per query; {} cores; {}",
        o.rows,
        o.runs,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        if cfg!(debug_assertions) { "DEBUG build: figures are not meaningful, use --release" } else { "release build" }
    );
    let (location, password) = crate::catalog::attachments::Location::parse(&o.url)?;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(location.host.clone())
        .tcp_port(location.port)
        .user(Some(location.user.clone()))
        .pass(password.clone())
        .db_name(Some(location.database.clone()));
    let mut direct = mysql_async::Conn::new(opts).await.map_err(|e| Error::Unreachable {
        what: "mysql".into(),
        location: location.display(),
        reason: e.to_string(),
    })?;
    prepare_table(&mut direct, o.rows).await?;

    let dir = super::tempfile_dir()?;
    let mut config = Config::default();
    config.storage.data_dir = dir.join("data");
    let engine = Engine::open(config).await?;
    let session = engine.new_session("bench", "lakehouse");
    let mut bench_loc = location.clone();
    bench_loc.database = DB.into();
    let attach = match &password {
        Some(p) => format!("ATTACH '{}' AS bench (TYPE mysql)", bench_loc.display().replacen('@', &format!(":{p}@"), 1)),
        None => format!("ATTACH '{}' AS bench (TYPE mysql)", bench_loc.display()),
    };
    engine.execute_collect(&session, &attach).await?;

    // Over the wire too: an in-process server on an OS port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| Error::io("127.0.0.1:0", e))?;
    let port = listener.local_addr().map_err(|e| Error::io("listener", e))?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::serve(engine.clone(), listener, async {
        let _ = stopped.await;
    }));
    let (client, conn) = tokio_postgres::connect(&format!("host=127.0.0.1 port={port} user=bench dbname=lakehouse"), tokio_postgres::NoTls)
        .await
        .map_err(|e| Error::ConnectionFailure(e.to_string()))?;
    tokio::spawn(conn);

    let queries = [
        ("user_id = 42", "SELECT id, amount, kind FROM {t} WHERE user_id = 42"),
        ("buy, amount >= 90", "SELECT id, amount, created_at FROM {t} WHERE kind = 'buy' AND amount >= 90"),
        ("group by, 5% of rows", "SELECT kind, count(*), sum(amount) FROM {t} WHERE user_id < 500 GROUP BY kind"),
    ];
    println!("\nfiltered queries (median of {} runs; ratio = time / direct mysql_async):", o.runs);
    println!("{:<22} {:>8} {:>12} {:>12} {:>8} {:>12} {:>8}", "query", "rows", "direct ms", "in-proc ms", "ratio", "pgwire ms", "ratio");
    for (label, q) in queries {
        let direct_sql = q.replace("{t}", &format!("{DB}.events"));
        let ours = q.replace("{t}", "bench.events");
        let (mut d, mut e, mut w) = (vec![], vec![], vec![]);
        let mut rows = 0;
        for run in 0..o.runs + 2 {
            let t = Instant::now();
            let got: Vec<mysql_async::Row> = direct.query(&direct_sql).await.map_err(mysql_err)?;
            let dt = t.elapsed().as_secs_f64() * 1e3;
            rows = got.len();
            let t = Instant::now();
            let out = engine.execute_collect(&session, &ours).await?;
            let et = t.elapsed().as_secs_f64() * 1e3;
            let n: usize = out.iter().flat_map(|(_, b)| b.iter().map(|b| b.num_rows())).sum();
            if n != rows {
                return Err(Error::Internal(format!("{label}: lakehouse returned {n} rows, mysql {rows}")));
            }
            let t = Instant::now();
            let wire = client.simple_query(&ours).await.map_err(|e| Error::ConnectionFailure(e.to_string()))?;
            let wt = t.elapsed().as_secs_f64() * 1e3;
            let wn = wire.iter().filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))).count();
            if wn != rows {
                return Err(Error::Internal(format!("{label}: pgwire returned {wn} rows, mysql {rows}")));
            }
            if run >= 2 {
                d.push(dt);
                e.push(et);
                w.push(wt);
            }
        }
        let (d, e, w) = (median(d), median(e), median(w));
        println!("{label:<22} {rows:>8} {d:>12.2} {e:>12.2} {:>8.2} {w:>12.2} {:>8.2}", e / d, w / d);
    }
    let plan = engine.execute_collect(&session, "EXPLAIN SELECT id, amount, kind FROM bench.events WHERE user_id = 42").await?;
    for (_, batches) in plan {
        for b in batches {
            let text = datafusion::arrow::util::pretty::pretty_format_batches(&[b]).map(|t| t.to_string()).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("VirtualExecutionPlan")) {
                println!("pushed down: {}", line.trim_matches(|c| c == '|' || c == ' '));
            }
        }
    }

    // Ingest against a direct full read of the same rows.
    println!("\ningest ({} rows):", o.rows);
    let t = Instant::now();
    let mut stream = direct.query_iter(format!("SELECT * FROM {DB}.events")).await.map_err(mysql_err)?;
    let mut n = 0usize;
    while let Some(row) = stream.next().await.map_err(mysql_err)? {
        let _: mysql_async::Row = row;
        n += 1;
    }
    drop(stream);
    let read_s = t.elapsed().as_secs_f64();
    println!("  direct mysql_async read of every row: {n} rows in {read_s:.2} s = {:.0} rows/s", n as f64 / read_s);
    let rss_before = super::peak_rss_mib();
    let t = Instant::now();
    engine.execute_collect(&session, "CALL ingest('bench.events', 'events')").await?;
    let ingest_s = t.elapsed().as_secs_f64();
    let counted = engine.execute_collect(&session, "SELECT count(*) FROM events").await?;
    let written = counted
        .first()
        .and_then(|(_, b)| b.first())
        .and_then(|b| b.column(0).as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().map(|a| a.value(0)))
        .unwrap_or(0);
    let bytes: u64 = walk_size(&dir.join("data"));
    println!(
        "  CALL ingest to Parquet: {written} rows in {ingest_s:.2} s = {:.0} rows/s ({:.2}x the direct read's time); {:.1} MiB written",
        written as f64 / ingest_s,
        ingest_s / read_s,
        bytes as f64 / 1048576.0
    );
    println!("  peak RSS: {rss_before:.0} MiB before the ingest, {:.0} MiB after", super::peak_rss_mib());
    let pii = engine.execute_collect(&session, "SELECT pii_columns FROM lakehouse.datasets WHERE name = 'events'").await?;
    if let Some(b) = pii.first().and_then(|(_, b)| b.first()) {
        println!("  PII flagged: {}", datafusion::arrow::util::display::array_value_to_string(b.column(0), 0).unwrap_or_default());
    }
    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn walk_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => walk_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}
