//! A TLS-terminating proxy owned by a test: accepts TLS on a free port with a
//! given certificate and key, forwards the plain bytes to a local port. It
//! stands in front of servers whose builds here cannot speak TLS themselves
//! (FalkorDB's redis-server, ArcadeDB's Bolt listener), so the clients'
//! TLS — handshake, CA file, hostname check — is tested for real.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

pub struct TlsProxy {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    /// Listens on 127.0.0.1 (call inside a Tokio runtime), forwarding to
    /// `127.0.0.1:<target>`.
    pub async fn start(cert: &Path, key: &Path, target: u16) -> anyhow::Result<TlsProxy> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certs = CertificateDer::pem_file_iter(cert)
            .context("certificate")?
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(key).context("key")?;
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A failed handshake (an untrusting client) just ends here.
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Ok(TlsProxy { port, task })
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
