//! The Node binding: thin classes over the core, no storage logic of its own.

// napi registers these exports when the addon loads; unit tests never load it.
#![cfg_attr(test, allow(dead_code))]

mod chunk;
mod convert;
mod credentials;
mod error;
mod runtime;
mod storage;
mod streams;
mod task;
