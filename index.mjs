// @raptscallions/storage: the ESM entry, a re-export of the CommonJS module (one shared state).
import { createRequire } from 'node:module'

const APP_ERROR_HINT = Symbol.for('@raptscallions/storage.AppError')
// An ESM-only @raptscallions/core cannot be require()d by the CommonJS module: import it
// here first and hand its AppError over, so our errors extend the app's class.
if (typeof globalThis[APP_ERROR_HINT] !== 'function') {
  try {
    const core = await import('@raptscallions/core')
    if (typeof core.AppError === 'function') globalThis[APP_ERROR_HINT] = core.AppError
  } catch {
    // No @raptscallions/core in the host app.
  }
}

const storage = createRequire(import.meta.url)('./index.js')

export const {
  AppError,
  StorageErrorCode,
  StorageError,
  QuotaExceededError,
  FileNotFoundError,
  InvalidFileTypeError,
  BackendNotRegisteredError,
  ConfigurationError,
  InvalidKeyError,
  FileAlreadyExistsError,
  PreconditionFailedError,
  KeyConflictError,
  PermissionDeniedError,
  StorageUnavailableError,
  StorageTimeoutError,
  ContentLengthMismatchError,
  InvalidRangeError,
  InvalidArgumentError,
  AbortError,
  UploadNotFoundError,
  UploadExpiredError,
  UploadOffsetMismatchError,
  UploadIncompleteError,
  ChecksumMismatchError,
  FileTooLargeError,
  registerBackend,
  getBackendFactory,
  isBackendRegistered,
  getRegisteredBackends,
  resetRegistry,
  getBackend,
  isBackendCached,
  resetFactory,
  resetAll,
  registerBuiltInBackends,
  resetStorage,
  storageConfig,
  resetStorageConfig,
  getBackendConfig,
  registerBuiltInConfigs,
  commonConfigSchema,
  localConfigSchema,
  memoryConfigSchema,
  s3ConfigSchema,
  azureConfigSchema,
  gcsConfigSchema,
  aliyunConfigSchema,
  registerBackendConfig,
  getBackendConfigSchema,
  isBackendConfigRegistered,
  getRegisteredBackendConfigs,
  resetConfigRegistry,
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
} = storage

export default storage
