//! Vectors over the wire (float4[] parameters and results, pgvector text), and HNSW
//! indexes across a restart: loaded from their files, not rebuilt.

use lakehouse::{Config, Engine};

use crate::support::{BinaryServer, TestServer, client_with_notices, connect, rows_of, sqlstate, text_rows};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_builds_report_progress() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().join("data");
    let engine = Engine::open(config).await.unwrap();
    let s = engine.new_session("t", "lakehouse");
    engine
        .execute_collect(
            &s,
            "CREATE TABLE pts AS SELECT value AS id, CAST(make_array(CAST(value % 40 AS DOUBLE), CAST(value / 40 AS DOUBLE)) AS vector(2)) AS emb FROM generate_series(0, 1599);
             CREATE INDEX pts_idx ON pts USING hnsw (emb vector_l2_ops) WITH (m = 8, ef_construction = 40);",
        )
        .await
        .unwrap();
    let notices = s.take_notices();
    assert!(notices.iter().any(|n| n.contains("1600 of 1600 rows indexed")), "{notices:?}");
    assert!(notices.iter().any(|n| n.contains("pts_idx built over 1600 rows")), "{notices:?}");
    let nearest = rows_of(&engine, &s, "SELECT id FROM vector_search('pts_idx', '[5.2,7.1]', 3)").await;
    assert_eq!(nearest[0][0], "285"); // (5, 7)
}

