//! Native core of `@raptscallions/storage`: a store-independent core, the stores, and the
//! thin Node binding over both.

pub mod backends;
mod binding;
pub mod core;
