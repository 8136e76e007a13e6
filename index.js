'use strict'
// @raptscallions/storage: the CommonJS entry. The ESM entry (index.mjs) re-exports this
// module, so both share one registry, one config cache and one set of error classes.

const errors = require('./lib/errors')
const registry = require('./lib/registry')
const { readBackendEnv, readMemoryBudgetEnv, configuredBackendDefaults, ...config } = require('./lib/config')
const { StorageBackend, generateKey } = require('./lib/backend')
const { LocalStorageBackend, createLocalBackend } = require('./lib/backends/local')
const { MemoryStorageBackend, createMemoryBackend } = require('./lib/backends/memory')
const { S3StorageBackend, createS3Backend, AliyunOssStorageBackend, createAliyunBackend } = require('./lib/backends/s3')
const { AzureBlobStorageBackend, createAzureBackend } = require('./lib/backends/azure')
const { createTusHandler } = require('./lib/tus')
const { serveObject } = require('./lib/serve')
const { createSignedUrlHandler, sendDownload } = require('./lib/handler')
const { GcsStorageBackend, createGcsBackend } = require('./lib/backends/gcs')
const { setMemoryBudget, memoryBudget } = require('./lib/budget')

/** Registers the stores this package ships under their ids ("local", "memory", "s3", "azure", "aliyun", "gcs"). */
function registerBuiltInBackends() {
  registry.registerBackend('local', createLocalBackend)
  registry.registerBackend('memory', createMemoryBackend)
  registry.registerBackend('s3', createS3Backend)
  registry.registerBackend('azure', createAzureBackend)
  registry.registerBackend('aliyun', createAliyunBackend)
  registry.registerBackend('gcs', createGcsBackend)
}

registerBuiltInBackends()

/**
 * What a test's `beforeEach`/`afterEach` wants in one call: the cached backends dropped, the
 * registry back to the built-in stores alone, configuration read again from the environment.
 * (`resetAll()` empties the registry, as the contract says.)
 */
function resetStorage() {
  registry.resetAll()
  registerBuiltInBackends()
  config.resetStorageConfig()
}

module.exports = {
  ...errors,
  ...registry,
  registerBuiltInBackends,
  resetStorage,
  ...config,
  StorageBackend,
  LocalStorageBackend,
  createLocalBackend,
  MemoryStorageBackend,
  createMemoryBackend,
  S3StorageBackend,
  createS3Backend,
  AzureBlobStorageBackend,
  createAzureBackend,
  AliyunOssStorageBackend,
  createAliyunBackend,
  generateKey,
  createSignedUrlHandler,
  createTusHandler,
  serveObject,
  sendDownload,
  GcsStorageBackend,
  createGcsBackend,
  setMemoryBudget,
  memoryBudget,
}
