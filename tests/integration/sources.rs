//! MySQL/MariaDB and PostgreSQL sources against the real servers on this machine
//! (127.0.0.1:3306 root / 127.0.0.1:5432 trust): every common type after ATTACH and
//! after ingest, pushdown in EXPLAIN, a join across both sources and local Parquet, PII
//! flags, lineage, restarts, errors and their SQLSTATEs, and no password anywhere.
//! Each test works in a database (MySQL) or schema (Postgres) of its own.

use mysql_async::prelude::Queryable;

use crate::support::{engine_in, error_of, exec, fresh_name, mysql_admin, pg_admin, rows_of};

/// A MySQL database for one test, dropped when the test ends.
struct MyDb {
    name: String,
}

impl MyDb {
    async fn create(admin: &mut mysql_async::Conn, setup: &[&str]) -> MyDb {
        let name = fresh_name("lh");
        admin.query_drop(format!("CREATE DATABASE {name}")).await.unwrap();
        admin.query_drop(format!("USE {name}")).await.unwrap();
        for s in setup {
            admin.query_drop(*s).await.unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        admin.query_drop("USE test").await.unwrap();
        MyDb { name }
    }

    fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:3306/{}", self.name)
    }

    async fn drop(self, admin: &mut mysql_async::Conn) {
        let _ = admin.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name)).await;
    }
}

async fn pg_schema(client: &tokio_postgres::Client, setup: &[&str]) -> String {
    let name = fresh_name("lh");
    client.batch_execute(&format!("CREATE SCHEMA {name}")).await.unwrap();
    for s in setup {
        let sql = format!("SET search_path TO {name}; {s}");
        client.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    name
}

async fn drop_pg_schema(client: &tokio_postgres::Client, name: &str) {
    let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await;
}

const MYSQL_TYPES: &[&str] = &[
    "CREATE TABLE types (
        id INT PRIMARY KEY,
        t_tiny TINYINT, t_utiny TINYINT UNSIGNED, t_small SMALLINT, t_usmall SMALLINT UNSIGNED,
        t_medium MEDIUMINT, t_int INT, t_uint INT UNSIGNED, t_big BIGINT, t_ubig BIGINT UNSIGNED,
        t_dec DECIMAL(12,3), t_float FLOAT, t_double DOUBLE, t_bool BOOL,
        t_char CHAR(4), t_varchar VARCHAR(40), t_text TEXT, t_blob BLOB, t_varbinary VARBINARY(8),
        t_date DATE, t_time TIME, t_datetime DATETIME(6), t_timestamp TIMESTAMP(6) NULL,
        t_json JSON, t_uuid UUID, t_enum ENUM('small','large'))",
    "INSERT INTO types VALUES (1, -128, 255, -32768, 65535, -8388608, -2147483648, 4294967295,
        -9223372036854775808, 18446744073709551615, 123456789.125, 1.5, 2.25, TRUE,
        'abcd', 'héllo wörld', 'a longer text', X'00FF10', X'DEADBEEF',
        '2024-02-29', '23:59:58', '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.123456',
        '{\"a\": [1, 2]}', '123e4567-e89b-12d3-a456-426614174000', 'large')",
    "INSERT INTO types (id) VALUES (2)",
];

/// What both the attached table and the ingested copy must show, row by row.
fn mysql_expected() -> Vec<Vec<&'static str>> {
    vec![
        vec![
            "1", "-128", "255", "-32768", "65535", "-8388608", "-2147483648", "4294967295", "-9223372036854775808",
            "18446744073709551615", "123456789.125", "1.5", "2.25", "true", "abcd", "héllo wörld", "a longer text",
            "00ff10", "deadbeef", "2024-02-29", "23:59:58", "2024-02-29T12:34:56.789012", "2024-02-29T12:34:56.123456Z",
            "{\"a\": [1, 2]}", "123e4567-e89b-12d3-a456-426614174000", "large",
        ],
        {
            let mut v = vec!["2"];
            v.extend(std::iter::repeat_n("NULL", 25));
            v
        },
    ]
}

#[tokio::test]
async fn mysql_types_round_trip_through_attach_and_ingest() {
    let Some(mut admin) = mysql_admin().await else { return };
    let db = MyDb::create(&mut admin, MYSQL_TYPES).await;
    let dir = tempfile::tempdir().unwrap();
    let (engine, s) = engine_in(dir.path()).await;
    exec(&engine, &s, &format!("ATTACH '{}' AS shop (TYPE mysql)", db.url())).await;
    let live = rows_of(&engine, &s, "SELECT * FROM shop.types ORDER BY id").await;
    assert_eq!(live, mysql_expected(), "attached");
    let ingested = rows_of(&engine, &s, "CALL ingest('shop.types', 'types')").await;
    assert_eq!(ingested.len(), 26);
    let copy = rows_of(&engine, &s, "SELECT * FROM types ORDER BY id").await;
    assert_eq!(copy, mysql_expected(), "ingested");
    let types = rows_of(&engine, &s, "SELECT column_name, data_type, source_type FROM lakehouse.columns WHERE dataset = 'types' ORDER BY position").await;
    let get = |c: &str| types.iter().find(|r| r[0] == c).unwrap_or_else(|| panic!("{c}")).clone();
    assert_eq!(get("t_dec")[1], "numeric(12,3)");
    assert_eq!(get("t_bool")[1], "boolean");
    assert_eq!(get("t_bool")[2], "tinyint(1)");
    assert_eq!(get("t_ubig")[1], "numeric(20,0)");
    assert_eq!(get("t_double")[1], "double precision");
    db.drop(&mut admin).await;
}

