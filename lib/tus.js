'use strict'
// A tus 1.0 server (https://tus.io/protocols/resumable-upload) as a Node `http` handler, over
// any backend's resumable uploads: core protocol plus the creation, creation-with-upload,
// creation-defer-length, termination, expiration and checksum extensions. Upload state lives in
// the store, so any process behind a load balancer serves any request, and a restarted server
// resumes where the last one stopped.

const { InvalidArgumentError } = require('./errors')
const { generateKey } = require('./backend')

const TUS_VERSION = '1.0.0'
const EXTENSIONS = 'creation,creation-with-upload,creation-defer-length,termination,expiration,checksum'
const CHECKSUMS = 'sha1,sha256,md5'
const PATCH_TYPE = 'application/offset+octet-stream'
// Browsers may read these only when told (the app's CORS setup adds the origin).
const EXPOSED =
  'Location, Upload-Offset, Upload-Length, Upload-Defer-Length, Upload-Metadata, Upload-Expires, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm'
/** Statuses the protocol names for our error codes (the rest keep their own statusCode). */
const TUS_STATUS = { UPLOAD_OFFSET_MISMATCH: 409, CHECKSUM_MISMATCH: 460 }
/** What clients are told; nothing of the store's inside. */
const PUBLIC_MESSAGES = {
  UPLOAD_NOT_FOUND: 'No such upload',
  UPLOAD_EXPIRED: 'The upload has expired',
  UPLOAD_OFFSET_MISMATCH: 'Upload-Offset does not match the upload',
  UPLOAD_INCOMPLETE: 'The upload is not complete',
  CHECKSUM_MISMATCH: 'The body does not match Upload-Checksum',
  FILE_TOO_LARGE: 'The upload is larger than allowed',
  INVALID_FILE_TYPE: 'This type of file is not accepted here',
  FILE_ALREADY_EXISTS: 'An object already exists here',
  INVALID_KEY: 'Not a valid object name',
  INVALID_ARGUMENT: 'Bad request',
}

class TusRefusal extends Error {
  constructor(status, message, headers = {}) {
    super(message)
    this.status = status
    this.headers = headers
  }
}

const bad = (message) => new TusRefusal(400, message)

/**
 * `createTusHandler(backend, options)` → `(req, res) => void`.
 * - `path`: where the handler is mounted (default `/files`); uploads are `<path>/<id>`.
 * - `keyFor({ metadata, length, request })`: the object key an upload will have; the app's
 *   choice, never the client's raw input. Default: `uploads/YYYY/MM/<uuid>.<ext of filename>`.
 * - `authorize(request, upload)`: runs on every request (`upload` is null on creation); throw to
 *   refuse (the error's `statusCode`, else 403).
 * - `onUploadFinish(request, { id, key, size, etag, metadata, contentType })`: after the object
 *   is stored.
 * - `maxSize`: the largest upload (Tus-Max-Size); default the backend's `maxUploadBytes`.
 * - `expiresIn`: seconds an upload lives after its last change (default 24 hours).
 * - `allowedContentTypes`, `ifNotExists`: the guards a completed upload must pass.
 */
function createTusHandler(backend, settings = {}) {
  if (typeof backend?.createUpload !== 'function') {
    throw new InvalidArgumentError('createTusHandler needs a backend built by this package', {})
  }
  const base = (settings.path ?? '/files').replace(/\/+$/, '')
  const config = {
    base,
    maxSize: settings.maxSize ?? backend.maxUploadBytes,
    keyFor: settings.keyFor ?? (({ metadata }) => generateKey({ prefix: 'uploads', filename: metadata.filename })),
    authorize: settings.authorize,
    onUploadFinish: settings.onUploadFinish,
    expiresIn: settings.expiresIn,
    allowedContentTypes: settings.allowedContentTypes,
    ifNotExists: settings.ifNotExists,
    // Appends this process is still storing, by upload id: a client whose PATCH was cut asks
    // for the offset at once, and must hear what that PATCH kept, not what was there before.
    appending: new Map(),
  }
  if (config.maxSize !== undefined && !(Number.isSafeInteger(config.maxSize) && config.maxSize > 0)) {
    throw new InvalidArgumentError('maxSize must be a positive integer (bytes)', {})
  }
  return function tusHandler(req, res) {
    handle(backend, config, req, res).catch((error) => refuse(req, res, error))
  }
}

