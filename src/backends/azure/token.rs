//! Microsoft Entra ID (Azure AD) access tokens for the storage service, cached and fetched
//! again before they expire: from a service principal's secret in the environment (as the
//! Azure SDKs' environment credential reads it), or from the app's own `TokenCredential`; and
//! the user delegation keys that sign SAS URLs on those tokens.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_smithy_types::base64;
use aws_smithy_types::date_time::{DateTime, Format};
use bytes::Bytes;

use super::auth::DelegationKey;
use super::client::{Call, Container};
use crate::client::credentials::{CredentialSource, Expiring};
use crate::client::request::{build_request, HttpClient};
use crate::client::xml;
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
        let (tenant, client_id, secret) =
            (env("AZURE_TENANT_ID")?, env("AZURE_CLIENT_ID")?, env("AZURE_CLIENT_SECRET")?);
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
        let body =
            Bytes::from(form.iter().map(|(n, v)| format!("{n}={}", encode_component(v))).collect::<Vec<_>>().join("&"));
        let length = body.len().to_string();
        let headers = [("content-type", "application/x-www-form-urlencoded"), ("content-length", length.as_str())];
        let operation = "a token request to Microsoft Entra ID";
        let answer = self
            .http
            .send(operation, &body, |sent| build_request(operation, "POST", &self.token_url, headers, sent))
            .await?;
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

/// User delegation keys, asked of the blob service on the store's own tokens: what signs SAS
/// URLs when there is no account key. Each is valid for a week, the longest Azure grants.
pub struct DelegationKeys {
    pub container: Arc<Container>,
}

/// The longest a user delegation key may be valid (and a SAS it signs).
const DELEGATION_KEY_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

#[async_trait]
impl CredentialSource<DelegationKey> for DelegationKeys {
    async fn fetch(&self) -> Result<DelegationKey> {
        let now = SystemTime::now();
        // Starting a little before now, for clocks that differ; ending a week from now, so that a
        // URL signed just before this fetch, for the longest time allowed, ends within the key.
        let (start, expiry) = (now - Duration::from_secs(300), now + DELEGATION_KEY_LIFETIME);
        let time = |t: SystemTime| {
            let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
            DateTime::from_secs(secs).fmt(Format::DateTime).map_err(|e| Error::Internal(format!("a key time: {e}")))
        };
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><KeyInfo><Start>{}</Start><Expiry>{}</Expiry></KeyInfo>",
            time(start)?,
            time(expiry)?
        );
        let query = vec![("restype".into(), "service".into()), ("comp".into(), "userdelegationkey".into())];
        let call = Call { body: Bytes::from(body), ..Call::service("GetUserDelegationKey", "POST", query) };
        let answer = self.container.send_ok(&call).await?;
        let document = self.container.read_capped(answer.response).await;
        let field = |tag: &str| {
            xml::text(&document, tag).ok_or_else(|| Error::Service {
                status: 200,
                message: format!("Azure answered GetUserDelegationKey without {tag}"),
            })
        };
        let value = base64::decode(field("Value")?).map_err(|_| Error::Service {
            status: 200,
            message: "Azure answered GetUserDelegationKey with a key that is not base64".into(),
        })?;
        let expiry_text = field("SignedExpiry")?;
        Ok(DelegationKey {
            object_id: field("SignedOid")?,
            tenant_id: field("SignedTid")?,
            start: field("SignedStart")?,
            expires_at: crate::client::response::rfc3339(Some(&expiry_text)),
            expiry: expiry_text,
            service: field("SignedService")?,
            version: field("SignedVersion")?,
            value,
        })
    }
}
