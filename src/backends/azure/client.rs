//! Azure's calls on the shared request path (`client::request`): each attempt gets a fresh
//! date and a Shared Key signature (or carries the SAS token), and any error answer becomes
//! the error its code names.

use std::time::SystemTime;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::date_time::{DateTime, Format};
use bytes::Bytes;

use super::auth::{shared_key, AzureCredentials, SignedParts};
use super::error::service_error;
use super::API_VERSION;
use crate::client::request::{build_request, Answer, HttpClient};
use crate::core::error::{Error, Result};
use crate::core::key::{encode_component, percent_encode_path, Key};

/// Where a container lives and how requests to it are authorised.
pub struct Container {
    pub http: HttpClient,
    pub account: String,
    pub name: String,
    /// `https://account.blob.core.windows.net` or an emulator's `http://host:port/account`.
    pub endpoint: String,
    pub credentials: AzureCredentials,
}

/// What a call is about.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// The account's blob service (user delegation keys).
    Service,
    Container,
    Blob(&'a Key),
}

/// One call: what it is about, its query (not encoded), its headers (names lowercase) and its
/// body.
pub struct Call<'a> {
    pub operation: &'static str,
    pub method: &'static str,
    pub target: Target<'a>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl<'a> Call<'a> {
    pub fn blob(operation: &'static str, method: &'static str, key: &'a Key) -> Call<'a> {
        Call {
            operation,
            method,
            target: Target::Blob(key),
            query: Vec::new(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn container(operation: &'static str, method: &'static str, query: Vec<(String, String)>) -> Call<'a> {
        Call { operation, method, target: Target::Container, query, headers: Vec::new(), body: Bytes::new() }
    }

    pub fn service(operation: &'static str, method: &'static str, query: Vec<(String, String)>) -> Call<'a> {
        Call { operation, method, target: Target::Service, query, headers: Vec::new(), body: Bytes::new() }
    }

    /// The key errors name: the blob's, or none.
    fn subject(&self) -> &str {
        match self.target {
            Target::Blob(key) => key.as_str(),
            Target::Service | Target::Container => "",
        }
    }
}

impl Container {
    /// The URL path of what a call is about, encoded as sent.
    pub fn path(&self, target: Target<'_>) -> String {
        let base = self.endpoint.split_once("://").map_or("", |(_, rest)| rest);
        let base_path = base.find('/').map_or("", |at| &base[at..]);
        match target {
            Target::Blob(key) => format!("{base_path}/{}/{}", self.name, percent_encode_path(key.as_str())),
            Target::Container => format!("{base_path}/{}", self.name),
            Target::Service => format!("{base_path}/"),
        }
    }

    pub fn url(&self, target: Target<'_>) -> String {
        let origin = match self.endpoint.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
            None => self.endpoint.clone(),
        };
        format!("{origin}{}", self.path(target))
    }

    pub async fn send(&self, call: &Call<'_>) -> Result<Answer> {
        let bearer = match &self.credentials {
            AzureCredentials::Token(cache) => Some(format!("Bearer {}", cache.get().await?.token)),
            _ => None,
        };
        let query: String = call
            .query
            .iter()
            .map(|(name, value)| format!("{}={}", encode_component(name), encode_component(value)))
            .chain(match &self.credentials {
                AzureCredentials::Sas(token) => Some(token.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("&");
        let path = self.path(call.target);
        let url = if query.is_empty() { self.url(call.target) } else { format!("{}?{query}", self.url(call.target)) };
        self.http
            .send(call.operation, &call.body, |body| self.request(call, &url, &path, bearer.as_deref(), body))
            .await
    }

    /// `send`, then any answer but a success becomes the error it names.
    pub async fn send_ok(&self, call: &Call<'_>) -> Result<Answer> {
        let answer = self.send(call).await?;
        if answer.response.status().is_success() {
            return Ok(answer);
        }
        Err(self.failure(call, answer.response).await)
    }

    pub async fn failure(&self, call: &Call<'_>, response: HttpResponse) -> Error {
        let status = response.status().as_u16();
        let code = response.headers().get("x-ms-error-code").unwrap_or_default().to_owned();
        // The body repeats the code; it is read so the connection can be reused.
        let _ = self.http.read_capped(response).await;
        service_error(call.operation, call.subject(), status, &code)
    }

    pub async fn read_capped(&self, response: HttpResponse) -> Bytes {
        self.http.read_capped(response).await
    }

    fn request(
        &self,
        call: &Call<'_>,
        url: &str,
        path: &str,
        bearer: Option<&str>,
        body: SdkBody,
    ) -> Result<aws_smithy_runtime_api::client::orchestrator::HttpRequest> {
        let now = DateTime::from(SystemTime::now())
            .fmt(Format::HttpDate)
            .map_err(|e| Error::Internal(format!("cannot write the request date: {e}")))?;
        let mut headers = call.headers.clone();
        headers.push(("x-ms-date".into(), now));
        headers.push(("x-ms-version".into(), API_VERSION.into()));
        if matches!(call.method, "PUT" | "POST") {
            headers.push(("content-length".into(), call.body.len().to_string()));
        }
        if let AzureCredentials::AccountKey(key) = &self.credentials {
            let parts = SignedParts { method: call.method, path, query: &call.query, headers: &headers };
            headers.push(("authorization".into(), shared_key(&self.account, key, &parts)));
        }
        if let Some(bearer) = bearer {
            headers.push(("authorization".into(), bearer.to_owned()));
        }
        build_request(call.operation, call.method, url, headers.iter().map(|(n, v)| (n.as_str(), v.as_str())), body)
    }
}
