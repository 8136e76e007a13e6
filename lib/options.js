'use strict'
// Arguments checked at the JS boundary: a wrong type is an InvalidArgumentError that names
// the option (or an InvalidKeyError for keys), never a napi type error without a status.

const { InvalidArgumentError, InvalidKeyError } = require('./errors')

const invalid = (message) => new InvalidArgumentError(message, {})

/**
 * A key must be a string of well-formed UTF-16: a lone surrogate would be replaced on the way
 * to UTF-8, and two different keys would land on one object.
 */
function checkKey(key, name = 'key') {
  if (typeof key !== 'string') throw new InvalidKeyError(`${name} must be a string`, { key: String(key) })
  if (!key.isWellFormed()) {
    throw new InvalidKeyError(`${name} is not well-formed Unicode (it holds a lone surrogate)`, { key: key.toWellFormed() })
  }
  return key
}

function optionalString(value, name) {
  if (value == null) return undefined
  if (typeof value !== 'string') throw invalid(`${name} must be a string, not ${typeof value}`)
  if (!value.isWellFormed()) throw invalid(`${name} is not well-formed Unicode (it holds a lone surrogate)`)
  return value
}

function optionalBoolean(value, name) {
  if (value == null) return undefined
  if (typeof value !== 'boolean') throw invalid(`${name} must be true or false, not ${typeof value}`)
  return value
}

/** A non-negative safe integer (a byte count or offset). */
function optionalCount(value, name, { min = 0 } = {}) {
  if (value == null) return undefined
  if (!Number.isSafeInteger(value) || value < min) {
    // A string is quoted ('5' is not 5) and a number past 2^53 named as such (it prints as an integer).
    const given = typeof value === 'string' ? JSON.stringify(value) : typeof value === 'number' && Math.abs(value) > Number.MAX_SAFE_INTEGER ? `${value} (past 2^53, not exact)` : String(value)
    throw invalid(`${name} must be an integer of at least ${min}, not ${given}`)
  }
  return value
}

function optionalStrings(value, name) {
  if (value == null) return undefined
  if (!Array.isArray(value)) throw invalid(`${name} must be an array of strings`)
  return value.map((item, i) => {
    if (typeof item !== 'string') throw invalid(`${name}[${i}] must be a string`)
    return optionalString(item, `${name}[${i}]`)
  })
}

function optionalMetadata(value) {
  if (value == null) return undefined
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid('metadata must be an object of strings')
  const metadata = {}
  for (const [name, item] of Object.entries(value)) {
    if (!name.isWellFormed()) throw invalid('metadata names must be well-formed Unicode')
    if (typeof item !== 'string') throw invalid(`metadata "${name}" must be a string, not ${typeof item}`)
    metadata[name] = optionalString(item, `metadata "${name}"`)
  }
  return metadata
}

function optionalFunction(value, name) {
  if (value == null) return undefined
  if (typeof value !== 'function') throw invalid(`${name} must be a function`)
  return value
}

function optionalSignal(value) {
  if (value == null) return undefined
  if (typeof value.aborted !== 'boolean' || typeof value.addEventListener !== 'function') {
    throw invalid('signal must be an AbortSignal')
  }
  return value
}

/** What the native writer takes from upload parameters. */
function uploadSettings(params) {
  return {
    contentType: optionalString(params.contentType, 'contentType'),
    metadata: optionalMetadata(params.metadata),
    ifNotExists: optionalBoolean(params.ifNotExists, 'ifNotExists'),
    ifMatch: optionalString(params.ifMatch, 'ifMatch'),
    contentLength: optionalCount(params.contentLength, 'contentLength'),
    maxBytes: optionalCount(params.maxBytes, 'maxBytes'),
    allowedContentTypes: optionalStrings(params.allowedContentTypes, 'allowedContentTypes'),
    quota: quota(params.quota),
  }
}

/** `{ prefix, maxBytes }`: the most the objects under `prefix` may take, the upload included. */
function quota(value) {
  if (value == null) return undefined
  if (typeof value !== 'object') throw invalid('quota must be { prefix, maxBytes }')
  const prefix = optionalString(value.prefix, 'quota.prefix')
  const maxBytes = optionalCount(value.maxBytes, 'quota.maxBytes')
  if (prefix === undefined || maxBytes === undefined) throw invalid('quota must be { prefix, maxBytes }')
  return { prefix, maxBytes }
}

/** A resumable upload's id: a string (whether it names an upload is the store's to say). */
function uploadId(value) {
  if (typeof value !== 'string') throw invalid(`an upload id must be a string, not ${value === null ? 'null' : typeof value}`)
  return value
}