async function handle(backend, config, req, res) {
  res.setHeader('Tus-Resumable', TUS_VERSION)
  res.setHeader('Access-Control-Expose-Headers', EXPOSED)
  const method = String(req.headers['x-http-method-override'] ?? req.method).toUpperCase()
  const path = new URL(req.originalUrl ?? req.url, 'http://localhost').pathname.replace(/\/+$/, '')
  if (method === 'OPTIONS') {
    res.writeHead(204, {
      'Tus-Version': TUS_VERSION,
      'Tus-Extension': EXTENSIONS,
      'Tus-Checksum-Algorithm': CHECKSUMS,
      ...(config.maxSize !== undefined && { 'Tus-Max-Size': String(config.maxSize) }),
    })
    return res.end()
  }
  if (req.headers['tus-resumable'] !== TUS_VERSION) {
    throw new TusRefusal(412, `Tus-Resumable ${TUS_VERSION} is required`, { 'Tus-Version': TUS_VERSION })
  }
  if (path === config.base) {
    if (method !== 'POST') throw new TusRefusal(405, 'Create uploads with POST', { Allow: 'POST, OPTIONS' })
    return create(backend, config, req, res)
  }
  const id = path.startsWith(`${config.base}/`) ? path.slice(config.base.length + 1) : ''
  if (id === '' || id.includes('/')) throw new TusRefusal(404, 'No such upload')
  if (method === 'HEAD') await config.appending.get(id)
  // Known from its first moment (before the lookups below), so that a HEAD waits for it.
  if (method === 'PATCH') return whileAppending(config, id, patch(backend, config, req, res, id))
  const upload = await backend.getUpload(id)
  await authorize(config, req, upload)
  switch (method) {
    case 'HEAD':
      return head(backend, config, req, res, upload)
    case 'DELETE':
      await backend.abortUpload(id)
      res.writeHead(204)
      return res.end()
    default:
      throw new TusRefusal(405, `${method} is not a tus method`, { Allow: 'HEAD, PATCH, DELETE, OPTIONS' })
  }
}

async function create(backend, config, req, res) {
  const deferred = req.headers['upload-defer-length']
  const length = req.headers['upload-length']
  if ((length === undefined) === (deferred === undefined)) {
    throw bad('Send either Upload-Length or Upload-Defer-Length: 1')
  }
  if (deferred !== undefined && deferred !== '1') throw bad('Upload-Defer-Length must be 1')
  const size = length === undefined ? undefined : count(length, 'Upload-Length')
  if (size !== undefined && config.maxSize !== undefined && size > config.maxSize) {
    throw new TusRefusal(413, `The upload is larger than ${config.maxSize} bytes`)
  }
  const metadata = parseMetadata(req.headers['upload-metadata'])
  await authorize(config, req, null)
  const key = await config.keyFor({ metadata, length: size, request: req })
  const contentType = metadata.filetype || metadata.contenttype || undefined
  let upload = await backend.createUpload({
    key,
    length: size,
    expiresIn: config.expiresIn,
    contentType,
    metadata,
    maxBytes: config.maxSize,
    allowedContentTypes: config.allowedContentTypes,
    ifNotExists: config.ifNotExists,
  })
  const location = `${config.base}/${upload.id}`
  const withBody = req.headers['content-type'] === PATCH_TYPE
  if (withBody) upload = await append(backend, config, req, upload, 0)
  else {
    req.resume()
    // An empty file is complete as soon as it exists.
    if (upload.length === 0) await finish(backend, config, req, upload)
  }
  res.writeHead(201, {
    Location: location,
    'Upload-Expires': upload.expiresAt.toUTCString(),
    ...(withBody && { 'Upload-Offset': String(upload.offset) }),
  })
  res.end()
}

async function head(backend, config, req, res, upload) {
  // Every byte there, yet not completed (the server stopped in between): complete it now, or
  // the client, seeing its offset at the end, would take the upload for done. A completed
  // upload answers as one that is done (it is kept until it expires), and a client resuming it
  // sends nothing again.
  if (upload.length !== undefined && upload.offset === upload.length && !upload.completed) {
    await finish(backend, config, req, upload).catch((error) => {
      if (error?.code !== 'UPLOAD_INCOMPLETE') throw error // another request is completing it
    })
  }
  res.writeHead(200, {
    'Upload-Offset': String(upload.offset),
    ...(upload.length === undefined ? { 'Upload-Defer-Length': '1' } : { 'Upload-Length': String(upload.length) }),
    ...(Object.keys(upload.metadata).length > 0 && { 'Upload-Metadata': formatMetadata(upload.metadata) }),
    'Upload-Expires': upload.expiresAt.toUTCString(),
    'Cache-Control': 'no-store',
  })
  res.end()
}

/** Runs `work` (a PATCH of upload `id`) with the id marked as being appended to. */
async function whileAppending(config, id, work) {
  const settled = work.then(
    () => {},
    () => {},
  )
  config.appending.set(id, settled)
  try {
    return await work
  } finally {
    if (config.appending.get(id) === settled) config.appending.delete(id)
  }
}

