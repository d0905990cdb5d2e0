//! Embeddings: the local model against sentence-transformers' own output, the HTTP
//! providers against a real HTTP server speaking their APIs (batching, concurrency,
//! cache, retries, errors, keys), settings, and text indexes across a restart.

use std::sync::atomic::Ordering;

use lakehouse::engine::Session;
use lakehouse::{Config, Engine};

use crate::fake_embed::{FakeEmbedServer, fake_vector};
use crate::support::{minilm_dir, rows_of as rows};

async fn open(dir: &std::path::Path) -> std::sync::Arc<Engine> {
    let mut config = Config::default();
    config.storage.data_dir = dir.join("data");
    // The OpenAI test names PATH as its key's variable: allow-listed ([secrets]).
    config.secrets.env = vec!["PATH".into()];
    Engine::open(config).await.unwrap()
}

async fn err(engine: &Engine, s: &Session, sql: &str) -> lakehouse::Error {
    match engine.execute_collect(s, sql).await {
        Ok(_) => panic!("{sql}: expected an error"),
        Err(e) => e,
    }
}

fn vector_of(text: &str) -> Vec<f32> {
    text.trim_matches(|c| c == '[' || c == ']').split(',').map(|x| x.trim().parse().unwrap()).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64) * (*y as f64)).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_model_matches_sentence_transformers() {
    let Some(model_dir) = minilm_dir() else { return };
    let reference: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../data/minilm_reference.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let s = engine.new_session("t", "lakehouse");
    let created = rows(&engine, &s, &format!("CALL create_model('minilm', provider => 'local', path => {})", quote(&model_dir))).await;
    assert_eq!(created[0][2], "384");
    // One constant call at a time (folded before planning) …
    for r in &reference {
        let text = r["text"].as_str().unwrap();
        let want: Vec<f32> = r["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let got = rows(&engine, &s, &format!("SELECT embed('minilm', {})", quote(text))).await;
        let c = cosine(&vector_of(&got[0][0]), &want);
        println!("cosine with sentence-transformers {c:.7} for {text:?}");
        assert!(c >= 0.999, "{text:?}: cosine {c}");
    }
    // … and all of them as one batch over a column (the async UDF path).
    let values: Vec<String> = reference.iter().enumerate().map(|(i, r)| format!("({i}, {})", quote(r["text"].as_str().unwrap()))).collect();
    let sql = format!("SELECT i, embed('minilm', t) FROM (VALUES {}) AS v(i, t) ORDER BY i", values.join(", "));
    let got = rows(&engine, &s, &sql).await;
    for (row, r) in got.iter().zip(&reference) {
        let want: Vec<f32> = r["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        assert!(cosine(&vector_of(&row[1]), &want) >= 0.999);
    }
    // Semantic, not lexical: a paraphrase beats a word-overlap decoy.
    let sims = rows(
        &engine,
        &s,
        "SELECT 1 - cosine_distance(embed('minilm', 'A man is playing a guitar.'), embed('minilm', 'Someone performs music on a string instrument.')),
                1 - cosine_distance(embed('minilm', 'A man is playing a guitar.'), embed('minilm', 'A man is playing a video game.'))",
    )
    .await;
    let (para, decoy): (f64, f64) = (sims[0][0].parse().unwrap(), sims[0][1].parse().unwrap());
    assert!(para > 0.4 && decoy < para + 0.3, "paraphrase {para}, decoy {decoy}");
    assert_eq!(err(&engine, &s, &format!("CALL create_model('bad', provider => 'local', path => {})", quote(dir.path().to_str().unwrap()))).await.sqlstate(), "F0000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_model_settings_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let s = engine.new_session("t", "lakehouse");
    assert_eq!(rows(&engine, &s, "SELECT vector_dims(embed('hello world'))").await[0][0], "256");
    assert_eq!(rows(&engine, &s, "SELECT embed(NULL), embed(''), embed('hash', '')").await[0], vec!["NULL", "NULL", "NULL"]);
    // Same text, same vector; unit length.
    let r = rows(&engine, &s, "SELECT embed('Lakehouse') = embed('lakehouse'), round(vector_norm(embed('x y z')), 4)").await;
    assert_eq!(r[0], vec!["true", "1.0"]);
    assert_eq!(err(&engine, &s, "SELECT embed('nope', 'x')").await.sqlstate(), "42704");
    assert_eq!(err(&engine, &s, "SET embedding.default_model = 'nope'").await.sqlstate(), "42704");
    assert_eq!(err(&engine, &s, "SET embedding.batch_size = 0").await.sqlstate(), "22023");
    rows(&engine, &s, "CALL create_model('h64', provider => 'hash', dims => 64)").await;
    engine.execute_collect(&s, "SET embedding.default_model = 'h64'").await.unwrap();
    assert_eq!(rows(&engine, &s, "SHOW embedding.default_model").await[0][0], "h64");
    assert_eq!(rows(&engine, &s, "SELECT vector_dims(embed('x'))").await[0][0], "64");
    // Another session keeps its own default.
    let other = engine.new_session("t", "lakehouse");
    assert_eq!(rows(&engine, &other, "SELECT vector_dims(embed('x'))").await[0][0], "256");
    engine.execute_collect(&s, "RESET embedding.default_model").await.unwrap();
    assert_eq!(rows(&engine, &s, "SELECT vector_dims(embed('x'))").await[0][0], "256");
    assert_eq!(err(&engine, &s, "CALL create_model('h64', provider => 'hash')").await.sqlstate(), "42710");
    assert_eq!(err(&engine, &s, "CALL create_model('hash', provider => 'hash')").await.sqlstate(), "42710");
    assert_eq!(err(&engine, &s, "CALL create_model('x', provider => 'bogus')").await.sqlstate(), "22023");
    assert_eq!(err(&engine, &s, "CALL create_model('x', provider => 'ollama', model => 'm')").await.sqlstate(), "22023");
    assert_eq!(err(&engine, &s, "CALL create_model('x', provider => 'ollama', base_url => 'http://u:pw@h:1', model => 'm')").await.sqlstate(), "22023");
    assert_eq!(err(&engine, &s, "CALL drop_model('hash')").await.sqlstate(), "2BP01");
    assert_eq!(err(&engine, &s, "CALL drop_model('nope')").await.sqlstate(), "42704");
    rows(&engine, &s, "CALL drop_model('nope', if_exists => true)").await;
    let models = rows(&engine, &s, "SELECT name, provider, dims, reachable, source FROM lakehouse.models ORDER BY name").await;
    assert_eq!(models, vec![vec!["h64", "hash", "64", "true", "catalog"], vec!["hash", "hash", "256", "true", "built-in"]]);
    rows(&engine, &s, "CALL drop_model('h64')").await;
    assert_eq!(err(&engine, &s, "SELECT embed('h64', 'x')").await.sqlstate(), "42704");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_batches_caches_retries_and_reports_errors() {
    let server = FakeEmbedServer::start(8).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let s = engine.new_session("t", "lakehouse");
    // No dims given: one probe request learns them.
    let created = rows(&engine, &s, &format!("CALL create_model('ol', provider => 'ollama', base_url => '{}', model => 'nomic-embed-text')", server.url)).await;
    assert_eq!(created[0][2], "8");
    assert_eq!(server.state.requests.load(Ordering::SeqCst), 1);
    server.state.batches.lock().unwrap().clear();

    // 150 distinct texts + duplicates and NULLs → batches of 64, several in flight.
    server.state.delay_ms.store(150, Ordering::SeqCst);
    engine
        .execute_collect(&s, "CREATE TABLE docs AS SELECT value AS id, CASE WHEN value % 50 = 0 THEN NULL ELSE 'document ' || (value % 150) END AS body FROM generate_series(0, 299)")
        .await
        .unwrap();
    let r = rows(&engine, &s, "SELECT count(*), count(e) FROM (SELECT embed('ol', body) AS e FROM docs)").await;
    assert_eq!(r[0], vec!["300", "294"]);
    let mut batches = server.state.batches.lock().unwrap().clone();
    batches.sort();
    assert_eq!(batches.iter().sum::<usize>(), 147, "{batches:?}"); // distinct non-NULL texts
    assert!(batches.iter().all(|b| *b <= 64), "{batches:?}");
    assert!(server.state.max_in_flight.load(Ordering::SeqCst) >= 2, "batches should overlap");
    let vector = rows(&engine, &s, "SELECT embed('ol', 'document 7')").await;
    let want = fake_vector("document 7", 8);
    assert!(cosine(&vector_of(&vector[0][0]), &want) > 0.9999);
    server.state.delay_ms.store(0, Ordering::SeqCst);

    // Seen texts come from the cache: no request.
    let before = server.state.requests.load(Ordering::SeqCst);
    rows(&engine, &s, "SELECT embed('ol', body) FROM docs").await;
    assert_eq!(server.state.requests.load(Ordering::SeqCst), before);

    // Transient 503s are retried.
    server.state.fail_next.store(2, Ordering::SeqCst);
    rows(&engine, &s, "SELECT embed('ol', 'retry me')").await;
    assert_eq!(server.state.requests.load(Ordering::SeqCst), before + 3);

    // A persistent HTTP error: 08006 with the model and URL.
    server.state.status.store(500, Ordering::SeqCst);
    let e = err(&engine, &s, "SELECT embed('ol', 'fails')").await;
    assert_eq!(e.sqlstate(), "08006");
    assert!(e.to_string().contains("\"ol\"") && e.to_string().contains(&server.url) && e.to_string().contains("500"), "{e}");
    server.state.status.store(0, Ordering::SeqCst);

    // A changed dimension: 22000.
    server.state.dims.store(9, Ordering::SeqCst);
    let e = err(&engine, &s, "SELECT embed('ol', 'new dims')").await;
    assert_eq!(e.sqlstate(), "22000", "{e}");
    assert!(e.to_string().contains("returned 9 dimensions, expected 8"), "{e}");
    server.state.dims.store(8, Ordering::SeqCst);

    // Too slow: a timeout is 08006.
    rows(&engine, &s, &format!("CALL create_model('slow', provider => 'ollama', base_url => '{}', model => 'm', dims => 8, timeout_ms => 100)", server.url)).await;
    server.state.delay_ms.store(400, Ordering::SeqCst);
    let e = err(&engine, &s, "SELECT embed('slow', 'late')").await;
    assert_eq!(e.sqlstate(), "08006", "{e}");
    assert!(e.to_string().contains("did not answer within 100 ms"), "{e}");
    server.state.delay_ms.store(0, Ordering::SeqCst);

    // Nobody listening: 08001; creating without dims says how to proceed.
    let dead = "http://127.0.0.1:9";
    let e = err(&engine, &s, &format!("CALL create_model('down', provider => 'ollama', base_url => '{dead}', model => 'm')")).await;
    assert_eq!(e.sqlstate(), "08001", "{e}");
    assert!(e.to_string().contains("dims =>"), "{e}");
    rows(&engine, &s, &format!("CALL create_model('down', provider => 'ollama', base_url => '{dead}', model => 'm', dims => 8)")).await;
    let e = err(&engine, &s, "SELECT embed('down', 'x')").await;
    assert_eq!(e.sqlstate(), "08001");
    assert!(e.to_string().contains("\"down\"") && e.to_string().contains(dead), "{e}");
    let reach = rows(&engine, &s, "SELECT name, reachable FROM lakehouse.models WHERE provider = 'ollama' ORDER BY name").await;
    assert_eq!(reach, vec![vec!["down", "false"], vec!["ol", "true"], vec!["slow", "true"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sends_the_key_and_never_shows_it() {
    let server = FakeEmbedServer::start(6).await;
    // The key: the value of a variable every environment has (setting one here would
    // race with other tests' threads reading the environment).
    let key = std::env::var("PATH").expect("PATH is set");
    *server.state.key.lock().unwrap() = Some(key.clone());
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let s = engine.new_session("t", "lakehouse");
    let e = err(&engine, &s, &format!("CALL create_model('nokey', provider => 'openai', base_url => '{}', model => 'text-embedding-3-small')", server.url)).await;
    assert_eq!(e.sqlstate(), "08006");
    assert!(e.to_string().contains("401"), "{e}");
    rows(
        &engine,
        &s,
        &format!("CALL create_model('oa', provider => 'openai', base_url => '{}/v1', model => 'text-embedding-3-small', api_key_env => 'PATH')", server.url),
    )
    .await;
    let r = rows(&engine, &s, "SELECT embed('oa', t) FROM (VALUES ('alpha'), ('beta'), ('gamma')) AS v(t)").await;
    for (row, t) in r.iter().zip(["alpha", "beta", "gamma"]) {
        assert!(cosine(&vector_of(&row[0]), &fake_vector(t, 6)) > 0.9999, "{t}: order kept by index");
    }
    // The key is nowhere in the catalog or the system tables.
    let catalog = std::fs::read_to_string(dir.path().join("data/_catalog/catalog.json")).unwrap();
    assert!(!catalog.contains(&key) && catalog.contains("\"api_key_env\": \"PATH\""));
    let listed = format!("{:?}", rows(&engine, &s, "SELECT * FROM lakehouse.models").await);
    assert!(!listed.contains(&key));
    server.state.status.store(503, Ordering::SeqCst);
    let e = err(&engine, &s, "SELECT embed('oa', 'down now')").await;
    assert!(!e.to_string().contains(&key), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_index_embeds_rows_searches_text_and_survives_restart() {
    let server = FakeEmbedServer::start(16).await;
    let dir = tempfile::tempdir().unwrap();
    let words = ["apple pie recipe", "quantum physics lecture", "zebra migration", "jazz guitar chords", "mountain hiking trail", "tax return deadline"];
    {
        let engine = open(dir.path()).await;
        let s = engine.new_session("t", "lakehouse");
        rows(&engine, &s, &format!("CALL create_model('ol', provider => 'ollama', base_url => '{}', model => 'm', dims => 16)", server.url)).await;
        engine.execute_collect(&s, "CREATE TABLE docs (id INT, body TEXT)").await.unwrap();
        let values: Vec<String> = words.iter().enumerate().map(|(i, w)| format!("({i}, '{w}')")).collect();
        engine.execute_collect(&s, &format!("INSERT INTO docs VALUES {}, (99, NULL)", values.join(", "))).await.unwrap();

        // A failing provider leaves no index behind.
        server.state.status.store(500, Ordering::SeqCst);
        let e = err(&engine, &s, "CREATE INDEX docs_idx ON docs USING hnsw (body) WITH (model = 'ol')").await;
        assert_eq!(e.sqlstate(), "08006");
        assert!(rows(&engine, &s, "SELECT name FROM lakehouse.indexes").await.is_empty());
        assert!(!dir.path().join("data/indexes").exists() || std::fs::read_dir(dir.path().join("data/indexes")).unwrap().next().is_none());
        server.state.status.store(0, Ordering::SeqCst);

        engine.execute_collect(&s, "CREATE INDEX docs_idx ON docs USING hnsw (body) WITH (model = 'ol', m = 8)").await.unwrap();
        let ix = rows(&engine, &s, "SELECT name, \"column\", model, dims, metric, rows FROM lakehouse.indexes").await;
        assert_eq!(ix[0], vec!["docs_idx", "body", "ol", "16", "vector_cosine_ops", "7"]);
        let hit = rows(&engine, &s, "SELECT id, body FROM vector_search('docs_idx', 'jazz guitar chords', 1)").await;
        assert_eq!(hit[0], vec!["3", "jazz guitar chords"]);
        // INSERT embeds and indexes the new rows.
        engine.execute_collect(&s, "INSERT INTO docs VALUES (7, 'volcano eruption footage')").await.unwrap();
        let hit = rows(&engine, &s, "SELECT id FROM vector_search('docs_idx', 'volcano eruption footage', 1)").await;
        assert_eq!(hit[0][0], "7");
        // The model can't go while the index needs it; a vector opclass can't take a model.
        assert_eq!(err(&engine, &s, "CALL drop_model('ol')").await.sqlstate(), "2BP01");
        engine.execute_collect(&s, "CREATE TABLE v AS SELECT CAST('[1,2]' AS vector(2)) AS e").await.unwrap();
        assert_eq!(err(&engine, &s, "CREATE INDEX v_idx ON v USING hnsw (e) WITH (model = 'ol')").await.sqlstate(), "22023");
        assert_eq!(err(&engine, &s, "CREATE INDEX d2 ON docs USING hnsw (body) WITH (model = 'nope')").await.sqlstate(), "42704");
        // The default model when none is named.
        engine.execute_collect(&s, "CREATE INDEX docs_hash ON docs USING hnsw (body)").await.unwrap();
        assert!(s.take_notices().iter().any(|n| n.contains("default model hash")));
        let hit = rows(&engine, &s, "SELECT id FROM vector_search('docs_hash', 'zebra migrations', 1)").await;
        assert_eq!(hit[0][0], "2");
    }
    // Restart: the stored embeddings are loaded, not recomputed; only the query is embedded.
    let before = server.state.requests.load(Ordering::SeqCst);
    let engine = open(dir.path()).await;
    let s = engine.new_session("t", "lakehouse");
    assert_eq!(server.state.requests.load(Ordering::SeqCst), before);
    let hit = rows(&engine, &s, "SELECT id, _distance < 0.0001 FROM vector_search('docs_idx', 'mountain hiking trail', 1)").await;
    assert_eq!(hit[0], vec!["4", "true"]);
    assert_eq!(server.state.requests.load(Ordering::SeqCst), before + 1);
    // A provider failure during INSERT's index update is reported, and the index
    // is not half-updated: it still answers with what it had.
    server.state.status.store(500, Ordering::SeqCst);
    let e = err(&engine, &s, "INSERT INTO docs VALUES (8, 'brand new row')").await;
    assert_eq!(e.sqlstate(), "08006", "{e}");
    assert_eq!(rows(&engine, &s, "SELECT rows FROM lakehouse.indexes WHERE name = 'docs_idx'").await[0][0], "8");
    server.state.status.store(0, Ordering::SeqCst);
    // The next change catches up the rows it missed.
    engine.execute_collect(&s, "INSERT INTO docs VALUES (9, 'another row')").await.unwrap();
    assert_eq!(rows(&engine, &s, "SELECT rows FROM lakehouse.indexes WHERE name = 'docs_idx'").await[0][0], "10");
    let hit = rows(&engine, &s, "SELECT id FROM vector_search('docs_idx', 'brand new row', 1)").await;
    assert_eq!(hit[0][0], "8");
}

/// The tokenizer against Hugging Face `tokenizers` on a corpus: set
/// LAKEHOUSE_TOKENIZER_REFERENCE to a file of `text<TAB>id id id…` lines (made with
/// `Tokenizer.from_file(…).encode_batch`, truncation 256). Run by hand: the reference
/// needs Python's tokenizers.
#[test]
#[ignore]
fn tokenizer_matches_huggingface_on_a_corpus() {
    let Some(model_dir) = minilm_dir() else { return };
    let Ok(reference) = std::env::var("LAKEHOUSE_TOKENIZER_REFERENCE") else {
        eprintln!("SKIPPED: set LAKEHOUSE_TOKENIZER_REFERENCE");
        return;
    };
    let model = lakehouse::embedding::local::LocalModel::load(std::path::Path::new(&model_dir)).unwrap();
    let text = std::fs::read_to_string(reference).unwrap();
    let (mut n, mut bad) = (0, vec![]);
    for line in text.lines() {
        let (t, ids) = line.split_once('\t').unwrap();
        let want: Vec<u32> = ids.split(' ').map(|x| x.parse().unwrap()).collect();
        if model.tokenize(t) != want {
            bad.push(t.to_string());
        }
        n += 1;
    }
    println!("{n} texts, {} differ", bad.len());
    assert!(bad.is_empty(), "first differences: {:?}", &bad[..bad.len().min(5)]);
}

/// Over the wire: embed() with a bound text parameter (prepared, the index answers),
/// vectors come back as float4[], a model declared in lakehouse.toml, and a text
/// index build reports its embedding progress while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_wire_with_parameters_and_configured_models() {
    let fake = FakeEmbedServer::start(16).await;
    let url = fake.url.clone();
    let server = crate::support::TestServer::start_with(move |c| {
        c.models.push(lakehouse::catalog::models::ModelRecord {
            name: "conf".into(),
            provider: "ollama".into(),
            base_url: Some(url),
            model: Some("m".into()),
            ..Default::default()
        });
    })
    .await;
    let c = server.client().await;
    // Declared without dims: learned at start.
    let m = c.query_one("SELECT dims, source FROM lakehouse.models WHERE name = 'conf'", &[]).await.unwrap();
    assert_eq!((m.get::<_, i64>(0), m.get::<_, &str>(1)), (16, "lakehouse.toml"));
    let e = c.simple_query("CALL drop_model('conf')").await.unwrap_err();
    assert_eq!(crate::support::sqlstate(&e), "2BP01");
    let v: crate::support::Vector = c.query_one("SELECT embed('conf', 'abc')", &[]).await.unwrap().get(0);
    assert_eq!(v.0.len(), 16);

    c.batch_execute(
        "CREATE TABLE notes AS SELECT value AS id, 'note number ' || value AS body FROM generate_series(1, 3000);
         CREATE TABLE vnotes AS SELECT id, embed(body) AS emb FROM notes;
         CREATE INDEX vnotes_idx ON vnotes USING hnsw (emb vector_cosine_ops);",
    )
    .await
    .unwrap();
    let stmt = c.prepare("SELECT id FROM vnotes ORDER BY emb <=> embed($1) LIMIT 1").await.unwrap();
    let id: i64 = c.query_one(&stmt, &[&"note number 1234"]).await.unwrap().get(0);
    assert_eq!(id, 1234);
    let id: i64 = c.query_one(&stmt, &[&"note number 77"]).await.unwrap().get(0);
    assert_eq!(id, 77);
    let plan: Vec<String> = c
        .simple_query("EXPLAIN SELECT id FROM vnotes ORDER BY emb <=> embed('note') LIMIT 1")
        .await
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(1).unwrap_or("").to_string()),
            _ => None,
        })
        .collect();
    assert!(plan.iter().any(|p| p.contains("HnswScan")), "{plan:?}");

    // A text index over 3,000 rows: progress NOTICEs per 1,024 embedded rows.
    let (client, mut rx) = crate::support::client_with_notices(server.port).await;
    client.batch_execute("CREATE INDEX notes_idx ON notes USING hnsw (body) WITH (model = 'conf')").await.unwrap();
    let mut notices = vec![];
    while let Ok(n) = rx.try_recv() {
        notices.push(n);
    }
    assert!(notices.iter().any(|n| n.contains("embedded 2048 of 3000 rows with conf")), "{notices:?}");
    // The fake's letter-count vectors are crowded (many near-duplicates), a hard case
    // for an approximate graph: search wide, and check the hit is an exact match
    // (equal vectors may belong to other rows).
    client.batch_execute("SET hnsw.ef_search = 1000").await.unwrap();
    let hit = client.query_one("SELECT _distance FROM vector_search('notes_idx', 'note number 2999', 1)", &[]).await.unwrap();
    assert!(hit.get::<_, f64>(0) < 1e-6);
}
