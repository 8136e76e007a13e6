//! HMAC-SHA256 signed URLs for stores that have no signing of their own (local, memory).
//! The signature covers the method, key, expiry, the PUT content type and upload guards, and
//! the GET response overrides, so changing any of them invalidates the URL.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::core::backend::{Method, SignOptions, SignedUrl};
use crate::core::error::{Error, Result};
use crate::core::key::{encode_component, percent_encode_path, Key};

type HmacSha256 = Hmac<Sha256>;

/// Query parameter names; the handler in the JS package reads the same names.
pub const PARAM_METHOD: &str = "X-Method";
pub const PARAM_EXPIRES: &str = "X-Expires";
pub const PARAM_CONTENT_TYPE: &str = "X-Content-Type";
pub const PARAM_RESPONSE_CONTENT_TYPE: &str = "response-content-type";
pub const PARAM_RESPONSE_DISPOSITION: &str = "response-content-disposition";
pub const PARAM_MAX_BYTES: &str = "X-Max-Bytes";
pub const PARAM_ALLOWED_TYPES: &str = "X-Allowed-Types";
pub const PARAM_SIGNATURE: &str = "X-Signature";

/// The longest validity a URL may have (7 days, as S3).
pub const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

pub struct UrlSigner {
    secret: Vec<u8>,
    base_url: String,
}

/// The signed fields of one request, as the verifier receives them.
#[derive(Debug, Default)]
pub struct SignedFields<'a> {
    pub method: &'a str,
    pub key: &'a str,
    pub expires: &'a str,
    pub content_type: &'a str,
    pub response_content_type: &'a str,
    pub response_content_disposition: &'a str,
    /// PUT guards: the byte limit in decimal, the allowed types joined by commas.
    pub max_bytes: &'a str,
    pub allowed_types: &'a str,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Expired,
    BadSignature,
}

