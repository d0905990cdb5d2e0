//! Persistence across restarts of the real binary, SIGKILL mid-burst, the data-dir lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::{BinaryServer, connect, psql, run_psql};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_survive_a_restart_and_psql_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = BinaryServer::start(&data);
    let c = connect(server.port, "tester", None).await.unwrap();
    c.batch_execute(
        "CREATE TABLE kept (id BIGINT, label TEXT);
         INSERT INTO kept VALUES (1, 'one'), (2, 'two');
         CREATE TABLE kept_ctas AS SELECT id * 10 AS id10 FROM kept;
         CREATE VIEW kept_view AS SELECT label FROM kept WHERE id = 2;
         CREATE VIEW a_outer AS SELECT upper(label) AS shout FROM kept_view;
         CREATE TABLE dropped AS SELECT 1 AS x;
         DROP TABLE dropped;",
    )
    .await
    .unwrap();
    // Existing Parquet files registered as an external table survive too.
    let ext_dir = dir.path().join("external");
    std::fs::create_dir_all(&ext_dir).unwrap();
    c.batch_execute(&format!(
        "COPY (SELECT 5 AS five) TO '{}/part.parquet' STORED AS PARQUET;
         CREATE EXTERNAL TABLE ext STORED AS PARQUET LOCATION '{}/';",
        ext_dir.display(),
        ext_dir.display()
    ))
    .await
    .unwrap();
    drop(c);
    server.terminate();

    // A second process on the same data dir is refused while one runs.
    let server = BinaryServer::start(&data);
    let err = BinaryServer::try_start(&data).err().expect("second server must be refused");
    assert!(err.contains("in use by another lakehouse process"), "{err}");

    let c = connect(server.port, "tester", None).await.unwrap();
    let rows = c.query("SELECT id, label FROM kept ORDER BY id", &[]).await.unwrap();
    let got: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(1, "one".into()), (2, "two".into())]);
    let sum: i64 = c.query_one("SELECT sum(id10) FROM kept_ctas", &[]).await.unwrap().get(0);
    assert_eq!(sum, 30);
    assert!(c.simple_query("SELECT * FROM dropped").await.is_err());
    // Views come back too, including a view over a view restored out of name order.
    let shout: String = c.query_one("SELECT shout FROM a_outer", &[]).await.unwrap().get(0);
    assert_eq!(shout, "TWO");
    let five: i64 = c.query_one("SELECT five FROM ext", &[]).await.unwrap().get(0);
    assert_eq!(five, 5);
    // DROP of an external table leaves the files alone.
    c.batch_execute("DROP TABLE ext").await.unwrap();
    assert!(ext_dir.join("part.parquet").exists());
    if psql().is_some() {
        let out = run_psql(server.port, &[], &["-c", "\\dt"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("kept"), "{text}");
        assert!(text.contains("kept_ctas"), "{text}");
        assert!(!text.contains("dropped"), "{text}");
    }
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_of_ctas_loses_no_acknowledged_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = BinaryServer::start(&data);
    let c = connect(server.port, "tester", None).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    let writer = tokio::spawn(async move {
        let mut acknowledged = vec![];
        for i in 0..10_000 {
            if s.load(Ordering::Relaxed) {
                break;
            }
            let sql = format!("CREATE TABLE burst_{i} AS SELECT value AS v FROM range({})", i % 50 + 1);
            match c.batch_execute(&sql).await {
                Ok(()) => {
                    acknowledged.push(i);
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
        acknowledged
    });
    // Kill once a few statements have been acknowledged (an event, not a delay).
    let started = std::time::Instant::now();
    while count.load(Ordering::Relaxed) < 5 && started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let acknowledged = writer.await.unwrap();
    assert!(acknowledged.len() >= 3, "too few statements ran before the kill: {}", acknowledged.len());

    let server = BinaryServer::start(&data);
    let c = connect(server.port, "tester", None).await.unwrap();
    for i in &acknowledged {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM burst_{i}"), &[])
            .await
            .unwrap_or_else(|e| panic!("burst_{i} was acknowledged but is gone: {e}"))
            .get(0);
        assert_eq!(n, (i % 50 + 1) as i64, "burst_{i}");
    }
    server.terminate();
}

#[test]
fn the_cli_prints_tables_and_stops_at_the_first_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |sql: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lakehouse"))
            .args(["sql", "--data-dir"])
            .arg(&data)
            .args(["-c", sql])
            .output()
            .unwrap()
    };
    let out = run("CREATE TABLE t AS SELECT 1 AS id, 'x' AS name; SELECT * FROM t");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(" id | name"), "{stdout}");
    assert!(stdout.contains("(1 row)"), "{stdout}");
    let out = run("SELECT 1; SELECT * FROM missing; CREATE TABLE never AS SELECT 1");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ERROR:  42P01: relation \"missing\" does not exist"), "{stderr}");
    let out = run("SELECT name FROM lakehouse.datasets");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(" t\n") && !stdout.contains("never"), "{stdout}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A data directory written by the release before #13 (tests/fixtures/README.md),
