'use strict'
// The S3-compatible store (AWS S3, MinIO, R2, B2, Spaces), in native code on aws-sdk-s3.

const { NativeStorage } = require('../addon')
const { StorageBackend } = require('../backend')
const { ConfigurationError } = require('../errors')
const { callNativeSync } = require('../native')
const { aliyunConfigSchema, readBackendEnv, s3ConfigSchema, configuredBackendDefaults } = require('../config')

/** An AWS SDK v3 S3Client: its resolved config has a `credentials` provider and `region`. */
function isS3Client(value) {
  return value != null && typeof value.send === 'function' && value.config != null
}

/** SDK config values are plain values or (async) providers. */
async function resolve(value) {
  return typeof value === 'function' ? value() : value
}

/**
 * Credentials as the native store asks for them whenever the ones it holds are about to
 * expire: from the SDK's provider (which refreshes temporary credentials), never a copy taken
 * once.
 */
function credentialsProvider(source) {
  return async () => {
    const credentials = await resolve(source)
    const expiration = credentials?.expiration
    return {
      accessKeyId: credentials?.accessKeyId,
      secretAccessKey: credentials?.secretAccessKey,
      sessionToken: credentials?.sessionToken ?? undefined,
      expirationMs: expiration == null ? undefined : new Date(expiration).getTime(),
    }
  }
}

/** Reads region, endpoint and path style from an S3Client's config, and takes its credentials provider. */
async function settingsFromClient(client, bucket, options) {
  const config = client.config
  const [region, endpoint] = await Promise.all([
    resolve(config.region),
    config.isCustomEndpoint === false ? undefined : resolve(config.endpoint),
  ])
  const url =
    endpoint && typeof endpoint === 'object'
      ? `${endpoint.protocol}//${endpoint.hostname}${endpoint.port ? `:${endpoint.port}` : ''}${endpoint.path ?? ''}`.replace(/\/$/, '')
      : endpoint
  return {
    ...options,
    bucket,
    region,
    endpoint: url,
    forcePathStyle: Boolean(await resolve(config.forcePathStyle)),
    credentials: config.credentials,
  }
}

function createNative(settings) {
  const credentials = settings.credentials ?? {}
  // A provider (an async function, as the AWS SDK takes) is asked again before what it gave expires.
  const provider = typeof credentials === 'function' ? credentialsProvider(credentials) : undefined
  const missing = ['bucket', 'region'].filter((f) => !settings[f])
  // No credentials at all: the AWS default chain (environment, profiles, instance roles).
  const keys = [credentials.accessKeyId, credentials.secretAccessKey].filter(Boolean).length
  if (!provider && keys === 1) missing.push('credentials')
  if (missing.length > 0) {
    throw new ConfigurationError(`S3StorageBackend needs ${missing.join(', ')}`, {
      backend: 's3',
      issues: missing.map((field) => ({ field, message: 'Required' })),
    })
  }
  return callNativeSync(() =>
    NativeStorage.s3({
      bucket: settings.bucket,
      region: settings.region,
      endpoint: settings.endpoint ?? undefined,
      forcePathStyle: settings.forcePathStyle ?? undefined,
      accessKeyId: provider ? undefined : (credentials.accessKeyId || undefined),
      secretAccessKey: provider ? undefined : (credentials.secretAccessKey || undefined),
      sessionToken: provider ? undefined : (credentials.sessionToken ?? undefined),
      credentialsProvider: provider,
      partSize: settings.partSize ?? undefined,
      queueSize: settings.queueSize ?? undefined,
      stallTimeout: settings.stallTimeout ?? undefined,
      signPayload: settings.signPayload ?? undefined,
      caCertificates: settings.caCertificates ?? undefined,
    }),
  )
}

class S3StorageBackend extends StorageBackend {
  /**
   * `new S3StorageBackend({ bucket, region, endpoint?, forcePathStyle?, credentials?, signedUrlExpiration?, partSize?, queueSize?, stallTimeout?, signPayload? })`
   * or, for existing code, `new S3StorageBackend(s3Client, bucket, options?)`.
   */
  constructor(clientOrOptions, bucket, options = {}) {
    if (isS3Client(clientOrOptions)) {
      super(settingsFromClient(clientOrOptions, bucket, options).then(createNative), options)
      this.bucket = bucket
    } else {
      const settings = { ...clientOrOptions }
      super(createNative(settings), settings)
      this.bucket = settings.bucket
    }
  }
}

/** An S3 backend from STORAGE_S3_*; path-style whenever an endpoint is set. */
function createS3Backend() {
  const env = readBackendEnv('s3', s3ConfigSchema)
  return new S3StorageBackend({
    bucket: env.STORAGE_S3_BUCKET,
    region: env.STORAGE_S3_REGION,
    endpoint: env.STORAGE_S3_ENDPOINT,
    forcePathStyle: Boolean(env.STORAGE_S3_ENDPOINT),
    credentials: { accessKeyId: env.STORAGE_S3_ACCESS_KEY_ID, secretAccessKey: env.STORAGE_S3_SECRET_ACCESS_KEY },
    ...configuredBackendDefaults(),
  })
}

/**
 * Aliyun OSS through its S3-compatible API: the region's endpoint (`s3.oss-<region>.aliyuncs.com`,
 * `-internal` from inside Alibaba Cloud) with virtual-hosted addressing, which OSS requires.
 */
class AliyunOssStorageBackend extends S3StorageBackend {
  /** `new AliyunOssStorageBackend({ region: 'cn-hangzhou', bucket, credentials, internal?, ...S3 options })`. */
  constructor(options = {}) {
    const region = String(options.region ?? '').replace(/^oss-/, '')
    if (!/^[a-z0-9-]+$/.test(region)) {
      throw new ConfigurationError('AliyunOssStorageBackend needs a region such as cn-hangzhou', {
        backend: 'aliyun',
        issues: [{ field: 'region', message: 'Required' }],
      })
    }
    const endpoint = options.endpoint ?? `https://s3.oss-${region}${options.internal ? '-internal' : ''}.aliyuncs.com`
    super({ ...options, region, endpoint, forcePathStyle: false })
  }
}

/** An Aliyun OSS backend from STORAGE_ALIYUN_*. */
function createAliyunBackend() {
  const env = readBackendEnv('aliyun', aliyunConfigSchema)
  return new AliyunOssStorageBackend({
    region: env.STORAGE_ALIYUN_REGION,
    bucket: env.STORAGE_ALIYUN_BUCKET,
    credentials: { accessKeyId: env.STORAGE_ALIYUN_ACCESS_KEY_ID, secretAccessKey: env.STORAGE_ALIYUN_SECRET_ACCESS_KEY },
    ...configuredBackendDefaults(),
  })
}

module.exports = { S3StorageBackend, createS3Backend, AliyunOssStorageBackend, createAliyunBackend }
