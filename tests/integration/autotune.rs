//! Autotune end to end: sql/autotune.sql as CI runs it, a promotion swapped in while
//! a client queries in a loop, the registry across a restart, and the agent woken by
//! an INSERT under its rate limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lakehouse::{Config, Engine};

use crate::support::{BinaryServer, TestServer, client_with_notices, connect, rows_of, sqlstate};

/// `n` pseudo-random `dims`-dimensional points (random() per element) and an index.
fn setup_sql(n: usize, dims: usize, m: usize, efc: usize) -> String {
    let elems = vec!["random()"; dims].join(", ");
    format!(
        "CREATE TABLE pts AS SELECT value AS id, CAST(make_array({elems}) AS vector({dims})) AS v FROM generate_series(1, {n});
         CREATE INDEX pts_idx ON pts USING hnsw (v vector_l2_ops) WITH (m = {m}, ef_construction = {efc});"
    )
}

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.storage.data_dir = dir.join("data");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autotune_script_runs() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).await.unwrap();
    let sql = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/autotune.sql")).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = lakehouse::cli::run(&engine, &sql, &mut out, &mut err).await;
    let (out, err) = (String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
    assert!(r.is_ok(), "sql/autotune.sql failed: {r:?}\n{out}\n{err}");
    assert!(out.contains("nothing promoted: no trial reached min_recall 0.999"), "{out}");
    assert!(out.contains("HnswScan: index=points_idx"), "{out}");
    assert!(err.contains("autotune points_idx:"), "{err}");
    // Rolled back past every promotion: the original parameters again.
    assert!(out.contains("m=4, ef_construction=10\n") || out.contains("m=4, ef_construction=10 "), "{out}");
}

/// A client querying in a loop while a promotion rebuilds the index in the
/// background sees no error, and the new graph is swapped in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_swaps_the_index_without_failing_queries() {
    let server = TestServer::start().await;
    let admin = server.client().await;
    admin.batch_execute(&setup_sql(3000, 16, 4, 10)).await.unwrap();
    admin.batch_execute("CALL run_trial('pts_idx', m => 12, ef_construction => 60, ef_search => 20)").await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let reader = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let client = server.client().await;
        tokio::spawn(async move {
            let q: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).fract()).collect();
            let knn = client.prepare("SELECT id FROM pts ORDER BY v <-> $1 LIMIT 5").await.unwrap();
            let mut errors = vec![];
            while !stop.load(Ordering::Relaxed) {
                let r1 = client.query(&knn, &[&q]).await;
                let r2 = client.simple_query("SELECT id FROM vector_search('pts_idx', '[0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5]', 5)").await;
                for r in [r1.map(|rows| rows.len()), r2.map(|m| m.len())] {
                    match r {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            errors.push(e.to_string());
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            }
            errors
        })
    };
    // Background rebuild (no wait): the call returns at once, durable.
    let started = Instant::now();
    admin.batch_execute("CALL promote('pts_idx', 1)").await.unwrap();
    let returned = started.elapsed();
    let applied = loop {
        let rows = admin.simple_query("SELECT applied FROM lakehouse.promotions WHERE is_current").await.unwrap();
        let v = rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        });
        if v.as_deref() == Some("t") {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the rebuild never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Keep querying on the new generation for a few more queries.
    let seen = ok.load(Ordering::Relaxed);
    while ok.load(Ordering::Relaxed) < seen + 20 && failed.load(Ordering::Relaxed) == 0 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let errors = reader.await.unwrap();
    assert!(errors.is_empty(), "queries failed during the swap: {errors:?}");
    assert!(ok.load(Ordering::Relaxed) > 10, "the reader hardly ran");
    assert!(returned < applied, "promote returned after the rebuild ({returned:?} vs {applied:?})");
    let params = admin.simple_query("SELECT params FROM lakehouse.indexes").await.unwrap();
    let params = params.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(params.as_deref(), Some("m=12, ef_construction=60, ef_search=20"));
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    server.stop().await;
}

