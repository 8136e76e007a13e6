//! Azure Blob Storage (and Azurite): block blobs over the REST API, on the shared request
//! path. Uploads of up to one part are one Put Blob; longer or unknown-length bodies are
//! staged blocks committed by a block list, through the core multipart driver (`blocks`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::Headers;
use aws_smithy_types::base64;
use bytes::Bytes;
use md5::{Digest, Md5};

use crate::client::credentials::{CredentialCache, CredentialSource};
use crate::client::response::{answers_get, http_date};
use crate::client::{header_value, xml};
use crate::core::backend::{
    Backend, ByteRange, GetOptions, GetResult, ListEntry, ListOptions, ListPage, Metadata, Method, ObjectMeta,
    PutOptions, PutResult, SignOptions, SignedUrl, Signing, DEFAULT_CONTENT_TYPE, DEFAULT_LIST_LIMIT,
};
use crate::core::body::Body;
use crate::core::error::{done_if_missing, Error, Result};
use crate::core::key::Key;
use crate::core::multipart::{send_parts, Cut, PartLimits};

mod auth;
mod blocks;
mod client;
mod error;
mod settings;
mod token;
pub use auth::AzureCredentials;
use auth::{blob_sas, DelegationKey, SasKey};
use blocks::Blocks;
use client::{Call, Container, Target};
pub use settings::{AzureSettings, ConnectionString};
use token::DelegationKeys;
pub use token::{AccessToken, STORAGE_SCOPE};

/// The REST API version every request and SAS names.
const API_VERSION: &str = "2021-12-02";
/// A block blob has at most 50,000 blocks.
const MAX_BLOCKS: u64 = 50_000;
/// How long a server-side copy that Azure runs in the background is waited for.
const COPY_WAIT: Duration = Duration::from_secs(600);

pub struct AzureBackend {
    container: Arc<Container>,
    limits: PartLimits,
    /// What signs URLs on Entra ID tokens (none with a key or a SAS token).
    delegation: Option<Arc<CredentialCache<DelegationKey>>>,
}

impl Container {
    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        let answer = self.send_ok(&Call::blob("GetBlobProperties", "HEAD", key)).await?;
        Ok(object_meta(key, answer.response.headers(), None))
    }
}

/// The headers that give a new blob its type and metadata, and refuse to overwrite when asked.
fn blob_headers(options: &PutOptions) -> Vec<(String, String)> {
    let content_type = options.content_type.clone().unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
    let mut headers = vec![("x-ms-blob-content-type".to_owned(), content_type)];
    headers.extend(
        options
            .metadata
            .iter()
            .map(|(name, value)| (format!("x-ms-meta-{}", metadata_name(name)), header_value::encode(value))),
    );
    if options.if_not_exists {
        headers.push(("if-none-match".to_owned(), "*".to_owned()));
    }
    if let Some(etag) = &options.if_match {
        headers.push(("if-match".to_owned(), etag.clone()));
    }
    headers
}

fn created(response: &HttpResponse) -> PutResult {
    PutResult { etag: response.headers().get("etag").map(str::to_owned) }
}

/// Azure metadata names must be C# identifiers. Names that are not (`x-trace`), and names that
/// look like an escaped one, are stored as `rsc_` and their hex; read back as they were given.
const ESCAPED_NAME: &str = "rsc_";

fn metadata_name(name: &str) -> String {
    let identifier =
        name.bytes().enumerate().all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || i > 0 && b.is_ascii_digit());
    if identifier && !name.is_empty() && !name.starts_with(ESCAPED_NAME) {
        name.to_owned()
    } else {
        format!("{ESCAPED_NAME}{}", hex::encode(name))
    }
}

fn original_name(stored: &str) -> String {
    let stored = stored.to_ascii_lowercase();
    stored
        .strip_prefix(ESCAPED_NAME)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or(stored)
}

/// A blob's description from the headers of a GET or HEAD answer; `size` when a range was
/// served (the length is then the range's).
fn object_meta(key: &Key, headers: &Headers, size: Option<u64>) -> ObjectMeta {
    let metadata: Metadata = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((original_name(name.strip_prefix("x-ms-meta-")?), header_value::decode(value)))
        })
        .collect();
    ObjectMeta {
        key: key.to_string(),
        size: size.unwrap_or_else(|| headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0)),
        content_type: headers.get("content-type").unwrap_or(DEFAULT_CONTENT_TYPE).to_owned(),
        etag: headers.get("etag").map(str::to_owned),
        last_modified: http_date(headers.get("last-modified")),
        metadata,
    }
}

