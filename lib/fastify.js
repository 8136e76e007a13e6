'use strict'
// The Fastify plugin (`@raptscallions/storage/fastify`): `reply.sendObject`, `request.uploadFile`
// for a file of @fastify/multipart, this package's client errors as replies, and the signed-URL
// routes of a local or memory backend, whose bodies Fastify's parsers must not read first.

const { Readable } = require('node:stream')
const fp = require('fastify-plugin')
const { StorageBackend, kBaseUrl } = require('./backend')
const { LocalStorageBackend } = require('./backends/local')
const { MemoryStorageBackend } = require('./backends/memory')
const {
  ConfigurationError,
  FileNotFoundError,
  FileTooLargeError,
  InvalidArgumentError,
  InvalidFileTypeError,
  QuotaExceededError,
  StorageError,
} = require('./errors')
const { signedUrlResponder } = require('./handler')
const { objectResponse } = require('./serve')
const { createTusHandler } = require('./tus')

// This package's errors that a client can cause: every StorageError, and the contract's classes
// beside it that are 4xx.
const CLIENT_ERROR_CLASSES = [StorageError, QuotaExceededError, FileNotFoundError, InvalidFileTypeError]

async function fastifyStorage(fastify, { backend, prefix, tus } = {}) {
  if (!(backend instanceof StorageBackend)) {
    throw new InvalidArgumentError('The storage plugin takes { backend }, a backend of this package', {})
  }

  fastify.decorateReply('sendObject', function sendObject(key, { backend: from = backend, ...options } = {}) {
    objectResponse(this.request.raw, from, key, options)
      .then(({ statusCode, headers, body }) => {
        // Fastify's HEAD route for a GET sets Content-Length: 0 on a reply without a body; an
        // empty stream keeps the object's.
        this.code(statusCode).headers(headers).send(body ?? (this.request.method === 'HEAD' ? emptyBody() : undefined))
      })
      .catch((error) => this.send(error))
    return this
  })

  fastify.decorateRequest('uploadFile', function uploadFile(file, options) {
    return uploadMultipartFile(file, { ...options, backend: options?.backend ?? backend })
  })

  fastify.setErrorHandler(function storageErrors(error, request, reply) {
    // A server-side failure (a store that is down) is the app's to log and word; so is any
    // error not of this package: both go on to the handler before this one.
    if (!(error?.statusCode < 500) || !CLIENT_ERROR_CLASSES.some((cls) => error instanceof cls)) throw error
    // A refused upload may still be sending its body: close the connection rather than read it.
    if (!request.raw.complete) reply.header('Connection', 'close')
    // The route may have set another type (a zip) before its body failed to open.
    reply.code(error.statusCode).type('application/json; charset=utf-8').send(error.toJSON())
  })

  const signedPath = signedUrlPath(backend, prefix)
  if (signedPath) await fastify.register(signedUrlRoutes, { prefix: routesPrefix(fastify, signedPath), backend })
  if (tus) await fastify.register(tusRoutes, { backend, tus, signedPath })
}

/**
 * The tus server (`createTusHandler`) at `tus.path` inside the plugin's scope (default
 * `/files`), with every body left unread for the handler to stream, and the protocol's own
 * answers (409, 460, …) sent as they are.
 */
async function tusRoutes(scope, { backend, tus, signedPath }) {
  const path = (tus.path ?? '/files').replace(/\/+$/, '')
  const full = `${scope.prefix}${path}`
  if (signedPath && (`${full}/`.startsWith(`${signedPath}/`) || `${signedPath}/`.startsWith(`${full}/`))) {
    throw new ConfigurationError(
      `The tus routes (${full}) would overlap the backend's signed URLs (${signedPath}): give tus a path of its own, e.g. { tus: { path: '/uploads' } }`,
      { prefix: full },
    )
  }
  // The app's hooks see Fastify's request (request.user, …): the handler's callbacks get it too.
  const fastifyRequests = new WeakMap()
  const asFastify = (raw) => fastifyRequests.get(raw) ?? raw
  const handler = createTusHandler(backend, {
    ...tus,
    path: full,
    keyFor: tus.keyFor && ((upload) => tus.keyFor({ ...upload, request: asFastify(upload.request) })),
    authorize: tus.authorize && ((raw, upload) => tus.authorize(asFastify(raw), upload)),
    onUploadFinish: tus.onUploadFinish && ((raw, upload) => tus.onUploadFinish(asFastify(raw), upload)),
  })
  scope.removeAllContentTypeParsers()
  scope.addContentTypeParser('*', (_request, _payload, done) => done(null))
  const route = (request, reply) => {
    fastifyRequests.set(request.raw, request)
    // Headers the app's hooks set (CORS, security headers) go out on the handler's answers too.
    for (const [name, value] of Object.entries(reply.getHeaders())) reply.raw.setHeader(name, value)
    reply.hijack()
    handler(request.raw, reply.raw)
  }
  for (const url of [path, `${path}/:id`]) {
    scope.route({ method: ['OPTIONS', 'POST', 'HEAD', 'PATCH', 'DELETE'], url, handler: route })
  }
}

