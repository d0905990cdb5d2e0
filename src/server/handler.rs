//! Query handlers on pgwire: simple and extended protocol, per-connection sessions,
//! NOTICEs, and the mapping of our errors to SQLSTATEs (internal errors masked).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionHandle, DEFAULT_NAME, METADATA_DATABASE, METADATA_USER,
    PgWireConnectionState, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult, SEVERITY_ERROR, SEVERITY_NOTICE};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::extendedquery::{Execute, PortalSuspended};
use pgwire::messages::response::{EmptyQueryResponse, NoticeResponse};

use super::encode;
use crate::engine::{Engine, Prepared, QueryResult, Session};
use crate::error::Error;

/// Our error as a pgwire error: its SQLSTATE and message; internal errors are logged
/// in full and sent masked.
pub fn to_pg_error(e: &Error) -> PgWireError {
    let message = if e.is_internal() {
        let reference = uuid::Uuid::new_v4().simple().to_string();
        tracing::error!(reference = %&reference[..8], "internal error: {}", e.message());
        format!("internal error (reference {}); see the server log", &reference[..8])
    } else {
        e.message()
    };
    user_error(e.sqlstate(), message)
}

/// An ERROR with `code` for the client (the session goes on).
/// A message may carry PostgreSQL's DETAIL after a line `DETAIL: `, then a HINT
/// after a line `HINT: `.
pub fn user_error(code: &str, message: String) -> PgWireError {
    let (message, hint) = match message.split_once("\nHINT: ") {
        Some((m, h)) => (m.to_string(), Some(h.to_string())),
        None => (message, None),
    };
    let (message, detail) = match message.split_once("\nDETAIL: ") {
        Some((m, d)) => (m.to_string(), Some(d.to_string())),
        None => (message, None),
    };
    let mut info = ErrorInfo::new(SEVERITY_ERROR.to_owned(), code.to_owned(), message);
    info.detail = detail;
    info.hint = hint;
    PgWireError::UserError(Box::new(info))
}

fn error_info(e: &Error) -> ErrorInfo {
    match to_pg_error(e) {
        PgWireError::UserError(info) => *info,
        other => ErrorInfo::new(SEVERITY_ERROR.into(), "XX000".into(), other.to_string()),
    }
}

/// The connection's session, created on first use from the startup parameters.
pub fn session_for<C: ClientInfo + ?Sized>(engine: &Engine, client: &C) -> Arc<Session> {
    let extensions = client.session_extensions();
    if let Some(s) = extensions.get::<Session>() {
        return s;
    }
    // Read before get_or_insert_with, which holds the extensions' lock while it makes
    // the session.
    let control = super::connection::ServerControl::of(extensions);
    extensions.get_or_insert_with(|| {
        let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
        let db = client.metadata().get(METADATA_DATABASE).cloned().unwrap_or_else(|| user.clone());
        let session = engine.new_client_session(&user, &db, client.pid_and_secret_key().0, client.socket_addr());
        // The start-up packet's settings (application_name, TimeZone, DateStyle, …).
        let params: Vec<(String, String)> = client
            .metadata()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), METADATA_USER | METADATA_DATABASE | "options" | "replication"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        session.apply_startup(&params);
        if let Some(c) = control {
            session.backend.set_control(Arc::new(c));
        }
        session
    })
}

/// The session's `statement_timeout` as a deadline from now (None: no limit).
fn deadline(session: &Session) -> Option<tokio::time::Instant> {
    let ms = session.statement_timeout_ms();
    (ms > 0).then(|| tokio::time::Instant::now() + std::time::Duration::from_millis(ms))
}

/// Await `work` until `deadline`; past it the statement is dropped (which stops it)
/// and answered 57014, as PostgreSQL's statement_timeout does.
async fn until<T>(deadline: Option<tokio::time::Instant>, work: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
    match deadline {
        None => work.await,
        Some(d) => match tokio::time::timeout_at(d, work).await {
            Ok(r) => r,
            Err(_) => Err(Error::StatementTimeout),
        },
    }
}

async fn send_notices<C>(client: &mut C, session: &Session) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for n in session.take_notices() {
        let (severity, code, message) = crate::session::notice_parts(&n);
        let severity = if severity == "NOTICE" { SEVERITY_NOTICE } else { severity };
        let info = ErrorInfo::new(severity.to_owned(), code.to_owned(), message.to_owned());
        client.feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(info))).await?;
    }
    Ok(())
}

