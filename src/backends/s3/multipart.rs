//! S3's side of the core multipart driver: CreateMultipartUpload, UploadPart,
//! CompleteMultipartUpload and AbortMultipartUpload on the direct path.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use md5::{Digest, Md5};

use super::direct::{Call, Direct};
use super::error::{code_status, service_error};
use super::signer::encode;
use super::{object_headers, refused_or_ours, write_conditions};
use crate::client::xml;
use crate::core::backend::{PutOptions, PutResult};
use crate::core::error::{done_if_missing, Error, Result};
use crate::core::key::Key;
use crate::core::multipart::Parts;

/// Uploads whose abort could not reach the server (it was down): aborted again by
/// `delete_incomplete_uploads`, which on services without ListMultipartUploads is the only way
/// their parts ever go. At most `MAX_UNABORTED`; past that the oldest are forgotten (and left
/// to ListMultipartUploads or a lifecycle rule).
pub type Unaborted = Arc<Mutex<Vec<(Key, String)>>>;
const MAX_UNABORTED: usize = 1000;

pub struct S3Parts {
    direct: Arc<Direct>,
    key: Key,
    upload_id: String,
    options: PutOptions,
    unaborted: Unaborted,
}

impl S3Parts {
    /// Starts a multipart upload of `key` with the object's content type and metadata.
    pub async fn create(direct: Arc<Direct>, key: &Key, options: &PutOptions, unaborted: Unaborted) -> Result<S3Parts> {
        let call = Call {
            query: "?uploads".into(),
            headers: object_headers(options),
            ..Call::new("CreateMultipartUpload", "POST", key)
        };
        let answer = direct.send_ok(&call).await?;
        let body = direct.read_capped(answer.response).await;
        let upload_id = xml::text(&body, "UploadId").ok_or_else(|| Error::Service {
            status: 200,
            message: "S3 answered CreateMultipartUpload without an UploadId".into(),
        })?;
        Ok(S3Parts { direct, key: key.clone(), upload_id, options: options.clone(), unaborted })
    }

    fn query(&self) -> String {
        format!("uploadId={}", encode(&self.upload_id, true))
    }

    /// Part `number` as bytes `[start, end)` of an object in the same bucket (UploadPartCopy).
    pub async fn copy_part(&self, number: u32, source: &str, (start, end): (u64, u64)) -> Result<String> {
        let query = format!("?partNumber={number}&{}", self.query());
        let headers = vec![
            ("x-amz-copy-source".to_owned(), source.to_owned()),
            ("x-amz-copy-source-range".to_owned(), format!("bytes={start}-{}", end - 1)),
        ];
        let call = Call { query, headers, ..Call::new("UploadPartCopy", "PUT", &self.key) };
        let answer = self.direct.send_ok(&call).await?;
        // S3 may answer 200 and still report an error in the body.
        let body = self.direct.read_capped(answer.response).await;
        match (xml::text(&body, "ETag"), xml::text(&body, "Code")) {
            (Some(etag), _) => Ok(etag),
            (None, code) => {
                let code = code.unwrap_or_else(|| "NoETag".into());
                Err(service_error(call.operation, &self.key, code_status(&code), &code))
            }
        }
    }
}

#[async_trait]
impl Parts for S3Parts {
    async fn put_part(&self, number: u32, data: Bytes) -> Result<String> {
        let query = format!("?partNumber={number}&{}", self.query());
        let call = Call { query, body: data, ..Call::new("UploadPart", "PUT", &self.key) };
        let answer = self.direct.send_ok(&call).await?;
        Ok(answer.response.headers().get("etag").map(str::to_owned).unwrap_or_default())
    }

    async fn complete(&self, parts: Vec<(u32, String)>) -> Result<PutResult> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (number, etag) in &parts {
            let etag = xml::escape(etag);
            xml.push_str(&format!("<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag></Part>"));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let mut headers = vec![("content-type".to_owned(), "application/xml".to_owned())];
        headers.extend(write_conditions(&self.options));
        let query = format!("?{}", self.query());
        let body = Bytes::from(xml);
        let call = Call { query, headers, body, ..Call::new("CompleteMultipartUpload", "POST", &self.key) };
        let answer = self.direct.send(&call).await?;
        if !answer.response.status().is_success() {
            // Retried after a doubtful attempt, a completion already done answers NoSuchUpload.
            return refused_or_ours(&self.direct, &call, answer, &self.options, || multipart_etag(&parts)).await;
        }
        // S3 may answer 200 and still report an error in the body.
        let body = self.direct.read_capped(answer.response).await;
        if let Some(code) = xml::text(&body, "Code").filter(|_| xml::text(&body, "ETag").is_none()) {
            let refused = service_error(call.operation, &self.key, code_status(&code), &code);
            return Err(self.options.refusal(&self.key, refused));
        }
        Ok(PutResult { etag: xml::text(&body, "ETag") })
    }

    /// A failed abort is remembered (see `Unaborted`), never reported: the upload failed
    /// already, and that is the error the caller hears.
    async fn abort(&self) {
        if abort_upload(&self.direct, &self.key, &self.upload_id).await.is_err() {
            let mut unaborted = self.unaborted.lock().unwrap_or_else(PoisonError::into_inner);
            if unaborted.len() == MAX_UNABORTED {
                unaborted.remove(0);
            }
            unaborted.push((self.key.clone(), self.upload_id.clone()));
        }
    }
}

pub async fn abort_upload(direct: &Direct, key: &Key, upload_id: &str) -> Result<()> {
    let query = format!("?uploadId={}", encode(upload_id, true));
    done_if_missing(direct.send_ok(&Call { query, ..Call::new("AbortMultipartUpload", "DELETE", key) }).await)
}

/// The ETag S3 gives a multipart object: the MD5 of its parts' MD5s, and the part count; an
/// impossible ETag when a part's ETag is not an MD5, as on some services.
fn multipart_etag(parts: &[(u32, String)]) -> String {
    let mut digests = Md5::new();
    for (_, etag) in parts {
        match hex::decode(etag.trim_matches('"')) {
            Ok(md5) if md5.len() == 16 => digests.update(&md5),
            _ => return String::new(),
        }
    }
    format!("\"{}-{}\"", hex::encode(digests.finalize()), parts.len())
}
