//! COPY's bytes on the wire (#14): reading `COPY … FROM STDIN` data in text, csv and
//! binary form into Arrow batches, and writing `COPY … TO STDOUT` rows in them, as
//! PostgreSQL does (https://www.postgresql.org/docs/current/sql-copy.html). The
//! statement itself (its INSERT, its query) is engine/copy.rs.
//!
//! Input is parsed as it arrives, a row at a time from the bytes received so far:
//! a CopyData message may end anywhere (inside a row, a quoted field, a binary
//! length), and nothing but the unfinished row is kept. Values are read as the wire
//! reads bound parameters (server/encode.rs), vectors straight into their column.

use std::borrow::Cow;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::Tag;
use pgwire::api::{ClientInfo, PgWireConnectionState};
use pgwire::error::PgWireError;
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyDone, CopyFail, CopyInResponse, CopyOutResponse};

use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::array::{ArrayRef, FixedSizeListArray, Float32Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, FieldRef, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use futures::StreamExt;
use pgwire::api::Type;
use pgwire::api::portal::Format as WireFormat;
use pgwire::error::PgWireResult;
use pgwire::messages::copy::CopyData;

use super::encode::{self, Raw};
use super::handler::to_pg_error;
use crate::engine::{CopyFormat, CopyIn, CopyOptions, CopyOut, Engine, Session};
use crate::error::Error;

/// Rows per batch handed to the INSERT.
const BATCH_ROWS: usize = 8192;
/// PostgreSQL's limit on one field (and so on one row's bytes we wait for).
const MAX_FIELD: usize = 1 << 30;
const BINARY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// A COPY error: 22P04 (bad copy file format) unless the value itself was bad.
fn bad_format(m: impl Into<String>) -> Error {
    Error::State("22P04", m.into())
}

/// One column being filled.
enum Column {
    /// `vector(n)`: floats straight into a FixedSizeList.
    Vector { dim: usize, values: Vec<f32>, valid: Vec<bool> },
    Values(Vec<ScalarValue>),
}

/// COPY FROM's reader: bytes in, batches out.
pub struct Decoder {
    options: CopyOptions,
    schema: SchemaRef,
    pg: Vec<Type>,
    columns: Vec<Column>,
    rows: usize,
    /// Bytes received and not yet read as rows.
    buf: Vec<u8>,
    /// Where in `buf` the unread part starts (compacted between messages).
    pos: usize,
    /// The csv header line or the binary header is still to be read.
    header: bool,
    /// `\.` or the binary trailer was read: the rest is ignored.
    ended: bool,
    /// Input line (text, csv) or row (binary), for errors.
    line: u64,
    force_not_null: Vec<bool>,
    force_null: Vec<bool>,
}

/// A field as read: its bytes (after unescaping) and whether it was NULL.
type Fields<'a> = Vec<Option<Cow<'a, [u8]>>>;

impl Decoder {
    pub fn new(options: CopyOptions, schema: SchemaRef) -> crate::error::Result<Decoder> {
        let pg = schema.fields().iter().map(|f| crate::pg_types::field_pg_type(f)).collect();
        let columns = schema.fields().iter().map(|f| new_column(f)).collect();
        let named = |list: &[String], what: &str| -> crate::error::Result<Vec<bool>> {
            for n in list {
                if schema.field_with_name(n).is_err() {
                    return Err(Error::State("42P10", format!("{what} column \"{n}\" not referenced by COPY")));
                }
            }
            Ok(schema.fields().iter().map(|f| list.iter().any(|n| n == f.name())).collect())
        };
        let force_not_null = named(&options.force_not_null, "FORCE_NOT_NULL")?;
        let force_null = named(&options.force_null, "FORCE_NULL")?;
        let header = options.header || options.format == CopyFormat::Binary;
        Ok(Decoder { options, schema, pg, columns, rows: 0, buf: vec![], pos: 0, header, ended: false, line: 0, force_not_null, force_null })
    }

    /// The column formats to announce in CopyInResponse (0 text, 1 binary).
    pub fn wire_format(&self) -> i8 {
        if self.options.format == CopyFormat::Binary { 1 } else { 0 }
    }

    /// Take one CopyData message; answers the batches it completed.
    pub fn feed(&mut self, data: &[u8]) -> crate::error::Result<Vec<RecordBatch>> {
        if self.ended {
            return Ok(vec![]);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
        let mut out = vec![];
        self.read_rows(false, &mut out)?;
        if self.buf.len() - self.pos > MAX_FIELD {
            return Err(Error::ProgramLimit(format!("COPY line {} is longer than 1 GB", self.line + 1)));
        }
        Ok(out)
    }

    /// CopyDone: read what is left (a last line needs no newline); answers the last batches.
    pub fn finish(&mut self) -> crate::error::Result<Vec<RecordBatch>> {
        let mut out = vec![];
        if !self.ended {
            self.read_rows(true, &mut out)?;
            if self.options.format == CopyFormat::Binary && !self.ended && self.pos < self.buf.len() {
                return Err(bad_format("unexpected EOF in COPY data"));
            }
        }
        if self.rows > 0 {
            out.push(self.batch()?);
        }
        Ok(out)
    }

    fn read_rows(&mut self, at_end: bool, out: &mut Vec<RecordBatch>) -> crate::error::Result<()> {
        loop {
            if self.ended {
                return Ok(());
            }
            let buf = std::mem::take(&mut self.buf);
            let step = match self.options.format {
                CopyFormat::Text => self.text_row(&buf, at_end),
                CopyFormat::Csv => self.csv_row(&buf, at_end),
                CopyFormat::Binary => self.binary_row(&buf),
            };
            self.buf = buf;
            match step? {
                false => return Ok(()),
                true => {
                    if self.rows >= BATCH_ROWS {
                        out.push(self.batch()?);
                    }
                }
            }
        }
    }

    /// Read one text-format line from `buf[self.pos..]`; false when it is not all here.
    fn text_row(&mut self, buf: &[u8], at_end: bool) -> crate::error::Result<bool> {
        let rest = &buf[self.pos..];
        let (line, used) = match memchr(b'\n', rest) {
            Some(n) => (&rest[..n], n + 1),
            None if at_end && !rest.is_empty() => (rest, rest.len()),
            None => return Ok(false),
        };
        self.pos += used;
        self.line += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"\\." {
            self.ended = true;
            return Ok(true);
        }
        let fields = text_fields(line, self.options.delimiter, self.options.null.as_bytes());
        self.push_row(fields, false)?;
        Ok(true)
    }

    /// Read one csv record (which may span lines inside quotes).
    fn csv_row(&mut self, buf: &[u8], at_end: bool) -> crate::error::Result<bool> {
        let rest = &buf[self.pos..];
        if rest.is_empty() {
            return Ok(false);
        }
        let o = &self.options;
        let (delim, quote, escape, null) = (o.delimiter, o.quote, o.escape, o.null.as_bytes());
        let unterminated = |lines: u64| bad_format(format!("unterminated CSV quoted field (line {})", self.line + lines));
        let mut fields: Vec<(Cow<[u8]>, bool)> = vec![];
        let mut i = 0usize;
        let mut lines = 1u64;
        loop {
            let start = i;
            let mut owned: Option<Vec<u8>> = None;
            let mut quoted = false;
            let record_ends = loop {
                let Some(&c) = rest.get(i) else {
                    if !at_end {
                        return Ok(false);
                    }
                    break true;
                };
                if c == quote {
                    // A quoted stretch, up to its closing quote; a quote anywhere in
                    // a field opens one, as in PostgreSQL.
                    quoted = true;
                    let v = owned.get_or_insert_with(|| rest[start..i].to_vec());
                    i += 1;
                    loop {
                        let Some(&c) = rest.get(i) else {
                            return if at_end { Err(unterminated(lines)) } else { Ok(false) };
                        };
                        let next = rest.get(i + 1).copied();
                        if next.is_none() && !at_end && (c == quote || c == escape) {
                            // A pair may be cut by the message boundary.
                            return Ok(false);
                        }
                        if c == escape && escape != quote && (next == Some(quote) || next == Some(escape)) {
                            v.push(next.unwrap_or(c));
                            i += 2;
                        } else if c == quote && escape == quote && next == Some(quote) {
                            v.push(quote);
                            i += 2;
                        } else if c == quote {
                            i += 1;
                            break;
                        } else {
                            if c == b'\n' {
                                lines += 1;
                            }
                            v.push(c);
                            i += 1;
                        }
                    }
                    continue;
                }
                if c == delim {
                    break false;
                }
                if c == b'\n' || c == b'\r' {
                    break true;
                }
                if let Some(v) = owned.as_mut() {
                    v.push(c);
                }
                i += 1;
            };
            let value = match owned {
                Some(v) => Cow::Owned(v),
                None => Cow::Borrowed(&rest[start..i]),
            };
            fields.push((value, quoted));
            if !record_ends {
                i += 1;
                continue;
            }
            match rest.get(i) {
                Some(b'\r') => {
                    if i + 1 >= rest.len() && !at_end {
                        return Ok(false);
                    }
                    i += 1;
                    if rest.get(i) == Some(&b'\n') {
                        i += 1;
                    }
                }
                Some(_) => i += 1,
                None => {}
            }
            break;
        }
        let used = i;
        self.pos += used;
        self.line += lines;
        if fields.len() == 1 && !fields[0].1 && fields[0].0.as_ref() == b"\\." {
            self.ended = true;
            return Ok(true);
        }
        if self.header {
            self.header = false;
            return Ok(true);
        }
        let row: Fields = fields
            .into_iter()
            .enumerate()
            .map(|(c, (v, quoted))| {
                let is_null = v.as_ref() == null
                    && ((!quoted && !self.force_not_null.get(c).copied().unwrap_or(false)) || (quoted && self.force_null.get(c).copied().unwrap_or(false)));
                if is_null { None } else { Some(v) }
            })
            .collect();
        self.push_row(row, false)?;
        Ok(true)
    }

    /// Read the binary header or one binary tuple.
    fn binary_row(&mut self, buf: &[u8]) -> crate::error::Result<bool> {
        let rest = &buf[self.pos..];
        if self.header {
            if rest.len() < 19 {
                if !rest.is_empty() && !BINARY_SIGNATURE.starts_with(&rest[..rest.len().min(11)]) {
                    return Err(bad_format("COPY file signature not recognized"));
                }
                return Ok(false);
            }
            if &rest[..11] != BINARY_SIGNATURE {
                return Err(bad_format("COPY file signature not recognized"));
            }
            let flags = u32::from_be_bytes([rest[11], rest[12], rest[13], rest[14]]);
            if flags & 0x0001_0000 != 0 {
                return Err(bad_format("COPY file with OIDs is not supported"));
            }
            if flags & 0xffff_0000 & !0x0001_0000 != 0 {
                return Err(bad_format("unrecognized critical flags in COPY file header"));
            }
            let ext = i32::from_be_bytes([rest[15], rest[16], rest[17], rest[18]]);
            if ext < 0 {
                return Err(bad_format("invalid COPY file header (missing length)"));
            }
            let ext = ext as usize;
            if rest.len() < 19 + ext {
                return Ok(false);
            }
            self.pos += 19 + ext;
            self.header = false;
            return Ok(true);
        }
        if rest.len() < 2 {
            return Ok(false);
        }
        let count = i16::from_be_bytes([rest[0], rest[1]]);
        if count == -1 {
            self.pos += 2;
            self.ended = true;
            return Ok(true);
        }
        if count as isize != self.columns.len() as isize {
            return Err(bad_format(format!("row field count is {count}, expected {}", self.columns.len())));
        }
        let mut at = 2usize;
        let mut spans: Vec<Option<(usize, usize)>> = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let Some(l) = rest.get(at..at + 4) else { return Ok(false) };
            let len = i32::from_be_bytes([l[0], l[1], l[2], l[3]]);
            at += 4;
            if len == -1 {
                spans.push(None);
                continue;
            }
            if len < 0 {
                return Err(bad_format(format!("invalid field size {len}")));
            }
            let len = len as usize;
            if len > MAX_FIELD {
                return Err(Error::ProgramLimit("a COPY field is longer than 1 GB".into()));
            }
            if rest.len() < at + len {
                return Ok(false);
            }
            spans.push(Some((at, len)));
            at += len;
        }
        self.pos += at;
        self.line += 1;
        let fields: Fields = spans.into_iter().map(|s| s.map(|(a, l)| Cow::Borrowed(&rest[a..a + l]))).collect();
        self.push_row(fields, true)?;
        Ok(true)
    }

    fn push_row(&mut self, fields: Fields<'_>, binary: bool) -> crate::error::Result<()> {
        let n = self.columns.len();
        if fields.len() < n {
            let missing = self.schema.field(fields.len()).name();
            return Err(bad_format(format!("missing data for column \"{missing}\" (line {})", self.line)));
        }
        if fields.len() > n {
            return Err(bad_format(format!("extra data after last expected column (line {})", self.line)));
        }
        for (c, value) in fields.into_iter().enumerate() {
            let field = &self.schema.fields()[c];
            let line = self.line;
            let context = |e: Error| -> Error {
                let m = e.message();
                match e {
                    Error::DimensionMismatch { .. } => Error::DataException(format!("{m} (line {line}, column {})", field.name())),
                    e if e.sqlstate() == "22P04" => e,
                    e => Error::State(e.sqlstate(), format!("{m} (COPY line {line}, column {})", field.name())),
                }
            };
            push_value(&mut self.columns[c], field, &self.pg[c], value.as_deref(), binary).map_err(context)?;
        }
        self.rows += 1;
        Ok(())
    }

    fn batch(&mut self) -> crate::error::Result<RecordBatch> {
        let fresh: Vec<Column> = self.schema.fields().iter().map(|f| new_column(f)).collect();
        let columns = std::mem::replace(&mut self.columns, fresh);
        self.rows = 0;
        let arrays = columns
            .into_iter()
            .zip(self.schema.fields().iter())
            .map(|(c, f)| finish_column(c, f))
            .collect::<crate::error::Result<Vec<ArrayRef>>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

fn new_column(f: &FieldRef) -> Column {
    match f.data_type() {
        DataType::FixedSizeList(inner, n) if inner.data_type() == &DataType::Float32 && *n > 0 => {
            Column::Vector { dim: *n as usize, values: vec![], valid: vec![] }
        }
        _ => Column::Values(vec![]),
    }
}

fn push_value(column: &mut Column, field: &FieldRef, pg: &Type, value: Option<&[u8]>, binary: bool) -> crate::error::Result<()> {
    match column {
        Column::Vector { dim, values, valid } => {
            match value {
                None => {
                    values.extend(std::iter::repeat_n(0.0, *dim));
                    valid.push(false);
                }
                Some(b) => {
                    let v = if binary {
                        encode::binary_vector(b).map_err(|m| Error::InvalidText(format!("invalid binary vector: {m}")))?
                    } else {
                        let t = std::str::from_utf8(b).map_err(|_| Error::State("22021", "invalid byte sequence for encoding \"UTF8\"".into()))?;
                        let t = t.trim();
                        let brackets;
                        let t = match t.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                            Some(inner) => {
                                brackets = format!("[{inner}]");
                                brackets.as_str()
                            }
                            None => t,
                        };
                        crate::udf::vector::parse_text(t)?
                    };
                    if v.len() != *dim {
                        return Err(Error::DimensionMismatch { expected: *dim, got: v.len() });
                    }
                    values.extend_from_slice(&v);
                    valid.push(true);
                }
            }
            Ok(())
        }
        Column::Values(values) => {
            let want = field.data_type();
            let v = match value {
                None => ScalarValue::try_from(want)?,
                Some(b) => {
                    let v = encode::decode_value(Raw { bytes: Some(b), binary }, pg, Some(want), &format!("column {}", field.name()))
                        .map_err(|e| Error::InvalidText(e.to_string()))?;
                    if &v.data_type() == want { v } else { v.cast_to(want).map_err(|e| Error::InvalidText(format!("column {}: {e}", field.name())))? }
                }
            };
            values.push(v);
            Ok(())
        }
    }
}

fn finish_column(c: Column, f: &FieldRef) -> crate::error::Result<ArrayRef> {
    match c {
        Column::Vector { dim, values, valid } => {
            let DataType::FixedSizeList(inner, _) = f.data_type() else { unreachable!("vector column") };
            let nulls = (!valid.iter().all(|v| *v)).then(|| NullBuffer::from(valid));
            Ok(Arc::new(FixedSizeListArray::try_new(inner.clone(), dim as i32, Arc::new(Float32Array::from(values)), nulls)?))
        }
        Column::Values(values) if values.is_empty() => Ok(datafusion::arrow::array::new_empty_array(f.data_type())),
        Column::Values(values) => Ok(ScalarValue::iter_to_array(values)?),
    }
}

/// Text format's fields of one line: split at unescaped delimiters, `\N` (the NULL
/// string, compared before unescaping) as NULL, backslash escapes resolved.
fn text_fields<'a>(line: &'a [u8], delim: u8, null: &[u8]) -> Fields<'a> {
    let mut out: Fields<'a> = vec![];
    let mut start = 0;
    let mut i = 0;
    let mut owned: Option<Vec<u8>> = None;
    let finish = |start: usize, end: usize, owned: Option<Vec<u8>>, out: &mut Fields<'a>| {
        let raw = &line[start..end];
        if raw == null {
            out.push(None);
        } else {
            out.push(Some(match owned {
                Some(o) => Cow::Owned(o),
                None => Cow::Borrowed(raw),
            }));
        }
    };
    while i < line.len() {
        let c = line[i];
        if c == b'\\' && i + 1 < line.len() {
            let b = owned.get_or_insert_with(|| line[start..i].to_vec());
            let n = line[i + 1];
            i += 2;
            match n {
                b'b' => b.push(8),
                b'f' => b.push(12),
                b'n' => b.push(b'\n'),
                b'r' => b.push(b'\r'),
                b't' => b.push(b'\t'),
                b'v' => b.push(11),
                b'0'..=b'7' => {
                    let mut v = (n - b'0') as u32;
                    let mut k = 0;
                    while k < 2 && i < line.len() && (b'0'..=b'7').contains(&line[i]) {
                        v = v * 8 + (line[i] - b'0') as u32;
                        i += 1;
                        k += 1;
                    }
                    b.push(v as u8);
                }
                b'x' if i < line.len() && line[i].is_ascii_hexdigit() => {
                    let mut v = 0u32;
                    let mut k = 0;
                    while k < 2 && i < line.len() && line[i].is_ascii_hexdigit() {
                        v = v * 16 + (line[i] as char).to_digit(16).unwrap_or(0);
                        i += 1;
                        k += 1;
                    }
                    b.push(v as u8);
                }
                other => b.push(other),
            }
            continue;
        }
        if c == delim {
            finish(start, i, owned.take(), &mut out);
            i += 1;
            start = i;
            continue;
        }
        if let Some(b) = owned.as_mut() {
            b.push(c);
        }
        i += 1;
    }
    finish(start, line.len(), owned.take(), &mut out);
    out
}

