//! One error type for the whole crate. Every variant knows its SQLSTATE, independent of
//! the wire: the server asks `sqlstate()` and the message, the CLI prints both.
//!
//! Errors raised inside DataFusion (planning, execution, our UDFs) travel as
//! `DataFusionError`; [`Error::from_datafusion`] walks the chain back to our own variant
//! when there is one and otherwise maps DataFusion's variants to the closest SQLSTATE.

use datafusion::error::DataFusionError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("relation \"{0}\" does not exist; see SELECT name FROM lakehouse.datasets")]
    TableNotFound(String),
    /// A database or table missing at an attached source (42P01).
    #[error("{0}")]
    RemoteNotFound(String),
    #[error("relation \"{0}\" already exists")]
    TableExists(String),
    #[error("column {0}")]
    ColumnNotFound(String),
    #[error("{0}")]
    UndefinedObject(String),
    #[error("{0} already exists")]
    DuplicateObject(String),
    #[error("procedure {0} does not exist; known procedures: {1}")]
    UnknownProcedure(String, String),
    #[error("{0}")]
    UnknownFunction(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("unrecognized configuration parameter \"{0}\"")]
    UnknownSetting(String),
    #[error("expected {expected} dimensions, not {got}")]
    DimensionMismatch { expected: usize, got: usize },
    #[error("{0}")]
    DataException(String),
    /// Malformed text for a typed value (`'[1,2'::vector`).
    #[error("{0}")]
    InvalidText(String),
    #[error("{0}")]
    DependentObjects(String),
    /// Busy: another operation holds the object (55006).
    #[error("{0}")]
    ObjectInUse(String),
    #[error("{0}")]
    WrongObjectType(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A privilege check failed; the message is PostgreSQL's (`permission denied
    /// for table t`) plus what to do (42501).
    #[error("{0}")]
    InsufficientPrivilege(String),
    /// GRANT/REVOKE that cannot be done (a membership loop) (0LP01).
    #[error("{0}")]
    InvalidGrant(String),
    #[error("schema \"{0}\" does not exist")]
    SchemaNotFound(String),
    /// A name PostgreSQL keeps for itself (`public`, `pg_…`) (42939).
    #[error("{0}")]
    ReservedName(String),
    #[error("{0}")]
    InvalidAuthorization(String),
    #[error("password authentication failed for user \"{0}\"")]
    InvalidPassword(String),
    #[error("{0} is not supported")]
    NotSupported(String),
    /// DataFusion's own "not implemented" (its message already says so) (0A000).
    #[error("{0}")]
    Unsupported(String),
    #[error("division by zero")]
    DivisionByZero,
    /// DEALLOCATE of a name nothing was prepared under (26000).
    #[error("prepared statement \"{0}\" does not exist")]
    UndefinedPreparedStatement(String),
    /// An arithmetic result out of its type's range (22003).
    #[error("{0}")]
    NumericOutOfRange(String),
    #[error("{0}")]
    Plan(String),
    #[error("cannot reach {what} at {location}: {reason}")]
    Unreachable { what: String, location: String, reason: String },
    /// A server we were talking to failed mid-conversation (timeout, HTTP error).
    #[error("{0}")]
    ConnectionFailure(String),
    #[error("resources exhausted: {0}")]
    ResourcesExhausted(String),
    #[error("canceling statement due to user request")]
    Canceled,
    #[error("canceling statement due to statement timeout")]
    StatementTimeout,
    /// A statement nested deeper than the engine plans safely (54001).
    #[error("stack depth limit exceeded: {0}")]
    StackDepth(String),
    /// A statement or value over a configured size limit (54000).
    #[error("{0}")]
    ProgramLimit(String),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("{0}")]
    Configuration(String),
    #[error("data directory {path} is in use by another lakehouse process (lock file {lock}); stop that process or pass a different --data-dir")]
    DataDirLocked { path: String, lock: String },
    #[error("I/O error on {path}: {source}")]
    Io { path: String, #[source] source: std::io::Error },
    #[error("catalog file {path} is unreadable: {reason}")]
    CorruptCatalog { path: String, reason: String },
    #[error("internal error: {0}")]
    Internal(String),
    /// An error whose SQLSTATE is PostgreSQL's own for a condition with no variant
    /// of its own here: integrity violations (23502 not null, 23505 unique, 23514
    /// check), 55000 (currval before nextval), 2200H (sequence exhausted), 428C9
    /// (a value for a GENERATED ALWAYS column). A line `DETAIL: …` in the message
    /// goes to the client as the error's DETAIL.
    #[error("{1}")]
    State(&'static str, String),
}

impl Error {
    /// The PostgreSQL error code a client sees for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::Syntax(_) => "42601",
            Error::TableNotFound(_) | Error::RemoteNotFound(_) => "42P01",
            Error::TableExists(_) => "42P07",
            Error::ColumnNotFound(_) => "42703",
            Error::UndefinedObject(_) => "42704",
            Error::DuplicateObject(_) => "42710",
            Error::UnknownProcedure(..) | Error::UnknownFunction(_) => "42883",
            Error::InvalidParameter(_) => "22023",
            Error::UnknownSetting(_) => "42704",
            Error::DimensionMismatch { .. } | Error::DataException(_) => "22000",
            Error::InvalidText(_) => "22P02",
            Error::DependentObjects(_) => "2BP01",
            Error::WrongObjectType(_) => "42809",
            Error::PermissionDenied(_) | Error::InsufficientPrivilege(_) => "42501",
            Error::InvalidGrant(_) => "0LP01",
            Error::SchemaNotFound(_) => "3F000",
            Error::ReservedName(_) => "42939",
            Error::InvalidAuthorization(_) => "28000",
            Error::InvalidPassword(_) => "28P01",
            Error::NotSupported(_) | Error::Unsupported(_) => "0A000",
            Error::UndefinedPreparedStatement(_) => "26000",
            Error::DivisionByZero => "22012",
            Error::NumericOutOfRange(_) => "22003",
            Error::Plan(_) => "42000",
            Error::Unreachable { .. } => "08001",
            Error::ConnectionFailure(_) => "08006",
            Error::ResourcesExhausted(_) => "53200",
            Error::Canceled | Error::StatementTimeout => "57014",
            Error::StackDepth(_) => "54001",
            Error::ProgramLimit(_) => "54000",
            Error::Protocol(_) => "08P01",
            Error::Configuration(_) => "F0000",
            Error::DataDirLocked { .. } | Error::ObjectInUse(_) => "55006",
            Error::Io { .. } => "58030",
            Error::CorruptCatalog { .. } => "XX001",
            Error::Internal(_) => "XX000",
            Error::State(code, _) => code,
        }
    }

    /// The text a client or log sees: the message with any `user:password@` in a
    /// location redacted (a source's own error may quote its connection string).
    pub fn message(&self) -> String {
        crate::catalog::attachments::redact(&self.to_string())
    }

    /// Internal failures are masked on the wire; the full text goes to the server log.
    pub fn is_internal(&self) -> bool {
        matches!(self, Error::Internal(_))
    }

    pub fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        Error::Io { path: path.to_string(), source }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidParameter(msg.into())
    }

    /// Wrap for transport through DataFusion (`DataFusionError::External`).
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }

    /// Map a DataFusion error to ours: our own error wrapped anywhere in the chain wins,
    /// then DataFusion's variants map to the closest SQLSTATE.
    fn map_datafusion(err: DataFusionError) -> Self {
        match err {
            DataFusionError::External(e) => match e.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => match other.downcast::<DataFusionError>() {
                    Ok(df) => Error::from_datafusion(*df),
                    Err(other) => crate::table_providers::remote::query_error(other.as_ref())
                        .or_else(|| classify_source_message(&other.to_string()))
                        .unwrap_or_else(|| Error::DataException(other.to_string())),
                },
            },
            DataFusionError::Context(_, inner) => Error::from_datafusion(*inner),
            DataFusionError::Shared(inner) => match std::sync::Arc::try_unwrap(inner) {
                Ok(df) => Error::from_datafusion(df),
                // Still shared (a hash join's build side, polled by every partition):
                // map what it is at its root.
                Err(shared) => match shared.find_root() {
                    DataFusionError::ResourcesExhausted(m) => Error::ResourcesExhausted(m.clone()),
                    DataFusionError::Execution(m) => classify_execution_message(m.clone()),
                    DataFusionError::NotImplemented(m) => Error::Unsupported(m.clone()),
                    DataFusionError::External(e) => match e.downcast_ref::<Error>() {
                        Some(Error::ResourcesExhausted(m)) => Error::ResourcesExhausted(m.clone()),
                        Some(Error::Canceled) => Error::Canceled,
                        Some(Error::State(code, m)) => Error::State(code, m.clone()),
                        _ => Error::Internal(shared.to_string()),
                    },
                    _ => Error::Internal(shared.to_string()),
                },
            },
            DataFusionError::Diagnostic(_, inner) => Error::from_datafusion(*inner),
            DataFusionError::Collection(mut errs) if !errs.is_empty() => {
                Error::from_datafusion(errs.remove(0))
            }
            DataFusionError::SQL(e, _) => Error::Syntax(e.to_string()),
            DataFusionError::SchemaError(e, _) => {
                use datafusion::common::SchemaError;
                match *e {
                    // PostgreSQL's words (`column "a" does not exist`, clients match
                    // them), with the columns that do exist.
                    SchemaError::FieldNotFound { ref field, ref valid_fields } => {
                        let name = match &field.relation {
                            Some(r) => format!("{}.{}", r.table(), field.name),
                            None => field.name.clone(),
                        };
                        let mut known: Vec<String> = valid_fields.iter().map(|c| c.name.clone()).collect();
                        known.dedup();
                        let hint = if known.is_empty() || known.len() > 20 { String::new() } else { format!("; the columns here are {}", known.join(", ")) };
                        Error::ColumnNotFound(format!("\"{name}\" does not exist{hint}"))
                    }
                    other => Error::Plan(other.to_string()),
                }
            }
            DataFusionError::Plan(msg) => classify_plan_message(msg),
            DataFusionError::NotImplemented(msg) => Error::Unsupported(msg),
            DataFusionError::ResourcesExhausted(msg) => Error::ResourcesExhausted(msg),
            DataFusionError::Configuration(msg) => Error::InvalidParameter(msg),
            DataFusionError::Execution(msg) => classify_execution_message(msg),
            DataFusionError::ExecutionJoin(e) => Error::Internal(e.to_string()),
            DataFusionError::ArrowError(e, _) => match *e {
                datafusion::arrow::error::ArrowError::DivideByZero => Error::DivisionByZero,
                datafusion::arrow::error::ArrowError::ArithmeticOverflow(m) => Error::NumericOutOfRange(m),
                datafusion::arrow::error::ArrowError::ExternalError(e) => Error::map_datafusion(DataFusionError::External(e)),
                // A NULL in VALUES for a NOT NULL column: DataFusion types the VALUES
                // list with the table's columns, and Arrow refuses the batch.
                datafusion::arrow::error::ArrowError::InvalidArgumentError(m) if m.contains("is declared as non-nullable but contains null values") => {
                    let at = m.split('\'').nth(1).and_then(|c| c.strip_prefix("column")).unwrap_or("?").to_string();
                    Error::State("23502", format!("null value in a NOT NULL column violates not-null constraint (value {at} of the VALUES row)"))
                }
                datafusion::arrow::error::ArrowError::CastError(m) => cast_error(m),
                other => Error::DataException(other.to_string()),
            },
            DataFusionError::ParquetError(e) => Error::DataException(e.to_string()),
            DataFusionError::ObjectStore(e) => Error::DataException(e.to_string()),
            DataFusionError::IoError(e) => Error::Io { path: "data file".into(), source: e },
            other => Error::Internal(other.to_string()),
        }
    }

    /// [`Error::map_datafusion`], plus what DataFusion reports as internal but is a
    /// statement lakehouse cannot run.
    pub fn from_datafusion(err: DataFusionError) -> Self {
        match Error::map_datafusion(err) {
            // DataFusion evaluates async UDFs (embed) only in projections and filters.
            Error::Internal(m) if m.contains("async functions should not be called directly") => Error::NotSupported(
                "embed() over a column in GROUP BY, JOIN or aggregate arguments (compute it in a subquery: SELECT … FROM (SELECT *, embed(body) AS e FROM t) s …)".into(),
            ),
            other => other,
        }
    }
}