/// Trials, eval sets and the promotion registry survive a restart; the index is
/// loaded with its promoted parameters, not rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuning_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let engine = Engine::open(config(dir.path())).await.unwrap();
        let s = engine.new_session("t", "lakehouse");
        engine.execute_collect(&s, &setup_sql(1500, 8, 8, 32)).await.unwrap();
        engine
            .execute_collect(
                &s,
                "CALL create_eval_set('pts_idx', queries => 30, k => 5);
                 CALL autotune('pts_idx', min_recall => 0.5, grid => '[{\"m\": 6, \"ef_construction\": 20, \"ef_search\": 30}, {\"m\": 6, \"ef_construction\": 20, \"ef_search\": 60}]', wait => true);",
            )
            .await
            .unwrap();
        before = (
            rows_of(&engine, &s, "SELECT * FROM lakehouse.trials ORDER BY trial_id").await,
            rows_of(&engine, &s, "SELECT * FROM lakehouse.eval_sets").await,
            rows_of(&engine, &s, "SELECT * FROM lakehouse.promotions").await,
            rows_of(&engine, &s, "SELECT params, built_at FROM lakehouse.indexes").await,
        );
        assert_eq!(before.0.len(), 2);
        assert_eq!(before.2.len(), 1);
        assert!(before.3[0][0].starts_with("m=6, ef_construction=20, ef_search="), "{:?}", before.3);
    }
    let engine = Engine::open(config(dir.path())).await.unwrap();
    let s = engine.new_session("t", "lakehouse");
    let after = (
        rows_of(&engine, &s, "SELECT * FROM lakehouse.trials ORDER BY trial_id").await,
        rows_of(&engine, &s, "SELECT * FROM lakehouse.eval_sets").await,
        rows_of(&engine, &s, "SELECT * FROM lakehouse.promotions").await,
        rows_of(&engine, &s, "SELECT params, built_at FROM lakehouse.indexes").await,
    );
    assert_eq!(before, after);
    // The journal goes on numbering after a restart.
    engine.execute_collect(&s, "CALL run_trial('pts_idx')").await.unwrap();
    let ids = rows_of(&engine, &s, "SELECT trial_id FROM lakehouse.trials ORDER BY trial_id").await;
    assert_eq!(ids, vec![vec!["1".to_string()], vec!["2".to_string()], vec!["3".to_string()]]);
}

