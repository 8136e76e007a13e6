//! What a GCS store is made of: its settings, where its credentials come from, one connection
//! pool for the API and the token endpoint.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::api::Api;
use super::auth::{anonymous, GcsCredentials, GcsTokens, MetadataServer, TokenExchange};
use super::signer::Endpoint;
use super::upload::CHUNK_GRANULE;
use super::GcsBackend;
use crate::client::connector::{pooled_connector, Trust};
use crate::client::credentials::CredentialCache;
use crate::client::request::{check_transfer_settings, HttpClient};
use crate::core::budget::MemoryBudget;
use crate::core::error::{Error, Result};
use crate::core::multipart::PartLimits;

/// Where a GCS store's credentials come from.
pub enum GcsCredentialsFrom {
    /// A key file's content (the `credentials` object of the JS options).
    Json(Vec<u8>),
    /// A key file's path (`keyFilename`).
    File(PathBuf),
    /// Nothing given: anonymous with an endpoint (emulators), else application default
    /// credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's own file, the metadata server).
    Default,
}

pub struct GcsSettings {
    pub bucket: String,
    /// A custom endpoint (an emulator: `http://127.0.0.1:4443`); Google's otherwise.
    pub endpoint: Option<String>,
    pub credentials: GcsCredentialsFrom,
    /// Resumable chunk size: a multiple of 256 KiB.
    pub part_size: usize,
    pub concurrency: usize,
    /// A transfer that moves no bytes for this long fails (StorageTimeoutError).
    pub stall_timeout: Duration,
    /// PEM certificates to trust beyond the system's (and NODE_EXTRA_CA_CERTS, AWS_CA_BUNDLE).
    pub ca_certificates: Option<String>,
}

impl GcsCredentialsFrom {
    /// The credentials document, if any, and the words that name it in errors.
    fn resolve(self, has_endpoint: bool) -> Result<Option<GcsCredentials>> {
        let read = |path: PathBuf, what: &str| -> Result<GcsCredentials> {
            let origin = format!("{what} {}", path.display());
            let json = std::fs::read(&path)
                .map_err(|e| Error::Configuration(format!("{origin} cannot be read: {}", e.kind())))?;
            GcsCredentials::parse(&json, &origin)
        };
        match self {
            GcsCredentialsFrom::Json(json) => GcsCredentials::parse(&json, "the credentials given").map(Some),
            GcsCredentialsFrom::File(path) => read(path, "the key file").map(Some),
            GcsCredentialsFrom::Default if has_endpoint => Ok(None),
            GcsCredentialsFrom::Default => {
                if let Some(path) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty()) {
                    return read(PathBuf::from(path), "GOOGLE_APPLICATION_CREDENTIALS").map(Some);
                }
                let gcloud = std::env::var_os("HOME")
                    .map(|home| PathBuf::from(home).join(".config/gcloud/application_default_credentials.json"));
                match gcloud.filter(|path| path.is_file()) {
                    Some(path) => read(path, "gcloud's application default credentials").map(Some),
                    None => Ok(None),
                }
            }
        }
    }
}

impl GcsBackend {
    pub fn new(settings: GcsSettings) -> Result<GcsBackend> {
        if settings.bucket.is_empty() {
            return Err(Error::Configuration("GCS needs a bucket".into()));
        }
        if settings.part_size < CHUNK_GRANULE || !settings.part_size.is_multiple_of(CHUNK_GRANULE) {
            return Err(Error::Configuration(format!(
                "partSize must be a multiple of {CHUNK_GRANULE} bytes (256 KiB)"
            )));
        }
        check_transfer_settings(settings.concurrency, settings.stall_timeout)?;
        let endpoint = Endpoint::parse(settings.endpoint.as_deref().unwrap_or(Endpoint::GOOGLE))?;
        let connector = pooled_connector(&Trust::with_environment(settings.ca_certificates.as_deref())?);
        let credentials = settings.credentials.resolve(settings.endpoint.is_some())?;
        let signing_key = credentials.as_ref().and_then(GcsCredentials::signing_key);
        let tokens: GcsTokens = match credentials {
            Some(credentials) => CredentialCache::new(Box::new(TokenExchange {
                credentials,
                http: HttpClient::new(connector.clone(), "Google's token endpoint", settings.stall_timeout),
            })),
            None if settings.endpoint.is_some() => anonymous(),
            None => CredentialCache::new(Box::new(MetadataServer::new(HttpClient::new(
                connector.clone(),
                "the GCE metadata server",
                settings.stall_timeout,
            )))),
        };
        let http = HttpClient::new(connector, "GCS", settings.stall_timeout);
        Ok(GcsBackend {
            api: Arc::new(Api::new(http, Arc::new(tokens), endpoint, settings.bucket)),
            limits: PartLimits {
                part_size: settings.part_size,
                concurrency: settings.concurrency,
                // A resumable session has no part count limit; parts stay at the chunk size.
                max_parts: u64::MAX,
                budget: MemoryBudget::global(),
            },
            signing_key,
        })
    }
}
