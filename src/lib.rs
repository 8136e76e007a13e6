//! Native core of `@raptscallions/storage`: a store-independent core, the stores, and the
//! thin Node binding over both.

pub mod backends;
pub mod core;
mod binding;