/// Await `work`, sending the session's NOTICEs to the client as they are raised
/// (index builds report progress while they run), not only when it finishes.
async fn with_live_notices<C, T>(client: &mut C, session: &Session, work: impl std::future::Future<Output = T>) -> PgWireResult<T>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    tokio::pin!(work);
    // No immediate first tick: waiting on an already-due timer costs up to a timer
    // granule (1 ms) per statement.
    let period = std::time::Duration::from_millis(500);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            r = &mut work => return Ok(r),
            _ = tick.tick() => {
                if session.has_notices() {
                    send_notices(client, session).await?;
                    client.flush().await?;
                }
            }
        }
    }
}

/// Run a row set up to its first batch inside the (cancellable) handler, so the work
/// of an aggregate or sort happens where a CancelRequest can interrupt it, and an
/// error in it is reported before any RowDescription.
/// Past `deadline` (statement_timeout) the rest of the rows is an error, not an end.
async fn prime(result: QueryResult, deadline: Option<tokio::time::Instant>) -> Result<QueryResult, Error> {
    match result {
        QueryResult::Rows { schema, mut stream } => {
            let first = until(deadline, async {
                match stream.next().await {
                    Some(Ok(b)) => Ok(Some(Ok(b))),
                    Some(Err(e)) => Err(Error::from_datafusion(e)),
                    None => Ok(None),
                }
            })
            .await?;
            let rest = futures::stream::iter(first).chain(stream);
            let rest: std::pin::Pin<Box<dyn futures::Stream<Item = _> + Send>> = match deadline {
                None => Box::pin(rest),
                Some(d) => Box::pin(crate::executor::with_deadline(rest, d, || Error::StatementTimeout.into_datafusion())),
            };
            let stream = Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema.clone(), rest));
            Ok(QueryResult::Rows { schema, stream })
        }
        other => Ok(other),
    }
}

/// What one statement sends: a pgwire response, or a COPY (server/copy.rs).
pub enum Outcome {
    Response(Response),
    CopyIn(crate::engine::CopyIn),
    CopyOut(crate::engine::CopyOut),
}

fn to_outcome(result: QueryResult, format: &Format) -> Outcome {
    match result {
        QueryResult::CopyIn(c) => Outcome::CopyIn(c),
        QueryResult::CopyOut(c) => Outcome::CopyOut(c),
        other => Outcome::Response(to_response(other, format)),
    }
}

/// A statement's outcome where COPY cannot run (pgwire's own dispatch, unused).
fn without_copy(o: Outcome) -> Response {
    match o {
        Outcome::Response(r) => r,
        _ => Response::Error(Box::new(error_info(&Error::NotSupported("COPY here".into())))),
    }
}

fn to_response(result: QueryResult, format: &Format) -> Response {
    match result {
        QueryResult::CopyIn(_) | QueryResult::CopyOut(_) => {
            Response::Error(Box::new(error_info(&Error::NotSupported("COPY here".into()))))
        }
        QueryResult::Rows { schema, stream } => {
            let fields = Arc::new(encode::field_infos(&schema, format));
            let rows = encode::row_stream(fields.clone(), stream);
            Response::Query(QueryResponse::new(fields, rows))
        }
        QueryResult::Command { tag, rows } => {
            let t = match (tag.as_str(), rows) {
                ("INSERT 0", Some(n)) => Tag::new("INSERT").with_oid(0).with_rows(n),
                (_, Some(n)) => Tag::new(&tag).with_rows(n),
                (_, None) => Tag::new(&tag),
            };
            match tag.as_str() {
                "BEGIN" => Response::TransactionStart(t),
                "COMMIT" | "ROLLBACK" => Response::TransactionEnd(t),
                _ => Response::Execution(t),
            }
        }
    }
}

pub struct LakehouseHandler {
    engine: Arc<Engine>,
    parser: Arc<LakehouseQueryParser>,
}

impl LakehouseHandler {
    pub fn new(engine: Arc<Engine>) -> Self {
        LakehouseHandler { parser: Arc::new(LakehouseQueryParser { engine: engine.clone() }), engine }
    }
}

