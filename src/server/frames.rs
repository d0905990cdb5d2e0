//! Frontend frames, read and decoded by lakehouse rather than by pgwire's codec.
//!
//! pgwire 0.42's decoders trust the counts and lengths inside a message (a Bind whose
//! parameter count exceeds its data, a Parse with a negative type count, a Describe
//! with an empty body all panic inside `bytes`), and its codec cannot tell a frame it
//! could not frame from a body it could not read. Here every count and length is
//! checked against the bytes the frame holds before anything is allocated, and the two
//! kinds of failure stay apart:
//!
//! - [`FrameError`]: the byte stream itself cannot be followed (a length below 4 or
//!   above `[server] max_message_bytes`, a start-up packet of an impossible size). The
//!   connection must end (FATAL), since the next frame's start is unknown.
//! - [`Malformed`]: one well-framed message whose body is not what its type says. The
//!   session goes on after an ERROR (08P01), as PostgreSQL's `pq_getmsg*` checks do.
//!
//! The decoded messages are pgwire's own structs, so its handlers run unchanged.

use bytes::{Buf, Bytes, BytesMut};
use pgwire::messages::PgWireFrontendMessage;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::extendedquery::{Bind, Close, Describe, Execute, Flush, Parse, Sync};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::{
    Password, PasswordMessageFamily, SASLInitialResponse, SASLResponse, SecretKey, Startup,
};
use pgwire::messages::terminate::Terminate;
use tokio::io::{AsyncRead, AsyncReadExt};

/// PostgreSQL's own limit on a start-up packet (and a cancel request).
pub const MAX_STARTUP_BYTES: usize = 10_000;
const CANCEL_REQUEST_CODE: u32 = 80877102;
pub const SSL_REQUEST_CODE: u32 = 80877103;
pub const GSSENC_REQUEST_CODE: u32 = 80877104;
/// The most parameters a start-up packet may carry (PostgreSQL has no fixed limit; the
/// packet's 10,000 bytes bound them anyway).
const MAX_STARTUP_PARAMETERS: usize = 256;

/// The stream cannot be followed any more: the connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub sqlstate: &'static str,
    pub message: String,
}

/// One message whose body does not hold what its type says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

/// One frame: the tag byte (None for the start-up packet, which has none) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub tag: Option<u8>,
    pub body: Bytes,
}

/// Reads frames from a stream, refusing an impossible or oversized length as soon as
/// its header has arrived (before the body is buffered).
pub struct FrameReader {
    buf: BytesMut,
    max: usize,
}

impl FrameReader {
    /// `already`: bytes read before (the start of the start-up packet).
    pub fn new(max_message_bytes: usize, already: &[u8]) -> FrameReader {
        FrameReader { buf: BytesMut::from(already), max: max_message_bytes }
    }

    /// The next frame; `startup` for the untagged start-up packet. `Ok(None)` at a
    /// clean end of stream.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, io: &mut R, startup: bool) -> Result<Option<Frame>, FrameError> {
        loop {
            match self.split(startup)? {
                Some(frame) => return Ok(Some(frame)),
                None => {
                    self.buf.reserve(8192);
                    match io.read_buf(&mut self.buf).await {
                        Ok(0) if self.buf.is_empty() => return Ok(None),
                        Ok(0) => return Err(FrameError { sqlstate: "08P01", message: "incomplete message from client".into() }),
                        Ok(_) => {}
                        Err(e) => return Err(FrameError { sqlstate: "08006", message: format!("could not receive data from client: {e}") }),
                    }
                }
            }
        }
    }

    /// A complete frame from the buffer, if one is there; an error as soon as the
    /// header shows the length cannot be right.
    pub fn split(&mut self, startup: bool) -> Result<Option<Frame>, FrameError> {
        let header = if startup { 4 } else { 5 };
        if self.buf.len() < header {
            return Ok(None);
        }
        let at = header - 4;
        let len = u32::from_be_bytes([self.buf[at], self.buf[at + 1], self.buf[at + 2], self.buf[at + 3]]) as usize;
        if startup {
            if !(8..=MAX_STARTUP_BYTES).contains(&len) {
                return Err(FrameError { sqlstate: "08P01", message: "invalid length of startup packet".into() });
            }
        } else if len < 4 {
            return Err(FrameError { sqlstate: "08P01", message: format!("invalid message length {len}") });
        } else if len > self.max {
            return Err(FrameError {
                sqlstate: "54000",
                message: format!("message of {len} bytes exceeds the server's limit of {} bytes ([server] max_message_bytes)", self.max),
            });
        }
        let total = at + len;
        if self.buf.len() < total {
            // Room for the rest, bounded by the checked length.
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        let mut frame = self.buf.split_to(total);
        let tag = if startup { None } else { Some(frame[0]) };
        frame.advance(header);
        Ok(Some(Frame { tag, body: frame.freeze() }))
    }
}

