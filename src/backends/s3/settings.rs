//! What an S3 store is made of: its settings, one connection pool shared by the direct calls
//! and the SDK client, and the signer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, IdentityCache, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::Client;
use aws_smithy_runtime_api::client::http::http_client_fn;

use super::credentials::{CachedForSdk, CredentialsFrom};
use super::direct::Direct;
use super::signer::Signer;
use super::{S3Backend, MAX_PARTS, MIN_PART_SIZE};
use crate::client::connector::{pooled_connector, Trust};
use crate::client::request::{check_transfer_settings, HttpClient};
use crate::core::budget::MemoryBudget;
use crate::core::error::{Error, Result};
use crate::core::multipart::PartLimits;

pub struct S3Settings {
    pub bucket: String,
    pub region: String,
    /// A custom endpoint (MinIO, R2…); when set, path-style addressing is the default.
    pub endpoint: Option<String>,
    pub force_path_style: Option<bool>,
    /// Where credentials come from (static keys, the app's provider); they are cached and
    /// fetched again before they expire.
    pub credentials: CredentialsFrom,
    pub part_size: usize,
    pub concurrency: usize,
    /// A transfer that moves no bytes for this long fails (StorageTimeoutError).
    pub stall_timeout: Duration,
    /// Sign each body's SHA-256. Default: over plain HTTP only; TLS protects bodies in transit.
    pub sign_payload: Option<bool>,
    /// PEM certificates to trust beyond the system's (and NODE_EXTRA_CA_CERTS, AWS_CA_BUNDLE).
    pub ca_certificates: Option<String>,
}

impl S3Backend {
    pub fn new(settings: S3Settings) -> Result<S3Backend> {
        if settings.bucket.is_empty() || settings.region.is_empty() {
            return Err(Error::Configuration("S3 needs a bucket and a region".into()));
        }
        if settings.part_size < MIN_PART_SIZE {
            return Err(Error::Configuration(format!("partSize must be at least {MIN_PART_SIZE} bytes")));
        }
        check_transfer_settings(settings.concurrency, settings.stall_timeout)?;
        let connector = pooled_connector(&Trust::with_environment(settings.ca_certificates.as_deref())?);
        let sdk_http = http_client_fn({
            let connector = connector.clone();
            move |_, _| connector.clone()
        });
        let credentials = Arc::new(settings.credentials.cache(&settings.region, sdk_http.clone()));
        // Virtual-hosted names with dots break TLS on AWS (the certificate covers one level).
        let path_style =
            settings.force_path_style.unwrap_or(settings.endpoint.is_some() || settings.bucket.contains('.'));
        let signer =
            Arc::new(Signer::new(&settings.region, &settings.bucket, settings.endpoint.as_deref(), path_style)?);
        let sign_payload = settings.sign_payload.unwrap_or(!signer.is_tls());
        let http = HttpClient::new(connector.clone(), "S3", settings.stall_timeout);
        let direct = Arc::new(Direct::new(http, Arc::clone(&signer), Arc::clone(&credentials), sign_payload));
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region))
            .credentials_provider(CachedForSdk(Arc::clone(&credentials)))
            // The store's own cache refreshes them; a second cache would only hold stale ones.
            .identity_cache(IdentityCache::no_cache())
            .http_client(sdk_http)
            // Third-party S3 services (R2, B2, older MinIO) reject the SDK's default checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled().grace_period(settings.stall_timeout).build(),
            )
            .force_path_style(path_style);
        if let Some(endpoint) = settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Ok(S3Backend {
            client: Client::from_conf(config.build()),
            bucket: settings.bucket,
            limits: PartLimits {
                part_size: settings.part_size,
                concurrency: settings.concurrency,
                max_parts: MAX_PARTS,
                budget: MemoryBudget::global(),
            },
            signer,
            credentials,
            direct,
            unaborted: Arc::new(Mutex::new(Vec::new())),
            bucket_seen: Default::default(),
        })
    }
}
