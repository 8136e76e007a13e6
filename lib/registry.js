'use strict'
// The plugin registry (id → factory) and the lazy, cached factory on top of it.

const { BackendNotRegisteredError, ConfigurationError } = require('./errors')

const REQUIRED_METHODS = ['upload', 'download', 'delete', 'exists', 'getSignedUrl']

const backendRegistry = new Map()
const instanceCache = new Map()

function registerBackend(identifier, factory) {
  if (typeof factory !== 'function') {
    throw new ConfigurationError(`The factory for storage backend "${identifier}" must be a function`, {
      backend: identifier,
    })
  }
  backendRegistry.set(identifier, factory)
}

function getBackendFactory(identifier) {
  const factory = backendRegistry.get(identifier)
  if (!factory) throw new BackendNotRegisteredError(identifier, getRegisteredBackends())
  return factory
}

function isBackendRegistered(identifier) {
  return backendRegistry.has(identifier)
}

function getRegisteredBackends() {
  return Array.from(backendRegistry.keys())
}

function resetRegistry() {
  backendRegistry.clear()
}

/** Refuses a factory product that is not an IStorageBackend, naming what it lacks. */
function checkBackend(identifier, instance) {
  const missing = REQUIRED_METHODS.filter((name) => typeof instance?.[name] !== 'function')
  if (missing.length > 0) {
    throw new ConfigurationError(
      `Storage backend "${identifier}" does not implement IStorageBackend: missing ${missing.join(', ')}`,
      { backend: identifier, issues: missing.map((field) => ({ field, message: 'must be a function' })) },
    )
  }
  return instance
}

/**
 * The backend for an id (default: the one STORAGE_BACKEND names): its factory runs on first use
 * only, then the same instance is returned.
 */
function getBackend(identifier = require('./config').storageConfig.STORAGE_BACKEND) {
  const cached = instanceCache.get(identifier)
  if (cached) return cached
  const instance = checkBackend(identifier, getBackendFactory(identifier)())
  instanceCache.set(identifier, instance)
  return instance
}

function isBackendCached(identifier) {
  return instanceCache.has(identifier)
}

function resetFactory() {
  instanceCache.clear()
}

function resetAll() {
  instanceCache.clear()
  resetRegistry()
}

module.exports = {
  registerBackend,
  getBackendFactory,
  isBackendRegistered,
  getRegisteredBackends,
  resetRegistry,
  getBackend,
  isBackendCached,
  resetFactory,
  resetAll,
}
