import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { Readable } from 'node:stream'
import {
  BackendNotRegisteredError,
  ConfigurationError,
  MemoryStorageBackend,
  getBackend,
  getBackendFactory,
  getRegisteredBackends,
  isBackendCached,
  isBackendRegistered,
  registerBackend,
  registerBuiltInBackends,
  resetAll,
  resetStorage,
  resetFactory,
  resetRegistry,
  resetStorageConfig,
} from '../index.mjs'
import { withEnv } from './env.mjs'

function plainBackend(label) {
  return {
    label,
    upload: async (p) => ({ key: p.key }),
    download: async () => Readable.from([label]),
    delete: async () => {},
    exists: async () => true,
    getSignedUrl: async () => ({ url: `https://example.test/${label}`, expiresAt: new Date().toISOString() }),
  }
}

describe('registry and factory', () => {
  afterEach(() => {
    resetAll()
    registerBuiltInBackends()
  })

  it('registers the built-in stores on load', () => {
    assert.deepEqual(getRegisteredBackends(), ['local', 'memory', 's3', 'azure', 'aliyun', 'gcs'])
  })

  it('without an id, builds the backend STORAGE_BACKEND names', async () => {
    await withEnv({ STORAGE_BACKEND: 'memory' }, async () => {
      resetStorageConfig()
      resetFactory()
      assert.ok(getBackend() instanceof MemoryStorageBackend)
      assert.equal(getBackend(), getBackend('memory'))
    })
    resetStorageConfig()
  })

  it('registers, overwrites and lists backends side by side', () => {
    resetRegistry()
    assert.deepEqual(getRegisteredBackends(), [])
    registerBackend('a', () => plainBackend('a1'))
    registerBackend('b', () => plainBackend('b'))
    registerBackend('a', () => plainBackend('a2'))
    assert.deepEqual(getRegisteredBackends(), ['a', 'b'])
    assert.equal(isBackendRegistered('a'), true)
    assert.equal(isBackendRegistered('zzz'), false)
    assert.equal(getBackend('a').label, 'a2')
    assert.equal(getBackendFactory('b')().label, 'b')
  })

  it('names what is registered when an id is not', () => {
    resetRegistry()
    assert.throws(() => getBackend('minio'), (e) => e instanceof BackendNotRegisteredError && /No backends are currently registered/.test(e.message))
    registerBackend('local', () => plainBackend('l'))
    registerBackend('s3', () => plainBackend('s'))
    assert.throws(() => getBackendFactory('minio'), {
      message: 'Storage backend not registered: "minio". Available backends: local, s3',
    })
  })

  it('creates lazily, once, and caches until reset', () => {
    let calls = 0
    registerBackend('lazy', () => {
      calls++
      return plainBackend('lazy')
    })
    assert.equal(calls, 0)
    assert.equal(isBackendCached('lazy'), false)
    const first = getBackend('lazy')
    assert.equal(getBackend('lazy'), first)
    assert.equal(calls, 1)
    assert.equal(isBackendCached('lazy'), true)
    resetFactory()
    assert.equal(isBackendRegistered('lazy'), true)
    assert.notEqual(getBackend('lazy'), first)
    assert.equal(calls, 2)
    resetAll()
    assert.equal(isBackendRegistered('lazy'), false)
    assert.equal(isBackendCached('lazy'), false)
  })

  it('refuses a factory product that lacks an interface method, naming it', () => {
    const { exists, ...incomplete } = plainBackend('x')
    registerBackend('broken', () => incomplete)
    assert.throws(() => getBackend('broken'), (e) => {
      assert.ok(e instanceof ConfigurationError)
      assert.match(e.message, /missing exists/)
      assert.deepEqual(e.details.issues, [{ field: 'exists', message: 'must be a function' }])
      return true
    })
    assert.equal(isBackendCached('broken'), false)
  })

  it('takes native backends and plain objects alike', async () => {
    registerBackend('native', () => new MemoryStorageBackend())
    registerBackend('plain', () => plainBackend('p'))
    const native = getBackend('native')
    await native.upload({ key: 'k', body: Buffer.from('v'), contentType: 'text/plain' })
    assert.equal(await native.exists('k'), true)
    assert.deepEqual(await getBackend('plain').upload({ key: 'k', body: Buffer.from('v'), contentType: 'x' }), { key: 'k' })
  })
})

