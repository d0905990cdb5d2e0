//! The SQL test corpus: every `sql/test/**/*.slt` file runs three ways, each on a fresh
//! data directory: in-process through `Engine::execute`; over the wire with the simple
//! query protocol (tokio-postgres's `simple_query`) against a server bound to
//! 127.0.0.1:0; and over the wire with the extended protocol (Parse, Bind with text
//! results, Describe, Execute, Sync; a record holding several statements sends them one
//! Parse each, as a driver would). Values are printed with the server's own text
//! encoding in every mode, and errors as `SQLSTATE: message`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use lakehouse::engine::{Engine, QueryResult};
use lakehouse::server::encode;
use lakehouse::{Config, Error};
use pgwire::api::portal::Format;
use sqllogictest::{DBOutput, DefaultColumnType};

#[derive(Debug)]
struct SltError(String);
impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for SltError {}

fn ours(e: Error) -> SltError {
    SltError(format!("{}: {e}", e.sqlstate()))
}

struct InProcess {
    engine: Arc<Engine>,
    session: lakehouse::session::Session,
}

/// Decode a DataRow's fields (int32 length + bytes, -1 = NULL) to strings.
fn decode_row(row: &pgwire::messages::data::DataRow) -> Vec<String> {
    let mut out = vec![];
    let data = &row.data[..];
    let mut pos = 0;
    for _ in 0..row.field_count {
        let len = i32::from_be_bytes(data[pos..pos + 4].try_into().unwrap());
        pos += 4;
        if len < 0 {
            out.push("NULL".to_string());
        } else {
            let s = String::from_utf8_lossy(&data[pos..pos + len as usize]).to_string();
            out.push(if s.is_empty() { "(empty)".into() } else { s });
            pos += len as usize;
        }
    }
    out
}

#[async_trait]
impl sqllogictest::AsyncDB for InProcess {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let (results, err) = self.engine.execute(&self.session, sql).await;
        if let Some(e) = err {
            return Err(ours(e));
        }
        let mut last = DBOutput::StatementComplete(0);
        for r in results {
            last = match r {
                QueryResult::Command { rows, .. } => DBOutput::StatementComplete(rows.unwrap_or(0) as u64),
                QueryResult::CopyIn(_) | QueryResult::CopyOut(_) => return Err(ours(Error::NotSupported("COPY with STDIN/STDOUT in-process".into()))),
                QueryResult::Rows { schema, mut stream } => {
                    use futures::StreamExt;
                    let fields = Arc::new(encode::field_infos(&schema, &Format::UnifiedText));
                    let mut rows = vec![];
                    while let Some(b) = stream.next().await {
                        let b = b.map_err(|e| ours(Error::from_datafusion(e)))?;
                        for row in encode::encode_batch(&b, &fields).map_err(|e| SltError(e.to_string()))? {
                            rows.push(decode_row(&row));
                        }
                    }
                    DBOutput::Rows { types: vec![DefaultColumnType::Any; schema.fields().len()], rows }
                }
            };
        }
        Ok(last)
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "in-process"
    }
}

struct Wire {
    client: tokio_postgres::Client,
}

#[async_trait]
impl sqllogictest::AsyncDB for Wire {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        use tokio_postgres::SimpleQueryMessage;
        let messages = self.client.simple_query(sql).await.map_err(|e| match e.as_db_error() {
            Some(db) => SltError(format!("{}: {}", db.code().code(), db.message())),
            None => SltError(format!("connection: {e}")),
        })?;
        let mut rows = vec![];
        let mut ncols = None;
        let mut last = DBOutput::StatementComplete(0);
        for m in messages {
            match m {
                SimpleQueryMessage::RowDescription(cols) => {
                    ncols = Some(cols.len());
                    rows.clear();
                }
                SimpleQueryMessage::Row(r) => {
                    ncols = Some(r.len());
                    rows.push(
                        (0..r.len())
                            .map(|i| match r.get(i) {
                                None => "NULL".to_string(),
                                Some("") => "(empty)".to_string(),
                                Some(s) => s.to_string(),
                            })
                            .collect(),
                    );
                }
                SimpleQueryMessage::CommandComplete(n) => {
                    last = match ncols.take() {
                        Some(c) => DBOutput::Rows { types: vec![DefaultColumnType::Any; c], rows: std::mem::take(&mut rows) },
                        None => DBOutput::StatementComplete(n),
                    };
                }
                _ => {}
            }
        }
        Ok(last)
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "wire"
    }
}