/// moved to a new place, opens with every table, view, index and trial; its
/// records have no owner, so every role may read them (as before) and only a
/// superuser may drop them or change their grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_from_the_release_before_13_loads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-before-13"), &data);
    let server = crate::support::TestServer::start_with(|c| {
        c.storage.data_dir = data.clone();
        let user = |n: &str| lakehouse::config::UserConfig { name: n.into(), password: Some("pw".into()), password_env: None, superuser: None };
        c.auth.method = lakehouse::config::AuthMethod::Md5;
        c.auth.users = vec![user("root"), user("bob")];
    })
    .await;
    let root = connect(server.port, "root", Some("pw")).await.unwrap();
    let bob = connect(server.port, "bob", Some("pw")).await.unwrap();
    for (sql, n) in [
        ("SELECT count(*) FROM items", 60),
        ("SELECT count(*) FROM item_names", 10),
        ("SELECT count(*) FROM first_items", 3),
        ("SELECT count(*) FROM vector_search('items_emb_idx', '[1,1,1,1]', 5)", 5),
        ("SELECT count(*) FROM lakehouse.trials WHERE index_name = 'items_emb_idx'", 1),
    ] {
        assert_eq!(bob.query_one(sql, &[]).await.unwrap().get::<_, i64>(0), n, "{sql}");
    }
    let nearest = bob.query_one("SELECT id FROM items ORDER BY emb <-> '[1,1,1,1]' LIMIT 1", &[]).await.unwrap();
    assert_eq!(nearest.get::<_, i64>(0), 1);
    // The index was loaded, not rebuilt: same rows, same files.
    let idx = root.query_one("SELECT rows FROM lakehouse.indexes WHERE name = 'items_emb_idx'", &[]).await.unwrap();
    assert_eq!(idx.get::<_, i64>(0), 60);
    for sql in ["DROP TABLE item_names", "GRANT SELECT ON items TO root", "CREATE INDEX ON items USING hnsw (emb)"] {
        let e = bob.batch_execute(sql).await.unwrap_err();
        assert_eq!(crate::support::sqlstate(&e), "42501", "{sql}: {e}");
    }
    root.batch_execute("REVOKE ALL ON items FROM PUBLIC").await.unwrap();
    let e = bob.query_one("SELECT count(*) FROM items", &[]).await.unwrap_err();
    assert_eq!(crate::support::sqlstate(&e), "42501");
    // A view made before owners reads with its reader's privileges (it has no owner
    // to read as).
    let e = bob.query_one("SELECT count(*) FROM first_items", &[]).await.unwrap_err();
    assert_eq!(crate::support::sqlstate(&e), "42501");
    assert_eq!(root.query_one("SELECT count(*) FROM first_items", &[]).await.unwrap().get::<_, i64>(0), 3);
    root.batch_execute("DROP VIEW first_items; DROP TABLE item_names").await.unwrap();
    server.stop().await;
}

