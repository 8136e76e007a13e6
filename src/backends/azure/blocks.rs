//! Azure's side of the core multipart driver: each part is a staged block (Put Block), and
//! the block list commits them as the blob (Put Block List). Blocks never committed are not
//! a blob: Azure discards them after a week, and there is no call to discard them sooner.

use std::sync::Arc;

use async_trait::async_trait;
use aws_smithy_types::base64;
use bytes::Bytes;

use super::client::{Call, Container};
use super::{blob_headers, created};
use crate::client::xml;
use crate::core::backend::{PutOptions, PutResult};
use crate::core::error::Result;
use crate::core::key::Key;
use crate::core::multipart::Parts;

pub struct Blocks {
    container: Arc<Container>,
    key: Key,
    options: PutOptions,
    /// Names this upload's blocks apart from any other upload's to the same blob.
    upload: String,
}

impl Blocks {
    pub fn new(container: Arc<Container>, key: &Key, options: &PutOptions) -> Blocks {
        Blocks {
            container,
            key: key.clone(),
            options: options.clone(),
            upload: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// Every id of one blob must have the same length: a fixed-width number after the upload's.
    fn block_id(&self, number: u32) -> String {
        base64::encode(format!("{}-{number:06}", self.upload))
    }
}

#[async_trait]
impl Parts for Blocks {
    async fn put_part(&self, number: u32, data: Bytes) -> Result<String> {
        let id = self.block_id(number);
        let query = vec![("comp".into(), "block".into()), ("blockid".into(), id.clone())];
        let call = Call { query, body: data, ..Call::blob("PutBlock", "PUT", &self.key) };
        self.container.send_ok(&call).await?;
        Ok(id)
    }

    async fn complete(&self, parts: Vec<(u32, String)>) -> Result<PutResult> {
        let mut list = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for (_, id) in &parts {
            list.push_str(&format!("<Latest>{}</Latest>", xml::escape(id)));
        }
        list.push_str("</BlockList>");
        let mut headers = blob_headers(&self.options);
        headers.push(("content-type".into(), "application/xml".into()));
        let call = Call {
            query: vec![("comp".into(), "blocklist".into())],
            headers,
            body: Bytes::from(list),
            ..Call::blob("PutBlockList", "PUT", &self.key)
        };
        let answer = self.container.send(&call).await?;
        if answer.response.status().is_success() {
            return Ok(created(&answer.response));
        }
        let after_doubt = answer.after_doubt;
        let refusal = self.options.refusal(&self.key, self.container.failure(&call, answer.response).await);
        // A commit carried out by an attempt whose answer was lost: the blob is made of our blocks.
        if after_doubt && self.options.if_not_exists && self.committed_ours(&parts).await {
            return self.container.stat(&self.key).await.map(|meta| PutResult { etag: meta.etag });
        }
        Err(refusal)
    }

    async fn abort(&self) {}
}

impl Blocks {
    async fn committed_ours(&self, parts: &[(u32, String)]) -> bool {
        let query = vec![("comp".into(), "blocklist".into()), ("blocklisttype".into(), "committed".into())];
        let Ok(answer) = self.container.send_ok(&Call { query, ..Call::blob("GetBlockList", "GET", &self.key) }).await
        else {
            return false;
        };
        let body = self.container.read_capped(answer.response).await;
        let text = String::from_utf8_lossy(&body);
        let committed: Vec<String> =
            xml::elements(&text, "Block").filter_map(|block| xml::field(block, "Name")).collect();
        committed.len() == parts.len() && committed.iter().zip(parts).all(|(name, (_, id))| name == id)
    }
}