/// COPY TO's writer: one CopyData per row (the header travels with the first row
/// or alone), the binary trailer at the end.
pub struct Encoder {
    options: CopyOptions,
    fields: Arc<Vec<pgwire::api::results::FieldInfo>>,
    names: Vec<String>,
    force_quote: Vec<bool>,
    header_pending: bool,
}

impl Encoder {
    pub fn new(options: CopyOptions, schema: &SchemaRef) -> crate::error::Result<Encoder> {
        let wire = if options.format == CopyFormat::Binary { WireFormat::UnifiedBinary } else { WireFormat::UnifiedText };
        let fields = Arc::new(encode::field_infos(schema, &wire));
        let names: Vec<String> = fields.iter().map(|f| f.name().to_string()).collect();
        for n in &options.force_quote {
            if !names.contains(n) {
                return Err(Error::State("42P10", format!("FORCE_QUOTE column \"{n}\" not referenced by COPY")));
            }
        }
        let force_quote = names.iter().map(|n| options.force_quote_all || options.force_quote.contains(n)).collect();
        let header_pending = options.header || options.format == CopyFormat::Binary;
        Ok(Encoder { options, fields, names, force_quote, header_pending })
    }

    pub fn wire_format(&self) -> i8 {
        if self.options.format == CopyFormat::Binary { 1 } else { 0 }
    }