async function patch(backend, config, req, res, id) {
  let upload = await backend.getUpload(id)
  await authorize(config, req, upload)
  if (req.headers['content-type'] !== PATCH_TYPE) throw new TusRefusal(415, `Content-Type must be ${PATCH_TYPE}`)
  const offset = count(req.headers['upload-offset'], 'Upload-Offset')
  const declared = req.headers['upload-length']
  if (declared !== undefined && upload.length === undefined) {
    const length = count(declared, 'Upload-Length')
    if (config.maxSize !== undefined && length > config.maxSize) {
      throw new TusRefusal(413, `The upload is larger than ${config.maxSize} bytes`)
    }
    upload = await backend.declareUploadLength(upload.id, length)
  }
  upload = await append(backend, config, req, upload, offset)
  res.writeHead(204, { 'Upload-Offset': String(upload.offset), 'Upload-Expires': upload.expiresAt.toUTCString() })
  res.end()
}

/** Appends the request's body; completes the upload when it holds every byte. */
async function append(backend, config, req, upload, offset) {
  const checksum = parseChecksum(req.headers['upload-checksum'])
  // Iterated without destroying the request when the append stops early, so that a refusal
  // (409, 460) still reaches the client, which is still sending.
  const body = { [Symbol.asyncIterator]: () => req.iterator({ destroyOnReturn: false }) }
  const appended = await backend.appendUpload(upload.id, { offset, body, checksum })
  if (appended.length !== undefined && appended.offset === appended.length) {
    await finish(backend, config, req, appended)
  }
  return appended
}

async function finish(backend, config, req, upload) {
  const done = await backend.completeUpload(upload.id)
  await config.onUploadFinish?.(req, {
    id: upload.id,
    key: done.key,
    size: done.size,
    etag: done.etag,
    metadata: upload.metadata,
    contentType: upload.contentType,
  })
}

/** JavaScript's own errors in a hook are a bug of the app's, not a refusal: a 500, kept inside. */
const PROGRAMMING_ERRORS = [TypeError, ReferenceError, RangeError, SyntaxError]

async function authorize(config, req, upload) {
  if (!config.authorize) return
  try {
    await config.authorize(req, upload)
  } catch (error) {
    if (PROGRAMMING_ERRORS.some((type) => error instanceof type)) throw error
    const status = Number.isInteger(error?.statusCode) ? error.statusCode : 403
    throw new TusRefusal(status, error?.message || 'Forbidden')
  }
}

function count(value, name) {
  if (typeof value !== 'string' || !/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw bad(`${name} must be a whole number of bytes`)
  }
  return Number(value)
}

/** `Upload-Metadata: name base64,name2 base64,flag` → `{ name: "…", name2: "…", flag: "" }`. */
function parseMetadata(header) {
  const metadata = {}
  if (header === undefined || header.trim() === '') return metadata
  for (const pair of header.split(',')) {
    const [name, value, ...rest] = pair.trim().split(' ')
    if (!name || rest.length > 0 || Object.hasOwn(metadata, name.toLowerCase())) {
      throw bad('Upload-Metadata must be unique "name base64" pairs separated by commas')
    }
    if (value !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw bad(`Upload-Metadata ${name} is not base64`)
    metadata[name.toLowerCase()] = value === undefined ? '' : Buffer.from(value, 'base64').toString('utf8')
  }
  return metadata
}

function formatMetadata(metadata) {
  return Object.entries(metadata)
    .map(([name, value]) => (value === '' ? name : `${name} ${Buffer.from(value, 'utf8').toString('base64')}`))
    .join(',')
}

function parseChecksum(header) {
  if (header === undefined) return undefined
  const [algorithm, digest, ...rest] = header.trim().split(' ')
  if (!digest || rest.length > 0) throw bad('Upload-Checksum must be "<algorithm> <base64 digest>"')
  if (!CHECKSUMS.split(',').includes(algorithm.toLowerCase())) {
    throw bad(`Upload-Checksum algorithms are ${CHECKSUMS}`)
  }
  return { algorithm, digest }
}

function refuse(req, res, error) {
  // The client went away mid-body: there is no one to answer (what arrived is kept).
  if (req.destroyed && !req.complete) return
  const refusal = error instanceof TusRefusal
  const code = refusal ? 'TUS_REFUSED' : String(error?.code ?? 'STORAGE_ERROR')
  let status = refusal ? error.status : (TUS_STATUS[code] ?? error?.statusCode)
  if (!Number.isInteger(status) || status < 400 || status > 599) status = 500
  const message = refusal ? error.message : (PUBLIC_MESSAGES[code] ?? 'The upload failed')
  // Not for the client's eyes; the app's logs should have it.
  if (status >= 500) process.emitWarning(`tus handler: ${error?.stack ?? error}`, 'StorageWarning')
  if (res.headersSent) return res.destroy()
  // Whatever is left of the body is read and dropped, so that the client gets the answer
  // instead of a reset connection.
  req.resume()
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', ...(error?.headers ?? {}) })
  res.end(JSON.stringify({ code, message }))
}

module.exports = { createTusHandler }
