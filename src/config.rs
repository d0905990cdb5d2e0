//! `lakehouse.toml` plus `LAKEHOUSE_*` environment overrides.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:5433"
//! tls_cert = "/etc/lakehouse/server.crt"   # optional; both or neither
//! tls_key = "/etc/lakehouse/server.key"
//! max_message_bytes = 67108864
//! max_connections = 100                    # more clients get 53300
//! memory_limit = "2GiB"                    # per statement (53200 beyond it)
//!
//! [storage]
//! data_dir = "./lakehouse-data"
//!
//! [auth]
//! method = "scram-sha-256"                 # or "md5"
//! [[auth.users]]
//! name = "alice"
//! password_env = "ALICE_PASSWORD"          # or password = "…" (keep the file private)
//! superuser = true                         # default: only the first user is one
//!
//! [secrets]                                # what ATTACH / create_model may read as a secret
//! env = ["SHOP_DB_PASSWORD"]               # environment variables (password_env, api_key_env)
//! files = ["/etc/lakehouse/shop.pw"]       # files (password_file)
//!
//! [[models]]                               # embedding models (as CALL create_model)
//! name = "nomic"
//! provider = "ollama"                      # ollama | openai | local | hash
//! base_url = "http://127.0.0.1:11434"
//! model = "nomic-embed-text"
//! dims = 768                               # HTTP models: else probed at first use
//!
//! [agent]                                  # the autotune agent (tuning::agent)
//! enabled = false
//! max_trials_per_hour = 12
//! cooldown_secs = 300
//! period_secs = 3600
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5433";
pub const DEFAULT_DATA_DIR: &str = "./lakehouse-data";
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    /// Embedding models declared here (`[[models]]`, same fields as create_model).
    #[serde(default)]
    pub models: Vec<crate::catalog::models::ModelRecord>,
    /// The autotune agent (`[agent]`, off by default; see tuning::agent).
    #[serde(default)]
    pub agent: crate::tuning::agent::AgentConfig,
    /// Environment variables and files SQL may name as a secret (`[secrets]`).
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// The config file this came from (never readable through SQL).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// The allow-list of secret sources: `password_env`, `api_key_env` and
/// `password_file` in SQL may only name these. Anything else the server process can
/// see stays out of reach of clients.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub files: Vec<PathBuf>,
}

impl SecretsConfig {
    pub fn check_env(&self, var: &str) -> Result<()> {
        if self.env.iter().any(|v| v == var) {
            return Ok(());
        }
        Err(Error::PermissionDenied(format!(
            "environment variable {var} is not an allowed secret; list it in lakehouse.toml under [secrets] env = [\"{var}\"]"
        )))
    }

    pub fn check_file(&self, path: &str) -> Result<()> {
        let wanted = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
        let allowed = self.files.iter().any(|f| {
            std::fs::canonicalize(f).map(|c| c == wanted).unwrap_or(false) || f == Path::new(path)
        });
        if allowed {
            return Ok(());
        }
        Err(Error::PermissionDenied(format!(
            "file {path} is not an allowed secret file; list it in lakehouse.toml under [secrets] files = [\"{path}\"]"
        )))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Memory one statement's operators may reserve (sorts, joins, aggregates,
    /// buffered batches), e.g. "2GiB"; beyond it the statement fails with 53200.
    #[serde(default = "default_memory_limit")]
    pub memory_limit: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            tls_cert: None,
            tls_key: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_connections: default_max_connections(),
            memory_limit: default_memory_limit(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { data_dir: default_data_dir() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum AuthMethod {
    #[default]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "md5")]
    Md5,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub method: AuthMethod,
    #[serde(default)]
    pub users: Vec<UserConfig>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub password: Option<String>,
    pub password_env: Option<String>,
    /// May manage buckets, read and write server files, name secrets. Unset: only
    /// the first user in the list is a superuser (when no user sets it).
    pub superuser: Option<bool>,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a password, even in debug output.
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_env", &self.password_env)
            .field("superuser", &self.superuser)
            .finish()
    }
}

impl UserConfig {
    /// The user's password, from the config file or the named environment variable.
    pub fn resolve_password(&self) -> Result<String> {
        match (&self.password, &self.password_env) {
            (Some(p), None) => Ok(p.clone()),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                Error::Configuration(format!(
                    "user \"{}\": environment variable {var} (password_env) is not set",
                    self.name
                ))
            }),
            _ => Err(Error::Configuration(format!(
                "user \"{}\" needs exactly one of password or password_env",
                self.name
            ))),
        }
    }
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}
fn default_max_message() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}
fn default_max_connections() -> usize {
    100
}
fn default_memory_limit() -> String {
    "2GiB".into()
}

/// "512MiB", "2GiB", "1000000" (bytes).
pub fn parse_bytes(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "kib" | "k" => 1024.0,
        "mb" | "mib" | "m" => 1024.0 * 1024.0,
        "gb" | "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        "tb" | "tib" | "t" => 1024.0f64.powi(4),
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 0.0 && v < usize::MAX as f64).then_some(v as usize)
}

impl Config {
    /// Is `user` a superuser? With no users configured (trust on loopback), the one
    /// local user is.
    pub fn is_superuser(&self, user: &str) -> bool {
        let users = &self.auth.users;
        if users.is_empty() {
            return true;
        }
        let marked = users.iter().any(|u| u.superuser.is_some());
        users.iter().enumerate().any(|(i, u)| {
            u.name == user && if marked { u.superuser == Some(true) } else { i == 0 }
        })
    }

