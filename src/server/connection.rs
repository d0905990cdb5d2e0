//! One client connection: SSL negotiation, framing and decoding of every message by
//! our own bounds-checked decoders (server/frames.rs), and the message loop. This
//! replaces pgwire's `process_socket` (DESIGN.md):
//!
//! - plaintext pipelined after an SSLRequest is refused (08P01) rather than acted on
//!   after the handshake, and only one SSLRequest / GSSENCRequest is answered;
//! - a message larger than `max_message_bytes` is refused from its header (54000);
//! - a malformed message body is an ERROR (08P01) and the session goes on, as in
//!   PostgreSQL; only a stream that cannot be framed any more ends the connection;
//! - during authentication only password messages are accepted (anything else is
//!   FATAL at once, not a hang);
//! - a client that disconnects while its statement runs stops the statement;
//! - a panic while handling one client's message ends that connection only.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use futures::{FutureExt, SinkExt};
use pgwire::api::{ClientInfo, ConnectionHandle, DefaultClient, METADATA_USER, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError, SEVERITY_FATAL};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{MaybeTls, PgWireMessageServerCodec, process_error, process_message};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::Handlers;
use super::handler::user_error;
use super::frames::{self, FrameReader, Incoming};
use crate::engine::Prepared;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// pg_terminate_backend's request to close this connection.
#[derive(Default)]
pub struct Terminator {
    requested: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Terminator {
    fn requested(&self) -> bool {
        self.requested.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// How pg_cancel_backend and pg_terminate_backend reach a client connection.
pub struct ServerControl {
    cancel: Option<Arc<ConnectionHandle>>,
    terminate: Arc<Terminator>,
}

impl ServerControl {
    /// The connection's, from its extensions (None before the connection loop set them).
    pub fn of(extensions: &pgwire::api::SessionExtensions) -> Option<ServerControl> {
        let terminate = extensions.get::<Terminator>()?;
        Some(ServerControl { cancel: extensions.get::<Arc<ConnectionHandle>>().map(|h| (*h).clone()), terminate })
    }
}

impl crate::backends::BackendControl for ServerControl {
    fn cancel(&self) {
        if let Some(h) = self.cancel.clone() {
            tokio::spawn(async move {
                h.cancel().await;
            });
        }
    }

    fn terminate(&self) {
        self.terminate.requested.store(true, std::sync::atomic::Ordering::SeqCst);
        self.terminate.notify.notify_one();
        self.cancel();
    }
}

type Socket = Framed<MaybeTls, PgWireMessageServerCodec<Prepared>>;

pub async fn handle(socket: TcpStream, addr: SocketAddr, h: Arc<Handlers>) -> io::Result<()> {
    socket.set_nodelay(true)?;
    // A second handle on the same socket, only to notice a client that hangs up while
    // its statement runs (the main handle is busy inside the handler then).
    let watch = socket.as_fd().try_clone_to_owned().ok().and_then(|fd| {
        let std = std::net::TcpStream::from(fd);
        std.set_nonblocking(true).ok()?;
        TcpStream::from_std(std).ok()
    });
    let negotiated = tokio::time::timeout(STARTUP_TIMEOUT, negotiate(socket, &h)).await;
    let Ok(negotiated) = negotiated else { return Ok(()) };
    let Some((io, first, is_tls)) = negotiated? else { return Ok(()) };

    let codec = PgWireMessageServerCodec::<Prepared>::new(DefaultClient::new(addr, is_tls));
    let mut socket = Framed::new(io, codec);
    socket.set_state(PgWireConnectionState::AwaitingStartup);
    let terminator = socket.session_extensions().get_or_insert_with(Terminator::default);
    let mut reader = FrameReader::new(h.max_message_bytes, &first);
    let mut password_messages = 0usize;

    let deadline = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        let state = socket.state();
        let starting = matches!(state, PgWireConnectionState::AwaitingStartup);
        let authenticating = matches!(state, PgWireConnectionState::AuthenticationInProgress);
        // Read before the frame reader borrows the socket.
        let backend = if starting || authenticating {
            None
        } else {
            socket.session_extensions().get::<crate::session::Session>().map(|s| s.backend.clone())
        };
        let next = reader.next(socket.get_mut(), starting);
        let frame = if starting || authenticating {
            tokio::select! {
                _ = &mut deadline => return Ok(()),
                f = next => f,
            }
        } else {
            // Notifications for a listening session go out while it waits for the
            // client (PostgreSQL sends them when the session is idle).
            let arrived = async {
                match &backend {
                    Some(b) => b.arrived.notified().await,
                    None => futures::future::pending::<()>().await,
                }
            };
            let woke = tokio::select! {
                _ = terminator.notify.notified() => Wake::Terminate,
                _ = arrived => Wake::Notified,
                f = next => Wake::Frame(f),
            };
            match woke {
                Wake::Terminate => Ok(None),
                Wake::Notified => {
                    if let Some(b) = &backend {
                        send_notifications(&mut socket, b).await?;
                    }
                    continue;
                }
                Wake::Frame(f) => f,
            }
        };
        if terminator.requested() {
            let _ = fatal(&mut socket, "57P01", "terminating connection due to administrator command").await;
            return Ok(());
        }
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e) => {
                let _ = fatal(&mut socket, e.sqlstate, &e.message).await;
                return Ok(());
            }
        };
        let incoming = if starting {
            frames::decode_startup(&frame).map(Ok)
        } else {
            let kind = if authenticating { h.startup.password_kind(password_messages) } else { None };
            frames::decode_message(&frame, kind)
        };
        let msg = match incoming {
            Err(e) => {
                let _ = fatal(&mut socket, e.sqlstate, &e.message).await;
                return Ok(());
            }
            Ok(Err(frames::Malformed(m))) if starting || authenticating => {
                let _ = fatal(&mut socket, "08P01", &format!("invalid message: {m}")).await;
                return Ok(());
            }
            // After an error in the extended protocol every message up to Sync is
            // discarded unread (PostgreSQL): a malformed one too, without a second error.
            Ok(Err(_)) if matches!(socket.state(), PgWireConnectionState::AwaitingSync) => continue,
            Ok(Err(frames::Malformed(m))) => {
                let extended = is_extended_tag(frame.tag);
                process_error(&mut socket, user_error("08P01", format!("invalid message: {m}")), extended).await?;
                continue;
            }
            Ok(Ok(Incoming::Negotiation)) => {
                let _ = fatal(&mut socket, "08P01", "SSL or GSS negotiation is only allowed once, before the startup packet").await;
                return Ok(());
            }
            Ok(Ok(Incoming::FunctionCall)) => {
                process_error(&mut socket, user_error("0A000", "function call messages (the fast-path interface) are not supported; call the function in a query".into()), false).await?;
                continue;
            }
            Ok(Ok(Incoming::Message(m))) => m,
        };
        if starting {
            if let PgWireFrontendMessage::Startup(_) = &msg {
                super::throttle::hold_back(&h.throttle, addr.ip()).await;
            }
        }
        if authenticating {
            if !matches!(msg, PgWireFrontendMessage::PasswordMessageFamily(_)) {
                let tag = frame.tag.map(|t| t as char).unwrap_or('?');
                let _ = fatal(&mut socket, "08P01", &format!("expected password response, got message type {tag}")).await;
                return Ok(());
            }
            password_messages += 1;
        }
        if matches!(msg, PgWireFrontendMessage::Terminate(_)) {
            return Ok(());
        }
        let is_extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(e) => e,
            _ => msg.is_extended_query(),
        };
        // The names of the client's prepared statements, for DEALLOCATE.
        match &msg {
            PgWireFrontendMessage::Parse(p) => {
                if let Some(name) = p.name.as_ref().filter(|n| !n.is_empty()) {
                    let session = super::handler::session_for(&h.engine, &socket);
                    session.protocol_statements.lock().unwrap_or_else(|p| p.into_inner()).entry(name.clone()).or_insert_with(|| p.query.clone());
                }
            }
            PgWireFrontendMessage::Close(c) if c.target_type == b'S' => {
                if let Some(name) = c.name.as_ref() {
                    let session = super::handler::session_for(&h.engine, &socket);
                    session.protocol_statements.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
                }
            }
            _ => {}
        }
        let is_cancel = matches!(msg, PgWireFrontendMessage::CancelRequest(_));
        let runs_statement = matches!(msg, PgWireFrontendMessage::Query(_) | PgWireFrontendMessage::Execute(_));
        // pg_stat_activity: active from the statement's start until its last row is sent.
        let running = match &msg {
            PgWireFrontendMessage::Query(q) => Some(q.query.clone()),
            PgWireFrontendMessage::Execute(e) => {
                use pgwire::api::store::{Entry, PortalStore};
                use pgwire::api::ClientPortalStore;
                match socket.portal_store().get_portal(e.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME)) {
                    Some(Entry::Value(p)) => Some(p.statement.statement.sql.clone()),
                    _ => None,
                }
            }
            _ => None,
        };
        let backend = running.as_ref().map(|q| {
            let b = super::handler::session_for(&h.engine, &socket).backend.clone();
            b.begin(q);
            b
        });
        let _idle_after = backend.map(IdleAfter);
        let work = AssertUnwindSafe(process_message(
            msg,
            &mut socket,
            h.startup.clone(),
            h.query.clone(),
            h.query.clone(),
            h.copy.clone(),
            h.cancel.clone(),
        ))
        .catch_unwind();
        let outcome = match (&watch, runs_statement) {
            (Some(w), true) => tokio::select! {
                biased;
                o = work => o,
                _ = hung_up(w) => {
                    // Dropping the handler's future drops the statement's streams,
                    // which stops its work on the query runtime.
                    tracing::debug!("client {addr} disconnected during a statement; stopped it");
                    return Ok(());
                }
            },
            _ => work.await,
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // SCRAM's client-first message names no user (libpq sends "n=,"): say
                // which user failed, from the start-up packet.
                let e = match e {
                    PgWireError::InvalidPassword(u) if u.is_empty() => {
                        PgWireError::InvalidPassword(socket.metadata().get(METADATA_USER).cloned().unwrap_or_default())
                    }
                    e => e,
                };
                let is_fatal = e.is_fatal();
                if authenticating {
                    super::throttle::failed(&h.throttle, addr.ip(), &e);
                }
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
        if (starting || authenticating) && matches!(socket.state(), PgWireConnectionState::ReadyForQuery) {
            if authenticating {
                h.throttle.record_success(addr.ip());
            }
            // Listed in pg_stat_activity from now on, not only after a first query.
            super::handler::session_for(&h.engine, &socket);
        }
        if terminator.requested() {
            let _ = fatal(&mut socket, "57P01", "terminating connection due to administrator command").await;
            return Ok(());
        }
    }
}

