import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  AppError,
  BackendNotRegisteredError,
  ConfigurationError,
  FileNotFoundError,
  FileTooLargeError,
  InvalidFileTypeError,
  QuotaExceededError,
  StorageError,
  StorageErrorCode,
  StorageUnavailableError,
  StorageTimeoutError,
  InvalidKeyError,
  InvalidArgumentError,
  AzureBlobStorageBackend,
  GcsStorageBackend,
  S3StorageBackend,
} from '../index.mjs'

describe('error classes', () => {
  const cases = [
    [new StorageError('disk on fire', { a: 1 }), 'StorageError', 500, 'STORAGE_ERROR', 'disk on fire', { a: 1 }],
    [new QuotaExceededError(), 'QuotaExceededError', 403, 'QUOTA_EXCEEDED', 'Storage quota exceeded', undefined],
    [
      new QuotaExceededError('Storage quota exceeded', { currentUsage: 1, quotaLimit: 2, requestedSize: 3 }),
      'QuotaExceededError',
      403,
      'QUOTA_EXCEEDED',
      'Storage quota exceeded',
      { currentUsage: 1, quotaLimit: 2, requestedSize: 3 },
    ],
    [new FileNotFoundError('uploads/missing.pdf'), 'FileNotFoundError', 404, 'FILE_NOT_FOUND', 'File not found in storage: uploads/missing.pdf', { key: 'uploads/missing.pdf' }],
    [new InvalidFileTypeError('text/html'), 'InvalidFileTypeError', 400, 'INVALID_FILE_TYPE', 'Invalid file type: text/html', { providedType: 'text/html', allowedTypes: undefined }],
    [
      new InvalidFileTypeError('text/html', ['image/png', 'application/pdf']),
      'InvalidFileTypeError',
      400,
      'INVALID_FILE_TYPE',
      'Invalid file type: text/html. Allowed types: image/png, application/pdf',
      { providedType: 'text/html', allowedTypes: ['image/png', 'application/pdf'] },
    ],
    [
      new BackendNotRegisteredError('minio', ['local', 's3']),
      'BackendNotRegisteredError',
      500,
      'BACKEND_NOT_REGISTERED',
      'Storage backend not registered: "minio". Available backends: local, s3',
      { requestedBackend: 'minio', availableBackends: ['local', 's3'] },
    ],
    [
      new BackendNotRegisteredError('minio', []),
      'BackendNotRegisteredError',
      500,
      'BACKEND_NOT_REGISTERED',
      'Storage backend not registered: "minio". No backends are currently registered.',
      { requestedBackend: 'minio', availableBackends: [] },
    ],
    [new ConfigurationError('bad', { issues: [] }), 'ConfigurationError', 500, 'CONFIGURATION_ERROR', 'bad', { issues: [] }],
    [new FileTooLargeError('cut off', { maxBytes: 1024 }), 'FileTooLargeError', 413, 'FILE_TOO_LARGE', 'cut off', { maxBytes: 1024 }],
  ]
  for (const [error, name, statusCode, code, message, details] of cases) {
    it(`${name}: ${message}`, () => {
      assert.ok(error instanceof AppError)
      assert.ok(error instanceof Error)
      assert.equal(error.name, name)
      assert.equal(error.statusCode, statusCode)
      assert.equal(error.code, code)
      assert.equal(error.message, message)
      assert.deepEqual(error.details, details)
      assert.deepEqual(error.toJSON(), { message, code, statusCode, details })
      assert.ok(error.stack.includes(name))
    })
  }

  it('Part B classes are StorageErrors with their own status and code', () => {
    const unavailable = new StorageUnavailableError('down', {})
    assert.ok(unavailable instanceof StorageError && unavailable instanceof AppError)
    assert.equal(unavailable.statusCode, 503)
    assert.equal(unavailable.retryable, true)
    const timeout = new StorageTimeoutError('slow', {})
    assert.ok(timeout instanceof StorageUnavailableError)
    assert.equal(timeout.code, 'STORAGE_TIMEOUT')
    assert.equal(timeout.name, 'StorageTimeoutError')
    assert.equal(new InvalidKeyError('bad key', {}).name, 'InvalidKeyError')
  })

  it('StorageErrorCode is frozen and holds the contract codes', () => {
    assert.ok(Object.isFrozen(StorageErrorCode))
    for (const code of ['STORAGE_ERROR', 'QUOTA_EXCEEDED', 'FILE_NOT_FOUND', 'INVALID_FILE_TYPE', 'BACKEND_NOT_REGISTERED', 'CONFIGURATION_ERROR']) {
      assert.equal(StorageErrorCode[code], code)
    }
  })
})

