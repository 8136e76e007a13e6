//! Native core of `@raptscallions/storage`: a store-independent core, the plumbing every HTTP
//! store shares, the stores, and the thin Node binding over all of them.

pub mod backends;
mod binding;
pub mod client;
pub mod core;