/// What a password message (`p`) means depends on where authentication is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordKind {
    /// MD5 or cleartext: a NUL-terminated password.
    Password,
    /// SCRAM's first message: mechanism, then an optional length-prefixed payload.
    SaslInitial,
    /// SCRAM's later messages: the whole body.
    SaslResponse,
}

/// What came in, decoded.
#[derive(Debug)]
pub enum Incoming {
    Message(PgWireFrontendMessage),
    /// A FunctionCall (`F`): well-formed, but lakehouse has no fast-path functions.
    FunctionCall,
    /// SSLRequest / GSSENCRequest where a start-up packet was expected.
    Negotiation,
}

/// Decode the start-up packet (or a cancel request, or a repeated negotiation).
pub fn decode_startup(frame: &Frame) -> Result<Incoming, FrameError> {
    let bad = |m: &str| FrameError { sqlstate: "08P01", message: m.to_string() };
    let mut b = Body::new(&frame.body);
    let code = b.u32().map_err(|_| bad("invalid length of startup packet"))?;
    if code == CANCEL_REQUEST_CODE {
        let pid = b.i32().map_err(|_| bad("invalid length of cancel request"))?;
        let key = b.rest();
        if !(4..=256).contains(&key.len()) {
            return Err(bad("invalid length of cancel request"));
        }
        let secret = if key.len() == 4 {
            SecretKey::I32(i32::from_be_bytes([key[0], key[1], key[2], key[3]]))
        } else {
            SecretKey::Bytes(Bytes::copy_from_slice(key))
        };
        return Ok(Incoming::Message(PgWireFrontendMessage::CancelRequest(CancelRequest::new(pid, secret))));
    }
    if code == SSL_REQUEST_CODE || code == GSSENC_REQUEST_CODE {
        return Ok(Incoming::Negotiation);
    }
    let major = (code >> 16) as u16;
    let minor = (code & 0xffff) as u16;
    if major != 3 {
        return Err(FrameError {
            sqlstate: "0A000",
            message: format!("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.2"),
        });
    }
    let mut startup = Startup::new();
    startup.protocol_number_major = major;
    startup.protocol_number_minor = minor;
    loop {
        let key = b.cstr().map_err(|_| bad("invalid startup packet layout: expected terminator as last byte"))?;
        if key.is_empty() {
            break;
        }
        let value = b.cstr().map_err(|_| bad("invalid startup packet layout: expected terminator as last byte"))?;
        if startup.parameters.len() >= MAX_STARTUP_PARAMETERS {
            return Err(bad("too many parameters in the startup packet"));
        }
        startup.parameters.insert(key, value);
    }
    if !b.is_empty() {
        return Err(bad("invalid startup packet layout: expected terminator as last byte"));
    }
    Ok(Incoming::Message(PgWireFrontendMessage::Startup(startup)))
}

