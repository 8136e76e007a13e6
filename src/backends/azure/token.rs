//! Microsoft Entra ID (Azure AD) access tokens for the storage service, cached and fetched
//! again before they expire: from a service principal's secret in the environment (as the
//! Azure SDKs' environment credential reads it), or from the app's own `TokenCredential`.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use crate::client::credentials::{CredentialSource, Expiring};
use crate::client::request::{build_request, HttpClient};
use crate::core::error::{Error, Result};
use crate::core::key::encode_component;

/// The scope every storage token is asked for.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

#[derive(Clone)]
pub struct AccessToken {
    pub token: String,
    pub expires: Option<SystemTime>,
}

impl Expiring for AccessToken {
    fn expires(&self) -> Option<SystemTime> {
        self.expires
    }
}

/// The client-credentials grant of a service principal.
pub struct ClientSecret {
    pub http: HttpClient,
    /// `<authority>/<tenant>/oauth2/v2.0/token`.
    pub token_url: String,
    pub client_id: String,
    pub secret: String,
}

impl ClientSecret {
    /// From `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` (and `AZURE_AUTHORITY_HOST`
    /// for sovereign clouds); none when they are not all set.
    pub fn from_environment(http: HttpClient, env: impl Fn(&str) -> Option<String>) -> Option<ClientSecret> {
        let (tenant, client_id, secret) = (env("AZURE_TENANT_ID")?, env("AZURE_CLIENT_ID")?, env("AZURE_CLIENT_SECRET")?);
        let authority = env("AZURE_AUTHORITY_HOST").unwrap_or_else(|| DEFAULT_AUTHORITY.to_owned());
        let token_url = format!("{}/{}/oauth2/v2.0/token", authority.trim_end_matches('/'), encode_component(&tenant));
        Some(ClientSecret { http, token_url, client_id, secret })
    }
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

#[async_trait]
impl CredentialSource<AccessToken> for ClientSecret {
    async fn fetch(&self) -> Result<AccessToken> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret.as_str()),
            ("scope", STORAGE_SCOPE),
        ];
        let body = Bytes::from(
            form.iter().map(|(n, v)| format!("{n}={}", encode_component(v))).collect::<Vec<_>>().join("&"),
        );
        let length = body.len().to_string();
        let headers = [("content-type", "application/x-www-form-urlencoded"), ("content-length", length.as_str())];
        let operation = "a token request to Microsoft Entra ID";
        let answer = self.http.send(operation, &body, |sent| build_request(operation, "POST", &self.token_url, headers, sent)).await?;
        let status = answer.response.status().as_u16();
        let document = self.http.read_capped(answer.response).await;
        if status != 200 {
            // The answer names the error (invalid_client…) but may echo what was sent: only the code is kept.
            let code = serde_json::from_slice::<serde_json::Value>(&document)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_default();
            return Err(Error::PermissionDenied(format!(
                "Microsoft Entra ID refused the service principal ({status} {code}): check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"
            )));
        }
        let answer: TokenAnswer = serde_json::from_slice(&document).map_err(|_| Error::Service {
            status,
            message: "Microsoft Entra ID answered with no access token".into(),
        })?;
        let expires = answer.expires_in.map(|s| SystemTime::now() + Duration::from_secs(s));
        Ok(AccessToken { token: answer.access_token, expires })
    }
}
