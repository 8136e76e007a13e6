'use strict'
// A Node `http` request handler that serves a backend's self-signed URLs (local, memory):
// it verifies the signature in native code (constant time), then serves GET/HEAD with
// Range, ETag and Content-Type, and stores PUT bodies as they stream in.

const { pipeline } = require('node:stream/promises')
const { kNative, kBaseUrl } = require('./backend')
const { InvalidArgumentError, InvalidRangeError } = require('./errors')

const JSON_TYPE = 'application/json; charset=utf-8'

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
  const native = backend?.[kNative]
  if (!native) {
    throw new InvalidArgumentError('createSignedUrlHandler needs a backend built by this package (local or memory)', {})
  }
  const base = (basePath ?? new URL(backend[kBaseUrl]).pathname).replace(/\/+$/, '')
  return function signedUrlHandler(req, res) {
    handle(backend, native, base, req, res).catch((error) => sendError(res, error))
  }
}

async function handle(backend, native, base, req, res) {
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
    signature: q.get('X-Signature') ?? '',
  }
  if (!signed.signature || !signed.expires) throw forbidden('The URL carries no signature')
  if (signed.method !== method) throw forbidden(`This URL is signed for ${signed.method || 'no method'}, not ${method}`)
  const verdict = native.verifySignedRequest(signed)
  if (verdict === 'expired') throw forbidden('This signed URL has expired')
  if (verdict !== 'valid') throw forbidden('The signature does not match this URL')
  if (method === 'GET') await serveObject(backend, key, signed, req, res)
  else await receiveObject(backend, key, signed, req, res)
}

/** Parses a single `bytes=` range; anything else is ignored (the whole object is served). */
async function requestedRange(backend, key, header) {
  const match = /^bytes=(\d*)-(\d*)$/.exec(String(header ?? '').trim())
  if (!match || (match[1] === '' && match[2] === '')) return undefined
  if (match[1] !== '') return { start: Number(match[1]), end: match[2] === '' ? undefined : Number(match[2]) }
  const { size } = await backend.stat(key)
  const suffix = Number(match[2])
  if (suffix === 0 || size === 0) {
    throw new HttpRefusal(416, 'INVALID_RANGE', 'Range not satisfiable', { 'Content-Range': `bytes */${size}` })
  }
  return { start: Math.max(0, size - suffix), end: size - 1 }
}

async function serveObject(backend, key, signed, req, res) {
  const range = await requestedRange(backend, key, req.headers.range)
  let stream
  try {
    stream = await backend.download(key, { range })
  } catch (error) {
    if (error instanceof InvalidRangeError) {
      throw new HttpRefusal(416, error.code, error.message, { 'Content-Range': `bytes */${error.details.size}` })
    }
    throw error
  }
  const { info } = stream
  const headers = {
    'Content-Type': signed.responseContentType ?? info.contentType,
    'Content-Length': info.contentLength,
    'Accept-Ranges': 'bytes',
    'Last-Modified': info.lastModified.toUTCString(),
  }
  if (info.etag) headers.ETag = info.etag
  if (signed.responseContentDisposition) headers['Content-Disposition'] = signed.responseContentDisposition
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
  const result = await backend.upload({
    key,
    body: req,
    contentType: sentType ?? 'application/octet-stream',
    contentLength: declared === undefined ? undefined : Number(declared),
  })
  res.writeHead(200, result.etag ? { ETag: result.etag } : {})
  res.end()
}

function sendError(res, error) {
  if (res.headersSent) {
    res.destroy(error)
    return
  }
  const known = error instanceof HttpRefusal || typeof error?.statusCode === 'number'
  const status = error instanceof HttpRefusal ? error.status : known ? error.statusCode : 500
  const body = known ? { code: error.code, message: error.message } : { code: 'INTERNAL', message: 'Internal error' }
  // A refused upload may still be sending its body: close the connection rather than read it.
  res.writeHead(status, { 'Content-Type': JSON_TYPE, Connection: 'close', ...(error.headers ?? {}) })
  res.end(JSON.stringify({ error: body }))
}

module.exports = { createSignedUrlHandler }
