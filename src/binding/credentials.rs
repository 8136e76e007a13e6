//! The app's own credentials provider (an AWS SDK v3 client's, or any async function; an Azure
//! `TokenCredential`) as a credential source: called on the JS thread whenever the cached credentials are about to
//! expire. The function is held weakly, so it never keeps the process alive.

use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use napi::bindgen_prelude::Promise;
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use napi_derive::napi;

use crate::backends::azure::AccessToken;
use crate::client::credentials::CredentialSource;
use crate::core::error::{Error, Result};

/// What the provider resolves to.
#[napi(object)]
pub struct ProvidedCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// When they expire (milliseconds since the epoch); none: they last.
    pub expiration_ms: Option<f64>,
}

/// What an Azure `TokenCredential.getToken()` resolves to.
#[napi(object)]
pub struct ProvidedToken {
    pub token: String,
    /// When it expires (milliseconds since the epoch).
    pub expires_on_timestamp: Option<f64>,
}

pub type TokenProvider = ThreadsafeFunction<(), Promise<ProvidedToken>, (), Status, false, true>;

/// The app's `TokenCredential` (any of @azure/identity's), asked for a storage token.
pub struct JsTokens(pub TokenProvider);

#[async_trait]
impl CredentialSource<AccessToken> for JsTokens {
    async fn fetch(&self) -> Result<AccessToken> {
        let failed = |e: napi::Error| Error::PermissionDenied(format!("the Azure credential failed: {}", e.reason));
        let provided = self.0.call_async_catch(()).await.map_err(failed)?.await.map_err(failed)?;
        Ok(AccessToken { token: provided.token, expires: expiry(provided.expires_on_timestamp) })
    }
}

fn expiry(ms: Option<f64>) -> Option<std::time::SystemTime> {
    ms.filter(|ms| ms.is_finite() && *ms >= 0.0).map(|ms| UNIX_EPOCH + Duration::from_millis(ms as u64))
}

pub type CredentialsProvider = ThreadsafeFunction<(), Promise<ProvidedCredentials>, (), Status, false, true>;

pub struct JsCredentials(pub CredentialsProvider);

#[async_trait]
impl CredentialSource<Credentials> for JsCredentials {
    async fn fetch(&self) -> Result<Credentials> {
        let failed = |e: napi::Error| Error::PermissionDenied(format!("the credentials provider failed: {}", e.reason));
        let provided = self.0.call_async_catch(()).await.map_err(failed)?.await.map_err(failed)?;
        let (id, secret, token) = (provided.access_key_id, provided.secret_access_key, provided.session_token);
        Ok(Credentials::new(id, secret, token, expiry(provided.expiration_ms), "the app's credentials provider"))
    }
}