#[async_trait]
impl SimpleQueryHandler for LakehouseHandler {
    /// pgwire's `_on_query`, with COPY: a COPY TO streams its rows here (its
    /// CommandComplete counts rows, not messages), a COPY FROM leaves the connection
    /// in copy-in mode for server/copy.rs.
    async fn on_query<C>(&self, client: &mut C, query: pgwire::messages::simplequery::Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use pgwire::api::query::{send_execution_response, send_query_response, send_ready_for_query};
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let mut status = client.transaction_status();
        client.set_state(PgWireConnectionState::QueryInProgress);
        let sql = query.query;
        if sql.chars().all(|c| c == ';' || c.is_whitespace()) {
            client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?;
        } else {
            let cancel = match client.session_extensions().get::<Arc<ConnectionHandle>>() {
                Some(handle) => Some(handle.start_query().await),
                None => None,
            };
            let outcomes = match cancel {
                Some(cancel) => {
                    let work = self.run_simple(client, &sql);
                    tokio::pin!(work);
                    tokio::select! {
                        r = &mut work => r,
                        _ = cancel => Err(PgWireError::QueryCanceled),
                    }
                }
                None => self.run_simple(client, &sql).await,
            }?;
            for o in outcomes {
                match o {
                    Outcome::Response(Response::EmptyQuery) => {
                        client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?;
                    }
                    Outcome::Response(Response::Query(rows)) => send_query_response(client, rows, true).await?,
                    Outcome::Response(Response::Execution(tag)) => send_execution_response(client, tag).await?,
                    Outcome::Response(Response::TransactionStart(tag)) => {
                        send_execution_response(client, tag).await?;
                        status = status.to_in_transaction_state();
                    }
                    Outcome::Response(Response::TransactionEnd(tag)) => {
                        send_execution_response(client, tag).await?;
                        status = status.to_idle_state();
                    }
                    Outcome::Response(Response::Error(e)) => {
                        client.feed(PgWireBackendMessage::ErrorResponse((*e).into())).await?;
                        status = status.to_error_state();
                    }
                    Outcome::Response(Response::CopyIn(_) | Response::CopyOut(_) | Response::CopyBoth(_)) => {
                        return Err(to_pg_error(&Error::Internal("pgwire COPY response".into())));
                    }
                    Outcome::CopyOut(c) => super::copy::send_copy_out_cancellable(client, c).await?,
                    Outcome::CopyIn(c) => {
                        let session = session_for(&self.engine, client);
                        super::copy::start_copy_in(&self.engine, &session, client, c, false).await?;
                    }
                }
            }
        }
        if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            client.set_state(PgWireConnectionState::ReadyForQuery);
            client.set_transaction_status(status);
            send_ready_for_query(client, status).await?;
        }
        Ok(())
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Ok(self.run_simple(client, query).await?.into_iter().map(without_copy).collect())
    }
}

impl LakehouseHandler {
    async fn run_simple<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Outcome>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_for(&self.engine, client);
        let deadline = deadline(&session);
        let work = until(deadline, async { Ok(self.engine.execute_on_query_runtime(&session, query).await) });
        let (results, mut err) = match with_live_notices(client, &session, work).await? {
            Ok(r) => r,
            Err(e) => (vec![], Some(e)),
        };
        let mut responses: Vec<Outcome> = Vec::with_capacity(results.len() + 1);
        let n = results.len();
        for (i, r) in results.into_iter().enumerate() {
            if matches!(r, QueryResult::CopyIn(_)) && (i + 1 < n || err.is_some()) {
                err = Some(Error::NotSupported("COPY FROM STDIN followed by more statements in one query string; send it alone".into()));
                break;
            }
            match prime(r, deadline).await {
                Ok(r) => responses.push(to_outcome(r, &Format::UnifiedText)),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        send_notices(client, &session).await?;
        forget_deallocated(client, &session);
        if let Some(e) = err {
            responses.push(Outcome::Response(Response::Error(Box::new(error_info(&e)))));
        }
        Ok(responses)
    }
}

/// Drop from the client's statement store what a `DEALLOCATE` removed.
fn forget_deallocated<C: ClientInfo + ClientPortalStore>(client: &C, session: &Session)
where
    C::PortalStore: PortalStore,
{
    let gone: Vec<Option<String>> = std::mem::take(&mut *session.deallocated.lock().unwrap_or_else(|p| p.into_inner()));
    if gone.is_empty() {
        return;
    }
    let mut names = session.protocol_statements.lock().unwrap_or_else(|p| p.into_inner());
    for g in gone {
        match g {
            Some(n) => {
                names.remove(&n);
                client.portal_store().rm_statement(&n);
            }
            None => {
                for (n, _) in names.drain() {
                    client.portal_store().rm_statement(&n);
                }
            }
        }
    }
}

pub struct LakehouseQueryParser {
    engine: Arc<Engine>,
}

#[async_trait]
impl QueryParser for LakehouseQueryParser {
    type Statement = Prepared;