/**
 * The path (from the server's root) a local or memory backend's signed URLs are served under:
 * `prefix`, or the path of its baseUrl. None for other stores, or for a baseUrl at the root
 * (the default): routes there would take every path, so its URLs are left to
 * `createSignedUrlHandler` or `raptscallions-storage serve`.
 */
function signedUrlPath(backend, prefix) {
  if (!(backend instanceof LocalStorageBackend || backend instanceof MemoryStorageBackend)) return undefined
  const path = (prefix ?? new URL(backend[kBaseUrl]).pathname).replace(/\/+$/, '')
  return path === '' ? undefined : path
}

/** Where routes at `path` (from the server's root) go inside the plugin's scope. */
function routesPrefix(fastify, path) {
  if (!`${path}/`.startsWith(`${fastify.prefix}/`)) {
    throw new ConfigurationError(`Signed URLs under ${path} cannot be served from a scope under ${fastify.prefix}`, { prefix: path })
  }
  return path.slice(fastify.prefix.length)
}

async function signedUrlRoutes(scope, { backend }) {
  // Fastify's parsers would read a JSON or text body before the route, or refuse another
  // type (415): in this scope every body is left unread, for the upload to stream it.
  scope.removeAllContentTypeParsers()
  scope.addContentTypeParser('*', (_request, _payload, done) => done(null))
  const respond = signedUrlResponder(backend, { basePath: scope.prefix })
  scope.route({
    method: ['GET', 'HEAD', 'PUT'],
    url: '/*',
    async handler(request, reply) {
      const { statusCode, headers, body } = await respond(request.raw)
      return reply.code(statusCode).headers(headers).send(body)
    },
  })
}

/**
 * Streams one file of @fastify/multipart into the backend. @fastify/multipart cuts a file off
 * at its `limits.fileSize` and only marks it `truncated`: such a file is never stored, its
 * upload is aborted (nothing is left at the key) and a FileTooLargeError (413) thrown. A form
 * the client cut short or malformed is an InvalidArgumentError (400), nothing stored either.
 */
async function uploadMultipartFile(file, { backend, signal, ...options }) {
  if (typeof file?.file?.pipe !== 'function') {
    throw new InvalidArgumentError('uploadFile takes a file of @fastify/multipart (await request.file()); the request had none', {})
  }
  const stream = file.file
  const truncated = new AbortController()
  const onLimit = () => truncated.abort()
  if (stream.truncated) onLimit()
  else stream.once('limit', onLimit)
  // busboy fails the file's stream with what it could not parse ("Part terminated early…"), then
  // the rest of the form: the upload fails with the first.
  let unreadable
  const onError = (error) => {
    unreadable ??= error
  }
  stream.on('error', onError)
  try {
    return await backend.upload({
      contentType: file.mimetype,
      ...options,
      body: stream,
      signal: signal ? AbortSignal.any([signal, truncated.signal]) : truncated.signal,
    })
  } catch (error) {
    if (error === unreadable) {
      throw new InvalidArgumentError(`The multipart body could not be read: ${error.message}`, {})
    }
    if (!truncated.signal.aborted) throw error
    // The rest of the file is not wanted: let busboy skip it rather than wait for a reader.
    stream.destroy()
    // busboy keeps exactly the limit's worth of bytes, and counts them.
    throw new FileTooLargeError(`The file is larger than the ${stream.bytesRead} bytes accepted here`, { maxBytes: stream.bytesRead })
  } finally {
    stream.off('limit', onLimit)
    stream.off('error', onError)
  }
}

const emptyBody = () => Readable.from([])

const plugin = fp(fastifyStorage, { fastify: '5.x', name: '@raptscallions/storage' })
// As Fastify's own plugins are exported: require() gives the plugin, TypeScript's default and
// named imports find it too.
module.exports = plugin
module.exports.default = plugin
module.exports.fastifyStorage = plugin
