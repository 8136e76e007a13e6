//! Where a GCS store's access tokens come from: a service-account key exchanged for an OAuth2
//! token by the JWT-bearer flow (RS256 with ring), an `authorized_user` file (a refresh
//! token, as `gcloud auth application-default login` writes), the metadata server of the
//! machine on Google Cloud, or nothing at all (emulators).
//! Tokens live in the shared `CredentialCache`, fetched again before they expire.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;

use crate::client::credentials::{CredentialCache, CredentialSource, Expiring};
use crate::client::request::{build_request, HttpClient};
use crate::core::error::{Error, Result};

/// What a store may do with its token: read and write objects, nothing about IAM.
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Google grants assertions of at most one hour.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);

/// A service account's key, as in the JSON key file Google hands out. Never printed.
pub struct ServiceAccountKey {
    pub client_email: String,
    pub token_uri: String,
    key_pair: RsaKeyPair,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceAccountKey({})", self.client_email)
    }
}

/// The fields of a credentials file this store reads.
#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    token_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

/// A user's refresh token (`authorized_user`): gets tokens, cannot sign URLs.
pub struct AuthorizedUser {
    client_id: String,
    client_secret: String,
    refresh_token: String,
    token_uri: String,
}

/// What a credentials document holds.
pub enum GcsCredentials {
    ServiceAccount(Arc<ServiceAccountKey>),
    AuthorizedUser(AuthorizedUser),
}

impl GcsCredentials {
    /// Reads a credentials document; `origin` names it in errors ("the key file /x.json"),
    /// which never quote its content.
    pub fn parse(json: &[u8], origin: &str) -> Result<GcsCredentials> {
        let file: CredentialsFile = serde_json::from_slice(json)
            .map_err(|_| Error::Configuration(format!("{origin} is not a Google credentials JSON document")))?;
        let missing = |field: &str| Error::Configuration(format!("{origin} has no {field}"));
        match file.kind.as_deref() {
            Some("authorized_user") => Ok(GcsCredentials::AuthorizedUser(AuthorizedUser {
                client_id: file.client_id.ok_or_else(|| missing("client_id"))?,
                client_secret: file.client_secret.ok_or_else(|| missing("client_secret"))?,
                refresh_token: file.refresh_token.ok_or_else(|| missing("refresh_token"))?,
                token_uri: file.token_uri.unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned()),
            })),
            Some("service_account") | None => {
                let pem = file.private_key.ok_or_else(|| missing("private_key"))?;
                let key_pair = RsaKeyPair::from_pkcs8(&pem_to_der(&pem).ok_or_else(|| {
                    Error::Configuration(format!("{origin}: private_key is not a PEM PKCS#8 RSA key"))
                })?)
                .map_err(|_| Error::Configuration(format!("{origin}: private_key is not a usable RSA key")))?;
                Ok(GcsCredentials::ServiceAccount(Arc::new(ServiceAccountKey {
                    client_email: file.client_email.ok_or_else(|| missing("client_email"))?,
                    token_uri: file.token_uri.unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned()),
                    key_pair,
                })))
            }
            Some(other) => Err(Error::Configuration(format!(
                "{origin} holds {other:?} credentials; this store takes service_account or authorized_user"
            ))),
        }
    }

    pub fn signing_key(&self) -> Option<Arc<ServiceAccountKey>> {
        match self {
            GcsCredentials::ServiceAccount(key) => Some(Arc::clone(key)),
            GcsCredentials::AuthorizedUser(_) => None,
        }
    }
}

