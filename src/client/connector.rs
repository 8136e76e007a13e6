//! The HTTP connection pool every store's requests go over: rustls on ring, bounded idle
//! connections, connect and read timeouts.

use std::time::Duration;

use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::{HttpConnectorSettings, SharedHttpConnector};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an answer may take to start once a request is sent.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per host, and for how long: a burst must not leave a thousand
/// sockets open (S3 itself drops idle connections after about 20 seconds).
const MAX_IDLE_CONNECTIONS: usize = 32;
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);

/// A new connection pool; one per store.
pub fn pooled_connector() -> SharedHttpConnector {
    SharedHttpConnector::new(
        Connector::builder()
            .connector_settings(
                HttpConnectorSettings::builder().connect_timeout(CONNECT_TIMEOUT).read_timeout(READ_TIMEOUT).build(),
            )
            .sleep_impl(TokioSleep::new())
            .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS)
            .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build(),
    )
}
