//! A dedicated runtime for query execution. DataFusion's operators are CPU-bound and
//! do not always yield; run on the runtime that accepts connections and reads the
//! wire, a heavy query could keep it from accepting clients or from acting on a
//! CancelRequest. Result streams are therefore polled on this runtime and handed to
//! the connection through a small channel; dropping the receiving end (a cancel, a
//! client that disconnects) drops the query, which stops DataFusion's tasks.
//!
//! Whole statements (parse, plan, execute) run here too ([`Executor::spawn`]): the
//! threads have a stack sized for the expression depth the engine allows, and a
//! panic anywhere — in planning, in an operator, in a UDF at row N — becomes that
//! statement's error (XX000 with a reference in the log), never a stream that ends
//! early as if it were complete.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{FutureExt, StreamExt};
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
            .thread_stack_size(QUERY_STACK_BYTES)
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the query runtime: {e}")))?;
        let handle = runtime.handle().clone();
        Ok(Executor { runtime: Mutex::new(Some(runtime)), handle })
    }

    /// Run `work` on the query runtime. Dropping the returned future aborts it (a
    /// cancelled statement stops); a panic inside it is an [`Error::Internal`].
    pub fn spawn<F>(&self, work: F) -> impl Future<Output = Result<F::Output>> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = AbortOnDrop(self.handle.spawn(AssertUnwindSafe(work).catch_unwind()));
        async move {
            match task.await {
                Ok(Ok(out)) => Ok(out),
                Ok(Err(panic)) => Err(panicked(panic)),
                Err(e) => Err(Error::Internal(format!("statement task ended: {e}"))),
            }
        }
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
                    item = AssertUnwindSafe(stream.next()).catch_unwind() => match item {
                        Ok(item) => item,
                        Err(panic) => {
                            // The stream is not complete: say so, never just end it.
                            let _ = tx.send(Err(panicked(panic).into_datafusion())).await;
                            break;
                        }
                    },
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

/// Stack of each query thread: room for the deepest plan the depth limit admits
/// (`engine::limits`), with a wide margin; only touched pages cost memory.
pub const QUERY_STACK_BYTES: usize = 64 << 20;

/// A panic's payload as our error, logged once with a reference the client sees.
fn panicked(panic: Box<dyn std::any::Any + Send>) -> Error {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    Error::Internal(format!("a task of this statement panicked: {what}"))
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = std::result::Result<T, tokio::task::JoinError>;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// `stream`, cut off past `deadline` with the error `late()` (statement_timeout).
pub fn with_deadline<S, T, E>(stream: S, deadline: tokio::time::Instant, late: impl Fn() -> E + Send + Sync + 'static) -> impl futures::Stream<Item = std::result::Result<T, E>> + Send
where
    S: futures::Stream<Item = std::result::Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let sleep = Box::pin(tokio::time::sleep_until(deadline));
    let late = std::sync::Arc::new(late);
    futures::stream::unfold((Box::pin(stream), sleep, false), move |(mut stream, mut sleep, done)| {
        let late = late.clone();
        let item = async move {
            if done {
                return None;
            }
            tokio::select! {
                biased;
                item = stream.next() => item.map(|i| (i, (stream, sleep, false))),
                _ = &mut sleep => Some((Err(late()), (stream, sleep, true))),
            }
        };
        item
    })
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
