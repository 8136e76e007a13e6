//! Errors cross to JS as a marked JSON message ({ code, message, details }); the JS layer
//! (lib/errors.js) turns each code into its error class. napi-rs cannot construct custom
//! classes from async code, so the class is chosen on the JS side.

use serde_json::json;

use crate::core::error::Error;

/// Must match `NATIVE_ERROR_MARKER` in lib/errors.js.
const MARKER: &str = "@raptscallions/storage:";

pub fn to_js(error: &Error) -> napi::Error {
    let payload = json!({ "code": error.code(), "message": error.to_string(), "details": error.details() });
    napi::Error::new(napi::Status::GenericFailure, format!("{MARKER}{payload}"))
}

/// `?` for core results inside napi functions.
pub trait JsResult<T> {
    fn js(self) -> napi::Result<T>;
}

impl<T> JsResult<T> for Result<T, Error> {
    fn js(self) -> napi::Result<T> {
        self.map_err(|e| to_js(&e))
    }
}
