import assert from 'node:assert/strict'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, it } from 'node:test'
import {
  ConfigurationError,
  commonConfigSchema,
  createLocalBackend,
  getBackendConfig,
  getBackendConfigSchema,
  getRegisteredBackendConfigs,
  isBackendConfigRegistered,
  registerBackendConfig,
  registerBuiltInConfigs,
  resetConfigRegistry,
  resetStorageConfig,
  s3ConfigSchema,
  storageConfig,
} from '../index.mjs'
import { restoreEnv } from './env.mjs'

const saved = { ...process.env }

function setEnv(vars) {
  for (const key of Object.keys(process.env)) if (key.startsWith('STORAGE_')) delete process.env[key]
  Object.assign(process.env, vars)
  resetStorageConfig()
}

describe('configuration from the environment', () => {
  beforeEach(() => setEnv({}))
  afterEach(() => {
    restoreEnv(saved)
    resetStorageConfig()
    resetConfigRegistry()
    registerBuiltInConfigs()
  })

  it('defaults to the local backend with the documented numbers', () => {
    assert.equal(storageConfig.STORAGE_BACKEND, 'local')
    assert.equal(storageConfig.STORAGE_MAX_FILE_SIZE_BYTES, 10485760)
    assert.equal(storageConfig.STORAGE_QUOTA_BYTES, 1073741824)
    assert.equal(storageConfig.STORAGE_SIGNED_URL_EXPIRATION_SECONDS, 900)
    assert.deepEqual(getBackendConfig(), { STORAGE_LOCAL_PATH: './storage/uploads' })
  })

  it('coerces numbers from strings, parses lazily and caches until reset', () => {
    setEnv({ STORAGE_MAX_FILE_SIZE_BYTES: '2048' })
    assert.equal(storageConfig.STORAGE_MAX_FILE_SIZE_BYTES, 2048)
    process.env.STORAGE_MAX_FILE_SIZE_BYTES = '4096'
    assert.equal(storageConfig.STORAGE_MAX_FILE_SIZE_BYTES, 2048)
    resetStorageConfig()
    assert.equal(storageConfig.STORAGE_MAX_FILE_SIZE_BYTES, 4096)
    // Invalid values only fail when the config is first read.
    setEnv({ STORAGE_QUOTA_BYTES: 'lots' })
    assert.throws(() => storageConfig.STORAGE_BACKEND, ConfigurationError)
  })

  it('reports every missing Azure field at once, and refuses a default expiry longer than signed URLs may last', () => {
    setEnv({ STORAGE_BACKEND: 'azure' })
    assert.throws(() => storageConfig.STORAGE_BACKEND, (error) => {
      const fields = error.details.issues.map((i) => i.field).sort()
      assert.deepEqual(fields, ['STORAGE_AZURE_ACCESS_KEY', 'STORAGE_AZURE_ACCOUNT_NAME', 'STORAGE_AZURE_CONTAINER'])
      return true
    })
    setEnv({ STORAGE_BACKEND: 'azure', STORAGE_AZURE_CONTAINER: 'box', STORAGE_AZURE_CONNECTION_STRING: 'UseDevelopmentStorage=true' })
    assert.equal(storageConfig.STORAGE_BACKEND, 'azure')
    setEnv({ STORAGE_SIGNED_URL_EXPIRATION_SECONDS: '604801' })
    assert.throws(() => storageConfig.STORAGE_BACKEND, (e) => e instanceof ConfigurationError && /at most 604800/.test(e.message))
  })

  it('reports every failing field at once, common and backend alike', () => {
    setEnv({ STORAGE_BACKEND: 's3', STORAGE_MAX_FILE_SIZE_BYTES: '-5', STORAGE_S3_ENDPOINT: 'not a url', STORAGE_S3_REGION: 'eu-west-1' })
    assert.throws(() => storageConfig.STORAGE_BACKEND, (e) => {
      assert.ok(e instanceof ConfigurationError)
      assert.equal(e.statusCode, 500)
      const fields = e.details.issues.map((i) => i.field)
      assert.deepEqual(fields, [
        'STORAGE_MAX_FILE_SIZE_BYTES',
        'STORAGE_S3_ENDPOINT',
        'STORAGE_S3_BUCKET',
        'STORAGE_S3_ACCESS_KEY_ID',
        'STORAGE_S3_SECRET_ACCESS_KEY',
      ])
      assert.equal(e.details.backend, 's3')
      assert.match(e.message, /^Invalid storage configuration: STORAGE_MAX_FILE_SIZE_BYTES: .+; STORAGE_S3_ENDPOINT: .+; STORAGE_S3_BUCKET: .+/)
      return true
    })
  })

  it('refuses an empty value as it refuses any other invalid one', () => {
    for (const name of ['STORAGE_MAX_FILE_SIZE_BYTES', 'STORAGE_LOCAL_PATH']) {
      setEnv({ [name]: '' })
      assert.throws(() => storageConfig.STORAGE_BACKEND, (e) => e instanceof ConfigurationError && e.details.issues[0].field === name, name)
    }
  })

  it('validates only the selected backend', () => {
    setEnv({ STORAGE_BACKEND: 'local', STORAGE_S3_ENDPOINT: 'not a url' })
    assert.equal(storageConfig.STORAGE_BACKEND, 'local')
  })

  it('never leaks secrets into messages', () => {
    setEnv({ STORAGE_BACKEND: 's3', STORAGE_S3_SECRET_ACCESS_KEY: 'sup3r-s3cret', STORAGE_S3_ENDPOINT: 'bad' })
    assert.throws(() => storageConfig.STORAGE_BACKEND, (e) => !JSON.stringify(e.toJSON()).includes('sup3r-s3cret'))
  })

  it('is read-only', () => {
    assert.throws(() => {
      storageConfig.STORAGE_BACKEND = 's3'
    }, TypeError)
    assert.throws(() => {
      delete storageConfig.STORAGE_BACKEND
    }, TypeError)
    assert.equal(storageConfig.STORAGE_BACKEND, 'local')
    assert.deepEqual(Object.keys(storageConfig).sort(), [
      'STORAGE_BACKEND',
      'STORAGE_MAX_FILE_SIZE_BYTES',
      'STORAGE_QUOTA_BYTES',
      'STORAGE_SIGNED_URL_EXPIRATION_SECONDS',
      'backend',
    ])
  })

  it('keeps a registry of backend schemas, accepting any object with parse', () => {
    assert.deepEqual(getRegisteredBackendConfigs(), ['local', 'memory', 's3', 'azure', 'gcs', 'aliyun'])
    assert.equal(getBackendConfigSchema('s3'), s3ConfigSchema)
    registerBackendConfig('custom', {
      parse(env) {
        if (!env.STORAGE_CUSTOM_URL) throw Object.assign(new Error('bad'), { issues: [{ path: ['STORAGE_CUSTOM_URL'], message: 'Required' }] })
        return { url: env.STORAGE_CUSTOM_URL }
      },
    })
    assert.equal(isBackendConfigRegistered('custom'), true)
    setEnv({ STORAGE_BACKEND: 'custom' })
    assert.throws(() => storageConfig.backend, { message: 'Invalid storage configuration: STORAGE_CUSTOM_URL: Required' })
    setEnv({ STORAGE_BACKEND: 'custom', STORAGE_CUSTOM_URL: 'x://y' })
    assert.deepEqual(getBackendConfig(), { url: 'x://y' })
    setEnv({ STORAGE_BACKEND: 'unknown-without-schema' })
    assert.deepEqual(storageConfig.backend, {})
    resetConfigRegistry()
    assert.deepEqual(getRegisteredBackendConfigs(), [])
  })

  it('exports zod schemas apps can extend', () => {
    const extended = commonConfigSchema.extend({ EXTRA: commonConfigSchema.shape.STORAGE_BACKEND })
    assert.equal(extended.parse({}).EXTRA, 'local')
    assert.equal(s3ConfigSchema.safeParse({}).success, false)
  })

  it('builds the local backend from STORAGE_LOCAL_*', async () => {
    const root = path.join(os.tmpdir(), 'rstorage-config-test')
    setEnv({ STORAGE_LOCAL_PATH: root, STORAGE_SIGNED_URL_EXPIRATION_SECONDS: '120' })
    const backend = createLocalBackend()
    assert.equal(backend.root, root)
    const { expiresAt } = await backend.getSignedUrl('k')
    assert.ok(Math.abs(Date.parse(expiresAt) - Date.now() - 120_000) < 5000)
    setEnv({ STORAGE_LOCAL_BASE_URL: 'nope' })
    assert.throws(() => createLocalBackend(), ConfigurationError)
  })
})
