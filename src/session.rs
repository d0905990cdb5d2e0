//! Per-connection session state: the session's DataFusion context (its own config and
//! prepared statements, sharing the engine's catalogs), `SET` variables, and NOTICEs
//! waiting to be sent to the client.

use std::collections::BTreeMap;
use std::sync::Mutex;

use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};

/// Settings every session has, with their defaults. Names are lowercase.
/// PostgreSQL's client-facing parameters are accepted and reported so drivers and
/// psql are at home; `lakehouse.*` are ours.
pub const DEFAULTS: &[(&str, &str, &str)] = &[
    ("lakehouse.bucket", "primary", "bucket that CREATE TABLE writes new datasets to"),
    ("embedding.default_model", "hash", "model embed(text) and text indexes use when none is named"),
    ("embedding.batch_size", "64", "texts per request to an embedding provider (1-2048)"),
    ("application_name", "", "name reported by the client"),
    ("bytea_output", "hex", "output format of bytea"),
    ("client_encoding", "UTF8", "client character set"),
    ("client_min_messages", "notice", "lowest message level sent to the client"),
    ("datestyle", "ISO, MDY", "display format for dates"),
    ("default_table_access_method", "heap", "access method of new tables (heap: Parquet files in a bucket)"),
    ("default_transaction_isolation", "read committed", "isolation of new transactions"),
    ("default_transaction_read_only", "off", "new transactions are read-only"),
    ("default_transaction_deferrable", "off", "new serializable read-only transactions are deferrable"),
    ("enable_seqscan", "on", "off: ORDER BY a distance over an HNSW-indexed column reads only the rows the index holds (no NULL, for cosine no zero vectors), as PostgreSQL's index scan"),
    ("enable_indexscan", "on", "accepted; lakehouse's planner chooses scans itself"),
    ("enable_bitmapscan", "on", "accepted; lakehouse's planner chooses scans itself"),
    ("extra_float_digits", "1", "extra digits for floating point output"),
    ("idle_in_transaction_session_timeout", "0", "accepted; not enforced"),
    ("integer_datetimes", "on", "datetimes are integer based"),
    ("intervalstyle", "postgres", "display format for intervals"),
    ("lc_collate", "C", "collation"),
    ("lc_ctype", "C", "character classification"),
    ("lc_messages", "C", "message language"),
    ("lock_timeout", "0", "accepted; not enforced"),
    ("maintenance_work_mem", "64MB", "accepted; index builds size their memory themselves"),
    ("max_parallel_maintenance_workers", "2", "accepted; index builds use every core"),
    ("max_identifier_length", "63", "longest identifier"),
    ("search_path", "public", "schema search order"),
    ("server_encoding", "UTF8", "server character set"),
    ("server_version", crate::udf::version::PG_COMPAT_VERSION, "PostgreSQL version lakehouse is compatible with"),
    ("server_version_num", "160006", "PostgreSQL version number"),
    ("standard_conforming_strings", "on", "backslashes are literal in strings"),
    ("statement_timeout", "0", "longest a statement may run (ms, or with a unit: 5s, 1min); 0: no limit"),
    ("synchronous_commit", "on", "accepted; catalog writes are always durable"),
    ("timezone", "UTC", "time zone for timestamps"),
    ("transaction_isolation", "read committed", "current transaction isolation"),
    ("transaction_read_only", "off", "current transaction is read-only"),
    ("transaction_deferrable", "off", "current transaction is deferrable"),
    ("password_encryption", "scram-sha-256", "algorithm for encrypting passwords"),
];

/// A session's temporary objects (#14): tables in memory, their SERIAL sequences,
/// and their definitions; all dropped with the session.
pub struct TempObjects {
    /// The session's `pg_temp` schema (table_providers/temp.rs).
    pub schema: std::sync::Arc<datafusion::catalog::MemorySchemaProvider>,
    pub sequences: std::sync::Arc<crate::catalog::sequences::Sequences>,
    pub tables: std::sync::Arc<Mutex<BTreeMap<String, crate::catalog::datasets::DatasetRecord>>>,
}

impl Default for TempObjects {
    fn default() -> Self {
        TempObjects {
            schema: std::sync::Arc::new(datafusion::catalog::MemorySchemaProvider::new()),
            sequences: std::sync::Arc::new(crate::catalog::sequences::Sequences::in_memory()),
            tables: Default::default(),
        }
    }
}

