//! Uploads: a body of up to one part in one request (`uploadType=multipart`: the object's
//! metadata and its bytes together); longer or unknown-length bodies through a resumable
//! session, GCS's side of the core multipart driver. A session takes its chunks in order, at
//! offsets that are multiples of 256 KiB, so part n waits for part n-1 (the driver still reads
//! ahead, in bounded memory); any failure cancels the session, and an object appears only when
//! the last chunk is in.

use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::api::{header, Api, Call};
use super::object::{object_meta, quoted_etag};
use super::signer::encode;
use crate::core::backend::{PutOptions, PutResult, DEFAULT_CONTENT_TYPE};
use crate::core::error::{Error, Result};
use crate::core::key::Key;
use crate::core::multipart::Parts;

/// Resumable chunks (all but the last) must be multiples of this.
pub const CHUNK_GRANULE: usize = 256 << 10;

fn content_type(options: &PutOptions) -> String {
    options.content_type.clone().unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned())
}

/// The object resource a new object starts with: its name, content type and metadata.
fn resource(key: &Key, options: &PutOptions) -> Value {
    json!({ "name": key.as_str(), "contentType": content_type(options), "metadata": options.metadata })
}

/// One request: the resource and the bytes as `multipart/related`. `condition` is the
/// upload's precondition query (see `GcsBackend::write_condition`).
pub async fn put_whole(api: &Api, key: &Key, data: Bytes, options: &PutOptions, condition: &str) -> Result<PutResult> {
    let boundary = format!("rstorage-{}", uuid::Uuid::new_v4().simple());
    let mut body = BytesMut::with_capacity(data.len() + 512);
    body.extend_from_slice(
        format!("--{boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n{}\r\n", resource(key, options))
            .as_bytes(),
    );
    body.extend_from_slice(format!("--{boundary}\r\ncontent-type: {}\r\n\r\n", content_type(options)).as_bytes());
    body.extend_from_slice(&data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let url = format!("{}?uploadType=multipart{condition}", api.upload_url());
    let call = Call {
        headers: vec![("content-type".into(), format!("multipart/related; boundary={boundary}"))],
        body: body.freeze(),
        ..Call::new("the upload", "POST", key, url)
    };
    let answer = api.send(&call).await?;
    if answer.response.status().is_success() {
        return finished(api, key, answer.response).await;
    }
    let (status, after_doubt) = (answer.response.status().as_u16(), answer.after_doubt);
    let refusal = options.refusal(key, api.failure(&call, answer.response).await);
    // A refusal after an attempt that may have been carried out may be our own write.
    if after_doubt && status == 412 {
        let ours = STANDARD.encode(Md5::digest(&data));
        let meta = api.send_ok(&Call::new("the metadata lookup", "GET", key, api.object_url(key))).await;
        if let Ok(answer) = meta {
            let object = api.json("the metadata lookup", answer.response).await?;
            if object.get("md5Hash").and_then(Value::as_str) == Some(ours.as_str()) {
                return Ok(PutResult { etag: quoted_etag(&object) });
            }
        }
    }
    Err(refusal)
}

/// Makes `key` of `sources`, in order, inside GCS (at most `MAX_COMPOSE` of them).
pub async fn compose(
    api: &Api,
    key: &Key,
    sources: &[Key],
    options: &PutOptions,
    condition: &str,
) -> Result<PutResult> {
    let sources: Vec<Value> = sources.iter().map(|source| json!({ "name": source.as_str() })).collect();
    let body = json!({ "sourceObjects": sources, "destination": resource(key, options) });
    let url = format!("{}/compose?fields=etag{condition}", api.object_url(key));
    let call = Call {
        headers: vec![("content-type".into(), "application/json; charset=UTF-8".into())],
        body: Bytes::from(body.to_string()),
        ..Call::new("the compose", "POST", key, url)
    };
    let answer = api.send_ok(&call).await.map_err(|e| options.refusal(key, e))?;
    finished(api, key, answer.response).await
}

/// The most objects one compose joins.
pub const MAX_COMPOSE: usize = 32;

async fn finished(
    api: &Api,
    key: &Key,
    response: aws_smithy_runtime_api::client::orchestrator::HttpResponse,
) -> Result<PutResult> {
    let object = api.json("the upload", response).await?;
    Ok(PutResult { etag: object_meta(key, &object).etag })
}

/// Where a resumable session stands: the next part it takes, the bytes it holds, and whether
/// it failed (the parts waiting their turn then give up) or finished.
#[derive(Clone, Default)]
struct Progress {
    next: u32,
    offset: u64,
    failed: bool,
    finished: Option<PutResult>,
}

pub struct Resumable {
    api: Arc<Api>,
    key: Key,
    session: String,
    options: PutOptions,
    progress: watch::Sender<Progress>,
}

impl Resumable {
    /// Opens a session for `key` with the object's content type and metadata.
    pub async fn start(api: Arc<Api>, key: &Key, options: &PutOptions, condition: &str) -> Result<Resumable> {
        let url = format!("{}?uploadType=resumable&name={}{condition}", api.upload_url(), encode(key.as_str(), true));
        let call = Call {
            headers: vec![
                ("content-type".into(), "application/json; charset=UTF-8".into()),
                ("x-upload-content-type".into(), content_type(options)),
            ],
            body: Bytes::from(resource(key, options).to_string()),
            ..Call::new("the resumable upload's start", "POST", key, url)
        };
        let answer = api.send_ok(&call).await.map_err(|e| options.refusal(key, e))?;
        let session = header(&answer.response, "location").map(str::to_owned).ok_or_else(|| Error::Service {
            status: answer.response.status().as_u16(),
            message: "GCS started a resumable upload without a session URI".into(),
        })?;
        let progress = watch::Sender::new(Progress { next: 1, ..Progress::default() });
        Ok(Resumable { api, key: key.clone(), session, options: options.clone(), progress })
    }

    /// Sends bytes at `offset`; `total` on the last chunk only. Returns how many bytes GCS
    /// now holds, and the object once it is made.
    async fn send_chunk(&self, offset: u64, data: Bytes, total: Option<u64>) -> Result<(u64, Option<PutResult>)> {
        let end = offset + data.len() as u64;
        let total_text = total.map_or_else(|| "*".to_owned(), |t| t.to_string());
        let range = if data.is_empty() {
            format!("bytes */{total_text}")
        } else {
            format!("bytes {offset}-{}/{total_text}", end - 1)
        };
        let call = Call {
            // Sent with every chunk: some servers (fake-gcs-server) take the object's type from
            // the last request instead of the session.
            headers: vec![("content-range".into(), range), ("content-type".into(), content_type(&self.options))],
            body: data,
            ..Call::new("a resumable upload chunk", "PUT", &self.key, self.session.clone())
        };
        let answer = self.api.send(&call).await?;
        match answer.response.status().as_u16() {
            200 | 201 => {
                let done = finished(&self.api, &self.key, answer.response).await?;
                Ok((total.unwrap_or(end), Some(done)))
            }
            // "Resume Incomplete": `Range: bytes=0-N` is what it holds.
            308 => {
                let held = header(&answer.response, "range")
                    .and_then(|r| r.strip_prefix("bytes=0-"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .map_or(0, |n| n + 1);
                Ok((held, None))
            }
            _ => {
                let error = self.api.failure(&call, answer.response).await;
                Err(self.options.refusal(&self.key, error))
            }
        }
    }

    /// Sends part `number` once the part before it is in; a last part (shorter than a
    /// granule multiple) finishes the object.
    async fn put_in_turn(&self, number: u32, data: Bytes) -> Result<()> {
        let mut turn = self.progress.subscribe();
        let progress = turn.wait_for(|p| p.failed || p.next == number).await.map(|p| p.clone());
        let offset = match progress {
            Ok(p) if !p.failed => p.offset,
            _ => return Err(Error::Aborted("an earlier part of the upload failed".into())),
        };
        let last = !data.len().is_multiple_of(CHUNK_GRANULE);
        let end = offset + data.len() as u64;
        let (held, done) = self.send_chunk(offset, data, last.then_some(end)).await?;
        if held != end {
            return Err(Error::Unavailable(format!(
                "GCS kept {held} of the {end} bytes sent to the resumable upload of {}",
                self.key
            )));
        }
        self.progress.send_modify(|p| {
            p.next = number + 1;
            p.offset = end;
            p.finished = done;
        });
        Ok(())
    }
}

#[async_trait]
impl Parts for Resumable {
    async fn put_part(&self, number: u32, data: Bytes) -> Result<String> {
        let sent = self.put_in_turn(number, data).await;
        if sent.is_err() {
            self.progress.send_modify(|p| p.failed = true);
        }
        sent.map(|()| number.to_string())
    }

    /// Finishes the object, unless its last part did already.
    async fn complete(&self, _parts: Vec<(u32, String)>) -> Result<PutResult> {
        let progress = self.progress.borrow().clone();
        if let Some(done) = progress.finished {
            return Ok(done);
        }
        match self.send_chunk(progress.offset, Bytes::new(), Some(progress.offset)).await? {
            (_, Some(done)) => Ok(done),
            (_, None) => Err(Error::Service {
                status: 308,
                message: format!("GCS did not finish the resumable upload of {}", self.key),
            }),
        }
    }

    /// Cancels the session (GCS answers 499); its chunks are dropped with it. A failed cancel
    /// is not reported: the upload failed already, and an unfinished session expires by itself
    /// after a week without ever becoming an object.
    async fn abort(&self) {
        let call = Call::new("the resumable upload's cancel", "DELETE", &self.key, self.session.clone());
        let _ = self.api.send(&call).await;
    }
}
