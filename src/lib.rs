//! lakehouse: a SQL-first vector search engine on Apache DataFusion, served over the
//! PostgreSQL wire protocol.
//!
//! # Layout
//!
//! ```text
//! main.rs            thin CLI: `lakehouse serve`, `lakehouse sql`, `lakehouse bench`
//! cli.rs             the embedded SQL runner and psql-style table printing
//! config.rs          lakehouse.toml + LAKEHOUSE_* env overrides
//! error.rs           one Error enum; every variant knows its SQLSTATE
//! pg_types.rs        the PostgreSQL type of an Arrow field (wire and catalog agree)
//! engine.rs          Engine::execute(sql): the single entry point for server and CLI
//! session.rs         per-connection state: DataFusion context, SET variables, NOTICEs
//! backends.rs        the live sessions as pg_stat_activity shows them; cancel/terminate
//! executor.rs        the query runtime, apart from the one serving connections; statements
//!                    run there (big stacks, a panic is the statement's error)
//! panics.rs          the panic hook: counted, rate-limited reports
//! udf/               scalar and table functions (vectors, distances, embed, pii_kind, …)
//! table_providers/   system tables in schema `lakehouse`, HNSW scans, MySQL/Postgres (remote.rs)
//! catalog/           persistent state (buckets, datasets, indexes, models, tuning,
//!                    attachments) and procedures (CALL …)
//! server/            pgwire front end: frames.rs (our bounds-checked decoders), connection
//!                    loop, auth + login throttling, TLS, handlers, encoding
//! ```
//!
//! Data flows one way: client → server (pgwire) → [`engine::Engine::execute`] → a
//! procedure or DDL handler in [`catalog`], or a DataFusion plan with our functions
//! and providers → Arrow batches → pgwire encoding. `lakehouse sql` calls the same
//! `Engine::execute`, so everything works with or without a server.

// The engine's statement future nests DataFusion's, the providers' and the
// procedures' async blocks deeper than rustc's default layout depth of 128.
#![recursion_limit = "256"]

pub mod backends;
pub mod bench;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod embedding;
pub mod engine;
pub mod error;
pub mod executor;
pub mod panics;
pub mod pg_types;
pub mod server;
pub mod session;
pub mod table_providers;
pub mod tuning;
pub mod udf;

pub use config::Config;
pub use engine::{Engine, QueryResult};
pub use error::{Error, Result};
