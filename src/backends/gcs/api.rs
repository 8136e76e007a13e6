//! One GCS JSON API call at a time: the URL, the bearer token, the shared request path
//! (`client::request`: retries, stalls, doubt), and the error an answer stands for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;

use super::auth::GcsTokens;
use super::error::{error_reason, service_error};
use super::signer::{encode, Endpoint};
use crate::client::request::{build_request, Answer, HttpClient};
use crate::core::body::ByteStream;
use crate::core::error::{Error, Result};
use crate::core::key::Key;

pub struct Api {
    pub http: HttpClient,
    pub tokens: Arc<GcsTokens>,
    pub endpoint: Endpoint,
    pub bucket: String,
    /// Set once the bucket was seen to exist: a 404 after that is a missing object.
    bucket_seen: AtomicBool,
}

/// One call: what to send, and the operation's name for errors.
pub struct Call<'a> {
    pub operation: &'static str,
    pub method: &'static str,
    /// The whole URL (`Api::object_url` and friends).
    pub url: String,
    pub key: &'a Key,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl<'a> Call<'a> {
    pub fn new(operation: &'static str, method: &'static str, key: &'a Key, url: String) -> Call<'a> {
        Call { operation, method, url, key, headers: Vec::new(), body: Bytes::new() }
    }
}

impl Api {
    pub fn new(http: HttpClient, tokens: Arc<GcsTokens>, endpoint: Endpoint, bucket: String) -> Api {
        Api { http, tokens, endpoint, bucket, bucket_seen: AtomicBool::new(false) }
    }

    /// `…/storage/v1/b/{bucket}/o/{object}` (the object's name as one path segment).
    pub fn object_url(&self, key: &Key) -> String {
        format!("{}/{}", self.objects_url(), encode(key.as_str(), true))
    }

    /// `…/storage/v1/b/{bucket}/o`.
    pub fn objects_url(&self) -> String {
        format!("{}/o", self.bucket_url())
    }

    pub fn bucket_url(&self) -> String {
        format!("{}/storage/v1/b/{}", self.endpoint.base_url(), encode(&self.bucket, true))
    }

    /// `…/upload/storage/v1/b/{bucket}/o`.
    pub fn upload_url(&self) -> String {
        format!("{}/upload/storage/v1/b/{}/o", self.endpoint.base_url(), encode(&self.bucket, true))
    }

    /// Sends the call with a fresh token; any answer is returned as it is.
    pub async fn send(&self, call: &Call<'_>) -> Result<Answer> {
        let token = self.tokens.get().await?;
        let authorization = token.bearer.as_ref().map(|t| format!("Bearer {t}"));
        let length = call.body.len().to_string();
        self.http
            .send(call.operation, &call.body, |body: SdkBody| {
                let mut headers: Vec<(&str, &str)> =
                    call.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                if matches!(call.method, "PUT" | "POST") {
                    headers.push(("content-length", &length));
                }
                if let Some(authorization) = &authorization {
                    headers.push(("authorization", authorization));
                }
                build_request(call.operation, call.method, &call.url, headers, body)
            })
            .await
    }

    /// `send`, then any answer but a success becomes the error it names.
    pub async fn send_ok(&self, call: &Call<'_>) -> Result<Answer> {
        let answer = self.send(call).await?;
        if answer.response.status().is_success() {
            self.bucket_seen.store(true, Ordering::Relaxed);
            return Ok(answer);
        }
        Err(self.failure(call, answer.response).await)
    }

    /// The error an unsuccessful answer stands for. A 404 is a missing object only when the
    /// bucket exists: a missing bucket is a configuration error, told apart once.
    pub async fn failure(&self, call: &Call<'_>, response: HttpResponse) -> Error {
        let status = response.status().as_u16();
        let body = self.http.read_capped(response).await;
        let error = service_error(call.operation, call.key, status, &error_reason(&body));
        match error {
            Error::NotFound { .. } if !self.bucket_exists().await => self.missing_bucket(),
            other => other,
        }
    }

    pub fn missing_bucket(&self) -> Error {
        Error::Configuration(format!("the GCS bucket {:?} does not exist (or this account cannot see it)", self.bucket))
    }

    /// Whether the bucket exists, asked once it matters; a failure to find out counts as yes
    /// (the caller's own error then stands).
    async fn bucket_exists(&self) -> bool {
        if self.bucket_seen.load(Ordering::Relaxed) {
            return true;
        }
        let key = Key::listed(String::new());
        let call = Call::new("the bucket lookup", "GET", &key, format!("{}?fields=name", self.bucket_url()));
        let status = match self.send(&call).await {
            Ok(answer) => answer.response.status().as_u16(),
            Err(_) => return true,
        };
        if status == 200 {
            self.bucket_seen.store(true, Ordering::Relaxed);
        }
        status != 404
    }

    pub fn body_stream(&self, body: SdkBody, length: u64) -> ByteStream {
        self.http.body_stream(body, length)
    }

    /// A JSON answer body (an object resource, a listing page), or a service error.
    pub async fn json(&self, operation: &str, response: HttpResponse) -> Result<serde_json::Value> {
        let status = response.status().as_u16();
        let body = self.http.read_document(operation, response).await?;
        serde_json::from_slice(&body).map_err(|_| Error::Service {
            status,
            message: format!("GCS answered {operation} with a body that is not the JSON expected"),
        })
    }
}

/// Any header of an answer, as text.
pub fn header<'r>(response: &'r HttpResponse, name: &str) -> Option<&'r str> {
    response.headers().get(name)
}