enum Wake<F> {
    Terminate,
    Notified,
    Frame(F),
}

/// Send the NotificationResponses waiting for `backend`.
async fn send_notifications(socket: &mut Socket, backend: &crate::backends::Backend) -> io::Result<()> {
    let pending = backend.take_notifications();
    if pending.is_empty() {
        return Ok(());
    }
    for n in pending {
        let msg = pgwire::messages::response::NotificationResponse::new(n.pid, n.channel, n.payload);
        socket.feed(PgWireBackendMessage::NotificationResponse(msg)).await.map_err(io::Error::other)?;
    }
    socket.flush().await.map_err(io::Error::other)
}

/// Marks the session idle when the statement's handling ends, however it ends.
struct IdleAfter(Arc<crate::backends::Backend>);

impl Drop for IdleAfter {
    fn drop(&mut self) {
        self.0.end();
    }
}

fn is_extended_tag(tag: Option<u8>) -> bool {
    matches!(tag, Some(b'P' | b'B' | b'D' | b'E' | b'C' | b'H' | b'S'))
}

/// Resolves when the client has closed its end. Bytes already waiting (a pipelined
/// message) hide a close behind them; then this never resolves, and the statement
/// runs to its end as it would without the check.
async fn hung_up(watch: &TcpStream) {
    let mut buf = [0u8; 1];
    match watch.peek(&mut buf).await {
        Ok(0) | Err(_) => {}
        Ok(_) => futures::future::pending::<()>().await,
    }
}