pub struct Session {
    pub id: String,
    pub user: String,
    pub database: String,
    pub ctx: SessionContext,
    /// May manage buckets, read and write server files, name secrets, change the
    /// runtime's filesystem and memory settings.
    pub superuser: bool,
    vars: Mutex<BTreeMap<String, String>>,
    notices: Mutex<Vec<String>>,
    /// The plans of SQL-level `PREPARE name AS …`, checked again at each `EXECUTE
    /// name` (DataFusion keeps its copy out of reach).
    pub(crate) sql_prepared: Mutex<std::collections::HashMap<String, datafusion::logical_expr::LogicalPlan>>,
    /// The protocol-level statements the client has Parsed, by name, with their text
    /// (the server keeps the plans; `DEALLOCATE` and `EXECUTE name` must find them too).
    pub protocol_statements: Mutex<std::collections::HashMap<String, String>>,
    /// Protocol-level statements a `DEALLOCATE` removed, for the server to drop from
    /// its store after the statement (None: all of them).
    pub deallocated: Mutex<Vec<Option<String>>>,
    /// Temporary tables and sequences.
    pub temp: TempObjects,
    /// Open cursors (DECLARE … CURSOR; engine/cursors.rs).
    pub cursors: crate::engine::cursors::Cursors,
    /// Settings the client gave in its start-up packet: RESET returns to them.
    startup: Mutex<BTreeMap<String, String>>,
    /// What pg_stat_activity shows of this session, and how to signal it.
    pub backend: std::sync::Arc<crate::backends::Backend>,
    /// The options the session started with (the engine's: default catalog and
    /// schema, our extensions), which RESET returns to — not DataFusion's defaults.
    initial: datafusion::config::ConfigOptions,
    /// Between BEGIN and COMMIT/ROLLBACK: `transaction_*` settings are the block's
    /// own; outside, each statement is a transaction with the `default_transaction_*`
    /// characteristics.
    in_block: std::sync::atomic::AtomicBool,
}

const NOTICE_MARK: char = '\u{1}';

/// A notice's severity, SQLSTATE and message: NOTICE 00000 unless it was made by
/// [`Session::notice_with`] or starts `WARNING: `.
pub fn notice_parts(n: &str) -> (&str, &str, &str) {
    if let Some(rest) = n.strip_prefix(NOTICE_MARK) {
        let mut parts = rest.splitn(3, NOTICE_MARK);
        if let (Some(severity), Some(code), Some(msg)) = (parts.next(), parts.next(), parts.next()) {
            return (severity, code, msg);
        }
    }
    match n.strip_prefix("WARNING: ") {
        Some(m) => ("WARNING", "01000", m),
        None => ("NOTICE", "00000", n),
    }
}

/// The transaction characteristics, each with the default new transactions take.
const TRANSACTION_SETTINGS: &[(&str, &str)] = &[
    ("transaction_isolation", "default_transaction_isolation"),
    ("transaction_read_only", "default_transaction_read_only"),
    ("transaction_deferrable", "default_transaction_deferrable"),
];

/// An isolation level as PostgreSQL spells it in SHOW.
pub fn isolation_level(value: &str) -> Option<&'static str> {
    let v = value.trim().to_ascii_lowercase();
    let v: Vec<&str> = v.split(|c: char| c.is_whitespace() || c == '_' || c == '-').filter(|w| !w.is_empty()).collect();
    Some(match v.join(" ").as_str() {
        "serializable" => "serializable",
        "repeatable read" => "repeatable read",
        "read committed" => "read committed",
        "read uncommitted" => "read uncommitted",
        _ => return None,
    })
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.id).field("user", &self.user).finish()
    }
}

/// How psql and drivers spell some settings vs. the canonical name.
fn canonical(name: &str) -> String {
    let n = name.to_lowercase();
    match n.as_str() {
        "time zone" | "time_zone" => "timezone".into(),
        "transaction isolation level" => "transaction_isolation".into(),
        "session authorization" => "session_authorization".into(),
        _ => n,
    }
}

impl Session {
    pub fn new(id: String, user: String, database: String, ctx: SessionContext, backend: std::sync::Arc<crate::backends::Backend>) -> Session {
        let initial = ctx.state_ref().read().config_options().as_ref().clone();
        Session {
            temp: TempObjects::default(),
            cursors: Default::default(),
            in_block: Default::default(),
            startup: Mutex::default(),
            backend,
            id,
            user,
            database,
            ctx,
            superuser: true,
            vars: Mutex::default(),
            notices: Mutex::default(),
            sql_prepared: Mutex::default(),
            protocol_statements: Mutex::default(),
            deallocated: Mutex::default(),
            initial,
        }
    }