    pub fn columns(&self) -> usize {
        self.fields.len()
    }

    /// The header alone (csv HEADER, binary signature) if no row carried it.
    pub fn leftover_header(&mut self) -> Option<Bytes> {
        if !self.header_pending {
            return None;
        }
        let mut b = BytesMut::new();
        self.header(&mut b);
        Some(b.freeze())
    }

    pub fn trailer(&self) -> Option<Bytes> {
        (self.options.format == CopyFormat::Binary).then(|| Bytes::from_static(&[0xff, 0xff]))
    }

    fn header(&mut self, out: &mut BytesMut) {
        self.header_pending = false;
        match self.options.format {
            CopyFormat::Binary => {
                out.put_slice(BINARY_SIGNATURE);
                out.put_i32(0);
                out.put_i32(0);
            }
            _ => {
                let names: Vec<Option<Vec<u8>>> = self.names.iter().map(|n| Some(n.as_bytes().to_vec())).collect();
                let quote_none = vec![false; names.len()];
                self.csv_line(out, names.iter().map(|n| n.as_deref()), &quote_none);
            }
        }
    }

    /// Each row of `batch` as its COPY bytes.
    pub fn rows(&mut self, batch: &RecordBatch) -> PgWireResult<Vec<Bytes>> {
        let rows = encode::encode_batch(batch, &self.fields)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut b = BytesMut::with_capacity(row.data.len() + 16);
            if self.header_pending {
                self.header(&mut b);
            }
            let values = row_fields(&row.data, row.field_count);
            match self.options.format {
                CopyFormat::Binary => {
                    b.put_i16(row.field_count);
                    b.put_slice(&row.data);
                }
                CopyFormat::Text => self.text_line(&mut b, values),
                CopyFormat::Csv => {
                    let fq = self.force_quote.clone();
                    self.csv_line(&mut b, values.into_iter(), &fq)
                }
            }
            out.push(b.freeze());
        }
        Ok(out)
    }

    fn text_line<'a>(&self, out: &mut BytesMut, values: Vec<Option<&'a [u8]>>) {
        let d = self.options.delimiter;
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                out.put_u8(d);
            }
            match v {
                None => out.put_slice(self.options.null.as_bytes()),
                Some(v) => {
                    for &c in v {
                        match c {
                            b'\\' => out.put_slice(b"\\\\"),
                            b'\n' => out.put_slice(b"\\n"),
                            b'\r' => out.put_slice(b"\\r"),
                            b'\t' if d == b'\t' => out.put_slice(b"\\t"),
                            8 => out.put_slice(b"\\b"),
                            12 => out.put_slice(b"\\f"),
                            11 => out.put_slice(b"\\v"),
                            c if c == d => {
                                out.put_u8(b'\\');
                                out.put_u8(c);
                            }
                            c => out.put_u8(c),
                        }
                    }
                }
            }
        }
        out.put_u8(b'\n');
    }

    fn csv_line<'a>(&self, out: &mut BytesMut, values: impl Iterator<Item = Option<&'a [u8]>>, force: &[bool]) {
        let o = &self.options;
        let null = o.null.as_bytes();
        for (i, v) in values.enumerate() {
            if i > 0 {
                out.put_u8(o.delimiter);
            }
            match v {
                None => out.put_slice(null),
                Some(v) => {
                    let needs = force.get(i).copied().unwrap_or(false)
                        || v == null
                        || v == b"\\."
                        || v.iter().any(|&c| c == o.delimiter || c == o.quote || c == b'\n' || c == b'\r' || (c == o.escape && o.escape != o.quote));
                    if needs {
                        out.put_u8(o.quote);
                        for &c in v {
                            if c == o.quote || c == o.escape {
                                out.put_u8(o.escape);
                            }
                            out.put_u8(c);
                        }
                        out.put_u8(o.quote);
                    } else {
                        out.put_slice(v);
                    }
                }
            }
        }
        out.put_u8(b'\n');
    }
}

