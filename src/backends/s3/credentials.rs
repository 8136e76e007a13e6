//! Where an S3 store's credentials come from, and the one cache every request and signed URL
//! takes them from (the SDK client included), refreshed before they expire.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_credential_types::provider::{self, error::CredentialsError, ProvideCredentials};
use aws_credential_types::Credentials;

use crate::client::credentials::{CredentialCache, CredentialSource, Expiring};
use crate::core::error::Result;

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
}

impl CredentialsFrom {
    pub fn cache(self) -> S3Credentials {
        match self {
            CredentialsFrom::Keys(keys) => CredentialCache::primed(Box::new(StaticKeys(keys.clone())), keys),
            CredentialsFrom::Source(source) => CredentialCache::new(source),
        }
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