    /// The session's temporary objects: those its context's catalog list shows.
    pub fn with_temp(mut self, temp: TempObjects) -> Session {
        self.temp = temp;
        self
    }

    pub fn with_superuser(mut self, superuser: bool) -> Session {
        self.superuser = superuser;
        self
    }

    /// Who runs this session, as the privilege checks take it.
    pub fn identity(&self) -> crate::catalog::roles::Identity {
        crate::catalog::roles::Identity { user: self.user.clone(), superuser: self.superuser }
    }

    /// 42501 unless this session's user is a superuser; `what` names the action.
    pub fn require_superuser(&self, what: &str) -> Result<()> {
        if self.superuser {
            return Ok(());
        }
        Err(Error::PermissionDenied(format!(
            "{what} requires a superuser; user \"{}\" is not one (set superuser = true for it in lakehouse.toml [[auth.users]])",
            self.user
        )))
    }

    /// `statement_timeout` in milliseconds (0: none).
    pub fn statement_timeout_ms(&self) -> u64 {
        self.get("statement_timeout").ok().and_then(|v| parse_duration_ms(&v)).unwrap_or(0)
    }

    pub fn notice(&self, msg: impl Into<String>) {
        self.notices.lock().unwrap_or_else(|p| p.into_inner()).push(msg.into());
    }

    /// A notice of another severity (WARNING, INFO) or SQLSTATE than NOTICE 00000;
    /// [`notice_parts`] reads it back.
    pub fn notice_with(&self, severity: &str, code: &str, msg: &str) {
        self.notice(format!("{NOTICE_MARK}{severity}{NOTICE_MARK}{code}{NOTICE_MARK}{msg}"));
    }