/// Decode one tagged message. `password` says how to read a `p` message (None: none
/// is expected now). An unknown tag is a [`FrameError`] (PostgreSQL: FATAL).
pub fn decode_message(frame: &Frame, password: Option<PasswordKind>) -> Result<Result<Incoming, Malformed>, FrameError> {
    let Some(tag) = frame.tag else {
        return Err(FrameError { sqlstate: "08P01", message: "untagged frame after start-up".into() });
    };
    let mut b = Body::new(&frame.body);
    let msg = match tag {
        b'Q' => decode_query(&mut b),
        b'P' => decode_parse(&mut b),
        b'B' => decode_bind(&mut b),
        b'D' => decode_describe(&mut b),
        b'C' => decode_close(&mut b),
        b'E' => decode_execute(&mut b),
        b'S' => Ok(PgWireFrontendMessage::Sync(Sync::new())),
        b'H' => Ok(PgWireFrontendMessage::Flush(Flush::new())),
        b'X' => Ok(PgWireFrontendMessage::Terminate(Terminate::new())),
        b'd' => Ok(PgWireFrontendMessage::CopyData(CopyData::new(frame.body.clone()))),
        b'c' => Ok(PgWireFrontendMessage::CopyDone(CopyDone::new())),
        b'f' => b.cstr().and_then(|m| b.end().map(|_| PgWireFrontendMessage::CopyFail(CopyFail::new(m)))),
        b'F' => return Ok(decode_function_call(&mut b).map(|_| Incoming::FunctionCall)),
        b'p' => match password {
            Some(kind) => decode_password(&mut b, kind, &frame.body),
            None => Err(Malformed("unexpected password message".into())),
        },
        other => {
            return Err(FrameError {
                sqlstate: "08P01",
                message: format!("invalid frontend message type {other}"),
            });
        }
    };
    Ok(msg.map(Incoming::Message))
}

fn decode_query(b: &mut Body) -> Result<PgWireFrontendMessage, Malformed> {
    let sql = b.cstr()?;
    b.end()?;
    Ok(PgWireFrontendMessage::Query(Query::new(sql)))
}

fn decode_parse(b: &mut Body) -> Result<PgWireFrontendMessage, Malformed> {
    let name = optional_name(b.cstr()?);
    let query = b.cstr()?;
    let n = b.count(4)?;
    let mut oids = Vec::with_capacity(n);
    for _ in 0..n {
        oids.push(b.u32()?);
    }
    b.end()?;
    Ok(PgWireFrontendMessage::Parse(Parse::new(name, query, oids)))
}

fn format_codes(b: &mut Body) -> Result<Vec<i16>, Malformed> {
    let n = b.count(2)?;
    let mut codes = Vec::with_capacity(n);
    for _ in 0..n {
        let c = b.i16()?;
        if c != 0 && c != 1 {
            return Err(Malformed(format!("unsupported format code: {c}")));
        }
        codes.push(c);
    }
    Ok(codes)
}

fn decode_bind(b: &mut Body) -> Result<PgWireFrontendMessage, Malformed> {
    let portal = optional_name(b.cstr()?);
    let statement = optional_name(b.cstr()?);
    let formats = format_codes(b)?;
    // Each parameter takes at least its 4-byte length.
    let n = b.count(4)?;
    if formats.len() > 1 && formats.len() != n {
        return Err(Malformed(format!("bind message has {} parameter formats but {n} parameters", formats.len())));
    }
    let mut params = Vec::with_capacity(n);
    for i in 0..n {
        let len = b.i32()?;
        match len {
            -1 => params.push(None),
            l if l < 0 => return Err(Malformed(format!("invalid length {l} of parameter ${}", i + 1))),
            l => params.push(Some(b.bytes(l as usize)?)),
        }
    }
    let results = format_codes(b)?;
    b.end()?;
    Ok(PgWireFrontendMessage::Bind(Bind::new(portal, statement, formats, params, results)))
}

fn target(b: &mut Body, what: &str) -> Result<(u8, Option<String>), Malformed> {
    let t = b.u8()?;
    if t != b'S' && t != b'P' {
        return Err(Malformed(format!("invalid {what} message subtype {t}")));
    }
    let name = optional_name(b.cstr()?);
    b.end()?;
    Ok((t, name))
}

fn decode_describe(b: &mut Body) -> Result<PgWireFrontendMessage, Malformed> {
    let (t, name) = target(b, "DESCRIBE")?;
    Ok(PgWireFrontendMessage::Describe(Describe::new(t, name)))
}

fn decode_close(b: &mut Body) -> Result<PgWireFrontendMessage, Malformed> {
    let (t, name) = target(b, "CLOSE")?;
    Ok(PgWireFrontendMessage::Close(Close::new(t, name)))
}

fn decode_execute(b: &mut Body) -> Result<PgWireFrontendMessage, Malformed> {
    let name = optional_name(b.cstr()?);
    // PostgreSQL: zero or negative means "all rows". Normalised here so no handler
    // ever sees a negative count turned into a huge one.
    let max_rows = b.i32()?.max(0);
    b.end()?;
    Ok(PgWireFrontendMessage::Execute(Execute::new(name, max_rows)))
}

