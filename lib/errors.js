'use strict'
// Error classes. Every class extends AppError: the host app's own (from @raptscallions/core)
// when it resolves, so `instanceof AppError` holds with the app's class; ours otherwise.

// The ESM entry (index.mjs) leaves an ESM-only core's AppError under this symbol.
const APP_ERROR_HINT = Symbol.for('@raptscallions/storage.AppError')

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
  KEY_CONFLICT: 'KEY_CONFLICT',
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  STORAGE_UNAVAILABLE: 'STORAGE_UNAVAILABLE',
  STORAGE_TIMEOUT: 'STORAGE_TIMEOUT',
  CONTENT_LENGTH_MISMATCH: 'CONTENT_LENGTH_MISMATCH',
  INVALID_RANGE: 'INVALID_RANGE',
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  ABORTED: 'ABORTED',
  UPLOAD_NOT_FOUND: 'UPLOAD_NOT_FOUND',
  UPLOAD_EXPIRED: 'UPLOAD_EXPIRED',
  UPLOAD_OFFSET_MISMATCH: 'UPLOAD_OFFSET_MISMATCH',
  UPLOAD_INCOMPLETE: 'UPLOAD_INCOMPLETE',
  CHECKSUM_MISMATCH: 'CHECKSUM_MISMATCH',
  FILE_TOO_LARGE: 'FILE_TOO_LARGE',
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
// The local store cannot hold a key and a folder of other keys under one name (S3 can).
const KeyConflictError = storageErrorClass('KeyConflictError', StorageErrorCode.KEY_CONFLICT, 409)
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
// 413: a body over a size limit (maxBytes, an upload's length, a multipart file cut off at its
// limit), refused rather than stored; details { maxBytes }.
const FileTooLargeError = storageErrorClass('FileTooLargeError', StorageErrorCode.FILE_TOO_LARGE, 413)

// Resumable uploads: statuses as tus names them.
const UploadNotFoundError = storageErrorClass('UploadNotFoundError', StorageErrorCode.UPLOAD_NOT_FOUND, 404)
const UploadExpiredError = storageErrorClass('UploadExpiredError', StorageErrorCode.UPLOAD_EXPIRED, 410)
const UploadOffsetMismatchError = storageErrorClass('UploadOffsetMismatchError', StorageErrorCode.UPLOAD_OFFSET_MISMATCH, 409)
const UploadIncompleteError = storageErrorClass('UploadIncompleteError', StorageErrorCode.UPLOAD_INCOMPLETE, 409)
const ChecksumMismatchError = storageErrorClass('ChecksumMismatchError', StorageErrorCode.CHECKSUM_MISMATCH, 460)

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
  KeyConflictError,
  PermissionDeniedError,
  StorageUnavailableError,
  StorageTimeoutError,
  ContentLengthMismatchError,
  InvalidRangeError,
  InvalidArgumentError,
  AbortError,
  UploadNotFoundError,
  UploadExpiredError,
  UploadOffsetMismatchError,
  UploadIncompleteError,
  ChecksumMismatchError,
  FileTooLargeError,
}
