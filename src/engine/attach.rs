//! `ATTACH 'mysql://…' AS shop (TYPE mysql)`, `CALL attach(…)`, `DETACH shop`: a
//! source database becomes schema `shop` (table_providers/remote.rs), recorded in the
//! catalog so it is attached again at the next start.

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::sql::sqlparser::ast::{AttachDuckDBDatabaseOption, Ident};

use super::{CATALOG_NAME, DATA_SCHEMA, Engine, QueryResult, Session};
use crate::catalog::attachments::{AttachmentRecord, Location, PasswordSource, RemoteKind, TypeFallback};
use crate::error::{Error, Result};
use crate::table_providers::remote::RemoteSchema;

/// Everything `attach` takes; the statement form fills what it can carry.
#[derive(Debug, Default)]
pub struct AttachRequest {
    pub name: String,
    pub url: String,
    pub kind: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub schema: Option<String>,
    pub types: Option<String>,
    pub read_only: Option<bool>,
    pub if_not_exists: bool,
}

/// Schema names an attachment may not take.
const RESERVED: &[&str] = &[DATA_SCHEMA, crate::table_providers::SYSTEM_SCHEMA, "pg_catalog", "information_schema"];

pub fn valid_name(name: &str) -> Result<String> {
    let lower = name.to_lowercase();
    let ok = lower.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && lower.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && lower.len() <= 63;
    if !ok {
        return Err(Error::invalid(format!(
            "attachment name \"{name}\" must be an identifier (letters, digits, _; not starting with a digit)"
        )));
    }
    Ok(lower)
}

impl Engine {
    fn lakehouse_catalog(&self) -> Result<Arc<dyn CatalogProvider>> {
        self.template
            .catalog(CATALOG_NAME)
            .ok_or_else(|| Error::Internal("default catalog missing".into()))
    }

