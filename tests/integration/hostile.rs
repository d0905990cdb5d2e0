//! A hostile client, as issue #13's probes were: one-message crashes, 100,000 fuzzed
//! frames, statements built to overflow the stack, settings that size buffers, a
//! panic part-way through a query, and the protocol's negotiation and auth corners.
//! Each must be answered with an error while the server stays up.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use lakehouse::config::{AuthMethod, UserConfig};

use crate::security::{frame, raw_session, read_until_ready, startup_packet, still_serves};
use crate::support::{BinaryServer, TestServer, connect, sqlstate};

fn binary_float8_array_declaring(n: i32) -> Vec<u8> {
    let mut v = vec![];
    v.extend_from_slice(&1i32.to_be_bytes()); // ndim
    v.extend_from_slice(&0i32.to_be_bytes()); // has nulls
    v.extend_from_slice(&701u32.to_be_bytes()); // float8
    v.extend_from_slice(&n.to_be_bytes()); // elements declared
    v.extend_from_slice(&1i32.to_be_bytes()); // lower bound
    v
}

fn parse(name: &str, sql: &str, oids: &[u32]) -> Vec<u8> {
    let mut b = format!("{name}\0{sql}\0").into_bytes();
    b.extend_from_slice(&(oids.len() as i16).to_be_bytes());
    for o in oids {
        b.extend_from_slice(&o.to_be_bytes());
    }
    frame(b'P', &b)
}

fn bind_binary(stmt: &str, param: &[u8]) -> Vec<u8> {
    let mut b = format!("\0{stmt}\0").into_bytes();
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes()); // binary
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&(param.len() as i32).to_be_bytes());
    b.extend_from_slice(param);
    b.extend_from_slice(&0i16.to_be_bytes());
    frame(b'B', &b)
}

fn execute(max_rows: i32) -> Vec<u8> {
    let mut b = b"\0".to_vec();
    b.extend_from_slice(&max_rows.to_be_bytes());
    frame(b'E', &b)
}

/// The two messages that aborted the process: each is an error now, and the server
/// (and that very session) goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_message_crashes_are_errors() {
    let server = TestServer::start().await;
    let port = server.port;
    tokio::task::spawn_blocking(move || {
        let mut s = raw_session(port);
        // Bind: a binary float8[] declaring 2^31 - 1 elements, holding none.
        let mut msgs = parse("s1", "SELECT $1::double precision[] AS a", &[1022]);
        msgs.extend(bind_binary("s1", &binary_float8_array_declaring(i32::MAX)));
        msgs.extend(execute(0));
        msgs.extend(frame(b'S', b""));
        s.write_all(&msgs).unwrap();
        let seen = read_until_ready(&mut s);
        assert!(seen.iter().any(|(t, c)| *t == b'E' && c == "22P02"), "{seen:?}");

        // Execute with max_rows = 2^31 - 1, a legal value: all rows, then done.
        let mut msgs = parse("", "SELECT x FROM generate_series(1, 3) t(x)", &[]);
        msgs.extend(frame(b'B', b"\0\0\0\0\0\0\0\0"));
        msgs.extend(execute(i32::MAX));
        msgs.extend(frame(b'S', b""));
        s.write_all(&msgs).unwrap();
        let seen = read_until_ready(&mut s);
        let rows = seen.iter().filter(|(t, _)| *t == b'D').count();
        assert_eq!(rows, 3, "{seen:?}");
        assert!(seen.iter().any(|(t, _)| *t == b'C'), "{seen:?}");

        // max_rows 2 of 3: two rows, PortalSuspended, then the last with the next Execute.
        let mut msgs = parse("", "SELECT x FROM generate_series(1, 3) t(x)", &[]);
        msgs.extend(frame(b'B', b"\0\0\0\0\0\0\0\0"));
        msgs.extend(execute(2));
        msgs.extend(execute(2));
        msgs.extend(frame(b'S', b""));
        s.write_all(&msgs).unwrap();
        let seen = read_until_ready(&mut s);
        let tags: Vec<u8> = seen.iter().map(|(t, _)| *t).filter(|t| matches!(t, b'D' | b's' | b'C')).collect();
        assert_eq!(tags, b"DDsDC".to_vec(), "{seen:?}");
    })
    .await
    .unwrap();
    still_serves(port).await;
    server.stop().await;
}