describe('store options of the wrong type', () => {
  const s3 = { bucket: 'b', region: 'r', credentials: { accessKeyId: 'a', secretAccessKey: 's' } }
  const azure = { container: 'box', accountName: 'acct', accountKey: 'a2V5' }
  const gcs = { bucket: 'b', endpoint: 'http://127.0.0.1:9' }
  it('are an InvalidArgumentError naming the option, for every cloud store', () => {
    const cases = [
      [() => new S3StorageBackend({ ...s3, bucket: 1 }), 'bucket', /bucket must be a string, not number/],
      [() => new S3StorageBackend({ ...s3, partSize: '8MB' }), 'partSize', /partSize must be a whole number, not string/],
      [() => new AzureBlobStorageBackend({ ...azure, container: 42 }), 'container', /container must be a string, not number/],
      [() => new AzureBlobStorageBackend({ ...azure, queueSize: '4' }), 'queueSize', /queueSize must be a whole number/],
      [() => new GcsStorageBackend({ ...gcs, endpoint: 7 }), 'endpoint', /endpoint must be a string/],
      [() => new GcsStorageBackend({ ...gcs, stallTimeout: 'x' }), 'stallTimeout', /stallTimeout must be a whole number/],
    ]
    for (const [make, option, message] of cases) {
      assert.throws(make, (error) => {
        assert.ok(error instanceof InvalidArgumentError, `${option}: ${error}`)
        assert.equal(error.statusCode, 400)
        assert.match(error.message, message)
        assert.equal(error.details.option, option)
        return true
      })
    }
  })

  it('a stall timeout of zero, which would fail every request, is a ConfigurationError', () => {
    for (const make of [
      () => new S3StorageBackend({ ...s3, stallTimeout: 0 }),
      () => new AzureBlobStorageBackend({ ...azure, stallTimeout: 0 }),
      () => new GcsStorageBackend({ ...gcs, stallTimeout: 0 }),
    ]) {
      assert.throws(make, (e) => e instanceof ConfigurationError && /stallTimeout must be at least 1 second/.test(e.message))
    }
  })
})

describe('a platform without a prebuilt addon', () => {
  it('is a ConfigurationError that names the platforms there are, not a message blaming npm', async () => {
    const { execFile } = await import('node:child_process')
    const { promisify } = await import('node:util')
    const entry = new URL('../index.js', import.meta.url).pathname
    const script = `Object.defineProperty(process, 'arch', { value: 'mips' })
      try { require(${JSON.stringify(entry)}) } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message, details: e.details })) }`
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script])
    const error = JSON.parse(stdout)
    assert.equal(error.name, 'ConfigurationError')
    assert.equal(error.details.platform, `${process.platform}-mips`)
    assert.ok(error.details.prebuilt.includes('x86_64-unknown-linux-gnu'))
    assert.match(error.message, /no native addon for .*-mips.*Prebuilt addons exist for/)
  })
})

describe('wrong-type messages', () => {
  it('quote a string given for a number, and name a number past 2^53 as inexact', async () => {
    const { createMemoryBackend } = await import('../index.mjs')
    const backend = createMemoryBackend()
    await assert.rejects(backend.upload({ key: 'k', body: 'x', contentLength: '5' }), { message: /contentLength .* not "5"$/ })
    await assert.rejects(backend.createUpload({ key: 'k', length: 2 ** 60 }), { message: /length .*\(past 2\^53/ })
  })
})