impl ServiceAccountKey {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let mut signature = vec![0; self.key_pair.public().modulus_len()];
        self.key_pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut signature)
            .map_err(|_| Error::Internal("RSA signing failed".into()))?;
        Ok(signature)
    }

    /// The signed JWT that asks the token endpoint for an access token.
    fn assertion(&self, now: SystemTime) -> Result<String> {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME.as_secs(),
        });
        let unsigned =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self.sign(unsigned.as_bytes())?;
        Ok(format!("{unsigned}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The base64 between a PEM's BEGIN and END lines.
fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|line| !line.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    STANDARD.decode(body).ok()
}

/// An access token, or none (anonymous access to an emulator).
#[derive(Clone)]
pub struct Token {
    pub bearer: Option<Arc<str>>,
    expires: Option<SystemTime>,
}

impl Expiring for Token {
    fn expires(&self) -> Option<SystemTime> {
        self.expires
    }
}

pub type GcsTokens = CredentialCache<Token>;

/// Anonymous: no token, ever (emulators only).
pub fn anonymous() -> GcsTokens {
    CredentialCache::primed(Box::new(Anonymous), Token { bearer: None, expires: None })
}

struct Anonymous;

#[async_trait]
impl CredentialSource<Token> for Anonymous {
    async fn fetch(&self) -> Result<Token> {
        Ok(Token { bearer: None, expires: None })
    }
}

/// The metadata server of GCE, GKE, Cloud Run and Cloud Functions: tokens of the service
/// account attached to the machine (or the workload), with no key anywhere. Asked when nothing
/// else was found; off Google Cloud it does not answer, and the error says what to set.
pub struct MetadataServer {
    pub http: HttpClient,
    /// `GCE_METADATA_HOST`, as Google's own libraries read it; `metadata.google.internal` by default.
    pub host: String,
}

impl MetadataServer {
    pub fn new(http: HttpClient) -> MetadataServer {
        let host = std::env::var("GCE_METADATA_HOST").ok().filter(|h| !h.is_empty());
        MetadataServer { http, host: host.unwrap_or_else(|| "metadata.google.internal".into()) }
    }
}

#[async_trait]
impl CredentialSource<Token> for MetadataServer {
    async fn fetch(&self) -> Result<Token> {
        let url = format!("http://{}/computeMetadata/v1/instance/service-accounts/default/token", self.host);
        let operation = "a token request to the GCE metadata server";
        let headers = [("metadata-flavor", "Google")];
        let nothing_found = |why: String| {
            Error::PermissionDenied(format!(
                "no Google credentials were found ({why}): give keyFilename or credentials (a service-account \
                 key), set GOOGLE_APPLICATION_CREDENTIALS to a key file, run `gcloud auth application-default \
                 login`, or run on Google Cloud with a service account attached"
            ))
        };
        let answer = self
            .http
            .send(operation, &Bytes::new(), |b| build_request(operation, "GET", &url, headers, b))
            .await
            .map_err(|_| nothing_found("no metadata server answered".into()))?;
        let status = answer.response.status().as_u16();
        let read = self.http.read_capped(answer.response).await;
        match serde_json::from_slice::<TokenAnswer>(&read) {
            Ok(TokenAnswer { access_token: Some(token), expires_in, .. }) if status == 200 => {
                Ok(token_for(token, expires_in))
            }
            _ => Err(nothing_found(format!("the metadata server answered {status} with no token"))),
        }
    }
}

fn token_for(token: String, expires_in: Option<u64>) -> Token {
    let lifetime = Duration::from_secs(expires_in.unwrap_or(3600));
    Token { bearer: Some(Arc::from(token)), expires: Some(SystemTime::now() + lifetime) }
}

/// Exchanges credentials for tokens at their token endpoint.
pub struct TokenExchange {
    pub credentials: GcsCredentials,
    pub http: HttpClient,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
}

#[async_trait]
impl CredentialSource<Token> for TokenExchange {
    async fn fetch(&self) -> Result<Token> {
        let (uri, form) = match &self.credentials {
            GcsCredentials::ServiceAccount(key) => {
                let assertion = key.assertion(SystemTime::now())?;
                let grant = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
                (key.token_uri.as_str(), format!("grant_type={grant}&assertion={assertion}"))
            }
            GcsCredentials::AuthorizedUser(user) => (
                user.token_uri.as_str(),
                format!(
                    "grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
                    form_encode(&user.client_id),
                    form_encode(&user.client_secret),
                    form_encode(&user.refresh_token)
                ),
            ),
        };
        let body = Bytes::from(form);
        let length = body.len().to_string();
        let headers = [("content-type", "application/x-www-form-urlencoded"), ("content-length", length.as_str())];
        let answer = self
            .http
            .send("the token request", &body, |b| build_request("the token request", "POST", uri, headers, b))
            .await?;
        let status = answer.response.status().as_u16();
        let read = self.http.read_capped(answer.response).await;
        let parsed: Option<TokenAnswer> = serde_json::from_slice(&read).ok();
        match parsed {
            Some(TokenAnswer { access_token: Some(token), expires_in, .. }) if (200..300).contains(&status) => {
                Ok(token_for(token, expires_in))
            }
            other => {
                // The error code only ("invalid_grant"): Google's descriptions may quote the request.
                let code = other.and_then(|a| a.error).unwrap_or_else(|| "no token".into());
                let message = format!(
                    "Google's token endpoint refused the credentials ({status} {code}): check the key file, and that \
                     the service account still exists and its key was not deleted"
                );
                Err(if status == 429 || status >= 500 {
                    Error::Unavailable(message)
                } else {
                    Error::PermissionDenied(message)
                })
            }
        }
    }
}

fn form_encode(value: &str) -> String {
    crate::core::key::encode_component(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const TEST_KEY: &[u8] = include_bytes!("testdata/test_service_account.not-a-test.json");

    #[test]
    fn a_service_account_key_makes_a_verifiable_assertion() {
        let GcsCredentials::ServiceAccount(key) = GcsCredentials::parse(TEST_KEY, "the test key").unwrap() else {
            panic!("a service account")
        };
        let jwt = key.assertion(UNIX_EPOCH + Duration::from_secs(1_000_000)).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], key.client_email.as_str());
        assert_eq!(claims["exp"], 1_003_600);
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            ring::signature::KeyPair::public_key(&key.key_pair).as_ref().to_vec(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public.verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    /// A metadata server's token is taken with the header it requires; none answering is a
    /// PermissionDenied that says what to set.
    #[tokio::test]
    async fn the_metadata_server_gives_tokens_on_google_cloud_and_says_what_to_set_off_it() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 4096];
            let read = socket.read(&mut request).await.unwrap();
            let request = String::from_utf8_lossy(&request[..read]).to_lowercase();
            let body = r#"{"access_token":"from-metadata","expires_in":3599,"token_type":"Bearer"}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
            request
        });
        let http = || {
            let connector = crate::client::connector::pooled_connector(&Default::default());
            HttpClient::new(connector, "the metadata server", Duration::from_secs(2))
        };
        let token = MetadataServer { http: http(), host }.fetch().await.unwrap();
        assert_eq!(token.bearer.as_deref(), Some("from-metadata"));
        let request = server.await.unwrap();
        assert!(request.starts_with("get /computemetadata/v1/instance/service-accounts/default/token "), "{request}");
        assert!(request.contains("metadata-flavor: google"), "{request}");
        let nobody = MetadataServer { http: http(), host: "127.0.0.1:9".into() }.fetch().await.err().unwrap();
        assert_eq!(nobody.code(), "PERMISSION_DENIED");
        assert!(nobody.to_string().contains("GOOGLE_APPLICATION_CREDENTIALS"), "{nobody}");
    }

    #[test]
    fn bad_documents_are_configuration_errors_that_quote_nothing() {
        for doc in [&b"{"[..], br#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----"}"#, br#"{"type":"external_account"}"#] {
            let Err(e) = GcsCredentials::parse(doc, "the key file k.json") else { panic!("parsed") };
            assert_eq!(e.code(), "CONFIGURATION_ERROR");
            assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
        }
    }
}