impl AzureBackend {
    async fn put_blob(&self, key: &Key, data: Bytes, options: &PutOptions) -> Result<PutResult> {
        let mut headers = blob_headers(options);
        headers.push(("x-ms-blob-type".into(), "BlockBlob".into()));
        let md5 = base64::encode(Md5::digest(&data));
        headers.push(("content-md5".into(), md5.clone()));
        let call = Call { headers, body: data, ..Call::blob("PutBlob", "PUT", key) };
        let answer = self.container.send(&call).await?;
        if answer.response.status().is_success() {
            return Ok(created(&answer.response));
        }
        let after_doubt = answer.after_doubt;
        let refusal = options.refusal(key, self.container.failure(&call, answer.response).await);
        // Refused after an attempt whose answer was lost: when the blob there has our bytes'
        // MD5, that attempt made it.
        if after_doubt && options.if_not_exists {
            if let Ok(answer) = self.container.send_ok(&Call::blob("GetBlobProperties", "HEAD", key)).await {
                let headers = answer.response.headers();
                if headers.get("content-md5") == Some(md5.as_str()) {
                    return Ok(PutResult { etag: headers.get("etag").map(str::to_owned) });
                }
            }
        }
        Err(refusal)
    }

    /// Waits for a copy Azure runs in the background (large blobs, other accounts) to end.
    async fn copy_finished(&self, to: &Key, mut status: Option<String>) -> Result<()> {
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(50);
        while status.as_deref() == Some("pending") {
            if started.elapsed() > COPY_WAIT {
                return Err(Error::Timeout(format!(
                    "Azure's copy to {to} did not finish in {} s",
                    COPY_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            let answer = self.container.send_ok(&Call::blob("GetBlobProperties", "HEAD", to)).await?;
            status = answer.response.headers().get("x-ms-copy-status").map(str::to_owned);
        }
        match status.as_deref() {
            None | Some("success") => Ok(()),
            Some(other) => Err(Error::Service { status: 500, message: format!("Azure's copy to {to} ended {other}") }),
        }
    }
}

/// A SAS URL for `key`, with the headers its request must carry.
fn signed_url(
    container: &Container,
    secret: SasKey<'_>,
    key: &Key,
    options: &SignOptions,
    now: SystemTime,
) -> Result<SignedUrl> {
    let sas = blob_sas(&container.account, secret, &container.name, key.as_str(), options, now)?;
    let mut signed =
        SignedUrl::new(format!("{}?{sas}", container.url(Target::Blob(key))), now + options.expires_in, options);
    if options.method == Method::Put {
        // Azure's Put Blob needs the blob type; the type the app signed is the blob's.
        signed.headers.insert(0, ("x-ms-blob-type".to_owned(), "BlockBlob".to_owned()));
    }
    Ok(signed)
}

#[async_trait]
impl Backend for AzureBackend {
    async fn put(&self, key: &Key, body: Body, options: PutOptions) -> Result<PutResult> {
        match self.limits.cut(body).await? {
            Cut::Whole(part) => self.put_blob(key, part.data, &options).await,
            Cut::Parts(first, rest) => {
                let blocks = Blocks::new(Arc::clone(&self.container), key, &options);
                send_parts(Arc::new(blocks), first, rest, self.limits.concurrency).await
            }
        }
    }

    async fn download(&self, key: &Key, options: GetOptions) -> Result<GetResult> {
        let range = options.range;
        if let Some(r) = range.filter(ByteRange::is_backwards) {
            return Err(r.resolve(self.container.stat(key).await?.size).unwrap_err());
        }
        let headers = range.map(|r| ("x-ms-range".to_owned(), r.header())).into_iter().collect();
        let call = Call { headers, ..Call::blob("GetBlob", "GET", key) };
        let response = self.container.send(&call).await?.response;
        if !answers_get(response.status().as_u16(), range) {
            return Err(self.container.failure(&call, response).await);
        }
        let describe = |headers: &Headers, size| object_meta(key, headers, size);
        self.container.http.object_answer(call.operation, response, range, describe, || self.container.stat(key)).await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        self.container.stat(key).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        done_if_missing(self.container.send_ok(&Call::blob("DeleteBlob", "DELETE", key)).await)
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let limit = options.limit.unwrap_or(DEFAULT_LIST_LIMIT).min(DEFAULT_LIST_LIMIT);
        let mut query = vec![
            ("restype".to_owned(), "container".to_owned()),
            ("comp".to_owned(), "list".to_owned()),
            ("maxresults".to_owned(), limit.to_string()),
        ];
        if !options.prefix.is_empty() {
            query.push(("prefix".into(), options.prefix.clone()));
        }
        if let Some(delimiter) = &options.delimiter {
            query.push(("delimiter".into(), delimiter.clone()));
        }
        if let Some(marker) = &options.cursor {
            query.push(("marker".into(), marker.clone()));
        }
        let call = Call::container("ListBlobs", "GET", query);
        let answer = self.container.send_ok(&call).await?;
        let body = self.container.http.read_document(call.operation, answer.response).await?;
        let text = String::from_utf8_lossy(&body);
        let objects = xml::elements(&text, "Blob")
            .filter_map(|blob| {
                Some(ListEntry {
                    key: xml::field(blob, "Name")?,
                    size: xml::field(blob, "Content-Length").and_then(|s| s.parse().ok()).unwrap_or(0),
                    last_modified: http_date(xml::field(blob, "Last-Modified").as_deref()),
                    // Listings give the ETag bare; answers to requests, quoted.
                    etag: xml::field(blob, "Etag").map(|e| if e.starts_with('"') { e } else { format!("\"{e}\"") }),
                })
            })
            .collect();
        let prefixes = xml::elements(&text, "BlobPrefix").filter_map(|p| xml::field(p, "Name")).collect();
        let cursor = xml::field(&text, "NextMarker").filter(|m| !m.is_empty());
        Ok(ListPage { objects, prefixes, cursor })
    }

    fn sign_url(&self, key: &Key, options: &SignOptions) -> Signing {
        if options.max_bytes.is_some() || options.allowed_content_types.is_some() {
            return Signing::Ready(Err(Error::InvalidArgument(
                "Azure cannot bound a SAS upload's size or type: check the object once uploaded".into(),
            )));
        }
        let now = SystemTime::now();
        match (&self.container.credentials, &self.delegation) {
            (AzureCredentials::AccountKey(secret), _) => {
                Signing::Ready(signed_url(&self.container, SasKey::Account(secret), key, options, now))
            }
            (AzureCredentials::Token(_), Some(delegation)) => {
                // A cached key signs at once if it outlives the URL; otherwise one is fetched.
                let ends = now + options.expires_in;
                if let Some(fresh) = delegation.fresh(now).filter(|k| k.expires_at >= ends) {
                    return Signing::Ready(signed_url(&self.container, SasKey::Delegation(&fresh), key, options, now));
                }
                let (container, delegation, key, options) =
                    (Arc::clone(&self.container), Arc::clone(delegation), key.clone(), options.clone());
                Signing::Pending(Box::pin(async move {
                    let mut delegation_key = delegation.get().await?;
                    if delegation_key.expires_at < ends {
                        delegation_key = DelegationKeys { container: Arc::clone(&container) }.fetch().await?;
                    }
                    signed_url(&container, SasKey::Delegation(&delegation_key), &key, &options, now)
                }))
            }
            _ => Signing::Ready(Err(Error::Configuration(
                "a store reached with a SAS token cannot sign URLs: give it the account key or Entra ID credentials"
                    .into(),
            ))),
        }
    }

    async fn copy(&self, from: &Key, to: &Key) -> Result<()> {
        let mut source = self.container.url(Target::Blob(from));
        let mut headers = Vec::new();
        match &self.container.credentials {
            AzureCredentials::Sas(token) => source = format!("{source}?{token}"),
            // A token authorises the destination; the source is read on its authority only when named.
            AzureCredentials::Token(cache) => {
                headers.push(("x-ms-copy-source-authorization".into(), format!("Bearer {}", cache.get().await?.token)))
            }
            AzureCredentials::AccountKey(_) => {}
        }
        headers.push(("x-ms-copy-source".into(), source));
        let call = Call { headers, ..Call::blob("CopyBlob", "PUT", to) };
        let answer = self.container.send_ok(&call).await.map_err(|e| match e {
            // The missing object is the source.
            Error::NotFound { .. } => Error::NotFound { key: from.to_string() },
            other => other,
        })?;
        let status = answer.response.headers().get("x-ms-copy-status").map(str::to_owned);
        let _ = self.container.read_capped(answer.response).await;
        self.copy_finished(to, status).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names_azure_refuses_are_escaped_and_read_back() {
        for (name, stored) in [
            ("owner", "owner"),
            ("_a1", "_a1"),
            ("x-trace", "rsc_782d7472616365"),
            ("1st", "rsc_317374"),
            ("rsc_x", "rsc_7273635f78"),
        ] {
            assert_eq!(metadata_name(name), stored);
            assert_eq!(original_name(stored), name);
        }
        // What another client stored is read as it is (lowercase, as every store gives names).
        assert_eq!(original_name("Owner"), "owner");
        assert_eq!(original_name("rsc_zz"), "rsc_zz");
    }
}
