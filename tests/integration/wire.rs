//! The extended protocol with bound parameters, errors, notices and cancellation.

use std::time::Duration;

use crate::support::{TestServer, sqlstate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_bind_parameters() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.batch_execute("CREATE TABLE people (id BIGINT, name TEXT, score DOUBLE)").await.unwrap();
    let insert = c.prepare("INSERT INTO people VALUES ($1, $2, $3)").await.unwrap();
    for (id, name, score) in [(1i64, "ada", 3.5f64), (2, "grace", 4.0), (3, "linus", 1.0)] {
        let n = c.execute(&insert, &[&id, &name, &score]).await.unwrap();
        assert_eq!(n, 1);
    }
    let rows = c.query("SELECT id, name, score FROM people WHERE score > $1 ORDER BY id", &[&2.0f64]).await.unwrap();
    let got: Vec<(i64, String, f64)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(got, vec![(1, "ada".into(), 3.5), (2, "grace".into(), 4.0)]);

    // Text-typed parameter compared against a text column; NULLs and counts.
    let row = c.query_one("SELECT count(*) FROM people WHERE name = $1", &[&"grace"]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);

    // Commands we answer ourselves also work through the extended protocol.
    let row = c.query_one("SHOW server_version", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "16.6");
    let all = c.query("SHOW ALL", &[]).await.unwrap();
    assert!(all.iter().any(|r| r.get::<_, String>(0) == "search_path" && r.get::<_, String>(1) == "public"));
    let rows = c.query("CALL create_bucket('x', 'relative')", &[]).await;
    assert_eq!(sqlstate(&rows.unwrap_err()), "22023");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_sqlstates_and_the_connection_survives() {
    let server = TestServer::start().await;
    let c = server.client().await;
    for (sql, code) in [
        ("SELECT * FROM missing", "42P01"),
        ("SELEC 1", "42601"),
        ("SELECT nope()", "42883"),
        ("CALL nope()", "42883"),
        ("CALL drop_bucket('primary')", "42501"),
        ("SET not_a_setting = 1", "42704"),
        ("CREATE INDEX i ON t USING gin (c)", "0A000"),
        ("CREATE INDEX i ON t (c)", "42P01"),
    ] {
        let e = c.simple_query(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e), code, "{sql}: {e}");
        let e = c.query(sql, &[]).await.unwrap_err();
        assert_eq!(sqlstate(&e), code, "extended {sql}: {e}");
    }
    assert_eq!(c.query_one("SELECT 1::BIGINT", &[]).await.unwrap().get::<_, i64>(0), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_separate() {
    let server = TestServer::start().await;
    let a = server.client().await;
    let b = server.client().await;
    a.batch_execute("SET application_name = 'alpha'").await.unwrap();
    assert_eq!(show(&a).await, "alpha");
    assert_eq!(show(&b).await, "");
    // Tables, unlike settings, are shared.
    a.batch_execute("CREATE TABLE shared_t AS SELECT 7 AS v").await.unwrap();
    let v: i64 = b.query_one("SELECT v::BIGINT FROM shared_t", &[]).await.unwrap().get(0);
    assert_eq!(v, 7);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_query_can_be_cancelled() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let token = c.cancel_token();
    // A CancelRequest that arrives before the query has started is ignored (as in
    // PostgreSQL), and planning speed varies with the build, so keep asking, like a
    // user pressing Ctrl-C again, until the query has stopped.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let canceller = tokio::spawn(async move {
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            token.cancel_query(tokio_postgres::NoTls).await.unwrap();
        }
    });
    let started = std::time::Instant::now();
    // Cheap per batch, hours in total: a cancel must stop it between batches.
    let query = c.simple_query("SELECT avg(value) FROM range(1000000000000)");
    // Without a working cancel this query runs for hours.
    let e = tokio::time::timeout(Duration::from_secs(120), query)
        .await
        .expect("the cancel request did not stop the query")
        .unwrap_err();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(sqlstate(&e), "57014", "{e}");
    eprintln!("cancelled after {:?}", started.elapsed());
    canceller.await.unwrap();
    let rows = c.simple_query("SELECT 1").await.unwrap();
    assert!(!rows.is_empty());
    server.stop().await;
}

async fn show(c: &tokio_postgres::Client) -> String {
    c.query_one("SHOW application_name", &[]).await.unwrap().get::<_, String>(0)
}

