//! A small real HTTP server speaking Ollama's `/api/embed` and OpenAI's
//! `/v1/embeddings`, with failures, delays and dimension changes on demand: the
//! embedding providers are tested against it (Ollama and OpenAI cannot run here).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
pub struct FakeState {
    /// Embedding requests answered (any status).
    pub requests: AtomicUsize,
    /// Texts per request, in arrival order.
    pub batches: Mutex<Vec<usize>>,
    /// Answer the next n requests with 503.
    pub fail_next: AtomicUsize,
    /// When non-zero, answer every request with this status.
    pub status: AtomicU16,
    pub delay_ms: AtomicU64,
    pub dims: AtomicUsize,
    /// Requests must carry `Authorization: Bearer <key>`.
    pub key: Mutex<Option<String>>,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

pub struct FakeEmbedServer {
    pub url: String,
    pub state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeEmbedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The fake's embedding of a text: letter counts folded into `dims` slots, so equal
/// texts are identical and similar spellings are close.
pub fn fake_vector(text: &str, dims: usize) -> Vec<f32> {
    let mut v = vec![0.01f32; dims];
    for (i, c) in text.to_lowercase().chars().enumerate() {
        v[(c as usize + i % 3) % dims] += 1.0;
    }
    v
}

impl FakeEmbedServer {
    pub async fn start(dims: usize) -> FakeEmbedServer {
        Self::start_on("127.0.0.1:0".parse().unwrap(), dims).await
    }

    pub async fn start_on(addr: SocketAddr, dims: usize) -> FakeEmbedServer {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(FakeState::default());
        state.dims.store(dims, Ordering::SeqCst);
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else { return };
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, st).await;
                });
            }
        });
        FakeEmbedServer { url: format!("http://{addr}"), state, task }
    }
}

async fn serve(mut sock: TcpStream, st: Arc<FakeState>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        // Headers.
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let len = head
            .lines()
            .find_map(|l| l.to_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let auth = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("authorization").then(|| v.trim().to_string())
        });
        let (status, reply) = answer(&st, &path, auth.as_deref(), &body).await;
        let text = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{reply}",
            reply.len()
        );
        sock.write_all(text.as_bytes()).await?;
    }
}

async fn answer(st: &FakeState, path: &str, auth: Option<&str>, body: &[u8]) -> (u16, String) {
    let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let delay = st.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    st.in_flight.fetch_sub(1, Ordering::SeqCst);
    st.requests.fetch_add(1, Ordering::SeqCst);
    let req: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return (400, format!("{{\"error\":\"bad json: {e}\"}}")),
    };
    let texts: Vec<String> = req["input"].as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(String::from)).collect()).unwrap_or_default();
    st.batches.lock().unwrap().push(texts.len());
    if let Some(key) = st.key.lock().unwrap().clone() {
        if auth != Some(format!("Bearer {key}").as_str()) {
            return (401, "{\"error\":{\"message\":\"Incorrect API key provided\"}}".into());
        }
    }
    let forced = st.status.load(Ordering::SeqCst);
    if forced != 0 {
        return (forced, "{\"error\":\"forced failure\"}".into());
    }
    if st.fail_next.load(Ordering::SeqCst) > 0 {
        st.fail_next.fetch_sub(1, Ordering::SeqCst);
        return (503, "{\"error\":\"model is loading\"}".into());
    }
    if req["model"].as_str().is_none_or(str::is_empty) {
        return (400, "{\"error\":\"model is required\"}".into());
    }
    let dims = st.dims.load(Ordering::SeqCst);
    let vectors: Vec<Vec<f32>> = texts.iter().map(|t| fake_vector(t, dims)).collect();
    match path {
        "/api/embed" => (200, serde_json::json!({ "model": req["model"], "embeddings": vectors }).to_string()),
        "/v1/embeddings" => {
            // Out of order on purpose: clients must use "index".
            let mut data: Vec<serde_json::Value> = vectors
                .iter()
                .enumerate()
                .map(|(i, v)| serde_json::json!({ "object": "embedding", "index": i, "embedding": v }))
                .collect();
            data.reverse();
            (200, serde_json::json!({ "object": "list", "data": data, "model": req["model"] }).to_string())
        }
        _ => (404, "{\"error\":\"not found\"}".into()),
    }
}
