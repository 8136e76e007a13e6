//! The Google Cloud Storage store, on GCS's JSON API and the shared plumbing: object calls go
//! out through `api` (the shared request path, a bearer token from `auth`), uploads through
//! `upload` (one request, or a resumable session driven by the core multipart driver), and
//! signed URLs are V4, signed locally (`signer`).

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use serde_json::Value;

use crate::core::backend::{
    Backend, GetOptions, GetResult, ListOptions, ListPage, ObjectMeta, PutOptions, PutResult, SignOptions, SignedUrl,
    Signing, DEFAULT_LIST_LIMIT,
};
use crate::core::body::Body;
use crate::core::error::{done_if_missing, Error, Result};
use crate::core::key::Key;
use crate::core::multipart::{send_parts, Cut, PartLimits};

mod api;
mod auth;
mod error;
mod object;
mod settings;
mod signer;
mod upload;
use api::{Api, Call};
use auth::ServiceAccountKey;
use object::{generation, list_entry, object_meta, quoted_etag, OBJECT_FIELDS};
pub use settings::{GcsCredentialsFrom, GcsSettings};
use signer::{encode, UrlStyle, UrlToSign};
use upload::{compose, put_whole, Resumable, MAX_COMPOSE};

pub struct GcsBackend {
    api: Arc<Api>,
    limits: PartLimits,
    /// The service account's key, when there is one: signed URLs need it.
    signing_key: Option<Arc<ServiceAccountKey>>,
}

impl GcsBackend {
    /// The object's resource: its description and its generation.
    async fn resource(&self, key: &Key) -> Result<Value> {
        let url = format!("{}?fields={}", self.api.object_url(key), encode(OBJECT_FIELDS, true));
        let answer = self.api.send_ok(&Call::new("the metadata lookup", "GET", key, url)).await?;
        self.api.json("the metadata lookup", answer.response).await
    }

    /// The query that makes an upload conditional: GCS conditions writes on generations, so
    /// replacing a given ETag is replacing the generation that has it, looked up first.
    async fn write_condition(&self, key: &Key, options: &PutOptions) -> Result<String> {
        if let Some(etag) = &options.if_match {
            let object = self.resource(key).await.map_err(|e| options.refusal(key, e))?;
            let given = format!("\"{}\"", etag.trim_matches('"'));
            return match generation(&object) {
                Some(generation) if quoted_etag(&object).as_ref() == Some(&given) => {
                    Ok(format!("&ifGenerationMatch={generation}"))
                }
                _ => Err(Error::Precondition { key: key.to_string(), reason: "its ETag is not the one given".into() }),
            };
        }
        Ok(if options.if_not_exists { "&ifGenerationMatch=0".to_owned() } else { String::new() })
    }

    /// Reads `span` of the generation described by `object`: the bytes always belong to the
    /// description, even when the object is replaced in between (then 412, and the caller
    /// starts again).
    async fn read_generation(&self, key: &Key, object: &Value, span: (u64, u64)) -> Result<GetResult> {
        let meta = object_meta(key, object);
        if span.0 == span.1 {
            return Ok(GetResult { meta, span, stream: stream::empty().boxed() });
        }
        let mut url = format!("{}?alt=media", self.api.object_url(key));
        if let Some(generation) = generation(object) {
            url.push_str(&format!("&ifGenerationMatch={generation}"));
        }
        let range = format!("bytes={}-{}", span.0, span.1 - 1);
        let call = Call { headers: vec![("range".into(), range)], ..Call::new("the download", "GET", key, url) };
        let answer = self.api.send_ok(&call).await?;
        let stream = self.api.body_stream(answer.response.into_body(), span.1 - span.0);
        Ok(GetResult { meta, span, stream })
    }
}

#[async_trait]
impl Backend for GcsBackend {
    async fn put(&self, key: &Key, body: Body, options: PutOptions) -> Result<PutResult> {
        let condition = self.write_condition(key, &options).await?;
        match self.limits.cut(body).await? {
            Cut::Whole(part) => put_whole(&self.api, key, part.data, &options, &condition).await,
            Cut::Parts(first, rest) => {
                let upload = Resumable::start(Arc::clone(&self.api), key, &options, &condition).await?;
                send_parts(Arc::new(upload), first, rest, self.limits.concurrency).await
            }
        }
    }