/// A temporary table is its session's alone and ends with it; pg_stat_activity lists
/// every session, and pg_terminate_backend ends another one (FATAL 57P01).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_tables_and_backends_belong_to_their_session() {
    let server = TestServer::start().await;
    let a = server.client().await;
    let b = server.client().await;
    a.batch_execute("SET application_name = 'alpha'; CREATE TEMP TABLE scratch AS SELECT 1 AS v").await.unwrap();
    let n: i64 = a.query_one("SELECT count(*) FROM scratch", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    let e = b.query_one("SELECT count(*) FROM scratch", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42P01", "{e}");
    let a_pid: i32 = a.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let b_pid: i32 = b.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_ne!(a_pid, b_pid);
    let row = b
        .query_one("SELECT usename, application_name, state, query, client_addr FROM pg_stat_activity WHERE pid = $1", &[&a_pid])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(1), "alpha");
    assert_eq!(row.get::<_, String>(2), "idle");
    assert_eq!(row.get::<_, String>(3), "SELECT pg_backend_pid()");
    assert_eq!(row.get::<_, String>(4), "127.0.0.1");
    let mine: String = b.query_one("SELECT state FROM pg_stat_activity WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_eq!(mine, "active");
    let killed: bool = b.query_one("SELECT pg_terminate_backend($1)", &[&a_pid]).await.unwrap().get(0);
    assert!(killed);
    let e = a.simple_query("SELECT 1").await.unwrap_err();
    assert!(e.as_db_error().map(|d| d.code().code() == "57P01").unwrap_or(true), "{e}");
    // The session is gone from pg_stat_activity once its connection has closed.
    let started = std::time::Instant::now();
    loop {
        let left: i64 = b.query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", &[&a_pid]).await.unwrap().get(0);
        if left == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "terminated session still listed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let unknown: bool = b.query_one("SELECT pg_cancel_backend(1)", &[]).await.unwrap().get(0);
    assert!(!unknown);
    // Nothing of the temporary table was ever written to the data directory.
    let mut stack = vec![server._dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            assert!(!e.file_name().to_string_lossy().contains("scratch"), "{}", e.path().display());
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
    }
    server.stop().await;
}

/// An advisory lock held by one session blocks another's until it is released (or
/// its session ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advisory_locks_block_other_sessions() {
    let server = TestServer::start().await;
    let a = server.client().await;
    let b = server.client().await;
    a.batch_execute("SELECT pg_advisory_lock(7)").await.unwrap();
    let got: bool = b.query_one("SELECT pg_try_advisory_lock(7)", &[]).await.unwrap().get(0);
    assert!(!got);
    let waiter = tokio::spawn(async move {
        b.batch_execute("SELECT pg_advisory_lock(7)").await.unwrap();
        let mine: bool = b.query_one("SELECT pg_advisory_unlock(7)", &[]).await.unwrap().get(0);
        mine
    });
    // Released once b waits (pg_stat_activity shows it active), b then gets it.
    let started = std::time::Instant::now();
    loop {
        let waiting: i64 = a
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_advisory_lock(7)'", &[])
            .await
            .unwrap()
            .get(0);
        if waiting == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "b never waited");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!waiter.is_finished(), "b must wait while a holds the lock");
    let released: bool = a.query_one("SELECT pg_advisory_unlock(7)", &[]).await.unwrap().get(0);
    assert!(released);
    assert!(waiter.await.unwrap(), "b held the lock it waited for");
    server.stop().await;
}