    pub fn has_notices(&self) -> bool {
        !self.notices.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    pub fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut *self.notices.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Settings kept in DataFusion's config: its own and our extensions (`hnsw.*`).
    fn is_datafusion(name: &str) -> bool {
        name.starts_with("datafusion.") || name.starts_with("hnsw.")
    }

    /// `SET name = value`.
    pub fn set(&self, name: &str, value: &str) -> Result<()> {
        let name = canonical(name);
        if Self::is_datafusion(&name) {
            crate::engine::limits::check_datafusion_setting(&name, value, self)?;
            check_hnsw_setting(&name, value)?;
            let state = self.ctx.state_ref();
            let mut state = state.write();
            return state
                .config_mut()
                .options_mut()
                .set(&name, value)
                .map_err(|e| Error::InvalidParameter(e.to_string()));
        }
        if matches!(name.as_str(), "server_version" | "server_version_num" | "server_encoding" | "integer_datetimes" | "max_identifier_length" | "lc_collate" | "lc_ctype") {
            return Err(Error::InvalidParameter(format!(
                "parameter \"{name}\" cannot be changed"
            )));
        }
        let known = DEFAULTS.iter().any(|(n, _, _)| *n == name);
        // Like PostgreSQL, a dotted name is a custom (placeholder) variable; other
        // unknown names are refused. `lakehouse.*` are ours and must be known.
        if !known && (!name.contains('.') || name.starts_with("lakehouse.")) {
            return Err(Error::UnknownSetting(name));
        }
        if name == "lakehouse.bucket" {
            crate::catalog::buckets::validate_name("bucket", value)?;
        }
        if name == "statement_timeout" && parse_duration_ms(value).is_none() {
            return Err(Error::InvalidParameter(format!(
                "invalid value for parameter \"statement_timeout\": \"{value}\"; it takes milliseconds, or a number with a unit (ms, s, min, h)"
            )));
        }
        if name == "embedding.batch_size" && !matches!(value.trim().parse::<i64>(), Ok(1..=2048)) {
            return Err(Error::InvalidParameter(format!(
                "invalid value for parameter \"embedding.batch_size\": \"{value}\"; it takes an integer between 1 and 2048"
            )));
        }
        let value = if name == "enable_seqscan" {
            let on = parse_pg_bool(value).ok_or_else(|| Error::InvalidParameter(format!("parameter \"{name}\" requires a Boolean value")))?;
            self.set_enable_seqscan(on)?;
            if on { "on" } else { "off" }
        } else {
            value
        };
        let value = if name.ends_with("transaction_isolation") {
            isolation_level(value).ok_or_else(|| {
                Error::InvalidParameter(format!(
                    "invalid value for parameter \"{name}\": \"{value}\"; it takes serializable, repeatable read, read committed or read uncommitted"
                ))
            })?
        } else if name.ends_with("transaction_read_only") || name.ends_with("transaction_deferrable") {
            let on = parse_pg_bool(value).ok_or_else(|| Error::InvalidParameter(format!("parameter \"{name}\" requires a Boolean value")))?;
            if on { "on" } else { "off" }
        } else {
            value
        };
        if name == "application_name" {
            *self.backend.application_name.lock().unwrap_or_else(|p| p.into_inner()) = value.to_string();
        }
        let mut vars = self.vars.lock().unwrap_or_else(|p| p.into_inner());
        // Outside a transaction block the next statement's transaction takes the new
        // default at once.
        if let Some((current, _)) = TRANSACTION_SETTINGS.iter().find(|(_, default)| *default == name) {
            if !self.in_transaction_block() {
                vars.insert(current.to_string(), value.to_string());
            }
        }
        vars.insert(name, value.to_string());
        Ok(())
    }

    pub fn in_transaction_block(&self) -> bool {
        self.in_block.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// BEGIN: the block's characteristics are the defaults, then what BEGIN names
    /// (`ISOLATION LEVEL …`, `READ ONLY`).
    pub fn begin_block(&self, modes: &[(&str, &str)]) -> Result<()> {
        self.end_block();
        self.in_block.store(true, std::sync::atomic::Ordering::Relaxed);
        self.backend.set_block(true);
        for (name, value) in modes {
            self.set(name, value)?;
        }
        Ok(())
    }

    /// COMMIT or ROLLBACK: back to the defaults.
    pub fn end_block(&self) {
        self.in_block.store(false, std::sync::atomic::Ordering::Relaxed);
        self.backend.set_block(false);
        let mut vars = self.vars.lock().unwrap_or_else(|p| p.into_inner());
        for (current, default) in TRANSACTION_SETTINGS {
            match vars.get(*default).cloned() {
                Some(v) => vars.insert(current.to_string(), v),
                None => vars.remove(*current),
            };
        }
    }

    /// `SHOW name`.
    pub fn get(&self, name: &str) -> Result<String> {
        let name = canonical(name);
        if name == "hnsw.ef_search" {
            return Ok(show_ef_search(self.ctx.state().config_options()));
        }
        if let Some(v) = show_hnsw(self.ctx.state().config_options(), &name) {
            return Ok(v);
        }
        if Self::is_datafusion(&name) {
            let state = self.ctx.state();
            return state
                .config_options()
                .entries()
                .into_iter()
                .find(|e| e.key == name)
                .map(|e| e.value.unwrap_or_default())
                .ok_or(Error::UnknownSetting(name));
        }
        if name == "session_authorization" || name == "is_superuser" {
            return Ok(if name == "is_superuser" {
                if self.superuser { "on".into() } else { "off".into() }
            } else {
                self.user.clone()
            });
        }
        if let Some(v) = self.vars.lock().unwrap_or_else(|p| p.into_inner()).get(&name) {
            return Ok(v.clone());
        }
        DEFAULTS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, _)| v.to_string())
            .ok_or(Error::UnknownSetting(name))
    }

    /// `RESET name` / `RESET ALL` (name = None).
    pub fn reset(&self, name: Option<&str>) -> Result<()> {
        let mut vars = self.vars.lock().unwrap_or_else(|p| p.into_inner());
        match name.map(canonical) {
            None => {
                *vars = self.startup.lock().unwrap_or_else(|p| p.into_inner()).clone();
                drop(vars);
                self.sync_application_name();
                {
                    let state = self.ctx.state_ref();
                    let mut state = state.write();
                    *state.config_mut().options_mut() = self.initial.clone();
                }
                self.sync_planner()
            }
            Some(n) if n == "hnsw.ef_search" => {
                drop(vars);
                // Back to "not set" (0), which SET refuses as a value.
                let state = self.ctx.state_ref();
                let mut state = state.write();
                state.config_mut().options_mut().set(&n, "0").map_err(|e| Error::InvalidParameter(e.to_string()))
            }
            Some(n) if Self::is_datafusion(&n) => {
                drop(vars);
                if let Some(v) = show_hnsw(&self.initial, &n) {
                    return self.set(&n, &v);
                }
                let default = self
                    .initial
                    .entries()
                    .into_iter()
                    .find(|e| e.key == n)
                    .ok_or_else(|| Error::UnknownSetting(n.clone()))?;
                self.set(&n, &default.value.unwrap_or_default())
            }
            Some(n) => {
                if vars.remove(&n).is_none() && !DEFAULTS.iter().any(|(d, _, _)| *d == n) && !n.contains('.') {
                    return Err(Error::UnknownSetting(n));
                }
                if let Some(v) = self.startup.lock().unwrap_or_else(|p| p.into_inner()).get(&n) {
                    vars.insert(n.clone(), v.clone());
                }
                drop(vars);
                self.sync_application_name();
                self.sync_planner()
            }
        }
    }