impl UrlSigner {
    pub fn new(secret: Vec<u8>, base_url: &str) -> Result<UrlSigner> {
        if secret.len() < 16 {
            return Err(Error::Configuration("a signing secret must be at least 16 bytes".into()));
        }
        let base_url = base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(Error::Configuration(format!("baseUrl must be an http(s) URL, not {base_url:?}")));
        }
        Ok(UrlSigner { secret, base_url })
    }

    /// Signs a URL; `Storage::sign_url` has checked the options.
    pub fn sign(&self, key: &Key, options: &SignOptions, now: SystemTime) -> Result<SignedUrl> {
        let expires_at = now + options.expires_in;
        let expires = expires_at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs().to_string();
        let max_bytes = options.max_bytes.map(|n| n.to_string()).unwrap_or_default();
        let allowed_types = options.allowed_content_types.as_deref().map(|t| t.join(",")).unwrap_or_default();
        let fields = SignedFields {
            method: options.method.as_str(),
            key: key.as_str(),
            expires: &expires,
            content_type: options.content_type.as_deref().unwrap_or(""),
            response_content_type: options.response_content_type.as_deref().unwrap_or(""),
            response_content_disposition: options.response_content_disposition.as_deref().unwrap_or(""),
            max_bytes: &max_bytes,
            allowed_types: &allowed_types,
        };
        let signature = hex::encode(self.mac(&fields).finalize().into_bytes());
        let mut url = format!(
            "{}/{}?{PARAM_METHOD}={}&{PARAM_EXPIRES}={expires}",
            self.base_url,
            percent_encode_path(key.as_str()),
            fields.method
        );
        for (name, value) in [
            (PARAM_CONTENT_TYPE, fields.content_type),
            (PARAM_RESPONSE_CONTENT_TYPE, fields.response_content_type),
            (PARAM_RESPONSE_DISPOSITION, fields.response_content_disposition),
            (PARAM_MAX_BYTES, fields.max_bytes),
            (PARAM_ALLOWED_TYPES, fields.allowed_types),
        ] {
            if !value.is_empty() {
                url.push_str(&format!("&{name}={}", encode_component(value)));
            }
        }
        url.push_str(&format!("&{PARAM_SIGNATURE}={signature}"));
        Ok(SignedUrl::new(url, expires_at, options))
    }

    /// Checks a signature in constant time, then the expiry. The signature must be spelled
    /// exactly as signed (lowercase hex): one URL, one spelling.
    pub fn verify(&self, fields: &SignedFields, signature_hex: &str, now: SystemTime) -> Verdict {
        let canonical =
            signature_hex.len() == 64 && signature_hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let Some(signature) = canonical.then(|| hex::decode(signature_hex).ok()).flatten() else {
            return Verdict::BadSignature;
        };
        if Method::parse(fields.method).is_err() || self.mac(fields).verify_slice(&signature).is_err() {
            return Verdict::BadSignature;
        }
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        match fields.expires.parse::<u64>() {
            Ok(expires) if expires >= now => Verdict::Valid,
            _ => Verdict::Expired,
        }
    }

    fn mac(&self, f: &SignedFields) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        // Each field is length-prefixed so no two field sets produce the same message. The
        // guards come last and only when set, so URLs signed before they existed still verify.
        let base =
            [f.method, f.key, f.expires, f.content_type, f.response_content_type, f.response_content_disposition];
        let guards = [f.max_bytes, f.allowed_types];
        let guarded = guards.iter().any(|g| !g.is_empty());
        for field in ["v1"].iter().chain(&base).chain(guards.iter().filter(|_| guarded)) {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> UrlSigner {
        UrlSigner::new(b"0123456789abcdef0123456789abcdef".to_vec(), "http://127.0.0.1:9000/files/").unwrap()
    }

    fn options(method: Method) -> SignOptions {
        SignOptions::new(method, Duration::from_secs(60))
    }

    fn param<'a>(url: &'a str, name: &str) -> &'a str {
        url.split(['?', '&']).find_map(|p| p.strip_prefix(&format!("{name}="))).unwrap_or("")
    }

    #[test]
    fn a_signed_url_verifies_until_it_expires() {
        let now = SystemTime::now();
        let key = Key::parse("dir/a file+ü.txt").unwrap();
        let url = signer().sign(&key, &options(Method::Get), now).unwrap();
        assert!(
            url.url.starts_with("http://127.0.0.1:9000/files/dir/a%20file%2B%C3%BC.txt?X-Method=GET&X-Expires="),
            "{}",
            url.url
        );
        let expires = param(&url.url, PARAM_EXPIRES);
        let sig = param(&url.url, PARAM_SIGNATURE);
        let fields = SignedFields { method: "GET", key: key.as_str(), expires, ..Default::default() };
        assert_eq!(signer().verify(&fields, sig, now), Verdict::Valid);
        assert_eq!(signer().verify(&fields, sig, now + Duration::from_secs(61)), Verdict::Expired);
        let other_key = SignedFields { key: "dir/other.txt", ..fields };
        assert_eq!(signer().verify(&other_key, sig, now), Verdict::BadSignature);
        let other_method = SignedFields { method: "PUT", key: key.as_str(), expires, ..Default::default() };
        assert_eq!(signer().verify(&other_method, sig, now), Verdict::BadSignature);
        let later = SignedFields { expires: "99999999999", key: key.as_str(), method: "GET", ..Default::default() };
        assert_eq!(signer().verify(&later, sig, now), Verdict::BadSignature);
        assert_eq!(signer().verify(&fields, "zz", now), Verdict::BadSignature);
    }

    #[test]
    fn put_urls_sign_the_content_type() {
        let now = SystemTime::now();
        let key = Key::parse("k").unwrap();
        let opts = SignOptions { content_type: Some("image/png".into()), ..options(Method::Put) };
        let url = signer().sign(&key, &opts, now).unwrap().url;
        assert_eq!(param(&url, PARAM_CONTENT_TYPE), "image%2Fpng");
        let expires = param(&url, PARAM_EXPIRES);
        let sig = param(&url, PARAM_SIGNATURE);
        let good = SignedFields { method: "PUT", key: "k", expires, content_type: "image/png", ..Default::default() };
        assert_eq!(signer().verify(&good, sig, now), Verdict::Valid);
        let swapped = SignedFields { content_type: "text/html", ..good };
        assert_eq!(signer().verify(&swapped, sig, now), Verdict::BadSignature);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(UrlSigner::new(b"short".to_vec(), "http://x").is_err());
        assert!(UrlSigner::new(vec![0; 32], "ftp://x").is_err());
    }

    #[test]
    fn a_signature_verifies_only_as_it_was_spelled() {
        let now = SystemTime::now();
        let url = signer().sign(&Key::parse("k").unwrap(), &options(Method::Get), now).unwrap().url;
        let (expires, sig) = (param(&url, PARAM_EXPIRES), param(&url, PARAM_SIGNATURE));
        let fields = SignedFields { method: "GET", key: "k", expires, ..Default::default() };
        assert_eq!(signer().verify(&fields, sig, now), Verdict::Valid);
        for respelled in [sig.to_uppercase(), format!("{sig}00"), sig[..62].to_string(), format!(" {}", &sig[1..])] {
            assert_eq!(signer().verify(&fields, &respelled, now), Verdict::BadSignature, "{respelled}");
        }
    }

    #[test]
    fn put_guards_are_signed() {
        let now = SystemTime::now();
        let opts = SignOptions {
            max_bytes: Some(1000),
            allowed_content_types: Some(vec!["image/*".into(), "application/pdf".into()]),
            ..options(Method::Put)
        };
        let url = signer().sign(&Key::parse("k").unwrap(), &opts, now).unwrap().url;
        assert_eq!(param(&url, PARAM_MAX_BYTES), "1000");
        assert_eq!(param(&url, PARAM_ALLOWED_TYPES), "image%2F*%2Capplication%2Fpdf");
        let (expires, sig) = (param(&url, PARAM_EXPIRES), param(&url, PARAM_SIGNATURE));
        let good = SignedFields {
            method: "PUT",
            key: "k",
            expires,
            max_bytes: "1000",
            allowed_types: "image/*,application/pdf",
            ..Default::default()
        };
        assert_eq!(signer().verify(&good, sig, now), Verdict::Valid);
        for lifted in [SignedFields { max_bytes: "", ..good }, SignedFields { allowed_types: "*/*", ..good }] {
            assert_eq!(signer().verify(&lifted, sig, now), Verdict::BadSignature);
        }
    }

    proptest::proptest! {
        /// Whatever a client puts in a URL, the verdict is Valid only for what was signed.
        #[test]
        fn any_request_verifies_only_as_signed(
            method in "\\PC{0,6}", key in "\\PC{0,20}", expires in "\\PC{0,12}",
            signature in proptest::prop_oneof!["[0-9a-f]{64}", "\\PC{0,70}"],
            max_bytes in "[0-9]{0,4}",
        ) {
            let fields = SignedFields { method: &method, key: &key, expires: &expires, max_bytes: &max_bytes, ..Default::default() };
            proptest::prop_assert_ne!(signer().verify(&fields, &signature, SystemTime::now()), Verdict::Valid);
        }
    }
}