/// LISTEN/NOTIFY between sessions: the listener gets each notification (with the
/// sender's pid) while idle, pg_notify works the same, UNLISTEN * stops them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_listening_sessions() {
    let server = TestServer::start().await;
    let (listener, mut inbox) = crate::support::client_with_notifications(server.port).await;
    let sender = server.client().await;
    listener.batch_execute("LISTEN jobs; LISTEN \"Mixed\"").await.unwrap();
    let sender_pid: i32 = sender.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    sender.batch_execute("NOTIFY jobs, 'first'").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(60), inbox.recv()).await.unwrap().unwrap();
    assert_eq!(got, (sender_pid, "jobs".to_string(), "first".to_string()));
    sender.query_one("SELECT pg_notify('Mixed', 'second')", &[]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(60), inbox.recv()).await.unwrap().unwrap();
    assert_eq!(got, (sender_pid, "Mixed".to_string(), "second".to_string()));
    let e = sender.batch_execute(&format!("NOTIFY jobs, '{}'", "x".repeat(8000))).await.unwrap_err();
    assert_eq!(sqlstate(&e), "22023");
    // After UNLISTEN *, nothing more: a notification on a channel it still listens
    // to after re-LISTEN is the next thing to arrive.
    listener.batch_execute("UNLISTEN *").await.unwrap();
    sender.batch_execute("NOTIFY jobs, 'missed'").await.unwrap();
    listener.batch_execute("LISTEN jobs").await.unwrap();
    sender.batch_execute("NOTIFY jobs, 'third'").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(60), inbox.recv()).await.unwrap().unwrap();
    assert_eq!(got.2, "third");
    server.stop().await;
}

/// `numeric` of any precision travels as NUMERIC (binary: base-10000 digit groups),
/// so drivers that bind by the described type (asyncpg) can send a decimal to a bare
/// `numeric` column, which is a Decimal128(38, 10) here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_parameters_and_results_in_binary() {
    use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

    /// A numeric's binary form as 16-bit words.
    #[derive(Debug)]
    struct Words(Vec<i16>);
    impl ToSql for Words {
        fn to_sql(&self, _: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
            for w in &self.0 {
                out.extend_from_slice(&w.to_be_bytes());
            }
            Ok(IsNull::No)
        }
        fn accepts(ty: &Type) -> bool {
            *ty == Type::NUMERIC
        }
        to_sql_checked!();
    }
    impl<'a> FromSql<'a> for Words {
        fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
            Ok(Words(raw.chunks(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect()))
        }
        fn accepts(ty: &Type) -> bool {
            *ty == Type::NUMERIC
        }
    }

    let server = TestServer::start().await;
    let c = server.client().await;
    c.batch_execute("CREATE TABLE amounts (x numeric, y numeric(12, 2))").await.unwrap();
    let insert = c.prepare("INSERT INTO amounts VALUES ($1, $2)").await.unwrap();
    assert_eq!(insert.params(), &[Type::NUMERIC, Type::NUMERIC]);
    // 12345.678 and -0.5: (ndigits, weight, sign, dscale, digits…).
    let x = Words(vec![3, 1, 0, 3, 1, 2345, 6780]);
    let y = Words(vec![1, -1, 0x4000, 1, 5000]);
    c.execute(&insert, &[&x, &y]).await.unwrap();
    let row = c.query_one("SELECT x, y, x::text, y::text FROM amounts", &[]).await.unwrap();
    // x comes back at the column's scale 10, y at 2.
    assert_eq!(row.get::<_, Words>(0).0, vec![3, 1, 0, 10, 1, 2345, 6780]);
    assert_eq!(row.get::<_, Words>(1).0, vec![1, -1, 0x4000, 2, 5000]);
    assert_eq!(row.get::<_, String>(2), "12345.6780000000");
    assert_eq!(row.get::<_, String>(3), "-0.50");
    // Too wide for the column: 22003, and a NaN is refused, not stored.
    let wide = Words(vec![1, 10, 0, 0, 1]); // 10^40
    let err = c.execute(&insert, &[&wide, &y]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "22003", "{err}");
    let nan = Words(vec![0, 0, 0xC000u16 as i16, 0]);
    assert!(c.execute(&insert, &[&nan, &y]).await.is_err());
    let n: i64 = c.query_one("SELECT count(*) FROM amounts", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    server.stop().await;
}

