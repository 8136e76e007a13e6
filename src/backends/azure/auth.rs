//! How Azure knows us: the account key (Shared Key signatures on requests, service SAS on
//! URLs), a SAS token the app was given (appended to every request; it cannot sign URLs), or
//! Microsoft Entra ID tokens (a bearer header; URLs would need a user delegation key).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_smithy_types::base64;
use aws_smithy_types::date_time::{DateTime, Format};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::token::AccessToken;
use super::API_VERSION;
use crate::client::credentials::{CredentialCache, CredentialSource, Expiring};
use crate::core::backend::{Method, SignOptions};
use crate::core::error::{Error, Result};
use crate::core::key::encode_component;

pub enum AzureCredentials {
    /// The storage account's key (base64, as the portal shows it).
    AccountKey(Vec<u8>),
    /// A SAS token (`sv=…&sig=…`), without the leading `?`.
    Sas(String),
    /// Microsoft Entra ID tokens, fetched again before they expire.
    Token(Arc<CredentialCache<AccessToken>>),
}

impl AzureCredentials {
    pub fn account_key(key: &str) -> Result<AzureCredentials> {
        match base64::decode(key.trim()) {
            Ok(bytes) if !bytes.is_empty() => Ok(AzureCredentials::AccountKey(bytes)),
            _ => Err(Error::Configuration("the Azure access key is not base64 (copy it whole from the portal)".into())),
        }
    }

    /// Tokens from `source`, asked again shortly before the one held expires.
    pub fn tokens(source: Box<dyn CredentialSource<AccessToken>>) -> AzureCredentials {
        AzureCredentials::Token(Arc::new(CredentialCache::new(source)))
    }

    pub fn sas(token: &str) -> Result<AzureCredentials> {
        let token = token.trim().trim_start_matches('?');
        if !token.split('&').any(|pair| pair.starts_with("sig=")) {
            return Err(Error::Configuration("the Azure SAS token has no signature (sig=…)".into()));
        }
        Ok(AzureCredentials::Sas(token.to_owned()))
    }
}

/// A request as Shared Key signs it: the URL's path as sent and its query decoded.
pub struct SignedParts<'a> {
    pub method: &'a str,
    /// The encoded path as it appears in the URL (`/account/container/blob` on an emulator).
    pub path: &'a str,
    /// Query parameters, not encoded.
    pub query: &'a [(String, String)],
    /// Every header sent, names lowercase.
    pub headers: &'a [(String, String)],
}

/// `SharedKey account:signature` over the request's canonical form (Shared Key for the Blob
/// service, version 2015-02-21 and later).
pub fn shared_key(account: &str, key: &[u8], request: &SignedParts<'_>) -> String {
    let header = |name: &str| request.headers.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str());
    let length = match header("content-length") {
        "0" => "",
        other => other,
    };
    let mut text = format!(
        "{}\n{}\n{}\n{length}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n",
        request.method,
        header("content-encoding"),
        header("content-language"),
        header("content-md5"),
        header("content-type"),
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    );
    let mut ms: Vec<&(String, String)> = request.headers.iter().filter(|(n, _)| n.starts_with("x-ms-")).collect();
    ms.sort();
    for (name, value) in ms {
        text.push_str(&format!("{name}:{}\n", value.trim()));
    }
    text.push_str(&format!("/{account}{}", request.path));
    let mut query: Vec<(String, &str)> =
        request.query.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.as_str())).collect();
    query.sort();
    for (name, value) in query {
        text.push_str(&format!("\n{name}:{value}"));
    }
    format!("SharedKey {account}:{}", hmac(key, &text))
}

fn hmac(key: &[u8], text: &str) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(text.as_bytes());
    base64::encode(mac.finalize().into_bytes())
}

/// A user delegation key: what a principal on Entra ID tokens signs SAS URLs with (Get User
/// Delegation Key), valid until `expiry`.
#[derive(Clone)]
pub struct DelegationKey {
    pub object_id: String,
    pub tenant_id: String,
    pub start: String,
    pub expiry: String,
    pub service: String,
    pub version: String,
    pub value: Vec<u8>,
    pub expires_at: SystemTime,
}

impl Expiring for DelegationKey {
    fn expires(&self) -> Option<SystemTime> {
        Some(self.expires_at)
    }
}

