//! The store-independent core: keys, errors, bodies and guards, the backend trait, URL
//! signing, and the `Storage` front that applies them to any backend.

pub mod backend;
pub mod body;
pub mod budget;
pub mod error;
pub mod file;
pub mod key;
pub mod listing;
pub mod multipart;
pub mod resumable;
pub mod signing;
pub mod storage;
#[cfg(test)]
pub mod testing;
