//! Query handlers on pgwire: simple and extended protocol, per-connection sessions,
//! NOTICEs, and the mapping of our errors to SQLSTATEs (internal errors masked).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, METADATA_DATABASE, METADATA_USER, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult, SEVERITY_ERROR, SEVERITY_NOTICE};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::response::NoticeResponse;

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
    PgWireError::UserError(Box::new(ErrorInfo::new(SEVERITY_ERROR.to_owned(), e.sqlstate().to_owned(), message)))
}

fn error_info(e: &Error) -> ErrorInfo {
    match to_pg_error(e) {
        PgWireError::UserError(info) => *info,
        other => ErrorInfo::new(SEVERITY_ERROR.into(), "XX000".into(), other.to_string()),
    }
}

/// The connection's session, created on first use from the startup parameters.
pub fn session_for<C: ClientInfo + ?Sized>(engine: &Engine, client: &C) -> Arc<Session> {
    client.session_extensions().get_or_insert_with(|| {
        let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
        let db = client.metadata().get(METADATA_DATABASE).cloned().unwrap_or_else(|| user.clone());
        engine.new_session(&user, &db)
    })
}

async fn send_notices<C>(client: &mut C, session: &Session) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for n in session.take_notices() {
        let info = ErrorInfo::new(SEVERITY_NOTICE.to_owned(), "00000".to_owned(), n);
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
async fn prime(result: QueryResult) -> Result<QueryResult, Error> {
    match result {
        QueryResult::Rows { schema, mut stream } => {
            use futures::StreamExt;
            let first = match stream.next().await {
                Some(Ok(b)) => Some(Ok(b)),
                Some(Err(e)) => return Err(Error::from_datafusion(e)),
                None => None,
            };
            let rest = futures::stream::iter(first).chain(stream);
            let stream = Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema.clone(), rest));
            Ok(QueryResult::Rows { schema, stream })
        }
        other => Ok(other),
    }
}

fn to_response(result: QueryResult, format: &Format) -> Response {
    match result {
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
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_for(&self.engine, client);
        let (results, mut err) = with_live_notices(client, &session, self.engine.execute(&session, query)).await?;
        let mut responses: Vec<Response> = Vec::with_capacity(results.len() + 1);
        for r in results {
            match prime(r).await {
                Ok(r) => responses.push(to_response(r, &Format::UnifiedText)),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        send_notices(client, &session).await?;
        if let Some(e) = err {
            responses.push(Response::Error(Box::new(error_info(&e))));
        }
        Ok(responses)
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
        let session = session_for(&self.engine, client);
        self.engine.prepare(&session, sql).await.map(Some).map_err(|e| to_pg_error(&e))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt.param_types.iter().map(|t| encode::param_pg_type(t.as_ref())).collect())
    }

    fn get_result_schema(&self, stmt: &Prepared, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        Ok(match &stmt.schema {
            Some(schema) => encode::field_infos(schema, format.unwrap_or(&Format::UnifiedText)),
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

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Prepared>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_for(&self.engine, client);
        let stmt: &StoredStatement<Prepared> = &portal.statement;
        let prepared = &stmt.statement;
        let mut params = Vec::with_capacity(portal.parameter_len());
        for i in 0..portal.parameter_len() {
            let inferred = prepared.param_types.get(i).and_then(|t| t.as_ref());
            let declared = stmt.parameter_types.get(i).cloned().flatten().filter(|t| *t != Type::UNKNOWN);
            let pg = declared.unwrap_or_else(|| match inferred {
                Some(dt) => encode::pg_type(dt),
                None => Type::TEXT,
            });
            params.push(encode::decode_param(portal, i, &pg, inferred)?);
        }
        let result = match with_live_notices(client, &session, self.engine.execute_prepared(&session, prepared, params)).await? {
            Ok(r) => prime(r).await,
            Err(e) => Err(e),
        };
        send_notices(client, &session).await?;
        let result = result.map_err(|e| to_pg_error(&e))?;
        Ok(to_response(result, &portal.result_column_format))
    }
}
