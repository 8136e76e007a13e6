//! What every HTTP store needs beside its own calls. Nothing here knows a store.

pub mod credentials;
pub mod request;
pub mod retry;