fn decode_function_call(b: &mut Body) -> Result<(), Malformed> {
    let _oid = b.u32()?;
    let formats = format_codes(b)?;
    let n = b.count(4)?;
    if formats.len() > 1 && formats.len() != n {
        return Err(Malformed(format!("function call message has {} argument formats but {n} arguments", formats.len())));
    }
    for _ in 0..n {
        match b.i32()? {
            -1 => {}
            l if l < 0 => return Err(Malformed(format!("invalid argument length {l}"))),
            l => {
                b.bytes(l as usize)?;
            }
        }
    }
    let result = b.i16()?;
    if result != 0 && result != 1 {
        return Err(Malformed(format!("unsupported format code: {result}")));
    }
    b.end()
}

fn decode_password(b: &mut Body, kind: PasswordKind, whole: &Bytes) -> Result<PgWireFrontendMessage, Malformed> {
    let family = match kind {
        PasswordKind::Password => {
            let p = b.cstr()?;
            b.end()?;
            PasswordMessageFamily::Password(Password::new(p))
        }
        PasswordKind::SaslInitial => {
            let mechanism = b.cstr()?;
            let data = match b.i32()? {
                -1 => None,
                l if l < 0 => return Err(Malformed(format!("invalid SASL response length {l}"))),
                l => Some(b.bytes(l as usize)?),
            };
            b.end()?;
            PasswordMessageFamily::SASLInitialResponse(SASLInitialResponse::new(mechanism, data))
        }
        PasswordKind::SaslResponse => PasswordMessageFamily::SASLResponse(SASLResponse::new(whole.clone())),
    };
    Ok(PgWireFrontendMessage::PasswordMessageFamily(family))
}

