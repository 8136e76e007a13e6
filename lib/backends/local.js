'use strict'
// The local filesystem store: plain files under a root folder.

const path = require('node:path')
const { NativeStorage } = require('../addon')
const { StorageBackend, DEFAULT_SIGNED_URL_BASE } = require('../backend')
const { InvalidArgumentError } = require('../errors')
const { localConfigSchema, readBackendEnv, configuredBackendDefaults } = require('../config')

class LocalStorageBackend extends StorageBackend {
  /**
   * `new LocalStorageBackend("/var/uploads")` or `({ root, baseUrl?, signingSecret?, signedUrlExpiration?, durable? })`.
   * `durable: false` skips fsync: writes stay atomic and survive a crash of the process, not of the machine.
   */
  constructor(rootOrOptions) {
    const options = typeof rootOrOptions === 'string' ? { root: rootOrOptions } : { ...rootOrOptions }
    if (typeof options.root !== 'string' || options.root === '') {
      throw new InvalidArgumentError('LocalStorageBackend needs a root folder', {})
    }
    const root = path.resolve(options.root)
    const baseUrl = options.baseUrl ?? DEFAULT_SIGNED_URL_BASE
    const durable = options.durable ?? true
    if (typeof durable !== 'boolean') throw new InvalidArgumentError('durable must be true or false', {})
    // Opened off the event loop (folders made, the secret read or created, old temps swept);
    // the first call waits for it, and `ready()` reports whether it worked.
    const native = NativeStorage.openLocal({ root, baseUrl, signingSecret: options.signingSecret ?? undefined, durable })
    super(native, { baseUrl, signedUrlExpiration: options.signedUrlExpiration, maxUploadBytes: options.maxUploadBytes })
    this.root = root
  }
}

/** A local backend from STORAGE_LOCAL_* and STORAGE_SIGNED_URL_EXPIRATION_SECONDS. */
function createLocalBackend() {
  const env = readBackendEnv('local', localConfigSchema)
  return new LocalStorageBackend({
    root: env.STORAGE_LOCAL_PATH,
    baseUrl: env.STORAGE_LOCAL_BASE_URL,
    signingSecret: env.STORAGE_LOCAL_SIGNING_SECRET,
    ...configuredBackendDefaults(),
  })
}

module.exports = { LocalStorageBackend, createLocalBackend }
