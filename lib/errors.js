'use strict'
// Error classes. Every class extends AppError: the host app's own (from @raptscallions/core)
// when it resolves, so `instanceof AppError` holds with the app's class; ours otherwise.

const APP_ERROR_HINT = Symbol.for('@raptscallions/storage.AppError')

// Must match MARKER in src/binding/error.rs.
const NATIVE_ERROR_MARKER = '@raptscallions/storage:'

class OwnAppError extends Error {
  constructor(message, code, statusCode = 500, details) {
    super(message)
    this.name = 'AppError'
    this.code = code
    this.statusCode = statusCode
    this.details = details
    Object.setPrototypeOf(this, new.target.prototype)
  }

  toJSON() {
    return { message: this.message, code: this.code, statusCode: this.statusCode, details: this.details }
  }
}

function resolveAppError() {
  // The ESM entry imports an ESM-only @raptscallions/core and leaves its AppError here.
  if (typeof globalThis[APP_ERROR_HINT] === 'function') return globalThis[APP_ERROR_HINT]
  try {
    const core = require('@raptscallions/core')
    if (typeof core.AppError === 'function') return core.AppError
  } catch {
    // No @raptscallions/core in the host app: use our own.
  }
  return OwnAppError
}

const AppError = resolveAppError()

const StorageErrorCode = Object.freeze({
  STORAGE_ERROR: 'STORAGE_ERROR',
  QUOTA_EXCEEDED: 'QUOTA_EXCEEDED',
  FILE_NOT_FOUND: 'FILE_NOT_FOUND',
  INVALID_FILE_TYPE: 'INVALID_FILE_TYPE',
  BACKEND_NOT_REGISTERED: 'BACKEND_NOT_REGISTERED',
  CONFIGURATION_ERROR: 'CONFIGURATION_ERROR',
  INVALID_KEY: 'INVALID_KEY',
  FILE_ALREADY_EXISTS: 'FILE_ALREADY_EXISTS',
  PRECONDITION_FAILED: 'PRECONDITION_FAILED',
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  STORAGE_UNAVAILABLE: 'STORAGE_UNAVAILABLE',
  STORAGE_TIMEOUT: 'STORAGE_TIMEOUT',
  CONTENT_LENGTH_MISMATCH: 'CONTENT_LENGTH_MISMATCH',
  INVALID_RANGE: 'INVALID_RANGE',
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  ABORTED: 'ABORTED',
})

class StorageError extends AppError {
  // `code` and `statusCode` are for the subclasses below; callers pass (message, details).
  constructor(message, details, code = StorageErrorCode.STORAGE_ERROR, statusCode = 500) {
    super(message, code, statusCode, details)
    this.name = new.target.name
    Object.setPrototypeOf(this, new.target.prototype)
  }
}

class QuotaExceededError extends AppError {
  constructor(message = 'Storage quota exceeded', details) {
    super(message, StorageErrorCode.QUOTA_EXCEEDED, 403, details)
    this.name = 'QuotaExceededError'
    Object.setPrototypeOf(this, new.target.prototype)
  }
}

class FileNotFoundError extends AppError {
  constructor(key) {
    super(`File not found in storage: ${key}`, StorageErrorCode.FILE_NOT_FOUND, 404, { key })
    this.name = 'FileNotFoundError'
    Object.setPrototypeOf(this, new.target.prototype)
  }
}

class InvalidFileTypeError extends AppError {
  constructor(providedType, allowedTypes) {
    const message = allowedTypes
      ? `Invalid file type: ${providedType}. Allowed types: ${allowedTypes.join(', ')}`
      : `Invalid file type: ${providedType}`
    super(message, StorageErrorCode.INVALID_FILE_TYPE, 400, { providedType, allowedTypes })
    this.name = 'InvalidFileTypeError'
    Object.setPrototypeOf(this, new.target.prototype)
  }
}

class BackendNotRegisteredError extends AppError {
  constructor(identifier, availableBackends) {
    const message =
      availableBackends.length > 0
        ? `Storage backend not registered: "${identifier}". Available backends: ${availableBackends.join(', ')}`
        : `Storage backend not registered: "${identifier}". No backends are currently registered.`
    super(message, StorageErrorCode.BACKEND_NOT_REGISTERED, 500, {
      requestedBackend: identifier,
      availableBackends,
    })
    this.name = 'BackendNotRegisteredError'
    Object.setPrototypeOf(this, new.target.prototype)
  }
}

class ConfigurationError extends AppError {
  constructor(message, details) {
    super(message, StorageErrorCode.CONFIGURATION_ERROR, 500, details)
    this.name = 'ConfigurationError'
    Object.setPrototypeOf(this, new.target.prototype)
  }
}

