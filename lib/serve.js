'use strict'
// Serving a stored object over HTTP, one way for the signed-URL handler, Fastify's
// `reply.sendObject` and an app's own routes in Express or plain `http`: ranges, conditional
// requests, a download name, and headers that keep uploaded content from acting as the app.

const { pipeline } = require('node:stream/promises')
const { create: contentDisposition } = require('content-disposition')
const fresh = require('fresh')
const parseRange = require('range-parser')
const { InvalidRangeError } = require('./errors')

// Served objects come from uploaders, on the app's own origin: never let a browser sniff a
// type or run what they uploaded (an SVG or HTML file with script) in the origin's context.
const SAFE_SERVING = { 'X-Content-Type-Options': 'nosniff', 'Content-Security-Policy': "default-src 'none'; sandbox" }

/** The headers a client's cached copy is compared with. */
function validators(info) {
  const headers = { 'Last-Modified': info.lastModified.toUTCString() }
  if (info.etag) headers.ETag = info.etag
  return headers
}

/** If-None-Match (or, without it, If-Modified-Since) says the client's copy is current. */
function isFresh(req, current) {
  // Without Cache-Control: `fresh` takes "no-cache" for a reload and answers 200, but it only
  // asks caches to check with the origin, which this is; fetch() sends it with every condition.
  const conditions = { 'if-none-match': req.headers['if-none-match'], 'if-modified-since': req.headers['if-modified-since'] }
  return fresh(conditions, { etag: current.ETag, 'last-modified': current['Last-Modified'] })
}

/**
 * Whether a range still applies under If-Range (RFC 9110 §13.1.5): a resumed download of a
 * version since replaced must get the whole new object, not the new bytes after the old ones.
 * Only a strong ETag or the exact Last-Modified date matches.
 */
function ifRangeHolds(header, current) {
  if (header === undefined) return true
  if (header.startsWith('"')) return header === current.ETag
  return Date.parse(header) === Date.parse(current['Last-Modified'])
}

const notModified = (current, extra) => ({ statusCode: 304, headers: { ...current, ...extra } })
const unsatisfiable = (size) => ({ statusCode: 416, headers: { 'Content-Range': `bytes */${size}` } })

/**
 * What to answer a GET or HEAD `req` with for the object at `key`: `{ statusCode, headers, body? }`,
 * `body` being the download of a 200 or 206 GET. 304 when the client's copy is current, 206 for
 * one satisfiable range, 416 for an unsatisfiable one; a malformed or multi-part Range header is
 * ignored (the whole object is served), as RFC 9110 allows. Rejects, before anything is
 * answered, when the object cannot be read (FileNotFoundError, …).
 */
async function objectResponse(req, backend, key, { contentType, downloadName, headers: extra } = {}) {
  let range
  if (req.headers.range !== undefined) {
    // Only a range needs the object's size before its download opens.
    const info = await backend.stat(key)
    const current = validators(info)
    // Conditions come before ranges (RFC 9110 §13.2.2): a current copy is a 304, not a 416.
    if (isFresh(req, current)) return notModified(current, extra)
    if (ifRangeHolds(req.headers['if-range'], current)) {
      const ranges = parseRange(info.size, String(req.headers.range), { combine: true })
      if (ranges === -1) return unsatisfiable(info.size)
      if (ranges !== -2 && ranges.type === 'bytes' && ranges.length === 1) range = { start: ranges[0].start, end: ranges[0].end }
    }
  }
  let stream
  try {
    stream = await backend.download(key, { range })
  } catch (error) {
    // The object shrank since it was looked at.
    if (error instanceof InvalidRangeError) return unsatisfiable(error.details.size)
    throw error
  }
  const { info } = stream
  const current = validators(info)
  if (isFresh(req, current)) {
    stream.destroy()
    return notModified(current, extra)
  }
  const headers = {
    ...SAFE_SERVING,
    ...current,
    'Content-Type': contentType ?? info.contentType,
    'Content-Length': info.contentLength,
    'Accept-Ranges': 'bytes',
  }
  if (range) headers['Content-Range'] = `bytes ${info.range.start}-${info.range.end}/${info.size}`
  // RFC 6266: an ASCII fallback, and the name itself as an RFC 8187 filename* when it is not ASCII.
  if (downloadName != null) headers['Content-Disposition'] = contentDisposition(downloadName)
  Object.assign(headers, extra)
  const statusCode = range ? 206 : 200
  if (req.method !== 'HEAD') return { statusCode, headers, body: stream }
  stream.destroy()
  return { statusCode, headers }
}

/** Writes a response of `objectResponse` (or of the signed-URL handler) to a Node `res`. */
async function writeResponse(res, { statusCode, headers, body }) {
  try {
    res.writeHead(statusCode, headers)
  } catch (error) {
    // A header Node refuses (a stored content type with characters HTTP cannot carry).
    body?.destroy?.()
    throw error
  }
  if (typeof body?.pipe !== 'function') {
    res.end(body)
    return
  }
  // A client that disconnects destroys the response, which destroys (and cancels) the download.
  await pipeline(body, res).catch(() => {})
}

/**
 * `serveObject(req, res, backend, key, options?)`: answers a GET or HEAD in plain `http` or
 * Express with the object at `key`. Rejects before anything is sent when the object cannot be
 * read (FileNotFoundError, …), for the caller to answer.
 */
async function serveObject(req, res, backend, key, options) {
  await writeResponse(res, await objectResponse(req, backend, key, options))
}

module.exports = { objectResponse, writeResponse, serveObject }
