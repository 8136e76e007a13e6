//! SigV4 signing done directly: presigned URLs, and the headers of the single-request object
//! calls. The SDK runs its whole request pipeline for each, which costs more than the signature.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::core::backend::{Method, SignOptions};
use crate::core::error::{Error, Result};
use crate::core::key::Key;

/// Signs with whatever credentials it is handed: they may change (expire, be fetched again)
/// while the signer stays.
pub struct Signer {
    region: String,
    /// Everything before the key: `https://bucket.s3.region.amazonaws.com/` or `http://host:port/bucket/`.
    base: String,
    host: String,
}

impl Signer {
    pub fn new(region: &str, bucket: &str, endpoint: Option<&str>, path_style: bool) -> Result<Signer> {
        let default_endpoint = format!("https://s3.{region}.amazonaws.com");
        let endpoint = endpoint.unwrap_or(&default_endpoint).trim_end_matches('/');
        let (scheme, rest) = endpoint
            .split_once("://")
            .ok_or_else(|| Error::Configuration(format!("the S3 endpoint {endpoint:?} is not a URL")))?;
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        let path = if path.is_empty() { String::new() } else { format!("/{path}") };
        let (host, base) = if path_style {
            (authority.to_owned(), format!("{scheme}://{authority}{path}/{}/", encode(bucket, false)))
        } else {
            let host = format!("{bucket}.{authority}");
            let base = format!("{scheme}://{host}{path}/");
            (host, base)
        };
        Ok(Signer { region: region.to_owned(), base, host })
    }

    /// The object's URL, its key escaped as SigV4 expects.
    pub fn url(&self, key: &Key) -> String {
        format!("{}{}", self.base, encode(key.as_str(), false))
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn is_tls(&self) -> bool {
        self.base.starts_with("https://")
    }

    /// The headers that sign a request: `headers` must hold every header sent but the host.
    /// An unsigned payload is sent as `UNSIGNED-PAYLOAD` (TLS protects it in transit).
    pub fn sign_headers(
        &self,
        credentials: &Credentials,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<Vec<(String, String)>> {
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let body = payload.map_or(SignableBody::UnsignedPayload, SignableBody::Bytes);
        let signed = headers.iter().copied().chain([("host", self.host.as_str())]);
        let request = SignableRequest::new(method, url, signed, body).map_err(signing_failed)?;
        let identity = Identity::from(credentials.clone());
        let (instructions, _) =
            sign(request, &self.params(&identity, settings, now)?).map_err(signing_failed)?.into_parts();
        Ok(instructions.headers().map(|(name, value)| (name.to_owned(), value.to_owned())).collect())
    }

    fn params<'a>(
        &'a self,
        identity: &'a Identity,
        mut settings: SigningSettings,
        now: SystemTime,
    ) -> Result<aws_sigv4::http_request::SigningParams<'a>> {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(identity)
            .region(&self.region)
            .name("s3")
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| Error::Configuration(format!("cannot sign S3 requests: {e}")))?;
        Ok(params.into())
    }

    pub fn presign(
        &self,
        credentials: &Credentials,
        key: &Key,
        options: &SignOptions,
        now: SystemTime,
    ) -> Result<String> {
        let mut url = self.url(key);
        let overrides = [
            ("response-content-disposition", options.response_content_disposition.as_deref()),
            ("response-content-type", options.response_content_type.as_deref()),
        ];
        let mut separator = '?';
        if options.method == Method::Get {
            for (name, value) in overrides {
                if let Some(value) = value {
                    url.push_str(&format!("{separator}{name}={}", encode(value, true)));
                    separator = '&';
                }
            }
        }
        let mut headers = vec![("host", self.host.as_str())];
        if let (Method::Put, Some(content_type)) = (options.method, options.content_type.as_deref()) {
            headers.push(("content-type", content_type));
        }
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(options.expires_in);
        let identity = Identity::from(credentials.clone());
        let params = self.params(&identity, settings, now)?;
        let request = SignableRequest::new(
            options.method.as_str(),
            url.as_str(),
            headers.into_iter(),
            SignableBody::UnsignedPayload,
        )
        .map_err(signing_failed)?;
        let (instructions, _) = sign(request, &params).map_err(signing_failed)?.into_parts();
        for (name, value) in instructions.params() {
            url.push_str(&format!("{separator}{name}={}", encode(value, true)));
            separator = '&';
        }
        Ok(url)
    }
}

fn signing_failed(error: aws_sigv4::http_request::SigningError) -> Error {
    Error::InvalidArgument(format!("cannot sign the S3 request: {error}"))
}

/// SigV4 URI encoding: everything but `A-Z a-z 0-9 - _ . ~` is escaped; `/` too when asked.
pub fn encode(s: &str, slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (b == b'/' && !slash) {
            out.push(b as char);
        } else {
            // Every request URL passes here: no allocation per escaped byte.
            out.extend(['%', HEX[usize::from(b >> 4)] as char, HEX[usize::from(b & 15)] as char]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn urls_are_path_style_or_virtual_hosted() {
        let credentials = Credentials::new("AKID", "secret", None, None, "test");
        let path = Signer::new("us-east-1", "b", Some("http://127.0.0.1:9000"), true).unwrap();
        let options = SignOptions {
            response_content_disposition: Some("attachment; filename=\"a b.txt\"".into()),
            ..SignOptions::new(Method::Get, Duration::from_secs(60))
        };
        let url =
            path.presign(&credentials, &Key::parse("dir/a b+c(1).txt").unwrap(), &options, SystemTime::now()).unwrap();
        assert!(url.starts_with("http://127.0.0.1:9000/b/dir/a%20b%2Bc%281%29.txt?response-content-disposition=attachment%3B%20filename%3D%22a%20b.txt%22&X-Amz-Algorithm=AWS4-HMAC-SHA256&"), "{url}");
        assert!(url.contains("X-Amz-Expires=60") && url.contains("X-Amz-Signature="), "{url}");
        let aws = Signer::new("eu-west-1", "my-bucket", None, false).unwrap();
        let url = aws.presign(&credentials, &Key::parse("k").unwrap(), &options, SystemTime::now()).unwrap();
        assert!(url.starts_with("https://my-bucket.s3.eu-west-1.amazonaws.com/k?"), "{url}");
    }
}