async fn pg_types_setup(client: &tokio_postgres::Client) -> String {
    pg_schema(
        client,
        &["CREATE TYPE mood AS ENUM ('sad', 'happy');
          CREATE TABLE types (
            id int PRIMARY KEY, t_small smallint, t_int integer, t_big bigint,
            t_num numeric(14,4), t_real real, t_double double precision, t_bool boolean,
            t_char char(4), t_varchar varchar(40), t_text text, t_bytea bytea,
            t_date date, t_time time, t_ts timestamp(6), t_tstz timestamptz(6),
            t_json json, t_uuid uuid, t_mood mood, t_ints integer[], t_texts text[]);
          INSERT INTO types VALUES (1, -32768, -2147483648, -9223372036854775808,
            1234567890.1234, 1.5, 2.25, true, 'abcd', 'héllo wörld', 'a longer text', '\\x00ff10',
            '2024-02-29', '23:59:58', '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.123456+00',
            '{\"a\": [1, 2]}', '123e4567-e89b-12d3-a456-426614174000', 'happy', '{1,2,3}', '{x,y}');
          INSERT INTO types (id) VALUES (2);"],
    )
    .await
}

fn pg_expected() -> Vec<Vec<&'static str>> {
    vec![
        vec![
            "1", "-32768", "-2147483648", "-9223372036854775808", "1234567890.1234", "1.5", "2.25", "true", "abcd",
            "héllo wörld", "a longer text", "00ff10", "2024-02-29", "23:59:58", "2024-02-29T12:34:56.789012",
            "2024-02-29T12:34:56.123456Z", "{\"a\": [1, 2]}", "123e4567-e89b-12d3-a456-426614174000", "happy",
            "[1, 2, 3]", "[x, y]",
        ],
        {
            let mut v = vec!["2"];
            v.extend(std::iter::repeat_n("NULL", 20));
            v
        },
    ]
}

