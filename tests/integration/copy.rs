//! COPY FROM STDIN / TO STDOUT over the wire, in text, csv and binary, with vectors:
//! tokio-postgres (extended protocol) and psql's `\copy` (simple protocol).

use bytes::Bytes;
use futures::{SinkExt, StreamExt};

use crate::support::{TestServer, psql, run_psql, sqlstate, text_rows};

async fn copy_in(c: &tokio_postgres::Client, sql: &str, chunks: &[&[u8]]) -> Result<u64, tokio_postgres::Error> {
    let sink = c.copy_in(sql).await?;
    futures::pin_mut!(sink);
    for chunk in chunks {
        sink.send(Bytes::copy_from_slice(chunk)).await?;
    }
    sink.finish().await
}

async fn copy_out(c: &tokio_postgres::Client, sql: &str) -> Vec<u8> {
    let stream = c.copy_out(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    futures::pin_mut!(stream);
    let mut out = vec![];
    while let Some(b) = stream.next().await {
        out.extend_from_slice(&b.unwrap());
    }
    out
}

/// PostgreSQL's binary COPY of (id bigint, name text, emb vector) rows; vectors in
/// pgvector's binary form.
fn binary_copy(rows: &[(i64, Option<&str>, Option<Vec<f32>>)]) -> Vec<u8> {
    let mut b = b"PGCOPY\n\xff\r\n\0".to_vec();
    b.extend(0i32.to_be_bytes());
    b.extend(0i32.to_be_bytes());
    for (id, name, emb) in rows {
        b.extend(3i16.to_be_bytes());
        b.extend(8i32.to_be_bytes());
        b.extend(id.to_be_bytes());
        match name {
            Some(n) => {
                b.extend((n.len() as i32).to_be_bytes());
                b.extend(n.as_bytes());
            }
            None => b.extend((-1i32).to_be_bytes()),
        }
        match emb {
            Some(v) => {
                b.extend((4 + 4 * v.len() as i32).to_be_bytes());
                b.extend((v.len() as i16).to_be_bytes());
                b.extend(0i16.to_be_bytes());
                for x in v {
                    b.extend(x.to_be_bytes());
                }
            }
            None => b.extend((-1i32).to_be_bytes()),
        }
    }
    b.extend((-1i16).to_be_bytes());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out_in_text_csv_and_binary_with_vectors() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.batch_execute("CREATE TABLE items (id bigserial PRIMARY KEY, name text, emb vector(3))").await.unwrap();

    // Text, cut mid-row and mid-escape; SERIAL fills the ids; \N is NULL.
    let n = copy_in(&c, "COPY items (name, emb) FROM STDIN", &[b"a\\tb\t[1,2,3]\nback\\\\sl", b"ash\t{4,5,6}\n\\N\t\\N\n"]).await.unwrap();
    assert_eq!(n, 3);
    // Csv with a header, quotes, a newline inside a field, an empty string and NULL.
    let n = copy_in(
        &c,
        "COPY items (id, name, emb) FROM STDIN WITH (FORMAT csv, HEADER true)",
        &[b"id,name,emb\n10,\"multi\nline, \"\"quoted\"\"\",\"[7,8,9]\"\n11,\"\",\n12,,\"[0,0,1]\"\n"],
    )
    .await
    .unwrap();
    assert_eq!(n, 3);
    // Binary, vectors in pgvector's binary form.
    let bin = binary_copy(&[(20, Some("bin"), Some(vec![0.5, -1.0, 2.0])), (21, None, None)]);
    let (head, tail) = bin.split_at(25);
    let n = copy_in(&c, "COPY items FROM STDIN WITH (FORMAT binary)", &[head, tail]).await.unwrap();
    assert_eq!(n, 2);

    let rows = text_rows(&c, "SELECT id, name, emb FROM items ORDER BY id").await;
    let want: Vec<Vec<&str>> = vec![
        vec!["1", "a\tb", "[1,2,3]"],
        vec!["2", "back\\slash", "[4,5,6]"],
        vec!["3", "NULL", "NULL"],
        vec!["10", "multi\nline, \"quoted\"", "[7,8,9]"],
        vec!["11", "", "NULL"],
        vec!["12", "NULL", "[0,0,1]"],
        vec!["20", "bin", "[0.5,-1,2]"],
        vec!["21", "NULL", "NULL"],
    ];
    assert_eq!(rows, want);

    // Out again: text, csv with header, binary (read back in to a copy of the table).
    let text = copy_out(&c, "COPY (SELECT id, name, emb FROM items WHERE id IN (1, 3, 10) ORDER BY id) TO STDOUT").await;
    assert_eq!(String::from_utf8(text).unwrap(), "1\ta\\tb\t[1,2,3]\n3\t\\N\t\\N\n10\tmulti\\nline, \"quoted\"\t[7,8,9]\n");
    let csv = copy_out(&c, "COPY items (id, name) TO STDOUT WITH CSV HEADER").await;
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("id,name\n"), "{csv}");
    assert!(csv.contains("10,\"multi\nline, \"\"quoted\"\"\"\n") && csv.contains("11,\"\"\n") && csv.contains("12,\n"), "{csv}");
    let bin = copy_out(&c, "COPY (SELECT id, name, emb FROM items ORDER BY id) TO STDOUT (FORMAT binary)").await;
    assert!(bin.starts_with(b"PGCOPY\n\xff\r\n\0") && bin.ends_with(&[0xff, 0xff]));
    c.batch_execute("CREATE TABLE items2 (id bigint, name text, emb vector(3))").await.unwrap();
    assert_eq!(copy_in(&c, "COPY items2 FROM STDIN (FORMAT binary)", &[&bin]).await.unwrap(), 8);
    assert_eq!(text_rows(&c, "SELECT id, name, emb FROM items2 ORDER BY id").await, want);
    // An empty result still sends the header; the count is of rows.
    let empty = copy_out(&c, "COPY (SELECT id FROM items WHERE id < 0) TO STDOUT CSV HEADER").await;
    assert_eq!(empty, b"id\n");

    // A bad row fails the whole COPY (nothing written) with its SQLSTATE and line;
    // the connection goes on.
    let e = copy_in(&c, "COPY items (name, emb) FROM STDIN", &[b"ok\t[1,1,1]\n", b"short\n"]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "22P04", "{e}");
    let e = copy_in(&c, "COPY items (name, emb) FROM STDIN", &[b"ok\t[1,1,1]\nbad\t[1,2]\n"]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "22000", "{e}");
    assert!(e.as_db_error().unwrap().message().contains("line 2"), "{e}");
    let e = copy_in(&c, "COPY items (id, name) FROM STDIN", &[b"1\tduplicate\n"]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "23505", "{e}");
    // (Over the simple protocol: tokio-postgres follows a COPY refused at Execute
    // with CopyFail and a second Sync, whose ReadyForQuery it then misreads.)
    let e = c.simple_query("COPY items (nope) FROM STDIN").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42703", "{e}");
    // A COPY the client abandons (tokio-postgres sends CopyFail) writes nothing.
    {
        let sink = c.copy_in::<_, Bytes>("COPY items (name) FROM STDIN").await.unwrap();
        futures::pin_mut!(sink);
        sink.send(Bytes::from_static(b"abandoned\n")).await.unwrap();
    }
    assert_eq!(text_rows(&c, "SELECT count(*) FROM items").await, vec![vec!["8"]]);
    assert_eq!(text_rows(&c, "SELECT count(*) FROM items WHERE name IN ('ok', 'abandoned')").await, vec![vec!["0"]]);
    // The rows' table of a COPY is gone with it.
    assert_eq!(text_rows(&c, "SELECT count(*) FROM pg_class WHERE relname LIKE 'copy_from_stdin%'").await, vec![vec!["0"]]);

    // A temporary table takes COPY too.
    c.batch_execute("CREATE TEMP TABLE scratch (x int, y float8)").await.unwrap();
    assert_eq!(copy_in(&c, "COPY scratch FROM STDIN (FORMAT csv, DELIMITER ';')", &[b"1;0.5\n2;\n"]).await.unwrap(), 2);
    assert_eq!(text_rows(&c, "SELECT x, y FROM scratch ORDER BY x").await, vec![vec!["1", "0.5"], vec!["2", "NULL"]]);

    // psql's \copy (simple protocol), both ways, through files on the client side.
    if psql().is_some() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        std::fs::write(&input, "name,emb\npsql one,\"[1,0,0]\"\npsql two,\"[0,1,0]\"\n").unwrap();
        let output = dir.path().join("out.txt");
        let port = server.port;
        let (i, o) = (input.display().to_string(), output.display().to_string());
        let out = tokio::task::spawn_blocking(move || {
            run_psql(
                port,
                &[],
                &[
                    "-c",
                    &format!("\\copy items (name, emb) from '{i}' with (format csv, header)"),
                    "-c",
                    &format!("\\copy (select name, emb from items where name like 'psql%' order by name) to '{o}'"),
                ],
            )
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("COPY 2"), "{}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "psql one\t[1,0,0]\npsql two\t[0,1,0]\n");
    }

    // COPY FROM … WHERE keeps the rows the condition holds for (the count says so).
    c.batch_execute("CREATE TABLE filtered (a text, b int)").await.unwrap();
    let n = copy_in(&c, "COPY filtered FROM STDIN WHERE a <> 'b-999' AND (b IS NULL OR b < 2)", &[b"a-0\t0\na-1\t1\na-2\t2\nb-999\t\\N\nc\t\\N\n"]).await.unwrap();
    assert_eq!(n, 3);
    assert_eq!(text_rows(&c, "SELECT a FROM filtered ORDER BY a").await, vec![vec!["a-0"], vec!["a-1"], vec!["c"]]);
    let e = copy_out_err(&c, "COPY filtered TO STDOUT WHERE b = 1").await;
    assert_eq!(sqlstate(&e), "0A000", "{e}");

    // json and jsonb columns: checked as an INSERT checks them, jsonb stored normalized.
    c.batch_execute("CREATE TABLE docs (j json, b jsonb)").await.unwrap();
    assert_eq!(copy_in(&c, "COPY docs FROM STDIN", &[b"{\"c\":3}\t{\"z\":1,\"y\":2}\n"]).await.unwrap(), 1);
    let e = copy_in(&c, "COPY docs FROM STDIN", &[b"{bad\t{}\n"]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "22P02", "{e}");
    assert_eq!(text_rows(&c, "SELECT j, b FROM docs").await, vec![vec!["{\"c\":3}", "{\"y\": 2, \"z\": 1}"]]);
    server.stop().await;
}

async fn copy_out_err(c: &tokio_postgres::Client, sql: &str) -> tokio_postgres::Error {
    match c.copy_out(sql).await {
        Ok(_) => panic!("{sql} succeeded"),
        Err(e) => e,
    }
}