/// The real binary, stopped and started again on the same data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_is_loaded_after_restart_without_rebuilding() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = BinaryServer::start(&data);
    let c = connect(server.port, "tester", None).await.unwrap();
    c.batch_execute(
        "CREATE TABLE pts AS SELECT value AS id, CAST(make_array(CAST(value % 40 AS DOUBLE), CAST(value / 40 AS DOUBLE)) AS vector(2)) AS emb FROM generate_series(0, 1599);
         CREATE INDEX pts_idx ON pts USING hnsw (emb vector_l2_ops) WITH (m = 8, ef_construction = 40);",
    )
    .await
    .unwrap();
    // A row without a vector is covered by the index but not in its graph.
    c.batch_execute("INSERT INTO pts VALUES (7777, NULL)").await.unwrap();
    let before = text_rows(&c, "SELECT built_at, build_secs, rows, location FROM lakehouse.indexes").await;
    assert_eq!(before[0][2], "1601");
    let nearest = text_rows(&c, "SELECT id FROM vector_search('pts_idx', '[5.2,7.1]', 3)").await;
    assert_eq!(nearest[0][0], "285"); // (5, 7)
    drop(c);
    server.terminate();

    let server = BinaryServer::start(&data);
    let c = connect(server.port, "tester", None).await.unwrap();
    // Same generation: built_at, build time and files unchanged, i.e. loaded, not rebuilt.
    let after = text_rows(&c, "SELECT built_at, build_secs, rows, location FROM lakehouse.indexes").await;
    assert_eq!(before, after);
    assert_eq!(text_rows(&c, "SELECT id FROM vector_search('pts_idx', '[5.2,7.1]', 3)").await, nearest);
    let plan = format!("{:?}", text_rows(&c, "EXPLAIN SELECT id FROM pts ORDER BY emb <-> '[5.2,7.1]' LIMIT 3").await);
    assert!(plan.contains("HnswScanExec: index=pts_idx"), "{plan}");

    // Appends after the restart go into the loaded graph, as a new generation.
    c.batch_execute("INSERT INTO pts VALUES (9999, '[5.2,7.1]')").await.unwrap();
    let top = text_rows(&c, "SELECT id FROM pts ORDER BY emb <-> '[5.2,7.1]' LIMIT 1").await;
    assert_eq!(top[0][0], "9999");
    let appended = text_rows(&c, "SELECT built_at, rows, location FROM lakehouse.indexes").await;
    assert_eq!(appended[0][0], before[0][0], "an append keeps the build timestamp");
    assert_eq!(appended[0][1], "1602");
    assert_ne!(appended[0][2], before[0][3], "an append writes a new generation");
    let old = url::Url::parse(&before[0][3]).unwrap().to_file_path().unwrap();
    let new = url::Url::parse(&appended[0][2]).unwrap().to_file_path().unwrap();
    assert!(!old.exists() && new.join("hnsw.hnsw.graph").exists());
    // An L1 (taxicab) graph too, to be loaded below.
    c.batch_execute("CREATE INDEX pts_l1 ON pts USING hnsw (emb vector_l1_ops)").await.unwrap();
    drop(c);
    server.terminate();

    // And that generation is what the next start loads.
    let server = BinaryServer::start(&data);
    let c = connect(server.port, "tester", None).await.unwrap();
    let top = text_rows(&c, "SELECT id, round(_distance, 3) FROM vector_search('pts_idx', '[5.2,7.1]', 2)").await;
    assert_eq!(top, vec![vec!["9999".to_string(), "0".to_string()], vec!["285".to_string(), "0.224".to_string()]]);
    let plan = format!("{:?}", text_rows(&c, "EXPLAIN SELECT id FROM pts ORDER BY emb <+> '[5.2,7.4]' LIMIT 2").await);
    assert!(plan.contains("HnswScanExec: index=pts_l1 metric=l1"), "{plan}");
    // (5, 7) at 0.6, then the appended (5.2, 7.1) at 0.3 first.
    let top = text_rows(&c, "SELECT id FROM pts ORDER BY emb <+> '[5.2,7.4]' LIMIT 2").await;
    assert_eq!(top, vec![vec!["9999".to_string()], vec!["285".to_string()]]);
    drop(c);
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_travel_as_float4_arrays_and_bind_as_parameters() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE items (id BIGINT, emb vector(3));
         INSERT INTO items VALUES (1, '[1,2,3]'), (2, '[4,5,6]'), (3, '[1,1,1]');
         CREATE INDEX items_idx ON items USING hnsw (emb vector_l2_ops);",
    )
    .await
    .unwrap();
    // Binary results: pgvector's `vector`, its OID found in pg_type by name.
    let row = c.query_one("SELECT emb FROM items WHERE id = 2", &[]).await.unwrap();
    let v: crate::support::Vector = row.get(0);
    assert_eq!(v.0, vec![4.0, 5.0, 6.0]);
    let oid: i64 = c.query_one("SELECT CAST(oid AS BIGINT) FROM pg_catalog.pg_type WHERE typname = 'vector'", &[]).await.unwrap().get(0);
    assert_eq!(oid, row.columns()[0].type_().oid() as i64, "the column's type is pg_type's vector");
    // `SELECT NULL::vector` (how pgvector-python's register_vector finds the OID).
    let stmt = c.prepare("SELECT NULL::vector, 1, count(*) FROM items").await.unwrap();
    let (cols, names): (Vec<_>, Vec<_>) = stmt.columns().iter().map(|c| (c.type_().name().to_string(), c.name().to_string())).unzip();
    assert_eq!(cols, ["vector", "int4", "int8"]);
    assert_eq!(names, ["vector", "?column?", "count"]);
    // A parameter typed by its cast is described so (asyncpg needs it).
    let stmt = c.prepare("SELECT $1::int + 1").await.unwrap();
    assert_eq!(stmt.params()[0].name(), "int4");
    let row = c.query_one(&stmt, &[&41i32]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 42);
    // A prepared k-NN query with a float4[] parameter (the index path).
    let stmt = c.prepare("SELECT id FROM items ORDER BY emb <-> $1 LIMIT 2").await.unwrap();
    assert_eq!(stmt.params()[0], tokio_postgres::types::Type::FLOAT4_ARRAY);
    for _ in 0..3 {
        let rows = c.query(&stmt, &[&vec![1.0f32, 2.0, 4.0]]).await.unwrap();
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(ids, vec![1, 3]);
    }
    // Another index under the same name (cosine) must not answer the L2 statement.
    c.batch_execute("DROP INDEX items_idx; CREATE INDEX items_idx ON items USING hnsw (emb vector_cosine_ops);").await.unwrap();
    let rows = c.query(&stmt, &[&vec![1.0f32, 2.0, 4.0]]).await.unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![1, 3], "L2 order, not cosine (1, 2)");
    // The same with pgvector's text form, as a driver without array support sends it.
    let rows = c.query("SELECT id FROM items ORDER BY emb <-> $1::text LIMIT 1", &[&"[4,5,6.5]"]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 2);
    // Wrong dimension in a parameter: 22000, and the connection stays usable.
    let err = c.query(&stmt, &[&vec![1.0f32, 2.0]]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "22000", "{err}");
    let err = c.simple_query("SELECT '[1,2'::vector").await.unwrap_err();
    assert_eq!(sqlstate(&err), "22P02");
    // Text results in psql's form.
    let msgs = c.simple_query("SELECT emb FROM items WHERE id = 1").await.unwrap();
    let text = msgs.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(text.as_deref(), Some("[1,2,3]"));
    drop(c);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_build_reports_progress_live_and_can_be_cancelled() {
    let server = TestServer::start().await;
    let (c, notices) = client_with_notices(server.port).await;
    c.batch_execute(
        "CREATE TABLE big AS SELECT value AS id, CAST(make_array(random(), random(), random(), random(), random(), random(), random(), random()) AS vector(8)) AS emb FROM generate_series(1, 400000)",
    )
    .await
    .unwrap();
    let token = c.cancel_token();
    // Cancel when the build first reports progress (an event, not a delay).
    let canceller = crate::support::cancel_on_notice(notices, token, |n| n.contains("rows indexed"));
    let started = std::time::Instant::now();
    let err = c.batch_execute("CREATE INDEX big_idx ON big USING hnsw (emb)").await.unwrap_err();
    let seen = canceller.await.unwrap();
    assert_eq!(sqlstate(&err), "57014", "{err}");
    // Progress arrived while the build ran (before it was cancelled).
    assert!(!seen.iter().any(|n| n.contains("400000 of 400000")), "cancelled before the end: {seen:?}");
    assert!(seen.iter().any(|n| n.contains("hnsw: building big_idx over 400000 rows")), "{seen:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "cancel took {:?}", started.elapsed());
    // Nothing half-built is left: no record, and the next DDL is not blocked.
    let rows = c.query_one("SELECT count(*) FROM lakehouse.indexes", &[]).await.unwrap();
    assert_eq!(rows.get::<_, i64>(0), 0);
    c.batch_execute(
        "CREATE TABLE small (id BIGINT, emb vector(2));
         INSERT INTO small VALUES (1, '[1,2]');
         CREATE INDEX small_idx ON small USING hnsw (emb);",
    )
    .await
    .unwrap();
    drop(c);
    server.stop().await;
}
