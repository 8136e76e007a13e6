//! How native work reaches JS. Every promise runs a future that owns what it touches: a
//! future borrowing `&self` would outlive the JS object (and so the Rust struct) when a
//! worker thread is torn down mid-call. A panic anywhere below becomes a typed
//! `StorageError`, never a crash or an untyped rejection.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

use futures::FutureExt;
use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::Env;

use crate::binding::error::{to_js, JsResult};
use crate::core::error::{Error, Result};

/// Runs `work` on the runtime and settles a promise with its outcome.
pub fn promise<'env, T>(
    env: &'env Env,
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> napi::Result<PromiseRaw<'env, T>>
where
    T: ToNapiValue + Send + 'static,
{
    promise_js(env, async move { work.await.js() })
}

/// `promise` for work whose errors are already JS errors.
pub fn promise_js<'env, T>(
    env: &'env Env,
    work: impl Future<Output = napi::Result<T>> + Send + 'static,
) -> napi::Result<PromiseRaw<'env, T>>
where
    T: ToNapiValue + Send + 'static,
{
    env.spawn_future(
        async move { AssertUnwindSafe(work).catch_unwind().await.unwrap_or_else(|p| Err(to_js(&internal(p)))) },
    )
}

/// `work`, with a panic turned into `Error::Internal`.
pub async fn contained<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    AssertUnwindSafe(work).catch_unwind().await.unwrap_or_else(|panic| Err(internal(panic)))
}

/// A synchronous call, with a panic turned into `Error::Internal`.
pub fn contained_sync<T>(work: impl FnOnce() -> Result<T>) -> napi::Result<T> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| Err(internal(panic))).js()
}

fn internal(panic: Box<dyn Any + Send>) -> Error {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    Error::Internal(message)
}