/// A malformed body is an ERROR and the same session keeps working (PostgreSQL);
/// the decoder panics the issue listed are among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_keep_the_session() {
    let server = TestServer::start().await;
    let port = server.port;
    tokio::task::spawn_blocking(move || {
        let mut s = raw_session(port);
        let bad: Vec<Vec<u8>> = vec![
            frame(b'B', b"\0\0\0\0\x03\xe8"),       // Bind: 1000 parameters, no data
            frame(b'D', b""),                       // Describe with an empty body
            frame(b'P', b"\0SELECT 1\0\xff\xfb"),   // Parse: negative type count
            frame(b'B', b"\0\0\0\0\0\x01\x7f\xff\xff\xff"), // a parameter longer than the message
            frame(b'C', b"Z\0"),                    // Close of an unknown kind
        ];
        for f in bad {
            let mut msgs = f.clone();
            msgs.extend(frame(b'S', b""));
            s.write_all(&msgs).unwrap();
            let seen = read_until_ready(&mut s);
            assert!(seen.iter().any(|(t, c)| *t == b'E' && c == "08P01"), "{f:?}: {seen:?}");
            s.write_all(&frame(b'Q', b"SELECT 1\0")).unwrap();
            let seen = read_until_ready(&mut s);
            assert!(seen.iter().any(|(t, _)| *t == b'D'), "the session goes on after {f:?}: {seen:?}");
        }
        // After one error, messages up to Sync are discarded: one ErrorResponse only.
        let mut msgs = frame(b'D', b"");
        msgs.extend(frame(b'D', b""));
        msgs.extend(frame(b'P', b"\0SELECT 1\0\xff\xfb"));
        msgs.extend(frame(b'S', b""));
        s.write_all(&msgs).unwrap();
        let seen = read_until_ready(&mut s);
        assert_eq!(seen.iter().filter(|(t, _)| *t == b'E').count(), 1, "{seen:?}");
        // A FunctionCall (fast path) is refused but harmless.
        let mut call = 1u32.to_be_bytes().to_vec();
        call.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        s.write_all(&frame(b'F', &call)).unwrap();
        let seen = read_until_ready(&mut s);
        assert!(seen.iter().any(|(t, c)| *t == b'E' && c == "0A000"), "{seen:?}");
    })
    .await
    .unwrap();
    server.stop().await;
}

/// 100,000 fuzzed frames (mutated messages of every type, bogus lengths, mutated
/// start-up packets) against the real binary: no panic in its log, never an exit.
#[test]
fn a_hundred_thousand_fuzzed_frames_cause_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = BinaryServer::start(dir.path());
    let port = server.port;
    let seeds: Vec<(u8, Vec<u8>)> = vec![
        (b'Q', b"SELECT 1\0".to_vec()),
        (b'P', [b"s\0SELECT $1\0".as_slice(), &1i16.to_be_bytes(), &25u32.to_be_bytes()].concat()),
        (b'B', [b"\0s\0".as_slice(), &1i16.to_be_bytes(), &1i16.to_be_bytes(), &1i16.to_be_bytes(), &4i32.to_be_bytes(), b"abcd", &1i16.to_be_bytes(), &0i16.to_be_bytes()].concat()),
        (b'B', [b"\0s\0".as_slice(), &1i16.to_be_bytes(), &1i16.to_be_bytes(), &1i16.to_be_bytes(), &20i32.to_be_bytes(), &binary_float8_array_declaring(1000), &0i16.to_be_bytes()].concat()),
        (b'E', [b"\0".as_slice(), &0i32.to_be_bytes()].concat()),
        (b'D', b"Ss\0".to_vec()),
        (b'D', b"P\0".to_vec()),
        (b'C', b"Ss\0".to_vec()),
        (b'H', vec![]),
        (b'd', b"1\t2\n".to_vec()),
        (b'c', vec![]),
        (b'f', b"oops\0".to_vec()),
        (b'F', [&1u32.to_be_bytes()[..], &0i16.to_be_bytes(), &0i16.to_be_bytes(), &0i16.to_be_bytes()].concat()),
        (b'p', b"secret\0".to_vec()),
        (b'S', vec![]),
    ];
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut sent = 0usize;
    let mut connections = 0usize;
    while sent < 100_000 {
        connections += 1;
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut reader = s.try_clone().unwrap();
        let drain = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
        });
        let mut out = if next() % 20 == 0 {
            // A mutated start-up packet.
            let mut p = startup_packet("fuzz");
            let at = 4 + (next() as usize) % (p.len() - 4);
            p[at] = next() as u8;
            p
        } else {
            startup_packet("fuzz")
        };
        for _ in 0..1_000 {
            let (tag, seed) = &seeds[(next() as usize) % seeds.len()];
            let mut body = seed.clone();
            for _ in 0..(next() % 4) {
                match next() % 4 {
                    0 if !body.is_empty() => {
                        let at = (next() as usize) % body.len();
                        body[at] = next() as u8;
                    }
                    1 => body.truncate((next() as usize) % (body.len() + 1)),
                    2 => {
                        let at = (next() as usize) % (body.len() + 1);
                        body.insert(at, [0u8, 0xff, 0x7f, 0x80][(next() % 4) as usize]);
                    }
                    _ => body.extend((0..(next() % 8)).map(|_| next() as u8)),
                }
            }
            let mut f = frame(*tag, &body);
            if next() % 500 == 0 {
                // A length that lies (too small, or larger than what follows).
                let bogus = [0u32, 3, 1 << 31, (body.len() + 100) as u32][(next() % 4) as usize];
                f[1..5].copy_from_slice(&bogus.to_be_bytes());
            }
            if next() % 1000 == 0 {
                f[0] = next() as u8; // an unknown message type
            }
            out.extend(f);
            sent += 1;
        }
        out.extend(frame(b'X', b""));
        let _ = s.write_all(&out);
        let _ = s.shutdown(std::net::Shutdown::Write);
        drain.join().unwrap();
    }
    assert!(server.child.try_wait().unwrap().is_none(), "the server exited during the fuzz run");
    let log = server.log.lock().unwrap().clone();
    let panics: Vec<&String> = log.iter().filter(|l| l.contains("panic")).collect();
    assert!(panics.is_empty(), "{} panic lines after {sent} frames on {connections} connections: {:?}", panics.len(), &panics[..panics.len().min(5)]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(still_serves(port));
    server.terminate();
}