    /// Settings from the client's start-up packet (`application_name`, `TimeZone`,
    /// `DateStyle`, …): set now, and what RESET returns to. Unknown or invalid ones
    /// are ignored, as drivers send parameters a server may not know.
    pub fn apply_startup(&self, params: &[(String, String)]) {
        for (name, value) in params {
            if self.set(name, value).is_ok() {
                let name = canonical(name);
                let kept = self.vars.lock().unwrap_or_else(|p| p.into_inner()).get(&name).cloned();
                if let Some(v) = kept {
                    self.startup.lock().unwrap_or_else(|p| p.into_inner()).insert(name, v);
                }
            }
        }
    }

    /// The planner's copy of `enable_seqscan` (hnsw_scan::IndexOrder reads it).
    fn set_enable_seqscan(&self, on: bool) -> Result<()> {
        let state = self.ctx.state_ref();
        let mut state = state.write();
        if state.config().options().extensions.get::<crate::table_providers::hnsw_scan::PgPlannerOptions>().is_none() {
            return Ok(()); // a bare context (tests): no planner to tell
        }
        state
            .config_mut()
            .options_mut()
            .set("pg_planner.enable_seqscan", if on { "true" } else { "false" })
            .map_err(|e| Error::InvalidParameter(e.to_string()))
    }

    /// After RESET: the planner's settings from the variables they mirror.
    fn sync_planner(&self) -> Result<()> {
        let v = self.vars.lock().unwrap_or_else(|p| p.into_inner()).get("enable_seqscan").cloned();
        self.set_enable_seqscan(v.as_deref().and_then(parse_pg_bool).unwrap_or(true))
    }

    fn sync_application_name(&self) {
        let name = self.vars.lock().unwrap_or_else(|p| p.into_inner()).get("application_name").cloned().unwrap_or_default();
        *self.backend.application_name.lock().unwrap_or_else(|p| p.into_inner()) = name;
    }

    /// `SHOW ALL`: (name, setting, description).
    pub fn all(&self) -> Vec<(String, String, String)> {
        let mut out: BTreeMap<String, (String, String)> = DEFAULTS
            .iter()
            .map(|(n, v, d)| (n.to_string(), (v.to_string(), d.to_string())))
            .collect();
        for (n, v) in self.vars.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            out.entry(n.clone()).or_insert_with(|| (String::new(), "custom".into())).0 = v.clone();
        }
        out.insert(
            "hnsw.ef_search".into(),
            (
                show_ef_search(self.ctx.state().config_options()),
                "candidates kept per HNSW index search (higher: better recall, slower); unset: each index's promoted ef_search, else 40".into(),
            ),
        );
        out.into_iter().map(|(n, (v, d))| (n, v, d)).collect()
    }

    pub fn bucket(&self) -> String {
        self.get("lakehouse.bucket").unwrap_or_else(|_| "primary".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        let backend = crate::backends::Backends::default().register(None, "u", "d", None);
        Session::new("s".into(), "u".into(), "d".into(), SessionContext::new(), backend)
    }

    #[test]
    fn set_show_reset() {
        let s = session();
        assert_eq!(s.get("DateStyle").unwrap(), "ISO, MDY");
        s.set("datestyle", "ISO, DMY").unwrap();
        assert_eq!(s.get("datestyle").unwrap(), "ISO, DMY");
        s.set("myapp.flag", "1").unwrap();
        assert_eq!(s.get("myapp.flag").unwrap(), "1");
        assert_eq!(s.set("nope", "1").unwrap_err().sqlstate(), "42704");
        assert_eq!(s.set("lakehouse.nope", "1").unwrap_err().sqlstate(), "42704");
        assert_eq!(s.set("server_version", "1").unwrap_err().sqlstate(), "22023");
        s.set("datafusion.execution.batch_size", "1024").unwrap();
        assert_eq!(s.get("datafusion.execution.batch_size").unwrap(), "1024");
        s.reset(Some("datestyle")).unwrap();
        assert_eq!(s.get("datestyle").unwrap(), "ISO, MDY");
        s.reset(None).unwrap();
        assert_eq!(s.get("datafusion.execution.batch_size").unwrap(), "8192");
        s.set("statement_timeout", "1.5s").unwrap();
        assert_eq!(s.statement_timeout_ms(), 1500);
        assert_eq!(s.set("statement_timeout", "soon").unwrap_err().sqlstate(), "22023");
        assert!(s.get("myapp.flag").is_err());
    }
}

