//! One client connection: SSL negotiation, a guard on frame sizes, and the message
//! loop. This replaces pgwire's `process_socket` for three reasons (DESIGN.md):
//! plaintext pipelined after an SSLRequest must be refused (08P01) rather than acted on
//! after the handshake; a message larger than `max_message_bytes` must be refused from
//! its header, before it is buffered; and a panic while decoding or handling one
//! client's message must end that connection only, with a FATAL error sent to it.

use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use futures::{FutureExt, SinkExt, StreamExt};
use pgwire::api::{ClientInfo, DefaultClient, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError, SEVERITY_FATAL};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{MaybeTls, PgWireMessageServerCodec, process_error, process_message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

use super::Handlers;
use crate::engine::Prepared;

const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;
/// PostgreSQL's own limit on a start-up packet.
const MAX_STARTUP_BYTES: u32 = 10_000;
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn handle(socket: TcpStream, addr: SocketAddr, h: Arc<Handlers>) -> io::Result<()> {
    socket.set_nodelay(true)?;
    let negotiated = tokio::time::timeout(STARTUP_TIMEOUT, negotiate(socket, &h)).await;
    let Ok(negotiated) = negotiated else { return Ok(()) };
    let Some((io, first, is_tls)) = negotiated? else { return Ok(()) };

    let startup_len = u32::from_be_bytes([first[0], first[1], first[2], first[3]]);
    let violation = Arc::new(AtomicBool::new(false));
    let guarded = GuardedIo {
        inner: io,
        max: h.max_message_bytes,
        // The first 8 bytes of the start-up packet were read already.
        remaining: (startup_len as usize).saturating_sub(8),
        header: [0; 5],
        header_len: 0,
        violation: violation.clone(),
    };
    let codec = PgWireMessageServerCodec::<Prepared>::new(DefaultClient::new(addr, is_tls));
    let mut parts = FramedParts::new(guarded, codec);
    parts.read_buf = BytesMut::from(&first[..]);
    let mut socket = Framed::from_parts(parts);
    socket.set_state(PgWireConnectionState::AwaitingStartup);

    let deadline = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup | PgWireConnectionState::AuthenticationInProgress
        );
        let next = AssertUnwindSafe(socket.next()).catch_unwind();
        let msg = if starting {
            tokio::select! {
                _ = &mut deadline => return Ok(()),
                m = next => m,
            }
        } else {
            next.await
        };
        let msg = match msg {
            Ok(Some(Ok(msg))) => msg,
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => {
                let (code, text) = if violation.load(Ordering::Relaxed) {
                    ("54000", format!("message exceeds the server's limit of {} bytes ([server] max_message_bytes)", h.max_message_bytes))
                } else {
                    ("08P01", format!("invalid message: {e}"))
                };
                let _ = fatal(&mut socket, code, &text).await;
                return Ok(());
            }
            Err(_panic) => {
                tracing::warn!("malformed message from {addr} (decoder panicked); closing");
                let _ = fatal(&mut socket, "08P01", "invalid message: malformed frame").await;
                return Ok(());
            }
        };
        if matches!(msg, PgWireFrontendMessage::Terminate(_)) {
            return Ok(());
        }
        let is_extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(e) => e,
            _ => msg.is_extended_query(),
        };
        let is_cancel = matches!(msg, PgWireFrontendMessage::CancelRequest(_));
        let outcome = AssertUnwindSafe(process_message(
            msg,
            &mut socket,
            h.startup.clone(),
            h.query.clone(),
            h.query.clone(),
            h.copy.clone(),
            h.cancel.clone(),
        ))
        .catch_unwind()
        .await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let is_fatal = e.is_fatal();
                process_error(&mut socket, e, is_extended).await?;
                if is_fatal {
                    return Ok(());
                }
            }
            Err(_panic) => {
                tracing::error!("panic while handling a message from {addr}; closing that connection");
                let _ = fatal(&mut socket, "XX000", "internal error; the connection was closed (see the server log)").await;
                return Ok(());
            }
        }
        if is_cancel {
            return Ok(());
        }
    }
}

async fn fatal<S>(socket: &mut Framed<S, PgWireMessageServerCodec<Prepared>>, code: &str, message: &str) -> Result<(), PgWireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let info = ErrorInfo::new(SEVERITY_FATAL.to_owned(), code.to_owned(), message.to_owned());
    socket.send(PgWireBackendMessage::ErrorResponse(info.into())).await?;
    socket.close().await?;
    Ok(())
}

