//! The tokio runtime behind every async call.

use napi::bindgen_prelude::create_custom_tokio_runtime;

/// Half the cores (at least one) instead of tokio's one per core: the stores mostly wait on
/// I/O, Node's own thread needs a core, and every idle worker costs cross-thread wake-ups on
/// each request. On 2 cores one worker cut client CPU by 15–25% for downloads and small
/// objects. Blocking file work runs on tokio's separate blocking pool either way.
#[napi_derive::module_init]
fn init() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads((cores / 2).max(1)).enable_all().build();
    // Should that fail, napi's own default runtime still serves.
    if let Ok(runtime) = runtime {
        create_custom_tokio_runtime(runtime);
    }
}
