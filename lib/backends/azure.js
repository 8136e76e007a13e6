'use strict'
// Azure Blob Storage (and Azurite), in native code on the REST API.

const { NativeStorage } = require('../addon')
const { StorageBackend } = require('../backend')
const { ConfigurationError } = require('../errors')
const { callNativeSync } = require('../native')
const { azureConfigSchema, readBackendEnv, configuredBackendDefaults } = require('../config')

const STORAGE_SCOPE = 'https://storage.azure.com/.default'

/** A TokenCredential (@azure/identity's DefaultAzureCredential, ManagedIdentityCredential…) as the native side asks it. */
function tokenProvider(credential) {
  if (typeof credential?.getToken !== 'function') {
    throw new ConfigurationError('credential must be a TokenCredential (an object with getToken), such as DefaultAzureCredential', {
      backend: 'azure',
      issues: [{ field: 'credential', message: 'must have getToken()' }],
    })
  }
  return async () => {
    const token = await credential.getToken(STORAGE_SCOPE)
    if (!token?.token) throw new Error('the credential gave no token')
    return { token: token.token, expiresOnTimestamp: token.expiresOnTimestamp ?? undefined }
  }
}

function createNative(settings) {
  const missing = []
  if (!settings.container) missing.push('container')
  // Without a key, a SAS token or a credential, the native side looks for a service principal
  // in the environment, and says what it needs when there is none.
  if (!settings.connectionString && !settings.accountName) missing.push('accountName')
  if (missing.length > 0) {
    throw new ConfigurationError(`AzureBlobStorageBackend needs ${missing.join(', ')}`, {
      backend: 'azure',
      issues: missing.map((field) => ({ field, message: 'Required' })),
    })
  }
  return callNativeSync(() =>
    NativeStorage.azure({
      connectionString: settings.connectionString || undefined,
      accountName: settings.accountName || undefined,
      container: settings.container,
      endpoint: settings.endpoint || undefined,
      accountKey: settings.sasToken ? undefined : settings.accountKey || undefined,
      sasToken: settings.sasToken || undefined,
      tokenProvider: settings.credential ? tokenProvider(settings.credential) : undefined,
      partSize: settings.partSize ?? undefined,
      queueSize: settings.queueSize ?? undefined,
      stallTimeout: settings.stallTimeout ?? undefined,
      caCertificates: settings.caCertificates ?? undefined,
    }),
  )
}

class AzureBlobStorageBackend extends StorageBackend {
  /**
   * `new AzureBlobStorageBackend({ container, accountName, accountKey | sasToken | credential, endpoint? })` or
   * `({ container, connectionString })`, with `signedUrlExpiration?, partSize?, queueSize?, stallTimeout?`.
   */
  constructor(options = {}) {
    const settings = { ...options }
    super(createNative(settings), settings)
    this.container = settings.container
  }
}

/** An Azure backend from STORAGE_AZURE_*. */
function createAzureBackend() {
  const env = readBackendEnv('azure', azureConfigSchema)
  return new AzureBlobStorageBackend({
    connectionString: env.STORAGE_AZURE_CONNECTION_STRING,
    accountName: env.STORAGE_AZURE_ACCOUNT_NAME,
    accountKey: env.STORAGE_AZURE_ACCESS_KEY,
    sasToken: env.STORAGE_AZURE_SAS_TOKEN,
    container: env.STORAGE_AZURE_CONTAINER,
    endpoint: env.STORAGE_AZURE_ENDPOINT,
    ...configuredBackendDefaults(),
  })
}

module.exports = { AzureBlobStorageBackend, createAzureBackend }