fn one_query(port: u16, sql: &str) -> Vec<(u8, String)> {
    let mut s = raw_session(port);
    let mut q = sql.as_bytes().to_vec();
    q.push(0);
    s.write_all(&frame(b'Q', &q)).unwrap();
    read_until_ready(&mut s)
}

/// Statements built to overflow the stack, and settings that size buffers: each is
/// an error (54001 / 22023) and the server stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_statements_are_errors() {
    let server = TestServer::start().await;
    let port = server.port;
    let ones = (0..10_000).map(|_| "1").collect::<Vec<_>>().join("+");
    let ors = (0..10_000).map(|i| format!("x = {i}")).collect::<Vec<_>>().join(" OR ");
    let unions = (0..2_000).map(|i| format!("SELECT {i}")).collect::<Vec<_>>().join(" UNION ALL ");
    let concat = (0..20_000).map(|_| "'a'").collect::<Vec<_>>().join(" || ");
    let cases = vec![
        (format!("SELECT {ones}"), "54001"),
        (format!("SELECT count(*) FROM generate_series(1, 10) t(x) WHERE {ors}"), "54001"),
        (unions, "54001"),
        (format!("SELECT {concat}"), "54001"),
        (format!("SELECT {}1{}", "(".repeat(1000), ")".repeat(1000)), "42601"),
        ("SET datafusion.execution.batch_size = 2000000000".into(), "22023"),
        ("SET datafusion.sql_parser.recursion_limit = 100000".into(), "22023"),
        ("SET datafusion.execution.target_partitions = 1000000".into(), "22023"),
        ("SELECT array_repeat(1, 4611686018427387904)".into(), ""),
    ];
    let c = connect(port, "tester", None).await.unwrap();
    for (sql, code) in cases {
        let e = c.simple_query(&sql).await.expect_err(&sql[..sql.len().min(60)]);
        if !code.is_empty() {
            assert_eq!(sqlstate(&e), code, "{}: {e}", &sql[..sql.len().min(60)]);
        }
    }
    // Within the limits, deep but fine.
    let ok = (0..500).map(|i| format!("x = {i}")).collect::<Vec<_>>().join(" OR ");
    let rows = c.query(&format!("SELECT count(*) FROM generate_series(1, 1000) t(x) WHERE {ok}"), &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 499);
    let seen = tokio::task::spawn_blocking(move || one_query(port, "SELECT 1")).await.unwrap();
    assert!(seen.iter().any(|(t, _)| *t == b'D'));
    still_serves(port).await;
    server.stop().await;
}

