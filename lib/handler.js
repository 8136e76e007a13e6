'use strict'
// A Node `http` request handler that serves a backend's self-signed URLs (local, memory):
// it verifies the signature in native code (constant time), then serves GET/HEAD with
// Range, ETag and Content-Type, and stores PUT bodies as they stream in, under the upload
// guards the URL was signed with. And sendDownload, which answers an app's own download
// route: a redirect to a signed URL where the store serves it, the same GET serving otherwise.

const { pipeline } = require('node:stream/promises')
const parseRange = require('range-parser')
const { kNative, kBaseUrl } = require('./backend')
const { InvalidArgumentError, InvalidRangeError } = require('./errors')
const { callNativeSync } = require('./native')
const { checkKey, sendDownloadSettings } = require('./options')

const JSON_TYPE = 'application/json; charset=utf-8'
// Served objects come from uploaders, on the app's own origin: never let a browser sniff a
// type or run what they uploaded (an SVG or HTML file with script) in the origin's context.
const SAFE_SERVING = { 'X-Content-Type-Options': 'nosniff', 'Content-Security-Policy': "default-src 'none'; sandbox" }
/** What anonymous clients are told: the code, and a message that gives nothing of the inside away. */
const PUBLIC_MESSAGES = {
  FILE_NOT_FOUND: 'Not found',
  INVALID_RANGE: 'Range not satisfiable',
  CONTENT_LENGTH_MISMATCH: 'The body does not match its Content-Length',
  INVALID_FILE_TYPE: 'This type of file is not accepted here',
  QUOTA_EXCEEDED: 'The body is larger than this URL accepts',
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
 * `http.createServer(handler)` or mounting in Express/Fastify. `basePath` defaults to the
 * path of the backend's `baseUrl`.
 */
function createSignedUrlHandler(backend, { basePath } = {}) {
  const store = backend?.[kNative]
  if (typeof store !== 'function') {
    throw new InvalidArgumentError('createSignedUrlHandler needs a backend built by this package (local or memory)', {})
  }
  const base = (basePath ?? new URL(backend[kBaseUrl]).pathname).replace(/\/+$/, '')
  return function signedUrlHandler(req, res) {
    handle(backend, store, base, req, res).catch((error) => sendError(res, error))
  }
}

async function handle(backend, store, base, req, res) {
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
  if (method === 'GET') {
    await serveObject(backend, key, req, res, {
      contentType: signed.responseContentType,
      contentDisposition: signed.responseContentDisposition,
    })
  } else {
    await receiveObject(backend, key, signed, req, res)
  }
}

/**
 * The range a `Range` header asks for, as RFC 9110 reads it: a malformed or multi-part header
 * is ignored (the whole object is served), an unsatisfiable one is a 416.
 */
async function requestedRange(backend, key, header) {
  if (header === undefined) return undefined
  const { size } = await backend.stat(key)
  const ranges = parseRange(size, String(header), { combine: true })
  if (ranges === -1) {
    throw new HttpRefusal(416, 'INVALID_RANGE', 'Range not satisfiable', { 'Content-Range': `bytes */${size}` })
  }
  if (ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return undefined
  return { start: ranges[0].start, end: ranges[0].end }
}

/** Answers a GET or HEAD with the object; `contentType` replaces the stored type, `contentDisposition` is sent when given. */
async function serveObject(backend, key, req, res, { contentType, contentDisposition }) {
  const range = await requestedRange(backend, key, req.headers.range)
  let stream
  try {
    stream = await backend.download(key, { range })
  } catch (error) {
    if (error instanceof InvalidRangeError) {
      throw new HttpRefusal(416, error.code, 'Range not satisfiable', { 'Content-Range': `bytes */${error.details.size}` })
    }
    throw error
  }
  const { info } = stream
  const headers = {
    ...SAFE_SERVING,
    'Content-Type': contentType ?? info.contentType,
    'Content-Length': info.contentLength,
    'Accept-Ranges': 'bytes',
    'Last-Modified': info.lastModified.toUTCString(),
  }
  if (info.etag) headers.ETag = info.etag
  if (contentDisposition) headers['Content-Disposition'] = contentDisposition
  const ifNoneMatch = req.headers['if-none-match']
  if (info.etag && ifNoneMatch && ifNoneMatch.split(',').some((t) => t.trim() === info.etag || t.trim() === '*')) {
    stream.destroy()
    res.writeHead(304, { ETag: info.etag })
    res.end()
    return
  }
  if (range) headers['Content-Range'] = `bytes ${info.range.start}-${info.range.end}/${info.size}`
  res.writeHead(range ? 206 : 200, headers)
  if (req.method === 'HEAD') {
    stream.destroy()
    res.end()
    return
  }
  // A client that disconnects destroys the response, which destroys (and cancels) the download.
  await pipeline(stream, res).catch(() => {})
}

async function receiveObject(backend, key, signed, req, res) {
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
  res.writeHead(200, result.etag ? { ETag: result.etag } : {})
  res.end()
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
  try {
    const contentDisposition = attachment(filename ?? checkKey(key).slice(key.lastIndexOf('/') + 1))
    // Only the stores whose signed URLs this package's handler serves (local, memory) have a
    // base URL; the others' URLs reach the store itself. HEAD is served here: a signed URL is
    // signed for GET, and S3 refuses it a HEAD.
    if (redirect && !backend[kBaseUrl] && req.method !== 'HEAD') {
      // A missing key is our 404, not the store's own error page behind the redirect.
      await backend.stat(key)
      const { url } = await backend.getSignedUrl(key, { expiresIn, responseContentDisposition: contentDisposition })
      // The URL expires: no cache may keep the redirect.
      res.writeHead(302, { Location: url, 'Cache-Control': 'no-store' })
      res.end()
    } else {
      await serveObject(backend, key, req, res, { contentDisposition })
    }
  } catch (error) {
    if (!res.headersSent && !clientAnswer(error)) throw error
    sendError(res, error)
  }
}

/**
 * Content-Disposition for a download named `filename` (RFC 6266): a quoted ASCII name, and
 * where that had to change anything, the exact name in RFC 5987 form, which clients prefer.
 */
function attachment(filename) {
  const plain = filename.replace(/[^\x20-\x7e]|["\\%]/g, '_')
  if (plain === filename) return `attachment; filename="${plain}"`
  // encodeURIComponent leaves ' ( ) * as they are; RFC 5987 allows none of them bare.
  const exact = encodeURIComponent(filename).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  return `attachment; filename="${plain}"; filename*=UTF-8''${exact}`
}

/** What a client is told of `error`: a status and a body, or nothing when the failure is not theirs (a 500). */
function clientAnswer(error) {
  if (error instanceof HttpRefusal) return { status: error.status, body: { code: error.code, message: error.message } }
  if (typeof error?.statusCode === 'number' && error.statusCode < 500 && PUBLIC_MESSAGES[error.code]) {
    return { status: error.statusCode, body: { code: error.code, message: PUBLIC_MESSAGES[error.code] } }
  }
  return undefined
}

function sendError(res, error) {
  if (res.headersSent) {
    res.destroy(error)
    return
  }
  const { status, body } = clientAnswer(error) ?? { status: 500, body: { code: 'INTERNAL', message: 'Internal error' } }
  // A refused upload may still be sending its body: close the connection rather than read it.
  res.writeHead(status, { 'Content-Type': JSON_TYPE, Connection: 'close', ...(error.headers ?? {}) })
  res.end(JSON.stringify({ error: body }))
}

module.exports = { createSignedUrlHandler, sendDownload }