    /// The live schema of an attachment.
    pub(crate) fn remote_schema(&self, name: &str) -> Option<Arc<RemoteSchema>> {
        self.remotes.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    pub async fn attach(&self, session: &Session, req: AttachRequest) -> Result<AttachmentRecord> {
        let name = valid_name(&req.name)?;
        let (location, inline) = Location::parse(&req.url)?;
        if let Some(k) = &req.kind {
            let kind = RemoteKind::parse(k)
                .ok_or_else(|| Error::invalid(format!("TYPE {k} is not a source lakehouse attaches (mysql or postgres)")))?;
            if kind != location.kind {
                return Err(Error::invalid(format!("TYPE {k} does not match location {}", location.display())));
            }
        }
        if req.read_only == Some(false) {
            return Err(Error::NotSupported(
                "writing to an attached database (READ_ONLY false); attachments are read-only — write at the source, or CALL ingest(…) and write the lakehouse copy".into(),
            ));
        }
        let types = match req.types.as_deref().map(str::to_lowercase).as_deref() {
            None | Some("error") => TypeFallback::Error,
            Some("text") => TypeFallback::Text,
            Some(other) => return Err(Error::invalid(format!("types must be 'error' or 'text', not '{other}'"))),
        };
        let chosen = [inline.is_some(), req.password_env.is_some(), req.password_file.is_some()];
        if chosen.iter().filter(|c| **c).count() > 1 {
            return Err(Error::invalid("give the password one way: in the URL, password_env => 'VAR', or password_file => '/path'"));
        }
        if let Some(var) = &req.password_env {
            self.check_secret_env(session, var, "password_env")?;
        }
        if let Some(file) = &req.password_file {
            self.check_secret_file(session, file, "password_file")?;
        }
        if location.kind == RemoteKind::Mysql && req.schema.is_some() {
            return Err(Error::invalid("schema applies to postgres attachments (a MySQL database is its schema)"));
        }

        let _ddl = self.ddl.lock().await;
        if let Some(existing) = self.catalog.attachment(&name) {
            if req.if_not_exists {
                session.notice(format!("attachment \"{name}\" already exists, skipping"));
                return Ok(existing);
            }
            return Err(Error::DuplicateObject(format!("attachment \"{name}\" ({}); DETACH {name} first", existing.location.display())));
        }
        let catalog_provider = self.lakehouse_catalog()?;
        if RESERVED.contains(&name.as_str()) || catalog_provider.schema(&name).is_some() {
            return Err(Error::DuplicateObject(format!("schema \"{name}\"")));
        }

        let mut password = match (&req.password_env, &req.password_file) {
            (Some(v), _) => PasswordSource::Env(v.clone()),
            (_, Some(f)) => PasswordSource::File(f.clone()),
            _ => PasswordSource::None,
        };
        if let Some(p) = inline {
            let catalog = self.catalog.clone();
            let n = name.clone();
            password = PasswordSource::Stored(crate::catalog::blocking(move || catalog.store_secret(&n, &p)).await?);
        }
        let record = AttachmentRecord {
            name: name.clone(),
            location,
            password,
            remote_schema: req.schema.clone(),
            types,
            read_only: true,
            created_at: crate::catalog::now_rfc3339(),
            access: crate::catalog::roles::Access::owned_by(&session.user),
        };
        let forget_secret = |r: &AttachmentRecord| {
            if let PasswordSource::Stored(f) = &r.password {
                self.catalog.remove_secret(f);
            }
        };
        let schema = match RemoteSchema::open(self.catalog.clone(), record.clone()).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                forget_secret(&record);
                return Err(e);
            }
        };
        let catalog = self.catalog.clone();
        let rec = record.clone();
        if let Err(e) = crate::catalog::blocking(move || catalog.put_attachment(rec)).await {
            forget_secret(&record);
            return Err(e);
        }
        let tables = schema.table_names().len();
        self.install_remote(&catalog_provider, schema)?;
        session.notice(format!("attached {} as schema {name} ({tables} tables)", record.location.display()));
        Ok(record)
    }

    fn install_remote(&self, catalog_provider: &Arc<dyn CatalogProvider>, schema: Arc<RemoteSchema>) -> Result<()> {
        let name = schema.record().name.clone();
        catalog_provider.register_schema(&name, schema.clone())?;
        self.remotes.lock().unwrap_or_else(|p| p.into_inner()).insert(name, schema);
        Ok(())
    }

    pub async fn detach(&self, session: &Session, name: &str, if_exists: bool) -> Result<QueryResult> {
        let name = name.to_lowercase();
        let _ddl = self.ddl.lock().await;
        self.require_owner(session, &crate::catalog::roles::Object::Schema(name.clone()))?;
        let catalog = self.catalog.clone();
        let n = name.clone();
        match crate::catalog::blocking(move || catalog.remove_attachment(&n)).await? {
            Some(rec) => {
                if let PasswordSource::Stored(f) = &rec.password {
                    self.catalog.remove_secret(f);
                }
                self.remotes.lock().unwrap_or_else(|p| p.into_inner()).remove(&name);
                let _ = self.lakehouse_catalog()?.deregister_schema(&name, true);
            }
            None if if_exists => session.notice(format!("attachment \"{name}\" does not exist, skipping")),
            None => {
                return Err(Error::UndefinedObject(format!(
                    "attachment \"{name}\" does not exist; see SELECT name FROM lakehouse.attachments"
                )));
            }
        }
        Ok(QueryResult::command("DETACH"))
    }

    /// Attach every recorded attachment again. A source that is down does not hold up
    /// the start: its schema connects at first use.
    pub(super) fn restore_attachments(&self) {
        let Ok(catalog_provider) = self.lakehouse_catalog() else { return };
        for record in self.catalog.snapshot().attachments.values() {
            let schema = Arc::new(RemoteSchema::offline(self.catalog.clone(), record.clone()));
            if let Err(e) = self.install_remote(&catalog_provider, schema.clone()) {
                tracing::warn!("attachment {}: {}", record.name, e.message());
                continue;
            }
            tokio::spawn(async move {
                if let Err(e) = schema.refresh().await {
                    tracing::warn!(
                        "attachment {} ({}) is not reachable now; its first query will try again: {}",
                        schema.record().name,
                        schema.record().location.display(),
                        e.message()
                    );
                }
            });
        }
    }

    /// `ATTACH [DATABASE] [IF NOT EXISTS] 'url' AS name (TYPE mysql, READ_ONLY)`.
    pub(super) async fn attach_statement(
        &self,
        session: &Session,
        if_not_exists: bool,
        path: &Ident,
        alias: Option<&Ident>,
        options: &[AttachDuckDBDatabaseOption],
    ) -> Result<QueryResult> {
        let name = alias.ok_or_else(|| Error::invalid("ATTACH needs AS name (the schema its tables appear in)"))?;
        let mut req = AttachRequest { name: name.value.clone(), url: path.value.clone(), if_not_exists, ..Default::default() };
        for o in options {
            match o {
                AttachDuckDBDatabaseOption::Type(t) => req.kind = Some(t.value.clone()),
                AttachDuckDBDatabaseOption::ReadOnly(v) => req.read_only = Some(v.unwrap_or(true)),
            }
        }
        self.attach(session, req).await?;
        Ok(QueryResult::command("ATTACH"))
    }
}
