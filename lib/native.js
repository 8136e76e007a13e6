'use strict'
// The seam between the JS layer and the native addon: a native rejection carries a marked
// JSON payload ({ code, message, details }) that becomes the error class for its code.

const e = require('./errors')

// Must match MARKER in src/binding/error.rs.
const NATIVE_ERROR_MARKER = '@raptscallions/storage:'

const C = e.StorageErrorCode
const errorForCode = {
  [C.FILE_NOT_FOUND]: (m, d) => new e.FileNotFoundError(d.key),
  [C.FILE_ALREADY_EXISTS]: (m, d) => new e.FileAlreadyExistsError(d.key),
  [C.QUOTA_EXCEEDED]: (m, d) => new e.QuotaExceededError(m, d),
  [C.FILE_TOO_LARGE]: (m, d) => new e.FileTooLargeError(m, d),
  [C.INVALID_FILE_TYPE]: (m, d) => new e.InvalidFileTypeError(d.providedType, d.allowedTypes?.length ? d.allowedTypes : undefined),
  [C.CONFIGURATION_ERROR]: (m, d) => new e.ConfigurationError(m, d),
  [C.INVALID_KEY]: (m, d) => new e.InvalidKeyError(m, d),
  [C.PRECONDITION_FAILED]: (m, d) => new e.PreconditionFailedError(m, d),
  [C.KEY_CONFLICT]: (m, d) => new e.KeyConflictError(m, d),
  [C.PERMISSION_DENIED]: (m, d) => new e.PermissionDeniedError(m, d),
  [C.STORAGE_UNAVAILABLE]: (m, d) => new e.StorageUnavailableError(m, d),
  [C.STORAGE_TIMEOUT]: (m, d) => new e.StorageTimeoutError(m, d),
  [C.CONTENT_LENGTH_MISMATCH]: (m, d) => new e.ContentLengthMismatchError(m, d),
  [C.INVALID_RANGE]: (m, d) => new e.InvalidRangeError(m, d),
  [C.INVALID_ARGUMENT]: (m, d) => new e.InvalidArgumentError(m, d),
  [C.ABORTED]: (m, d) => new e.AbortError(m, d),
  [C.UPLOAD_NOT_FOUND]: (m, d) => new e.UploadNotFoundError(m, d),
  [C.UPLOAD_EXPIRED]: (m, d) => new e.UploadExpiredError(m, d),
  [C.UPLOAD_OFFSET_MISMATCH]: (m, d) => new e.UploadOffsetMismatchError(m, d),
  [C.UPLOAD_INCOMPLETE]: (m, d) => new e.UploadIncompleteError(m, d),
  [C.CHECKSUM_MISMATCH]: (m, d) => new e.ChecksumMismatchError(m, d),
}

// napi's own codes for an argument of the wrong type, met before any of our code runs.
const WRONG_TYPE = new Set(['InvalidArg', 'ObjectExpected', 'StringExpected', 'NumberExpected', 'BooleanExpected', 'ArrayExpected', 'FunctionExpected', 'BigintExpected', 'DateExpected', 'ArrayBufferExpected'])
const RUST_TYPES = { String: 'a string', u32: 'a whole number', f64: 'a number', bool: 'true or false', Vec: 'an array' }

/** napi's message about an option of the wrong type, said as this package says it. */
function wrongType(error) {
  const found = /(?:JavaScript|napi) value `?(\w+)[^`]*?`? into rust type `(\w+)[^`]*` on \w+\.(\w+)/.exec(error.message)
  if (!found) return new e.InvalidArgumentError(`an option has the wrong type: ${error.message}`, {})
  const [, given, rust, field] = found
  const option = field.replace(/_(\w)/g, (_m, c) => c.toUpperCase())
  const wanted = RUST_TYPES[rust] ?? rust
  return new e.InvalidArgumentError(`${option} must be ${wanted}, not ${given.toLowerCase()}`, { option })
}

/** Turns an error rejected by the native addon into its class; other errors pass through. */
function fromNative(error) {
  const message = error?.message
  if (WRONG_TYPE.has(error?.code) && typeof message === 'string') return wrongType(error)
  if (typeof message !== 'string' || !message.startsWith(NATIVE_ERROR_MARKER)) return error
  const { code, message: text, details } = JSON.parse(message.slice(NATIVE_ERROR_MARKER.length))
  const make = errorForCode[code] ?? ((m, d) => new e.StorageError(m, d))
  return make(text, details ?? {})
}

/** Runs a native call (sync or async) and rethrows its errors as their classes. */
async function callNative(fn) {
  try {
    return await fn()
  } catch (error) {
    throw fromNative(error)
  }
}

function callNativeSync(fn) {
  try {
    return fn()
  } catch (error) {
    throw fromNative(error)
  }
}

module.exports = { fromNative, callNative, callNativeSync }
