'use strict'
// Google Cloud Storage, in native code on GCS's JSON API (no Google SDK).

const { NativeStorage } = require('../addon')
const { StorageBackend } = require('../backend')
const { ConfigurationError } = require('../errors')
const { callNativeSync } = require('../native')
const { readBackendEnv, gcsConfigSchema, configuredBackendDefaults } = require('../config')

/**
 * The key goes to native code as JSON and stays there; it is not kept on the JS object, so
 * it never shows up in logs of the backend.
 */
function credentialsJson(credentials) {
  if (credentials == null) return undefined
  if (typeof credentials !== 'object') {
    throw new ConfigurationError('GcsStorageBackend credentials must be a service-account key object', {
      backend: 'gcs',
      issues: [{ field: 'credentials', message: 'must be an object' }],
    })
  }
  return JSON.stringify(credentials)
}

function createNative(settings) {
  if (!settings.bucket) {
    throw new ConfigurationError('GcsStorageBackend needs bucket', {
      backend: 'gcs',
      issues: [{ field: 'bucket', message: 'Required' }],
    })
  }
  return callNativeSync(() =>
    NativeStorage.gcs({
      bucket: settings.bucket,
      endpoint: settings.endpoint || undefined,
      keyFilename: settings.keyFilename || undefined,
      credentialsJson: credentialsJson(settings.credentials),
      partSize: settings.partSize ?? undefined,
      queueSize: settings.queueSize ?? undefined,
      stallTimeout: settings.stallTimeout ?? undefined,
      caCertificates: settings.caCertificates ?? undefined,
    }),
  )
}

class GcsStorageBackend extends StorageBackend {
  /**
   * `new GcsStorageBackend({ bucket, projectId?, keyFilename? | credentials?, endpoint?, partSize?,
   * queueSize?, stallTimeout?, signedUrlExpiration? })`. With an endpoint and no key:
   * anonymous (emulators). With neither: application default credentials.
   */
  constructor(options = {}) {
    const settings = { ...options }
    super(createNative(settings), settings)
    this.bucket = settings.bucket
    this.projectId = settings.projectId
  }
}

/** A GCS backend from STORAGE_GCS_*. */
function createGcsBackend() {
  const env = readBackendEnv('gcs', gcsConfigSchema)
  return new GcsStorageBackend({
    bucket: env.STORAGE_GCS_BUCKET,
    projectId: env.STORAGE_GCS_PROJECT_ID,
    keyFilename: env.STORAGE_GCS_KEY_FILE_PATH,
    endpoint: env.STORAGE_GCS_ENDPOINT,
    ...configuredBackendDefaults(),
  })
}

module.exports = { GcsStorageBackend, createGcsBackend }
