//! A TLS terminator: takes TLS connections with a certificate and key (PEM) and passes each
//! one's bytes to a plain TCP server and back, so that clients are measured over HTTPS against
//! servers that speak only HTTP. Prints `ready <port>`.
//! Usage: tls-proxy <upstream host:port> <cert.pem> <key.pem> [port]

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

fn fail(message: String) -> std::io::Error {
    std::io::Error::other(message)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, upstream, cert, key, rest @ ..] = args.as_slice() else {
        return Err(fail("usage: tls-proxy <upstream host:port> <cert.pem> <key.pem> [port]".into()));
    };
    let port: u16 = rest.first().and_then(|p| p.parse().ok()).unwrap_or(0);
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(format!("{cert}: {e}")))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(format!("{key}: {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| fail(e.to_string()))?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("ready {}", listener.local_addr()?.port());
    loop {
        let (client, _) = listener.accept().await?;
        let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            // Said aloud: a client that does not trust the run's CA shows here, not only as its own vague error.
            let mut tls = match acceptor.accept(client).await {
                Ok(tls) => tls,
                Err(e) => return eprintln!("tls-proxy: handshake failed: {e}"),
            };
            let Ok(mut server) = TcpStream::connect(upstream.as_str()).await else { return };
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
        });
    }
}
