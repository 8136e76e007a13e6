'use strict'
// The in-memory store: the same behaviour as the others, for applications' own tests.

const { NativeStorage } = require('../../binding.js')
const { StorageBackend, DEFAULT_SIGNED_URL_BASE } = require('../backend')
const { callNativeSync } = require('../native')

class MemoryStorageBackend extends StorageBackend {
  /** `new MemoryStorageBackend({ baseUrl?, signingSecret?, signedUrlExpiration? })`. */
  constructor(options = {}) {
    const baseUrl = options.baseUrl ?? DEFAULT_SIGNED_URL_BASE
    const native = callNativeSync(() =>
      NativeStorage.memory({ baseUrl, signingSecret: options.signingSecret ?? undefined }),
    )
    super(native, { baseUrl, signedUrlExpiration: options.signedUrlExpiration })
  }
}

function createMemoryBackend() {
  return new MemoryStorageBackend()
}

module.exports = { MemoryStorageBackend, createMemoryBackend }
