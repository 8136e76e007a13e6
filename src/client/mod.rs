//! What every HTTP store needs beside its own calls. Nothing here knows a store.

pub mod request;
pub mod retry;