    pub fn memory_limit_bytes(&self) -> usize {
        parse_bytes(&self.server.memory_limit).unwrap_or(2 << 30)
    }
}

impl Config {
    /// Load from `path` (missing file is an error only when the path was given
    /// explicitly), then apply `LAKEHOUSE_LISTEN` and `LAKEHOUSE_DATA_DIR`.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let mut config = match path {
            Some(p) => Self::from_file(p)?,
            None if Path::new("lakehouse.toml").exists() => Self::from_file(Path::new("lakehouse.toml"))?,
            None => Config::default(),
        };
        config.source = match path {
            Some(p) => Some(p.to_path_buf()),
            None if Path::new("lakehouse.toml").exists() => Some(PathBuf::from("lakehouse.toml")),
            None => None,
        };
        if let Ok(listen) = std::env::var("LAKEHOUSE_LISTEN") {
            config.server.listen = listen;
        }
        if let Ok(dir) = std::env::var("LAKEHOUSE_DATA_DIR") {
            config.storage.data_dir = PathBuf::from(dir);
        }
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
        Self::from_toml(&text).map_err(|e| match e {
            Error::Configuration(msg) => Error::Configuration(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    pub fn from_toml(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| Error::Configuration(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        self.listen_addr()?;
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err(Error::Configuration(
                "[server] tls_cert and tls_key must be set together".into(),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(Error::Configuration("[server] max_connections must be at least 1".into()));
        }
        if parse_bytes(&self.server.memory_limit).is_none_or(|b| b < 1 << 20) {
            return Err(Error::Configuration(format!(
                "[server] memory_limit \"{}\" is not a size of at least 1MiB (for example \"2GiB\")",
                self.server.memory_limit
            )));
        }
        if self.server.max_message_bytes < 1024 {
            return Err(Error::Configuration("[server] max_message_bytes must be at least 1024".into()));
        }
        for m in &self.models {
            m.validate().map_err(|e| Error::Configuration(format!("[[models]] {}: {e}", m.name)))?;
        }
        self.agent.validate()?;
        for u in &self.auth.users {
            if u.password.is_some() == u.password_env.is_some() {
                return Err(Error::Configuration(format!(
                    "user \"{}\" needs exactly one of password or password_env",
                    u.name
                )));
            }
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr> {
        self.server.listen.parse().map_err(|_| {
            Error::Configuration(format!(
                "listen address \"{}\" is not host:port (for example 127.0.0.1:5433)",
                self.server.listen
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bind_loopback() {
        let c = Config::from_toml("").unwrap();
        assert!(c.listen_addr().unwrap().ip().is_loopback());
        assert_eq!(c.server.max_message_bytes, 64 << 20);
        assert!(c.auth.users.is_empty());
    }

    #[test]
    fn users_and_tls_are_checked() {
        let c = Config::from_toml(
            "[auth]\nmethod = \"md5\"\n[[auth.users]]\nname = \"a\"\npassword = \"secret\"\n",
        )
        .unwrap();
        assert_eq!(c.auth.method, AuthMethod::Md5);
        assert!(!format!("{:?}", c.auth.users[0]).contains("secret"));
        assert!(Config::from_toml("[server]\ntls_cert = \"x\"\n").is_err());
        assert!(Config::from_toml("[[auth.users]]\nname = \"a\"\n").is_err());
        assert!(Config::from_toml("[server]\nlisten = \"nope\"\n").is_err());
        assert!(Config::from_toml("[bogus]\n").is_err());
        assert!(Config::from_toml("[server]\nmemory_limit = \"lots\"\n").is_err());
        assert_eq!(parse_bytes("512MiB"), Some(512 << 20));
        assert_eq!(parse_bytes("2GiB"), Some(2 << 30));
    }

    #[test]
    fn superusers_are_the_first_user_or_the_marked_ones() {
        assert!(Config::default().is_superuser("anyone"), "trust mode: one local superuser");
        let c = Config::from_toml("[[auth.users]]\nname = \"a\"\npassword = \"x\"\n[[auth.users]]\nname = \"b\"\npassword = \"y\"\n").unwrap();
        assert!(c.is_superuser("a") && !c.is_superuser("b") && !c.is_superuser("nobody"));
        let c = Config::from_toml("[[auth.users]]\nname = \"a\"\npassword = \"x\"\nsuperuser = false\n[[auth.users]]\nname = \"b\"\npassword = \"y\"\nsuperuser = true\n").unwrap();
        assert!(!c.is_superuser("a") && c.is_superuser("b"));
    }

    #[test]
    fn models_are_declared_and_checked() {
        let c = Config::from_toml(
            "[[models]]\nname = \"nomic\"\nprovider = \"ollama\"\nbase_url = \"http://127.0.0.1:11434\"\nmodel = \"nomic-embed-text\"\ndims = 768\n",
        )
        .unwrap();
        assert_eq!(c.models[0].dims, Some(768));
        assert!(Config::from_toml("[[models]]\nname = \"x\"\nprovider = \"ollama\"\n").is_err());
        assert!(Config::from_toml("[[models]]\nname = \"x\"\nprovider = \"hash\"\napi_key = \"sk\"\n").is_err());
    }
}
