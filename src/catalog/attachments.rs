//! Attached databases (`ATTACH 'mysql://…' AS shop`, `CALL attach(…)`): what is needed
//! to reconnect after a restart, and never a password.
//!
//! A location is kept without its password. The password comes, at connect time, from
//! the environment variable named by `password_env`, from a file the user names
//! (`password_file`), or — when the user wrote it into the URL — from a secret file
//! lakehouse writes under `<data-dir>/_catalog/secrets/` readable by the server user only
//! (mode 0600 in a 0700 directory). [`redact`] removes `user:password@` passwords from
//! any text that leaves the server (errors, logs, system tables).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Catalog;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteKind {
    Mysql,
    Postgres,
}

impl RemoteKind {
    pub fn name(self) -> &'static str {
        match self {
            RemoteKind::Mysql => "mysql",
            RemoteKind::Postgres => "postgres",
        }
    }

    pub fn parse(s: &str) -> Option<RemoteKind> {
        match s.to_ascii_lowercase().as_str() {
            "mysql" | "mariadb" => Some(RemoteKind::Mysql),
            "postgres" | "postgresql" => Some(RemoteKind::Postgres),
            _ => None,
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            RemoteKind::Mysql => 3306,
            RemoteKind::Postgres => 5432,
        }
    }
}

/// Where a connection's password comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", content = "name", rename_all = "lowercase")]
pub enum PasswordSource {
    None,
    /// An environment variable of the server process, read at each connect.
    Env(String),
    /// A file the user manages (first line), read at each connect.
    File(String),
    /// A secret file lakehouse wrote (the password was in the URL): its file name
    /// under `_catalog/secrets/`.
    Stored(String),
}

impl PasswordSource {
    /// What `lakehouse.attachments` shows: where, never what.
    pub fn describe(&self) -> String {
        match self {
            PasswordSource::None => "none".into(),
            PasswordSource::Env(v) => format!("env {v}"),
            PasswordSource::File(p) => format!("file {p}"),
            PasswordSource::Stored(_) => "stored (server-only file)".into(),
        }
    }
}

/// A parsed connection location: everything but the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub kind: RemoteKind,
    pub user: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    /// Query parameters (`sslmode`, …), minus any password.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

impl Location {
    /// Parse `mysql://user[:pass]@host[:port]/db[?k=v]` (or `postgres://`,
    /// `postgresql://`); returns the location and the password if the URL had one.
    pub fn parse(url_text: &str) -> Result<(Location, Option<String>)> {
        let bad = |why: &str| {
            Error::InvalidParameter(format!(
                "{why} in location {}; expected mysql://user@host:3306/db or postgres://user@host:5432/db",
                redact(url_text)
            ))
        };
        let url = url::Url::parse(url_text).map_err(|_| bad("not a URL"))?;
        let kind = RemoteKind::parse(url.scheme()).ok_or_else(|| bad("unknown scheme (mysql or postgres)"))?;
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host"))?.to_string();
        let database = url.path().trim_start_matches('/').to_string();
        if database.is_empty() || database.contains('/') {
            return Err(bad("no database name"));
        }
        let decode = |s: &str| percent_decode(s);
        let user = match url.username() {
            "" => match kind {
                RemoteKind::Mysql => "root".to_string(),
                RemoteKind::Postgres => "postgres".to_string(),
            },
            u => decode(u),
        };
        let mut password = url.password().map(decode);
        let mut params = BTreeMap::new();
        for (k, v) in url.query_pairs() {
            if k.eq_ignore_ascii_case("password") {
                password = Some(v.to_string());
            } else {
                params.insert(k.to_lowercase(), v.to_string());
            }
        }
        let location = Location {
            kind,
            user,
            host,
            port: url.port().unwrap_or(kind.default_port()),
            database: decode(&database),
            params,
        };
        Ok((location, password))
    }

