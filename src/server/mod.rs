//! The PostgreSQL wire-protocol front end, on pgwire directly (not datafusion-postgres,
//! see DESIGN.md). [`serve`] takes a bound listener and a shutdown future, so tests
//! bind `127.0.0.1:0`; each connection runs in its own task, and a panic there ends
//! that connection only.

pub mod auth;
pub mod copy;
mod connection;
pub mod encode;
mod frames;
pub mod handler;
mod numeric;
mod throttle;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pgwire::api::ConnectionManager;
use pgwire::api::cancel::DefaultCancelHandler;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::engine::Engine;
use crate::error::Result;

/// Everything a connection task needs, shared.
pub struct Handlers {
    pub engine: Arc<Engine>,
    pub startup: Arc<auth::LakehouseStartup>,
    pub query: Arc<handler::LakehouseHandler>,
    pub cancel: Arc<DefaultCancelHandler>,
    pub copy: Arc<copy::LakehouseCopyHandler>,
    pub tls: Option<pgwire::tokio::TlsAcceptor>,
    pub max_message_bytes: usize,
    pub max_connections: usize,
    pub throttle: throttle::Throttle,
}

impl Handlers {
    pub fn new(engine: Arc<Engine>) -> Result<Handlers> {
        let config = engine.config().clone();
        let manager = Arc::new(ConnectionManager::new());
        Ok(Handlers {
            startup: Arc::new(auth::LakehouseStartup::new(&config, manager.clone())?),
            query: Arc::new(handler::LakehouseHandler::new(engine.clone())),
            cancel: Arc::new(DefaultCancelHandler::new(manager)),
            copy: Arc::new(copy::LakehouseCopyHandler),
            tls: tls::acceptor(&config)?,
            max_message_bytes: config.server.max_message_bytes,
            max_connections: config.server.max_connections,
            throttle: throttle::Throttle::default(),
            engine,
        })
    }
}

/// Serve connections from `listener` until `shutdown` resolves; then stop accepting,
/// give open connections a few seconds to finish, and close the rest.
pub async fn serve(engine: Arc<Engine>, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<()> {
    let handlers = Arc::new(Handlers::new(engine)?);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, addr)) => {
                    if tasks.len() >= handlers.max_connections {
                        // Answered in a task of its own: a flood of refusals must not
                        // hold up the accept loop.
                        let max = handlers.max_connections;
                        tokio::spawn(connection::too_many(socket, max));
                        continue;
                    }
                    let h = handlers.clone();
                    tasks.spawn(async move {
                        if let Err(e) = connection::handle(socket, addr, h).await {
                            tracing::debug!("connection from {addr} ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and similar: back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!("a connection task panicked; that connection was closed");
                    }
                }
            }
        }
    }
    drop(listener);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain).await.is_err() {
        tasks.abort_all();
    }
    handlers.engine.shutdown();
    Ok(())
}
