'use strict'
// @raptscallions/storage: the CommonJS entry. The ESM entry (index.mjs) re-exports this
// module, so both share one registry, one config cache and one set of error classes.

const errors = require('./lib/errors')
const config = require('./lib/config')
const registry = require('./lib/registry')
const { StorageBackend, generateKey } = require('./lib/backend')
const { LocalStorageBackend, createLocalBackend } = require('./lib/backends/local')
const { MemoryStorageBackend, createMemoryBackend } = require('./lib/backends/memory')
const { createSignedUrlHandler } = require('./lib/handler')

/** Registers the stores this package ships under their ids ("local", "memory"). */
function registerBuiltInBackends() {
  registry.registerBackend('local', createLocalBackend)
  registry.registerBackend('memory', createMemoryBackend)
}

registerBuiltInBackends()

module.exports = {
  AppError: errors.AppError,
  StorageErrorCode: errors.StorageErrorCode,
  StorageError: errors.StorageError,
  QuotaExceededError: errors.QuotaExceededError,
  FileNotFoundError: errors.FileNotFoundError,
  InvalidFileTypeError: errors.InvalidFileTypeError,
  BackendNotRegisteredError: errors.BackendNotRegisteredError,
  ConfigurationError: errors.ConfigurationError,
  InvalidKeyError: errors.InvalidKeyError,
  FileAlreadyExistsError: errors.FileAlreadyExistsError,
  PreconditionFailedError: errors.PreconditionFailedError,
  PermissionDeniedError: errors.PermissionDeniedError,
  StorageUnavailableError: errors.StorageUnavailableError,
  StorageTimeoutError: errors.StorageTimeoutError,
  ContentLengthMismatchError: errors.ContentLengthMismatchError,
  InvalidRangeError: errors.InvalidRangeError,
  InvalidArgumentError: errors.InvalidArgumentError,
  AbortError: errors.AbortError,

  registerBackend: registry.registerBackend,
  getBackendFactory: registry.getBackendFactory,
  isBackendRegistered: registry.isBackendRegistered,
  getRegisteredBackends: registry.getRegisteredBackends,
  resetRegistry: registry.resetRegistry,
  getBackend: registry.getBackend,
  isBackendCached: registry.isBackendCached,
  resetFactory: registry.resetFactory,
  resetAll: registry.resetAll,
  registerBuiltInBackends,

  storageConfig: config.storageConfig,
  resetStorageConfig: config.resetStorageConfig,
  getBackendConfig: config.getBackendConfig,
  registerBuiltInConfigs: config.registerBuiltInConfigs,
  commonConfigSchema: config.commonConfigSchema,
  localConfigSchema: config.localConfigSchema,
  s3ConfigSchema: config.s3ConfigSchema,
  azureConfigSchema: config.azureConfigSchema,
  gcsConfigSchema: config.gcsConfigSchema,
  aliyunConfigSchema: config.aliyunConfigSchema,
  registerBackendConfig: config.registerBackendConfig,
  getBackendConfigSchema: config.getBackendConfigSchema,
  isBackendConfigRegistered: config.isBackendConfigRegistered,
  getRegisteredBackendConfigs: config.getRegisteredBackendConfigs,
  resetConfigRegistry: config.resetConfigRegistry,

  StorageBackend,
  LocalStorageBackend,
  createLocalBackend,
  MemoryStorageBackend,
  createMemoryBackend,
  generateKey,
  createSignedUrlHandler,
}
