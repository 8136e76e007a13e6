//! One module per store; each implements `core::backend::Backend` and nothing else.

pub mod local;
pub mod memory;
pub mod s3;

/// The same checks against every store, through the `Storage` front.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use futures::stream::{self, StreamExt};

    use crate::backends::{local::LocalBackend, memory::MemoryBackend};
    use crate::core::backend::{Backend, ByteRange, GetOptions, ListOptions, PutOptions};
    use crate::core::body::Body;
    use crate::core::error::Error;
    use crate::core::signing::UrlSigner;
    use crate::core::storage::{Storage, UploadOptions};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    async fn stores(dir: &tempfile::TempDir) -> Vec<(&'static str, Storage)> {
        let local = |sub: &str, durable: bool| {
            let root = dir.path().join(sub);
            async move {
                let backend = LocalBackend::open(root, "http://localhost".into(), Some(SECRET.to_vec()), durable).await;
                Arc::new(backend.unwrap()) as Arc<dyn Backend>
            }
        };
        let memory: Arc<dyn Backend> =
            Arc::new(MemoryBackend::new(UrlSigner::new(SECRET.to_vec(), "http://localhost").unwrap()));
        vec![
            ("local", Storage::new(local("durable", true).await)),
            ("local without fsync", Storage::new(local("fast", false).await)),
            ("memory", Storage::new(memory)),
        ]
    }

    #[tokio::test]
    async fn a_plain_overwrite_drops_the_old_content_type_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        for (name, storage) in stores(&dir).await {
            let mut options = typed("text/plain");
            options.put.metadata.insert("owner".into(), "me".into());
            storage.put("k", Body::bytes(Bytes::from_static(b"typed")), options).await.unwrap();
            let put = storage.put("k", Body::bytes(Bytes::from_static(b"plain")), Default::default()).await.unwrap();
            let meta = storage.head("k").await.unwrap();
            assert_eq!((meta.content_type.as_str(), meta.etag), ("application/octet-stream", put.etag), "{name}");
            assert!(meta.metadata.is_empty(), "{name}");
        }
    }

    fn typed(content_type: &str) -> UploadOptions {
        UploadOptions {
            put: PutOptions { content_type: Some(content_type.into()), ..Default::default() },
            ..Default::default()
        }
    }

    fn chunks(parts: Vec<Result<Bytes, Error>>) -> Body {
        Body::stream(stream::iter(parts).boxed(), None)
    }

    #[tokio::test]
    async fn round_trip_with_metadata_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        for (name, storage) in stores(&dir).await {
            let mut options = typed("text/plain");
            options.put.metadata.insert("owner".into(), "me".into());
            let put = storage.put("a/b.txt", Body::bytes(Bytes::from_static(b"hello world")), options).await.unwrap();
            let meta = storage.head("a/b.txt").await.unwrap();
            assert_eq!((meta.size, meta.content_type.as_str(), meta.etag), (11, "text/plain", put.etag), "{name}");
            assert_eq!(meta.metadata.get("owner").map(String::as_str), Some("me"), "{name}");
            let range = GetOptions { range: Some(ByteRange { start: 6, end: None }) };
            assert_eq!(storage.read("a/b.txt", range).await.unwrap(), "world", "{name}");
            assert!(storage.exists("a/b.txt").await.unwrap());
            storage.delete("a/b.txt").await.unwrap();
            storage.delete("a/b.txt").await.unwrap();
            assert!(matches!(storage.head("a/b.txt").await, Err(Error::NotFound { .. })), "{name}");
        }
    }

    #[tokio::test]
    async fn a_failed_body_keeps_the_previous_object() {
        let dir = tempfile::tempdir().unwrap();
        for (name, storage) in stores(&dir).await {
            storage.put("k", Body::bytes(Bytes::from_static(b"old")), typed("text/plain")).await.unwrap();
            let body = chunks(vec![Ok(Bytes::from_static(b"new")), Err(Error::Aborted("client left".into()))]);
            assert!(matches!(storage.put("k", body, typed("x/y")).await, Err(Error::Aborted(_))), "{name}");
            assert_eq!(storage.read("k", GetOptions::default()).await.unwrap(), "old", "{name}");
            assert_eq!(storage.head("k").await.unwrap().content_type, "text/plain", "{name}");
        }
        for root in ["durable", "fast"] {
            assert_eq!(std::fs::read_dir(dir.path().join(root).join(".rstorage/tmp")).unwrap().count(), 0);
        }
    }

    #[tokio::test]
    async fn if_not_exists_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        for (name, storage) in stores(&dir).await {
            let mut options = typed("text/plain");
            options.put.if_not_exists = true;
            storage.put("once", Body::bytes(Bytes::from_static(b"1")), options.clone()).await.unwrap();
            let second = storage.put("once", Body::bytes(Bytes::from_static(b"2")), options).await;
            assert!(matches!(second, Err(Error::AlreadyExists { .. })), "{name}");
            assert_eq!(storage.read("once", GetOptions::default()).await.unwrap(), "1", "{name}");
        }
    }

    #[tokio::test]
    async fn concurrent_writers_leave_one_whole_object() {
        let dir = tempfile::tempdir().unwrap();
        for (name, storage) in stores(&dir).await {
            let writers = (0..8u8).map(|i| {
                let storage = storage.clone();
                tokio::spawn(async move {
                    let parts = (0..4).map(|_| Ok(Bytes::from(vec![i; 256 * 1024]))).collect();
                    storage.put("contended", chunks(parts), typed(&format!("x/{i}"))).await
                })
            });
            for writer in futures::future::join_all(writers).await {
                writer.unwrap().unwrap();
            }
            let data = storage.read("contended", GetOptions::default()).await.unwrap();
            assert_eq!(data.len(), 1024 * 1024, "{name}");
            assert!(data.iter().all(|b| *b == data[0]), "{name}: torn object");
            assert_eq!(storage.head("contended").await.unwrap().content_type, format!("x/{}", data[0]), "{name}");
        }
    }

    #[tokio::test]
    async fn listing_renaming_and_bulk_deletes() {
        let dir = tempfile::tempdir().unwrap();
        for (name, storage) in stores(&dir).await {
            for key in ["p/a", "p/b/c", "p/b/d", "q"] {
                storage.put(key, Body::bytes(Bytes::from_static(b"x")), typed("x/y")).await.unwrap();
            }
            let page = storage
                .list(ListOptions { prefix: "p/".into(), delimiter: Some("/".into()), ..Default::default() })
                .await
                .unwrap();
            assert_eq!(page.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["p/a"], "{name}");
            assert_eq!(page.prefixes, ["p/b/"], "{name}");
            storage.rename("p/a", "r/a").await.unwrap();
            assert!(!storage.exists("p/a").await.unwrap(), "{name}");
            assert_eq!(storage.head("r/a").await.unwrap().content_type, "x/y", "{name}");
            assert_eq!(storage.delete_prefix("p/", false).await.unwrap(), 2, "{name}");
            assert_eq!(storage.delete_many(&["q".into(), "r/a".into(), "never".into()]).await.unwrap(), 3, "{name}");
            assert!(storage.list(ListOptions::default()).await.unwrap().objects.is_empty(), "{name}");
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn local_keys_cannot_leave_the_root_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let (_, storage) = stores(&dir).await.remove(0);
        std::os::unix::fs::symlink(outside.path(), dir.path().join("durable/link")).unwrap();
        assert!(storage.read("link/secret", GetOptions::default()).await.is_err());
        assert!(storage.put("link/planted", Body::bytes(Bytes::from_static(b"x")), typed("x/y")).await.is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    }
}
