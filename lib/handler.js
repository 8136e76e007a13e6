'use strict'
// Serves a backend's self-signed URLs (local, memory), as a Node `http` handler or as answers
// a framework sends (the Fastify plugin): it verifies the signature in native code (constant
// time), then serves GET/HEAD as `serve.js` does, and stores PUT bodies as they stream in,
// under the upload guards the URL was signed with.

const { kNative, kBaseUrl } = require('./backend')
const { InvalidArgumentError } = require('./errors')
const { callNativeSync } = require('./native')
const { create: contentDisposition } = require('content-disposition')
const { checkKey, sendDownloadSettings } = require('./options')
const { objectResponse, writeResponse } = require('./serve')

const JSON_TYPE = 'application/json; charset=utf-8'
/** What anonymous clients are told: the code, and a message that gives nothing of the inside away. */
const PUBLIC_MESSAGES = {
  FILE_NOT_FOUND: 'Not found',
  CONTENT_LENGTH_MISMATCH: 'The body does not match its Content-Length',
  INVALID_FILE_TYPE: 'This type of file is not accepted here',
  FILE_TOO_LARGE: 'The body is larger than this URL accepts',
  FILE_ALREADY_EXISTS: 'An object already exists here',
  INVALID_KEY: 'Not a valid object name',
  KEY_CONFLICT: 'This name conflicts with another object',
  ABORTED: 'The upload was aborted',
}

class HttpRefusal extends Error {
  constructor(status, code, message, headers = {}) {
    super(message)
    this.status = status
    this.code = code
    this.headers = headers
  }
}

const forbidden = (message) => new HttpRefusal(403, 'SIGNATURE_REJECTED', message)

/**
 * `createSignedUrlHandler(backend, { basePath? })` → `(req, res) => void`, for
 * `http.createServer(handler)` or mounting in Express. `basePath` defaults to the path of the
 * backend's `baseUrl`.
 */
function createSignedUrlHandler(backend, options) {
  const respond = signedUrlResponder(backend, options)
  return function signedUrlHandler(req, res) {
    respond(req)
      .then((response) => writeResponse(res, response))
      .catch((error) => writeResponse(res, errorResponse(error)))
  }
}

/**
 * `(req) => Promise<{ statusCode, headers, body? }>`: the answer to a signed request, which a
 * framework sends its own way (Fastify's reply). It never rejects: a refusal is an answer.
 */
function signedUrlResponder(backend, { basePath } = {}) {
  const store = backend?.[kNative]
  if (typeof store !== 'function') {
    throw new InvalidArgumentError('createSignedUrlHandler needs a backend built by this package (local or memory)', {})
  }
  const base = (basePath ?? new URL(backend[kBaseUrl]).pathname).replace(/\/+$/, '')
  return (req) => handle(backend, store, base, req).catch(errorResponse)
}

async function handle(backend, store, base, req) {
  const url = new URL(req.originalUrl ?? req.url, 'http://localhost')
  if (!url.pathname.startsWith(`${base}/`)) throw new HttpRefusal(404, 'NOT_FOUND', 'No signed URL here')
  let key
  try {
    key = url.pathname.slice(base.length + 1).split('/').map(decodeURIComponent).join('/')
  } catch {
    throw new HttpRefusal(400, 'BAD_REQUEST', 'The URL path is not valid percent-encoding')
  }
  const method = req.method === 'HEAD' ? 'GET' : req.method
  if (method !== 'GET' && method !== 'PUT') {
    throw new HttpRefusal(405, 'METHOD_NOT_ALLOWED', `${req.method} is not served here`, { Allow: 'GET, HEAD, PUT' })
  }
  const q = url.searchParams
  const signed = {
    method: q.get('X-Method') ?? '',
    key,
    expires: q.get('X-Expires') ?? '',
    contentType: q.get('X-Content-Type') ?? undefined,
    responseContentType: q.get('response-content-type') ?? undefined,
    responseContentDisposition: q.get('response-content-disposition') ?? undefined,
    maxBytes: q.get('X-Max-Bytes') ?? undefined,
    allowedTypes: q.get('X-Allowed-Types') ?? undefined,
    signature: q.get('X-Signature') ?? '',
  }
  if (!signed.signature || !signed.expires) throw forbidden('The URL carries no signature')
  if (signed.method !== method) throw forbidden(`This URL is signed for ${signed.method || 'no method'}, not ${method}`)
  const native = await store()
  const verdict = callNativeSync(() => native.verifySignedRequest(signed))
  if (verdict === 'expired') throw forbidden('This signed URL has expired')
  if (verdict !== 'valid') throw forbidden('The signature does not match this URL')
  if (method === 'PUT') return receiveObject(backend, key, signed, req)
  const disposition = signed.responseContentDisposition
  const headers = disposition === undefined ? undefined : { 'Content-Disposition': disposition }
  return objectResponse(req, backend, key, { contentType: signed.responseContentType, headers })
}

