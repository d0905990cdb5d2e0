//! psql's meta-commands run their catalog queries against pg_catalog
//! (datafusion-pg-catalog) and show our tables.

use crate::support::{TestServer, psql, run_psql};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_meta_commands_work() {
    if psql().is_none() {
        return;
    }
    let server = TestServer::start().await;
    let c = server.client().await;
    c.batch_execute("CREATE TABLE gadgets (id BIGINT, name TEXT)").await.unwrap();
    let port = server.port;
    let out = tokio::task::spawn_blocking(move || {
        let mut outputs = vec![];
        for cmd in ["\\dt", "\\d", "\\d gadgets", "\\dn", "\\df", "\\l", "\\conninfo"] {
            let out = run_psql(port, &[], &["-c", cmd]);
            outputs.push((cmd, out));
        }
        outputs
    })
    .await
    .unwrap();
    let notice = tokio::task::spawn_blocking(move || run_psql(port, &[], &["-c", "DROP TABLE IF EXISTS nothing_here"]))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&notice.stderr);
    assert!(stderr.contains("NOTICE:  table \"nothing_here\" does not exist, skipping"), "{stderr}");
    for (cmd, o) in &out {
        assert!(
            o.status.success(),
            "psql {cmd} failed:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let text = |i: usize| String::from_utf8_lossy(&out[i].1.stdout).to_string();
    assert!(text(0).contains("gadgets"), "\\dt: {}", text(0));
    assert!(text(2).contains("name"), "\\d gadgets: {}", text(2));
    assert!(text(3).contains("public"), "\\dn: {}", text(3));
    assert!(text(5).contains("lakehouse"), "\\l: {}", text(5));
    assert!(text(6).contains("127.0.0.1"), "\\conninfo: {}", text(6));
    server.stop().await;
}
