// This package. Variants: none (S3 with its defaults: the payload is signed over plain HTTP),
// "unsigned" (S3 with signPayload: false, as OpenDAL sends bodies), "local" (the local store),
// "local-nofsync" (durable: false, which writes as fs does, without fsync), "azure" (Azurite)
// and "gcs" (fake-gcs-server).
import fs from 'node:fs'
import { AzureBlobStorageBackend, GcsStorageBackend, LocalStorageBackend, S3StorageBackend } from '../../index.mjs'

export function backendFor(env, variant) {
  if (variant?.startsWith('local')) return new LocalStorageBackend({ root: env.localRoot, durable: variant !== 'local-nofsync' })
  if (variant === 'azure') {
    const { account, key, container, endpoint } = env.azure
    return new AzureBlobStorageBackend({ accountName: account, accountKey: key, container, endpoint })
  }
  if (variant === 'gcs') return new GcsStorageBackend({ bucket: env.bucket, endpoint: env.gcs.endpoint, credentials: env.gcs.credentials })
  return new S3StorageBackend({
        bucket: env.bucket,
        region: 'us-east-1',
        endpoint: env.endpoint,
        credentials: { accessKeyId: env.accessKey, secretAccessKey: env.secretKey },
        ...(variant === 'unsigned' ? { signPayload: false } : {}),
      })
}

export function create(env, { variant } = {}) {
  const backend = backendFor(env, variant)
  return {
    upload: (file, key) => backend.upload({ key, body: fs.createReadStream(file), contentType: 'application/octet-stream' }),
    download: (key) => backend.download(key),
    put: (key, data) => backend.put(key, data, { contentType: 'application/octet-stream' }),
    get: (key) => backend.get(key),
    head: (key) => backend.stat(key),
    delete: (key) => backend.delete(key),
    presign: (key) => backend.getSignedUrl(key, { expiresIn: 900 }),
    count: async (prefix) => {
      let count = 0
      for await (const _ of backend.listAll({ prefix })) count++
      return count
    },
    deletePrefix: (prefix) => backend.deletePrefix(prefix),
  }
}