/// Part of what asyncpg's type introspection needs (it runs on a session's first vector
/// or array; its recursive CTE with a column list is the part still missing): `$1::oid[]` described and bound as
/// oid[], oid arrays through array_agg and CASE described as oid[]; and binary arrays
/// bound as parameters, a hostile element count refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oid_arrays_as_asyncpg_introspects_and_binary_array_parameters() {
    use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

    let server = TestServer::start().await;
    let c = server.client().await;
    let stmt = c.prepare("SELECT oid, typname FROM pg_type WHERE oid = any($1::oid[]) ORDER BY oid").await.unwrap();
    assert_eq!(stmt.params(), &[Type::OID_ARRAY]);
    let rows = c.query(&stmt, &[&vec![23u32, 1007]]).await.unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(names, ["int4", "_int4"]);

    let stmt = c
        .prepare("SELECT CASE WHEN true THEN (SELECT array_agg(atttypid) FROM pg_attribute) ELSE NULL END AS a, CASE WHEN true THEN typelem END AS b FROM pg_type LIMIT 1")
        .await
        .unwrap();
    assert_eq!(stmt.columns()[0].type_(), &Type::OID_ARRAY);
    assert_eq!(stmt.columns()[1].type_(), &Type::OID);
    let row = c.query_one(&stmt, &[]).await.unwrap();
    assert!(!row.get::<_, Vec<u32>>(0).is_empty());

    let v: Vec<Option<i32>> = c.query_one("SELECT $1::int4[]", &[&vec![Some(1i32), None, Some(3)]]).await.unwrap().get(0);
    assert_eq!(v, vec![Some(1), None, Some(3)]);
    let v: Vec<String> = c.query_one("SELECT $1::text[]", &[&vec!["a", "b\"c"]]).await.unwrap().get(0);
    assert_eq!(v, ["a", "b\"c"]);

    /// An int4[] that declares 2^31 - 1 elements and sends none.
    #[derive(Debug)]
    struct Huge;
    impl ToSql for Huge {
        fn to_sql(&self, _: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
            for w in [1i32, 0, 23, i32::MAX, 1] {
                out.extend_from_slice(&w.to_be_bytes());
            }
            Ok(IsNull::No)
        }
        fn accepts(ty: &Type) -> bool {
            *ty == Type::INT4_ARRAY
        }
        to_sql_checked!();
    }
    let err = c.query_one("SELECT $1::int4[]", &[&Huge]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "22P02", "{err}");
    let one: i32 = c.query_one("SELECT 1::int4", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enums_and_domains_as_clients_look_them_up() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.batch_execute("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); CREATE DOMAIN score AS int CHECK (VALUE BETWEEN 0 AND 10); CREATE TABLE t (m mood, s score)").await.unwrap();
    c.batch_execute("INSERT INTO t VALUES ('ok', 7)").await.unwrap();
    // tokio-postgres reads an unknown OID's pg_type row and, for an enum, its pg_enum labels.
    let rows = c.query("SELECT m, s FROM t", &[]).await.unwrap();
    let t = rows[0].columns()[0].type_();
    assert_eq!(t.name(), "mood");
    assert_eq!(t.kind(), &tokio_postgres::types::Kind::Enum(vec!["sad".into(), "ok".into(), "happy".into()]));
    // A domain travels as its base type, as PostgreSQL sends it.
    assert_eq!(rows[0].columns()[1].type_(), &tokio_postgres::types::Type::INT4);
    assert_eq!(rows[0].get::<_, i32>(1), 7);
    let e = c.query("INSERT INTO t VALUES ('great', 1)", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "22P02", "{e}");
    let e = c.query("INSERT INTO t VALUES ('ok', 11)", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "23514", "{e}");
    // The labels are read when a statement runs: one added later counts at once.
    c.batch_execute("ALTER TYPE mood ADD VALUE 'great'; INSERT INTO t VALUES ('great', 1)").await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_ids_and_an_empty_select() {
    let server = TestServer::start().await;
    let c = server.client().await;
    // (EXECUTE of a statement Parsed under a name: asyncpg's test_prepare_explicitly_named,
    // tokio-postgres keeps its statement names to itself.)
    // txid_current: one id for a BEGIN block, a new one per statement outside.
    let id = |rows: Vec<tokio_postgres::Row>| rows[0].get::<_, i64>(0);
    let a = id(c.query("SELECT txid_current()", &[]).await.unwrap());
    let b = id(c.query("SELECT txid_current()", &[]).await.unwrap());
    assert!(b > a);
    c.batch_execute("BEGIN").await.unwrap();
    let in1 = id(c.query("SELECT txid_current()", &[]).await.unwrap());
    let in2 = id(c.query("SELECT txid_current()", &[]).await.unwrap());
    c.batch_execute("COMMIT").await.unwrap();
    assert_eq!(in1, in2);
    assert!(in1 > b);
    // SELECT with an empty target list: one row of no columns.
    let rows = c.query("SELECT", &[]).await.unwrap();
    assert_eq!((rows.len(), rows[0].len()), (1, 0));
    server.stop().await;
}