    async fn download(&self, key: &Key, options: GetOptions) -> Result<GetResult> {
        // Replaced between the lookup and the read: once more, with the new generation.
        let mut attempts = 2;
        loop {
            let object = self.resource(key).await?;
            let size = object_meta(key, &object).size;
            let span = match options.range {
                Some(range) => range.resolve(size)?,
                None => (0, size),
            };
            match self.read_generation(key, &object, span).await {
                Err(Error::Precondition { .. } | Error::NotFound { .. }) if attempts > 1 => attempts -= 1,
                other => return other,
            }
        }
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        Ok(object_meta(key, &self.resource(key).await?))
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        done_if_missing(self.api.send_ok(&Call::new("the delete", "DELETE", key, self.api.object_url(key))).await)
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let limit = options.limit.unwrap_or(DEFAULT_LIST_LIMIT).min(DEFAULT_LIST_LIMIT);
        let fields = "items(name,size,updated,etag),prefixes,nextPageToken";
        let mut url = format!("{}?maxResults={limit}&fields={}", self.api.objects_url(), encode(fields, true));
        if !options.prefix.is_empty() {
            url.push_str(&format!("&prefix={}", encode(&options.prefix, true)));
        }
        if let Some(delimiter) = &options.delimiter {
            url.push_str(&format!("&delimiter={}", encode(delimiter, true)));
        }
        if let Some(cursor) = &options.cursor {
            url.push_str(&format!("&pageToken={}", encode(cursor, true)));
        }
        let key = Key::listed(options.prefix.clone());
        let answer = self.api.send_ok(&Call::new("the listing", "GET", &key, url)).await?;
        let page = self.api.json("the listing", answer.response).await?;
        let strings = |field: &str| -> Vec<String> {
            page.get(field)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        Ok(ListPage {
            objects: page
                .get("items")
                .and_then(Value::as_array)
                .map(|items| items.iter().filter_map(list_entry).collect())
                .unwrap_or_default(),
            prefixes: strings("prefixes"),
            cursor: page.get("nextPageToken").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_owned),
        })
    }

    fn sign_url(&self, key: &Key, options: &SignOptions) -> Signing {
        Signing::Ready(self.sign_now(key, options, SystemTime::now()))
    }

    /// GCS copies server-side (`rewriteTo`); a large object may take several calls, each
    /// handing on a token.
    fn concat_min_part(&self) -> Option<u64> {
        Some(0)
    }

    /// Compose, in rounds where there are more than 32 parts: each round's objects are named
    /// after the first part they join, beside it (the caller removes the parts' folder).
    async fn concat(&self, key: &Key, parts: &[(Key, u64)], options: PutOptions) -> Result<PutResult> {
        let mut sources: Vec<Key> = parts.iter().map(|(part, _)| part.clone()).collect();
        let mut round = 0;
        while sources.len() > MAX_COMPOSE {
            round += 1;
            let mut joined = Vec::with_capacity(sources.len().div_ceil(MAX_COMPOSE));
            for group in sources.chunks(MAX_COMPOSE) {
                let target = Key::listed(format!("{}-joined-{round}", group[0]));
                compose(&self.api, &target, group, &PutOptions::default(), "").await?;
                joined.push(target);
            }
            sources = joined;
        }
        // The precondition alone would do on GCS; fake-gcs-server ignores it on compose.
        if options.if_not_exists && self.resource(key).await.is_ok() {
            return Err(Error::AlreadyExists { key: key.to_string() });
        }
        let condition = self.write_condition(key, &options).await?;
        compose(&self.api, key, &sources, &options, &condition).await
    }

    async fn copy(&self, from: &Key, to: &Key) -> Result<()> {
        let target = format!("b/{}/o/{}", encode(&self.api.bucket, true), encode(to.as_str(), true));
        let base = format!("{}/rewriteTo/{target}?fields=done,rewriteToken", self.api.object_url(from));
        let mut url = base.clone();
        loop {
            let answer = self.api.send_ok(&Call::new("the copy", "POST", from, url)).await?;
            let progress = self.api.json("the copy", answer.response).await?;
            if progress.get("done").and_then(Value::as_bool) != Some(false) {
                return Ok(());
            }
            let token = progress.get("rewriteToken").and_then(Value::as_str).unwrap_or_default();
            if token.is_empty() {
                return Err(Error::Service {
                    status: 200,
                    message: "GCS left a copy unfinished without a token".into(),
                });
            }
            url = format!("{base}&rewriteToken={}", encode(token, true));
        }
    }
}

impl GcsBackend {
    fn sign_now(&self, key: &Key, options: &SignOptions, now: SystemTime) -> Result<SignedUrl> {
        let Some(signing_key) = &self.signing_key else {
            return Err(Error::Configuration(
                "signing GCS URLs needs a service-account key (keyFilename or credentials); this store has none \
                 (anonymous emulator access, or user credentials)"
                    .into(),
            ));
        };
        if options.max_bytes.is_some() || options.allowed_content_types.is_some() {
            return Err(Error::InvalidArgument(
                "GCS signed URLs here cannot bound a PUT's size or type: sign a contentType, and check the object \
                 once uploaded"
                    .into(),
            ));
        }
        let mut headers = Vec::new();
        let mut query = Vec::new();
        if let Some(content_type) = &options.content_type {
            headers.push(("content-type".to_owned(), content_type.clone()));
        }
        if let Some(value) = &options.response_content_type {
            query.push(("response-content-type".to_owned(), value.clone()));
        }
        if let Some(value) = &options.response_content_disposition {
            query.push(("response-content-disposition".to_owned(), value.clone()));
        }
        let url = signer::sign(
            signing_key,
            &UrlToSign {
                method: options.method.as_str(),
                endpoint: &self.api.endpoint,
                style: UrlStyle::Path,
                bucket: &self.api.bucket,
                object: Some(key.as_str()),
                headers,
                query,
                now,
                expires_in: options.expires_in,
            },
        )?;
        Ok(SignedUrl::new(url, now + options.expires_in, options))
    }
}