/// DataFusion reports several distinct user mistakes as `Plan` errors; recognise the
/// common ones so clients get the SQLSTATE PostgreSQL would send.
fn classify_plan_message(msg: String) -> Error {
    if let Some(rest) = msg.strip_prefix("table '").and_then(|r| r.strip_suffix("' not found")) {
        let name = rest.rsplit('.').next().unwrap_or(rest).to_string();
        return Error::TableNotFound(name);
    }
    if msg.contains("already exists") {
        return classify_execution_message(msg);
    }
    if let Some(rest) = msg.strip_prefix("Invalid function '") {
        let name = rest.split('\'').next().unwrap_or(rest);
        let hint = msg
            .split_once("Did you mean '")
            .and_then(|(_, r)| r.split('\'').next())
            .map(|s| format!("; did you mean {s}()?"))
            .unwrap_or_default();
        return Error::UnknownFunction(format!("function {name}() does not exist{hint}"));
    }
    if msg.contains("No function matches") || msg.contains("Failed to coerce arguments") {
        // Our own coercion errors arrive flattened into DataFusion's text: keep ours.
        if let Some((_, ours)) = msg.split_once("coercion failed with: External error: ") {
            let ours = ours.split(". No function matches").next().unwrap_or(ours);
            return Error::UnknownFunction(ours.to_string());
        }
        return Error::UnknownFunction(msg);
    }
    Error::Plan(msg)
}

