//! TLS for the three services: one rustls crypto provider (ring: it is
//! already in the build through neo4rs, and it keeps aws-lc's slow build
//! script out), and the CA files of `amqp_ca_file`, `redis_ca_file` and
//! `graph_ca_file`. Without a CA file the system's trust store is used
//! (rustls-native-certs).
//!
//! The TLS itself is the client crates' (lapin through tcp-stream, redis
//! through tokio-rustls, neo4rs); this module only hands them their trust.

use std::path::Path;

use crate::adapters::secret::ServiceUrl;

/// Makes ring the process's rustls provider. Idempotent; call before any
/// TLS connection (the redis crate asks rustls for the process default).
pub fn install_crypto_provider() {
    // An error means a provider is installed already: that one is kept.
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
}

/// The PEM text of a CA file: readable, UTF-8, holding at least one
/// certificate. The error names the file.
pub fn read_ca(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("CA file {shown}: {e}"))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!("CA file {shown} holds no PEM certificate"));
    }
    Ok(text)
}

/// A Redis client for `url`: `rediss://` trusts `ca` when given (else the
/// system's trust store); `redis://` ignores `ca` (the config validation
/// refuses a CA file with a plain URL).
pub fn redis_client(url: &ServiceUrl, ca: Option<&Path>) -> redis::RedisResult<redis::Client> {
    install_crypto_provider();
    match (url.scheme(), ca) {
        (Some("rediss"), Some(ca)) => {
            let pem = read_ca(ca).map_err(|m| {
                redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "CA file", m))
            })?;
            redis::Client::build_with_tls(
                url.expose(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.into_bytes()),
                },
            )
        }
        _ => redis::Client::open(url.expose()),
    }
}

/// lapin's TLS settings for `amqps://`: the CA chain of `ca`, if any.
pub fn amqp_tls(ca: Option<&Path>) -> Result<lapin::tcp::OwnedTLSConfig, String> {
    install_crypto_provider();
    Ok(lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: ca.map(read_ca).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_files_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("ca.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        assert!(read_ca(&bad)
            .unwrap_err()
            .contains("holds no PEM certificate"));
        assert!(read_ca(&dir.path().join("missing.pem"))
            .unwrap_err()
            .contains("missing.pem"));
    }

    #[test]
    fn plain_redis_urls_ignore_the_ca() {
        let client = redis_client(&ServiceUrl::new("redis://127.0.0.1:1/"), None);
        assert!(client.is_ok());
        let missing = Path::new("/nonexistent/ca.pem");
        let err = redis_client(&ServiceUrl::new("rediss://127.0.0.1:1/"), Some(missing))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