/// A DataRow's fields (int32 length, -1 for NULL, then the bytes).
fn row_fields(data: &[u8], count: i16) -> Vec<Option<&[u8]>> {
    let mut out = Vec::with_capacity(count.max(0) as usize);
    let mut at = 0usize;
    for _ in 0..count.max(0) {
        let Some(l) = data.get(at..at + 4) else { break };
        let len = i32::from_be_bytes([l[0], l[1], l[2], l[3]]);
        at += 4;
        if len < 0 {
            out.push(None);
        } else {
            let end = (at + len as usize).min(data.len());
            out.push(Some(&data[at..end]));
            at = end;
        }
    }
    out
}

/// Send a COPY TO: CopyOutResponse, a CopyData per row, CopyDone, `COPY n`. An
/// error in the rows ends it with that error (the caller sends it), as PostgreSQL does.
pub async fn send_copy_out<C>(client: &mut C, copy: CopyOut) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let CopyOut { options, schema, mut stream } = copy;
    let mut encoder = Encoder::new(options, &schema).map_err(|e| to_pg_error(&e))?;
    let format = encoder.wire_format();
    let n = encoder.columns();
    client.send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(format, n as i16, vec![format as i16; n]))).await?;
    let mut rows = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| to_pg_error(&Error::from_datafusion(e)))?;
        for row in encoder.rows(&batch)? {
            client.feed(PgWireBackendMessage::CopyData(CopyData::new(row))).await?;
            rows += 1;
        }
    }
    for extra in [encoder.leftover_header(), encoder.trailer()].into_iter().flatten() {
        client.feed(PgWireBackendMessage::CopyData(CopyData::new(extra))).await?;
    }
    client.feed(PgWireBackendMessage::CopyDone(CopyDone::new())).await?;
    client.send(PgWireBackendMessage::CommandComplete(Tag::new("COPY").with_rows(rows).into())).await?;
    Ok(())
}

