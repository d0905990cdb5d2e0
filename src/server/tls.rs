//! TLS from `[server] tls_cert` / `tls_key` (PEM), with rustls on ring.

use std::io::BufReader;
use std::sync::Arc;

use pgwire::tokio::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

use crate::config::Config;
use crate::error::{Error, Result};

pub fn acceptor(config: &Config) -> Result<Option<TlsAcceptor>> {
    let (Some(cert_path), Some(key_path)) = (&config.server.tls_cert, &config.server.tls_key) else {
        return Ok(None);
    };
    let cert_file = std::fs::File::open(cert_path).map_err(|e| Error::io(cert_path.display(), e))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(cert_file))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::io(cert_path.display(), e))?;
    if certs.is_empty() {
        return Err(Error::Configuration(format!("{}: no PEM certificate found", cert_path.display())));
    }
    let key_file = std::fs::File::open(key_path).map_err(|e| Error::io(key_path.display(), e))?;
    let key = rustls_pemfile::private_key(&mut BufReader::new(key_file))
        .map_err(|e| Error::io(key_path.display(), e))?
        .ok_or_else(|| Error::Configuration(format!("{}: no PEM private key found", key_path.display())))?;
    let server = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Configuration(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Configuration(format!("TLS certificate/key: {e}")))?;
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}