/// Read the 8-byte start of the first packet, answering SSLRequest / GSSENCRequest.
/// Returns the stream (TLS or plain), those 8 bytes of the start-up or cancel packet,
/// and whether TLS is on.
async fn negotiate(mut tcp: TcpStream, h: &Handlers) -> io::Result<Option<(MaybeTls, [u8; 8], bool)>> {
    loop {
        let mut first = [0u8; 8];
        if tcp.read_exact(&mut first).await.is_err() {
            return Ok(None);
        }
        let len = u32::from_be_bytes([first[0], first[1], first[2], first[3]]);
        let code = u32::from_be_bytes([first[4], first[5], first[6], first[7]]);
        if len == 8 && code == GSSENC_REQUEST {
            tcp.write_all(b"N").await?;
            continue;
        }
        if len == 8 && code == SSL_REQUEST {
            let Some(acceptor) = &h.tls else {
                tcp.write_all(b"N").await?;
                continue;
            };
            if has_pending_bytes(&tcp).await {
                // Bytes sent after SSLRequest but before the handshake were not
                // encrypted; acting on them would let a man in the middle inject
                // commands (CVE-2021-23214). PostgreSQL refuses the same way.
                let mut frame = BytesMut::new();
                let info = ErrorInfo::new(SEVERITY_FATAL.into(), "08P01".into(), "received unencrypted data after SSL request".into());
                let _ = PgWireBackendMessage::ErrorResponse(info.into()).encode(&mut frame);
                let _ = tcp.write_all(&frame).await;
                return Ok(None);
            }
            tcp.write_all(b"S").await?;
            let mut tls = acceptor.accept(tcp).await?;
            let mut first = [0u8; 8];
            if tls.read_exact(&mut first).await.is_err() {
                return Ok(None);
            }
            if !startup_len_ok(&first) {
                return Ok(None);
            }
            return Ok(Some((MaybeTls::Tls(Box::new(tls)), first, true)));
        }
        if !startup_len_ok(&first) {
            let mut frame = BytesMut::new();
            let info = ErrorInfo::new(SEVERITY_FATAL.into(), "08P01".into(), "invalid length of startup packet".into());
            let _ = PgWireBackendMessage::ErrorResponse(info.into()).encode(&mut frame);
            let _ = tcp.write_all(&frame).await;
            return Ok(None);
        }
        return Ok(Some((MaybeTls::Plain(tcp), first, false)));
    }
}

fn startup_len_ok(first: &[u8; 8]) -> bool {
    let len = u32::from_be_bytes([first[0], first[1], first[2], first[3]]);
    (8..=MAX_STARTUP_BYTES).contains(&len)
}

/// Are bytes already waiting on the socket (without waiting for more)?
async fn has_pending_bytes(tcp: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    futures::future::poll_fn(|cx| {
        let mut rb = ReadBuf::new(&mut buf);
        match tcp.poll_peek(cx, &mut rb) {
            Poll::Ready(Ok(n)) => Poll::Ready(n > 0),
            Poll::Ready(Err(_)) => Poll::Ready(false),
            Poll::Pending => Poll::Ready(false),
        }
    })
    .await
}

/// Passes bytes through while following the frame structure (tag byte + length), so
/// an oversized or impossible length is refused as soon as its header arrives.
struct GuardedIo {
    inner: MaybeTls,
    max: usize,
    /// Bytes left in the frame being read.
    remaining: usize,
    header: [u8; 5],
    header_len: usize,
    violation: Arc<AtomicBool>,
}

impl GuardedIo {
    fn inspect(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let need = 5 - self.header_len;
            let n = need.min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == 5 {
                self.header_len = 0;
                let len = u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]) as usize;
                if len < 4 {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("message length {len} is invalid")));
                }
                if len > self.max {
                    self.violation.store(true, Ordering::Relaxed);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("message of {len} bytes exceeds the limit")));
                }
                self.remaining = len - 4;
            }
        }
        Ok(())
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let fresh = buf.filled()[before..].to_vec();
                Poll::Ready(this.inspect(&fresh))
            }
            other => other,
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max: usize) -> GuardedIo {
        let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        client.set_nonblocking(true).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let stream = rt.block_on(async { TcpStream::from_std(client).unwrap() });
        std::mem::forget(rt);
        GuardedIo { inner: MaybeTls::Plain(stream), max, remaining: 0, header: [0; 5], header_len: 0, violation: Arc::new(AtomicBool::new(false)) }
    }

    #[test]
    fn frames_split_anywhere_are_followed() {
        let mut g = guard(1024);
        let mut stream = vec![];
        for body in [&b"select 1\0"[..], &b"x"[..], &[0u8; 300][..]] {
            stream.push(b'Q');
            stream.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
            stream.extend_from_slice(body);
        }
        for chunk in stream.chunks(3) {
            g.inspect(chunk).unwrap();
        }
        assert_eq!(g.remaining, 0);
        assert_eq!(g.header_len, 0);
    }

    #[test]
    fn oversized_and_impossible_lengths_are_refused_from_the_header() {
        let mut g = guard(1024);
        let mut header = vec![b'Q'];
        header.extend_from_slice(&(1u32 << 30).to_be_bytes());
        assert!(g.inspect(&header).is_err());
        assert!(g.violation.load(Ordering::Relaxed));
        let mut g = guard(1024);
        assert!(g.inspect(&[b'Q', 0, 0, 0, 2]).is_err());
        assert!(!g.violation.load(Ordering::Relaxed));
    }
}