/// [`send_copy_out`] that a CancelRequest stops (its rows are computed as they are
/// sent, so the statement runs here, not before).
pub async fn send_copy_out_cancellable<C>(client: &mut C, copy: CopyOut) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let cancel = match client.session_extensions().get::<Arc<pgwire::api::ConnectionHandle>>() {
        Some(handle) => Some(handle.start_query().await),
        None => None,
    };
    match cancel {
        Some(cancel) => {
            let work = send_copy_out(client, copy);
            tokio::pin!(work);
            tokio::select! {
                r = &mut work => r,
                _ = cancel => Err(PgWireError::QueryCanceled),
            }
        }
        None => send_copy_out(client, copy).await,
    }
}

/// A COPY FROM under way on a connection.
struct Receiving {
    decoder: Decoder,
    rows: crate::engine::CopyRows,
    /// The INSERT, running on the query runtime; dropping this stops it.
    insert: Pin<Box<dyn Future<Output = crate::error::Result<usize>> + Send>>,
    _copy: CopyIn,
}

/// The connection's COPY FROM, between its CopyData messages.
#[derive(Default)]
struct Slot(parking_lot::Mutex<Option<Receiving>>);

fn slot<C: ClientInfo + ?Sized>(client: &C) -> Arc<Slot> {
    client.session_extensions().get_or_insert_with(Slot::default)
}