    async fn parse_sql<C>(&self, client: &C, sql: &str, _types: &[Option<Type>]) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        // An empty statement (asyncpg's `prepare('')`): Execute answers
        // EmptyQueryResponse, as PostgreSQL does.
        if sql.trim_matches(|c: char| c.is_whitespace() || c == ';').is_empty() {
            return Ok(None);
        }
        let session = session_for(&self.engine, client);
        let deadline = deadline(&session);
        until(deadline, self.engine.prepare_on_query_runtime(&session, sql)).await.map(Some).map_err(|e| to_pg_error(&e))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt
            .param_types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if stmt.param_is_oid.get(i).copied().unwrap_or(false) {
                    Type::OID
                } else if stmt.param_is_oid_array.contains(&i) {
                    Type::OID_ARRAY
                } else {
                    encode::param_pg_type(t.as_ref())
                }
            })
            .collect())
    }

    fn get_result_schema(&self, stmt: &Prepared, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        Ok(match &stmt.schema {
            Some(schema) => {
                let format = format.unwrap_or(&Format::UnifiedText);
                check_result_formats(format, schema.fields().len())?;
                encode::field_infos(schema, format)
            }
            None => vec![],
        })
    }
}

#[async_trait]
impl ExtendedQueryHandler for LakehouseHandler {
    type Statement = Prepared;
    type QueryParser = LakehouseQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    /// pgwire's Parse, refusing a name already taken (PostgreSQL: 42P05) instead of
    /// replacing that statement.
    async fn on_parse<C>(&self, client: &mut C, message: pgwire::messages::extendedquery::Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.clone().unwrap_or_default();
        if !name.is_empty() && client.portal_store().get_statement(&name).is_some() {
            return Err(user_error("42P05", format!("prepared statement \"{name}\" already exists")));
        }
        match pgwire::api::stmt::StoredStatement::parse(client, &message, self.query_parser()).await? {
            Some(stmt) => client.portal_store().put_statement(Arc::new(stmt)),
            None => client.portal_store().put_empty_statement(&name),
        }
        client.send(PgWireBackendMessage::ParseComplete(pgwire::messages::extendedquery::ParseComplete::new())).await?;
        Ok(())
    }

    /// pgwire's Execute reserves `max_rows` rows up front (2^31 - 1 is a legal value:
    /// one message aborted the process) and buffers every row of the portal before
    /// sending any. This one streams rows to the client as they come, pausing at
    /// `max_rows` with PortalSuspended.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let mut status = client.transaction_status();
        client.set_state(PgWireConnectionState::QueryInProgress);
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME).to_string();
        let max_rows = message.max_rows.max(0) as usize;
        let portal = match client.portal_store().get_portal(&name) {
            Some(Entry::Value(portal)) => portal,
            Some(Entry::Empty) => {
                client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?;
                client.set_state(PgWireConnectionState::ReadyForQuery);
                return Ok(());
            }
            None => return Err(PgWireError::PortalNotFound(name)),
        };
        let state = portal.state();
        let mut state = state.lock().await;
        if matches!(*state, PortalExecutionState::Initial) {
            let cancel = match client.session_extensions().get::<Arc<ConnectionHandle>>() {
                Some(handle) => Some(handle.start_query().await),
                None => None,
            };
            let response = match cancel {
                Some(cancel) => {
                    let work = self.execute_portal(client, portal.as_ref());
                    tokio::pin!(work);
                    tokio::select! {
                        r = &mut work => r,
                        _ = cancel => Err(PgWireError::QueryCanceled),
                    }
                }
                None => self.execute_portal(client, portal.as_ref()).await,
            }?;
            let response = match response {
                Outcome::Response(r) => r,
                Outcome::CopyOut(c) => {
                    super::copy::send_copy_out_cancellable(client, c).await?;
                    *state = PortalExecutionState::Finished;
                    drop(state);
                    client.set_state(PgWireConnectionState::ReadyForQuery);
                    client.set_transaction_status(status);
                    return Ok(());
                }
                Outcome::CopyIn(c) => {
                    let session = session_for(&self.engine, client);
                    *state = PortalExecutionState::Finished;
                    drop(state);
                    client.set_transaction_status(status);
                    return super::copy::start_copy_in(&self.engine, &session, client, c, true).await;
                }
            };
            match response {
                Response::Query(rows) => *state = PortalExecutionState::Suspended(rows),
                Response::EmptyQuery => {
                    client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?;
                }
                Response::Execution(tag) => client.feed(PgWireBackendMessage::CommandComplete(tag.into())).await?,
                Response::TransactionStart(tag) => {
                    client.feed(PgWireBackendMessage::CommandComplete(tag.into())).await?;
                    status = status.to_in_transaction_state();
                }
                Response::TransactionEnd(tag) => {
                    client.feed(PgWireBackendMessage::CommandComplete(tag.into())).await?;
                    status = status.to_idle_state();
                    // The unnamed portal ends with its transaction (as pgwire does).
                    client.portal_store().rm_portal(DEFAULT_NAME);
                }
                Response::Error(e) => {
                    client.send(PgWireBackendMessage::ErrorResponse((*e).into())).await?;
                    status = status.to_error_state();
                }
                Response::CopyIn(_) | Response::CopyOut(_) | Response::CopyBoth(_) => {
                    return Err(to_pg_error(&Error::Internal("pgwire COPY response".into())));
                }
            }
        }
        match &mut *state {
            PortalExecutionState::Suspended(rows) => {
                let tag = rows.command_tag().to_owned();
                let stream = rows.data_rows();
                let mut sent = 0usize;
                let mut finished = false;
                while max_rows == 0 || sent < max_rows {
                    match stream.next().await {
                        Some(row) => {
                            client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                            sent += 1;
                        }
                        None => {
                            finished = true;
                            break;
                        }
                    }
                }
                if finished {
                    *state = PortalExecutionState::Finished;
                    client.feed(PgWireBackendMessage::CommandComplete(Tag::new(&tag).with_rows(sent).into())).await?;
                } else {
                    client.send(PgWireBackendMessage::PortalSuspended(PortalSuspended::new())).await?;
                }
            }
            PortalExecutionState::Finished => {
                // Executing a portal that has no rows left (PostgreSQL: "SELECT 0").
                client.feed(PgWireBackendMessage::CommandComplete(Tag::new("SELECT").with_rows(0).into())).await?;
            }
            PortalExecutionState::Initial => {}
        }
        drop(state);
        if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            client.set_state(PgWireConnectionState::ReadyForQuery);
            client.set_transaction_status(status);
        }
        Ok(())
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Prepared>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.execute_portal(client, portal).await.map(without_copy)
    }
}