// Part B: finer failures, all StorageErrors so one `instanceof StorageError` catches them.
function storageErrorClass(name, code, statusCode, extra = {}) {
  const cls = {
    [name]: class extends StorageError {
      constructor(message, details) {
        super(message, details, code, statusCode)
        Object.assign(this, extra)
      }
    },
  }[name]
  return cls
}

const InvalidKeyError = storageErrorClass('InvalidKeyError', StorageErrorCode.INVALID_KEY, 400)
const PreconditionFailedError = storageErrorClass('PreconditionFailedError', StorageErrorCode.PRECONDITION_FAILED, 412)
const PermissionDeniedError = storageErrorClass('PermissionDeniedError', StorageErrorCode.PERMISSION_DENIED, 403)
const StorageUnavailableError = storageErrorClass('StorageUnavailableError', StorageErrorCode.STORAGE_UNAVAILABLE, 503, {
  retryable: true,
})
const ContentLengthMismatchError = storageErrorClass(
  'ContentLengthMismatchError',
  StorageErrorCode.CONTENT_LENGTH_MISMATCH,
  400,
)
const InvalidRangeError = storageErrorClass('InvalidRangeError', StorageErrorCode.INVALID_RANGE, 416)
const InvalidArgumentError = storageErrorClass('InvalidArgumentError', StorageErrorCode.INVALID_ARGUMENT, 400)
// Named like the platform's abort errors, so `err.name === "AbortError"` checks keep working.
const AbortError = storageErrorClass('AbortError', StorageErrorCode.ABORTED, 499)

class StorageTimeoutError extends StorageUnavailableError {
  constructor(message, details) {
    super(message, details)
    this.code = StorageErrorCode.STORAGE_TIMEOUT
  }
}

class FileAlreadyExistsError extends StorageError {
  constructor(key) {
    super(`An object already exists at ${key}`, { key }, StorageErrorCode.FILE_ALREADY_EXISTS, 409)
  }
}

const fromCode = {
  [StorageErrorCode.FILE_NOT_FOUND]: (m, d) => new FileNotFoundError(d.key),
  [StorageErrorCode.FILE_ALREADY_EXISTS]: (m, d) => new FileAlreadyExistsError(d.key),
  [StorageErrorCode.QUOTA_EXCEEDED]: (m, d) => new QuotaExceededError(m, d),
  [StorageErrorCode.INVALID_FILE_TYPE]: (m, d) =>
    new InvalidFileTypeError(d.providedType, d.allowedTypes?.length ? d.allowedTypes : undefined),
  [StorageErrorCode.CONFIGURATION_ERROR]: (m, d) => new ConfigurationError(m, d),
  [StorageErrorCode.INVALID_KEY]: (m, d) => new InvalidKeyError(m, d),
  [StorageErrorCode.PRECONDITION_FAILED]: (m, d) => new PreconditionFailedError(m, d),
  [StorageErrorCode.PERMISSION_DENIED]: (m, d) => new PermissionDeniedError(m, d),
  [StorageErrorCode.STORAGE_UNAVAILABLE]: (m, d) => new StorageUnavailableError(m, d),
  [StorageErrorCode.STORAGE_TIMEOUT]: (m, d) => new StorageTimeoutError(m, d),
  [StorageErrorCode.CONTENT_LENGTH_MISMATCH]: (m, d) => new ContentLengthMismatchError(m, d),
  [StorageErrorCode.INVALID_RANGE]: (m, d) => new InvalidRangeError(m, d),
  [StorageErrorCode.INVALID_ARGUMENT]: (m, d) => new InvalidArgumentError(m, d),
  [StorageErrorCode.ABORTED]: (m, d) => new AbortError(m, d),
}

/** Turns an error rejected by the native addon into its class; other errors pass through. */
function fromNative(error) {
  const message = error?.message
  if (typeof message !== 'string' || !message.startsWith(NATIVE_ERROR_MARKER)) return error
  const { code, message: text, details } = JSON.parse(message.slice(NATIVE_ERROR_MARKER.length))
  const make = fromCode[code] ?? ((m, d) => new StorageError(m, d))
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

module.exports = {
  AppError,
  StorageErrorCode,
  StorageError,
  QuotaExceededError,
  FileNotFoundError,
  InvalidFileTypeError,
  BackendNotRegisteredError,
  ConfigurationError,
  InvalidKeyError,
  FileAlreadyExistsError,
  PreconditionFailedError,
  PermissionDeniedError,
  StorageUnavailableError,
  StorageTimeoutError,
  ContentLengthMismatchError,
  InvalidRangeError,
  InvalidArgumentError,
  AbortError,
  fromNative,
  callNative,
  callNativeSync,
  APP_ERROR_HINT,
}