/// Start a COPY FROM: its INSERT, then CopyInResponse; the connection is in copy-in
/// mode until CopyDone or CopyFail.
pub async fn start_copy_in<C>(engine: &Arc<Engine>, session: &Arc<Session>, client: &mut C, mut copy: CopyIn, extended: bool) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let decoder = Decoder::new(copy.options.clone(), copy.schema.clone()).map_err(|e| to_pg_error(&e))?;
    let format = decoder.wire_format();
    let n = copy.schema.fields().len();
    let insert = Box::pin(engine.run_copy_in(session, &mut copy));
    let rows = copy.rows.clone();
    *slot(client).0.lock() = Some(Receiving { decoder, rows, insert, _copy: copy });
    client.set_state(PgWireConnectionState::CopyInProgress(extended));
    client.send(PgWireBackendMessage::CopyInResponse(CopyInResponse::new(format, n as i16, vec![format as i16; n]))).await?;
    Ok(())
}

/// CopyData, CopyDone and CopyFail of a COPY FROM.
pub struct LakehouseCopyHandler;

impl Receiving {
    /// Hand `batches` to the INSERT; if it has stopped, its error.
    async fn send(&mut self, batches: Vec<RecordBatch>) -> crate::error::Result<()> {
        for b in batches {
            if self.rows.send(Some(b)).await.is_err() {
                return match (&mut self.insert).await {
                    Err(e) => Err(e),
                    Ok(_) => Err(Error::Internal("COPY's INSERT ended before its input".into())),
                };
            }
        }
        Ok(())
    }
}

