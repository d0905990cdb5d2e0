//! A dedicated runtime for query execution. DataFusion's operators are CPU-bound and
//! do not always yield; run on the runtime that accepts connections and reads the
//! wire, a heavy query could keep it from accepting clients or from acting on a
//! CancelRequest. Result streams are therefore polled on this runtime and handed to
//! the connection through a small channel; dropping the receiving end (a cancel, a
//! client that disconnects) drops the query, which stops DataFusion's tasks.

use std::sync::Mutex;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use tokio::runtime::{Handle, Runtime};

use crate::error::{Error, Result};

pub struct Executor {
    runtime: Mutex<Option<Runtime>>,
    handle: Handle,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Executor")
    }
}

impl Executor {
    pub fn new() -> Result<Executor> {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("lakehouse-query")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the query runtime: {e}")))?;
        let handle = runtime.handle().clone();
        Ok(Executor { runtime: Mutex::new(Some(runtime)), handle })
    }

    /// Poll `stream` on the query runtime; the returned stream yields its batches.
    pub fn run_stream(&self, schema: SchemaRef, mut stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        self.handle.spawn(async move {
            loop {
                // Watch the receiver while the query works towards its next batch: a
                // cancelled or disconnected client stops the query at once, not at
                // the end of an hour-long aggregate.
                let item = tokio::select! {
                    _ = tx.closed() => break,
                    item = stream.next() => item,
                };
                match item {
                    Some(item) => {
                        if tx.send(item).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                }
            }
            // Dropping `stream` here stops DataFusion's tasks for this query.
        });
        let rx = tokio_stream_from(rx);
        Box::pin(RecordBatchStreamAdapter::new(schema, rx))
    }
}

fn tokio_stream_from<T: Send + 'static>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Dropping a runtime from async code panics; let its threads wind down alone.
        if let Some(rt) = self.runtime.lock().unwrap_or_else(|p| p.into_inner()).take() {
            rt.shutdown_background();
        }
    }
}