/// A minimal extended-protocol client: what a driver sends for a statement without
/// parameters (tokio-postgres asks for binary results, so it cannot be used here).
struct Extended {
    socket: tokio::net::TcpStream,
}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

impl Extended {
    async fn connect(port: u16) -> Result<Extended, SltError> {
        use tokio::io::AsyncWriteExt;
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| SltError(e.to_string()))?;
        let mut body = 196608i32.to_be_bytes().to_vec();
        for s in ["user", "slt", "database", "lakehouse", ""] {
            cstr(&mut body, s);
        }
        let mut startup = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        startup.extend_from_slice(&body);
        socket.write_all(&startup).await.map_err(|e| SltError(e.to_string()))?;
        let mut c = Extended { socket };
        loop {
            let (tag, body) = c.read().await?;
            match tag {
                b'R' if body[..4] != [0, 0, 0, 0] => return Err(SltError("extended: the test server asked for a password".into())),
                b'E' => return Err(SltError(format!("extended: {}", error_text(&body)))),
                b'Z' => return Ok(c),
                _ => {}
            }
        }
    }

    async fn read(&mut self) -> Result<(u8, Vec<u8>), SltError> {
        use tokio::io::AsyncReadExt;
        let mut head = [0u8; 5];
        self.socket.read_exact(&mut head).await.map_err(|e| SltError(format!("connection: {e}")))?;
        let len = i32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        self.socket.read_exact(&mut body).await.map_err(|e| SltError(format!("connection: {e}")))?;
        Ok((head[0], body))
    }

    /// One statement: Parse, Bind (text results), Describe portal, Execute, Sync.
    async fn one(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        use tokio::io::AsyncWriteExt;
        let mut parse = vec![];
        cstr(&mut parse, "");
        cstr(&mut parse, sql);
        parse.extend_from_slice(&0i16.to_be_bytes());
        let mut bind = vec![];
        cstr(&mut bind, "");
        cstr(&mut bind, "");
        bind.extend_from_slice(&0i16.to_be_bytes()); // parameter formats
        bind.extend_from_slice(&0i16.to_be_bytes()); // parameters
        bind.extend_from_slice(&1i16.to_be_bytes()); // one result format: text
        bind.extend_from_slice(&0i16.to_be_bytes());
        let mut out = frame(b'P', &parse);
        out.extend(frame(b'B', &bind));
        out.extend(frame(b'D', b"P\0"));
        out.extend(frame(b'E', &[0, 0, 0, 0, 0]));
        out.extend(frame(b'S', &[]));
        self.socket.write_all(&out).await.map_err(|e| SltError(e.to_string()))?;
        let (mut columns, mut rows, mut error, mut done) = (None, vec![], None, None);
        loop {
            let (tag, body) = self.read().await?;
            match tag {
                b'T' => columns = Some(i16::from_be_bytes([body[0], body[1]]) as usize),
                b'D' => {
                    let n = i16::from_be_bytes([body[0], body[1]]);
                    let mut data = vec![];
                    let mut pos = 2;
                    for _ in 0..n {
                        let len = i32::from_be_bytes(body[pos..pos + 4].try_into().unwrap());
                        pos += 4;
                        data.push(if len < 0 {
                            "NULL".to_string()
                        } else {
                            let s = String::from_utf8_lossy(&body[pos..pos + len as usize]).to_string();
                            pos += len as usize;
                            if s.is_empty() { "(empty)".into() } else { s }
                        });
                    }
                    rows.push(data);
                }
                b'C' => {
                    let tag = String::from_utf8_lossy(&body[..body.len().saturating_sub(1)]).to_string();
                    let n = tag.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                    done = Some(n);
                }
                b'I' => done = Some(0),
                b'E' => error = Some(error_text(&body)),
                b'Z' => break,
                _ => {}
            }
        }
        if let Some(e) = error {
            return Err(SltError(e));
        }
        Ok(match columns {
            Some(c) => DBOutput::Rows { types: vec![DefaultColumnType::Any; c], rows },
            None => DBOutput::StatementComplete(done.unwrap_or(0)),
        })
    }
}