/// `[agent] enabled`: an INSERT wakes it, it runs trials (the champion first), and
/// its hourly limit stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_runs_after_an_append_within_its_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.agent.enabled = true;
    c.agent.period_secs = 0;
    c.agent.cooldown_secs = 0;
    c.agent.max_trials_per_hour = 2;
    c.agent.min_recall = 0.5;
    let engine = Engine::open(c).await.unwrap();
    let s = engine.new_session("t", "lakehouse");
    engine.execute_collect(&s, &setup_sql(1000, 8, 8, 32)).await.unwrap();
    let agent_trials = |engine: Arc<Engine>| async move {
        let s = engine.new_session("t", "lakehouse");
        rows_of(&engine, &s, "SELECT m, ef_construction, ef_search FROM lakehouse.trials WHERE source = 'agent' ORDER BY trial_id").await
    };
    assert!(agent_trials(engine.clone()).await.is_empty(), "nothing wakes the agent before the append");
    let wait_for = |n: usize| {
        let engine = engine.clone();
        async move {
            let started = Instant::now();
            loop {
                let t = agent_trials(engine.clone()).await;
                let idle = engine.tuning().agent.state().running.is_none();
                if t.len() >= n && idle {
                    return t;
                }
                assert!(started.elapsed() < Duration::from_secs(120), "the agent ran {} trials, expected {n}", t.len());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    engine.execute_collect(&s, "INSERT INTO pts SELECT 5000 + id, v FROM pts WHERE id <= 10").await.unwrap();
    let first = wait_for(1).await;
    // The champion (the index's own parameters, default ef_search) is measured first.
    assert_eq!(first[0], vec!["8".to_string(), "32".to_string(), "40".to_string()]);
    engine.execute_collect(&s, "CALL autotune_enqueue('pts_idx')").await.unwrap();
    let second = wait_for(2).await;
    assert_ne!(second[1], second[0], "a new configuration");
    // The hourly limit (2) holds the third wake: the agent takes it up and goes
    // back to sleep without a trial.
    let waits = engine.tuning().agent.state().waits;
    engine.execute_collect(&s, "INSERT INTO pts SELECT 6000 + id, v FROM pts WHERE id <= 10").await.unwrap();
    wait_for_waits(&engine, waits + 1).await;
    assert_eq!(agent_trials(engine.clone()).await.len(), 2);
    let state = rows_of(&engine, &s, "SELECT enabled, queue, trials_this_hour, trials_run FROM lakehouse.agent").await;
    assert_eq!(state, vec![vec!["true".to_string(), "pts_idx".to_string(), "2".to_string(), "2".to_string()]]);
}

/// A CancelRequest stops autotune between chunks of a build; the trials finished
/// before it stay journaled, nothing is promoted, and the index can be tuned again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autotune_can_be_cancelled() {
    let server = TestServer::start().await;
    let (c, notices) = client_with_notices(server.port).await;
    c.batch_execute(&setup_sql(20_000, 16, 4, 10)).await.unwrap();
    let token = c.cancel_token();
    // Cancel once the first trial's build has started (an event, not a delay:
    // under load the eval set alone can take seconds).
    let canceller = crate::support::cancel_on_notice(notices, token, |n| n.contains("trial build: m = 32"));
    let grid = r#"[{"m": 32, "ef_construction": 400, "ef_search": 40}, {"m": 48, "ef_construction": 400, "ef_search": 40}]"#;
    let err = c.batch_execute(&format!("CALL autotune('pts_idx', grid => '{grid}')")).await.unwrap_err();
    let seen = canceller.await.unwrap();
    assert_eq!(sqlstate(&err), "57014", "{err}: {seen:?}");
    assert!(seen.iter().any(|n| n.contains("trial build: m = 32, ef_construction = 400")), "{seen:?}");
    assert!(!seen.iter().any(|n| n.contains("m = 48")), "cancelled before the second trial: {seen:?}");
    let promotions = c.query_one("SELECT count(*) FROM lakehouse.promotions", &[]).await.unwrap();
    assert_eq!(promotions.get::<_, i64>(0), 0);
    // The per-index trial lock was released.
    c.batch_execute("CALL run_trial('pts_idx', ef_search => 10)").await.unwrap();
    let trials = c.query_one("SELECT count(*) FROM lakehouse.trials WHERE m = 4", &[]).await.unwrap();
    assert_eq!(trials.get::<_, i64>(0), 1);
    server.stop().await;
}

/// The real binary killed right after a promotion that needs a rebuild: the
/// promotion was durable, and the next start rebuilds and swaps it in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_interrupted_by_a_crash_is_built_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = BinaryServer::start(&data);
    let c = connect(server.port, "tester", None).await.unwrap();
    c.batch_execute(&setup_sql(3000, 16, 4, 10)).await.unwrap();
    c.batch_execute("CALL run_trial('pts_idx', m => 16, ef_construction => 100, ef_search => 30)").await.unwrap();
    c.batch_execute("CALL promote('pts_idx', 1)").await.unwrap();
    // Durable but not built yet (the rebuild takes seconds) when the process dies.
    let row = c.query_one("SELECT applied FROM lakehouse.promotions WHERE is_current", &[]).await.unwrap();
    assert_eq!(row.get::<_, Option<bool>>(0), Some(false));
    server.kill9();

    let server = BinaryServer::start(&data);
    let c = connect(server.port, "tester", None).await.unwrap();
    let started = Instant::now();
    loop {
        let row = c.query_one("SELECT trial_id, applied FROM lakehouse.promotions WHERE is_current", &[]).await.unwrap();
        assert_eq!(row.get::<_, Option<i64>>(0), Some(1));
        if row.get::<_, Option<bool>>(1) == Some(true) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the promotion was never built");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let params = c.query_one("SELECT params FROM lakehouse.indexes", &[]).await.unwrap();
    assert_eq!(params.get::<_, String>(0), "m=16, ef_construction=100, ef_search=30");
    let n = c.query("SELECT id FROM pts ORDER BY v <-> '[0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5]' LIMIT 5", &[]).await.unwrap();
    assert_eq!(n.len(), 5);
    drop(c);
    server.terminate();
}

/// The agent's period queues every index by itself (no enqueue, no append).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_wakes_on_its_period() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.agent.enabled = true;
    c.agent.period_secs = 1;
    c.agent.cooldown_secs = 3600;
    let engine = Engine::open(c).await.unwrap();
    let s = engine.new_session("t", "lakehouse");
    engine.execute_collect(&s, &setup_sql(500, 4, 8, 32)).await.unwrap();
    let started = Instant::now();
    loop {
        let t = rows_of(&engine, &s, "SELECT source FROM lakehouse.trials").await;
        if !t.is_empty() {
            assert_eq!(t, vec![vec!["agent".to_string()]]);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the period never woke the agent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The cooldown (an hour) holds the index from then on: the next period's
    // wake (a second later) queues it and the agent goes back to sleep.
    let waits = engine.tuning().agent.state().waits;
    wait_for_waits(&engine, waits + 2).await;
    assert_eq!(rows_of(&engine, &s, "SELECT count(*) FROM lakehouse.trials").await, vec![vec!["1".to_string()]]);
    let wake = rows_of(&engine, &s, "SELECT next_wake IS NOT NULL, last_index FROM lakehouse.agent").await;
    assert_eq!(wake, vec![vec!["true".to_string(), "pts_idx".to_string()]]);
}

/// Wait until the agent has gone to sleep `n` times in all, idle.
async fn wait_for_waits(engine: &Engine, n: u64) {
    let started = Instant::now();
    loop {
        let st = engine.tuning().agent.state();
        if st.waits >= n && st.running.is_none() {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the agent never went back to sleep ({} of {n})", st.waits);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
