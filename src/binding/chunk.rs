//! Bytes handed to JS without a copy. V8 does not see memory behind external buffers, so
//! garbage chunks would pile up between collections; each chunk reports its size to V8 when
//! it is created and again when it is collected.

use std::ffi::c_void;
use std::ptr;

use napi::bindgen_prelude::{Buffer, ToNapiValue, TypeName, ValueType};
use napi::sys;

pub struct Chunk(pub Vec<u8>);

impl TypeName for Chunk {
    fn type_name() -> &'static str {
        "Buffer"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for Chunk {
    unsafe fn to_napi_value(env: sys::napi_env, chunk: Self) -> napi::Result<sys::napi_value> {
        let mut bytes = chunk.0;
        let len = bytes.len();
        if len == 0 {
            return unsafe { Buffer::to_napi_value(env, Buffer::from(bytes)) };
        }
        let data = bytes.as_mut_ptr();
        let owner = Box::into_raw(Box::new(bytes));
        let mut value = ptr::null_mut();
        let status =
            unsafe { sys::napi_create_external_buffer(env, len, data.cast(), Some(release), owner.cast(), &mut value) };
        if status != sys::Status::napi_ok {
            // Runtimes without external buffers (Electron's memory cage) get a copy.
            let bytes = unsafe { Box::from_raw(owner) };
            return unsafe { Buffer::to_napi_value(env, Buffer::from(bytes.as_slice())) };
        }
        let mut total = 0;
        unsafe { sys::napi_adjust_external_memory(env, len as i64, &mut total) };
        Ok(value)
    }
}

unsafe extern "C" fn release(env: sys::napi_env, _data: *mut c_void, owner: *mut c_void) {
    let bytes = unsafe { Box::from_raw(owner.cast::<Vec<u8>>()) };
    let mut total = 0;
    unsafe { sys::napi_adjust_external_memory(env, -(bytes.len() as i64), &mut total) };
}