/// pgwire's convention: an empty statement or portal name is the unnamed one (None).
fn optional_name(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

/// A bounds-checked reader over one message body.
struct Body<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Body<'a> {
    fn new(data: &'a [u8]) -> Body<'a> {
        Body { data, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if n > self.remaining() {
            return Err(Malformed(format!("insufficient data left in message: wanted {n} bytes, {} left", self.remaining())));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> Result<i16, Malformed> {
        let s = self.take(2)?;
        Ok(i16::from_be_bytes([s[0], s[1]]))
    }
    fn i32(&mut self) -> Result<i32, Malformed> {
        let s = self.take(4)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(self.i32()? as u32)
    }

    /// A 16-bit count of items of at least `min_size` bytes each, checked against the
    /// bytes left before anything is allocated for them.
    fn count(&mut self, min_size: usize) -> Result<usize, Malformed> {
        let n = self.i16()?;
        if n < 0 {
            return Err(Malformed(format!("invalid count {n}")));
        }
        let n = n as usize;
        if n.saturating_mul(min_size) > self.remaining() {
            return Err(Malformed(format!("count {n} exceeds the data in the message ({} bytes left)", self.remaining())));
        }
        Ok(n)
    }

    fn bytes(&mut self, n: usize) -> Result<Bytes, Malformed> {
        Ok(Bytes::copy_from_slice(self.take(n)?))
    }

    /// A NUL-terminated string, valid UTF-8 (the server encoding).
    fn cstr(&mut self) -> Result<String, Malformed> {
        let rest = &self.data[self.pos..];
        let Some(end) = rest.iter().position(|&c| c == 0) else {
            return Err(Malformed("invalid string in message: no terminator".into()));
        };
        let s = std::str::from_utf8(&rest[..end])
            .map_err(|_| Malformed("invalid byte sequence for encoding \"UTF8\"".into()))?
            .to_string();
        self.pos += end + 1;
        Ok(s)
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = &self.data[self.pos..];
        self.pos = self.data.len();
        s
    }

    fn end(&self) -> Result<(), Malformed> {
        if self.is_empty() { Ok(()) } else { Err(Malformed("invalid message format: trailing bytes".into())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Frame {
        Frame { tag: Some(tag), body: Bytes::copy_from_slice(body) }
    }

    fn wire(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![tag];
        f.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    fn decoded(tag: u8, body: &[u8]) -> Result<PgWireFrontendMessage, String> {
        match decode_message(&frame(tag, body), Some(PasswordKind::SaslInitial)) {
            Ok(Ok(Incoming::Message(m))) => Ok(m),
            Ok(Ok(other)) => Err(format!("{other:?}")),
            Ok(Err(Malformed(m))) => Err(m),
            Err(e) => Err(e.message),
        }
    }

    #[test]
    fn well_formed_messages_decode_to_pgwire_structs() {
        let mut bind = b"portal\0stmt\0".to_vec();
        bind.extend_from_slice(&1i16.to_be_bytes());
        bind.extend_from_slice(&1i16.to_be_bytes());
        bind.extend_from_slice(&2i16.to_be_bytes());
        bind.extend_from_slice(&3i32.to_be_bytes());
        bind.extend_from_slice(b"abc");
        bind.extend_from_slice(&(-1i32).to_be_bytes());
        bind.extend_from_slice(&0i16.to_be_bytes());
        let PgWireFrontendMessage::Bind(b) = decoded(b'B', &bind).unwrap() else { panic!() };
        assert_eq!(b.portal_name.as_deref(), Some("portal"));
        assert_eq!(b.parameters, vec![Some(Bytes::from_static(b"abc")), None]);
        let PgWireFrontendMessage::Execute(e) = decoded(b'E', b"\0\x80\0\0\0").unwrap() else { panic!() };
        assert_eq!((e.name, e.max_rows), (None, 0), "a negative max_rows means all rows");
        let PgWireFrontendMessage::Execute(e) = decoded(b'E', b"\0\x7f\xff\xff\xff").unwrap() else { panic!() };
        assert_eq!(e.max_rows, i32::MAX);
        let PgWireFrontendMessage::Query(q) = decoded(b'Q', b"select 1\0").unwrap() else { panic!() };
        assert_eq!(q.query, "select 1");
    }

    #[test]
    fn the_probes_that_panicked_pgwire_are_errors() {
        // Bind whose parameter count exceeds its data.
        let mut bind = b"\0\0".to_vec();
        bind.extend_from_slice(&0i16.to_be_bytes());
        bind.extend_from_slice(&1000i16.to_be_bytes());
        assert!(decoded(b'B', &bind).unwrap_err().contains("exceeds"));
        // A parameter longer than the message.
        let mut bind = b"\0\0".to_vec();
        bind.extend_from_slice(&0i16.to_be_bytes());
        bind.extend_from_slice(&1i16.to_be_bytes());
        bind.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(decoded(b'B', &bind).is_err());
        // Describe with an empty body, Parse with a negative type count.
        assert!(decoded(b'D', b"").is_err());
        let mut parse = b"\0select 1\0".to_vec();
        parse.extend_from_slice(&(-5i16).to_be_bytes());
        assert!(decoded(b'P', &parse).unwrap_err().contains("invalid count"));
        assert!(decoded(b'D', b"X\0").unwrap_err().contains("subtype"));
        assert!(decoded(b'Q', b"no terminator").is_err());
        assert!(decoded(b'Q', b"a\0trailing").is_err());
        assert!(decoded(b'p', b"SCRAM-SHA-256\0\x7f\0\0\0").is_err());
        assert!(decode_message(&frame(b'p', b"x\0"), None).unwrap().is_err(), "no password expected");
        assert!(decode_message(&frame(b'~', b""), None).is_err(), "unknown tag is fatal");
    }

    #[test]
    fn lengths_are_refused_from_the_header() {
        let mut r = FrameReader::new(1024, &[]);
        r.buf.extend_from_slice(&[b'Q', 0x40, 0, 0, 0]);
        assert_eq!(r.split(false).unwrap_err().sqlstate, "54000");
        let mut r = FrameReader::new(1024, &[]);
        r.buf.extend_from_slice(&[b'Q', 0, 0, 0, 2]);
        assert_eq!(r.split(false).unwrap_err().sqlstate, "08P01");
        let mut r = FrameReader::new(1024, &[0, 0, 0x40, 0]);
        assert!(r.split(true).is_err());
    }

    #[test]
    fn frames_split_anywhere_are_reassembled() {
        let mut stream = vec![];
        for body in [&b"select 1\0"[..], &b"x\0"[..], &[b'a'; 300][..]] {
            stream.extend(wire(b'Q', body));
        }
        let mut r = FrameReader::new(1024, &[]);
        let mut frames = vec![];
        for chunk in stream.chunks(3) {
            r.buf.extend_from_slice(chunk);
            while let Some(f) = r.split(false).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2].body.len(), 300);
        assert!(r.buf.is_empty());
    }

    #[test]
    fn startup_and_cancel_packets() {
        let mut body = 196608u32.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0alice\0database\0db\0\0");
        let Incoming::Message(PgWireFrontendMessage::Startup(s)) = decode_startup(&Frame { tag: None, body: body.clone().into() }).unwrap() else { panic!() };
        assert_eq!(s.parameters.get("user").map(String::as_str), Some("alice"));
        body.pop();
        assert!(decode_startup(&Frame { tag: None, body: body.into() }).is_err());
        let mut cancel = CANCEL_REQUEST_CODE.to_be_bytes().to_vec();
        cancel.extend_from_slice(&7i32.to_be_bytes());
        cancel.extend_from_slice(&9i32.to_be_bytes());
        assert!(matches!(decode_startup(&Frame { tag: None, body: cancel.into() }).unwrap(), Incoming::Message(PgWireFrontendMessage::CancelRequest(_))));
        let v2 = (2u32 << 16).to_be_bytes().to_vec();
        assert_eq!(decode_startup(&Frame { tag: None, body: v2.into() }).unwrap_err().sqlstate, "0A000");
    }

    /// A property-based fuzz run on stable: 100,000 random mutations of well-formed
    /// frames of every type through every decoder and the framer; none may panic.
    #[test]
    fn fuzzed_frames_never_panic() {
        let seeds: Vec<(u8, Vec<u8>)> = vec![
            (b'Q', b"select 1\0".to_vec()),
            (b'P', [b"s\0select $1\0".as_slice(), &1i16.to_be_bytes(), &25u32.to_be_bytes()].concat()),
            (b'B', [b"\0s\0".as_slice(), &1i16.to_be_bytes(), &1i16.to_be_bytes(), &1i16.to_be_bytes(), &4i32.to_be_bytes(), b"abcd", &1i16.to_be_bytes(), &0i16.to_be_bytes()].concat()),
            (b'E', [b"\0".as_slice(), &0i32.to_be_bytes()].concat()),
            (b'D', b"Ss\0".to_vec()),
            (b'C', b"Pp\0".to_vec()),
            (b'd', b"1\t2\n".to_vec()),
            (b'f', b"oops\0".to_vec()),
            (b'F', [&1u32.to_be_bytes()[..], &0i16.to_be_bytes(), &1i16.to_be_bytes(), &2i32.to_be_bytes(), b"xy", &0i16.to_be_bytes()].concat()),
            (b'p', [b"SCRAM-SHA-256\0".as_slice(), &3i32.to_be_bytes(), b"n,,"].concat()),
            (b'S', vec![]),
        ];
        let mut rng = 0x9E3779B97F4A7C15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let kinds = [None, Some(PasswordKind::Password), Some(PasswordKind::SaslInitial), Some(PasswordKind::SaslResponse)];
        for i in 0..100_000 {
            let (tag, seed) = &seeds[i % seeds.len()];
            let mut body = seed.clone();
            for _ in 0..(next() % 4) {
                match next() % 4 {
                    0 if !body.is_empty() => {
                        let at = (next() as usize) % body.len();
                        body[at] = next() as u8;
                    }
                    1 => body.truncate((next() as usize) % (body.len() + 1)),
                    2 => {
                        let at = (next() as usize) % (body.len() + 1);
                        let n = next() % 5;
                        for _ in 0..n {
                            body.insert(at, [0u8, 0xff, 0x7f, 0x80][(next() % 4) as usize]);
                        }
                    }
                    _ => body.extend((0..(next() % 8)).map(|_| next() as u8)),
                }
            }
            let f = frame(*tag, &body);
            let _ = decode_message(&f, kinds[i % kinds.len()]);
            let _ = decode_startup(&Frame { tag: None, body: f.body.clone() });
            let mut r = FrameReader::new(4096, &wire(*tag, &body));
            let _ = r.split(false);
            let mut r = FrameReader::new(4096, &body);
            let _ = r.split(true);
        }
    }
}