/// `SQLSTATE: message` of an ErrorResponse body.
fn error_text(body: &[u8]) -> String {
    let (mut code, mut message) = (String::new(), String::new());
    for field in body.split(|b| *b == 0) {
        match field.first() {
            Some(b'C') => code = String::from_utf8_lossy(&field[1..]).to_string(),
            Some(b'M') => message = String::from_utf8_lossy(&field[1..]).to_string(),
            _ => {}
        }
    }
    format!("{code}: {message}")
}

#[async_trait]
impl sqllogictest::AsyncDB for Extended {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        // A driver sends one statement per Parse: split the record as the server would.
        let statements = match lakehouse::engine::split::split_statements(sql) {
            Ok(s) => s,
            Err(e) => return Err(ours(e)),
        };
        let mut last = DBOutput::StatementComplete(0);
        for s in statements {
            last = self.one(&s).await?;
        }
        Ok(last)
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "extended"
    }
}

fn slt_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            slt_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "slt") {
            out.push(p);
        }
    }
}

fn config(dir: &Path) -> Config {
    let mut c = Config::default();
    c.storage.data_dir = dir.join("data");
    c
}

async fn run_in_process(file: &Path) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(tmp.path())).await.map_err(|e| e.to_string())?;
    let mut runner = sqllogictest::Runner::new(|| {
        let engine = engine.clone();
        async move {
            let session = engine.new_session("slt", "lakehouse");
            Ok(InProcess { engine, session })
        }
    });
    runner.with_column_validator(sqllogictest::default_column_validator);
    runner.run_file_async(file).await.map_err(|e| e.display(true).to_string())
}

async fn run_over_wire(file: &Path, extended: bool) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(tmp.path())).await.map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(lakehouse::server::serve(engine, listener, async {
        let _ = stopped.await;
    }));
    let result = if extended {
        let mut runner = sqllogictest::Runner::new(move || async move { Extended::connect(port).await });
        let r = runner.run_file_async(file).await.map_err(|e| e.display(true).to_string());
        drop(runner);
        r
    } else {
        let mut runner = sqllogictest::Runner::new(move || async move {
            let (client, conn) = tokio_postgres::connect(&format!("host=127.0.0.1 port={port} user=slt dbname=lakehouse"), tokio_postgres::NoTls)
                .await
                .map_err(|e| SltError(e.to_string()))?;
            tokio::spawn(conn);
            Ok(Wire { client })
        });
        let r = runner.run_file_async(file).await.map_err(|e| e.display(true).to_string());
        drop(runner);
        r
    };
    let _ = stop.send(());
    let _ = server.await;
    result
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/test");
    let mut files = vec![];
    slt_files(&root, &mut files);
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        for (mode, result) in [
            ("in-process", rt.block_on(run_in_process(file))),
            ("simple", rt.block_on(run_over_wire(file, false))),
            ("extended", rt.block_on(run_over_wire(file, true))),
        ] {
            match result {
                Ok(()) => {
                    passed += 1;
                    println!("slt {name} [{mode}] ... ok");
                }
                Err(e) => {
                    failed += 1;
                    println!("slt {name} [{mode}] ... FAILED\n{e}");
                }
            }
        }
    }
    println!("\nslt: {passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
}