/// A remote source's failure that reached us as text: a lost connection is 08006.
fn classify_source_message(msg: &str) -> Option<Error> {
    let lower = msg.to_lowercase();
    let lost = ["connection closed", "input/output error", "connection reset", "broken pipe", "lost connection", "server closed the connection", "terminating connection", "unexpected eof"];
    if lost.iter().any(|p| lower.contains(p)) {
        let text: Vec<&str> = msg.lines().filter(|l| !l.trim().is_empty()).collect();
        return Some(Error::ConnectionFailure(format!("the source database closed the connection mid-query: {}", text.last().unwrap_or(&""))));
    }
    None
}

/// Arrow's refusal to cast text (`Cannot cast string 'abc' to value of Int32 type`) as
/// PostgreSQL's input-syntax error (22P02) with its type name; other cast errors 22000.
fn cast_error(m: String) -> Error {
    let parsed = ["Cannot cast string '", "Cannot cast value '"].iter().find_map(|p| {
        let rest = m.split_once(p)?.1;
        let (value, rest) = rest.rsplit_once("' to value of ")?;
        Some((value.to_string(), rest.trim_end_matches(" type").to_string()))
    });
    let Some((value, arrow_type)) = parsed else { return Error::DataException(format!("Cast error: {m}")) };
    let pg = match arrow_type.split('(').next().unwrap_or("") {
        "Int16" => "smallint",
        "Int32" => "integer",
        "Int64" => "bigint",
        "Float32" => "real",
        "Float64" => "double precision",
        "Boolean" => "boolean",
        "Decimal128" | "Decimal256" => "numeric",
        "Date32" | "Date64" => "date",
        "Timestamp" => "timestamp",
        "Time64" | "Time32" => "time",
        _ => return Error::DataException(format!("Cast error: {m}")),
    };
    Error::InvalidText(format!("invalid input syntax for type {pg}: \"{value}\""))
}