async function receiveObject(backend, key, signed, req) {
  const sentType = req.headers['content-type']
  if (signed.contentType && sentType !== signed.contentType) {
    throw forbidden(`This URL is signed for Content-Type ${signed.contentType}`)
  }
  const declared = req.headers['content-length']
  const contentLength = declared === undefined ? undefined : Number(declared)
  if (contentLength !== undefined && !Number.isSafeInteger(contentLength)) {
    throw new HttpRefusal(400, 'BAD_REQUEST', 'Content-Length is not a number')
  }
  const result = await backend.upload({
    key,
    body: req,
    contentType: sentType ?? 'application/octet-stream',
    contentLength,
    // The guards travel in the URL, signed: the uploader can neither drop nor lift them.
    maxBytes: signed.maxBytes === undefined ? undefined : Number(signed.maxBytes),
    allowedContentTypes: signed.allowedTypes?.split(','),
  })
  return { statusCode: 200, headers: result.etag ? { ETag: result.etag } : {} }
}

/**
 * `sendDownload(backend, key, req, res, { filename?, expiresIn?, redirect? })` answers a
 * download request as a file named `filename` (default: the key's last segment). Stores that
 * sign their own URLs (S3, Azure, GCS) get a 302 to a signed GET URL, so the bytes bypass this
 * process; the local and memory stores, whose URLs only this package's handler serves, and
 * `redirect: false` stream the object here with Range, ETag and Content-Type. What the client
 * caused is answered as the handler answers it (a missing key: 404 JSON); anything else (a
 * wrong argument, a store that is down or cannot sign) rejects with nothing sent, for the
 * app's own error handling. Resolves once the answer is sent.
 */
async function sendDownload(backend, key, req, res, options = {}) {
  if (typeof backend?.[kNative] !== 'function') {
    throw new InvalidArgumentError('sendDownload needs a backend built by this package', {})
  }
  const { filename, expiresIn, redirect } = sendDownloadSettings(options)
  let response
  try {
    const downloadName = filename ?? checkKey(key).slice(key.lastIndexOf('/') + 1)
    // Only the stores whose signed URLs this package's handler serves (local, memory) have a
    // base URL; the others' URLs reach the store itself. HEAD is served here: a signed URL is
    // signed for GET, and S3 refuses it a HEAD.
    if (redirect && !backend[kBaseUrl] && req.method !== 'HEAD') {
      // A missing key is our 404, not the store's own error page behind the redirect.
      await backend.stat(key)
      const responseContentDisposition = contentDisposition(downloadName)
      const { url } = await backend.getSignedUrl(key, { expiresIn, responseContentDisposition })
      // The URL expires: no cache may keep the redirect.
      response = { statusCode: 302, headers: { Location: url, 'Cache-Control': 'no-store' } }
    } else {
      response = await objectResponse(req, backend, key, { downloadName })
    }
  } catch (error) {
    response = errorResponse(error)
    if (response.statusCode >= 500) throw error
  }
  await writeResponse(res, response)
}

function errorResponse(error) {
  let statusCode = 500
  let body = { code: 'INTERNAL', message: 'Internal error' }
  if (error instanceof HttpRefusal) {
    statusCode = error.status
    body = { code: error.code, message: error.message }
  } else if (typeof error?.statusCode === 'number' && error.statusCode < 500 && PUBLIC_MESSAGES[error.code]) {
    statusCode = error.statusCode
    body = { code: error.code, message: PUBLIC_MESSAGES[error.code] }
  }
  // A refused upload may still be sending its body: close the connection rather than read it.
  const headers = { 'Content-Type': JSON_TYPE, Connection: 'close', ...(error?.headers ?? {}) }
  return { statusCode, headers, body: JSON.stringify({ error: body }) }
}

module.exports = { createSignedUrlHandler, signedUrlResponder, sendDownload }
