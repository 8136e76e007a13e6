//! What an Azure store is made of: the account, the container, where the service is, and how
//! requests are authorised; from options or from a connection string.

use std::sync::Arc;
use std::time::Duration;

use super::auth::AzureCredentials;
use super::client::Container;
use super::token::{ClientSecret, DelegationKeys};
use super::{AzureBackend, MAX_BLOCKS};
use crate::client::connector::{pooled_connector, Trust};
use crate::client::credentials::CredentialCache;
use crate::client::request::{check_transfer_settings, HttpClient};
use crate::core::budget::MemoryBudget;
use crate::core::error::{Error, Result};
use crate::core::multipart::PartLimits;

/// Azurite's well-known development account (public, the same in every install).
pub const DEVELOPMENT_ACCOUNT: &str = "devstoreaccount1";
const DEVELOPMENT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const DEVELOPMENT_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

pub struct AzureSettings {
    pub account: String,
    pub container: String,
    /// Default: `https://<account>.blob.core.windows.net`.
    pub endpoint: Option<String>,
    /// None: a service principal from the environment (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_CLIENT_SECRET`).
    pub credentials: Option<AzureCredentials>,
    pub part_size: usize,
    pub concurrency: usize,
    pub stall_timeout: Duration,
    /// PEM certificates to trust beyond the system's (and NODE_EXTRA_CA_CERTS, AWS_CA_BUNDLE).
    pub ca_certificates: Option<String>,
}

/// What a connection string gives: the account, its endpoint and its credentials.
pub struct ConnectionString {
    pub account: String,
    pub endpoint: Option<String>,
    pub credentials: AzureCredentials,
}

impl ConnectionString {
    /// `DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;EndpointSuffix=…`, with
    /// `BlobEndpoint=` or `SharedAccessSignature=` as the portal gives them, or
    /// `UseDevelopmentStorage=true` for Azurite.
    pub fn parse(text: &str) -> Result<ConnectionString> {
        let fields: Vec<(&str, &str)> =
            text.split(';').filter(|f| !f.trim().is_empty()).filter_map(|f| f.trim().split_once('=')).collect();
        let field = |name: &str| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v);
        if field("UseDevelopmentStorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(ConnectionString {
                account: DEVELOPMENT_ACCOUNT.into(),
                endpoint: Some(DEVELOPMENT_ENDPOINT.into()),
                credentials: AzureCredentials::account_key(DEVELOPMENT_KEY)?,
            });
        }
        let credentials = match (field("AccountKey"), field("SharedAccessSignature")) {
            (Some(key), _) => AzureCredentials::account_key(key)?,
            (None, Some(sas)) => AzureCredentials::sas(sas)?,
            (None, None) => {
                return Err(Error::Configuration(
                    "the Azure connection string has neither AccountKey nor SharedAccessSignature".into(),
                ))
            }
        };
        let blob_endpoint = field("BlobEndpoint").map(|e| e.trim_end_matches('/').to_owned());
        let account = match field("AccountName") {
            Some(name) => name.to_owned(),
            // A SAS connection string may name only the endpoint: the account is its first label.
            None => blob_endpoint
                .as_deref()
                .and_then(|e| e.split_once("://"))
                .and_then(|(_, rest)| rest.split('.').next())
                .map(str::to_owned)
                .ok_or_else(|| Error::Configuration("the Azure connection string names no AccountName".into()))?,
        };
        let endpoint = blob_endpoint.or_else(|| {
            let scheme = field("DefaultEndpointsProtocol").unwrap_or("https");
            field("EndpointSuffix").map(|suffix| format!("{scheme}://{account}.blob.{suffix}"))
        });
        Ok(ConnectionString { account, endpoint, credentials })
    }
}

impl AzureBackend {
    pub fn new(settings: AzureSettings) -> Result<AzureBackend> {
        let valid_name = |name: &str, max: usize| {
            (3..=max).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !valid_name(&settings.account, 24) || settings.account.contains('-') {
            return Err(Error::Configuration(
                "the Azure account name must be 3 to 24 lowercase letters and digits".into(),
            ));
        }
        if !valid_name(&settings.container, 63)
            || settings.container.starts_with('-')
            || settings.container.contains("--")
        {
            return Err(Error::Configuration(
                "the Azure container name must be 3 to 63 lowercase letters, digits and single hyphens".into(),
            ));
        }
        if settings.part_size == 0 {
            return Err(Error::Configuration("partSize must be at least 1".into()));
        }
        check_transfer_settings(settings.concurrency, settings.stall_timeout)?;
        let endpoint = settings
            .endpoint
            .map(|e| e.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://{}.blob.core.windows.net", settings.account));
        if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
            return Err(Error::Configuration(format!("the Azure endpoint {endpoint:?} is not an http(s) URL")));
        }
        let connector = pooled_connector(&Trust::with_environment(settings.ca_certificates.as_deref())?);
        let credentials = match settings.credentials {
            Some(credentials) => credentials,
            None => {
                let http = HttpClient::new(connector.clone(), "Microsoft Entra ID", settings.stall_timeout);
                let principal =
                    ClientSecret::from_environment(http, |name| std::env::var(name).ok().filter(|v| !v.is_empty()));
                AzureCredentials::tokens(Box::new(principal.ok_or_else(|| {
                    Error::Configuration(
                        "Azure needs an accountKey, a sasToken, a connectionString, a credential (a TokenCredential such as @azure/identity's DefaultAzureCredential), or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET in the environment".into(),
                    )
                })?))
            }
        };
        let container = Container {
            http: HttpClient::new(connector, "Azure", settings.stall_timeout),
            account: settings.account,
            name: settings.container,
            endpoint,
            credentials,
        };
        let container = Arc::new(container);
        let delegation = matches!(container.credentials, AzureCredentials::Token(_)).then(|| {
            Arc::new(CredentialCache::new(Box::new(DelegationKeys { container: Arc::clone(&container) }) as Box<_>))
        });
        Ok(AzureBackend {
            container,
            delegation,
            limits: PartLimits {
                part_size: settings.part_size,
                concurrency: settings.concurrency,
                max_parts: MAX_BLOCKS,
                budget: MemoryBudget::global(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_give_the_account_endpoint_and_credentials() {
        let dev = ConnectionString::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!((dev.account.as_str(), dev.endpoint.as_deref()), (DEVELOPMENT_ACCOUNT, Some(DEVELOPMENT_ENDPOINT)));
        let portal = ConnectionString::parse(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(portal.endpoint.as_deref(), Some("https://acct.blob.core.windows.net"));
        assert!(matches!(portal.credentials, AzureCredentials::AccountKey(ref k) if k == b"key"));
        let sas = ConnectionString::parse(
            "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=x&sig=y",
        )
        .unwrap();
        assert_eq!(sas.account, "acct");
        assert!(matches!(sas.credentials, AzureCredentials::Sas(ref t) if t == "sv=x&sig=y"));
        for broken in ["", "AccountName=acct", "AccountName=acct;AccountKey=!!", "SharedAccessSignature=sv=x"] {
            assert_eq!(
                ConnectionString::parse(broken).err().map(|e| e.code()),
                Some("CONFIGURATION_ERROR"),
                "{broken}"
            );
        }
    }
}
