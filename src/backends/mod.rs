//! One module per store; each implements `core::backend::Backend` and nothing else.

pub mod azure;
pub mod gcs;
pub mod local;
pub mod memory;
pub mod s3;

/// What the JS conformance suite cannot reach: many random bodies, cut anywhere, through every
/// guard, on the stores that need no server. The behaviours it checks one by one run once,
/// against every store, in `__test__/conformance.test.mjs`.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    use crate::backends::{local::LocalBackend, memory::MemoryBackend};
    use crate::core::backend::{Backend, GetOptions, PutOptions};
    use crate::core::body::Body;
    use crate::core::signing::UrlSigner;
    use crate::core::storage::{Storage, UploadOptions};
    use crate::core::testing::{cut, expected_failures, guarded_body, strict_body};

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

    fn typed(content_type: &str) -> PutOptions {
        PutOptions { content_type: Some(content_type.into()), ..Default::default() }
    }

    /// Over a previous object, a guarded upload stores the new bytes and type whole, or fails
    /// with one of the errors that apply and leaves the previous object as it was; and no temp
    /// file outlives the call.
    #[test]
    fn any_body_through_any_guard_is_stored_whole_or_not_at_all() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let stores = runtime.block_on(stores(&dir));
        let mut runner = TestRunner::new(Config::with_cases(64));
        let outcome = runner.run(&guarded_body(), |((data, points), (guard, states_length))| {
            runtime.block_on(async {
                for (name, storage) in &stores {
                    let old = UploadOptions { put: typed("x/old"), ..Default::default() };
                    storage.put("k", Body::bytes(Bytes::from_static(b"old")), old).await.unwrap();
                    let expected = expected_failures(&data, &guard);
                    let options = UploadOptions {
                        put: typed(guard.content_type.as_deref().unwrap_or("")),
                        content_length: guard.expected_length,
                        max_bytes: guard.max_bytes,
                        allowed_content_types: guard.allowed_content_types.clone(),
                        quota: None,
                    };
                    let length = states_length.then_some(data.len() as u64);
                    let put = storage.put("k", strict_body(cut(&data, points.clone()), length), options).await;
                    let stored = storage.get("k", GetOptions::default()).await.unwrap();
                    let content_type = storage.stat("k").await.unwrap().content_type;
                    let fail = |why: String| Err(TestCaseError::fail(format!("{name}: {why}")));
                    match put {
                        Ok(_) if !expected.is_empty() => return fail(format!("stored despite {expected:?}")),
                        Ok(_) if stored != data => return fail("stored other bytes".into()),
                        Err(e) if !expected.contains(&e.code()) => return fail(format!("{e}, expected {expected:?}")),
                        Err(_) if stored != "old" || content_type != "x/old" => {
                            return fail("a failed upload changed the object".into())
                        }
                        _ => {}
                    }
                }
                Ok(())
            })
        });
        outcome.unwrap();
        for root in ["durable", "fast"] {
            assert_eq!(std::fs::read_dir(dir.path().join(root).join(".rstorage/tmp")).unwrap().count(), 0, "{root}");
        }
    }
}