/** `{ algorithm, digest }` with the digest as bytes or base64 (as tus sends it); or none. */
function checksum(value) {
  if (value == null) return {}
  if (typeof value !== 'object') throw invalid('checksum must be { algorithm, digest }')
  const algorithm = optionalString(value.algorithm, 'checksum.algorithm')
  const digest = typeof value.digest === 'string' ? Buffer.from(value.digest, 'base64') : value.digest
  if (algorithm === undefined || !(digest instanceof Uint8Array)) {
    throw invalid('checksum must be { algorithm: "sha1" | "sha256" | "md5", digest: Buffer or base64 string }')
  }
  return { algorithm, digest: Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength) }
}

function range(value) {
  if (value == null) return undefined
  if (typeof value !== 'object') throw invalid('range must be { start, end? } with integer offsets (end inclusive)')
  const start = optionalCount(value.start, 'range.start')
  if (start === undefined) throw invalid('range.start must be an integer of at least 0')
  return { start, end: optionalCount(value.end, 'range.end') }
}

function signSettings(options, defaultExpiresIn) {
  if (options == null || typeof options !== 'object') throw invalid('getSignedUrl options must be an object')
  const method = optionalString(options.method, 'method') ?? 'GET'
  if (method.toUpperCase() !== 'GET' && method.toUpperCase() !== 'PUT') throw invalid(`method must be GET or PUT, not ${method}`)
  return {
    method: method.toUpperCase(),
    expiresIn: optionalCount(options.expiresIn, 'expiresIn', { min: 1 }) ?? defaultExpiresIn,
    contentType: optionalString(options.contentType, 'contentType'),
    responseContentType: optionalString(options.responseContentType, 'responseContentType'),
    responseContentDisposition: optionalString(options.responseContentDisposition, 'responseContentDisposition'),
    maxBytes: optionalCount(options.maxBytes, 'maxBytes'),
    allowedContentTypes: optionalStrings(options.allowedContentTypes, 'allowedContentTypes'),
  }
}

function listSettings(options) {
  if (options == null || typeof options !== 'object') throw invalid('list options must be an object')
  const prefix = options.prefix == null ? '' : options.prefix
  if (typeof prefix !== 'string') throw new InvalidKeyError('prefix must be a string', { key: String(prefix) })
  return {
    prefix: checkKey(prefix, 'prefix'),
    delimiter: optionalString(options.delimiter, 'delimiter'),
    cursor: optionalString(options.cursor, 'cursor'),
    limit: optionalCount(options.limit, 'limit', { min: 1 }),
  }
}

/**
 * What `downloadArchive` reads: `{ keys }` (each checked now, and copied, so that changing the
 * array later changes nothing) or `{ prefix }`, and how.
 */
function archiveSettings(source, options) {
  if (source == null || typeof source !== 'object' || ('keys' in source) === ('prefix' in source)) {
    throw invalid('downloadArchive takes { keys: [...] } or { prefix }')
  }
  if (options == null || typeof options !== 'object') throw invalid('downloadArchive options must be an object')
  const settings = {
    compress: optionalBoolean(options.compress, 'compress') ?? false,
    fullKeys: optionalBoolean(options.fullKeys, 'fullKeys') ?? false,
  }
  // A prefix left undefined (a missing query parameter) must not become '', the whole store.
  if ('prefix' in source) return { ...settings, prefix: checkKey(source.prefix, 'prefix') }
  if (!Array.isArray(source.keys)) throw invalid('keys must be an array of keys')
  return { ...settings, keys: source.keys.map((key) => checkKey(key)) }
}

/** What `sendDownload` takes besides the request: the download's name, the URL's life, whether to redirect. */
function sendDownloadSettings(options) {
  if (options == null || typeof options !== 'object') throw invalid('sendDownload options must be an object')
  return {
    filename: optionalString(options.filename, 'filename'),
    expiresIn: optionalCount(options.expiresIn, 'expiresIn', { min: 1 }),
    redirect: optionalBoolean(options.redirect, 'redirect') ?? true,
  }
}

/** `{ all: true }` is how a bulk delete is told that the empty prefix means the whole store. */
function bulkScope(options) {
  if (options == null) return false
  if (typeof options !== 'object') throw invalid('options must be an object such as { all: true }')
  return optionalBoolean(options.all, 'all') ?? false
}

module.exports = {
  checkKey,
  uploadId,
  checksum,
  optionalCount,
  uploadSettings,
  range,
  signSettings,
  listSettings,
  bulkScope,
  archiveSettings,
  sendDownloadSettings,
  optionalFunction,
  optionalSignal,
}