#[tokio::test]
async fn postgres_types_round_trip_through_attach_and_ingest() {
    let Some(client) = pg_admin().await else { return };
    let schema = pg_types_setup(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let (engine, s) = engine_in(dir.path()).await;
    rows_of(&engine, &s, &format!("CALL attach('crm', 'postgres://postgres@127.0.0.1:5432/test', schema => '{schema}')")).await;
    let types = rows_of(&engine, &s, "SELECT arrow_typeof(t_tstz), arrow_typeof(t_ts), arrow_typeof(t_num), arrow_typeof(t_bytea) FROM crm.types LIMIT 1").await;
    assert_eq!(types, vec![vec!["Timestamp(ns, \"UTC\")", "Timestamp(ns)", "Decimal128(14, 4)", "Binary"]]);
    let live = rows_of(&engine, &s, "SELECT * FROM crm.types ORDER BY id").await;
    assert_eq!(live, pg_expected(), "attached");
    rows_of(&engine, &s, "CALL ingest('crm.types', 'types')").await;
    let copy = rows_of(&engine, &s, "SELECT * FROM types ORDER BY id").await;
    assert_eq!(copy, pg_expected(), "ingested");
    let types = rows_of(&engine, &s, "SELECT column_name, data_type, source_type FROM lakehouse.columns WHERE dataset = 'types' ORDER BY position").await;
    let get = |c: &str| types.iter().find(|r| r[0] == c).unwrap_or_else(|| panic!("{c}")).clone();
    assert_eq!(get("t_num")[1], "numeric(14,4)");
    assert_eq!(get("t_ints")[1], "integer[]");
    assert_eq!(get("t_tstz")[1], "timestamptz");
    assert!(get("t_mood")[2].ends_with("mood"), "{:?}", get("t_mood"));
    drop_pg_schema(&client, &schema).await;
}

const SHOP: &[&str] = &[
    "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, amount DECIMAL(10,2) NOT NULL, status VARCHAR(10) NOT NULL)",
    "INSERT INTO orders VALUES (1, 1, 10.50, 'paid'), (2, 1, 20.00, 'paid'), (3, 2, 5.25, 'open'), (4, 3, 99.99, 'paid'), (5, 2, 1.00, 'paid')",
    "CREATE TABLE items (order_id INT NOT NULL, sku VARCHAR(10) NOT NULL)",
    "INSERT INTO items VALUES (1, 'a'), (1, 'b'), (2, 'a'), (4, 'c')",
];

#[tokio::test]
async fn pushdown_shows_the_sql_sent_and_joins_cross_sources() {
    let (Some(mut admin), Some(client)) = (mysql_admin().await, pg_admin().await) else { return };
    let db = MyDb::create(&mut admin, SHOP).await;
    let schema = pg_schema(
        &client,
        &["CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, region text NOT NULL);
           INSERT INTO customers VALUES (1, 'Ada', 'eu'), (2, 'Grace', 'us'), (3, 'Linus', 'eu');"],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (engine, s) = engine_in(dir.path()).await;
    exec(&engine, &s, &format!("ATTACH '{}' AS shop (TYPE mysql)", db.url())).await;
    rows_of(&engine, &s, &format!("CALL attach('crm', 'postgres://postgres@127.0.0.1:5432/test', schema => '{schema}')")).await;
    exec(&engine, &s, "CREATE TABLE targets (region VARCHAR, target DOUBLE)").await;
    exec(&engine, &s, "INSERT INTO targets VALUES ('eu', 100.0), ('us', 10.0)").await;

    // Filter, projection, aggregate and limit, and a join inside MySQL: one SQL query.
    let plan = rows_of(
        &engine,
        &s,
        "EXPLAIN SELECT o.customer_id, sum(o.amount) AS total, count(i.sku) AS n FROM shop.orders o JOIN shop.items i ON i.order_id = o.id \
         WHERE o.status = 'paid' GROUP BY o.customer_id ORDER BY total DESC LIMIT 2",
    )
    .await;
    let physical = plan.iter().find(|r| r[0] == "physical_plan").expect("physical plan")[1].clone();
    assert!(physical.contains("VirtualExecutionPlan"), "{physical}");
    let sql = physical.split("base_sql=").nth(1).unwrap_or_else(|| panic!("{physical}")).to_lowercase();
    for part in ["join", "where", "group by", "limit 2", "sum("] {
        assert!(sql.contains(part), "'{part}' not pushed down: {physical}");
    }
    assert!(!physical.contains("HashJoinExec") && !physical.contains("AggregateExec"), "{physical}");
    let top = rows_of(
        &engine,
        &s,
        "SELECT o.customer_id, sum(o.amount) AS total, count(i.sku) AS n FROM shop.orders o JOIN shop.items i ON i.order_id = o.id \
         WHERE o.status = 'paid' GROUP BY o.customer_id ORDER BY total DESC LIMIT 2",
    )
    .await;
    assert_eq!(top, vec![vec!["3", "99.99", "1"], vec!["1", "41.00", "3"]]);

    // Unaliased aggregates come back under DataFusion's names.
    let by_status = rows_of(&engine, &s, "SELECT status, count(*), sum(amount), max(id) FROM shop.orders GROUP BY status ORDER BY status").await;
    assert_eq!(by_status, vec![vec!["open", "1", "5.25", "3"], vec!["paid", "4", "131.49", "5"]]);
    // Operators that differ between engines run here, with DataFusion's meaning.
    let text = rows_of(&engine, &s, "SELECT status || '-' || id, id / 2 FROM shop.orders WHERE id = 5").await;
    assert_eq!(text, vec![vec!["paid-5", "2"]]);
    // A lakehouse function is not sent to the source: the scan below it is.
    let kinds = rows_of(&engine, &s, "SELECT pii_kind(status) AS k, count(*) FROM shop.orders GROUP BY 1").await;
    assert_eq!(kinds, vec![vec!["NULL", "5"]]);
    let plan = rows_of(&engine, &s, "EXPLAIN SELECT pii_kind(status) FROM shop.orders WHERE id > 2").await;
    let physical = plan.iter().find(|r| r[0] == "physical_plan").unwrap()[1].clone();
    assert!(physical.contains("pii_kind") && physical.contains("base_sql=SELECT") && !physical.contains("base_sql=SELECT pii_kind"), "{physical}");

    // Postgres gets its own SQL, too.
    let plan = rows_of(&engine, &s, "EXPLAIN SELECT name FROM crm.customers WHERE region = 'eu' ORDER BY name").await;
    let physical = plan.iter().find(|r| r[0] == "physical_plan").unwrap()[1].clone();
    assert!(physical.contains("VirtualExecutionPlan") && physical.to_lowercase().contains("where"), "{physical}");

    // MySQL × Postgres × local Parquet.
    let joined = rows_of(
        &engine,
        &s,
        "SELECT c.region, sum(o.amount) AS total, max(t.target) AS target FROM shop.orders o \
         JOIN crm.customers c ON c.id = o.customer_id JOIN targets t ON t.region = c.region \
         GROUP BY c.region ORDER BY c.region",
    )
    .await;
    assert_eq!(joined, vec![vec!["eu", "130.49", "100.0"], vec!["us", "6.25", "10.0"]]);
    db.drop(&mut admin).await;
    drop_pg_schema(&client, &schema).await;
}

#[tokio::test]
async fn ingest_flags_pii_records_lineage_and_appends() {
    let Some(mut admin) = mysql_admin().await else { return };
    let db = MyDb::create(
        &mut admin,
        &[
            "CREATE TABLE customers (id INT PRIMARY KEY, full_name VARCHAR(60), email VARCHAR(80), phone VARCHAR(30),
              notes TEXT, last_ip VARCHAR(40), card VARCHAR(25), tax_id CHAR(11), city VARCHAR(30))",
            "INSERT INTO customers VALUES
              (1, 'Ada Lovelace', 'ada@example.com', '+44 20 7946 0958', 'prefers email to ada@example.com', '192.168.1.20', '4111 1111 1111 1111', '123-45-6789', 'London'),
              (2, 'Grace Hopper', 'grace@navy.mil', '(555) 010-9999', 'call after 5pm', '10.0.0.7', '5500 0000 0000 0004', '219-09-9999', 'Arlington'),
              (3, 'Linus Torvalds', 'linus@example.org', '555-010-1234', 'no phone calls, email only', '2001:db8::1', '3400 0000 0000 009', '078-05-1120', 'Portland')",
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (engine, s) = engine_in(dir.path()).await;
    exec(&engine, &s, &format!("ATTACH '{}' AS shop (TYPE mysql)", db.url())).await;
    rows_of(&engine, &s, "CALL ingest('shop.customers', 'customers')").await;
    let pii = rows_of(&engine, &s, "SELECT column_name, pii_kind FROM lakehouse.columns WHERE dataset = 'customers' ORDER BY position").await;
    let expected = [
        ("id", "NULL"),
        ("full_name", "person_name"),
        ("email", "email"),
        ("phone", "phone"),
        ("notes", "NULL"),
        ("last_ip", "ip_address"),
        ("card", "credit_card"),
        ("tax_id", "ssn"),
        ("city", "NULL"),
    ];
    let got: Vec<(String, String)> = pii.into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    let want: Vec<(String, String)> = expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(got, want);

    let lineage = rows_of(
        &engine,
        &s,
        "SELECT source, source_system, source_location, source_table, source_rows, ingest_mode, ingests, source_query FROM lakehouse.datasets WHERE name = 'customers'",
    )
    .await;
    assert_eq!(&lineage[0][..7], &["ingest", "mysql", &format!("mysql://root@127.0.0.1:3306/{}", db.name), "shop.customers", "3", "create", "1"]);
    assert!(lineage[0][7].starts_with("SELECT id, full_name"), "{:?}", lineage[0]);

    // Create twice is refused; append adds rows; replace starts over.
    let (code, _) = error_of(&engine, &s, "CALL ingest('shop.customers', 'customers')").await;
    assert_eq!(code, "42P07");
    admin.query_drop(format!("INSERT INTO {}.customers (id, city) VALUES (4, 'Oslo')", db.name)).await.unwrap();
    rows_of(&engine, &s, "CALL ingest('shop.customers', 'customers', mode => 'append')").await;
    assert_eq!(rows_of(&engine, &s, "SELECT count(*) FROM customers").await, vec![vec!["7"]]);
    let l = rows_of(&engine, &s, "SELECT ingest_mode, source_rows, ingests FROM lakehouse.datasets WHERE name = 'customers'").await;
    assert_eq!(l, vec![vec!["append", "4", "2"]]);
    rows_of(&engine, &s, "CALL ingest('shop.customers', 'customers', mode => 'replace')").await;
    assert_eq!(rows_of(&engine, &s, "SELECT count(*) FROM customers").await, vec![vec!["4"]]);

    // The same through CREATE TABLE AS (no lineage: a query, not an ingest).
    exec(&engine, &s, "CREATE TABLE paid AS SELECT id, email FROM shop.customers WHERE id < 3").await;
    assert_eq!(rows_of(&engine, &s, "SELECT count(*) FROM paid").await, vec![vec!["2"]]);
    db.drop(&mut admin).await;
}

#[tokio::test]
async fn attachments_survive_a_restart_and_detach() {
    let Some(mut admin) = mysql_admin().await else { return };
    let db = MyDb::create(&mut admin, SHOP).await;
    let dir = tempfile::tempdir().unwrap();
    {
        let (engine, s) = engine_in(dir.path()).await;
        exec(&engine, &s, &format!("ATTACH '{}' AS shop (TYPE mysql, READ_ONLY)", db.url())).await;
        exec(
            &engine,
            &s,
            &format!("CREATE EXTERNAL TABLE paid_orders STORED AS MYSQL LOCATION '{}' OPTIONS ('table' 'orders')", db.url()),
        )
        .await;
        let (code, _) = error_of(&engine, &s, &format!("ATTACH '{}' AS shop (TYPE mysql)", db.url())).await;
        assert_eq!(code, "42710");
        let (code, _) = error_of(&engine, &s, &format!("ATTACH '{}' AS other (TYPE mysql, READ_ONLY false)", db.url())).await;
        assert_eq!(code, "0A000");
        let (code, _) = error_of(&engine, &s, &format!("ATTACH '{}' AS other (TYPE postgres)", db.url())).await;
        assert_eq!(code, "22023");
    }
    let (engine, s) = engine_in(dir.path()).await;
    assert_eq!(rows_of(&engine, &s, "SELECT count(*) FROM shop.orders").await, vec![vec!["5"]]);
    assert_eq!(rows_of(&engine, &s, "SELECT count(*) FROM paid_orders WHERE status = 'paid'").await, vec![vec!["4"]]);
    let att = rows_of(&engine, &s, "SELECT name, type, location, password, read_only FROM lakehouse.attachments").await;
    assert_eq!(att, vec![vec!["shop".to_string(), "mysql".into(), db.url(), "none".into(), "true".into()]]);
    exec(&engine, &s, "DETACH shop").await;
    let (code, _) = error_of(&engine, &s, "SELECT * FROM shop.orders").await;
    assert_eq!(code, "42P01");
    let (code, _) = error_of(&engine, &s, "DETACH shop").await;
    assert_eq!(code, "42704");
    exec(&engine, &s, "DETACH IF EXISTS shop").await;
    db.drop(&mut admin).await;
}

#[tokio::test]
async fn source_errors_have_sqlstates_and_never_show_a_password() {
    let Some(mut admin) = mysql_admin().await else { return };
    let db = MyDb::create(&mut admin, SHOP).await;
    let user = fresh_name("lhu");
    let secret = "Sup3r-s3cret-pw";
    admin.query_drop(format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{secret}'")).await.unwrap();
    admin.query_drop(format!("CREATE USER '{user}'@'localhost' IDENTIFIED BY '{secret}'")).await.unwrap();
    admin.query_drop(format!("GRANT SELECT ON {}.* TO '{user}'@'%'", db.name)).await.unwrap();
    admin.query_drop(format!("GRANT SELECT ON {}.* TO '{user}'@'localhost'", db.name)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let var = format!("LH_TEST_PW_{}", user.to_uppercase());
    let allowed = var.clone();
    let (engine, s) = crate::support::engine_with(dir.path(), move |c| c.secrets.env = vec![allowed]).await;
    let mut seen = String::new();

    // Unreachable host, wrong password, unknown database.
    let (code, msg) = error_of(&engine, &s, "ATTACH 'mysql://root:pw1@127.0.0.1:1/test' AS a (TYPE mysql)").await;
    assert_eq!(code, "08001", "{msg}");
    seen += &msg;
    let (code, msg) = error_of(&engine, &s, &format!("ATTACH 'mysql://{user}:wrong-{secret}@127.0.0.1:3306/{}' AS a", db.name)).await;
    assert_eq!(code, "28P01", "{msg}");
    seen += &msg;
    let (code, msg) = error_of(&engine, &s, "ATTACH 'mysql://root@127.0.0.1:3306/no_such_db_lh' AS a").await;
    assert_eq!(code, "42P01", "{msg}");
    seen += &msg;
    let (code, msg) = error_of(&engine, &s, "ATTACH 'postgres://postgres@127.0.0.1:5432/no_such_db_lh' AS a").await;
    assert_eq!(code, "42P01", "{msg}");
    seen += &msg;
    assert!(rows_of(&engine, &s, "SELECT name FROM lakehouse.attachments").await.is_empty());

    // The password in the URL goes to a server-only file, not the catalog.
    exec(&engine, &s, &format!("ATTACH 'mysql://{user}:{secret}@127.0.0.1:3306/{}' AS shop", db.name)).await;
    assert_eq!(rows_of(&engine, &s, "SELECT count(*) FROM shop.orders").await, vec![vec!["5"]]);
    // password_env: the variable's name is stored, its value read at connect.
    // SAFETY: set once, before any other thread of this test reads it; the name is unique.
    unsafe { std::env::set_var(&var, secret) };
    rows_of(&engine, &s, &format!("CALL attach('shop2', 'mysql://{user}@127.0.0.1:3306/{}', password_env => '{var}')", db.name)).await;
    assert_eq!(rows_of(&engine, &s, "SELECT count(*) FROM shop2.orders").await, vec![vec!["5"]]);
    exec(
        &engine,
        &s,
        &format!("CREATE EXTERNAL TABLE ext STORED AS MYSQL LOCATION 'mysql://{user}:{secret}@127.0.0.1:3306/{}' OPTIONS ('table' 'orders')", db.name),
    )
    .await;
    let (code, msg) = error_of(&engine, &s, "SELECT * FROM shop.no_such_table").await;
    assert_eq!(code, "42P01", "{msg}");
    seen += &msg;
    let (code, msg) = error_of(&engine, &s, "CALL ingest('shop.no_such_table', 'x')").await;
    assert_eq!(code, "42P01", "{msg}");
    seen += &msg;

    for sql in [
        "SELECT * FROM lakehouse.attachments",
        "SELECT * FROM lakehouse.datasets",
        "EXPLAIN SELECT * FROM shop.orders WHERE id = 1",
        "EXPLAIN SELECT * FROM ext WHERE id = 1",
    ] {
        for row in rows_of(&engine, &s, sql).await {
            seen += &row.join(" ");
        }
    }
    let shown = rows_of(&engine, &s, "SELECT password FROM lakehouse.attachments ORDER BY name").await;
    assert_eq!(shown, vec![vec!["stored (server-only file)".to_string()], vec![format!("env {var}")]]);
    let catalog = std::fs::read_to_string(dir.path().join("data/_catalog/catalog.json")).unwrap();
    assert!(!catalog.contains(secret), "password in catalog.json");
    assert!(!seen.contains(secret), "password shown: {seen}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in std::fs::read_dir(dir.path().join("data/_catalog/secrets")).unwrap() {
            let mode = f.unwrap().metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
    // DROP TABLE and DETACH remove the secrets they stored.
    let secrets = || std::fs::read_dir(dir.path().join("data/_catalog/secrets")).unwrap().count();
    assert_eq!(secrets(), 2);
    exec(&engine, &s, "DROP TABLE ext").await;
    assert_eq!(secrets(), 1);
    exec(&engine, &s, "DETACH shop").await;
    assert_eq!(secrets(), 0);
    // Healthy after all of that.
    assert_eq!(rows_of(&engine, &s, "SELECT 1").await, vec![vec!["1"]]);
    let _ = admin.query_drop(format!("DROP USER '{user}'@'%'")).await;
    let _ = admin.query_drop(format!("DROP USER '{user}'@'localhost'")).await;
    db.drop(&mut admin).await;
}

/// Kill the lakehouse connections running a query on `slow` in database `db`.
async fn kill_mysql(db: String) -> bool {
    let mut admin = mysql_admin().await.expect("MySQL was reachable a moment ago");
    let ids: Vec<u64> = admin
        .query(format!("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '{db}' AND INFO LIKE '%slow%'"))
        .await
        .unwrap();
    for id in &ids {
        let _ = admin.query_drop(format!("KILL {id}")).await;
    }
    !ids.is_empty()
}

/// Run `sql` in the background and `cut` the source's side until it reports it did;
/// the statement's error.
async fn cut_mid_way<F: std::future::Future<Output = bool>>(engine: &std::sync::Arc<lakehouse::Engine>, sql: &str, mut cut: impl FnMut() -> F) -> lakehouse::Error {
    let task = {
        let (engine, s, sql) = (engine.clone(), engine.new_session("tester", "lakehouse"), sql.to_string());
        tokio::spawn(async move { engine.execute_collect(&s, &sql).await.map(|_| ()) })
    };
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if task.is_finished() {
            break;
        }
        if cut().await {
            return task.await.unwrap().expect_err("a source connection cut mid-way fails the statement");
        }
    }
    panic!("{sql} never reached the source: {:?}", task.await.unwrap().map_err(|e| e.message()));
}

#[tokio::test]
async fn a_source_that_drops_mid_query_is_08006_and_the_server_stays_up() {
    let (Some(mut admin), Some(client)) = (mysql_admin().await, pg_admin().await) else { return };
    let db = MyDb::create(&mut admin, &["CREATE TABLE t (id INT)", "INSERT INTO t VALUES (1), (2)", "CREATE VIEW slow AS SELECT id, SLEEP(5) AS s FROM t"]).await;
    let schema = pg_schema(&client, &["CREATE VIEW slow AS SELECT 1 AS x FROM pg_sleep(5)"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (engine, s) = engine_in(dir.path()).await;
    exec(&engine, &s, &format!("ATTACH '{}' AS shop (TYPE mysql)", db.url())).await;
    rows_of(&engine, &s, &format!("CALL attach('crm', 'postgres://postgres@127.0.0.1:5432/test', schema => '{schema}')")).await;

    let err = cut_mid_way(&engine, "SELECT * FROM shop.slow", || kill_mysql(db.name.clone())).await;
    assert_eq!(err.sqlstate(), "08006", "{}", err.message());
    let terminate = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE '%slow%' AND pid <> pg_backend_pid()";
    let err = cut_mid_way(&engine, "SELECT * FROM crm.slow", || async { client.query_one(terminate, &[]).await.unwrap().get::<_, i64>(0) > 0 }).await;
    assert_eq!(err.sqlstate(), "08006", "{}", err.message());

    // An ingest cut the same way registers nothing and leaves no files.
    let err = cut_mid_way(&engine, "CALL ingest('shop.slow', 'slow_copy')", || kill_mysql(db.name.clone())).await;
    assert_eq!(err.sqlstate(), "08006", "{}", err.message());
    assert!(rows_of(&engine, &s, "SELECT name FROM lakehouse.datasets WHERE name = 'slow_copy'").await.is_empty());
    let leftovers: Vec<String> = std::fs::read_dir(dir.path().join("data/datasets"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(leftovers.iter().all(|n| !n.starts_with("slow_copy")), "{leftovers:?}");

    // The attachments still work (the pools reconnect) and so does everything else.
    assert_eq!(rows_of(&engine, &s, "SELECT count(*) FROM shop.t").await, vec![vec!["2"]]);
    assert_eq!(rows_of(&engine, &s, "SELECT 1").await, vec![vec!["1"]]);
    db.drop(&mut admin).await;
    drop_pg_schema(&client, &schema).await;
}

#[tokio::test]
async fn an_unmapped_type_names_its_column_or_reads_as_text_when_asked() {
    let Some(client) = pg_admin().await else { return };
    let schema = pg_schema(&client, &["CREATE TABLE docs (id int, body jsonb); INSERT INTO docs VALUES (1, '{\"k\": [1, 2]}'), (2, NULL);"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (engine, s) = engine_in(dir.path()).await;
    exec(&engine, &s, &format!("CALL attach('strict', 'postgres://postgres@127.0.0.1:5432/test', schema => '{schema}')")).await;
    let (code, msg) = error_of(&engine, &s, "SELECT * FROM strict.docs").await;
    assert_eq!(code, "0A000", "{msg}");
    assert!(msg.contains("body") && msg.contains("types => 'text'"), "{msg}");
    exec(&engine, &s, &format!("CALL attach('loose', 'postgres://postgres@127.0.0.1:5432/test', schema => '{schema}', types => 'text')")).await;
    let rows = rows_of(&engine, &s, "SELECT id, body FROM loose.docs ORDER BY id").await;
    assert_eq!(rows, vec![vec!["1", "{\"k\": [1, 2]}"], vec!["2", "NULL"]]);
    let shown = rows_of(&engine, &s, "SELECT name, types FROM lakehouse.attachments ORDER BY name").await;
    assert_eq!(shown, vec![vec!["loose", "text"], vec!["strict", "error"]]);
    drop_pg_schema(&client, &schema).await;
}

/// Literals and names that quoting gets wrong (MySQL reads backslashes as escapes,
/// sqlparser leaves a quote after a backslash undoubled, the MySQL executor strips
/// `"`): every query through an attachment must give exactly the rows the same query
/// gives on a local copy of the table — never an injection, never a wrong answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_literals_and_names_give_the_rows_of_a_local_copy() {
    let (Some(mut admin), Some(client)) = (mysql_admin().await, pg_admin().await) else { return };
    const VALUES: &[&str] = &[
        "back\\slash", "x\\'' OR 1=1 -- ", "'", "''", "\\", "\\\\", "a\"b", "a`b", "%", "_", "\\%", "it's",
        "\\'", "' OR '1'='1", "\"; DROP TABLE t; --", "héllo", "tab\there", "plain", "a''b", "\\' OR 1=1 OR '",
    ];
    let db = MyDb::create(
        &mut admin,
        &["CREATE TABLE t (id INT PRIMARY KEY, s TEXT, `we'ird` INT, `back``tick` INT)", "CREATE TABLE dq (`we\"ird` INT)"],
    )
    .await;
    for (i, v) in VALUES.iter().enumerate() {
        admin
            .exec_drop(format!("INSERT INTO {}.t VALUES (?, ?, ?, ?)", db.name), (i as i64, *v, i as i64 * 10, i as i64 * 100))
            .await
            .unwrap();
    }
    let schema = pg_schema(&client, &["CREATE TABLE t (id int PRIMARY KEY, s text, \"we\"\"ird\" int, \"back`tick\" int)"]).await;
    for (i, v) in VALUES.iter().enumerate() {
        client
            .execute(&format!("INSERT INTO {schema}.t VALUES ($1, $2, $3, $4)"), &[&(i as i32), v, &(i as i32 * 10), &(i as i32 * 100)])
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let (engine, s) = engine_in(dir.path()).await;
    exec(&engine, &s, &format!("ATTACH '{}' AS shop (TYPE mysql)", db.url())).await;
    rows_of(&engine, &s, &format!("CALL attach('crm', 'postgres://postgres@127.0.0.1:5432/test', schema => '{schema}')")).await;
    // MySQL names with a double quote: a clear refusal, never a renamed column.
    let (code, msg) = error_of(&engine, &s, "SELECT * FROM shop.dq").await;
    assert_eq!(code, "0A000", "{msg}");
    exec(&engine, &s, "CREATE TABLE shop_copy AS SELECT * FROM shop.t").await;
    exec(&engine, &s, "CREATE TABLE crm_copy AS SELECT * FROM crm.t").await;
    assert_eq!(rows_of(&engine, &s, "SELECT count(*) FROM shop_copy").await, vec![vec![VALUES.len().to_string()]]);
    let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let mut compared = 0;
    for (remote, local) in [("shop.t", "shop_copy"), ("crm.t", "crm_copy")] {
        for v in VALUES {
            let lit = quote(v);
            for filter in [format!("s = {lit}"), format!("s <> {lit}"), format!("s LIKE {lit}"), format!("s IN ({lit}, 'plain')"), format!("upper(s) = upper({lit})")] {
                let q = |t: &str| format!("SELECT id FROM {t} WHERE {filter} ORDER BY id");
                let want = rows_of(&engine, &s, &q(local)).await;
                let got = match engine.execute_collect(&s, &q(remote)).await {
                    Ok(_) => rows_of(&engine, &s, &q(remote)).await,
                    Err(e) => {
                        let plan = rows_of(&engine, &s, &format!("EXPLAIN {}", q(remote))).await;
                        panic!("{remote} WHERE {filter}: {e}; plan {plan:?}");
                    }
                };
                if got != want {
                    let plan = rows_of(&engine, &s, &format!("EXPLAIN {}", q(remote))).await;
                    panic!("{remote} WHERE {filter}: got {got:?}, want {want:?}; plan {plan:?}");
                }
                compared += 1;
            }
        }
        // Names with a quote or a backtick in them.
        let weird = if remote == "shop.t" { "\"we'ird\"" } else { "\"we\"\"ird\"" };
        let q = |t: &str| format!("SELECT id, {weird}, \"back`tick\" FROM {t} WHERE {weird} >= 50 ORDER BY id");
        assert_eq!(rows_of(&engine, &s, &q(remote)).await, rows_of(&engine, &s, &q(local)).await, "{remote}: quoted names");
        let q = |t: &str| format!("SELECT id AS \"it's\", \"back`tick\" AS \"a\"\"b\", s AS \"x\\y\" FROM {t} WHERE id < 3 ORDER BY id");
        assert_eq!(rows_of(&engine, &s, &q(remote)).await, rows_of(&engine, &s, &q(local)).await, "{remote}: hostile aliases");
        // A filtered aggregate, pushed down whole.
        let q = |t: &str| format!("SELECT count(*) AS \"it's\", max(\"back`tick\") AS \"a\"\"b\" FROM {t} WHERE s <> 'zzz' AND s <> 'it''s'");
        assert_eq!(rows_of(&engine, &s, &q(remote)).await, rows_of(&engine, &s, &q(local)).await, "{remote}: filtered aggregate");
    }
    assert_eq!(compared, 2 * VALUES.len() * 5);
    // The tables are intact (no literal ran as SQL).
    assert_eq!(rows_of(&engine, &s, "SELECT count(*) FROM shop.t").await, vec![vec![VALUES.len().to_string()]]);
    assert_eq!(rows_of(&engine, &s, "SELECT count(*) FROM crm.t").await, vec![vec![VALUES.len().to_string()]]);
    db.drop(&mut admin).await;
    drop_pg_schema(&client, &schema).await;
}

/// An attachment is a schema with an owner: other roles read its tables (and ingest
/// from it) only with USAGE on it, which information_schema.usage_privileges shows.
#[tokio::test]
async fn an_attachment_needs_usage_to_read() {
    let Some(client) = pg_admin().await else { return };
    let schema = pg_schema(&client, &["CREATE TABLE t (id INT)", "INSERT INTO t VALUES (1), (2)"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = crate::support::engine_with(dir.path(), |c| {
        let user = |n: &str| lakehouse::config::UserConfig { name: n.into(), password: Some("pw".into()), password_env: None, superuser: None };
        c.auth.users = vec![user("root"), user("alice"), user("bob")];
    })
    .await;
    let (alice, bob) = (engine.new_session("alice", "lakehouse"), engine.new_session("bob", "lakehouse"));
    exec(&engine, &alice, &format!("CALL attach('crm', 'postgres://postgres@127.0.0.1:5432/test', schema => '{schema}')")).await;
    assert_eq!(rows_of(&engine, &alice, "SELECT count(*) FROM crm.t").await, vec![vec!["2"]]);
    for sql in ["SELECT count(*) FROM crm.t", "CALL ingest('crm.t', 'copy_t')", "CALL detach('crm')"] {
        assert_eq!(error_of(&engine, &bob, sql).await.0, "42501", "{sql}");
    }
    exec(&engine, &alice, "GRANT USAGE ON SCHEMA crm TO bob").await;
    assert_eq!(rows_of(&engine, &bob, "SELECT count(*) FROM crm.t").await, vec![vec!["2"]]);
    exec(&engine, &bob, "CALL ingest('crm.t', 'copy_t')").await;
    let usage = rows_of(&engine, &bob, "SELECT grantor, grantee, object_name, object_type, privilege_type FROM information_schema.usage_privileges WHERE grantee = 'bob'").await;
    assert_eq!(usage, vec![vec!["alice", "bob", "crm", "FOREIGN SERVER", "USAGE"]]);
    assert_eq!(error_of(&engine, &bob, "GRANT SELECT ON SCHEMA crm TO bob").await.0, "0LP01");
    exec(&engine, &alice, "REVOKE ALL ON SCHEMA crm FROM bob").await;
    assert_eq!(error_of(&engine, &bob, "SELECT count(*) FROM crm.t").await.0, "42501");
    // bob owns what he ingested.
    assert_eq!(rows_of(&engine, &bob, "SELECT count(*) FROM copy_t").await, vec![vec!["2"]]);
    assert_eq!(error_of(&engine, &alice, "DROP TABLE copy_t").await.0, "42501");
    exec(&engine, &alice, "CALL detach('crm')").await;
    drop_pg_schema(&client, &schema).await;
}
