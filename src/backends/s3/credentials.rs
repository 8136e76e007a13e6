//! Where an S3 store's credentials come from, and the one cache every request and signed URL
//! takes them from (the SDK client included), refreshed before they expire.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::{self, error::CredentialsError, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_sdk_s3::config::Region;
use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use tokio::sync::OnceCell;

use crate::client::credentials::{CredentialCache, CredentialSource, Expiring};
use crate::client::request::root_cause;
use crate::core::error::{Error, Result};

pub type S3Credentials = CredentialCache<Credentials>;

impl Expiring for Credentials {
    fn expires(&self) -> Option<SystemTime> {
        self.expiry()
    }
}

/// Where an S3 store's credentials come from.
pub enum CredentialsFrom {
    /// Given once (they do not expire): at hand from the first request.
    Keys(Credentials),
    /// Asked whenever the ones held are about to expire (the app's provider).
    Source(Box<dyn CredentialSource<Credentials>>),
    /// The AWS default chain: the environment (`AWS_ACCESS_KEY_ID`…), shared config and
    /// credentials files (`AWS_PROFILE`), web identity (EKS), ECS and EC2 instance metadata.
    AwsDefaultChain,
}

impl CredentialsFrom {
    /// The cache; the default chain makes its requests (instance metadata, STS) on `http`.
    pub fn cache(self, region: &str, http: SharedHttpClient) -> S3Credentials {
        match self {
            CredentialsFrom::Keys(keys) => CredentialCache::primed(Box::new(StaticKeys(keys.clone())), keys),
            CredentialsFrom::Source(source) => CredentialCache::new(source),
            CredentialsFrom::AwsDefaultChain => {
                let region = Region::new(region.to_owned());
                CredentialCache::new(Box::new(AwsChain { region, http, chain: OnceCell::new() }))
            }
        }
    }
}

/// The default chain, built on first use (building it reads files and the environment).
struct AwsChain {
    region: Region,
    http: SharedHttpClient,
    chain: OnceCell<DefaultCredentialsChain>,
}

#[async_trait]
impl CredentialSource<Credentials> for AwsChain {
    async fn fetch(&self) -> Result<Credentials> {
        let chain = self
            .chain
            .get_or_init(|| async {
                let config = ProviderConfig::default()
                    .with_http_client(self.http.clone())
                    .with_sleep_impl(TokioSleep::new())
                    .with_region(Some(self.region.clone()));
                DefaultCredentialsChain::builder().configure(config).region(self.region.clone()).build().await
            })
            .await;
        chain.provide_credentials().await.map_err(|e| {
            Error::PermissionDenied(format!(
                "no AWS credentials were found ({}): give accessKeyId and secretAccessKey, set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or run where instance credentials are served",
                root_cause(&e)
            ))
        })
    }
}

/// Keys given once.
struct StaticKeys(Credentials);

#[async_trait]
impl CredentialSource<Credentials> for StaticKeys {
    async fn fetch(&self) -> Result<Credentials> {
        Ok(self.0.clone())
    }
}

/// The cache, as the SDK client asks for credentials.
#[derive(Debug)]
pub struct CachedForSdk(pub Arc<S3Credentials>);

impl ProvideCredentials for CachedForSdk {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.0.get().await.map_err(|e| CredentialsError::provider_error(e.to_string()))
        })
    }
}
