'use strict'
// The in-memory store: the same behaviour as the others, for applications' own tests.

const { NativeStorage } = require('../addon')
const { StorageBackend, DEFAULT_SIGNED_URL_BASE } = require('../backend')
const { callNativeSync } = require('../native')
const { memoryConfigSchema, readBackendEnv, configuredBackendDefaults } = require('../config')

class MemoryStorageBackend extends StorageBackend {
  /** `new MemoryStorageBackend({ baseUrl?, signingSecret?, signedUrlExpiration? })`. */
  constructor(options = {}) {
    const baseUrl = options.baseUrl ?? DEFAULT_SIGNED_URL_BASE
    const native = callNativeSync(() =>
      NativeStorage.memory({ baseUrl, signingSecret: options.signingSecret ?? undefined }),
    )
    super(native, { baseUrl, signedUrlExpiration: options.signedUrlExpiration, maxUploadBytes: options.maxUploadBytes })
  }

  /** Empties the store (objects and unfinished resumable uploads), as a test's reset wants. */
  async clear() {
    await this.deletePrefix('', { all: true })
    await this.deleteExpiredUploads(new Date(8.64e15))
  }
}

/** A memory backend; STORAGE_MEMORY_BASE_URL says where its signed URLs are served. */
function createMemoryBackend() {
  const env = readBackendEnv('memory', memoryConfigSchema)
  return new MemoryStorageBackend({
    baseUrl: env.STORAGE_MEMORY_BASE_URL,
    ...configuredBackendDefaults(),
  })
}

module.exports = { MemoryStorageBackend, createMemoryBackend }