describe('resetting between tests', () => {
  it('resetStorage() is one call: caches dropped, the built-in stores registered again, config read again', async () => {
    resetAll()
    assert.deepEqual(getRegisteredBackends(), [], 'resetAll empties the registry, as the contract says')
    registerBackend('custom', () => plainBackend('c'))
    process.env.STORAGE_MEMORY_BASE_URL = 'http://127.0.0.1:9/memory-files'
    try {
      resetStorage()
      assert.deepEqual(getRegisteredBackends(), ['local', 'memory', 's3', 'azure', 'aliyun', 'gcs'])
      const memory = getBackend('memory')
      assert.match((await memory.getSignedUrl('k')).url, /^http:\/\/127\.0\.0\.1:9\/memory-files\/k\?/)
      resetStorage()
      assert.notEqual(getBackend('memory'), memory, 'a new backend after the reset')
    } finally {
      delete process.env.STORAGE_MEMORY_BASE_URL
      resetStorage()
    }
  })

  it("MemoryStorageBackend.clear() empties objects and unfinished uploads", async () => {
    const memory = new MemoryStorageBackend()
    await memory.put('a/b', 'x')
    const upload = await memory.createUpload({ key: 'c' })
    await memory.appendUpload(upload.id, { offset: 0, body: 'partial' })
    await memory.clear()
    assert.deepEqual((await memory.list()).objects, [])
    await assert.rejects(memory.getUpload(upload.id), { code: 'UPLOAD_NOT_FOUND' })
  })
})

describe('STORAGE_MAX_FILE_SIZE_BYTES', () => {
  it('is the default maxBytes of backends built from the environment when set, and imposes nothing unset', async () => {
    resetStorage()
    const unlimited = getBackend('memory')
    assert.equal(unlimited.maxUploadBytes, undefined)
    await unlimited.upload({ key: 'big', body: Buffer.alloc(11 * 1024 * 1024) })
    process.env.STORAGE_MAX_FILE_SIZE_BYTES = '1000'
    try {
      resetStorage()
      const limited = getBackend('memory')
      assert.equal(limited.maxUploadBytes, 1000)
      await limited.upload({ key: 'fits', body: Buffer.alloc(1000) })
      await assert.rejects(limited.upload({ key: 'over', body: Readable.from([Buffer.alloc(1001)]) }), { name: 'FileTooLargeError', statusCode: 413 })
      await limited.upload({ key: 'allowed', body: Buffer.alloc(2000), maxBytes: 5000 }) // a call's own limit wins
      await assert.rejects(limited.createUpload({ key: 'resumable', length: 1001 }), { name: 'FileTooLargeError' })
      const { url } = await limited.getSignedUrl('put-url', { method: 'PUT' })
      assert.equal(new URL(url).searchParams.get('X-Max-Bytes'), '1000')
      assert.equal(await limited.exists('over'), false)
    } finally {
      delete process.env.STORAGE_MAX_FILE_SIZE_BYTES
      resetStorage()
    }
  })
})

describe('the two entries', () => {
  it('the ESM entry exports every name of the CommonJS one, and nothing else', async () => {
    const { createRequire } = await import('node:module')
    const esm = await import('../index.mjs')
    const cjs = createRequire(import.meta.url)('../index.js')
    assert.deepEqual(Object.keys(esm).filter((name) => name !== 'default').sort(), Object.keys(cjs).sort())
    for (const name of Object.keys(cjs)) assert.equal(esm[name], cjs[name], name)
  })
})
