//! One module per store; each implements `core::backend::Backend` and nothing else.

pub mod local;
pub mod memory;