    /// The URL without a password: what catalogs, errors and EXPLAIN show.
    pub fn display(&self) -> String {
        let mut s = format!("{}://{}@{}:{}/{}", self.kind.name(), self.user, self.host, self.port, self.database);
        if !self.params.is_empty() {
            let q: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push('?');
            s.push_str(&q.join("&"));
        }
        s
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How a column whose source type has no Arrow mapping is treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TypeFallback {
    /// Fail, naming the column and its type (the default).
    #[default]
    Error,
    /// Read it as text.
    Text,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentRecord {
    pub name: String,
    pub location: Location,
    pub password: PasswordSource,
    /// The source schema a Postgres attachment shows (default `public`); MySQL's is
    /// the database.
    #[serde(default)]
    pub remote_schema: Option<String>,
    #[serde(default)]
    pub types: TypeFallback,
    pub read_only: bool,
    pub created_at: String,
    /// Owner and ACL (USAGE) (#13); records from before have neither.
    #[serde(default, flatten)]
    pub access: super::roles::Access,
}

impl AttachmentRecord {
    /// The schema (MySQL: database) whose tables the attachment shows.
    pub fn source_schema(&self) -> String {
        match self.location.kind {
            RemoteKind::Mysql => self.location.database.clone(),
            RemoteKind::Postgres => self.remote_schema.clone().unwrap_or_else(|| "public".into()),
        }
    }
}

/// Replace the password of every `scheme://user:password@` in `text` with `***`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The user part ends at whitespace or a quote; a password may hold '/' or '@',
        // so it runs from the first ':' to the last '@' of that span.
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '\'' || c == '"' || c == '`')
            .unwrap_or(tail.len());
        let span = &tail[..end];
        match (span.find(':'), span.rfind('@')) {
            (Some(colon), Some(at)) if colon < at && !span[..colon].contains('/') => {
                out.push_str(&span[..colon]);
                out.push_str(":***");
                out.push_str(&span[at..]);
            }
            _ => out.push_str(span),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    // libpq key=value strings: password=… up to the next space.
    redact_key_value(&out)
}

fn redact_key_value(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(p) = lower[i..].find("password=") {
        let start = i + p + "password=".len();
        out.push_str(&text[i..start]);
        let end = text[start..].find(|c: char| c.is_whitespace() || c == '&' || c == ',').map(|e| start + e).unwrap_or(text.len());
        if end > start {
            out.push_str("***");
        }
        i = end;
    }
    out.push_str(&text[i..]);
    out
}

impl Catalog {
    pub fn attachment(&self, name: &str) -> Option<AttachmentRecord> {
        self.snapshot().attachments.get(name).cloned()
    }

    pub fn put_attachment(&self, record: AttachmentRecord) -> Result<()> {
        self.update(|s| {
            if s.attachments.contains_key(&record.name) {
                return Err(Error::DuplicateObject(format!("attachment \"{}\"", record.name)));
            }
            s.attachments.insert(record.name.clone(), record);
            Ok(())
        })
    }

    pub fn remove_attachment(&self, name: &str) -> Result<Option<AttachmentRecord>> {
        self.update(|s| Ok(s.attachments.remove(name)))
    }

    fn secrets_dir(&self) -> PathBuf {
        self.data_dir().join(super::CATALOG_DIR).join("secrets")
    }

    /// Keep `password` in a file only this user can read; returns its name.
    pub fn store_secret(&self, owner: &str, password: &str) -> Result<String> {
        let dir = self.secrets_dir();
        create_private_dir(&dir)?;
        let file = format!("{owner}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let path = dir.join(&file);
        write_private(&path, password.as_bytes())?;
        Ok(file)
    }

    pub fn read_secret(&self, file: &str) -> Result<String> {
        if file.contains('/') || file.contains("..") {
            return Err(Error::Internal("bad secret name".into()));
        }
        let path = self.secrets_dir().join(file);
        std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))
    }

    pub fn remove_secret(&self, file: &str) {
        if !file.contains('/') && !file.contains("..") {
            let _ = std::fs::remove_file(self.secrets_dir().join(file));
        }
    }
}

fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| Error::io(dir.display(), e))?;
    }
    Ok(())
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| Error::io(path.display(), e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(path.display(), e))
}

/// Resolve a password source to the password (None: connect without one).
pub fn resolve_password(catalog: &Catalog, source: &PasswordSource) -> Result<Option<String>> {
    match source {
        PasswordSource::None => Ok(None),
        PasswordSource::Env(var) => std::env::var(var).map(Some).map_err(|_| {
            Error::Configuration(format!(
                "environment variable {var} (password_env) is not set in the lakehouse server's environment"
            ))
        }),
        PasswordSource::File(path) => std::fs::read_to_string(path)
            .map(|s| Some(s.lines().next().unwrap_or("").to_string()))
            .map_err(|e| Error::Configuration(format!("cannot read password_file {path}: {e}"))),
        PasswordSource::Stored(file) => catalog.read_secret(file).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_without_their_password() {
        let (l, p) = Location::parse("mysql://bob:s3cr%40t@db.example:3307/shop?sslmode=disabled").unwrap();
        assert_eq!(p.as_deref(), Some("s3cr@t"));
        assert_eq!(l.display(), "mysql://bob@db.example:3307/shop?sslmode=disabled");
        let (l, p) = Location::parse("postgresql://127.0.0.1/crm").unwrap();
        assert_eq!(p, None);
        assert_eq!(l.display(), "postgres://postgres@127.0.0.1:5432/crm");
        for bad in ["mysql://bob:pw@host", "ftp://x@y/z", "nonsense"] {
            let e = Location::parse(bad).unwrap_err();
            assert_eq!(e.sqlstate(), "22023");
            assert!(!e.to_string().contains("pw@"), "{e}");
        }
    }

    #[test]
    fn redaction_removes_passwords_from_any_scheme() {
        assert_eq!(redact("mysql://root:hunter2@127.0.0.1:3306/test"), "mysql://root:***@127.0.0.1:3306/test");
        assert_eq!(
            redact("failed: 's3://AKIA:wJal/rX@Ut@bucket/key' and postgres://u:p@h/db"),
            "failed: 's3://AKIA:***@bucket/key' and postgres://u:***@h/db"
        );
        assert_eq!(redact("host=h user=u password=pw dbname=d"), "host=h user=u password=*** dbname=d");
        assert_eq!(redact("no secrets here: http://example.com/a"), "no secrets here: http://example.com/a");
        assert_eq!(redact("mysql://root@h/db"), "mysql://root@h/db");
    }
}