fn classify_execution_message(msg: String) -> Error {
    if let Some(e) = classify_source_message(&msg) {
        return e;
    }
    if msg.contains("No function matches") {
        return classify_plan_message(msg);
    }
    if let Some(name) = msg.strip_prefix("The table ").and_then(|r| r.strip_suffix(" already exists")) {
        return Error::TableExists(name.to_string());
    }
    if msg.contains("already exists") {
        return Error::DuplicateObject(msg.trim_end_matches(" already exists").to_string());
    }
    if msg.contains("Divide by zero") || msg.contains("Division by zero") {
        return Error::DivisionByZero;
    }
    if msg.contains("Scalar subquery returned more than one row") {
        return Error::State("21000", "more than one row returned by a subquery used as an expression".into());
    }
    if msg.contains("Cast error") {
        return Error::DataException(msg);
    }
    Error::Plan(msg)
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        Error::from_datafusion(e)
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Error::DataException(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each variant: a new variant must be added here, and its code must be a
    /// well-formed SQLSTATE that is not the generic internal one (unless it is internal).
    fn every_variant() -> Vec<Error> {
        vec![
            Error::Syntax("x".into()),
            Error::TableNotFound("t".into()),
            Error::TableExists("t".into()),
            Error::ColumnNotFound("c".into()),
            Error::UndefinedObject("o".into()),
            Error::DuplicateObject("o".into()),
            Error::UnknownProcedure("p".into(), "a, b".into()),
            Error::UnknownFunction("f".into()),
            Error::InvalidParameter("bad".into()),
            Error::UnknownSetting("s".into()),
            Error::DimensionMismatch { expected: 3, got: 2 },
            Error::DataException("d".into()),
            Error::InvalidText("t".into()),
            Error::DependentObjects("d".into()),
            Error::WrongObjectType("w".into()),
            Error::PermissionDenied("p".into()),
            Error::InvalidAuthorization("a".into()),
            Error::InvalidPassword("u".into()),
            Error::NotSupported("n".into()),
            Error::Plan("p".into()),
            Error::Unreachable { what: "w".into(), location: "l".into(), reason: "r".into() },
            Error::ResourcesExhausted("r".into()),
            Error::Canceled,
            Error::StatementTimeout,
            Error::StackDepth("x".into()),
            Error::ProgramLimit("x".into()),
            Error::Protocol("p".into()),
            Error::Configuration("c".into()),
            Error::DataDirLocked { path: "p".into(), lock: "l".into() },
            Error::io("p", std::io::Error::other("x")),
            Error::CorruptCatalog { path: "p".into(), reason: "r".into() },
            Error::Internal("i".into()),
        ]
    }

    #[test]
    fn every_variant_has_a_wellformed_sqlstate() {
        for e in every_variant() {
            let code = e.sqlstate();
            assert_eq!(code.len(), 5, "{e:?}");
            assert!(code.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()), "{e:?}");
            assert_eq!(code == "XX000", e.is_internal(), "{e:?} -> {code}");
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn our_error_survives_a_trip_through_datafusion() {
        let wrapped = DataFusionError::Context(
            "while planning".into(),
            Box::new(Error::PermissionDenied("no".into()).into_datafusion()),
        );
        let back = Error::from_datafusion(wrapped);
        assert_eq!(back.sqlstate(), "42501");
    }

    #[test]
    fn datafusion_variants_map_to_postgres_codes() {
        let cases = [
            (DataFusionError::Plan("table 'lakehouse.public.nope' not found".into()), "42P01"),
            (DataFusionError::Plan("Invalid function 'nope'.\nDid you mean 'now'?".into()), "42883"),
            (DataFusionError::NotImplemented("x".into()), "0A000"),
            (DataFusionError::ResourcesExhausted("x".into()), "53200"),
            (DataFusionError::Plan("something else".into()), "42000"),
        ];
        for (e, code) in cases {
            assert_eq!(Error::from_datafusion(e).sqlstate(), code);
        }
        let f = Error::from_datafusion(DataFusionError::Plan("Invalid function 'nope'.\nDid you mean 'now'?".into()));
        assert_eq!(f.to_string(), "function nope() does not exist; did you mean now()?");
        let cast = |m: &str| Error::from_datafusion(DataFusionError::ArrowError(Box::new(datafusion::arrow::error::ArrowError::CastError(m.into())), None));
        let e = cast("Cannot cast string 'it's' to value of Int32 type");
        assert_eq!((e.sqlstate(), e.to_string().as_str()), ("22P02", "invalid input syntax for type integer: \"it's\""));
        assert_eq!(cast("Cannot cast value 'x' to value of Boolean type").sqlstate(), "22P02");
        assert_eq!(cast("Cannot cast to Int32. Overflowing on 99999999999").sqlstate(), "22000");
        let missing = Error::from_datafusion(TableNotFoundHelper::err());
        assert_eq!(missing.to_string(), "relation \"nope\" does not exist; see SELECT name FROM lakehouse.datasets");
    }

    struct TableNotFoundHelper;
    impl TableNotFoundHelper {
        fn err() -> DataFusionError {
            DataFusionError::Plan("table 'lakehouse.public.nope' not found".into())
        }
    }
}
