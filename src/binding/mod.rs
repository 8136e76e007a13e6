//! The Node binding: thin classes over the core, no storage logic of its own.

mod convert;
mod error;
mod storage;
mod streams;
