//! What every HTTP store needs beside its own calls. Nothing here knows a store.

pub mod connector;
pub mod credentials;
pub mod header_value;
pub mod request;
pub mod response;
pub mod retry;
pub mod xml;
