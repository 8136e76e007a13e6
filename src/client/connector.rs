//! The HTTP connection pool every store's requests go over: rustls on ring, the system's
//! roots plus the certificates the app trusts, bounded idle connections, connect and read
//! timeouts.

use std::time::Duration;

use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::{HttpConnectorSettings, SharedHttpConnector};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::core::error::{Error, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an answer may take to start once a request is sent.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per host, and for how long: a burst must not leave a thousand
/// sockets open (S3 itself drops idle connections after about 20 seconds).
const MAX_IDLE_CONNECTIONS: usize = 32;
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);

/// Certificates trusted beyond the system's roots (an on-premises MinIO's, an emulator's).
#[derive(Clone, Default)]
pub struct Trust {
    certificates: Vec<Vec<u8>>,
}

impl Trust {
    /// The app's own (`caCertificates`, PEM), and the files `NODE_EXTRA_CA_CERTS` and
    /// `AWS_CA_BUNDLE` name, as Node and the AWS SDKs read them. Each is checked here: one that
    /// is not a certificate is a configuration error now, not a failure on the first request.
    pub fn with_environment(given: Option<&str>) -> Result<Trust> {
        let mut trust = Trust::default();
        if let Some(pem) = given {
            trust.add(pem.as_bytes(), "caCertificates")?;
        }
        for variable in ["NODE_EXTRA_CA_CERTS", "AWS_CA_BUNDLE"] {
            if let Some(path) = std::env::var_os(variable).filter(|p| !p.is_empty()) {
                let pem = std::fs::read(&path).map_err(|e| {
                    Error::Configuration(format!(
                        "{variable} names {}, which cannot be read: {}",
                        path.to_string_lossy(),
                        e.kind()
                    ))
                })?;
                trust.add(&pem, variable)?;
            }
        }
        Ok(trust)
    }

    fn add(&mut self, pem: &[u8], origin: &str) -> Result<()> {
        let unreadable = || Error::Configuration(format!("{origin} holds no PEM certificate that can be read"));
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| unreadable())?;
        let mut roots = rustls::RootCertStore::empty();
        for certificate in &certificates {
            roots.add(certificate.clone()).map_err(|_| unreadable())?;
        }
        if certificates.is_empty() {
            return Err(unreadable());
        }
        self.certificates.push(pem.to_vec());
        Ok(())
    }
}

/// A new connection pool; one per store.
pub fn pooled_connector(trust: &Trust) -> SharedHttpConnector {
    let roots =
        trust.certificates.iter().fold(TrustStore::default(), |roots, pem| roots.with_pem_certificate(pem.clone()));
    SharedHttpConnector::new(
        Connector::builder()
            .connector_settings(
                HttpConnectorSettings::builder().connect_timeout(CONNECT_TIMEOUT).read_timeout(READ_TIMEOUT).build(),
            )
            .sleep_impl(TokioSleep::new())
            .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS)
            .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .tls_context(TlsContext::builder().with_trust_store(roots).build().unwrap_or_default())
            .build(),
    )
}