#[async_trait]
impl CopyHandler for LakehouseCopyHandler {
    async fn on_copy_data<C>(&self, client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let slot = slot(client);
        let Some(mut r) = slot.0.lock().take() else {
            return Err(to_pg_error(&Error::Protocol("CopyData without a COPY FROM STDIN".into())));
        };
        let batches = r.decoder.feed(&copy_data.data).map_err(|e| to_pg_error(&e))?;
        r.send(batches).await.map_err(|e| to_pg_error(&e))?;
        *slot.0.lock() = Some(r);
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(mut r) = slot(client).0.lock().take() else {
            return Err(to_pg_error(&Error::Protocol("CopyDone without a COPY FROM STDIN".into())));
        };
        let batches = r.decoder.finish().map_err(|e| to_pg_error(&e))?;
        r.send(batches).await.map_err(|e| to_pg_error(&e))?;
        let _ = r.rows.send(None).await;
        let rows = (&mut r.insert).await.map_err(|e| to_pg_error(&e))?;
        client.send(PgWireBackendMessage::CommandComplete(Tag::new("COPY").with_rows(rows).into())).await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // Dropping the sender without its end marker fails the INSERT: nothing is written.
        drop(slot(client).0.lock().take());
        to_pg_error(&Error::State("57014", format!("COPY from stdin failed: {}", fail.message)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};

    fn opts(format: CopyFormat) -> CopyOptions {
        let csv = format == CopyFormat::Csv;
        CopyOptions {
            format,
            delimiter: if csv { b',' } else { b'\t' },
            null: if csv { String::new() } else { "\\N".into() },
            header: false,
            quote: b'"',
            escape: b'"',
            force_quote: vec![],
            force_quote_all: false,
            force_not_null: vec![],
            force_null: vec![],
        }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("emb", DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), 2), true),
        ]))
    }

    /// Feed `input` split at every position, so each state meets a message boundary.
    fn read_split(format: CopyFormat, header: bool, input: &[u8]) -> Vec<RecordBatch> {
        let mut whole = None;
        for cut in 0..=input.len() {
            let mut o = opts(format);
            o.header = header && format == CopyFormat::Csv;
            let mut d = Decoder::new(o, schema()).unwrap();
            let mut out = d.feed(&input[..cut]).unwrap();
            out.extend(d.feed(&input[cut..]).unwrap());
            out.extend(d.finish().unwrap());
            let text = datafusion::arrow::util::pretty::pretty_format_batches(&out).unwrap().to_string();
            match &whole {
                None => whole = Some(text),
                Some(w) => assert_eq!(w, &text, "split at {cut}"),
            }
            if cut == input.len() {
                return out;
            }
        }
        unreachable!()
    }

    fn pretty(b: &[RecordBatch]) -> String {
        datafusion::arrow::util::pretty::pretty_format_batches(b).unwrap().to_string()
    }

    #[test]
    fn text_csv_and_binary_read_the_same_rows_however_the_bytes_are_split() {
        let text = read_split(CopyFormat::Text, false, b"1\ta\\tb\\\\c\t[1,2]\n2\t\\N\t\\N\n3\t\\x41\\101\t{3,4}");
        let csv = read_split(CopyFormat::Csv, true, b"id,name,emb\n1,\"a\tb\\c\",\"[1,2]\"\r\n2,,\n3,AA,\"{3,4}\"\n");
        let mut bin = BINARY_SIGNATURE.to_vec();
        bin.extend([0, 0, 0, 0, 0, 0, 0, 0]);
        let row = |id: i64, name: Option<&str>, v: Option<[f32; 2]>| {
            let mut r = vec![0u8, 3];
            r.extend(8i32.to_be_bytes());
            r.extend(id.to_be_bytes());
            match name {
                Some(n) => {
                    r.extend((n.len() as i32).to_be_bytes());
                    r.extend(n.as_bytes());
                }
                None => r.extend((-1i32).to_be_bytes()),
            }
            match v {
                Some(v) => {
                    r.extend(12i32.to_be_bytes());
                    r.extend(2i16.to_be_bytes());
                    r.extend(0i16.to_be_bytes());
                    r.extend(v[0].to_be_bytes());
                    r.extend(v[1].to_be_bytes());
                }
                None => r.extend((-1i32).to_be_bytes()),
            }
            r
        };
        bin.extend(row(1, Some("a\tb\\c"), Some([1.0, 2.0])));
        bin.extend(row(2, None, None));
        bin.extend(row(3, Some("AA"), Some([3.0, 4.0])));
        bin.extend([0xff, 0xff]);
        let binary = read_split(CopyFormat::Binary, false, &bin);
        let want = pretty(&text);
        assert!(want.contains("a\tb\\c") || want.contains("a	b\\c"), "{want}");
        assert_eq!(pretty(&csv).replace("| 2  |       |", "| 2  |       |"), pretty(&binary).replace("| 2  |       |", "| 2  |       |"));
        // csv's unquoted empty field is NULL, as text's \N.
        assert_eq!(text[0].column(1).null_count(), 1);
        assert_eq!(csv[0].column(1).null_count(), 1);
        assert_eq!(binary[0].column(2).null_count(), 1);
        assert_eq!(want, pretty(&binary));
    }

    #[test]
    fn bad_input_is_an_error_with_its_line() {
        let mut d = Decoder::new(opts(CopyFormat::Text), schema()).unwrap();
        let e = d.feed(b"1\ta\n2\n").unwrap_err();
        assert_eq!(e.sqlstate(), "22P04");
        let mut d = Decoder::new(opts(CopyFormat::Text), schema()).unwrap();
        let e = d.feed(b"1\ta\t[1,2,3]\n").unwrap_err();
        assert!(e.message().contains("line 1"), "{}", e.message());
        let mut d = Decoder::new(opts(CopyFormat::Binary), schema()).unwrap();
        assert_eq!(d.feed(b"NOTCOPY\n\xff\r\n\0").unwrap_err().sqlstate(), "22P04");
        let mut d = Decoder::new(opts(CopyFormat::Csv), schema()).unwrap();
        d.feed(b"1,\"open").unwrap();
        assert_eq!(d.finish().unwrap_err().sqlstate(), "22P04");
        // A declared field length past what is sent waits; past 1 GB it is refused.
        let mut d = Decoder::new(opts(CopyFormat::Binary), schema()).unwrap();
        let mut b = BINARY_SIGNATURE.to_vec();
        b.extend([0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0x7f, 0xff, 0xff, 0xff]);
        assert_eq!(d.feed(&b).unwrap_err().sqlstate(), "54000");
    }

    #[test]
    fn text_and_csv_output_escape_as_postgres_does() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true), Field::new("b b", DataType::Int32, true)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(datafusion::arrow::array::StringArray::from(vec![Some("x\ty\\z\n"), None, Some(""), Some("q\"r,s")])),
                Arc::new(datafusion::arrow::array::Int32Array::from(vec![Some(1), Some(2), None, Some(4)])),
            ],
        )
        .unwrap();
        let mut e = Encoder::new(opts(CopyFormat::Text), &schema).unwrap();
        let text: Vec<u8> = e.rows(&batch).unwrap().concat();
        assert_eq!(String::from_utf8(text).unwrap(), "x\\ty\\\\z\\n\t1\n\\N\t2\n\t\\N\nq\"r,s\t4\n");
        let mut o = opts(CopyFormat::Csv);
        o.header = true;
        let mut e = Encoder::new(o, &schema).unwrap();
        let rows = e.rows(&batch).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(String::from_utf8(rows.concat()).unwrap(), "a,b b\n\"x\ty\\z\n\",1\n,2\n\"\",\n\"q\"\"r,s\",4\n");
        assert!(e.leftover_header().is_none());
    }
}