/// PostgreSQL's time settings: a number of milliseconds, or a number with a unit.
pub fn parse_duration_ms(v: &str) -> Option<u64> {
    let t = v.trim().trim_matches('\'').trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => n,
        "s" => n * 1e3,
        "min" => n * 60e3,
        "h" => n * 3600e3,
        "d" => n * 86400e3,
        _ => return None,
    };
    (ms.is_finite() && (0.0..=i32::MAX as f64).contains(&ms)).then_some(ms as u64)
}

/// `SHOW hnsw.iterative_scan` / `max_scan_tuples` / `scan_mem_multiplier`.
fn show_hnsw(options: &datafusion::config::ConfigOptions, name: &str) -> Option<String> {
    let o = options.extensions.get::<crate::table_providers::hnsw_scan::HnswOptions>()?;
    Some(match name {
        "hnsw.iterative_scan" => o.iterative_scan.clone(),
        "hnsw.max_scan_tuples" => o.max_scan_tuples.to_string(),
        "hnsw.scan_mem_multiplier" => o.scan_mem_multiplier.to_string(),
        _ => return None,
    })
}

/// A PostgreSQL boolean setting: on/off, true/false, yes/no, 1/0, or a unique prefix
/// of one of the words (parse_bool in PostgreSQL's bool.c).
pub fn parse_pg_bool(value: &str) -> Option<bool> {
    let v = value.trim().trim_matches('\'').to_lowercase();
    let prefix = |word: &str, min: usize| v.len() >= min && word.starts_with(v.as_str());
    if prefix("true", 1) || prefix("yes", 1) || prefix("on", 2) || v == "1" {
        Some(true)
    } else if prefix("false", 1) || prefix("no", 1) || prefix("off", 2) || v == "0" {
        Some(false)
    } else {
        None
    }
}

/// pgvector's checks (and messages) for its settings.
fn check_hnsw_setting(name: &str, value: &str) -> Result<()> {
    let range = |lo: f64, hi: f64, integer: bool| -> Result<()> {
        let v = value.trim().trim_matches('\'');
        let parsed: Option<f64> = if integer { v.parse::<i64>().ok().map(|n| n as f64) } else { v.parse::<f64>().ok() };
        match parsed {
            Some(n) if n >= lo && n <= hi => Ok(()),
            Some(_) => Err(Error::InvalidParameter(format!("{v} is outside the valid range for parameter \"{name}\" ({lo} .. {hi})"))),
            None => Err(Error::InvalidParameter(format!(
                "invalid value for parameter \"{name}\": \"{v}\"\nHINT: {}",
                if integer { "It takes an integer." } else { "It takes a number." }
            ))),
        }
    };
    match name {
        "hnsw.ef_search" => range(1.0, crate::table_providers::hnsw_scan::EF_SEARCH_MAX as f64, true),
        "hnsw.max_scan_tuples" => range(1.0, i32::MAX as f64, true),
        "hnsw.scan_mem_multiplier" => range(1.0, 1000.0, false),
        "hnsw.iterative_scan" => match value.trim().trim_matches('\'').to_lowercase().as_str() {
            "off" | "relaxed_order" | "strict_order" => Ok(()),
            other => Err(Error::InvalidParameter(format!(
                "invalid value for parameter \"hnsw.iterative_scan\": \"{other}\"\nHINT: Available values: off, relaxed_order, strict_order."
            ))),
        },
        _ => Ok(()),
    }
}

/// `SHOW hnsw.ef_search`: the session's value, or 40 (pgvector's default) when unset
/// (an index with a promoted configuration then uses its own).
fn show_ef_search(options: &datafusion::config::ConfigOptions) -> String {
    crate::table_providers::hnsw_scan::ef_search(options).unwrap_or(crate::table_providers::hnsw_scan::DEFAULT_EF_SEARCH).to_string()
}
