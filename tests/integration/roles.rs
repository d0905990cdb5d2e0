//! Roles and confinement (superuser vs ordinary user: buckets, server files, secrets,
//! runtime settings), and the server's limits: max_connections, statement_timeout,
//! the per-statement memory limit, login throttling, and a start that clears what an
//! interrupted write left behind.

use std::time::Instant;

use lakehouse::config::{AuthMethod, UserConfig};

use crate::support::{TestServer, connect, simple_rows, sqlstate};

async fn show(c: &tokio_postgres::Client, name: &str) -> String {
    match &c.simple_query(&format!("SHOW {name}")).await.unwrap()[1] {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).unwrap().to_string(),
        other => panic!("{other:?}"),
    }
}

fn user(name: &str, password: &str, superuser: Option<bool>) -> UserConfig {
    UserConfig { name: name.into(), password: Some(password.into()), password_env: None, superuser }
}

async fn code_of(c: &tokio_postgres::Client, sql: &str) -> String {
    match c.simple_query(sql).await {
        Ok(_) => "ok".into(),
        Err(e) => sqlstate(&e),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_users_cannot_reach_server_files_or_secrets() {
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path();
    std::fs::write(out.join("o.csv"), "a,b\n1,2\n").unwrap();
    let config_file = out.join("lakehouse.toml");
    std::fs::write(&config_file, "[server]\n").unwrap();
    std::fs::write(out.join("pw"), "secret-password").unwrap();
    let server = TestServer::start_with(|c| {
        c.auth.method = AuthMethod::Md5;
        c.auth.users = vec![user("alice", "a-pw", None), user("bob", "b-pw", None)];
        c.secrets.env = vec!["LH_ROLES_TEST_PW".into()];
        c.source = Some(config_file.clone());
    })
    .await;
    let data = server._dir.path().join("data");
    std::fs::create_dir_all(data.join("shared")).unwrap();
    std::fs::write(data.join("shared").join("ok.csv"), "a,b\n3,4\n").unwrap();
    std::os::unix::fs::symlink(out, data.join("link")).unwrap();
    let alice = connect(server.port, "alice", Some("a-pw")).await.unwrap();
    let bob = connect(server.port, "bob", Some("b-pw")).await.unwrap();

    assert_eq!(show(&alice, "is_superuser").await, "on", "the first user is the superuser");
    assert_eq!(show(&bob, "is_superuser").await, "off");

    let o = out.display();
    let d = data.display();
    // Each refused for bob (42501) and allowed for alice.
    let both = [
        format!("CALL create_bucket('evil', 'file://{o}/evil')"),
        format!("CREATE EXTERNAL TABLE o1 (a int, b int) STORED AS CSV LOCATION '{o}/o.csv' OPTIONS ('format.has_header' 'true')"),
        format!("COPY (SELECT 1 AS x) TO '{o}/copied.csv' STORED AS CSV"),
        "CALL drop_bucket('evil')".to_string(),
    ];
    for sql in &both {
        assert_eq!(code_of(&bob, sql).await, "42501", "bob: {sql}");
        assert_eq!(code_of(&alice, sql).await, "ok", "alice: {sql}");
    }
    let rows = alice.query("SELECT b FROM o1", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), 2);
    assert!(out.join("copied.csv").exists());

    // Inside a bucket an ordinary user may read; a symlink out of it is judged by
    // where it leads.
    let inside = format!("CREATE EXTERNAL TABLE shared_t (a int, b int) STORED AS CSV LOCATION '{d}/shared/ok.csv' OPTIONS ('format.has_header' 'true')");
    assert_eq!(code_of(&bob, &inside).await, "ok");
    assert_eq!(bob.query("SELECT b FROM shared_t", &[]).await.unwrap()[0].get::<_, i32>(0), 4);
    let via_link = format!("CREATE EXTERNAL TABLE l (a int, b int) STORED AS CSV LOCATION '{d}/link/o.csv'");
    assert_eq!(code_of(&bob, &via_link).await, "42501");
    let dotdot = format!("CREATE EXTERNAL TABLE l2 (a int, b int) STORED AS CSV LOCATION '{d}/shared/../../{}/o.csv'", out.file_name().unwrap().to_string_lossy());
    assert_eq!(code_of(&bob, &dotdot).await, "42501");

    // Nobody reads the catalog or the config file through SQL.
    for sql in [
        format!("CREATE EXTERNAL TABLE cat (line text) STORED AS CSV LOCATION '{d}/_catalog/catalog.json'"),
        format!("CREATE EXTERNAL TABLE whole (line text) STORED AS CSV LOCATION '{d}/'"),
        format!("CREATE EXTERNAL TABLE conf (line text) STORED AS CSV LOCATION '{}'", config_file.display()),
    ] {
        assert_eq!(code_of(&alice, &sql).await, "42501", "alice: {sql}");
        assert_eq!(code_of(&bob, &sql).await, "42501", "bob: {sql}");
    }

    // Secrets: superusers only, and only what [secrets] lists.
    let attach = |opt: &str| format!("CALL attach('shop', 'mysql://root@127.0.0.1:1/test', {opt})");
    assert_eq!(code_of(&bob, &attach("password_env => 'LH_ROLES_TEST_PW'")).await, "42501");
    let e = alice.simple_query(&attach("password_env => 'HOME'")).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
    assert!(crate::support::message(&e).contains("[secrets]"), "{e}");
    assert_eq!(code_of(&alice, &attach(&format!("password_file => '{o}/pw'"))).await, "42501");
    // Allowed for alice: past the check it fails on what follows (the variable is not
    // set in this process: F0000), not on permission.
    assert_eq!(code_of(&alice, &attach("password_env => 'LH_ROLES_TEST_PW'")).await, "F0000");
    assert_eq!(code_of(&bob, "CREATE EXTERNAL TABLE r STORED AS MYSQL LOCATION 'mysql://root@127.0.0.1:1/test' OPTIONS ('table' 't', 'password_env' 'LH_ROLES_TEST_PW')").await, "42501");
    assert_eq!(code_of(&bob, "CREATE EXTERNAL TABLE r STORED AS MYSQL LOCATION 'mysql://root@127.0.0.1:1/test' OPTIONS ('table' 't', 'password_secret' 'x')").await, "42501");
    assert_eq!(code_of(&bob, "CREATE EXTERNAL TABLE r STORED AS MYSQL LOCATION 'mysql://root@127.0.0.1:1/test' OPTIONS ('table' 't', 'format.password_secret' 'x')").await, "42501");
    assert_eq!(code_of(&bob, &format!("CALL create_model('m', provider => 'local', path => '{o}')")).await, "42501");
    assert_eq!(code_of(&bob, "CALL create_model('m', provider => 'openai', base_url => 'http://127.0.0.1:1', model => 'x', dims => 3, api_key_env => 'HOME')").await, "42501");
    assert_eq!(code_of(&bob, "SET datafusion.runtime.temp_directory = '/tmp/elsewhere'").await, "42501");
    // What ordinary users do is untouched.
    assert_eq!(code_of(&bob, "CREATE TABLE mine AS SELECT 1 AS x").await, "ok");
    assert_eq!(bob.query("SELECT x FROM mine", &[]).await.unwrap()[0].get::<_, i64>(0), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_is_enforced_with_53300() {
    let server = TestServer::start_with(|c| c.server.max_connections = 3).await;
    let mut held = vec![];
    for _ in 0..3 {
        held.push(connect(server.port, "tester", None).await.unwrap());
    }
    let e = connect(server.port, "tester", None).await.unwrap_err();
    assert_eq!(sqlstate(&e), "53300", "{e}");
    drop(held.pop());
    // The freed slot is reaped by the server's accept loop: retry until it is.
    let mut again = None;
    for _ in 0..200 {
        match connect(server.port, "tester", None).await {
            Ok(c) => {
                again = Some(c);
                break;
            }
            Err(e) => assert_eq!(sqlstate(&e), "53300"),
        }
        tokio::task::yield_now().await;
    }
    let again = again.expect("a slot frees up once a client leaves");
    assert_eq!(again.query_one("SELECT 1::BIGINT", &[]).await.unwrap().get::<_, i64>(0), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_and_memory_limit_end_the_statement_not_the_server() {
    let server = TestServer::start_with(|c| c.server.memory_limit = "16MiB".into()).await;
    let c = connect(server.port, "tester", None).await.unwrap();
    c.simple_query("SET statement_timeout = '200ms'").await.unwrap();
    let slow = "SELECT count(*) FROM generate_series(1, 1000000000000) t(x) WHERE x % 7 = 3";
    let e = c.simple_query(slow).await.unwrap_err();
    assert_eq!(sqlstate(&e), "57014", "{e}");
    assert!(crate::support::message(&e).contains("statement timeout"), "{e}");
    let e = c.query(slow, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "57014", "{e}");
    // pg_sleep waits on a timer: the timeout ends it too (an hour, were it not).
    let e = c.simple_query("SELECT pg_sleep(3600)").await.unwrap_err();
    assert_eq!(sqlstate(&e), "57014", "{e}");
    c.simple_query("SET statement_timeout = 0").await.unwrap();
    assert_eq!(c.query_one("SELECT 1::BIGINT", &[]).await.unwrap().get::<_, i64>(0), 1);
    // A hash join's build side cannot spill: over 16 MiB it is 53200.
    let big = "SELECT count(*) FROM generate_series(1, 3000000) a(x) JOIN generate_series(1, 3000000) b(y) ON x = y";
    let e = c.simple_query(big).await.unwrap_err();
    assert_eq!(sqlstate(&e), "53200", "{e}");
    assert_eq!(c.query_one("SELECT 2::BIGINT", &[]).await.unwrap().get::<_, i64>(0), 2);
    assert_eq!(code_of(&c, "SET statement_timeout = 'soon'").await, "22023");
    server.stop().await;
}

/// A client on 127.0.0.2 failing again and again is held back before each answer;
/// a client on 127.0.0.1 logs in meanwhile without waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_slow_that_address_only() {
    let server = TestServer::start_with(|c| {
        c.auth.method = AuthMethod::Md5;
        c.auth.users = vec![user("alice", "a-pw", None)];
    })
    .await;
    let port = server.port;
    let from = |ip: &'static str, password: &'static str| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        let stream = socket.connect(format!("127.0.0.1:{port}").parse().unwrap()).await.unwrap();
        let mut config = tokio_postgres::Config::new();
        config.user("alice").password(password).dbname("lakehouse");
        config.connect_raw(stream, tokio_postgres::NoTls).await.map(|(c, conn)| {
            tokio::spawn(conn);
            c
        })
    };
    for _ in 0..10 {
        let e = from("127.0.0.2", "wrong").await.unwrap_err();
        assert_eq!(sqlstate(&e), "28P01");
    }
    // The attacker's next attempt waits (3.2 s after 10 failures); alice on
    // another address gets in while it does.
    let started = Instant::now();
    let attacker = tokio::spawn(from("127.0.0.2", "wrong"));
    let ok = from("127.0.0.1", "a-pw").await.unwrap();
    let alice_took = started.elapsed();
    assert!(!attacker.is_finished(), "the throttled attempt must still be waiting when alice is in ({alice_took:?})");
    assert_eq!(ok.query_one("SELECT 1::BIGINT", &[]).await.unwrap().get::<_, i64>(0), 1);
    assert!(attacker.await.unwrap().is_err());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_removes_directories_no_record_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (engine, session) = crate::support::engine_in(dir.path()).await;
    crate::support::exec(&engine, &session, "CREATE TABLE kept AS SELECT 1 AS x").await;
    drop(session);
    drop(engine);
    // What kill -9 during CREATE TABLE AS, an index build and an append leaves.
    for orphan in ["datasets/lost-0123456789ab", "indexes/lost_idx-abcdef012345", "datasets/_staging/deadbeef"] {
        std::fs::create_dir_all(data.join(orphan)).unwrap();
        std::fs::write(data.join(orphan).join("part.parquet"), b"half").unwrap();
    }
    std::fs::create_dir_all(data.join("datasets/not-ours")).unwrap();
    let (engine, session) = crate::support::engine_in(dir.path()).await;
    assert!(!data.join("datasets/lost-0123456789ab").exists());
    assert!(!data.join("indexes/lost_idx-abcdef012345").exists());
    assert!(!data.join("datasets/_staging").exists());
    assert!(data.join("datasets/not-ours").exists(), "only directories lakehouse names itself are removed");
    let rows = crate::support::rows_of(&engine, &session, "SELECT x FROM kept").await;
    assert_eq!(rows, vec![vec!["1".to_string()]]);
}

/// GRANT and REVOKE round trip over the wire: a table's owner grants and revokes,
/// a group role's members get its privileges, views read with their owner's
/// privileges, an index is read through its table, an attachment through USAGE,
/// and pg_roles / information_schema show it all. The grants survive a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_and_revoke_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let configure = |c: &mut lakehouse::Config| {
        c.storage.data_dir = data.clone();
        c.auth.method = AuthMethod::Md5;
        c.auth.users = vec![user("root", "r-pw", None), user("alice", "a-pw", None), user("bob", "b-pw", None)];
    };
    let server = TestServer::start_with(configure).await;
    let root = connect(server.port, "root", Some("r-pw")).await.unwrap();
    let alice = connect(server.port, "alice", Some("a-pw")).await.unwrap();
    let bob = connect(server.port, "bob", Some("b-pw")).await.unwrap();

    alice
        .batch_execute(
            "CREATE TABLE docs (id BIGINT, emb vector(2));
             INSERT INTO docs VALUES (1, '[0,0]'), (2, '[1,1]');
             CREATE INDEX docs_idx ON docs USING hnsw (emb);",
        )
        .await
        .unwrap();
    // The owner has everything; nobody else has anything.
    assert_eq!(code_of(&bob, "SELECT * FROM docs").await, "42501");
    let e = bob.simple_query("SELECT * FROM docs").await.unwrap_err();
    assert!(e.as_db_error().unwrap().message().contains("permission denied for table docs"), "{e}");
    assert_eq!(code_of(&bob, "SELECT id FROM (SELECT id FROM docs) AS sub WHERE id IN (SELECT id FROM docs)").await, "42501");
    assert_eq!(code_of(&bob, "SELECT * FROM vector_search('docs_idx', '[0,0]', 1)").await, "42501");
    assert_eq!(code_of(&bob, "SELECT id FROM docs ORDER BY emb <-> '[0,0]' LIMIT 1").await, "42501");
    assert_eq!(code_of(&bob, "INSERT INTO docs VALUES (3, '[2,2]')").await, "42501");
    assert_eq!(code_of(&bob, "DROP TABLE docs").await, "42501");
    assert_eq!(code_of(&bob, "DROP INDEX docs_idx").await, "42501");
    assert_eq!(code_of(&bob, "GRANT SELECT ON docs TO bob").await, "42501");
    assert_eq!(code_of(&bob, "CALL run_trial('docs_idx', ef_search => 10)").await, "42501");
    // A prepared statement is checked at each execution.
    let prepared_by_root = root.prepare("SELECT count(*) FROM docs").await.unwrap();
    assert_eq!(root.query_one(&prepared_by_root, &[]).await.unwrap().get::<_, i64>(0), 2, "a superuser bypasses checks");

    alice.batch_execute("GRANT SELECT ON docs TO bob").await.unwrap();
    // Made while bob may read docs; each must stop working at the REVOKE below.
    bob.batch_execute("PREPARE p AS SELECT count(*) FROM docs").await.unwrap();
    bob.batch_execute("CREATE VIEW nearest_doc AS SELECT id FROM vector_search('docs_idx', '[0,0]', 1)").await.unwrap();
    assert_eq!(simple_rows(&bob.simple_query("EXECUTE p").await.unwrap()), vec![vec!["2"]]);
    assert_eq!(simple_rows(&bob.simple_query("SELECT count(*) FROM docs").await.unwrap()), vec![vec!["2"]]);
    assert_eq!(simple_rows(&bob.simple_query("SELECT id FROM vector_search('docs_idx', '[0,0]', 1)").await.unwrap()), vec![vec!["1"]]);
    let knn = bob.prepare("SELECT id FROM docs ORDER BY emb <-> $1 LIMIT 1").await.unwrap();
    assert_eq!(bob.query_one(&knn, &[&vec![1.0f32, 1.0]]).await.unwrap().get::<_, i64>(0), 2);
    assert_eq!(code_of(&bob, "INSERT INTO docs VALUES (3, '[2,2]')").await, "42501", "SELECT is not INSERT");
    let has = simple_rows(
        &bob.simple_query("SELECT has_table_privilege('docs', 'SELECT'), has_table_privilege('docs', 'INSERT, UPDATE'), has_table_privilege('alice', 'docs', 'DELETE')")
            .await
            .unwrap(),
    );
    assert_eq!(has, vec![vec!["t", "f", "t"]]);
    let granted = simple_rows(
        &bob.simple_query("SELECT grantor, grantee, privilege_type, is_grantable FROM information_schema.table_privileges WHERE table_name = 'docs' AND grantee = 'bob'")
            .await
            .unwrap(),
    );
    assert_eq!(granted, vec![vec!["alice", "bob", "SELECT", "NO"]]);
    let owner_rows = simple_rows(&alice.simple_query("SELECT count(*) FROM information_schema.table_privileges WHERE table_name = 'docs' AND grantee = 'alice'").await.unwrap());
    assert_eq!(owner_rows, vec![vec!["7"]], "the owner holds all seven table privileges");

    alice.batch_execute("REVOKE SELECT ON docs FROM bob").await.unwrap();
    assert_eq!(code_of(&bob, "SELECT count(*) FROM docs").await, "42501");
    let e = bob.query_one(&knn, &[&vec![1.0f32, 1.0]]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "a REVOKE applies to statements prepared before it");
    assert_eq!(code_of(&bob, "EXECUTE p").await, "42501", "and to SQL-level PREPARE");
    assert_eq!(code_of(&bob, "SELECT * FROM nearest_doc").await, "42501", "a view over vector_search reads with its owner's SELECT");

    // No way around the grants through files, view nesting, or shared models.
    let location = simple_rows(&root.simple_query("SELECT location FROM lakehouse.datasets WHERE name = 'docs'").await.unwrap())[0][0].clone();
    let path = location.trim_start_matches("file://");
    assert_eq!(code_of(&bob, &format!("CREATE EXTERNAL TABLE stolen STORED AS PARQUET LOCATION '{path}'")).await, "42501");
    let mut chain = String::from("CREATE VIEW v0 AS SELECT id FROM docs;");
    for i in 1..40 {
        chain.push_str(&format!("CREATE VIEW v{i} AS SELECT id FROM v{};", i - 1));
    }
    bob.batch_execute(&chain).await.unwrap();
    let deep = code_of(&bob, "SELECT count(*) FROM v39").await;
    assert!(deep == "54001" || deep == "42501", "views 40 deep: {deep}");
    assert_eq!(code_of(&bob, "CALL create_model('m', provider => 'hash', dims => 4)").await, "42501");
    assert_eq!(code_of(&bob, "DROP TABLE IF EXISTS no_such_table").await, "ok");

    // Group roles: privileges through membership (transitively), and PUBLIC.
    assert_eq!(code_of(&bob, "CREATE ROLE readers").await, "42501", "only a superuser creates roles");
    root.batch_execute("CREATE ROLE readers; CREATE ROLE analysts IN ROLE readers; GRANT analysts TO bob").await.unwrap();
    alice.batch_execute("GRANT SELECT, INSERT ON TABLE docs TO readers").await.unwrap();
    assert_eq!(code_of(&bob, "INSERT INTO docs VALUES (3, '[2,2]')").await, "ok");
    assert_eq!(simple_rows(&bob.simple_query("SELECT count(*) FROM docs").await.unwrap()), vec![vec!["3"]]);
    let roles = simple_rows(&bob.simple_query("SELECT rolname, rolsuper, rolcanlogin FROM pg_roles ORDER BY rolname").await.unwrap());
    assert_eq!(
        roles,
        vec![
            vec!["alice", "f", "t"],
            vec!["analysts", "f", "f"],
            vec!["bob", "f", "t"],
            vec!["readers", "f", "f"],
            vec!["root", "t", "t"],
        ]
    );
    let members = simple_rows(
        &bob.simple_query(
            "SELECT r.rolname, m.rolname FROM pg_auth_members a JOIN pg_roles r ON a.roleid = r.oid JOIN pg_roles m ON a.member = m.oid ORDER BY 1",
        )
        .await
        .unwrap(),
    );
    assert_eq!(members, vec![vec!["analysts", "bob"], vec!["readers", "analysts"]]);
    root.batch_execute("REVOKE analysts FROM bob").await.unwrap();
    assert_eq!(code_of(&bob, "SELECT count(*) FROM docs").await, "42501");
    alice.batch_execute("GRANT SELECT ON docs TO PUBLIC").await.unwrap();
    assert_eq!(code_of(&bob, "SELECT count(*) FROM docs").await, "ok");
    alice.batch_execute("REVOKE ALL ON docs FROM PUBLIC").await.unwrap();
    // A procedure reading another table needs SELECT on it too.
    bob.batch_execute("CREATE TABLE mine (id BIGINT, emb vector(2)); INSERT INTO mine VALUES (1, '[0,1]'); CREATE INDEX mine_idx ON mine USING hnsw (emb)")
        .await
        .unwrap();
    assert_eq!(code_of(&bob, "CALL create_eval_set('mine_idx', from_table => 'docs', column => 'emb', queries => 1, k => 1)").await, "42501");

    // Views read with their owner's privileges.
    alice.batch_execute("CREATE VIEW docs_ids AS SELECT id FROM docs; GRANT SELECT ON docs_ids TO bob").await.unwrap();
    assert_eq!(simple_rows(&bob.simple_query("SELECT count(*) FROM docs_ids").await.unwrap()), vec![vec!["3"]]);
    assert_eq!(code_of(&bob, "SELECT count(*) FROM docs").await, "42501");
    bob.batch_execute("CREATE VIEW sneaky AS SELECT id FROM docs").await.unwrap();
    assert_eq!(code_of(&bob, "SELECT * FROM sneaky").await, "42501", "bob's view reads with bob's privileges");

    // Errors name the problem: unknown role, privilege that does not apply, roles
    // that cannot be dropped.
    assert_eq!(code_of(&alice, "GRANT SELECT ON docs TO nobody").await, "42704");
    assert_eq!(code_of(&alice, "GRANT USAGE ON docs TO bob").await, "0LP01");
    assert_eq!(code_of(&alice, "GRANT SELECT ON missing TO bob").await, "42P01");
    assert_eq!(code_of(&root, "CREATE ROLE pg_evil").await, "42939");
    assert_eq!(code_of(&root, "CREATE ROLE bob").await, "42710");
    assert_eq!(code_of(&root, "CREATE ROLE x PASSWORD 'p'").await, "0A000");
    assert_eq!(code_of(&root, "DROP ROLE alice").await, "42501");
    assert_eq!(code_of(&root, "DROP ROLE nobody").await, "42704");
    assert_eq!(code_of(&root, "GRANT analysts TO readers").await, "0LP01", "a membership loop");
    root.batch_execute("DROP ROLE IF EXISTS nobody; DROP ROLE analysts").await.unwrap();
    assert_eq!(code_of(&root, "DROP ROLE readers").await, "2BP01", "readers still holds privileges on docs");

    // The owner drops; the grants are in the catalog and survive a restart.
    alice.batch_execute("GRANT SELECT ON docs TO readers").await.unwrap();
    drop((root, alice, bob));
    server.stop().await;
    let server = TestServer::start_with(configure).await;
    let bob = connect(server.port, "bob", Some("b-pw")).await.unwrap();
    let alice = connect(server.port, "alice", Some("a-pw")).await.unwrap();
    assert_eq!(code_of(&bob, "SELECT count(*) FROM docs").await, "42501");
    let kept = simple_rows(&alice.simple_query("SELECT grantee, privilege_type FROM information_schema.table_privileges WHERE table_name = 'docs' AND grantee = 'readers' ORDER BY 2").await.unwrap());
    assert_eq!(kept, vec![vec!["readers", "INSERT"], vec!["readers", "SELECT"]]);
    alice.batch_execute("DROP TABLE docs_ids; DROP TABLE docs").await.unwrap_err();
    alice.batch_execute("DROP VIEW docs_ids; DROP TABLE docs").await.unwrap();
}
