'use strict'
// Which backend a command works on: STORAGE_BACKEND's, or the one a `<backend>:` prefix names.

const http = require('node:http')
const storage = require('../..')

function openBackend(id = storage.storageConfig.STORAGE_BACKEND) {
  return { id, backend: storage.getBackend(id) }
}

/**
 * `[backend:]key` → { id, backend, key }. Only a registered backend id counts as a prefix, so a
 * key holding a colon (`urn:x`) still names a key of the default backend; a key that itself
 * begins with an id and a colon is written with its backend first (`local:local:x`).
 */
function openRef(ref) {
  const id = backendIdOf(ref)
  if (id !== undefined) return { ...openBackend(id), key: ref.slice(id.length + 1) }
  return { ...openBackend(), key: ref }
}

/** The registered backend id `ref` begins with (before its first colon), or undefined. */
function backendIdOf(ref) {
  const colon = ref.indexOf(':')
  const id = colon > 0 ? ref.slice(0, colon) : ''
  return storage.isBackendRegistered(id) ? id : undefined
}

/** Serves a backend's self-signed URLs; resolves to the listening server. */
function listen(backend, host = '127.0.0.1', port = 0) {
  const server = http.createServer(storage.createSignedUrlHandler(backend))
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve(server))
  })
}

module.exports = { openBackend, openRef, backendIdOf, listen }