/// A sequence never hands out a value twice, even when the server is SIGKILLed while
/// clients draw from it: every value acknowledged before the kill is below every
/// value drawn after the restart (a SERIAL column's too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_values_are_never_repeated_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = BinaryServer::start(&data);
    let c = connect(server.port, "tester", None).await.unwrap();
    c.batch_execute("CREATE SEQUENCE counter; CREATE TABLE ev (id bigserial PRIMARY KEY, v int)").await.unwrap();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    let drawer = tokio::spawn(async move {
        let (mut drawn, mut ids) = (vec![], vec![]);
        for i in 0..100_000 {
            let Ok(row) = c.query_one("SELECT nextval('counter')", &[]).await else { break };
            drawn.push(row.get::<_, i64>(0));
            if c.execute("INSERT INTO ev (v) VALUES ($1)", &[&(i as i32)]).await.is_err() {
                break;
            }
            let Ok(row) = c.query_one("SELECT currval('ev_id_seq')", &[]).await else { break };
            ids.push(row.get::<_, i64>(0));
            counter.fetch_add(1, Ordering::Relaxed);
        }
        (drawn, ids)
    });
    let started = std::time::Instant::now();
    while count.load(Ordering::Relaxed) < 40 && started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill9();
    let (drawn, ids) = drawer.await.unwrap();
    assert!(drawn.len() >= 40 && ids.len() >= 40, "too few values before the kill: {} {}", drawn.len(), ids.len());
    assert!(drawn.windows(2).all(|w| w[0] < w[1]), "{drawn:?}");

    let server = BinaryServer::start(&data);
    let c = connect(server.port, "tester", None).await.unwrap();
    let next: i64 = c.query_one("SELECT nextval('counter')", &[]).await.unwrap().get(0);
    assert!(next > *drawn.last().unwrap(), "nextval after the restart {next} repeats a value handed out before ({})", drawn.last().unwrap());
    c.execute("INSERT INTO ev (v) VALUES (-1)", &[]).await.unwrap();
    let id: i64 = c.query_one("SELECT id FROM ev WHERE v = -1", &[]).await.unwrap().get(0);
    assert!(id > *ids.last().unwrap(), "SERIAL id after the restart {id} repeats one from before ({})", ids.last().unwrap());
    let stored: i64 = c.query_one("SELECT count(*) FROM ev", &[]).await.unwrap().get(0);
    assert!(stored as usize >= ids.len() + 1, "{stored} rows for {} acknowledged inserts", ids.len());
    server.terminate();
}

/// Schemas, their tables, constraints, indexes and sequences are there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_and_their_tables_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = BinaryServer::start(&data);
    let c = connect(server.port, "tester", None).await.unwrap();
    c.batch_execute(
        "CREATE SCHEMA app; CREATE TABLE app.users (id serial PRIMARY KEY, email text UNIQUE); \
         INSERT INTO app.users (email) VALUES ('a@x'), ('b@x'); CREATE INDEX ON app.users (email); \
         COMMENT ON TABLE app.users IS 'people'",
    )
    .await
    .unwrap();
    drop(c);
    server.terminate();
    let server = BinaryServer::start(&data);
    let c = connect(server.port, "tester", None).await.unwrap();
    let n: i64 = c.query_one("SELECT count(*) FROM app.users", &[]).await.unwrap().get(0);
    assert_eq!(n, 2);
    c.batch_execute("INSERT INTO app.users (email) VALUES ('c@x')").await.unwrap();
    let id: i32 = c.query_one("SELECT id FROM app.users WHERE email = 'c@x'", &[]).await.unwrap().get(0);
    assert_eq!(id, 3);
    let e = c.batch_execute("INSERT INTO app.users (email) VALUES ('a@x')").await.unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("23505"), "{e}");
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_tables_and_user_types_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = BinaryServer::start(&data);
    let c = connect(server.port, "tester", None).await.unwrap();
    c.batch_execute(
        "CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE DOMAIN pos AS int CHECK (VALUE > 0); \
         CREATE TABLE t (id int, gone text); INSERT INTO t VALUES (1, 'x'); \
         ALTER TABLE t ADD COLUMN m mood, ADD COLUMN p pos; ALTER TABLE t DROP COLUMN gone; \
         INSERT INTO t VALUES (2, 'happy', 5)",
    )
    .await
    .unwrap();
    drop(c);
    server.terminate();
    let server = BinaryServer::start(&data);
    let c = connect(server.port, "tester", None).await.unwrap();
    let rows = c.simple_query("SELECT id, m, p FROM t ORDER BY id").await.unwrap();
    let got: Vec<Vec<Option<String>>> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((0..3).map(|i| r.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![vec![Some("1".into()), None, None], vec![Some("2".into()), Some("happy".into()), Some("5".into())]]);
    // The types' checks still hold after the restart.
    let e = c.batch_execute("INSERT INTO t VALUES (3, 'meh', 1)").await.unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("22P02"), "{e}");
    let e = c.batch_execute("INSERT INTO t VALUES (3, 'sad', 0)").await.unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("23514"), "{e}");
    let e = c.batch_execute("ALTER TABLE t ADD COLUMN gone text").await.unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("0A000"), "{e}");
    server.terminate();
}
