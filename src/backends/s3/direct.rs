//! The object calls (GET, HEAD, PUT, DELETE and COPY of one object, and the calls of a
//! multipart upload), signed here with SigV4 and sent on the shared request path
//! (`client::request`) over the SDK's HTTP connector. For small objects the SDK's operation
//! pipeline (interceptors, endpoint rules, config layering) costs more CPU than the request
//! itself. Listings and batch deletes stay on the SDK client, which shares the connector and so
//! its connection pool, TLS set-up and timeouts.

use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;

use super::credentials::S3Credentials;
use super::error::service_error;
use super::signer::Signer;
use crate::client::request::{build_request, Answer, HttpClient};
use crate::client::xml;
use crate::core::error::{Error, Result};
use crate::core::key::Key;

pub struct Direct {
    http: HttpClient,
    signer: Arc<Signer>,
    credentials: Arc<S3Credentials>,
    /// Sign the body's SHA-256, or send it as UNSIGNED-PAYLOAD.
    sign_payload: bool,
}

/// One call: what to send, and the operation's name for errors.
pub struct Call<'a> {
    pub operation: &'static str,
    pub method: &'static str,
    pub key: &'a Key,
    /// The query string after the key (`?uploads`, `?partNumber=2&uploadId=…`), already escaped.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl<'a> Call<'a> {
    /// A call with no query, no headers of its own and no body.
    pub fn new(operation: &'static str, method: &'static str, key: &'a Key) -> Call<'a> {
        Call { operation, method, key, query: String::new(), headers: Vec::new(), body: Bytes::new() }
    }
}

impl Direct {
    pub fn new(http: HttpClient, signer: Arc<Signer>, credentials: Arc<S3Credentials>, sign_payload: bool) -> Direct {
        Direct { http, signer, credentials, sign_payload }
    }

    /// Sends the call on the shared request path (retries, stalls, doubt); any answer is
    /// returned as it is, for the caller to read.
    pub async fn send(&self, call: &Call<'_>) -> Result<Answer> {
        let url = format!("{}{}", self.signer.url(call.key), call.query);
        let credentials = self.credentials.get().await?;
        self.http.send(call.operation, &call.body, |body| self.request(call, &url, &credentials, body)).await
    }

    /// `send`, then any answer but a success becomes the error it names.
    pub async fn send_ok(&self, call: &Call<'_>) -> Result<Answer> {
        let answer = self.send(call).await?;
        if answer.response.status().is_success() {
            return Ok(answer);
        }
        Err(self.failure(call, answer.response).await)
    }

    /// The error an unsuccessful answer stands for, from its status and its XML error code.
    pub async fn failure(&self, call: &Call<'_>, response: HttpResponse) -> Error {
        let status = response.status().as_u16();
        let body = self.read_capped(response).await;
        service_error(call.operation, call.key, status, &error_code(&body).unwrap_or_default())
    }

    pub async fn read_capped(&self, response: HttpResponse) -> Bytes {
        self.http.read_capped(response).await
    }

    /// The shared request path these calls go over.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    fn request(&self, call: &Call<'_>, url: &str, credentials: &Credentials, body: SdkBody) -> Result<HttpRequest> {
        let mut headers: Vec<(&str, &str)> = call.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let length = call.body.len().to_string();
        if matches!(call.method, "PUT" | "POST") {
            headers.push(("content-length", &length));
        }
        let payload = self.sign_payload.then_some(&call.body[..]);
        let signature =
            self.signer.sign_headers(credentials, call.method, url, &headers, payload, SystemTime::now())?;
        let signed = signature.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let all = headers.iter().copied().chain(signed).chain([("host", self.signer.host())]);
        build_request(call.operation, call.method, url, all, body)
    }
}

/// `<Code>NoSuchKey</Code>` from an S3 XML error body.
pub fn error_code(body: &[u8]) -> Option<String> {
    xml::text(body, "Code")
}