async fn fatal(socket: &mut Socket, code: &str, message: &str) -> Result<(), PgWireError> {
    let info = ErrorInfo::new(SEVERITY_FATAL.to_owned(), code.to_owned(), message.to_owned());
    socket.send(PgWireBackendMessage::ErrorResponse(info.into())).await?;
    socket.close().await?;
    Ok(())
}

/// Read the 8-byte start of the first packet, answering one SSLRequest and one
/// GSSENCRequest. Returns the stream (TLS or plain), those 8 bytes of the start-up or
/// cancel packet, and whether TLS is on.
async fn negotiate(mut tcp: TcpStream, h: &Handlers) -> io::Result<Option<(MaybeTls, [u8; 8], bool)>> {
    let (mut ssl_done, mut gss_done) = (false, false);
    loop {
        let mut first = [0u8; 8];
        if tcp.read_exact(&mut first).await.is_err() {
            return Ok(None);
        }
        let len = u32::from_be_bytes([first[0], first[1], first[2], first[3]]);
        let code = u32::from_be_bytes([first[4], first[5], first[6], first[7]]);
        let is_ssl = len == 8 && code == frames::SSL_REQUEST_CODE;
        let is_gss = len == 8 && code == frames::GSSENC_REQUEST_CODE;
        if !is_ssl && !is_gss {
            return Ok(Some((MaybeTls::Plain(tcp), first, false)));
        }
        if (is_ssl && ssl_done) || (is_gss && gss_done) {
            refuse(&mut tcp, "08P01", "SSL or GSS negotiation is only allowed once, before the startup packet").await;
            return Ok(None);
        }
        if has_pending_bytes(&tcp).await {
            // Bytes sent after SSLRequest but before our answer were not encrypted;
            // acting on them would let a man in the middle inject commands
            // (CVE-2021-23214). PostgreSQL refuses the same way, 'S' or 'N'.
            refuse(&mut tcp, "08P01", "received unencrypted data after SSL request").await;
            return Ok(None);
        }
        ssl_done |= is_ssl;
        gss_done |= is_gss;
        let acceptor = if is_ssl { h.tls.as_ref() } else { None };
        let Some(acceptor) = acceptor else {
            tcp.write_all(b"N").await?;
            continue;
        };
        tcp.write_all(b"S").await?;
        let mut tls = acceptor.accept(tcp).await?;
        let mut first = [0u8; 8];
        if tls.read_exact(&mut first).await.is_err() {
            return Ok(None);
        }
        return Ok(Some((MaybeTls::Tls(Box::new(tls)), first, true)));
    }
}

async fn refuse(tcp: &mut TcpStream, code: &str, message: &str) {
    let mut frame = BytesMut::new();
    let info = ErrorInfo::new(SEVERITY_FATAL.into(), code.into(), message.into());
    let _ = PgWireBackendMessage::ErrorResponse(info.into()).encode(&mut frame);
    let _ = tcp.write_all(&frame).await;
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

/// Tell a client the server is full, before start-up (PostgreSQL: 53300).
pub async fn too_many(mut tcp: TcpStream, max: usize) {
    refuse(&mut tcp, "53300", &format!("sorry, too many clients already (max_connections is {max})")).await;
}