/// A panic inside a query at row N (a UDF here) fails the whole query with XX000:
/// never CommandComplete with the rows produced before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_a_query_is_an_error_not_a_short_answer() {
    let server = TestServer::start_with_engine(
        |_| {},
        |engine| {
            let f = Arc::new(|args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let x = arrays[0].as_any().downcast_ref::<Int64Array>().unwrap();
                let at = arrays[1].as_any().downcast_ref::<Int64Array>().unwrap();
                for i in 0..x.len() {
                    if x.value(i) == at.value(i) {
                        panic!("panic_at reached row {}", x.value(i));
                    }
                }
                Ok(ColumnarValue::Array(arrays[0].clone()))
            });
            engine.register_udf(create_udf("panic_at", vec![DataType::Int64, DataType::Int64], DataType::Int64, Volatility::Volatile, f));
        },
    )
    .await;
    let c = connect(server.port, "tester", None).await.unwrap();
    for sql in [
        "SELECT panic_at(x, 90000) FROM generate_series(1, 100000) t(x)",
        "SELECT x FROM generate_series(1, 100000) t(x) WHERE panic_at(x, 90000) > 0",
        "SELECT panic_at(x, 3) FROM generate_series(1, 5) t(x)",
        "SELECT count(panic_at(x, 50000)) FROM generate_series(1, 100000) t(x)",
    ] {
        // Simple protocol and extended (prepared) alike.
        let e = c.simple_query(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&e), "XX000", "{sql}: {e}");
        assert!(crate::support::message(&e).contains("reference"), "{e}");
        let e = c.query(sql, &[]).await.expect_err(sql);
        assert_eq!(sqlstate(&e), "XX000", "{sql}: {e}");
    }
    // The session goes on.
    assert_eq!(c.query_one("SELECT panic_at(1, 2)", &[]).await.unwrap().get::<_, i64>(0), 1);
    server.stop().await;
}

/// A raw socket to the server; the read timeout only bounds a hung server.
fn raw_connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Everything the server sends until it closes the connection, as text.
fn rest_of(s: &mut TcpStream) -> String {
    let mut rest = vec![];
    let _ = s.read_to_end(&mut rest);
    String::from_utf8_lossy(&rest).into_owned()
}

/// Negotiation and authentication corners: one SSLRequest only, plaintext behind an
/// SSLRequest refused even when answered N, a Query instead of the password refused
/// at once, and SCRAM failures naming the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiation_and_auth_corners() {
    let server = TestServer::start_with(|c| {
        c.auth.method = AuthMethod::ScramSha256;
        c.auth.users = vec![UserConfig { name: "alice".into(), password: Some("s3cret".into()), password_env: None, superuser: None }];
    })
    .await;
    let port = server.port;
    let e = connect(port, "alice", Some("wrong")).await.unwrap_err();
    assert!(crate::support::message(&e).contains("\"alice\""), "SCRAM failure names the user: {e}");
    tokio::task::spawn_blocking(move || {
        let ssl = [0u8, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        // Two SSLRequests in a row: N, then 08P01.
        let mut s = raw_connect(port);
        s.write_all(&ssl).unwrap();
        let mut answer = [0u8; 1];
        s.read_exact(&mut answer).unwrap();
        assert_eq!(answer[0], b'N');
        s.write_all(&ssl).unwrap();
        let rest = rest_of(&mut s);
        assert!(rest.contains("08P01"), "{rest}");
        // Plaintext pipelined behind an SSLRequest (no TLS configured: N) is refused.
        let mut s = raw_connect(port);
        let mut pipelined = ssl.to_vec();
        pipelined.extend(startup_packet("alice"));
        s.write_all(&pipelined).unwrap();
        let rest = rest_of(&mut s);
        assert!(rest.contains("08P01"), "{rest}");
        // A Query where the SCRAM response belongs: FATAL now, not a 60 s hang.
        let mut s = raw_connect(port);
        s.write_all(&startup_packet("alice")).unwrap();
        let mut header = [0u8; 5];
        s.read_exact(&mut header).unwrap();
        assert_eq!(header[0], b'R', "authentication request");
        let mut body = vec![0u8; u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize - 4];
        s.read_exact(&mut body).unwrap();
        s.write_all(&frame(b'Q', b"SELECT 1\0")).unwrap();
        let text = rest_of(&mut s);
        assert!(text.contains("08P01") && text.contains("expected password response"), "{text}");
    })
    .await
    .unwrap();
    let ok = connect(port, "alice", Some("s3cret")).await.unwrap();
    assert_eq!(ok.query_one("SELECT 1::BIGINT", &[]).await.unwrap().get::<_, i64>(0), 1);
    server.stop().await;
}