/// What signs a SAS: the account key (a service SAS) or a user delegation key.
pub enum SasKey<'a> {
    Account(&'a [u8]),
    Delegation(&'a DelegationKey),
}

/// A SAS for one blob: read for GET (with the response overrides), create and write for PUT.
/// Its fields, in the URL's query, without the leading `?`.
pub fn blob_sas(
    account: &str,
    key: SasKey<'_>,
    container: &str,
    blob: &str,
    options: &SignOptions,
    now: SystemTime,
) -> Result<String> {
    // Whole seconds: SAS times carry no fraction.
    let expires = (now + options.expires_in).duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let expiry = DateTime::from_secs(expires as i64)
        .fmt(Format::DateTime)
        .map_err(|e| Error::InvalidArgument(format!("cannot sign the Azure URL: {e}")))?;
    let permissions = match options.method {
        Method::Get => "r",
        Method::Put => "cw",
    };
    let (disposition, content_type) = match options.method {
        Method::Get => (
            options.response_content_disposition.as_deref().unwrap_or(""),
            options.response_content_type.as_deref().unwrap_or(""),
        ),
        Method::Put => ("", ""),
    };
    let resource = format!("/blob/{account}/{container}/{blob}");
    let mut fields = vec![("sv", API_VERSION), ("se", expiry.as_str()), ("sr", "b"), ("sp", permissions)];
    // Fields in the order of the version's string-to-sign; empty ones stay as empty lines.
    // The string to sign, in the version's order (empty fields stay as empty lines): what is
    // allowed on what, then whose signature it is, then the version, kind and overrides.
    let (whose, secret): (Vec<&str>, &[u8]) = match key {
        // Signed identifier, IP range, protocol.
        SasKey::Account(secret) => (vec!["", "", ""], secret),
        SasKey::Delegation(key) => {
            fields.extend([
                ("skoid", key.object_id.as_str()),
                ("sktid", key.tenant_id.as_str()),
                ("skt", key.start.as_str()),
                ("ske", key.expiry.as_str()),
                ("sks", key.service.as_str()),
                ("skv", key.version.as_str()),
            ]);
            // The key's fields, then authorized and unauthorized user, correlation id, IP range, protocol.
            let key_fields = [&key.object_id, &key.tenant_id, &key.start, &key.expiry, &key.service, &key.version];
            let mut whose: Vec<&str> = key_fields.iter().map(|f| f.as_str()).collect();
            whose.extend(["", "", "", "", ""]);
            (whose, key.value.as_slice())
        }
    };
    let head = [permissions, "", &expiry, &resource];
    let tail = [API_VERSION, "b", "", "", "", disposition, "", "", content_type];
    let text = [&head[..], &whose, &tail].concat().join("\n");
    if !disposition.is_empty() {
        fields.push(("rscd", disposition));
    }
    if !content_type.is_empty() {
        fields.push(("rsct", content_type));
    }
    let signature = hmac(secret, &text);
    fields.push(("sig", &signature));
    Ok(fields.iter().map(|(name, value)| format!("{name}={}", encode_component(value))).collect::<Vec<_>>().join("&"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Azure's own worked example of a Get Blob string-to-sign, signed with a known key, gives
    /// the signature the Azure SDK computes for it.
    #[test]
    fn shared_key_signs_the_canonical_request() {
        let headers = vec![
            ("x-ms-date".to_owned(), "Sun, 11 Oct 2009 21:49:13 GMT".to_owned()),
            ("x-ms-version".to_owned(), "2009-09-19".to_owned()),
        ];
        let query = vec![("comp".to_owned(), "metadata".to_owned())];
        let parts = SignedParts { method: "GET", path: "/mycontainer/myblob", query: &query, headers: &headers };
        let signed = shared_key("myaccount", b"key", &parts);
        let expected_text = "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Sun, 11 Oct 2009 21:49:13 GMT\nx-ms-version:2009-09-19\n/myaccount/mycontainer/myblob\ncomp:metadata";
        assert_eq!(signed, format!("SharedKey myaccount:{}", hmac(b"key", expected_text)));
    }

    #[test]
    fn sas_urls_carry_the_permission_expiry_and_overrides() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let options = SignOptions {
            response_content_disposition: Some("attachment; filename=\"a b.csv\"".into()),
            ..SignOptions::new(Method::Get, Duration::from_secs(60))
        };
        let sas = blob_sas("acct", SasKey::Account(b"key"), "c", "d/a%20b", &options, now).unwrap();
        assert!(sas.starts_with("sv=2021-12-02&se=2023-11-14T22%3A14%3A20Z&sr=b&sp=r&rscd=attachment%3B%20filename%3D%22a%20b.csv%22&sig="), "{sas}");
        let put = blob_sas(
            "acct",
            SasKey::Account(b"key"),
            "c",
            "d",
            &SignOptions::new(Method::Put, Duration::from_secs(60)),
            now,
        )
        .unwrap();
        assert!(put.contains("&sp=cw&sig="), "{put}");
        assert!(AzureCredentials::account_key("not base64!").is_err());
        assert!(AzureCredentials::sas("sv=1&se=2").is_err());
    }
}