impl LakehouseHandler {
    async fn execute_portal<C>(&self, client: &mut C, portal: &Portal<Prepared>) -> PgWireResult<Outcome>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_for(&self.engine, client);
        let stmt: &StoredStatement<Prepared> = &portal.statement;
        let prepared = &stmt.statement;
        if let Some(schema) = &prepared.schema {
            check_result_formats(&portal.result_column_format, schema.fields().len())?;
        }
        if portal.parameter_len() < prepared.param_types.len() {
            return Err(user_error(
                "08P01",
                format!(
                    "bind message supplies {} parameters, but prepared statement requires {}",
                    portal.parameter_len(),
                    prepared.param_types.len()
                ),
            ));
        }
        let mut params = Vec::with_capacity(portal.parameter_len());
        for i in 0..portal.parameter_len() {
            let inferred = prepared.param_types.get(i).and_then(|t| t.as_ref());
            let declared = stmt.parameter_types.get(i).cloned().flatten().filter(|t| *t != Type::UNKNOWN);
            let pg = declared.unwrap_or_else(|| match inferred {
                _ if prepared.param_is_oid_array.contains(&i) => Type::OID_ARRAY,
                Some(dt) => encode::pg_type(dt),
                None => Type::TEXT,
            });
            params.push(encode::decode_param(portal, i, &pg, inferred)?);
        }
        let deadline = deadline(&session);
        let work = until(deadline, self.engine.execute_prepared_on_query_runtime(&session, portal.statement.clone(), params));
        let result = match with_live_notices(client, &session, work).await? {
            Ok(r) => prime(r, deadline).await,
            Err(e) => Err(e),
        };
        send_notices(client, &session).await?;
        forget_deallocated(client, &session);
        let result = result.map_err(|e| to_pg_error(&e))?;
        Ok(to_outcome(result, &portal.result_column_format))
    }
}

/// Result formats: none (all text), one for all columns, or one per column; anything
/// else is a protocol violation (PostgreSQL: 08P01), never an out-of-range read.
fn check_result_formats(format: &Format, columns: usize) -> PgWireResult<()> {
    if let Format::Individual(codes) = format {
        if codes.len() > 1 && codes.len() != columns {
            return Err(user_error("08P01", format!("bind message has {} result formats but query has {columns} columns", codes.len())));
        }
    }
    Ok(())
}
