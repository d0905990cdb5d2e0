//! Start-up and authentication. With no `[[auth.users]]` configured, only loopback
//! clients are accepted, with any user and database name (trust, as a fresh local
//! PostgreSQL does). With users configured, passwords are checked with SCRAM-SHA-256
//! (default) or MD5; the password itself never leaves the config/env.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::md5pass::{Md5PasswordAuthStartupHandler, hash_md5_password};
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, ConnectionGuard, ConnectionHandle, ConnectionManager, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult, SEVERITY_FATAL};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::config::{AuthMethod, Config};
use crate::error::Result;

const SCRAM_ITERATIONS: usize = 4096;

pub fn server_parameters() -> DefaultServerParameterProvider {
    let mut p = DefaultServerParameterProvider::default();
    p.server_version = format!(
        "{} (lakehouse {})",
        crate::udf::version::PG_COMPAT_VERSION,
        env!("CARGO_PKG_VERSION")
    );
    p.time_zone = "UTC".into();
    p
}

#[derive(Debug)]
struct Users {
    passwords: HashMap<String, String>,
    method: AuthMethod,
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        // An unknown user fails exactly like a wrong password: no user enumeration.
        let password = self.passwords.get(user).cloned().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        match self.method {
            AuthMethod::ScramSha256 => {
                let salt = rand_bytes::<16>();
                Ok(Password::new(Some(salt.to_vec()), gen_salted_password(&password, &salt, SCRAM_ITERATIONS)))
            }
            AuthMethod::Md5 => {
                let salt = rand_bytes::<4>();
                Ok(Password::new(Some(salt.to_vec()), hash_md5_password(user, &password, &salt).into_bytes()))
            }
        }
    }
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    let src: Vec<u8> = a.as_bytes().iter().chain(b.as_bytes()).copied().collect();
    out.copy_from_slice(&src[..N]);
    out
}

type Params = DefaultServerParameterProvider;

enum Mode {
    Trust,
    Scram(SASLAuthStartupHandler<Params>),
    Md5(Md5PasswordAuthStartupHandler<Users, Params>),
}

pub struct LakehouseStartup {
    mode: Mode,
    params: Arc<Params>,
    manager: Arc<ConnectionManager>,
    pids: RandomPidSecretKeyGenerator,
}

impl LakehouseStartup {
    pub fn new(config: &Config, manager: Arc<ConnectionManager>) -> Result<Self> {
        let params = Arc::new(server_parameters());
        let mode = if config.auth.users.is_empty() {
            Mode::Trust
        } else {
            let mut passwords = HashMap::new();
            for u in &config.auth.users {
                passwords.insert(u.name.clone(), u.resolve_password()?);
            }
            let users = Arc::new(Users { passwords, method: config.auth.method });
            match config.auth.method {
                AuthMethod::ScramSha256 => {
                    let mut scram = ScramAuth::new(users);
                    scram.set_iterations(SCRAM_ITERATIONS);
                    Mode::Scram(
                        SASLAuthStartupHandler::new(params.clone())
                            .with_scram(scram)
                            .with_connection_manager(manager.clone()),
                    )
                }
                AuthMethod::Md5 => Mode::Md5(
                    Md5PasswordAuthStartupHandler::new(users, params.clone())
                        .with_connection_manager(manager.clone()),
                ),
            }
        };
        Ok(LakehouseStartup { mode, params, manager, pids: RandomPidSecretKeyGenerator::default() })
    }
}

impl LakehouseStartup {
    /// How to read the `n`-th password message of an authentication (None: the
    /// method takes none).
    pub fn password_kind(&self, n: usize) -> Option<super::frames::PasswordKind> {
        use super::frames::PasswordKind;
        match &self.mode {
            Mode::Trust => None,
            Mode::Md5(_) => Some(PasswordKind::Password),
            Mode::Scram(_) if n == 0 => Some(PasswordKind::SaslInitial),
            Mode::Scram(_) => Some(PasswordKind::SaslResponse),
        }
    }
}

#[async_trait]
impl StartupHandler for LakehouseStartup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match &self.mode {
            Mode::Scram(h) => h.on_startup(client, message).await,
            Mode::Md5(h) => h.on_startup(client, message).await,
            Mode::Trust => {
                let PgWireFrontendMessage::Startup(startup) = &message else {
                    return Ok(());
                };
                // `::ffff:127.0.0.1` (IPv4 on a dual-stack listener) is loopback too.
                if !client.socket_addr().ip().to_canonical().is_loopback() {
                    return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                        SEVERITY_FATAL.to_owned(),
                        "28000".to_owned(),
                        format!(
                            "no users are configured, so only loopback connections are accepted (got {}); add [[auth.users]] to lakehouse.toml",
                            client.socket_addr().ip()
                        ),
                    ))));
                }
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                let (pid, key) = self.pids.generate(client);
                client.set_pid_and_secret_key(pid, key.clone());
                let (handle, guard) = self.manager.register(pid, key);
                client.session_extensions().insert::<Arc<ConnectionHandle>>(handle);
                client.session_extensions().insert::<ConnectionGuard>(guard);
                finish_authentication(client, self.params.as_ref()).await
            }
        }
    }
}
